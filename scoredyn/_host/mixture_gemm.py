"""The GEMM path of a diagonal Gaussian mixture at large d: BLAS speed, bounded logit error.

For queries sharing one (a, sigma) (a denoiser call), the quadratic forms of every
query-component pair come from two matrix products (``(Y o Y) F^T`` and ``Y B^T``, see
:func:`scoredyn.kernels.mixture.mixture_gemm_tile`), whose rounding error is bounded per
entry; the entries whose weight matters and whose bound exceeds ``GEMM_LOGIT_TOL`` are
recomputed by direct differences.  The posterior mean then comes from two more products,
each a sum of non-negative weights times the tile's columns:

``D_j = sum_k rho_k (mu_kj f_kj + y_j a v_kj / (sigma^2 + a^2 v_kj))``

(Tweedie's formula per component; no cancellation between the two terms), and the residual
is ``a D - y``, as on the empirical field's GEMM path.  Work runs in blocks of queries x
tiles of components on threads, each with single-threaded BLAS
(:func:`scoredyn._host.reduce.run_gemm_pieces`); memory O((Q + K) d) plus one block's tile.
"""
import numpy as np

from .reduce import GEMM_LOGIT_TOL, GEMM_TILE_N, _gamma, neglect_margin, run_gemm_pieces


def mixture_gemm(Y, means, var, logpi, sigma, alpha, isotropic=False, residual=False):
    """Posterior mean (or residual) and log-normaliser of queries sharing one (sigma, alpha).

    Parameters
    ----------
    Y : (Q, d) float64
        Queries, ``max |y| < 1e100`` (their squares summed stay finite).
    means, var : (K, d) float64
    logpi : (K,) float64
    sigma, alpha : float
        ``1e-150 < sigma < 1e150`` (sigma^2 normal) and ``a^2 v / sigma^2`` finite.
    isotropic : bool
        Every row of ``var`` constant: ``(Y o Y) F^T = |y|^2 f_k`` is an outer product and the
        second accumulation a matrix-vector product, so two matrix products in all (as
        for the empirical field) instead of four.
    residual : bool
        Return ``a D - y`` instead of ``D``.

    Returns
    -------
    out : (Q, d) float64
        ``D``, or ``a D - y``.
    lse : (Q,) float64
        ``logsumexp_k logit_k`` without the common ``-(d/2) log(2 pi sigma^2)``.
    """
    from ..coldstart import compiling
    from ..kernels.mixture import diag_gemm_tables, mixture_gemm_tile
    q, d = Y.shape
    k = means.shape[0]
    inv = 1.0 / (sigma * sigma)
    F, B, MF, AVG = (np.empty((k, d)) for _ in range(4))
    c, fmax, base = np.empty(k), np.empty(k), np.empty(k)
    with compiling("Gaussian mixture (large d)", diag_gemm_tables):
        diag_gemm_tables(means, var, logpi, alpha, inv, F, B, MF, AVG, c, fmax, base)
    AM = alpha * means
    gamma, rho = _gamma(d + 4), _gamma(d + 3)
    mneg = neglect_margin(k)
    out = np.empty((q, d))
    lse = np.empty(q)

    def piece(q0, q1, j_lo, j_hi):
        y = Y[q0:q1]
        y2 = y * y
        yn2 = y2.sum(axis=1)
        n = q1 - q0
        m = np.full(n, -np.inf)
        l = np.zeros(n)
        fac = np.empty(n)
        acc1 = np.zeros((n, d))
        acc2 = np.zeros((n, 1 if isotropic else d))
        for j0 in range(j_lo, j_hi, GEMM_TILE_N):
            j1 = min(j0 + GEMM_TILE_N, j_hi)
            A = np.outer(yn2, F[j0:j1, 0]) if isotropic else y2 @ F[j0:j1].T
            S = y @ B[j0:j1].T
            mixture_gemm_tile(A, S, y, yn2, AM[j0:j1], F[j0:j1], fmax[j0:j1], c[j0:j1],
                              base[j0:j1], inv, gamma, rho, GEMM_LOGIT_TOL, mneg, m, l, fac)
            if j0 > j_lo:
                acc1 *= fac[:, None]
                acc2 *= fac[:, None]
            acc1 += A @ MF[j0:j1]
            acc2 += (A @ AVG[j0:j1, :1]) if isotropic else A @ AVG[j0:j1]
        if j_lo > 0 or j_hi < k:
            return acc1, acc2, m, l
        _finish(out[q0:q1], lse[q0:q1], y, acc1, acc2, m, l, alpha, residual)
        return None

    with compiling("Gaussian mixture (large d)", mixture_gemm_tile):
        blocks, results = run_gemm_pieces(q, k, piece)
    for (q0, q1), pieces in zip(blocks, results):
        if pieces[0] is not None:            # the block's components came in several chunks
            (acc1, acc2), m, l = _merge(pieces)
            _finish(out[q0:q1], lse[q0:q1], Y[q0:q1], acc1, acc2, m, l, alpha, residual)
    return out, lse


def _finish(out, lse, y, acc1, acc2, m, l, alpha, residual):
    """``out = D = (acc1 + y acc2) / l`` (or ``a D - y``) and ``lse = m + log l`` for one
    block of queries."""
    np.multiply(y, acc2, out=out)
    out += acc1
    out *= (1.0 / l)[:, None]
    if residual:
        out *= alpha
        out -= y
    lse[:] = m + np.log(l)


