"""Figure 7 — the score over time at a fixed point x* off the data.

|s(x*, t)| against t: the empirical score blows up like 1/sigma(t)^2 (VE sigma = t), the
Tikhonov scores stay bounded by |x* - x_i| / c as t -> 0.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting

from ._common import authors_data

NAME = "fig07_score_time"


def main(out_dir, *, rng=None, quick=False):
    X = authors_data()
    xstar = np.array([[0.8, 0.9]])
    t = np.logspace(0, -6, 120 if quick else 400)
    cs = [None, 1e-4, 1e-3, 1e-2, 1e-1]
    norms = {}
    for c in cs:
        f = sd.EmpiricalScore(X, regularization=None if c is None else sd.Tikhonov(c))
        s = np.array([f.score(xstar, tk)[0] for tk in t])
        norms["none" if c is None else c] = np.linalg.norm(s, axis=1)
    i = int(np.argmin(np.linalg.norm(X - xstar, axis=1)))
    dist = float(np.linalg.norm(X[i] - xstar))
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.4, 2.6))
        ax.loglog(t, norms["none"], "k", lw=1.4, label="empirical ($c = 0$)")
        ax.loglog(t, dist / t**2, "k:", lw=0.8, label="$|x^* - x_i| / \\sigma(t)^2$")
        for c in cs[1:]:
            ax.loglog(t, norms[c], label=f"Tikhonov $c = 10^{{{np.log10(c):.0f}}}$")
            ax.axhline(dist / c, color="0.6", lw=0.4, ls="--")
        ax.invert_xaxis()
        ax.set_xlabel("time $t$ ($\\sigma(t) = t$)")
        ax.set_ylabel("$|s(x^*, t)|$")
        ax.set_title("score at a fixed $x^*$ off the data")
        ax.legend(loc="upper left", fontsize=6)
        numbers = {"t": t, "x_star": xstar[0], "nearest_distance": dist,
                   "score_norm": {str(k): v for k, v in norms.items()}}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    ratio = float(norms["none"][-1] * t[-1] ** 2 / dist)
    bounded = {c: float(norms[c][-1] * c / dist) for c in cs[1:]}
    print(f"{NAME}: |s| sigma^2 / |x* - x_i| at t = 1e-6: {ratio:.6f} (empirical); "
          f"|s| c / |x* - x_i| for Tikhonov: " + ", ".join(f"{c:g}:{v:.4f}" for c, v in bounded.items()))
    return {"files": [str(p) for p in paths], "empirical_ratio": ratio, "tikhonov_ratio": bounded}
