"""Streaming Gaussian-mixture reductions on the CPU.

* :func:`mixture_diag` — diagonal (and isotropic) components, one query at a time:
  :func:`mixture_query.mixture_query` (the per-query loop the GPU kernel and the fused
  time loop share), every sigma > 0;
* :func:`mixture_diag_tiled` — the same for queries sharing a few (a, sigma) pairs with
  ``sigma^2`` a normal number (a denoiser call), component-major so that the inner loops
  run over components as SIMD loops;
* :func:`mixture_lowrank` — low-rank plus diagonal components by the Woodbury identity.

Memory O((Q + K) d); no (Q, K) array.
"""
import math

import numpy as np
from numba import njit, prange

from . import cell
from . import mixture_query as mq
from .config import FASTMATH
from .gemm_tile import row_min
from .mathfn import exp_nonpos
from .scalar import bisector_margins_cpu
from .target import specialise
from .voronoi import square

#: queries per parallel work item
_CHUNK = 16


@njit(inline="always")
def table_ndim(P):
    """Dimension of a component table (K, 2 d + 2)."""
    return (P.shape[1] - 2) // 2


@njit(inline="always")
def table_npoints(P):
    """Number of components of a component table."""
    return P.shape[0]


@njit(inline="always")
def table_site(P, k, j):
    """Coordinate ``j`` of component ``k``'s mean."""
    return P[k, j]



_CELL = dict(ndim=table_ndim, npoints=table_npoints, site=table_site, square=square,
             bisector_margins=bisector_margins_cpu)
_CELL["bisector_"] = njit(fastmath=FASTMATH, cache=True, inline="always")(
    specialise(cell.bisector, _CELL, "bisector_table_cpu", cell.TARGET_NAMES))
#: :func:`cell.cell_margins` of the Voronoi cells of a component table's means
table_cell_margins = njit(fastmath=FASTMATH, cache=True, error_model="numpy")(
    specialise(cell.cell_margins, _CELL, "cell_margins_table_cpu",
               cell.TARGET_NAMES + ("bisector_",)))

CPU = dict(ndim=table_ndim, npoints=table_npoints, exp=exp_nonpos, log=math.log,
           log1p=math.log1p, hypot=math.hypot)
for _name in ("element", "log_det_term", "log_det", "raise_max", "absorb"):
    CPU[_name] = njit(fastmath=FASTMATH, cache=True, inline="always", error_model="numpy")(
        specialise(getattr(mq, _name), CPU, f"{_name}_cpu", mq.TARGET_NAMES))
#: :func:`mixture_query.mixture_query` on the CPU
mixture_query = njit(fastmath=FASTMATH, cache=True, error_model="numpy")(
    specialise(mq.mixture_query, CPU, "mixture_query_cpu", mq.TARGET_NAMES))
raise_max = CPU["raise_max"]


@njit(parallel=True, cache=True, error_model="numpy")
def mixture_diag(Y, alpha, sigma, group, P, logdet, res, lse, mode):
    """Responsibility-weighted residual (or score, or posterior mean) and log-sum-exp of the
    logits, per query.

    Parameters
    ----------
    Y : (Q, d) float64
    alpha, sigma : (Q,) float64
        Positive.
    group : (Q,) int64
        Row of ``logdet`` for each query; -1: formed per query.
    P : (K, 2 d + 2) float64
        The component table of :mod:`mixture_query`.
    logdet : (G, K) float64
        ``sum_j log1p(a^2 v_kj / sigma^2)`` per group.
    res : (Q, d) float64, out
        By ``mode`` (:data:`mixture_query.RESIDUAL`, ``SCORE``, ``DENOISE``):
        ``sigma^2 grad log p_t(y) = alpha D - y``, ``grad log p_t(y)`` or ``D``.
    lse : (Q,) float64, out
        ``logsumexp_k logit_k`` (without the common ``-(d/2) log(2 pi sigma^2)``).
    mode : int
    """
    q_total, d = Y.shape
    nchunks = (q_total + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        zero = np.zeros(d)
        rk = np.empty(d)
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, q_total)):
            lse[q], _, _ = mixture_query(P, Y[q], zero, alpha[q], sigma[q], logdet, group[q],
                                         False, res[q], rk, mode)


