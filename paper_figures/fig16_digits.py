"""Figure 16 — the exact score on real data: scikit-learn's 8x8 digits (N = 1797, d = 64).

Samples of the exact empirical score (the log-time ODE of Baptista et al. 2025,
arXiv:2501.15785, from sigma = 20 to s = 16, dopri5 at rtol 1e-9, pixels / 16) are shown
above their nearest training digits: every sample is a training digit (the memorized
fraction, within 1e-2), and the distance to it decays as ``K e^{-s}`` with the rate fitted
on recentred trajectories in d = 64 (the theorem: exactly 1).  The same starts under a
Tikhonov score (c = 1e-2) stop at a distance ~ sqrt(c) from the data: digit-like, not
memorized.  The Empirical-Bayes threshold acts on the unnormalised mass
``logsumexp_i(-|y - x_i|^2 / (2 sigma^2))``, which at sigma = 20 in d = 64 is ~ e^{-25}: any
tau above ~1e-8 freezes the trajectories at their noisy start (nothing memorized, nothing
learned either); tau = 1e-12 (shown) lets most of them move and some reach a digit.  The
threshold of the 2-D experiments does not carry over to d = 64 unscaled.  The digits ship
inside scikit-learn's wheel (the ``data`` extra); nothing is downloaded.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.convergence import fit_collapse

NAME = "fig16_digits"
SIGMA_START = 20.0
S_END = 16.0


def _digits():
    from scoredyn.apps.datasets import load
    return load("digits")


def main(out_dir, *, rng=None, quick=False):
    try:
        X = _digits()
    except ImportError as exc:
        print(f"{NAME}: skipped ({exc})")
        return {"files": [], "skipped": str(exc)}
    rng = np.random.default_rng(rng)
    q = 8 if quick else 24
    y0 = SIGMA_START * rng.standard_normal((q, X.shape[1]))
    span = (-np.log(SIGMA_START), S_END)
    save = np.linspace(0.0, S_END, 65)[1:]
    exact = sd.solve(sd.EmpiricalScore(X), y0, span, rtol=1e-9, atol=1e-11, recentre=True,
                     save_at=save)
    dist = np.linalg.norm(exact.ys - X[exact.centre][None], axis=2)         # (m, q)
    fit = fit_collapse(save, dist, s_min=6.0, floor=1e-13)
    regs = {"Tikhonov $c = 10^{-2}$": sd.Tikhonov(1e-2),
            "Empirical Bayes $\\tau = 10^{-12}$": sd.EmpiricalBayes(1e-12)}
    reg_y = {k: sd.solve(sd.EmpiricalScore(X, regularization=r), y0, span, rtol=1e-9,
                         atol=1e-11).y for k, r in regs.items()}
    idx, d_exact = sd.memorization.nearest_training_points(exact.y, X, k=1)
    fractions = {"exact": float(np.mean(d_exact[:, 0] < 1e-2))}
    reg_dist = {}
    for k, y in reg_y.items():
        reg_dist[k] = sd.memorization.nearest_training_points(y, X, k=1)[1][:, 0]
        fractions[k] = float(np.mean(reg_dist[k] < 1e-2))
    shown = min(q, 8)
    with plotting.style() as plt:
        fig = plt.figure(figsize=(7.2, 3.9))
        grid = fig.add_gridspec(4, shown + 6, wspace=0.08, hspace=0.35)
        rows = [("exact score", exact.y), ("nearest training digit", X[idx[:, 0]])]
        rows += [(k, y) for k, y in reg_y.items()]
        for r, (label, imgs) in enumerate(rows):
            for j in range(shown):
                ax = fig.add_subplot(grid[r, j])
                ax.imshow(imgs[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{d_exact[j, 0]:.0e}", fontsize=5)
                elif r >= 2:
                    ax.set_title(f"{reg_dist[label][j]:.2g}", fontsize=5)
            fig.axes[-shown].set_ylabel(label, fontsize=5, rotation=0, ha="right", va="center")
        ax = fig.add_subplot(grid[:, shown + 2:])
        for j in range(min(q, 6)):
            ax.semilogy(save, dist[:, j], lw=0.8)
        ok = np.isfinite(fit.K)
        kmed = float(np.median(fit.K[ok])) if ok.any() else 1.0
        ax.semilogy(save, kmed * np.exp(-save), "k--", lw=0.8, label="$K e^{-s}$")
        ax.set_xlabel("$s = -\\log \\sigma$")
        ax.set_ylabel("$|y(s) - x_i|$ (recentred)")
        ax.set_title(f"rate {np.nanmedian(fit.rate):.4f} (d = 64)", fontsize=7)
        ax.legend(loc="lower left", fontsize=6)
        fig.suptitle(f"digits, memorized within $10^{{-2}}$: exact score {fractions['exact']:.0%}; "
                     + "; ".join(f"{k.split(' $')[0]}: {v:.0%}" for k, v in fractions.items()
                                 if k != "exact"), fontsize=7)
        numbers = {"samples": q, "N": int(X.shape[0]), "d": int(X.shape[1]),
                   "fraction_within_1e-2": fractions,
                   "nearest_distance_exact": d_exact[:, 0],
                   "nearest_distance_regularised": reg_dist,
                   "collapse_rate": fit.rate, "collapse_rate_median": float(np.nanmedian(fit.rate)),
                   "sigma_start": SIGMA_START, "s_end": S_END}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: exact {fractions['exact']:.2f} memorized, rate "
          f"{np.nanmedian(fit.rate):.4f}; regularised "
          + ", ".join(f"{v:.2f}" for k, v in fractions.items() if k != "exact"))
    return {"files": [str(p) for p in paths], "fraction": fractions,
            "rate": float(np.nanmedian(fit.rate)), "rates": fit.rate.tolist(),
            "max_exact_distance": float(d_exact.max())}
