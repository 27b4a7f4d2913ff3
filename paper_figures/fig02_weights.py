"""Figure 2 — the softmax weights w_n(x(t), t) along one trajectory collapse to one-hot.

VE with sigma(t) = t (the theorem's setting; s = -log t), N = 20 data.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting

from ._common import authors_data

NAME = "fig02_weights"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = authors_data()
    field = sd.EmpiricalScore(X)
    sched = sd.VE()
    y0 = rng.standard_normal((1, 2))
    s = np.linspace(0.0, 8.0, 200 if quick else 800)
    r = sd.solve(field, y0, (0.0, 8.0), save_at=s, rtol=1e-10, atol=1e-12)
    t = sched.t_of_lam(s)
    W = np.array([field.weights(r.ys[k], t[k])[0] for k in range(s.size)])
    winner = int(np.argmax(W[-1]))
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.4, 2.5))
        for n in range(X.shape[0]):
            ax.plot(t, W[:, n], lw=1.4 if n == winner else 0.7,
                    color=plotting.DATA_COLOR if n == winner else None,
                    label=f"$w_{{{n}}}$ (limit)" if n == winner else None)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("time $t$ (log scale, reverse direction $\\rightarrow$)")
        ax.set_ylabel("weight $w_n(x(t), t)$")
        ax.set_title("weights collapse onto one data point")
        ax.legend(loc="center left")
        numbers = {"t": t, "weights": W, "limit_index": winner, "w_limit_final": W[-1, winner]}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: final weight of the limit point {W[-1, winner]:.12f} at t = {t[-1]:.1e}")
    return {"files": [str(p) for p in paths], "w_limit_final": float(W[-1, winner])}
