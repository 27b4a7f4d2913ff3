"""Figure 9 — the repelling boundary quantified.

Data (+-1, 0); starts at distance eps from the bisector x_1 = 0.  Across it
dx_1/ds = -x_1 + tanh(e^{2s} x_1): near the face x_1(s) ~ eps exp((e^{2s} - 1)/2 - s), a
repelling rate growing like e^{2s}, until e^{2s} x_1 ~ 1, i.e.
(e^{2s} - 1)/2 + s = log(1/eps); then tanh saturates and x_1 relaxes to 1 at rate 1,
reaching 1/2 after log 2 more.  This two-phase estimate is the dashed prediction.  Plotted: the fraction of starts still within 1/2
of the boundary against eps at several horizons s (each a step near the predicted eps),
and the escape time against eps with the linearised prediction.  Only eps = 0 stays
on the boundary for all s.  (eps >= 1e-15: below that, float64 cannot resolve
|y - x_+| - |y - x_-| for |y| ~ 1, and the weights carry only rounding noise.)
"""
import numpy as np
from scipy.optimize import brentq

import scoredyn as sd
from scoredyn.apps import plotting

NAME = "fig09_boundary_fraction"


def predicted_escape(eps):
    """Two-phase escape time: s_lin + log 2, with (e^{2 s_lin} - 1)/2 + s_lin = log(1/eps)."""
    return np.array([brentq(lambda s: np.expm1(2 * s) / 2 + s - np.log(1 / e), 0.0, 20.0)
                     for e in eps]) + np.log(2.0)


def predicted_threshold(S):
    """The eps whose predicted escape time is S (0 if S <= log 2)."""
    sl = S - np.log(2.0)
    return np.exp(-(np.expm1(2 * sl) / 2 + sl)) if sl > 0 else np.nan


def main(out_dir, *, rng=None, quick=False):
    rng = np.random.default_rng(rng)
    X = np.array([[-1.0, 0.0], [1.0, 0.0]])
    eps = np.logspace(-15, np.log10(0.3), 30 if quick else 80)
    per = 3 if quick else 10
    heights = rng.uniform(-1.5, 1.5, (eps.size, per))
    starts = np.column_stack([np.repeat(eps, per), heights.ravel()])
    save = np.linspace(0.01, 6.0, 600)
    r = sd.solve(sd.EmpiricalScore(X), starts, (0.0, 6.0), save_at=save, rtol=1e-10, atol=1e-18)
    x1 = np.abs(r.ys[:, :, 0])
    horizons = [0.5, 1.0, 1.5, 2.0]
    frac = {S: (x1[np.searchsorted(save, S)] < 0.5).reshape(eps.size, per).mean(1) for S in horizons}
    escaped = x1 > 0.5
    first = np.where(escaped.any(0), save[np.argmax(escaped, axis=0)], np.nan)
    t_esc = np.nanmean(first.reshape(eps.size, per), axis=1)
    pred = predicted_escape(eps)
    final = sd.voronoi.classify(X, r.y, 0.05).counts()     # at s = 6, |y - x_i| ~ e^{-6}
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.6))
        fig.subplots_adjust(wspace=0.35)
        for k, S in enumerate(horizons):
            axes[0].semilogx(eps, frac[S], color=f"C{k}", label=f"at $s = {S:g}$")
            axes[0].axvline(predicted_threshold(S), color=f"C{k}", lw=0.6, ls=":")
        axes[0].set_xlabel("initial distance $\\varepsilon$ to the bisector")
        axes[0].set_ylabel("fraction within $1/2$ of the boundary")
        axes[0].legend(loc="lower left", fontsize=6)
        axes[0].set_title("dotted: two-phase prediction")
        axes[1].semilogx(eps, t_esc, "o", ms=2.5, color=plotting.END_COLOR, label="measured")
        axes[1].semilogx(eps, pred, "k--", lw=0.8, label="two-phase prediction")
        axes[1].set_xlabel("$\\varepsilon$")
        axes[1].set_ylabel("escape time $s_{\\rm esc}$")
        axes[1].legend(fontsize=6)
        err = float(np.nanmax(np.abs(t_esc - pred)))
        axes[1].set_title(f"max |measured - predicted| = {err:.3f}")
        numbers = {"eps": eps, "fraction_near_boundary": {str(k): v for k, v in frac.items()},
                   "escape_time": t_esc, "predicted_escape_time": pred,
                   "max_abs_escape_error": err, "final_classification_s6": final}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    print(f"{NAME}: every start with eps >= 1e-15 leaves the boundary by s = {np.nanmax(t_esc):.2f}; "
          f"escape time within {err:.3f} of the two-phase prediction; at s = 6: {final}")
    return {"files": [str(p) for p in paths], "max_escape_time": float(np.nanmax(t_esc)),
            "max_abs_escape_error": err, "final": final,
            "fraction_at_horizon": {str(k): v.tolist() for k, v in frac.items()}}
