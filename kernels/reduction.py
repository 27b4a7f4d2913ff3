"""The streaming posterior-mean reduction with direct differences.

For each query ``y_q`` (a row of ``Y``) and data ``x_1..x_N`` (columns of
``XT``) one pass over the data computes, with an online softmax in distance
space:

* ``dmin[q]  = min_i |y_q - a_q x_i|^2``                         (the reference)
* ``lsum[q]  = sum_i exp(-(|y_q - a_q x_i|^2 - dmin[q]) * inv2s2[q])``   (>= 1)
* ``mean[q]  = sum_i exp(...) x_i / lsum[q]``                      (posterior mean D)
* the two nearest sites ``(i1, d1)``, ``(i2, d2)`` (squared distances).

Squared distances are formed from direct differences ``y - a x`` (never from
``|y|^2 - 2 y.x + |x|^2``), so the logit error is ``O(u |y - a x|^2 / sigma^2)``
(see "Numerical traps" in :mod:`scoredyn.kernels`).  Working relative to the running minimum keeps every exponent
``<= 0``: nothing overflows for any sigma, exact ties give equal weights.
Memory: O(TILE_N) scratch per parallel block; no Q x N matrix.
"""
import numpy as np
from numba import njit, prange

from . import softmax
from .config import FASTMATH, TILE_N, wide_vectors
from .mathfn import relative_weight
from .scalar import top2_insert_cpu
from .target import specialise
from .voronoi import ndim

#: queries per parallel work item of :func:`reduce_direct`
_CHUNK = 32


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile_distances(XT, t0, nt, y, a, xc, dist):
    """dist[j] = |y - (a XT[:, t0 + j] - xc)|^2 for j < nt, by direct differences."""
    d = XT.shape[0]
    for j in range(nt):
        dist[j] = 0.0
    for k in range(d):
        yk = y[k]
        ck = xc[k]
        xk = XT[k, t0:t0 + nt]
        for j in range(nt):
            t = yk - (a * xk[j] - ck)
            dist[j] += t * t


@njit(fastmath=FASTMATH, inline="always")
def _weighted_sum(w, nt, XT, j0, k, c):
    """``sum_j w[j] (XT[k, j0 + j] - c)``: a contiguous row, so the loop vectorises."""
    xk = XT[k, j0:j0 + nt]
    a = 0.0
    for j in range(nt):
        a += w[j] * (xk[j] - c)
    return a


#: the online softmax (:mod:`softmax`) on the CPU: data transposed (d, N), so that a tile's
#: loops run over contiguous points and vectorise, with the kernels' vectorisable exp
fold = njit(fastmath=FASTMATH, cache=True, inline="always", error_model="numpy")(
    specialise(softmax.fold, dict(top2_insert=top2_insert_cpu, rescale=relative_weight,
                                  weight=relative_weight, weighted_sum=_weighted_sum, ndim=ndim),
               "fold_cpu", softmax.TARGET_NAMES))


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def posterior_one(XT, y, a, xc, inv, want_top2, mean, dist):
    """Streaming posterior reduction for one query, in coordinates centred at ``xc``.

    With ``u = y`` measured from ``xc`` (``xc = 0``: plain coordinates), the
    weights are ``w_i ∝ exp(-|u - (a x_i - xc)|^2 inv)`` and ``mean`` receives
    ``sum_i w_i (x_i - xc)``.  Centring on a data point ``x_c`` (with ``a = 1``)
    keeps ``|u| ~ e^{-s}`` and ``D - x_c`` to full relative precision long
    after ``|y - x_c|`` drops below the float64 resolution of ``y``.

    Parameters
    ----------
    XT : (d, N) float64
    y, xc : (d,) float64
    a, inv : float
        Signal scale and ``1 / (2 sigma^2)`` (0 and +inf allowed).
    want_top2 : bool
    mean : (d,) float64, out
    dist : (TILE_N,) float64, scratch

    Returns
    -------
    dmin, lsum : float
        ``logsumexp_i(l_i) = -dmin inv + log(lsum)``.
    i1, d1, i2, d2 : int, float, int, float
        Two nearest sites and their squared distances.
    """
    wide_vectors()
    d, n = XT.shape
    dmin = np.inf
    lsum = 0.0
    i1 = -1
    i2 = -1
    d1 = np.inf
    d2 = np.inf
    for k in range(d):
        mean[k] = 0.0
    for t0 in range(0, n, TILE_N):
        nt = min(TILE_N, n - t0)
        _tile_distances(XT, t0, nt, y, a, xc, dist)
        dmin, lsum, i1, d1, i2, d2 = fold(dist, nt, t0, XT, t0, xc, inv, want_top2, mean,
                                          dmin, lsum, i1, d1, i2, d2)
    inv_l = 1.0 / lsum
    for k in range(d):
        mean[k] *= inv_l
    return dmin, lsum, i1, d1, i2, d2


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def reduce_direct(XT, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2, d2):
    """One streaming pass per query: posterior mean, log-normaliser pieces, two nearest.

    Parameters
    ----------
    XT : (d, N) float64, C-ordered
        The data, transposed (one row per coordinate, so tiles vectorise over points).
    Y : (Q, d) float64
        Query points.
    alpha, inv2s2 : (Q,) float64
        Signal scale ``a`` and ``1 / (2 sigma^2)`` per query (``inv2s2`` may be
        0 or +inf: the limits sigma -> inf and sigma -> 0 are exact).
    want_top2 : bool
        Track the two nearest sites (cheap: a tile is scanned only when its
        minimum beats the current second-nearest).
    mean : (Q, d) float64, out
    dmin, lsum : (Q,) float64, out
        ``log sum_i exp(l_i) = -dmin * inv2s2 + log(lsum)`` with
        ``l_i = -|y - a x_i|^2 inv2s2``.
    i1, i2 : (Q,) int64, out
    d1, d2 : (Q,) float64, out
        Nearest and second-nearest index and squared distance to ``a x_i``
        (``i2 = -1``, ``d2 = inf`` when N = 1).
    """
    d = XT.shape[0]
    nq = Y.shape[0]
    zero = np.zeros(d)
    nchunks = (nq + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        dist = np.empty(TILE_N)          # scratch allocated once per chunk, not per query
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, nq)):
            dmin[q], lsum[q], i1[q], d1[q], i2[q], d2[q] = posterior_one(
                XT, Y[q], alpha[q], zero, inv2s2[q], want_top2, mean[q], dist)
