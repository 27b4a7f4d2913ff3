"""Figure 14 — a trained score network next to the optimum (the memorization paper's 2-D study).

N = 20 data from N(0, I_2); MLP score (SiLU, Fourier embedding 8), VE, sigma in
[1e-3, 10], trained by denoising score matching with the Tikhonov penalty lambda.
Samples: 500 starts, the log-time ODE (RK4, h = 0.05) from sigma = 10 to 1e-3.
Memorization: the 1/3 ratio test, and the paper's "within 1e-2 of a training
point".  Panels: against lambda (width 256), against training steps (width 256,
lambda = 0), against width (lambda = 0).  The exact optimum memorizes 100%.
"""
import numpy as np
from matplotlib.ticker import NullFormatter

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.memorization import memorization_ratio
from scoredyn.fields.network import ScoreMLP

NAME = "fig14_network_memorization"
SIGMA_MIN, SIGMA_MAX = 1e-3, 10.0


def _measure(field, X, y0):
    r = sd.solve(field, y0, (-np.log(SIGMA_MAX), -np.log(SIGMA_MIN)), method="rk4", h=0.05)
    within = float(np.mean(sd.voronoi.nearest(X, r.y)[2] < 1e-2))
    return memorization_ratio(r.y, X, n_bootstrap=0).value, within


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = np.random.RandomState(1).randn(20, 2)        # the authors' data (their global seed 1)
    y0 = rng.standard_normal((150 if quick else 500, 2)) * 3
    steps = 1500 if quick else 30_000
    width = 32 if quick else 256
    lambdas = [0.0, 1e-4, 1e-3, 1e-2, 0.1]
    widths = [8, 32] if quick else [16, 32, 64, 128, 256]
    chunks = [500, 1000] if quick else [2000, 8000, 20_000, 30_000]

    def train(w, lam, n_steps, seed):
        net = ScoreMLP(2, width=w, depth=2, n_fourier=8, rng=seed)
        net.fit(X, steps=n_steps, batch=256, lr=1e-3, c=lam, sigma_min=SIGMA_MIN,
                sigma_max=SIGMA_MAX, rng=seed + 1)
        return net
    seed = int(rng.integers(2**31))
    by_lambda = [_measure(train(width, lam, steps, seed), X, y0) for lam in lambdas]
    # (width, lambda = 0) is the first network of the lambda panel: the same seed, the same
    # training, so it is measured once
    by_width = [by_lambda[lambdas.index(0.0)] if w == width else
                _measure(train(w, 0.0, steps, seed), X, y0) for w in widths]
    net = ScoreMLP(2, width=width, depth=2, n_fourier=8, rng=seed)
    by_steps, done = [], 0
    for total in chunks:
        net.fit(X, steps=total - done, batch=256, lr=1e-3, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX,
                rng=seed + total)
        done = total
        by_steps.append(_measure(net, X, y0))
    exact = _measure(sd.EmpiricalScore(X), X, y0)
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.5))
        fig.subplots_adjust(wspace=0.4)
        panels = ((axes[0], [max(l, 1e-5) for l in lambdas], by_lambda, "penalty $\\lambda$ (0 drawn at $10^{-5}$)", True),
                  (axes[1], chunks, by_steps, "training steps", True),
                  (axes[2], widths, by_width, "width", True))
        for ax, xs, vals, label, logx in panels:
            v = np.array(vals)
            ax.plot(xs, 100 * v[:, 0], "o-", ms=3, label="ratio test $< 1/3$")
            ax.plot(xs, 100 * v[:, 1], "s--", ms=3, label="within $10^{-2}$")
            ax.axhline(100 * exact[0], color="k", lw=0.6, ls=":", label="exact optimum")
            if logx:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xticks(xs, [f"{x:g}" for x in xs], rotation=45, fontsize=6)
            ax.set_xlabel(label)
            ax.set_ylim(-3, 105)
        axes[0].set_ylabel("memorized samples (%)")
        axes[0].legend(fontsize=5.5, loc="center left")
        numbers = {"lambdas": lambdas, "by_lambda": by_lambda, "widths": widths, "by_width": by_width,
                   "steps": chunks, "by_steps": by_steps, "exact": exact, "train_steps": steps,
                   "width_for_lambda_and_steps": width}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: ratio-test memorization vs lambda " + ", ".join(f"{l:g}:{v[0]:.2f}" for l, v in zip(lambdas, by_lambda))
          + "; vs steps " + ", ".join(f"{s}:{v[0]:.2f}" for s, v in zip(chunks, by_steps))
          + "; vs width " + ", ".join(f"{w}:{v[0]:.2f}" for w, v in zip(widths, by_width))
          + f"; exact {exact[0]:.2f}")
    return {"files": [str(p) for p in paths], "by_lambda": by_lambda, "by_steps": by_steps,
            "by_width": by_width, "exact": exact}
