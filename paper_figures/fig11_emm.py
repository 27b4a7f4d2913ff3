"""Figure 11 — effective model memorization (TMLR Definition 2.1) of the regularised optima.

Memorization ratio (1/3 test) against data-set size for the exact empirical
optimum, Tikhonov(c) and Empirical-Bayes(tau) fields; N(0, I_4) data, nested
subsets, 200 samples each from the log-time ODE (VE, s in [0, 14]); EMM at the
90% line (zeta = 0.1) — a quantity none of the papers reports for these optima.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.memorization.emm import memorization_curve

NAME = "fig11_emm"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    d = 4
    sizes = [10, 30, 100, 300] if quick else [10, 20, 50, 100, 200, 500, 1000]
    data = rng.standard_normal((max(sizes), d))
    nsamp = 100 if quick else 200

    def sample(field, r):
        return sd.solve(field, r.standard_normal((nsamp, d)) * 1.5, (0.0, 14.0), rtol=1e-7,
                        atol=1e-9).y
    fields = {"exact": lambda D: sd.EmpiricalScore(D)}
    for c in (1e-4, 1e-3, 1e-2):
        fields[f"Tikhonov c={c:g}"] = (lambda cc: lambda D: sd.EmpiricalScore(
            D, regularization=sd.Tikhonov(cc)))(c)
    fields["Emp. Bayes tau=0.3"] = lambda D: sd.EmpiricalScore(D, regularization=sd.EmpiricalBayes(0.3))
    curves = {name: memorization_curve(data, sizes, make, sample, rng=rng.integers(2**31))
              for name, make in fields.items()}
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.6, 2.7))
        for k, (name, res) in enumerate(curves.items()):
            exact = name == "exact"
            ax.semilogx(res.sizes, 100 * res.ratios, "o--" if exact else "o-", ms=3, color=f"C{k}",
                        lw=2.4 if exact else 1.0, zorder=1 if exact else 2, label=name)
            if res.bound == "crossing":
                ax.axvline(res.emm, color=f"C{k}", lw=0.6, ls=":")
        ax.axhline(90, color="k", lw=0.7, ls="--", label="$1 - \\zeta = 90\\%$")
        ax.set_xlabel("training-set size $N$")
        ax.set_ylabel("memorization ratio (%)")
        ax.set_title("EMM (dotted) of regularised optima")
        ax.legend(fontsize=5.5, loc="lower left")
        numbers = {name: {"sizes": r.sizes, "ratios": r.ratios, "emm": r.emm, "bound": r.bound}
                   for name, r in curves.items()}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    summary = {name: (r.emm if r.bound == "crossing" else f"{r.bound} bound {r.emm}")
               for name, r in curves.items()}
    print(f"{NAME}: EMM " + "; ".join(f"{k}: {v}" for k, v in summary.items()))
    return {"files": [str(p) for p in paths],
            "emm": {k: (r.emm, r.bound) for k, r in curves.items()},
            "ratios": {k: r.ratios.tolist() for k, r in curves.items()}}
