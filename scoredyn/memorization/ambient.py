"""Ambient diffusion (Shah, Kalavasis, Klivans & Daras 2025, "Does Generation
Require Memorization? Creative Diffusion Models using Ambient Diffusion"), in closed form.

Conventions of the paper: variance-preserving, ``x_t = sqrt(1 - sigma_t^2) x_0 + sigma_t eps``.

* :class:`AmbientScore` — the optimum of the ambient objective above ``t_n``
  (Lemma 4.1): the exact score of the empirical distribution of the *noised*
  training set ``S_{t_n}`` (one noisy copy of each point), diffused from
  ``t_n`` on: ``x_t = sqrt((1 - sigma_t^2)/(1 - sigma_n^2)) x_{t_n}
  + sqrt((sigma_t^2 - sigma_n^2)/(1 - sigma_n^2)) eps`` (Algorithm 1, line 10).
  Sampling with it down to ``t_n`` returns the points of ``S_{t_n}``.
* :func:`leakage_ambient`, :func:`leakage_ddpm` — Lemma 4.2 for a Gaussian
  ``x_0 ~ N(mu, Sigma)``; :func:`leakage_monte_carlo` estimates the same mutual
  informations without the formulas.  For m DDPM draws the exact value is
  ``1/2 log det(I + m SNR Sigma)`` (the draws are conditionally independent
  given ``x_0``; their mean is sufficient); the lemma's ``m I(A; x_0)`` is an
  upper bound (subadditivity), equal only at m = 1 — the Monte-Carlo check
  shows which.
* :func:`component_tv` — Lemma 4.5: for identity-covariance components the
  total variation at noise level sigma_t is exactly
  ``2 Phi(sqrt(1 - sigma_t^2) |mu_i - mu_j| / 2) - 1``.
"""
import numpy as np
from scipy.stats import norm

from .._validation import as_count, as_data, as_rng, as_scalar
from ..fields.empirical import EmpiricalScore
from ..fields.base import ScoreField


def _sigma_level(value, name):
    v = as_scalar(value, name, low=0.0, low_inclusive=False)
    if v >= 1.0:
        raise ValueError(f"`{name}` must lie in (0, 1) (variance preserving); got {v}.")
    return v


class AmbientScore(ScoreField):
    """The ambient optimum for ``t > t_n``: the score of the diffused noisy training set.

    Parameters
    ----------
    data : (N, d) array_like
        Clean training points ``x_0``.
    sigma_n : float in (0, 1)
        Noise level ``sigma_{t_n}`` of the stored noisy copies.
    rng : seed or Generator
        Draws ``S_{t_n} = sqrt(1 - sigma_n^2) x_0 + sigma_n Z`` once.

    Notes
    -----
    Evaluated at ``(sigma, alpha)`` with ``alpha^2 + sigma^2 = 1`` and
    ``sigma > sigma_n``; it is the empirical field of ``S_{t_n}`` at
    ``alpha' = alpha / sqrt(1 - sigma_n^2)``,
    ``sigma' = sqrt((sigma^2 - sigma_n^2) / (1 - sigma_n^2))``.
    """

    def __init__(self, data, sigma_n, *, rng=None):
        X, self._dtype = as_data(data)
        self.sigma_n = _sigma_level(sigma_n, "sigma_n")
        rng = as_rng(rng)
        self.noisy = np.sqrt(1 - self.sigma_n**2) * X + self.sigma_n * rng.standard_normal(X.shape)
        self._field = EmpiricalScore(self.noisy)
        self.dim = X.shape[1]

    def residual(self, x, sigma, alpha, label=None):
        if label is not None:
            raise ValueError("`label` is not supported by AmbientScore.")
        if np.any(sigma <= self.sigma_n):
            raise ValueError(f"AmbientScore is defined for sigma > sigma_n = {self.sigma_n}; got "
                             f"{float(np.min(sigma))}.")
        c = np.sqrt(1 - self.sigma_n**2)
        sig2 = np.sqrt((sigma**2 - self.sigma_n**2)) / c
        alp2 = alpha / c
        # residual of the noisy-set field, rescaled: sigma^2 score = (sigma^2 / sig2^2) * (alp2 D - x)
        res, _ = self._field.residual(x, sig2, alp2, None)
        return res * (sigma**2 / sig2**2)[:, None], None


