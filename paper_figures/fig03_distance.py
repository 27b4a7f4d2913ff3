"""Figure 3 — distance to the limit: |x(t) - x*| vs t (reference 2 sigma(t)), and
|y(s) - x*| vs s with the reference e^{-s} for VE and VP; fitted collapse rates.

Recentred integration resolves the distance far below the float64 floor of x.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.convergence import fit_collapse

from ._common import authors_data, sample_prior, ve, vp

NAME = "fig03_distance"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = authors_data()
    field = sd.EmpiricalScore(X)
    q = 10 if quick else 30
    numbers, rates = {}, {}
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.8))
        fig.subplots_adjust(wspace=0.35)
        for label, sched, horizon, ls in (("VE", ve(), 14.0, "-"), ("VP", vp(), 24.0, "--")):
            xT = sample_prior(sched, q, rng)
            lam0 = float(sched.lam(1.0))
            s = lam0 + np.linspace(0.0, horizon, 300)
            r = sd.solve(field, xT / sched.alpha(1.0), (lam0, lam0 + horizon), save_at=s,
                         rtol=1e-10, atol=1e-300, recentre=True)
            dist = np.linalg.norm(r.ys - X[r.centre][None], axis=2)      # |z - x*| = |y - x*|
            t = sched.t_of_lam(s)
            distx = dist * sched.alpha(t)[:, None] + 0.0                # |x - alpha x*|
            fit = fit_collapse(s - lam0, dist, s_min=6.0, floor=1e-13)
            ok = np.isfinite(fit.rate)
            rates[label] = (float(np.median(fit.rate[ok])), float(np.min(fit.rate[ok])),
                            float(np.max(fit.rate[ok])))
            for j in range(q):
                axes[0].loglog(t, distx[:, j], ls, lw=0.6, alpha=0.6,
                               color="C0" if label == "VE" else "C1")
                axes[1].semilogy(s - lam0, dist[:, j], ls, lw=0.6, alpha=0.6,
                                 color="C0" if label == "VE" else "C1")
            axes[0].loglog(t, 2 * sched.sigma(t), "k" + ls, lw=1.2, label=f"$2\\sigma(t)$ ({label})")
            numbers[label] = {"s": s - lam0, "t": t, "distance": dist, "rate": fit.rate, "K": fit.K}
        ss = np.linspace(0, 24, 50)
        axes[1].semilogy(ss, 3 * np.exp(-ss), "k:", lw=1.4, label="$\\propto e^{-s}$")
        axes[0].set_xlabel("time $t$")
        axes[0].set_ylabel("$|x(t) - \\alpha(t) x^*|$")
        axes[0].invert_xaxis()
        axes[0].legend()
        axes[0].set_title("original time (VE solid, VP dashed)")
        axes[1].set_xlabel("log-time $s - s_0$")
        axes[1].set_ylabel("$|y(s) - x^*|$")
        axes[1].set_title("rate: VE %.4f, VP %.4f (median fit)" % (rates["VE"][0], rates["VP"][0]))
        axes[1].legend()
        numbers["fitted_rate_median_min_max"] = rates
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: fitted collapse rate (median [min, max]): VE {rates['VE'][0]:.4f} "
          f"[{rates['VE'][1]:.4f}, {rates['VE'][2]:.4f}], VP {rates['VP'][0]:.4f} "
          f"[{rates['VP'][1]:.4f}, {rates['VP'][2]:.4f}]")
    return {"files": [str(p) for p in paths], "rate_VE": rates["VE"][0], "rate_VP": rates["VP"][0],
            "rate_min": min(rates["VE"][1], rates["VP"][1]),
            "rate_max": max(rates["VE"][2], rates["VP"][2])}
