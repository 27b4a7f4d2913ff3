"""Dispatch of the posterior-mean reduction to the direct or the GEMM kernel.

Both paths stream over the data with an online softmax and keep memory at
O((Q + N) d) plus one cache-sized tile; they differ in how squared distances
are formed (see :mod:`scoredyn.kernels.reduction` and
:mod:`scoredyn.kernels.gemm_tile`).  The result is exact in the sense of
:mod:`scoredyn.kernels`, "Numerical traps" on both paths.
"""
import functools
import os
import threading
from dataclasses import dataclass

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from .._validation import kernel_array
from ..coldstart import compiling
from ..kernels.gemm_tile import gemm_tile_update
from ..kernels.launch import thread_pool
from ..kernels.reduction import reduce_direct

#: dimensions up to this use direct differences; above it, GEMM + recompute.
DIRECT_MAX_D = 24
#: GEMM path tiling: queries per block and data points per tile (a 4 MiB tile).
#: Work items (query block x data chunk) run on threads, each with one BLAS thread.
GEMM_BLOCK_Q = 256
GEMM_TILE_N = 2048
#: accepted absolute logit error on the GEMM path (weights to ~1e-12 relative).
GEMM_LOGIT_TOL = 1e-12
_U64 = 2.0 ** -53


def neglect_margin(n):
    """``M = 40 + log n``: the GEMM paths drop an entry whose logit is provably more than ``M``
    below the best one, so that all ``n`` dropped entries together weigh less than ``e^-40``."""
    return 40.0 + np.log(n)


def _gamma(n, u=_U64):
    """Higham's gamma_n = n u / (1 - n u); ``u`` the unit roundoff (float64's by default)."""
    return n * u / (1.0 - n * u)


class PreparedData:
    """The data in the layouts the kernels want, computed once per field.

    Parameters
    ----------
    data : (N, d) float64, C-ordered
    """

    def __init__(self, data):
        self.X = kernel_array(data)
        self.XT = kernel_array(np.ascontiguousarray(data.T))
        self.xn2 = np.einsum("ij,ij->i", data, data)
        self.xn = np.sqrt(self.xn2)
        self.xn_max = float(np.max(self.xn, initial=0.0))
        self.n, self.d = data.shape
        #: the largest coordinate magnitude (for the working length scale)
        self.magnitude = float(np.max(np.abs(data))) if data.size else 0.0


@dataclass
class Reduction:
    """Result of one streaming pass over the data.

    Attributes
    ----------
    mean : (Q, d) float64
        Posterior mean ``D = sum_i w_i x_i``.
    dmin, lsum, inv2s2 : (Q,) float64
        ``log sum_i exp(-|y - a x_i|^2 / (2 sigma^2)) = -dmin * inv2s2 + log(lsum)``.
    i1, i2 : (Q,) int64 or None
    d1, d2 : (Q,) float64 or None
        Two nearest sites to ``y / a`` in the metric ``|y - a x|^2`` (if requested).
    """

    mean: np.ndarray
    dmin: np.ndarray
    lsum: np.ndarray
    inv2s2: np.ndarray
    i1: np.ndarray | None = None
    d1: np.ndarray | None = None
    i2: np.ndarray | None = None
    d2: np.ndarray | None = None

    def log_normalizer(self):
        """``logsumexp_i(-|y - a x_i|^2 / (2 sigma^2))``, shape (Q,), overflow-free.

        ``-inf`` only when the true value is below the float64 range.
        """
        shift = np.zeros_like(self.dmin)
        pos = self.dmin > 0
        shift[pos] = -self.dmin[pos] * self.inv2s2[pos]
        return shift + np.log(self.lsum)


def inverse_two_sigma2(sigma):
    """``1 / (2 sigma^2)``, ``inf`` where that overflows: below sigma ~ 1e-154, and where the
    queries' length scale (:func:`scoredyn._validation.length_scale`, for queries near
    1e300) has taken a tiny sigma to 0 — the exact limit in both cases, the nearest site's
    weight 1."""
    with np.errstate(over="ignore", divide="ignore"):
        return 0.5 / sigma / sigma


