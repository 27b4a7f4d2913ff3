"""Figure 5 — Tikhonov regularization prevents memorization.

Score (alpha D - x)/(sigma^2 + c) (Baptista et al. 2025, arXiv:2501.15785), VE sigma_max = 10, c in logspace(-5, -1, 9),
1000 samples: the fraction of generated samples within 1e-2 of a training point against
c, and the final points over the tessellation for three values of c.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.voronoi import nearest

from ._common import BOUNDS, authors_data, sample_prior, ve

NAME = "fig05_tikhonov"


def generate(X, reg, xT, schedule, horizon=12.0):
    field = sd.EmpiricalScore(X, regularization=reg)
    lam0 = float(schedule.lam(1.0))
    r = sd.solve(field, xT / schedule.alpha(1.0), (lam0, lam0 + horizon), rtol=1e-8, atol=1e-10)
    return r.y * schedule.alpha(schedule.t_of_lam(lam0 + horizon))


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = authors_data()
    sched = ve()
    q = 300 if quick else 1000
    cs = np.logspace(-5, -1, 5 if quick else 9)
    xT = sample_prior(sched, q, rng)
    finals, fractions = {}, []
    for c in cs:
        y = generate(X, sd.Tikhonov(c), xT, sched)
        finals[c] = y
        fractions.append(float(np.mean(nearest(X, y)[2] < 1e-2)))
    base = float(np.mean(nearest(X, generate(X, None, xT, sched))[2] < 1e-2))
    with plotting.style() as plt:
        fig = plt.figure(figsize=(7.2, 2.4))
        ax0 = fig.add_subplot(1, 4, 1)
        ax0.semilogx(cs, fractions, "o-", color=plotting.END_COLOR, ms=3)
        ax0.axhline(base, color="k", ls=":", lw=0.8, label=f"$c = 0$: {base:.2f}")
        ax0.set_xlabel("Tikhonov $c$")
        ax0.set_ylabel("fraction within $10^{-2}$ of data")
        ax0.set_ylim(-0.03, 1.05)
        ax0.legend(loc="upper right")
        for k, c in enumerate(cs[[0, len(cs) // 2, -1]]):
            ax = fig.add_subplot(1, 4, k + 2)
            plotting.draw_voronoi(ax, X, BOUNDS, s=8)
            ax.scatter(finals[c][:, 0], finals[c][:, 1], s=2.5, c=plotting.END_COLOR, alpha=0.6,
                       zorder=5, label="samples")
            ax.set_title(f"$c = 10^{{{np.log10(c):.0f}}}$")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.subplots_adjust(wspace=0.35)
        shown = cs[[0, len(cs) // 2, -1]]
        numbers = {"c": cs, "fraction_memorized": fractions, "fraction_unregularised": base,
                   "samples": q, "tolerance": 1e-2,
                   "final_points": {f"{c:.0e}": finals[c] for c in shown}}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: fraction within 1e-2: c=1e-5 {fractions[0]:.3f} ... c=1e-1 {fractions[-1]:.3f} "
          f"(c = 0: {base:.3f})")
    return {"files": [str(p) for p in paths], "c": cs.tolist(), "fraction": fractions,
            "unregularised": base}
