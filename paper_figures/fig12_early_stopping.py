"""Figure 12 — the early-stopping theorem (Wu, "Memorization effect of diffusion models", Theorem 3).

Exact samples of p^_T (Ornstein-Uhlenbeck, T = 3) pushed by the exact empirical
flow: stopped at delta = 0.1 they follow the kernel density estimate p^_delta
(MMD permutation test), run to delta = 1e-6 they land on the training points,
uniformly (chi-square test).
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.memorization.early_stopping import (mmd_test, reverse_from_noise, sample_smoothed,
                                     uniformity_check)

NAME = "fig12_early_stopping"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = rng.standard_normal((10, 2))
    ou = sd.VP(2.0, 2.0)
    n = 300 if quick else 1000
    es = reverse_from_noise(X, ou, 3.0, 0.1, n, rng=rng)
    kde = sample_smoothed(X, ou, 0.1, n, rng)
    test = mmd_test(es, kde, n_permutations=100 if quick else 300, rng=rng)
    full = reverse_from_noise(X, ou, 3.0, 1e-6, n, rng=rng)
    uni = uniformity_check(full, X)
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(6.6, 3.0))
        fig.subplots_adjust(wspace=0.35)
        axes[0].scatter(kde[:, 0], kde[:, 1], s=3, c="0.6", label="$\\hat p_\\delta$ (KDE)")
        axes[0].scatter(es[:, 0], es[:, 1], s=3, c=plotting.END_COLOR, alpha=0.6,
                        label="reverse flow to $\\delta$")
        axes[0].scatter(X[:, 0], X[:, 1], marker="x", c=plotting.DATA_COLOR, s=30, label="data")
        axes[0].set_title(f"early stopping $\\delta = 0.1$: MMD p = {test.p_value:.2f}")
        axes[0].legend(fontsize=6, loc="lower left")
        axes[1].bar(np.arange(X.shape[0]), uni.counts, color=plotting.END_COLOR)
        axes[1].axhline(n / X.shape[0], color="k", ls="--", lw=0.8, label="uniform")
        axes[1].set_xlabel("training point")
        axes[1].set_ylabel("samples landing on it")
        axes[1].set_title(f"no early stopping: $\\chi^2$ p = {uni.p_value:.2f}")
        axes[1].legend()
        for ax in axes[:1]:
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
        numbers = {"mmd2": test.mmd2, "mmd_p_value": test.p_value, "counts": uni.counts,
                   "chi2_p_value": uni.p_value,
                   "max_distance_to_data_no_es": float(np.max(sd.voronoi.nearest(X, full)[2]))}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: MMD p-value {test.p_value:.3f} (early stopping ~ KDE); "
          f"hit-count chi-square p-value {uni.p_value:.3f} (uniform over the data)")
    return {"files": [str(p) for p in paths], "mmd_p": test.p_value, "chi2_p": uni.p_value,
            "max_distance_no_es": numbers["max_distance_to_data_no_es"]}