#: components per tile of :func:`mixture_diag_tiled` (the exps and the residual sums of a
#: tile run as SIMD loops over components)
TILE_K = 256


@njit(parallel=True, fastmath=FASTMATH, cache=True, error_model="numpy")
def mixture_diag_tiled(Y, group, AMt, Ft, base, inv, res, lse):
    """:func:`mixture_diag` for queries that share a few (a, sigma) pairs, component-major.

    Per group ``g`` the caller forms ``AMt[g] = (a mu)^T`` and ``Ft[g] = (1 / (1 + a^2 v /
    sigma^2))^T`` (both (d, K)) and ``base[g, k] = log pi_k - 1/2 sum_j log1p(a^2 v_kj /
    sigma^2)``; each query then streams over tiles of :data:`TILE_K` components, the inner
    loops running over components (vectorised), with the same online softmax.  Same
    arithmetic per term as :func:`mixture_diag`: ``u = y_j - a mu_kj`` by direct difference;
    the sums over coordinates and components may be reassociated (SIMD), which moves a logit
    by a few ulp of its terms, and the weights use the vectorised :func:`exp_nonpos`.  A
    query whose every logit is beyond float64 gets ``lse = -inf`` and a NaN residual (the
    caller recomputes it with :func:`mixture_diag`, which takes the exact limit).

    Parameters
    ----------
    Y : (Q, d) float64
    group : (Q,) int64
    AMt, Ft : (G, d, K) float64
    base : (G, K) float64
    inv : (G,) float64
        ``1 / sigma^2`` per group.
    res : (Q, d) float64, out
    lse : (Q,) float64, out
    """
    q_total, d = Y.shape
    k_total = AMt.shape[2]
    nchunks = (q_total + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        acc = np.empty(d)
        z = np.empty(TILE_K)
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, q_total)):
            g = group[q]
            iv = inv[g]
            m = -np.inf
            l = 0.0
            for j in range(d):
                acc[j] = 0.0
            for k0 in range(0, k_total, TILE_K):
                nt = min(TILE_K, k_total - k0)
                for kk in range(nt):
                    z[kk] = 0.0
                for j in range(d):
                    yj = Y[q, j]
                    am = AMt[g, j, k0:k0 + nt]
                    f = Ft[g, j, k0:k0 + nt]
                    for kk in range(nt):
                        u = yj - am[kk]
                        z[kk] += u * u * f[kk]
                tmax = -np.inf
                for kk in range(nt):
                    z[kk] = base[g, k0 + kk] - 0.5 * z[kk] * iv
                    tmax = max(tmax, z[kk])
                if tmax == -np.inf:
                    continue
                if tmax > m:
                    l, m = raise_max(acc, d, l, m, tmax)
                s = 0.0
                for kk in range(nt):
                    w = exp_nonpos(z[kk] - m)          # vectorised; <= 1 ulp
                    z[kk] = w
                    s += w
                l += s
                for j in range(d):
                    yj = Y[q, j]
                    am = AMt[g, j, k0:k0 + nt]
                    f = Ft[g, j, k0:k0 + nt]
                    a_j = 0.0
                    for kk in range(nt):
                        a_j += z[kk] * (am[kk] - yj) * f[kk]
                    acc[j] += a_j
            for j in range(d):
                res[q, j] = acc[j] / l
            lse[q] = m + np.log(l)


