"""Exact k nearest neighbours on the direct or the GEMM kernel (streaming, O((Q + N) d + Q k))."""
import numpy as np

from .reduce import (DIRECT_MAX_D, GEMM_TILE_N, _gamma, far_geometry, query_blocks,
                     relative_distances, run_gemm_pieces)
from ..kernels.knn import knn_direct, knn_gemm_tile


def k_nearest(prep, Y, k, method="auto"):
    """Indices (Q, k) and distances (Q, k) of the k nearest data points, ascending.

    Entries past N are ``-1`` / ``inf``.  Exact on both paths (the GEMM path
    recomputes every candidate by direct differences).
    """
    ki, kd = k_nearest_squared(prep, Y, k, method)
    return ki, np.sqrt(kd)


def k_nearest_squared(prep, Y, k, method="auto"):
    """As :func:`k_nearest`, with squared distances (merged exactly across data shards by
    :func:`merge_nearest`: every squared distance is formed by direct differences)."""
    q, d = Y.shape
    if method == "auto":
        method = "direct" if d <= DIRECT_MAX_D else "gemm"
    kd = np.empty((q, k))
    ki = np.empty((q, k), np.int64)
    if method == "direct":
        knn_direct(prep.XT, Y, kd, ki)
    elif method == "gemm":
        gamma, rho = _gamma(d + 4), _gamma(d + 2)
        yn2 = np.einsum("ij,ij->i", Y, Y)

        def piece(q0, q1, j_lo, j_hi):
            kdp = np.full((q1 - q0, k), np.inf)
            kip = np.full((q1 - q0, k), -1, np.int64)
            hi_buf = np.empty(k)
            Yb = Y[q0:q1]
            for j0 in range(j_lo, j_hi, GEMM_TILE_N):
                j1 = min(j0 + GEMM_TILE_N, j_hi)
                Xt = prep.X[j0:j1]
                S = Yb @ Xt.T
                knn_gemm_tile(S, Yb, yn2[q0:q1], Xt, prep.xn2[j0:j1], j0, gamma, rho, kdp, kip,
                              hi_buf)
            return kdp, kip

        blocks, results = run_gemm_pieces(q, prep.n, piece)
        for (q0, q1), pieces in zip(blocks, results):
            cd = np.concatenate([p[0] for p in pieces], axis=1)
            ci = np.concatenate([p[1] for p in pieces], axis=1)
            order = _order(cd, ci, k)
            kd[q0:q1] = np.take_along_axis(cd, order, 1)
            ki[q0:q1] = np.take_along_axis(ci, order, 1)
    else:
        raise ValueError(f"`method` must be one of 'auto', 'direct', 'gemm'; got {method!r}.")
    if k > 0 and prep.n > 1 and q > 0:
        # far from the data direct differences cannot order the distances (at |y| ~ 1e16 |x|
        # they all round alike and the data's order came out): the relative form does
        far = np.flatnonzero(far_geometry(np.sqrt(np.einsum("qk,qk->q", Y, Y)), prep.xn_max,
                                          kd[:, 0]))
        if far.size:
            ki[far], kd[far] = _relative_nearest(prep, Y[far], k)
    return ki, kd


def _relative_nearest(prep, Y, k):
    """:func:`k_nearest_squared` of far queries, ordered by
    :func:`scoredyn._host.reduce.relative_distances` (ties by lower index); the squared
    distances themselves by direct differences."""
    q = Y.shape[0]
    kd = np.full((q, k), np.inf)
    ki = np.full((q, k), -1, np.int64)
    kk = min(k, prep.n)
    for b in query_blocks(q, prep.n, 1):
        r = relative_distances(prep, Y[b], 1.0)
        order = np.argsort(r, axis=1, kind="stable")[:, :kk]
        diff = Y[b, None, :] - prep.X[order]
        ki[b, :kk] = order
        kd[b, :kk] = np.einsum("qkj,qkj->qk", diff, diff)
    return ki, kd


def merge_nearest(parts, k):
    """The k nearest among candidate lists ``[(index (Q, k_j), squared distance (Q, k_j)), ...]``,
    ties by lower index, as a single pass over all the data orders them."""
    cd = np.concatenate([p[1] for p in parts], axis=1)
    ci = np.concatenate([p[0] for p in parts], axis=1)
    order = _order(cd, ci, k)
    return np.take_along_axis(ci, order, 1), np.take_along_axis(cd, order, 1)


def _order(cd, ci, k):
    """Per row: the k smallest distances, ties by lower index (absent entries last)."""
    key_i = np.where(ci < 0, np.iinfo(np.int64).max, ci)
    out = np.empty((cd.shape[0], k), np.int64)
    for r in range(cd.shape[0]):
        out[r] = np.lexsort((key_i[r], cd[r]))[:k]
    return out