def _covariance(cov):
    """A finite, symmetric, positive semi-definite (d, d) covariance (a scalar is 1 x 1)."""
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"`cov` must be a square (d, d) matrix; got shape {cov.shape}.")
    if not np.all(np.isfinite(cov)):
        raise ValueError("All entries of `cov` must be finite.")
    scale = float(np.max(np.abs(cov))) if cov.size else 0.0
    if np.max(np.abs(cov - cov.T)) > 1e-12 * scale:
        raise ValueError("`cov` must be symmetric.")
    lowest = float(np.linalg.eigvalsh(cov).min())
    if lowest < -_eigen_error(cov):
        raise ValueError(f"`cov` must be positive semi-definite; its smallest eigenvalue is "
                         f"{lowest:.3g}.")
    return 0.5 * (cov + cov.T)


def _log_snr(sigma_n):
    """``log SNR = log((1 - sigma_n^2) / sigma_n^2)``: finite for every sigma_n in (0, 1), where
    the SNR itself overflows below sigma_n ~ 1e-154."""
    return np.log1p(-sigma_n * sigma_n) - 2.0 * np.log(sigma_n)


def _eigen_error(cov):
    """How far eigvalsh's eigenvalues of a symmetric ``cov`` may be from the truth: ~d u |cov|
    (with a factor 16 of margin)."""
    scale = float(np.max(np.abs(cov))) if cov.size else 0.0
    return 16 * cov.shape[0] * np.finfo(float).eps * scale


def _variances(cov):
    """The eigenvalues of ``cov`` that eigvalsh resolves from 0 (above its error of
    ~d u |cov|, the tolerance :func:`_covariance` grants a PSD matrix): the variances of x_0
    along its principal axes.  The rest are a singular covariance's zeros to round-off, and
    at small sigma_n they would otherwise add ~log(u / sigma_n^2) nats each."""
    lam = np.linalg.eigvalsh(cov)
    return lam[lam > _eigen_error(cov)]


def _half_log_det(cov, log_c):
    """``1/2 log det(I + c Sigma) = 1/2 sum_i log(1 + c lambda_i)`` over Sigma's resolved
    variances (:func:`_variances`), from ``log c``: finite wherever the answer is."""
    return 0.5 * float(np.sum(np.logaddexp(0.0, log_c + np.log(_variances(cov)))))


def leakage_ambient(cov, sigma_n):
    """I(A; x_0) = 1/2 log det(I + SNR Sigma), SNR = (1 - sigma_n^2)/sigma_n^2 (Lemma 4.2), in nats.

    A, any number of draws of the ambient optimum at t_n, are copies of one
    noisy point, so the count m does not enter.
    """
    cov = _covariance(cov)
    return _half_log_det(cov, _log_snr(_sigma_level(sigma_n, "sigma_n")))


