"""Streaming Gaussian-mixture reduction for diagonal (and isotropic) covariances.

For a query ``y`` at signal scale ``a`` and noise ``sigma`` and components
``N(mu_k, diag(v_k))`` with weights ``pi_k``, ``x_t`` has the mixture density
``sum_k pi_k N(a mu_k, C_k)``, ``C_k = diag(a^2 v_k + sigma^2)``.  One pass over the
components, with an online softmax of their log-densities (the same rescaling the
empirical kernels use between tiles), accumulates

* ``logit_k = log pi_k - 1/2 sum_j u_kj^2 / (sigma^2 (1 + t_kj)) - 1/2 sum_j log1p(t_kj)``,
  ``u_kj = y_j - a mu_kj``, ``t_kj = a^2 v_kj / sigma^2`` (the common ``-(d/2) log(2 pi
  sigma^2)`` is added by the caller);
* the residual ``sigma^2 grad log p_t = sum_k rho_k r_k``, ``r_kj = -u_kj / (1 + t_kj)``,
  each factor ``1 / (1 + t)`` in (0, 1]: formed without cancellation.

The log-determinant terms ``sum_j log1p(t_kj)`` depend on (a, sigma) only; when the
queries share a few (a, sigma) (a denoiser call), the caller computes them once per pair
with numpy's vectorised ``log1p`` and passes ``logdet[g, k]`` with each query's group
``g``; with an empty ``logdet`` (every query at its own time, as in an ODE stage) the
kernel forms them itself.  Memory O((Q + K) d).
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH
from .mathfn import exp_nonpos

#: queries per parallel work item
_CHUNK = 16


@njit(fastmath=FASTMATH, cache=True, inline="always")
def raise_max(acc, l, m, new_max):
    """The online softmax's rescale: the running sum ``l`` and the weighted residual ``acc``
    (kept relative to the running maximum logit ``m``) brought to ``new_max > m``.

    Returns ``(l, new_max)``; ``acc`` is scaled in place.
    """
    if l > 0.0:
        scale = exp_nonpos(m - new_max)
        l *= scale
        for j in range(acc.shape[0]):
            acc[j] *= scale
    return l, new_max


@njit(parallel=True, cache=True, error_model="numpy")
def mixture_diag(Y, alpha, sigma, group, means, var, logpi, logdet, res, lse):
    """Responsibility-weighted residual and log-sum-exp of the logits, per query.

    Parameters
    ----------
    Y : (Q, d) float64
    alpha, sigma : (Q,) float64
        Positive; ``sigma^2`` a normal float64.
    group : (Q,) int64
        Row of ``logdet`` for each query.
    means, var : (K, d) float64
        Component means and variances (>= 0).
    logpi : (K,) float64
        Log mixing weights (-inf allowed for a zero weight).
    logdet : (G, K) float64
        ``sum_j log1p(a^2 v_kj / sigma^2)`` per group; G = 0: computed here.
    res : (Q, d) float64, out
        ``sigma^2 grad log p_t(y) = alpha D - y``.
    lse : (Q,) float64, out
        ``logsumexp_k logit_k`` (without the common ``-(d/2) log(2 pi sigma^2)``).
    """
    q_total, d = Y.shape
    k_total = means.shape[0]
    inline = logdet.shape[0] == 0
    nchunks = (q_total + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        acc = np.empty(d)
        r = np.empty(d)
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, q_total)):
            a = alpha[q]
            a2 = a * a
            inv = 1.0 / (sigma[q] * sigma[q])
            g = group[q]
            m = -np.inf
            l = 0.0
            for j in range(d):
                acc[j] = 0.0
            for k in range(k_total):
                z = 0.0
                ld = 0.0
                for j in range(d):
                    t = a2 * var[k, j] * inv
                    f = 1.0 / (1.0 + t)
                    u = Y[q, j] - a * means[k, j]
                    z += u * u * inv * f
                    r[j] = -u * f
                    if inline:
                        ld += np.log1p(t)
                if not inline:
                    ld = logdet[g, k]
                logit = logpi[k] - 0.5 * z - 0.5 * ld
                if logit == -np.inf:           # beyond float64 (z overflowed): weight 0
                    continue
                if logit > m:
                    l, m = raise_max(acc, l, m, logit)
                w = exp_nonpos(logit - m)
                l += w
                for j in range(d):
                    acc[j] += w * r[j]
            for j in range(d):
                res[q, j] = acc[j] / l
            lse[q] = m + np.log(l)


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
by a few ulp of its terms, and the weights use the vectorised :func:`exp_nonpos`.

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
                    l, m = raise_max(acc, l, m, tmax)
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
                    l, m = raise_max(acc, l, m, logit)
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
