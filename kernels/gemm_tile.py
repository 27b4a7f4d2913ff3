"""Per-tile update of the GEMM path: BLAS speed, direct-difference accuracy.

The driver (:mod:`scoredyn._host.reduce`) computes ``S = Y_b X_t^T`` for a block of
queries and a tile of data with BLAS.  This kernel turns ``S`` into squared
distances ``Dt = |y|^2 - 2 a S + a^2 |x|^2`` and bounds their rounding error
rigorously: ``|Dt - D| <= E = gamma (|y| + a|x|)^2``, ``gamma = gamma_{d+4}``
(Higham, Accuracy and Stability, Lemma 3.1 with Cauchy-Schwarz).  An entry is
recomputed with direct differences (error ``<= rho (D + 2 a |x| sqrt D)``,
``rho = gamma_{d+2}``) when

* its weight is not negligible (``Dt - E`` is within ``2 sigma^2 M`` of the
  smallest upper bound so far; ``M = 40 + log N`` so that everything
  neglected weighs ``< e^-40`` in total) **and** ``E`` exceeds 4x the direct
  bound plus ``2 sigma^2 tau`` (``tau`` = accepted logit error), or
* it may be one of the two nearest sites (``Dt - E`` below the second
  smallest upper bound), so the reported neighbours are exact.

Near a Voronoi boundary at tiny sigma only the few competing sites are
recomputed; at moderate sigma ``E / (2 sigma^2)`` is already below ``tau``
and nothing is.  The result: logits are never worse than ``4x`` the
direct-difference bound or ``tau``, which the GEMM expansion alone misses by
orders of magnitude (see "Numerical traps" in :mod:`scoredyn.kernels`).
"""
import numpy as np
from numba import njit

