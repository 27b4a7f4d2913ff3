"""Figure 8 — exponential collapse at scale: histogram of fitted rates.

>= 10^4 trajectories, N = 1000 data in d = 16, recentred DOPRI5 to s = 40; each
trajectory's |y(s) - x_i| ~ K e^{-rate s} fitted on s in [12, 40]; the theorem's
rate 1 marked.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.convergence import fit_collapse

NAME = "fig08_rates_at_scale"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    n, d, q = (100, 8, 1000) if quick else (1000, 16, 10_000)
    X = rng.standard_normal((n, d))
    y0 = rng.standard_normal((q, d)) * 1.5
    save = np.linspace(12.0, 40.0, 57)
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 40.0), rtol=1e-10, atol=1e-300, recentre=True,
                 save_at=save)
    dev = np.linalg.norm(r.ys - X[r.centre][None], axis=2)
    fit = fit_collapse(save, dev, floor=1e-13 * (1 + np.max(np.abs(X))), ceiling=np.inf)
    ok = np.isfinite(fit.rate)
    rates = fit.rate[ok]
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.4, 2.5))
        dev_r = rates - 1.0
        ax.hist(dev_r, bins=60, color=plotting.END_COLOR, alpha=0.8)
        ax.axvline(0.0, color=plotting.DATA_COLOR, lw=1.2, label="theorem: rate $= 1$")
        ax.set_xlabel("fitted rate $- 1$")
        ax.set_ylabel("trajectories")
        ax.set_title(f"{ok.sum()} trajectories, $N = {n}$, $d = {d}$")
        ax.legend()
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        numbers = {"N": n, "d": d, "trajectories": int(ok.sum()), "rates": rates,
                   "max_abs_deviation": float(np.max(np.abs(dev_r))), "r2_min": float(np.min(fit.r2[ok]))}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: {ok.sum()} fits, rate 1 {'+-'} {np.max(np.abs(dev_r)):.2e} (max deviation), "
          f"median {np.median(rates):.6f}")
    return {"files": [str(p) for p in paths], "trajectories": int(ok.sum()),
            "max_abs_deviation": float(np.max(np.abs(dev_r))), "median_rate": float(np.median(rates))}
