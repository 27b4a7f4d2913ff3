"""Figure 6 — Empirical-Bayes regularization (the authors' tau): memorized fraction vs tau.

Unnormalised weights w~_i = exp(l_i - max(logsumexp(l), log tau)); VE sigma_max = 10;
tau in logspace(-2, 1, 7); 1000 samples; "memorized" = within 1e-2 of a training point.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.voronoi import nearest

from ._common import authors_data, sample_prior, ve
from .fig05_tikhonov import generate

NAME = "fig06_empirical_bayes"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = authors_data()
    sched = ve()
    q = 300 if quick else 1000
    taus = np.logspace(-2, 1, 7)
    xT = sample_prior(sched, q, rng)
    fractions, spread = [], []
    for tau in taus:
        y = generate(X, sd.EmpiricalBayes(tau), xT, sched)
        fractions.append(float(np.mean(nearest(X, y)[2] < 1e-2)))
        spread.append(float(np.median(nearest(X, y)[2])))
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.4, 2.5))
        ax.semilogx(taus, fractions, "o-", color=plotting.END_COLOR, ms=3, label="memorized fraction")
        ax.set_xlabel("Empirical-Bayes threshold $\\tau$")
        ax.set_ylabel("fraction within $10^{-2}$ of data")
        ax.set_ylim(-0.03, 1.05)
        ax2 = ax.twinx()
        ax2.loglog(taus, spread, "s--", color="C1", ms=3, label="median distance to data")
        ax2.set_ylabel("median distance to nearest $x_i$", color="C1")
        ax2.grid(False)
        ax.set_title("Empirical Bayes: memorization vs $\\tau$")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="center right")
        numbers = {"tau": taus, "fraction_memorized": fractions, "median_distance": spread,
                   "samples": q}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: fraction within 1e-2 for tau = " + ", ".join(
        f"{t:.2g}:{f:.2f}" for t, f in zip(taus, fractions)))
    return {"files": [str(p) for p in paths], "tau": taus.tolist(), "fraction": fractions}