def posterior_reduce(prep, Y, alpha, sigma, *, want_top2=False, method="auto"):
    """Posterior mean, log-normaliser and two nearest sites for every query.

    Parameters
    ----------
    prep : PreparedData
    Y : (Q, d) float64, C-ordered
    alpha, sigma : (Q,) float64
        Positive and finite (validated by the caller).
    want_top2 : bool
    method : {"auto", "direct", "gemm"}
        "auto" picks direct differences for ``d <= DIRECT_MAX_D``.

    Returns
    -------
    Reduction
    """
    q = Y.shape[0]
    d = prep.d
    inv2s2 = inverse_two_sigma2(sigma)
    if method == "auto":
        method = "direct" if d <= DIRECT_MAX_D else "gemm"
    i1 = np.empty(q, np.int64)
    i2 = np.empty(q, np.int64)
    d1 = np.empty(q)
    d2 = np.empty(q)
    dmin = np.empty(q)
    lsum = np.empty(q)
    if method == "direct":
        mean = np.empty((q, d))
        with compiling("posterior mean", reduce_direct):
            reduce_direct(prep.XT, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2,
                          d2)
    elif method == "gemm":
        with compiling("posterior mean (large d)", gemm_tile_update):
            mean = _reduce_gemm(prep, Y, alpha, sigma, inv2s2, want_top2, dmin, lsum, i1, d1,
                                i2, d2)
    else:
        raise ValueError(f"`method` must be one of 'auto', 'direct', 'gemm'; got {method!r}.")
    red = Reduction(mean, dmin, lsum, inv2s2)
    if want_top2:
        red.i1, red.d1, red.i2, red.d2 = i1, d1, i2, d2
    return red


#: a query's logits through direct differences are kept while their error bound is below
#: this (its weights then within ~1e-8 relatively); beyond it, far from the data, they come
#: from relative distances (:func:`far_rows`)
FAR_LOGIT_TOL = 1e-8


