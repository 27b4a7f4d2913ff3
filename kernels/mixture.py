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

#: queries per parallel work item
_CHUNK = 16


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
                    if l > 0.0:
                        scale = np.exp(m - logit)
                        l *= scale
                        for j in range(d):
                            acc[j] *= scale
                    m = logit
                w = np.exp(logit - m)
                l += w
                for j in range(d):
                    acc[j] += w * r[j]
            for j in range(d):
                res[q, j] = acc[j] / l
            lse[q] = m + np.log(l)
