"""Figure 1 — trajectories of the reverse ODE over the Voronoi tessellation (VE and VP).

N = 20 data from N(0, I_2); 30 starts from the noise distribution at T = 1;
VE (sigma_max = 10, log-time horizon 10) and VP (beta in [0.001, 3], horizon 20).
The trajectories cross cell boundaries, explore, then collapse onto data points.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.voronoi import classify

from ._common import BOUNDS, authors_data, log_time_run, sample_prior, ve, vp

NAME = "fig01_trajectories"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = authors_data()
    field = sd.EmpiricalScore(X)
    q = 12 if quick else 30
    numbers = {"N": 20, "starts": q}
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 3.3))
        for ax, (label, sched, horizon) in zip(axes, (("VE", ve(), 10.0), ("VP", vp(), 20.0))):
            xT = sample_prior(sched, q, rng)
            _, _, path, res = log_time_run(field, sched, xT, horizon)
            ends = path[-1]
            cls = classify(X, ends, 1e-3)
            plotting.draw_voronoi(ax, X, BOUNDS)
            for j in range(q):
                ax.plot(path[:, j, 0], path[:, j, 1], lw=0.7, alpha=0.8, zorder=2)
            ax.scatter(ends[:, 0], ends[:, 1], marker="x", s=18, c=plotting.END_COLOR, zorder=5,
                       label="end points $x(t_{\\min})$", linewidths=0.8)
            ax.scatter(xT[:, 0], xT[:, 1], marker=".", s=10, c="0.3", zorder=3, label="starts $x(T)$")
            frac = float(np.mean(cls.kind == 0))
            ax.set_title(f"{label}: {100 * frac:.0f}% end at a data point\n"
                         f"mean {res.cell_changes.mean():.1f} cell changes per path")
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
            numbers[label] = {"fraction_at_data": frac,
                              "mean_cell_changes": float(res.cell_changes.mean()),
                              "t_min": float(sched.t_of_lam(sched.lam(1.0) + horizon)),
                              "starts": xT, "ends": ends}
        axes[0].legend(loc="lower left", fontsize=6.5)
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    head = {"VE_fraction_at_data": numbers["VE"]["fraction_at_data"],
            "VP_fraction_at_data": numbers["VP"]["fraction_at_data"]}
    print(f"{NAME}: fraction of end points at a data point: VE {head['VE_fraction_at_data']:.2f}, "
          f"VP {head['VP_fraction_at_data']:.2f}")
    return {"files": [str(p) for p in paths], **head}