def far_rows(prep, Y, alpha, inv2s2, dmin):
    """Queries too far from the data for direct differences to resolve their softmax.

    Every path forms ``|y - a x_i|^2`` from differences, within ``gamma_{d+3}`` of itself
    relatively; the logits ``-|y - a x_i|^2 / (2 sigma^2)`` that carry weight are then
    within ``E = gamma_{d+3} dmin / (2 sigma^2)``.  Far from the data (``|y| >> |a x|``)
    that bound is large where the weights are decided by distances differing by
    ``2 |y| |a (x_i - x_k)|``, far below ``|y|^2``: at ``|y| = 1e16`` (data of size 1)
    every distance rounds to the same number and the mean of all points came out, not the
    nearest one.  :func:`relative_reduction` takes a row when ``E`` exceeds
    :data:`FAR_LOGIT_TOL` and its own bound, ``gamma_{d+3} 4 A (|y| + A) / (2 sigma^2)``
    (``A = a max_i |x_i|``), is below ``E / 4``: ``dmin > 16 A (|y| + A)``, a condition on
    the geometry alone, so rows near the data never take it.

    Parameters
    ----------
    prep : PreparedData
    Y : (Q, d) float64
    alpha, inv2s2, dmin : (Q,) float64

    Returns
    -------
    (F,) int64
        The rows.
    """
    if prep.n < 2:
        return np.empty(0, np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        rows = np.flatnonzero(_gamma(prep.d + 3) * dmin * inv2s2 > FAR_LOGIT_TOL)
    if rows.size == 0:
        return rows
    ny = np.sqrt(np.einsum("qk,qk->q", Y[rows], Y[rows]))
    return rows[far_geometry(ny, alpha[rows] * prep.xn_max, dmin[rows])]


def far_geometry(ny, A, dmin):
    """``dmin > 16 A (|y| + A)``: a query of norm ``ny`` at squared distance ``dmin`` from the
    nearest of points of norm <= ``A`` is where the relative distances'
    (:func:`relative_distances`) rounding bound is below a quarter of the direct
    differences' (:func:`far_rows`); elementwise, (Q,) bool."""
    with np.errstate(invalid="ignore", over="ignore"):
        return 16.0 * A * (ny + A) < dmin


def relative_distances(prep, Y, a):
    """``r_i = |y - a x_i|^2 - |y - a x_0|^2`` for queries far from the data, (Q, N).

    Formed as ``(a x_i - a x_0) . (a x_i + a x_0 - 2 y)`` (``c_i - 2 y . (a x_i - a x_0)``
    with ``c_i`` the data's part), within ``gamma_{d+2} sum_j |a x_ij - a x_0j|
    (|a x_ij + a x_0j| + 2 |y_j|)`` -- proportional to the separation of the points, not
    to ``|y|^2`` as the distances themselves are.

    Parameters
    ----------
    prep : PreparedData
    Y : (Q, d) float64
    a : float
        The signal scale shared by the queries.
    """
    aX = a * prep.X
    dX = aX - aX[0]
    c = np.einsum("nj,nj->n", dX, aX + aX[0])
    return c[None, :] - 2.0 * (Y @ dX.T)


def _relative_blocks(prep, Y, alpha, inv2s2, rows):
    """For blocks of ``rows`` sharing a signal scale: ``(q, a, w, order)`` with ``w`` the
    relative weights ``exp(-(r_i - min r) / (2 sigma^2))`` from :func:`relative_distances`
    (exact ties split evenly at every sigma) and ``order`` the two smallest ``r`` (lower
    index first on ties)."""
    for a in np.unique(alpha[rows]):
        sub = rows[alpha[rows] == a]
        for b in query_blocks(sub.size, prep.n, 1):
            q = sub[b]
            r = relative_distances(prep, Y[q], float(a))
            order = np.argsort(r, axis=1, kind="stable")[:, :2]
            diff = r - r[np.arange(q.size), order[:, 0]][:, None]
            with np.errstate(invalid="ignore", over="ignore"):
                w = np.where(diff == 0.0, 1.0, np.exp(-diff * inv2s2[q, None]))
            yield q, float(a), w, order


def relative_reduction(prep, Y, alpha, red, rows):
    """Recompute rows ``rows`` of ``red``, the :class:`Reduction` of queries ``Y`` at signal
    scales ``alpha``, from :func:`relative_distances` (see :func:`far_rows`), in place;
    ``dmin`` is the direct squared distance of the nearest point (the log-normaliser's
    offset)."""
    X = prep.X
    for q, a, w, order in _relative_blocks(prep, Y, alpha, red.inv2s2, rows):
        red.lsum[q] = w.sum(axis=1)
        red.mean[q] = (w @ X) / red.lsum[q, None]
        near = Y[q] - a * X[order[:, 0]]
        red.dmin[q] = np.einsum("qk,qk->q", near, near)
        if red.i1 is not None:
            second = Y[q] - a * X[order[:, 1]]
            red.i1[q], red.d1[q] = order[:, 0], red.dmin[q]
            red.i2[q], red.d2[q] = order[:, 1], np.einsum("qk,qk->q", second, second)


def relative_weights(prep, Y, alpha, inv2s2, rows, W):
    """Rows ``rows`` of the dense softmax weights ``W`` (Q, N) from :func:`relative_distances`
    (the rows :func:`far_rows` names), in place."""
    for q, _, w, _ in _relative_blocks(prep, Y, alpha, inv2s2, rows):
        W[q] = w / w.sum(axis=1, keepdims=True)


#: numpy backend: entries of the (block x N x d) difference array per query block
NUMPY_BLOCK_ENTRIES = 2 ** 22


def query_blocks(q, n, d, budget=NUMPY_BLOCK_ENTRIES):
    """Slices of at most ``budget / (N d)`` queries (at least one) for the numpy backends."""
    b = max(1, budget // max(1, n * d))
    return [slice(q0, min(q0 + b, q)) for q0 in range(0, q, b)]


def two_nearest_numpy(dist):
    """Two smallest entries per row (stable: the lower index first on ties).

    Returns ``(i1, d1, i2, d2)``; ``i2 = -1``, ``d2 = inf`` when there is one column.
    """
    q, n = dist.shape
    order = np.argsort(dist, axis=1, kind="stable")[:, :2]
    i1 = order[:, 0].astype(np.int64)
    d1 = dist[np.arange(q), i1]
    if n == 1:
        return i1, d1, np.full(q, -1, np.int64), np.full(q, np.inf)
    i2 = order[:, 1].astype(np.int64)
    return i1, d1, i2, dist[np.arange(q), i2]


def posterior_reduce_numpy(prep, Y, alpha, sigma, *, want_top2=False):
    """The reduction in plain numpy — the reference behind ``backend="numpy"``.

    Direct differences ``y - a x`` for a block of queries at a time (memory
    ``NUMPY_BLOCK_ENTRIES`` floats), the softmax relative to each row's
    minimum distance with the same exact limits as the kernels.

    Parameters and result as in :func:`posterior_reduce`.
    """
    q, d = Y.shape
    X = prep.X
    inv2s2 = inverse_two_sigma2(sigma)
    mean = np.empty((q, d))
    dmin, lsum, d1, d2 = (np.empty(q) for _ in range(4))
    i1, i2 = np.empty(q, np.int64), np.empty(q, np.int64)
    for b in query_blocks(q, prep.n, d):
        diff = Y[b, None, :] - alpha[b, None, None] * X[None, :, :]
        dist = np.einsum("qnk,qnk->qn", diff, diff)
        dmin[b] = dist.min(axis=1)
        w = relative_weight(dist, dmin[b, None], inv2s2[b, None])
        lsum[b] = w.sum(axis=1)
        mean[b] = (w @ X) / lsum[b, None]
        if want_top2:
            i1[b], d1[b], i2[b], d2[b] = two_nearest_numpy(dist)
    red = Reduction(mean, dmin, lsum, inv2s2)
    if want_top2:
        red.i1, red.d1, red.i2, red.d2 = i1, d1, i2, d2
    return red


def _gemm_piece(prep, Y, alpha, sigma, inv2s2, want_top2, j_lo, j_hi):
    """Partial online-softmax state of queries ``Y`` against data ``[j_lo, j_hi)``.

    Returns ``(acc, dmin, lsum, i1, d1, i2, d2)`` with ``acc`` the unnormalised
    weighted sum of the data relative to ``dmin``.
    """
    q, d = Y.shape
    X, xn2, xn = prep.X, prep.xn2, prep.xn
    gamma = _gamma(d + 4)
    rho = _gamma(d + 2)
    mneg = neglect_margin(prep.n)
    with np.errstate(over="ignore", under="ignore"):
        twosig2 = 2.0 * sigma * sigma
    yn2 = np.einsum("ij,ij->i", Y, Y)
    acc = np.zeros((q, d))
    dmin = np.full(q, np.inf)
    derr = np.zeros(q)
    lsum = np.zeros(q)
    fac = np.empty(q)
    i1 = np.full(q, -1, np.int64)
    i2 = np.full(q, -1, np.int64)
    d1 = np.full(q, np.inf)
    d2 = np.full(q, np.inf)
    tmp = np.empty((q, d))
    for j0 in range(j_lo, j_hi, GEMM_TILE_N):
        j1 = min(j0 + GEMM_TILE_N, j_hi)
        Xt = X[j0:j1]
        S = _tile_buffer(q * (j1 - j0)).reshape(q, j1 - j0)
        np.matmul(Y, Xt.T, out=S)
        gemm_tile_update(S, Y, yn2, Xt, xn2[j0:j1], xn[j0:j1], j0, alpha, inv2s2, twosig2,
                         gamma, rho, GEMM_LOGIT_TOL, mneg, want_top2,
                         dmin, derr, lsum, fac, i1, d1, i2, d2)
        acc *= fac[:, None]
        np.matmul(S, Xt, out=tmp)
        acc += tmp
    return acc, dmin, lsum, i1, d1, i2, d2


_TILES = threading.local()


def _tile_buffer(size):
    """This thread's tile scratch, at least ``size`` floats (flat), kept between calls.

    A tile is a few MiB: allocated per call, each one came back from the system
    as fresh pages, and their first-touch faults cost ~1 ms per tile (of ~4 ms).
    """
    buf = getattr(_TILES, "buf", None)
    if buf is None or buf.size < size:
        buf = _TILES.buf = np.empty(size)
    return buf[:size]


def _merge_pieces(pieces, inv2s2):
    """Combine partial states over disjoint data chunks (in chunk order)."""
    acc, dmin, lsum, i1, d1, i2, d2 = (np.array(a, copy=True) for a in pieces[0])
    for acc_b, dmin_b, lsum_b, i1_b, d1_b, i2_b, d2_b in pieces[1:]:
        m = np.minimum(dmin, dmin_b)
        fa = relative_weight(dmin, m, inv2s2)
        fb = relative_weight(dmin_b, m, inv2s2)
        acc = acc * fa[:, None] + acc_b * fb[:, None]
        lsum = lsum * fa + lsum_b * fb
        dmin = m
        # two nearest of the union; earlier chunk wins ties (lower indices)
        cand_i = np.stack([i1, i2, i1_b, i2_b], 1)
        cand_d = np.stack([d1, d2, d1_b, d2_b], 1)
        order = np.argsort(cand_d, axis=1, kind="stable")[:, :2]
        i1, i2 = np.take_along_axis(cand_i, order, 1).T
        d1, d2 = np.take_along_axis(cand_d, order, 1).T
    return acc, dmin, lsum, i1, d1, i2, d2


def relative_weight(dist, dmin, inv2s2):
    """Vectorised ``exp(-(dist - dmin) inv2s2)`` with 1 at ``dist == dmin``."""
    delta = dist - dmin
    with np.errstate(invalid="ignore", over="ignore"):
        arg = np.where(delta > 0, -delta * inv2s2, 0.0)
    return np.exp(np.nan_to_num(arg, nan=-np.inf))


def run_gemm_pieces(q, n, piece):
    """Run ``piece(q0, q1, j_lo, j_hi)`` over query blocks x data chunks on threads.

    Each thread uses single-threaded BLAS (OpenBLAS's spinning threads would
    starve the numba kernels that follow each BLAS call).  The data are split
    into chunks only when there are fewer query blocks than threads.

    Returns
    -------
    blocks : list of (q0, q1)
    results : list of lists
        ``results[b]`` holds the pieces of block b in data order.
    """
    workers = max(1, numba.get_num_threads())
    # blocks of at most GEMM_BLOCK_Q queries, as many as a multiple of the workers when
    # there are enough queries, and of equal size (so that no thread idles at the end)
    nblocks = -(-q // GEMM_BLOCK_Q)
    if q >= workers * 16:
        nblocks = -(-nblocks // workers) * workers
    size = max(1, -(-q // max(nblocks, 1)))
    blocks = [(q0, min(q0 + size, q)) for q0 in range(0, q, size)]
    nchunks = 1 if len(blocks) >= workers else min(workers, -(-n // GEMM_TILE_N))
    bounds = np.linspace(0, n, nchunks + 1).astype(np.int64)
    jobs = [(qb, (int(bounds[c]), int(bounds[c + 1]))) for qb in blocks for c in range(nchunks)]

    def run(job):
        (q0, q1), (j_lo, j_hi) = job
        return piece(q0, q1, j_lo, j_hi)

    with _blas_controller().limit(limits=1, user_api="blas"):
        if workers == 1:
            flat = [run(job) for job in jobs]
        else:
            flat = list(thread_pool(workers, os.getpid()).map(run, jobs))
    return blocks, [flat[b * nchunks:(b + 1) * nchunks] for b in range(len(blocks))]


def _reduce_gemm(prep, Y, alpha, sigma, inv2s2, want_top2, dmin, lsum, i1, d1, i2, d2):
    q, d = Y.shape

    def piece(q0, q1, j_lo, j_hi):
        s = slice(q0, q1)
        return _gemm_piece(prep, Y[s], alpha[s], sigma[s], inv2s2[s], want_top2, j_lo, j_hi)

    blocks, results = run_gemm_pieces(q, prep.n, piece)
    mean = np.empty((q, d))
    for (q0, q1), pieces in zip(blocks, results):
        s = slice(q0, q1)
        acc, dmin[s], lsum[s], i1[s], d1[s], i2[s], d2[s] = _merge_pieces(pieces, inv2s2[s])
        mean[s] = acc / lsum[s, None]
    return mean


@functools.cache
def _blas_controller():
    return ThreadpoolController()