@njit(parallel=True, fastmath=FASTMATH, cache=True, error_model="numpy")
def mixture_lowrank(Y, group, AM, F, U, Minv, base, inv, a2, res, lse):
    """Low-rank plus diagonal components, ``S_k = U_k U_k^T + diag(v_k)``, by Woodbury.

    With ``Delta = a^2 diag(v) + sigma^2 I``, ``f = sigma^2 / Delta`` (in (0, 1]) and
    ``M = I_r + a^2 U^T Delta^{-1} U``: ``t = U^T Delta^{-1} u`` (one pass over d, r sums),
    ``u^T C^{-1} u = sum_j u_j^2 f_j / sigma^2 - a^2 t^T M^{-1} t`` and
    ``-sigma^2 C^{-1} u = f * (-u + a^2 U M^{-1} t)``; the caller forms ``M^{-1}`` and the
    log-determinants once per (a, sigma) group.  A component whose weight underflows
    (logit more than 750 below the running maximum) skips its residual pass: its weight is
    0 in float64.

    Parameters
    ----------
    Y : (Q, d) float64
    group : (Q,) int64
    AM, F : (G, K, d) float64
        ``a mu_k`` and ``f_k`` per group.
    U : (K, d, r) float64
    Minv : (G, K, r, r) float64
    base : (G, K) float64
        ``log pi_k - 1/2 (sum_j log1p(a^2 v_kj / sigma^2) + log det M_k)``.
    inv, a2 : (G,) float64
        ``1 / sigma^2`` and ``a^2`` per group.
    res : (Q, d) float64, out
    lse : (Q,) float64, out
    """
    q_total, d = Y.shape
    k_total, _, r = U.shape
    nchunks = (q_total + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        acc = np.empty(d)
        t = np.empty(r)
        s = np.empty(r)
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, q_total)):
            g = group[q]
            iv = inv[g]
            m = -np.inf
            l = 0.0
            for j in range(d):
                acc[j] = 0.0
            for k in range(k_total):
                for p in range(r):
                    t[p] = 0.0
                zd = 0.0
                for j in range(d):
                    u = Y[q, j] - AM[g, k, j]
                    v = u * F[g, k, j]
                    zd += u * v
                    for p in range(r):
                        t[p] += U[k, j, p] * v
                corr = 0.0
                for p in range(r):
                    t[p] *= iv
                for p in range(r):
                    sp = 0.0
                    for p2 in range(r):
                        sp += Minv[g, k, p, p2] * t[p2]
                    s[p] = sp
                    corr += t[p] * sp
                z = max(zd * iv - a2[g] * corr, 0.0)
                logit = base[g, k] - 0.5 * z
                if logit == -np.inf:
                    continue
                if logit > m:
                    l, m = raise_max(acc, d, l, m, logit)
                if logit - m < -750.0:
                    continue
                w = exp_nonpos(logit - m)
                l += w
                for j in range(d):
                    us = 0.0
                    for p in range(r):
                        us += U[k, j, p] * s[p]
                    acc[j] += w * F[g, k, j] * (a2[g] * us - (Y[q, j] - AM[g, k, j]))
            for j in range(d):
                res[q, j] = acc[j] / l
            lse[q] = m + np.log(l)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile_weights(A, q, tmax, m, l, fac):
    """Row ``q`` of a GEMM tile's logits (``-inf`` where neglected) into relative weights:
    the running maximum ``m[q]`` raised to the tile's ``tmax`` (``l[q]`` rescaled, the factor
    in ``fac[q]``), then ``A[q, k] = exp(logit - m[q])`` summed into ``l[q]``."""
    f = 1.0
    if tmax > m[q]:
        if l[q] > 0.0:
            f = exp_nonpos(m[q] - tmax)
            l[q] *= f
        m[q] = tmax
    fac[q] = f
    s = 0.0
    mq = m[q]
    for k in range(A.shape[1]):
        w = exp_nonpos(A[q, k] - mq) if A[q, k] > -np.inf else 0.0
        A[q, k] = w
        s += w
    l[q] += s


@njit(inline="always")
def _neglected(base_k, z_low, best, mneg):
    """The GEMM tiles' neglect rule: no weight (``base_k = -inf``), or a logit whose upper
    bound ``base_k - z_low / 2`` (``z_low``: the quadratic form's lower bound) lies more than
    ``mneg`` below the best lower bound of the query's logits."""
    return base_k == -np.inf or base_k - 0.5 * z_low < best - mneg


