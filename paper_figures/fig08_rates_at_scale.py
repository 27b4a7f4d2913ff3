"""Figure 8 — exponential collapse at scale: histogram of fitted rates.

>= 10^4 trajectories, N = 1000 data in d = 16, recentred to s = 40 at rtol 1e-10; each
trajectory's |y(s) - x_i| ~ K e^{-rate s} fitted on s in [12, 40]; the theorem's
rate 1 marked.

The ensemble is integrated with gl-dopri5, Dormand-Prince in Lawson form: it integrates the
linear part -y exactly, so a trajectory settled in its cell takes long steps (about 14x less
work here than dopri5, whose steps must resolve e^{-s} at relative 1e-10 over the whole span).
Since that form is exact once D is constant, the rate it yields could in principle inherit
the method's structure; so the first CHECK trajectories are integrated again with plain
dopri5, which knows nothing of the linear part, and the largest difference of the two fitted
rates is reported (in the title and the numbers).
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.convergence import fit_collapse

NAME = "fig08_rates_at_scale"


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    n, d, q = (100, 8, 1000) if quick else (1000, 16, 10_000)
    check = 50 if quick else 200
    X = rng.standard_normal((n, d))
    y0 = rng.standard_normal((q, d)) * 1.5
    save = np.linspace(12.0, 40.0, 57)
    field = sd.EmpiricalScore(X)

    def rates_of(starts, method):
        r = sd.solve(field, starts, (0.0, 40.0), method=method, rtol=1e-10, atol=1e-300,
                     recentre=True, save_at=save)
        dev = np.linalg.norm(r.ys - X[r.centre][None], axis=2)
        return fit_collapse(save, dev, floor=1e-13 * (1 + np.max(np.abs(X))), ceiling=np.inf)

    fit = rates_of(y0, "gl-dopri5")
    plain = rates_of(y0[:check], "dopri5").rate
    both = np.isfinite(plain) & np.isfinite(fit.rate[:check])
    if not both.any():
        raise RuntimeError(f"{NAME}: no trajectory of the dopri5 cross-check had a finite fit")
    method_diff = float(np.max(np.abs(plain[both] - fit.rate[:check][both])))
    ok = np.isfinite(fit.rate)
    rates = fit.rate[ok]
    with plotting.style() as plt:
        fig, ax = plt.subplots(figsize=(3.4, 2.5))
        dev_r = rates - 1.0
        ax.hist(dev_r, bins=60, color=plotting.END_COLOR, alpha=0.8)
        ax.axvline(0.0, color=plotting.DATA_COLOR, lw=1.2, label="theorem: rate $= 1$")
        ax.set_xlabel("fitted rate $- 1$")
        ax.set_ylabel("trajectories")
        ax.set_title(f"{ok.sum()} trajectories, $N = {n}$, $d = {d}$\n"
                     f"dopri5 on {both.sum()} of them: rates within {method_diff:.1e}",
                     fontsize=7)
        ax.legend()
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        numbers = {"N": n, "d": d, "trajectories": int(ok.sum()), "rates": rates,
                   "max_abs_deviation": float(np.max(np.abs(dev_r))), "r2_min": float(np.min(fit.r2[ok])),
                   "method": "gl-dopri5", "dopri5_check_trajectories": int(both.sum()),
                   "dopri5_check_max_rate_difference": method_diff}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: {ok.sum()} fits, rate 1 {'+-'} {np.max(np.abs(dev_r)):.2e} (max deviation), "
          f"median {np.median(rates):.6f}; dopri5 on {both.sum()}: within {method_diff:.1e}")
    return {"files": [str(p) for p in paths], "trajectories": int(ok.sum()),
            "max_abs_deviation": float(np.max(np.abs(dev_r))), "median_rate": float(np.median(rates)),
            "dopri5_check_max_rate_difference": method_diff}
