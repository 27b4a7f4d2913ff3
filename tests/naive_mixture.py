"""The dense numpy Gaussian mixture (the implementation before the streaming kernels): the
reference of the tests.  It loops over components and materialises (K, Q, d) residuals and a
d x d eigenvector matrix per component: small problems only.

For ``p_0 = sum_k pi_k N(mu_k, S_k)`` and ``x_t = alpha x_0 + sigma eps``
``p_t = sum_k pi_k N(alpha mu_k, C_k)``, ``C_k = alpha^2 S_k + sigma^2 I``.
With ``S_k = V_k diag(lambda_k) V_k^T`` and ``u_k = V_k^T (x - alpha mu_k)``:

* ``log N_k(x) = -1/2 sum_j u_kj^2 / c_kj - 1/2 sum_j log c_kj - (d/2) log 2 pi``,
  ``c_kj = alpha^2 lambda_kj + sigma^2``; responsibilities ``rho_k`` by logsumexp;
* ``sigma^2 grad log p_t = -sum_k rho_k V_k (u_k * sigma^2 / c_k)`` — the factor
  ``sigma^2 / c_kj = 1 / (1 + alpha^2 lambda_kj / sigma^2)`` lies in [0, 1],
  so the residual ``alpha D - x`` is formed without cancellation.

Zero-covariance components are allowed (semi-definite ``S_k``): a mixture of
point masses is exactly the empirical field.
"""
import numpy as np
from scipy.special import logsumexp

from scoredyn._validation import _as_float_array, as_data, as_rng
from scoredyn.fields.base import ScoreField