@njit(parallel=True, fastmath=FASTMATH, cache=True, error_model="numpy")
def diag_gemm_tables(means, var, logpi, alpha, inv, F, B, MF, AVG, c, fmax, base):
    """The per-component tables of the diagonal GEMM path for one (a, sigma), in one pass.

    With ``t_kj = a^2 v_kj / sigma^2``: ``F = 1 / (1 + t)`` (``sigma^2 / (sigma^2 + a^2 v)``,
    in (0, 1]), ``B = a mu F``, ``MF = mu F``, ``AVG = (a / sigma^2) v F`` (``a v / (sigma^2
    + a^2 v)``), ``c_k = sum_j (a mu_kj)^2 F_kj``, ``fmax_k = max_j F_kj`` and ``base_k =
    log pi_k - 1/2 sum_j log1p(t_kj)``.

    Parameters
    ----------
    means, var : (K, d) float64
    logpi : (K,) float64
    alpha, inv : float
        ``a`` and ``1 / sigma^2``.
    F, B, MF, AVG : (K, d) float64, out
    c, fmax, base : (K,) float64, out
    """
    k_total, d = means.shape
    a2i = alpha * alpha * inv
    ai = alpha * inv
    for k in prange(k_total):
        ck = 0.0
        fk = 0.0
        ld = 0.0
        for j in range(d):
            t = a2i * var[k, j]
            f = 1.0 / (1.0 + t)
            am = alpha * means[k, j]
            F[k, j] = f
            B[k, j] = am * f
            MF[k, j] = means[k, j] * f
            AVG[k, j] = ai * var[k, j] * f
            ck += am * am * f
            fk = max(fk, f)
            ld += math.log1p(t)
        c[k] = ck
        fmax[k] = fk
        base[k] = logpi[k] - 0.5 * ld


