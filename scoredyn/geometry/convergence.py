"""Convergence checks: collapse rates, integrator orders, and the invariance time s*.

* :func:`fit_collapse` — fit ``|y(s) - x_i| ~ K e^{-rate s}`` per trajectory
  (corollary of Baptista et al.: ``|y(s) - x_i| <= K e^{-s}``, rate exactly 1).
* :func:`empirical_order` — the slope of log error against log step.
* :func:`sufficient_time` — a time ``s*`` after which ``V^delta(x_i)`` is
  invariant, from the inequalities of the proof.
"""
from dataclasses import dataclass

import numpy as np

from .._validation import as_data, as_scalar


@dataclass
class CollapseFit:
    """Least-squares fit of ``log |y(s) - x_i| = log K - rate s``, per trajectory.

    Attributes
    ----------
    rate, K : (Q,) ndarray
        NaN where fewer than 3 points fell in the window.
    s_lo, s_hi : (Q,) ndarray
        The window used.
    r2 : (Q,) ndarray
        Coefficient of determination of the fit in log space.
    n_points : (Q,) int ndarray
    """

    rate: np.ndarray
    K: np.ndarray
    s_lo: np.ndarray
    s_hi: np.ndarray
    r2: np.ndarray
    n_points: np.ndarray


def fit_collapse(s, dist, *, s_min=None, floor=1e-300, ceiling=None):
    """Fit the exponential collapse ``|y(s) - x_i| ~ K e^{-rate s}``.

    Parameters
    ----------
    s : (m,) array_like
        Increasing times.
    dist : (m, Q) or (m,) array_like
        Distances to the limit point at those times.
    s_min : float, optional
        Use only ``s >= s_min`` (e.g. a sufficient time ``s*``).
    floor : float
        Ignore distances at or below this (the resolution of the state:
        ~1e-16 |x_i| without recentring, ~1e-300 with it).
    ceiling : float, optional
        Ignore distances above this (default: a tenth of the largest distance
        of the trajectory, so the crossing phase is excluded).

    Returns
    -------
    CollapseFit
    """
    s = np.asarray(s, dtype=float)
    dist = np.asarray(dist, dtype=float)
    if dist.ndim == 1:
        dist = dist[:, None]
    if s.ndim != 1 or dist.shape[0] != s.size:
        raise ValueError(f"`dist` must have shape ({s.size}, Q) to match `s`; got {dist.shape}.")
    if not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0):
        raise ValueError("`s` must be finite and strictly increasing.")
    if np.any(dist < 0):
        raise ValueError("`dist` must be non-negative (distances; NaN marks a missing value).")
    q = dist.shape[1]
    out = {k: np.full(q, np.nan) for k in ("rate", "K", "s_lo", "s_hi", "r2")}
    npts = np.zeros(q, np.int64)
    for j in range(q):
        dj = dist[:, j]
        if not np.any(np.isfinite(dj)):
            continue
        top = 0.1 * np.max(dj[np.isfinite(dj)]) if ceiling is None else ceiling
        keep = (dj > floor) & (dj <= top) & np.isfinite(dj)
        if s_min is not None:
            keep &= s >= s_min
        npts[j] = keep.sum()
        if npts[j] < 3:
            continue
        x, yv = s[keep], np.log(dj[keep])
        slope, icpt = np.polyfit(x, yv, 1)
        resid = yv - (slope * x + icpt)
        tot = np.sum((yv - yv.mean()) ** 2)
        out["rate"][j], out["K"][j] = -slope, np.exp(icpt)
        out["s_lo"][j], out["s_hi"][j] = x[0], x[-1]
        out["r2"][j] = 1.0 - np.sum(resid**2) / tot if tot > 0 else 1.0
    return CollapseFit(n_points=npts, **out)