def leakage_ddpm(cov, sigma_n, m, *, as_in_lemma=False):
    """I(D; x_0) for m i.i.d. draws of the DDPM optimum at t_n, N(sqrt(1 - sigma_n^2) x_0, sigma_n^2 I).

    Exact: ``1/2 log det(I + m SNR Sigma)``.  ``as_in_lemma=True`` returns the
    lemma's ``m I(A; x_0)``, an upper bound.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"`m` must be a positive integer; got {m!r}.")
    cov = _covariance(cov)
    if as_in_lemma:
        return m * leakage_ambient(cov, sigma_n)
    return _half_log_det(cov, np.log(m) + _log_snr(_sigma_level(sigma_n, "sigma_n")))


def leakage_monte_carlo(cov, sigma_n, m, n=20000, *, rng=None):
    """Unbiased Monte-Carlo estimate of I(D; x_0) = E[log p(D | x_0) - log p(D)] and its standard error.

    ``x_0 ~ N(0, Sigma)``, D = m conditionally independent draws
    ``sqrt(1 - sigma_n^2) x_0 + sigma_n Z_k``; both densities are evaluated exactly
    (p(D) is a Gaussian on R^{m d}).  For m = 1 this is I(A; x_0).

    Returns
    -------
    (estimate, standard_error) in nats
    """
    cov = _covariance(cov)
    s = _sigma_level(sigma_n, "sigma_n")
    m = as_count(m, "m")
    n = as_count(n, "n", low=2)
    rng = as_rng(rng)
    a2m = (1 - s * s) * m
    # The mutual information is invariant under rotations: in Sigma's eigenbasis x0 has
    # independent coordinates c_i ~ N(0, lambda_i) (exactly 0 where lambda_i = 0) and draw k
    # is a c + s Z_k.  Per coordinate, the mean of the m draws has variance a^2 m lambda_i + s^2
    # under p(D) and the m - 1 deviations from it, s (Z_ki - Zbar_i), have the same density
    # under both p(D | x0) and p(D), so they cancel: with L_i = log(1 + a^2 m lambda_i / s^2)
    #   log p(D | x0) - log p(D)
    #     = sum_i [L_i + m (a c_i + s Zbar_i)^2 / (a^2 m lambda_i + s^2) - m Zbar_i^2] / 2
    # (0 where lambda_i = 0, :func:`_variances`).  Nothing is subtracted from a signal to
    # recover the noise, and nothing overflows: the estimate holds for every sigma_n in (0, 1).
    lam = _variances(cov)
    c = rng.standard_normal((n, lam.size)) * np.sqrt(lam)
    zbar = rng.standard_normal((n, lam.size)) / np.sqrt(m)
    L = np.logaddexp(0.0, np.log(a2m * lam) - 2.0 * np.log(s))
    mean = np.sqrt(1 - s * s) * c + s * zbar
    diff = 0.5 * np.sum(L + m * mean * mean / (a2m * lam + s * s) - m * zbar * zbar, axis=1)
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(n))


def component_tv(mu_i, mu_j, sigma_t):
    """Exact TV between N(a mu_i, I) and N(a mu_j, I), a = sqrt(1 - sigma_t^2) (Lemma 4.5's q_t).

    ``TV = 2 Phi(a |mu_i - mu_j| / 2) - 1``.
    """
    sigma_t = np.asarray(sigma_t, dtype=float)
    if not np.all(np.isfinite(sigma_t)) or np.any((sigma_t < 0) | (sigma_t > 1)):
        raise ValueError("`sigma_t` must lie in [0, 1].")
    mu_i = np.atleast_1d(np.asarray(mu_i, dtype=float))
    mu_j = np.atleast_1d(np.asarray(mu_j, dtype=float))
    if mu_i.ndim != 1 or mu_i.shape != mu_j.shape:
        raise ValueError(f"`mu_i` and `mu_j` must be vectors of the same length; got shapes "
                         f"{mu_i.shape} and {mu_j.shape}.")
    if not (np.all(np.isfinite(mu_i)) and np.all(np.isfinite(mu_j))):
        raise ValueError("All entries of `mu_i` and `mu_j` must be finite.")
    with np.errstate(over="ignore"):
        diff = mu_i - mu_j                       # +-inf past 1.8e308: TV 1, as it is
        big = float(np.max(np.abs(diff))) if diff.size else 0.0
        gap = big * np.linalg.norm(diff / big) if np.isfinite(big) and big > 0 else big
    return 2.0 * norm.cdf(np.sqrt(1 - sigma_t**2) * gap / 2.0) - 1.0