@njit(fastmath=FASTMATH, cache=True, nogil=True, error_model="numpy")
def mixture_gemm_tile(A, S, Y, yn2, AM, F, fmax, c, base, inv, gamma, rho, tau, mneg, m, l,
                      fac):
    """Turn a BLAS tile of a diagonal mixture's quadratic forms into relative weights.

    The driver (:mod:`scoredyn._host.mixture_gemm`) forms, for one (a, sigma) group, a
    block of queries and a tile of components, ``A = (Y o Y) F^T`` and ``S = Y B^T`` with
    ``f_kj = sigma^2 / (sigma^2 + a^2 v_kj)`` and ``b_kj = a mu_kj f_kj``; with
    ``c_k = sum_j (a mu_kj)^2 f_kj`` the quadratic form ``z = sum_j (y_j - a mu_kj)^2 f_kj``
    is ``A - 2 S + c``, within ``E = gamma (sqrt(A) + sqrt(c))^2`` (``gamma = gamma_{d+4}``:
    Higham's Lemma 3.1 for each product, Cauchy-Schwarz for ``sum |y_j b_kj| <= sqrt(A c)``)
    and the logit ``base_k - z / (2 sigma^2)`` within ``E / (2 sigma^2)``.  As on the
    empirical field's GEMM path (:mod:`gemm_tile`): an entry whose upper bound is more than
    ``mneg`` below the best lower bound is neglected (weight < e^-mneg each); an entry
    whose logit bound exceeds ``tau`` and 4x the direct bound (``rho z``, ``rho =
    gamma_{d+3}``) is recomputed by direct differences.

    A row none of whose entries needs recomputation (known without forming the entries'
    bounds when ``gamma (sqrt(|y|^2 max_k fmax_k) + sqrt(max_k c_k))^2``, which bounds them
    all since ``A <= |y|^2 max_j f_kj``, is within ``tau``) keeps its logits as computed and
    turns them into weights in loops without branches; nothing is neglected there (an entry
    the rule would neglect weighs below e^-mneg and keeps its own tiny value instead of 0).

    Parameters
    ----------
    A, S : (qb, nt) float64, in/out
        In: the two products.  Out: ``exp(logit - m)`` per entry (0 where neglected).
    Y : (qb, d) float64
    yn2 : (qb,) float64
        ``|y|^2``.
    AM, F : (nt, d) float64
        ``a mu`` and ``f`` of the tile's components.
    fmax, c, base : (nt,) float64
        ``max_j f_kj``, ``c_k`` and ``log pi_k - 1/2 sum_j log1p(a^2 v_kj / sigma^2)``
        (``-inf``: no weight).
    inv : float
        ``1 / sigma^2``.
    gamma, rho, tau, mneg : float
    m, l : (qb,) float64, in/out
        Running maximum logit and sum of relative weights.
    fac : (qb,) float64, out
        Factor for the running weighted sums before this tile's contribution is added.
    """
    qb, nt = A.shape
    d = Y.shape[1]
    ftop = 0.0
    ctop = 0.0
    for k in range(nt):
        ftop = max(ftop, fmax[k])
        ctop = max(ctop, c[k])
    sc = np.sqrt(ctop)
    for q in range(qb):
        r = np.sqrt(yn2[q] * ftop) + sc
        general = False
        if 0.5 * gamma * r * r * inv > tau:
            # each entry's bound, and whether any entry needs recomputation (vectorises)
            need = 0.0
            for k in range(nt):
                z = A[q, k] - 2.0 * S[q, k] + c[k]
                rk = np.sqrt(max(A[q, k], 0.0)) + np.sqrt(c[k])
                e = gamma * rk * rk
                need += 1.0 if (0.5 * e * inv > tau) & (e > 4.0 * rho * max(z, 0.0)) else 0.0
                A[q, k] = z
                S[q, k] = e
            general = need > 0.0
            if not general:
                for k in range(nt):
                    A[q, k] = base[k] - 0.5 * max(A[q, k], 0.0) * inv
        else:
            for k in range(nt):
                A[q, k] = base[k] - 0.5 * max(A[q, k] - 2.0 * S[q, k] + c[k], 0.0) * inv
        if not general:
            # no entry needs recomputation: the logits as computed, weights without branches
            _tile_weights(A, q, -row_min(A, q, -1.0), m, l, fac)
            continue
        # pass 1: the best lower bound of a logit in the tile
        best = m[q]
        for k in range(nt):
            best = max(best, base[k] - 0.5 * (A[q, k] + S[q, k]) * inv)
        # pass 2: neglect, keep, or recompute by direct differences
        tmax = -np.inf
        for k in range(nt):
            z = A[q, k]
            e = S[q, k]
            if _neglected(base[k], (z - e) * inv, best, mneg):
                A[q, k] = -np.inf
                continue
            if 0.5 * e * inv > tau and e > 4.0 * rho * max(z, 0.0):
                z = 0.0
                for j in range(d):
                    u = Y[q, j] - AM[k, j]
                    z += u * u * F[k, j]
            logit = base[k] - 0.5 * max(z, 0.0) * inv
            A[q, k] = logit
            tmax = max(tmax, logit)
        _tile_weights(A, q, tmax, m, l, fac)


