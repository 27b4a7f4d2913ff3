"""Exact k nearest neighbours, streaming over the data (O((Q + N) d + Q k) memory).

* :func:`knn_direct` — direct differences, one sorted top-k buffer per query
  (insertion; a tile is scanned only against the current k-th distance).
* :func:`knn_gemm_tile` — the GEMM path's per-tile update: squared distances
  from BLAS inner products with the rigorous bound ``E = gamma (|y| + |x|)^2``
  (see :mod:`.gemm_tile`); every entry whose interval ``[Dt - E, Dt + E]`` can
  reach the current k-th smallest upper bound is recomputed by direct
  differences before it enters the buffer, so the reported neighbours and
  distances are exact.

Ties keep the lower index first.
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH, TILE_N
from .reduction import _tile_distances

_CHUNK = 16


@njit(cache=True, inline="always")
def _insert(kd, ki, v, j):
    """Insert (v, j) into the ascending buffer kd/ki if v beats its last entry."""
    k = kd.shape[0]
    if not v < kd[k - 1]:
        return
    p = k - 1
    while p > 0 and kd[p - 1] > v:
        kd[p] = kd[p - 1]
        ki[p] = ki[p - 1]
        p -= 1
    kd[p] = v
    ki[p] = j


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def knn_direct(XT, Y, kd, ki):
    """k nearest data points of every query.

    Parameters
    ----------
    XT : (d, N) float64
    Y : (Q, d) float64
    kd : (Q, k) float64, out
        Squared distances, ascending (``inf`` past N).
    ki : (Q, k) int64, out
        Indices (``-1`` past N).
    """
    d, n = XT.shape
    nq = Y.shape[0]
    zero = np.zeros(d)
    nchunks = (nq + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        dist = np.empty(TILE_N)
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, nq)):
            kd[q, :] = np.inf
            ki[q, :] = -1
            for t0 in range(0, n, TILE_N):
                nt = min(TILE_N, n - t0)
                _tile_distances(XT, t0, nt, Y[q], 1.0, zero, dist)
                for j in range(nt):
                    if dist[j] < kd[q, -1]:
                        _insert(kd[q], ki[q], dist[j], t0 + j)


@njit(fastmath=FASTMATH, cache=True, nogil=True)
def knn_gemm_tile(S, Y, yn2, X, xn2, j0, gamma, rho, kd, ki, hi_buf):
    """Merge one BLAS tile ``S = Y X^T`` into the exact top-k buffers (serial, nogil).

    Parameters
    ----------
    S : (qb, nt) float64
    Y : (qb, d) float64
    yn2 : (qb,) float64
    X : (nt, d) float64
    xn2 : (nt,) float64
    j0 : int
        Global index of the tile's first point.
    gamma, rho : float
        Rounding bounds of the GEMM and of direct differences.
    kd, ki : (qb, k) in/out
        Exact ascending squared distances and indices.
    hi_buf : (k,) float64, scratch
    """
    qb, nt = S.shape
    k = kd.shape[1]
    for q in range(qb):
        ny = np.sqrt(yn2[q])
        # k-th smallest upper bound over the buffer and the tile
        for p in range(k):
            hi_buf[p] = kd[q, p] * (1.0 + rho)
        for j in range(nt):
            dt = yn2[q] - 2.0 * S[q, j] + xn2[j]
            r = ny + np.sqrt(xn2[j])
            hi = dt + gamma * r * r
            S[q, j] = dt
            if hi < hi_buf[k - 1]:
                p = k - 1
                while p > 0 and hi_buf[p - 1] > hi:
                    hi_buf[p] = hi_buf[p - 1]
                    p -= 1
                hi_buf[p] = hi
        thr = hi_buf[k - 1]
        for j in range(nt):
            r = ny + np.sqrt(xn2[j])
            if S[q, j] - gamma * r * r <= thr:
                acc = 0.0
                for m in range(Y.shape[1]):
                    t = Y[q, m] - X[j, m]
                    acc += t * t
                _insert(kd[q], ki[q], acc, j0 + j)