def _merge(pieces):
    """One online-softmax state from the pieces ``(*accumulators, m, l)`` of one query block
    over disjoint component chunks: ``(accumulators, m, l)``."""
    *accs, m, l = pieces[0]
    for *other, mb, lb in pieces[1:]:
        top = np.maximum(m, mb)
        with np.errstate(invalid="ignore"):
            fa = np.where(l > 0, np.exp(m - top), 0.0)
            fb = np.where(lb > 0, np.exp(mb - top), 0.0)
        accs = [a * fa[:, None] + b * fb[:, None] for a, b in zip(accs, other)]
        l = l * fa + lb * fb
        m = top
    return accs, m, l


def mixture_lowrank_gemm(Y, means, var, U, logpi, sigma, alpha, residual=False):
    """:func:`mixture_gemm` for low-rank plus diagonal components ``U_k U_k^T + diag(v_k)``.

    The Woodbury form of the streaming kernel (:func:`scoredyn.kernels.mixture.mixture_lowrank`)
    with its three sums over d as matrix products: the diagonal quadratic form as in
    :func:`mixture_gemm`, the projections ``t_k = U_k^T Delta_k^{-1} (y - a mu_k)`` of every
    query (one product with r columns per component), and the posterior mean

    ``D = sum_k rho_k (mu_k f_k + y a v_k / (sigma^2 + a^2 v_k) + a f_k o (U_k M_k^{-1} t_k))``

    (``a D - y`` is the kernel's residual ``f o (a mu - y + a^2 U M^{-1} t)``).  Bounds and
    recomputation: :func:`scoredyn.kernels.mixture.mixture_lowrank_gemm_tile`.

    Parameters
    ----------
    Y : (Q, d) float64
    means, var : (K, d) float64
    U : (K, d, r) float64
    logpi : (K,) float64
    sigma, alpha : float
    residual : bool
        As in :func:`mixture_gemm`.

    Returns
    -------
    out : (Q, d) float64
        ``D``, or ``a D - y``.
    lse : (Q,) float64
    """
    from ..coldstart import compiling
    from ..kernels.mixture import mixture_lowrank_gemm_tile
    q, d = Y.shape
    k, _, r = U.shape
    s2 = sigma * sigma
    inv = 1.0 / s2
    a2 = alpha * alpha
    t = (a2 * inv) * var
    F = 1.0 / (1.0 + t)
    AM = alpha * means
    B = AM * F
    MF = means * F
    AVG = (alpha * inv) * var * F
    c = np.einsum("kj,kj->k", AM * AM, F)
    Wd = U * (F * inv)[:, :, None]                       # Delta^{-1} U, (K, d, r)
    M = np.eye(r) + a2 * np.einsum("kjp,kjq->kpq", U, Wd)
    L = np.linalg.cholesky(M)
    Linv = np.linalg.inv(L)
    Minv = np.ascontiguousarray(np.swapaxes(Linv, 1, 2) @ Linv)
    base = logpi - 0.5 * (np.log1p(t).sum(axis=1)
                          + 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1))
    WT = np.ascontiguousarray(Wd.transpose(1, 0, 2).reshape(d, k * r))
    t0 = np.einsum("kjp,kj->kp", Wd, AM).reshape(k * r)
    hnorm = np.sqrt(np.einsum("kjp,kj->k", U * U, F) * inv * inv)
    UF = np.ascontiguousarray((U * F[:, :, None]).transpose(0, 2, 1).reshape(k * r, d))
    Y2 = Y * Y
    gamma = _gamma(d + 4)
    mneg = neglect_margin(k)
    tile = max(1, GEMM_TILE_N // r)

    def piece(q0, q1, j_lo, j_hi):
        y, y2 = Y[q0:q1], Y2[q0:q1]
        n = q1 - q0
        m = np.full(n, -np.inf)
        l = np.zeros(n)
        fac = np.empty(n)
        acc1, acc2, acc3 = np.zeros((n, d)), np.zeros((n, d)), np.zeros((n, d))
        for j0 in range(j_lo, j_hi, tile):
            j1 = min(j0 + tile, j_hi)
            A = y2 @ F[j0:j1].T
            S = y @ B[j0:j1].T
            T = y @ WT[:, j0 * r:j1 * r] - t0[j0 * r:j1 * r]
            mixture_lowrank_gemm_tile(A, S, T, y, AM[j0:j1], F[j0:j1], U[j0:j1], Minv[j0:j1],
                                      c[j0:j1], base[j0:j1], hnorm[j0:j1], inv, a2, gamma,
                                      GEMM_LOGIT_TOL, mneg, m, l, fac)
            for acc in (acc1, acc2, acc3):
                acc *= fac[:, None]
            acc1 += A @ MF[j0:j1]
            acc2 += A @ AVG[j0:j1]
            acc3 += T @ UF[j0 * r:j1 * r]
        return acc1, acc2, acc3, m, l

    with compiling("Gaussian mixture (low rank, large d)", mixture_lowrank_gemm_tile):
        blocks, results = run_gemm_pieces(q, k, piece)
    out = np.empty((q, d))
    lse = np.empty(q)
    for (q0, q1), pieces in zip(blocks, results):
        (acc1, acc2, acc3), m, l = _merge(pieces)
        acc1 += alpha * acc3
        _finish(out[q0:q1], lse[q0:q1], Y[q0:q1], acc1, acc2, m, l, alpha, residual)
    return out, lse
