"""Figure 10 — mixed sampling (Wang, Han & Zou 2024, Algorithm 2, Table 1) on synthetic data.

Training set: 48 draws of a 4-component Gaussian mixture in d = 8.  Outside the
window the sampler uses the mixture's exact population score (a perfect
generalising field); inside it the empirical optimum eps*.  DDPM, T = 1000, the
same starts and noise for every window; memorization by the 1/3 ratio test.
"""
import csv
import pathlib

import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.memorization.ddpm import TABLE1_WINDOWS, window_sweep

NAME = "fig10_mixed_sampling"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    d = 8
    means = rng.standard_normal((4, d)) * 2
    gm = sd.GaussianMixture(means, np.full(4, 0.3))
    train = gm.sample(48, rng=rng)
    windows = TABLE1_WINDOWS + ((1, 10), (1, 100))
    rows = window_sweep(sd.EmpiricalScore(train), gm, sd.DDPM(), train, n=64 if quick else 256,
                        windows=windows, rng=rng)
    labels = [f"{w[0]}-{w[1]}" if w != (0, 0) else "none" for w in (r["window"] for r in rows)]
    vals = np.array([r["ratio"].value for r in rows])
    lo = np.array([r["ratio"].ci_low for r in rows])
    hi = np.array([r["ratio"].ci_high for r in rows])
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{NAME}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["start_i", "end_j", "memorization_ratio", "ci_low", "ci_high"])
        for r in rows:
            w.writerow([*r["window"], r["ratio"].value, r["ratio"].ci_low, r["ratio"].ci_high])
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(4.2, 2.6))
        x = np.arange(len(rows))
        ax.bar(x, 100 * vals, color=plotting.END_COLOR, alpha=0.85)
        ax.errorbar(x, 100 * vals, yerr=[100 * (vals - lo), 100 * (hi - vals)], fmt="none",
                    ecolor="k", lw=0.8, capsize=2)
        ax.set_xticks(x, labels, rotation=35)
        ax.set_xlabel("window $[i, j]$ of steps using $\\epsilon^*$ (T = 1000)")
        ax.set_ylabel("memorization ratio (%)")
        ax.set_title("mixed sampling: exact GMM score outside the window")
        numbers = {"windows": [r["window"] for r in rows], "ratio": vals, "ci_low": lo, "ci_high": hi}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: " + ", ".join(f"{lab}: {100 * v:.0f}%" for lab, v in zip(labels, vals)))
    return {"files": [str(p) for p in paths] + [str(out / f"{NAME}.csv")],
            "ratio": dict(zip(labels, vals.tolist()))}