class DenseMixture(ScoreField):
    """Score field of Gaussian-mixture data, with isotropic, diagonal or full covariances.

    Parameters
    ----------
    means : (K, d) array_like
        Component means ``mu_k``.
    covariances : (K,), (K, d) or (K, d, d) array_like
        Variances (isotropic ``s_k I``), diagonals, or full symmetric positive
        semi-definite matrices.
    weights : (K,) array_like, optional
        Mixing proportions, non-negative and summing to 1 (default uniform).

    Notes
    -----
    Valid for ``sigma`` with ``sigma^2`` a normal float64 (1e-150 < sigma < 1e150).
    """

    def __init__(self, means, covariances, weights=None):
        mu, self._dtype = as_data(means, "means")
        k, d = mu.shape
        cov = _as_float_array(covariances, "covariances").astype(np.float64)
        if not np.all(np.isfinite(cov)):
            raise ValueError("All entries of `covariances` must be finite.")
        if cov.shape == (k,):
            evals = np.repeat(cov[:, None], d, axis=1)
            evecs = np.broadcast_to(np.eye(d), (k, d, d)).copy()
            self.covariance_type = "isotropic"
        elif cov.shape == (k, d):
            evals = cov.copy()
            evecs = np.broadcast_to(np.eye(d), (k, d, d)).copy()
            self.covariance_type = "diagonal"
        elif cov.shape == (k, d, d):
            asym = np.max(np.abs(cov - np.swapaxes(cov, 1, 2)), axis=(1, 2))
            scale = np.max(np.abs(cov), axis=(1, 2))
            bad = np.flatnonzero(asym > 1e-12 * np.maximum(scale, 1e-300))
            if bad.size:
                raise ValueError(f"`covariances[{bad[0]}]` must be symmetric.")
            evals, evecs = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, 1, 2)))
            self.covariance_type = "full"
        else:
            raise ValueError(f"`covariances` must have shape ({k},), ({k}, {d}) or ({k}, {d}, {d}) "
                             f"for {k} components in dimension {d}; got shape {cov.shape}.")
        tol = 64 * d * np.finfo(float).eps * np.maximum(np.max(np.abs(evals), axis=1), 1e-300)
        bad = np.flatnonzero(np.min(evals, axis=1) < -tol)
        if bad.size:
            raise ValueError(f"`covariances[{bad[0]}]` must be positive semi-definite; its smallest "
                             f"eigenvalue is {np.min(evals[bad[0]]):.3g}.")
        evals = np.maximum(evals, 0.0)
        if weights is None:
            pi = np.full(k, 1.0 / k)
        else:
            pi = _as_float_array(weights, "weights").astype(np.float64)
            if pi.shape != (k,):
                raise ValueError(f"`weights` must have shape ({k},); got shape {pi.shape}.")
            if not np.all(np.isfinite(pi)) or np.any(pi < 0):
                raise ValueError("`weights` must be finite and non-negative.")
            if abs(pi.sum() - 1.0) > 1e-10 * k:
                raise ValueError(f"`weights` must sum to 1; got {pi.sum():.17g}.")
        self.means, self.eigenvalues, self.eigenvectors, self.mixing = mu, evals, evecs, pi
        self.n_components, self.dim = k, d
        with np.errstate(divide="ignore"):
            self._logpi = np.log(pi)

    def _components(self, x, sigma, alpha):
        """Per-component log densities (Q, K) and residual pieces (K, Q, d)."""
        q, d = x.shape
        s2 = (sigma * sigma)[:, None]
        a = alpha[:, None]
        logn = np.empty((q, self.n_components))
        resid = np.empty((self.n_components, q, d))
        for k in range(self.n_components):
            V = self.eigenvectors[k]
            u = (x - a * self.means[k]) @ V
            c = a * a * self.eigenvalues[k] + s2                 # (Q, d)
            shrink = 1.0 / (1.0 + a * a * self.eigenvalues[k] / s2)  # sigma^2 / c
            logn[:, k] = (-0.5 * np.sum(u * u / c, axis=1) - 0.5 * np.sum(np.log(c), axis=1)
                          - 0.5 * d * np.log(2.0 * np.pi) + self._logpi[k])
            resid[k] = -(u * shrink) @ V.T
        return logn, resid

    def _responsibilities(self, logn):
        lse = logsumexp(logn, axis=1)
        return np.exp(logn - lse[:, None]), lse

    #: the range of sigma where sigma^2 is a normal float64 number (see Notes)
    SIGMA_RANGE = (1e-150, 1e150)

    def _prepare(self, x, sigma, alpha):
        out = super()._prepare(x, sigma, alpha)
        self._check_sigma(out[1])
        return out

    def _check_sigma(self, sigma):
        lo, hi = self.SIGMA_RANGE
        bad = (sigma <= lo) | (sigma >= hi)
        if np.any(bad):
            raise ValueError(f"`sigma` must lie in ({lo:g}, {hi:g}) for a GaussianMixture "
                             f"(sigma^2 must be a normal float64); got {sigma[bad][0]:g}.")

    def residual(self, x, sigma, alpha, label=None):
        if label is not None:
            raise ValueError("`label` is not supported by GaussianMixture.")
        self._check_sigma(sigma)
        logn, resid = self._components(x, sigma, alpha)
        rho, _ = self._responsibilities(logn)
        return np.einsum("qk,kqd->qd", rho, resid), None

    def log_density(self, x, sigma, alpha=1.0):
        """Normalised ``log p_t(x)``, shape (Q,)."""
        x64, sigma, alpha, _ = self._prepare(x, sigma, alpha)
        return self._responsibilities(self._components(x64, sigma, alpha)[0])[1]

    def weights(self, x, sigma, alpha=1.0):
        """Responsibilities ``rho_k(x)`` of the components at time t, shape (Q, K)."""
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        return self._responsibilities(self._components(x64, sigma, alpha)[0])[0].astype(dt)

    def jacobian(self, x, sigma, alpha=1.0):
        """Jacobian of the denoiser ``(x + sigma^2 grad log p_t) / alpha``, shape (Q, d, d).

        ``(I + sigma^2 H) / alpha`` with the Hessian
        ``H = sum_k rho_k (g_k g_k^T - P_k) - g g^T``, ``g_k = -P_k (x - alpha mu_k)``,
        ``P_k = C_k^{-1}``; ``sigma^2 P_k`` is formed as ``V diag(sigma^2/c) V^T``.
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        q, d = x64.shape
        logn, resid = self._components(x64, sigma, alpha)   # resid_k = sigma^2 g_k
        rho, _ = self._responsibilities(logn)
        s2 = (sigma * sigma)[:, None, None]
        a = alpha[:, None]
        J = np.broadcast_to(np.eye(d), (q, d, d)).copy()
        gbar = np.einsum("qk,kqd->qd", rho, resid)
        for k in range(self.n_components):
            V = self.eigenvectors[k]
            shrink = 1.0 / (1.0 + a * a * self.eigenvalues[k] / (sigma * sigma)[:, None])
            s2P = np.einsum("ij,qj,kj->qik", V, shrink, V)
            outer = resid[k][:, :, None] * resid[k][:, None, :] / s2
            J += rho[:, k, None, None] * (outer - s2P)
        J -= gbar[:, :, None] * gbar[:, None, :] / s2
        return (J / alpha[:, None, None]).astype(dt)

    def sample(self, n, rng=None):
        """Draw ``n`` samples of ``p_0``, shape (n, d).

        Parameters
        ----------
        n : int
            Number of samples, ``n >= 0``.
        rng : None, int or numpy.random.Generator
            Passed to :func:`numpy.random.default_rng`.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"`n` must be a non-negative integer; got {n!r}.")
        rng = as_rng(rng)
        comp = rng.choice(self.n_components, size=n, p=self.mixing)
        z = rng.standard_normal((n, self.dim)) * np.sqrt(self.eigenvalues[comp])
        out = self.means[comp] + np.einsum("nij,nj->ni", self.eigenvectors[comp], z)
        return out.astype(self._dtype if self._dtype == np.float32 else np.float64)

    def __repr__(self):
        return f"GaussianMixture(K={self.n_components}, d={self.dim}, {self.covariance_type})"
