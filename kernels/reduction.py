"""The streaming posterior-mean reduction with direct differences.

For each query ``y_q`` (a row of ``Y``) and data ``x_1..x_N`` (columns of
``XT``) one pass over the data computes, with an online softmax in distance
space (DESIGN.md §1, §6):

* ``dmin[q]  = min_i |y_q - a_q x_i|^2``                         (the reference)
* ``lsum[q]  = sum_i exp(-(|y_q - a_q x_i|^2 - dmin[q]) * inv2s2[q])``   (>= 1)
* ``mean[q]  = sum_i exp(...) x_i / lsum[q]``                      (posterior mean D)
* the two nearest sites ``(i1, d1)``, ``(i2, d2)`` (squared distances).

Squared distances are formed from direct differences ``y - a x`` (never from
``|y|^2 - 2 y.x + |x|^2``), so the logit error is ``O(u |y - a x|^2 / sigma^2)``
(DESIGN.md §4).  Working relative to the running minimum keeps every exponent
``<= 0``: nothing overflows for any sigma, exact ties give equal weights.
Memory: O(TILE_N) scratch per parallel block; no Q x N matrix.
"""
import numpy as np
from numba import njit, prange

from .config import BLOCK_Q, FASTMATH, TILE_N
from .mathfn import relative_weight


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile_distances(XT, t0, nt, Y, q, a, dist):
    """dist[j] = |Y[q] - a XT[:, t0 + j]|^2 for j < nt, by direct differences."""
    d = XT.shape[0]
    for j in range(nt):
        dist[j] = 0.0
    for k in range(d):
        yk = Y[q, k]
        xk = XT[k, t0:t0 + nt]
        for j in range(nt):
            t = yk - a * xk[j]
            dist[j] += t * t


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile_top2(dist, nt, t0, q, i1, d1, i2, d2):
    """Merge a tile's distances into the running two nearest (lowest index wins ties)."""
    for j in range(nt):
        v = dist[j]
        if v < d2[q]:
            if v < d1[q]:
                i2[q] = i1[q]
                d2[q] = d1[q]
                i1[q] = t0 + j
                d1[q] = v
            else:
                i2[q] = t0 + j
                d2[q] = v


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def reduce_direct(XT, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2, d2):
    """One streaming pass: posterior mean, log-normaliser pieces and two nearest.

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
    d, n = XT.shape
    nq = Y.shape[0]
    nblocks = (nq + BLOCK_Q - 1) // BLOCK_Q
    for b in prange(nblocks):
        q0 = b * BLOCK_Q
        q1 = min(q0 + BLOCK_Q, nq)
        dist = np.empty(TILE_N)
        for q in range(q0, q1):
            dmin[q] = np.inf
            lsum[q] = 0.0
            i1[q] = -1
            i2[q] = -1
            d1[q] = np.inf
            d2[q] = np.inf
            for k in range(d):
                mean[q, k] = 0.0
        for t0 in range(0, n, TILE_N):
            nt = min(TILE_N, n - t0)
            for q in range(q0, q1):
                a = alpha[q]
                inv = inv2s2[q]
                _tile_distances(XT, t0, nt, Y, q, a, dist)
                tmin = np.inf
                for j in range(nt):
                    tmin = min(tmin, dist[j])
                m = dmin[q]
                if tmin < m:
                    if lsum[q] > 0.0:
                        f = relative_weight(m, tmin, inv)
                        lsum[q] *= f
                        for k in range(d):
                            mean[q, k] *= f
                    m = tmin
                    dmin[q] = m
                s = 0.0
                for j in range(nt):
                    e = relative_weight(dist[j], m, inv)
                    dist[j] = e
                    s += e
                lsum[q] += s
                for k in range(d):
                    xk = XT[k, t0:t0 + nt]
                    acc = 0.0
                    for j in range(nt):
                        acc += dist[j] * xk[j]
                    mean[q, k] += acc
                if want_top2 and tmin < d2[q]:
                    _tile_distances(XT, t0, nt, Y, q, a, dist)
                    _tile_top2(dist, nt, t0, q, i1, d1, i2, d2)
        for q in range(q0, q1):
            inv_l = 1.0 / lsum[q]
            for k in range(d):
                mean[q, k] *= inv_l