@njit(fastmath=FASTMATH, cache=True, nogil=True, error_model="numpy")
def mixture_lowrank_gemm_tile(A, S, T, Y, AM, F, U, Minv, c, base, hnorm, inv, a2, gamma, tau,
                              mneg, m, l, fac):
    """:func:`mixture_gemm_tile` for low-rank plus diagonal components (Woodbury).

    Besides the diagonal part (``A``, ``S``: ``z_d = A - 2 S + c`` within ``E_d = gamma
    (sqrt(A) + sqrt(c))^2``), the driver forms ``T = Y (Delta^{-1} U)`` minus its constant,
    the projections ``t_k = U_k^T Delta_k^{-1} (y - a mu_k)`` of every query (r per
    component).  Each ``t_k`` is within ``delta = gamma (sqrt(A) + sqrt(c)) hnorm_k`` in
    2-norm (``hnorm_k^2 = sum_jp U_kjp^2 f_kj / sigma^4``, Cauchy-Schwarz), so with
    ``|M_k^{-1}|_2 <= 1`` the correction ``t^T M^{-1} t`` is within ``2 |t| delta +
    delta^2`` and the quadratic form ``z = z_d / sigma^2 - a^2 t^T M^{-1} t`` within
    ``E_d / sigma^2 + a^2 (2 |t| delta + delta^2)``.  Neglect and recompute as in
    :func:`mixture_gemm_tile` (the recomputation forms ``t`` and ``z_d`` by direct
    differences).

    Parameters
    ----------
    A, S : (qb, nt) float64, in/out
        In: the diagonal products.  Out: ``exp(logit - m)`` (``A``; 0 where neglected).
    T : (qb, nt * r) float64, in/out
        In: the projections.  Out: ``w_qk M_k^{-1} t_qk`` (0 where neglected).
    Y : (qb, d) float64
    AM, F : (nt, d) float64
    U : (nt, d, r) float64
    Minv : (nt, r, r) float64
    c, base, hnorm : (nt,) float64
    inv, a2 : float
        ``1 / sigma^2`` and ``a^2``.
    gamma, tau, mneg : float
    m, l : (qb,) float64, in/out
    fac : (qb,) float64, out
    """
    qb, nt = A.shape
    d = Y.shape[1]
    r = U.shape[2]
    t = np.empty(r)
    sv = np.empty(r)
    for q in range(qb):
        best = m[q]
        # pass 1: logits from the products, their bounds, the best lower bound
        for k in range(nt):
            zd = A[q, k] - 2.0 * S[q, k] + c[k]
            ra = np.sqrt(max(A[q, k], 0.0)) + np.sqrt(c[k])
            corr = 0.0
            tn = 0.0
            for p in range(r):
                sp = 0.0
                for p2 in range(r):
                    sp += Minv[k, p, p2] * T[q, k * r + p2]
                corr += T[q, k * r + p] * sp
                tn += T[q, k * r + p] * T[q, k * r + p]
            delta = gamma * ra * hnorm[k]
            e = gamma * ra * ra * inv + a2 * (2.0 * np.sqrt(tn) * delta + delta * delta)
            z = max(zd * inv - a2 * corr, 0.0)
            best = max(best, base[k] - 0.5 * (z + e))
            A[q, k] = z
            S[q, k] = e
        # pass 2: neglect, keep or recompute; the weights' s = M^{-1} t into T
        tmax = -np.inf
        for k in range(nt):
            z = A[q, k]
            e = S[q, k]
            if _neglected(base[k], z - e, best, mneg):
                A[q, k] = -np.inf
                continue
            if 0.5 * e > tau and e > 4.0 * gamma * z:
                for p in range(r):
                    t[p] = 0.0
                zd = 0.0
                for j in range(d):
                    u = Y[q, j] - AM[k, j]
                    v = u * F[k, j]
                    zd += u * v
                    for p in range(r):
                        t[p] += U[k, j, p] * v
                for p in range(r):
                    t[p] *= inv
                    T[q, k * r + p] = t[p]
                corr = 0.0
                for p in range(r):
                    sp = 0.0
                    for p2 in range(r):
                        sp += Minv[k, p, p2] * t[p2]
                    corr += t[p] * sp
                z = max(zd * inv - a2 * corr, 0.0)
            logit = base[k] - 0.5 * z
            A[q, k] = logit
            tmax = max(tmax, logit)
        _tile_weights(A, q, tmax, m, l, fac)
        # w M^{-1} t for the accumulation
        for k in range(nt):
            w = A[q, k]
            for p in range(r):
                sv[p] = 0.0
                if w > 0.0:
                    for p2 in range(r):
                        sv[p] += Minv[k, p, p2] * T[q, k * r + p2]
            for p in range(r):
                T[q, k * r + p] = w * sv[p]
