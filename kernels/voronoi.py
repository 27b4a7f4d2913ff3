"""Voronoi geometry of the data in any dimension, one O(N d) pass per query.

For the nearest site ``x_i`` of ``y`` and every other site ``x_l``
(``Delta = x_l - x_i``, midpoint ``m``):

* signed distance to the bisector, ``h_l = -(y - m).Delta / |Delta|`` (> 0 on
  ``x_i``'s side); the distance to the boundary of the cell is ``min_l h_l``
  (a cell is a convex polytope; redundant half-spaces never lower the min);
* distance gap ``g_l = |y - x_l| - |y - x_i| = 2 |Delta| h_l / (|y - x_l| + |y - x_i|)``;
  ``y`` is in the shrunken cell ``V^delta(x_i)`` iff ``min_l g_l >= delta``.

Both are formed from ``(y - m).Delta`` (no difference of squared distances), in
coordinates centred at ``xc``: ``y - m = u - (Delta / 2 + (x_i - xc))``, exact
when ``xc = x_i`` however small ``u`` is.  Exact duplicates of ``x_i``
(``Delta = 0``) are skipped: coincident sites are one site.
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH
from .scalar import bisector_margins_cpu, top2_insert_cpu


@njit(fastmath=FASTMATH, cache=True)
def nearest_two(XT, u, xc):
    """Nearest and second-nearest site of ``y = u + xc`` (squared distances)."""
    d, n = XT.shape
    i1 = -1
    i2 = -1
    d1 = np.inf
    d2 = np.inf
    for j in range(n):
        acc = 0.0
        for k in range(d):
            t = u[k] - (XT[k, j] - xc[k])
            acc += t * t
        i1, d1, i2, d2 = top2_insert_cpu(acc, j, i1, d1, i2, d2)
    return i1, d1, i2, d2


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _bisector(XT, u, xc, i, l):
    """``((y - m).Delta, |Delta|^2)`` for sites i, l, with ``y - m = u - (Delta/2 + (x_i - xc))``."""
    num = 0.0
    nrm = 0.0
    for k in range(XT.shape[0]):
        dl = XT[k, l] - XT[k, i]
        p = u[k] - (0.5 * dl + (XT[k, i] - xc[k]))
        num += p * dl
        nrm += dl * dl
    return num, nrm


@njit(fastmath=FASTMATH, cache=True)
def cell_margins(XT, u, xc, i, tol):
    """Boundary distance, distance gap and the number of near-tied bisectors.

    Parameters
    ----------
    XT : (d, N) float64
    u, xc : (d,) float64
        ``y = u + xc``.
    i : int
        Index of the nearest site.
    tol : float
        Bisectors with ``h_l <= min h + tol`` are counted as tied.

    Returns
    -------
    bdist : float
        Distance from y to the boundary of V(x_i) (``inf`` if N = 1 or all
        other sites coincide with ``x_i``).
    gap : float
        ``min_l |y - x_l| - |y - x_i|``.
    ntied : int
        Number of sites l whose bisector is within ``tol`` of the minimum.
    """
    d, n = XT.shape
    ri2 = 0.0
    for k in range(d):
        t = u[k] - (XT[k, i] - xc[k])
        ri2 += t * t
    bdist = np.inf
    gap = np.inf
    for l in range(n):
        if l == i:
            continue
        num, nrm = _bisector(XT, u, xc, i, l)
        if nrm == 0.0:
            continue
        h, g = bisector_margins_cpu(num, nrm, ri2)
        bdist = min(bdist, h)
        gap = min(gap, g)
    ntied = 0
    if np.isfinite(bdist):
        for l in range(n):
            if l == i:
                continue
            num, nrm = _bisector(XT, u, xc, i, l)
            if nrm > 0.0 and -num / np.sqrt(nrm) <= bdist + tol:
                ntied += 1
    return bdist, gap, ntied


@njit(parallel=True, cache=True)
def voronoi_pass(XT, Y, tol, i1, r1, i2, r2, bdist, gap, ntied):
    """For every query: two nearest sites, boundary distance, gap, tied count.

    Outputs are (Q,) arrays; ``r1, r2`` are distances (not squared).
    """
    d = XT.shape[0]
    zero = np.zeros(d)
    for q in prange(Y.shape[0]):
        a, da, b, db = nearest_two(XT, Y[q], zero)
        i1[q], r1[q], i2[q], r2[q] = a, np.sqrt(da), b, np.sqrt(db)
        bdist[q], gap[q], ntied[q] = cell_margins(XT, Y[q], zero, a, tol)