from .config import FASTMATH, wide_vectors
from .mathfn import relative_weight
from .scalar import top2_insert_cpu


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _direct_sqdist(Y, q, X, j, a):
    acc = 0.0
    for k in range(Y.shape[1]):
        t = Y[q, k] - a * X[j, k]
        acc += t * t
    return acc


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _direct_error(dt, a, nx, rho):
    """Error bound ``rho (D + 2 a |x| sqrt D)`` of a squared distance ``dt`` formed by
    direct differences (module docstring)."""
    return rho * (dt + 2.0 * a * nx * np.sqrt(dt))


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _recompute_floor(dt, a, nx, rho, tau, ts2):
    """The largest GEMM error bound an entry at distance ``dt`` may keep without
    recomputation: 4x the direct-difference bound plus ``2 sigma^2 tau``."""
    return 4.0 * (_direct_error(dt, a, nx, rho) + tau * ts2)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def row_min(S, q, sign):
    """``min_j sign S[q, j]`` (``sign`` = -1: minus the row's maximum) with eight
    independent accumulators (a single running minimum is a chain of dependent
    comparisons, about 4x slower)."""
    n = S.shape[1]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.inf
    j = 0
    while j + 8 <= n:
        m0 = min(m0, sign * S[q, j])
        m1 = min(m1, sign * S[q, j + 1])
        m2 = min(m2, sign * S[q, j + 2])
        m3 = min(m3, sign * S[q, j + 3])
        m4 = min(m4, sign * S[q, j + 4])
        m5 = min(m5, sign * S[q, j + 5])
        m6 = min(m6, sign * S[q, j + 6])
        m7 = min(m7, sign * S[q, j + 7])
        j += 8
    while j < n:
        m0 = min(m0, sign * S[q, j])
        j += 1
    return min(min(min(m0, m1), min(m2, m3)), min(min(m4, m5), min(m6, m7)))


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _new_reference(q, tmin, terr, inv, dmin, derr, lsum):
    """Make the tile's smallest distance ``tmin`` (error bound ``terr``) row ``q``'s reference
    when it is below ``dmin``, rescaling the running sum of weights; returns the factor for
    the running weighted sum of the data (1 when the reference stays)."""
    f = 1.0
    if tmin < dmin[q]:
        if lsum[q] > 0.0:
            f = relative_weight(dmin[q], tmin, inv)
            lsum[q] *= f
        dmin[q] = tmin
        derr[q] = terr
    return f


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _row_weights(S, q, inv, dmin, lsum):
    """Distances -> weights relative to the reference ``dmin[q]`` in row ``q`` of ``S``, in
    place (``inf`` -> 0), their sum added to ``lsum[q]``; a loop that vectorises."""
    m = dmin[q]
    s = 0.0
    for j in range(S.shape[1]):
        w = relative_weight(S[q, j], m, inv)
        S[q, j] = w
        s += w
    lsum[q] += s


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile_row_certified(S, q, tmin, emax, inv, dmin, derr, lsum):
    """Row ``q`` of :func:`gemm_tile_update` when no entry needs recomputation.

    ``S[q]`` holds the distances, ``tmin`` their minimum, and ``emax`` bounds every
    entry's error.  ``tmin`` becomes the new reference when it is below ``dmin`` (its
    error recorded as ``emax``: later tiles only use it as an upper bound).  Then every
    relative weight (:func:`_row_weights`).  No entry is neglected: each distance is
    already as accurate as a recomputed one would be certified to be, so each weight is
    computed as it is (those more than ~708 below the best underflow to 0 by themselves).
    Returns the factor for the running weighted sum.
    """
    f = _new_reference(q, tmin, emax, inv, dmin, derr, lsum)
    _row_weights(S, q, inv, dmin, lsum)
    return f


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile_row_general(S, q, Y, X, ny, a, xn, inv, ts2, gamma, rho, tau, mneg, dmin, derr,
                      lsum):
    """Row ``q`` of :func:`gemm_tile_update` in general, without the two nearest sites.

    The passes of the two-nearest case, arranged so that the ones over every entry
    vectorise: the smallest upper bound (a minimum), then the neglect test, which marks
    neglected entries ``inf``; the rest (at small sigma a handful) are visited one by one
    for the recomputation test and the reference: the same tests on each entry, taken in
    the same order.  Returns the factor for the running weighted sum.
    """
    nt = S.shape[1]
    hi1 = np.inf
    for j in range(nt):
        r = ny + a * xn[j]
        hi1 = min(hi1, S[q, j] + gamma * r * r)
    ref_hi = min(dmin[q] + derr[q], hi1)
    cut = ts2 * mneg
    for j in range(nt):
        r = ny + a * xn[j]
        dt = S[q, j]
        S[q, j] = np.inf if (dt - gamma * r * r) - ref_hi > cut else dt
    tmin = np.inf
    terr = 0.0
    for j in range(nt):
        dt = S[q, j]
        if dt == np.inf:
            continue
        nx = xn[j]
        r = ny + a * nx
        e = gamma * r * r
        dpos = max(dt, 0.0)
        if e > _recompute_floor(dpos, a, nx, rho, tau, ts2):
            dt = _direct_sqdist(Y, q, X, j, a)
            e = _direct_error(dt, a, nx, rho)
            S[q, j] = dt
        if dt < tmin:
            tmin = dt
            terr = e
    f = _new_reference(q, tmin, terr, inv, dmin, derr, lsum)
    _row_weights(S, q, inv, dmin, lsum)
    return f


