"""Figure 15 — the trained score against the optimum (Wang, Han & Zou 2024, §3, Algorithm 2).

Same 2-D data as figure 14; one MLP (SiLU, Fourier 8) trained on sigma in
[1e-3, 200] so that it covers a DDPM schedule (T = 1000, sigma/alpha up to ~160).
(a) mixed sampling with eps* inside the window and the network outside: the
replication ratio (1/3 test) against the window; (b) the pseudo difference
quotient (eq. 28) along two training points at t = 10 and 100 — the optimum's
tends to 1/sqrt(1 - abar_t); (c) singular values of d eps/dx at noised
training points.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.memorization.ddpm import TABLE1_WINDOWS, window_sweep
from scoredyn.fields.network import ScoreMLP
from scoredyn.memorization.smoothness import jacobian_singular_values, noised_pair, pseudo_difference_quotient

NAME = "fig15_trained_vs_optimal"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = np.random.RandomState(1).randn(20, 2)
    dd = sd.DDPM()
    net = ScoreMLP(2, width=32 if quick else 256, depth=2, n_fourier=8, rng=int(rng.integers(2**31)))
    net.fit(X, steps=2000 if quick else 30_000, batch=256, lr=1e-3, sigma_min=1e-3, sigma_max=200.0,
            rng=int(rng.integers(2**31)))
    opt = sd.EmpiricalScore(X)
    rows = window_sweep(opt, net, dd, X, n=64 if quick else 256, windows=TABLE1_WINDOWS,
                        rng=int(rng.integers(2**31)))
    ratio = np.array([r["ratio"].value for r in rows])
    lam = np.linspace(0.0, 0.995, 80)
    pdq = {}
    for t in (10, 100):
        pdq[t] = (pseudo_difference_quotient(opt, dd, X[0], X[5], t, lam, rng=1),
                  pseudo_difference_quotient(net, dd, X[0], X[5], t, lam, rng=1))
    pts = np.array([noised_pair(dd, X[i], X[i], 10, rng=i)[0] for i in range(10)])
    sv_opt = jacobian_singular_values(opt, dd, pts, 10)
    sv_net = jacobian_singular_values(net, dd, pts, 10)
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 3, figsize=(7.4, 2.5))
        fig.subplots_adjust(wspace=0.45)
        labels = [f"{i}-{j}" if (i, j) != (0, 0) else "none" for i, j in TABLE1_WINDOWS]
        axes[0].bar(np.arange(len(rows)), 100 * ratio, color=plotting.END_COLOR)
        axes[0].set_xticks(np.arange(len(rows)), labels, rotation=45, fontsize=6)
        axes[0].set_ylabel("replication (%)")
        axes[0].set_title("(a) $\\epsilon^*$ inside the window")
        for k, t in enumerate(pdq):
            axes[1].semilogy(lam, pdq[t][0], color=f"C{k}", label=f"optimum, t = {t}")
            axes[1].semilogy(lam, pdq[t][1], "--", color=f"C{k}", label=f"network, t = {t}")
            axes[1].axhline(1 / np.sqrt(1 - dd.abar[t]), color=f"C{k}", lw=0.5, ls=":")
        axes[1].set_xlabel("interpolation $\\lambda$")
        axes[1].set_ylabel("pseudo difference quotient")
        axes[1].set_title("(b) dotted: $1/\\sqrt{1-\\bar\\alpha_t}$")
        axes[1].legend(fontsize=5)
        axes[2].semilogy(np.arange(1, 3), sv_opt.T, "o-", color=plotting.DATA_COLOR, ms=3, lw=0.6)
        axes[2].semilogy(np.arange(1, 3), sv_net.T, "s--", color=plotting.END_COLOR, ms=3, lw=0.6)
        axes[2].set_xticks([1, 2])
        axes[2].set_xlabel("singular value index")
        axes[2].set_ylabel("$\\sigma_k(\\partial\\epsilon/\\partial x)$, t = 10")
        axes[2].set_title("(c) red: optimum, blue: network")
        numbers = {"windows": list(TABLE1_WINDOWS), "replication": ratio, "lambda": lam,
                   "pdq": {str(t): {"optimum": v[0], "network": v[1]} for t, v in pdq.items()},
                   "singular_values_optimum": sv_opt, "singular_values_network": sv_net,
                   "pdq_limit": {str(t): 1 / np.sqrt(1 - dd.abar[t]) for t in pdq}}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: replication with eps* inside " + ", ".join(f"{l}:{100 * r:.0f}%" for l, r in zip(labels, ratio))
          + f"; PDQ at lambda -> 1, t = 10: optimum {pdq[10][0][-1]:.2f} (limit {1 / np.sqrt(1 - dd.abar[10]):.2f}),"
          f" network {pdq[10][1][-1]:.2f}")
    return {"files": [str(p) for p in paths], "replication": dict(zip(labels, ratio.tolist())),
            "pdq_optimum_end": {t: float(v[0][-1]) for t, v in pdq.items()},
            "pdq_network_end": {t: float(v[1][-1]) for t, v in pdq.items()},
            "pdq_limit": {t: float(1 / np.sqrt(1 - dd.abar[t])) for t in pdq}}
