"""Figure 13 — ambient diffusion: memorization against the switching level sigma_{t_n}.

DDIM on a DDPM schedule (T = 1000) with the ambient optimum above t_n (Shah et al. 2025,
Lemma 4.1: the diffused noisy training set) and, below t_n, either the exact
empirical optimum or the exact population score of the mixture the data came
from.  With the exact optimum below t_n every sample is a training point again:
the paper's conjecture needs a low-noise field that does not itself memorize.
Data: 48 draws of a 4-component mixture in d = 8; 1/3 ratio test.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.memorization.ambient import AmbientScore
from scoredyn.memorization import memorization_ratio

NAME = "fig13_ambient"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    d = 8
    gm = sd.GaussianMixture(rng.standard_normal((4, d)) * 2, np.full(4, 0.3))
    train = gm.sample(48, rng=rng)
    dd = sd.DDPM()
    steps = np.arange(1000, 0, -10 if quick else -4)
    tns = [20, 50, 100, 200, 400, 700] if not quick else [50, 200, 600]
    xT = rng.standard_normal((64 if quick else 256, d))
    exact = sd.EmpiricalScore(train)
    rows = {"exact below $t_n$": [], "population score below $t_n$": []}
    for tn in tns:
        amb = AmbientScore(train, float(dd.sigma(tn)), rng=rng.integers(2**31))
        for name, low in (("exact below $t_n$", exact), ("population score below $t_n$", gm)):
            x0 = sd.ddim_sample(lambda t: amb if t > tn else low, dd, xT, steps=steps)
            rows[name].append(memorization_ratio(x0, train, n_bootstrap=0).value)
    base = memorization_ratio(sd.ddim_sample(exact, dd, xT, steps=steps), train, n_bootstrap=0).value
    sig = dd.sigma(np.array(tns))
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.6, 2.6))
        for name, vals in rows.items():
            ax.plot(sig, 100 * np.array(vals), "o-", ms=3, label=name)
        ax.axhline(100 * base, color="k", ls=":", lw=0.8, label="exact optimum throughout")
        ax.set_xlabel("switching noise level $\\sigma_{t_n}$")
        ax.set_ylabel("memorization ratio (%)")
        ax.set_ylim(-3, 105)
        ax.set_title("ambient optimum above $t_n$")
        ax.legend(fontsize=6)
        numbers = {"t_n": tns, "sigma_tn": sig, **{k: v for k, v in rows.items()}, "baseline": base}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: memorization with the exact optimum below t_n: "
          + ", ".join(f"{v:.2f}" for v in rows["exact below $t_n$"])
          + "; with the population score: " + ", ".join(f"{v:.2f}" for v in rows["population score below $t_n$"]))
    return {"files": [str(p) for p in paths], "exact_below": rows["exact below $t_n$"],
            "population_below": rows["population score below $t_n$"], "baseline": base}