@njit(fastmath=FASTMATH, cache=True, nogil=True)
def gemm_tile_update(S, Y, yn2, X, xn2, xn, j0, alpha, inv2s2, twosig2,
                     gamma, rho, tau, mneg, want_top2,
                     dmin, derr, lsum, fac, i1, d1, i2, d2):
    """Turn a BLAS tile of inner products into relative weights, in place.

    Serial and ``nogil``: the driver runs one instance per worker thread, each
    with single-threaded BLAS (OpenBLAS threads spin after a call and starve
    a parallel kernel that follows it).

    Parameters
    ----------
    S : (qb, nt) float64, in/out
        In: ``Y @ X.T``.  Out: ``exp(-(D - dmin) / (2 sigma^2))`` per entry
        (0 for neglected entries), relative to the updated ``dmin``.
    Y : (qb, d) float64
        The query block.
    yn2 : (qb,) float64
        ``|y|^2`` (computed in float64).
    X : (nt, d) float64
        The data tile.
    xn2, xn : (nt,) float64
        ``|x|^2`` and ``|x|``.
    j0 : int
        Global index of the tile's first point.
    alpha, inv2s2, twosig2 : (qb,) float64
        ``a``, ``1 / (2 sigma^2)`` and ``2 sigma^2`` per query.
    gamma, rho, tau, mneg : float
        Error-bound constants (module docstring).
    want_top2 : bool
    dmin, derr, lsum : (qb,) float64, in/out
        Running reference distance, its error bound, and the running sum of
        relative weights.
    fac : (qb,) float64, out
        Factor by which the running weighted sum of the data must be scaled
        before this tile's contribution is added.
    i1, d1, i2, d2 : (qb,) in/out
        Running two nearest (exact squared distances).
    """
    wide_vectors()
    qb, nt = S.shape
    xmax = 0.0
    xmin = np.inf
    for j in range(nt):
        xmax = max(xmax, xn[j])
        xmin = min(xmin, xn[j])
    for q in range(qb):
        a = alpha[q]
        inv = inv2s2[q]
        ts2 = twosig2[q]
        ny = np.sqrt(yn2[q])
        # the distances (a loop that vectorises) and their minimum
        for j in range(nt):
            S[q, j] = yn2[q] - 2.0 * a * S[q, j] + a * a * xn2[j]
        tmin = row_min(S, q, 1.0)
        # no entry of the row needs recomputation when the largest error bound is below
        # the smallest recomputation floor (the floor grows with the distance, which is
        # at least tmin); then, unless neighbours are asked for, the row is finished in
        # loops without branches
        rmax = ny + a * xmax
        t0 = max(tmin, 0.0)
        floor_lo = _recompute_floor(t0, a, xmin, rho, tau, ts2)
        emax = gamma * rmax * rmax
        if not want_top2 and emax <= floor_lo:
            fac[q] = _tile_row_certified(S, q, tmin, emax, inv, dmin, derr, lsum)
            continue
        if not want_top2:
            fac[q] = _tile_row_general(S, q, Y, X, ny, a, xn, inv, ts2, gamma, rho, tau, mneg,
                                       dmin, derr, lsum)
            continue
        # pass 1: the two smallest upper bounds of the tile
        hi1 = np.inf
        hi2 = np.inf
        for j in range(nt):
            r = ny + a * xn[j]
            hi = S[q, j] + gamma * r * r
            if hi < hi2:
                if hi < hi1:
                    hi2 = hi1
                    hi1 = hi
                else:
                    hi2 = hi
        ref_hi = min(dmin[q] + derr[q], hi1)
        thr2 = min(d2[q] * (1.0 + rho), hi2)
        # pass 2: neglect, keep, or recompute exactly
        tmin = np.inf
        terr = 0.0
        for j in range(nt):
            dt = S[q, j]
            nx = xn[j]
            r = ny + a * nx
            e = gamma * r * r
            lo = dt - e
            negl = (lo - ref_hi) > ts2 * mneg
            dpos = max(dt, 0.0)
            floor = _recompute_floor(dpos, a, nx, rho, tau, ts2)
            top = want_top2 and lo <= thr2
            if top or ((not negl) and e > floor):
                dt = _direct_sqdist(Y, q, X, j, a)
                e = _direct_error(dt, a, nx, rho)
                S[q, j] = dt
                if top:
                    i1[q], d1[q], i2[q], d2[q] = top2_insert_cpu(dt, j0 + j, i1[q], d1[q],
                                                                 i2[q], d2[q])
            elif negl:
                S[q, j] = np.inf
                continue
            if dt < tmin:
                tmin = dt
                terr = e
        fac[q] = _new_reference(q, tmin, terr, inv, dmin, derr, lsum)
        # pass 3: relative weights
        _row_weights(S, q, inv, dmin, lsum)