def empirical_order(steps, errors, *, floor=0.0, last=4):
    """Slope of ``log error`` against ``log step`` over the last points above ``floor``.

    Parameters
    ----------
    steps, errors : (m,) array_like
        Step sizes (decreasing) and the errors they gave.
    floor : float
        Errors at or below this (the round-off floor) are dropped.
    last : int
        Fit the last ``last`` remaining points (the asymptotic regime).

    Returns
    -------
    float
        NaN if fewer than 3 points remain (or all at one step size).
    """
    h = np.asarray(steps, dtype=float)
    e = np.asarray(errors, dtype=float)
    if h.ndim != 1 or h.shape != e.shape:
        raise ValueError(f"`steps` and `errors` must be 1-D of the same length; got shapes "
                         f"{h.shape} and {e.shape}.")
    if not (np.all(np.isfinite(h)) and np.all(h > 0)):
        raise ValueError("`steps` must be positive and finite.")
    if not (np.all(np.isfinite(e)) and np.all(e >= 0)):
        raise ValueError("`errors` must be non-negative and finite.")
    if isinstance(last, bool) or not isinstance(last, (int, np.integer)) or last < 2:
        raise ValueError(f"`last` must be an integer >= 2; got {last!r}.")
    keep = e > floor
    h, e = h[keep][-last:], e[keep][-last:]
    if e.size < 3 or np.unique(h).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(h), np.log(e), 1)[0])


def sufficient_time(n, radius, delta, separation):
    """A time ``s*`` after which the shrunken Voronoi cells ``V^delta`` are invariant.

    From the inequalities of the proof (Baptista et al. 2025, arXiv:2501.15785, "Voronoi cells are
    invariant"): for ``y`` in ``V^delta(x_i)`` with ``|y|, |x_l| <= R'`` the
    weights of the other sites total at most ``(N - 1) exp(-e^{2s} delta^2 / 2)``
    (since ``|y - x_l|^2 - |y - x_i|^2 >= delta^2``), so ``|D - x_i| <= 2 R' (N - 1)
    exp(-e^{2s} delta^2 / 2)``.  On the face ``|y - x_l| - |y - x_i| = delta`` the
    linear part ``-(y - x_i)`` moves the gap inwards at rate
    ``(|x_l - x_i|^2 - delta^2) / (2 |y - x_l|) >= (Delta^2 - delta^2) / (4 R')``
    (law of cosines), while the perturbation changes it by at most twice
    ``|D - x_i|``.  Invariance holds once the first dominates:

        s* = 1/2 log( (2 / delta^2) log( 16 R'^2 (N - 1) / (Delta^2 - delta^2) ) )

    (``-inf`` when the inner logarithm is <= 0: invariant at all times).

    Parameters
    ----------
    n : int
        Number of data points N (>= 1).
    radius : float
        ``R' = max(|y(0)|, max_i |x_i|)`` (the trajectories stay in this ball).
    delta : float
        Shrinkage, ``0 < delta < separation``.
    separation : float
        Smallest distance between two distinct data points, Delta.

    Returns
    -------
    float
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n!r}.")
    radius = as_scalar(radius, "radius", low=0.0, low_inclusive=False)
    delta = as_scalar(delta, "delta", low=0.0, low_inclusive=False)
    separation = as_scalar(separation, "separation", low=0.0, low_inclusive=False)
    if delta >= separation:
        raise ValueError(f"`delta` must be smaller than `separation` ({separation}); got {delta}.")
    if n == 1:
        return float("-inf")
    # in logs, so that no square over- or underflows for any finite positive input
    inner = (np.log(16.0) + 2.0 * np.log(radius) + np.log(n - 1)
             - np.log(separation - delta) - np.log(separation + delta))
    if inner <= 0:
        return float("-inf")
    return float(0.5 * (np.log(2.0) + np.log(inner) - 2.0 * np.log(delta)))


def min_separation(data):
    """Smallest distance between two distinct rows of ``data`` (O(N^2 d); for N up to ~10^4).

    ``inf`` when there are fewer than two distinct rows.
    """
    X, _ = as_data(data)
    scale = float(np.max(np.abs(X)))
    if scale == 0:
        return float("inf")
    return scale * _min_separation(X / scale)    # scaled rows: no square over- or underflows


def _min_separation(X):
    best = np.inf
    for i in range(X.shape[0] - 1):
        diff = X[i + 1:] - X[i]
        m = np.max(np.abs(diff), axis=1)
        keep = m > 0                          # distinct rows; each difference scaled by its
        m, diff = m[keep], diff[keep]         # largest entry, so that no square underflows
        dd = m * np.sqrt(((diff / m[:, None]) ** 2).sum(1))
        if dd.size:
            best = min(best, float(dd.min()))
    return best
