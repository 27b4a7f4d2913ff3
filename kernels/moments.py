"""Dense weights and the weighted covariance (small problems, small d).

Both work from direct differences alone, with their own reference minimum and
normaliser (three passes over the data per query), so they are exact even
where the streaming pass used GEMM distances.  ``dense_weights`` writes a
(Q, N) matrix; ``weighted_covariance`` costs O(Q N d^2).
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH
from .mathfn import relative_weight


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _sqdist(Y, q, XT, i, a):
    acc = 0.0
    for k in range(XT.shape[0]):
        t = Y[q, k] - a * XT[k, i]
        acc += t * t
    return acc


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _fill_weights(XT, Y, q, a, inv, w):
    """w[i] = softmax_i(-|Y[q] - a x_i|^2 inv), by direct differences."""
    n = XT.shape[1]
    m = np.inf
    for i in range(n):
        w[i] = _sqdist(Y, q, XT, i, a)
        m = min(m, w[i])
    s = 0.0
    for i in range(n):
        w[i] = relative_weight(w[i], m, inv)
        s += w[i]
    for i in range(n):
        w[i] /= s


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def dense_weights(XT, Y, alpha, inv2s2, W):
    """W[q, i] = w_i(y_q), shape (Q, N); rows sum to 1."""
    for q in prange(Y.shape[0]):
        _fill_weights(XT, Y, q, alpha[q], inv2s2[q], W[q])


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def weighted_covariance(XT, Y, alpha, inv2s2, C):
    """C[q] = sum_i w_i (x_i - D)(x_i - D)^T, shape (Q, d, d) (two-pass, no cancellation)."""
    d, n = XT.shape
    for q in prange(Y.shape[0]):
        w = np.empty(n)
        _fill_weights(XT, Y, q, alpha[q], inv2s2[q], w)
        mean = np.zeros(d)
        for i in range(n):
            for k in range(d):
                mean[k] += w[i] * XT[k, i]
        diff = np.empty(d)
        for k in range(d):
            for m in range(d):
                C[q, k, m] = 0.0
        for i in range(n):
            if w[i] == 0.0:
                continue
            for k in range(d):
                diff[k] = XT[k, i] - mean[k]
            for k in range(d):
                wk = w[i] * diff[k]
                for m in range(d):
                    C[q, k, m] += wk * diff[m]
