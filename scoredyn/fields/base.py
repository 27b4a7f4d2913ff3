"""The common interface of score fields: ``denoise``, ``score``, ``noise``.

A field provides, for points ``x`` (Q, d) at noise level ``sigma`` and signal
scale ``alpha`` (the forward process ``x_t = alpha x_0 + sigma eps``), the
residual ``alpha D(x) - x`` (:meth:`ScoreField.residual`, with ``D`` the
posterior mean ``E[x_0 | x_t = x]``) and a shrink factor ``r`` in [0, 1]
(``r = 1`` unless regularised).  Tweedie's formula (Efron 2011, "Tweedie's
formula and selection bias") then gives all three:

* score      ``grad log p_t(x) = r (alpha D - x) / sigma^2``
* noise      ``eps*(x) = -sigma * score = r (x - alpha D) / sigma``
* denoise    ``E[x_0 | x_t = x] = (x + sigma^2 score) / alpha = (x + r (alpha D - x)) / alpha``

Divisions by ``sigma`` are done one factor at a time, so a score is ``+-inf``
only where its true value exceeds the float64 range, and exactly 0 at a data
point for every sigma.
"""
import functools

import numpy as np

from .._validation import as_points, as_positive, result_dtype
from ..backend import is_cupy, like, to_host


def array_io(method):
    """numpy in, numpy out; cupy in, cupy out (``x``, ``sigma``, ``alpha`` may be cupy arrays).

    Inputs are brought to the host for validation (O(Q d)); results (arrays or
    tuples of arrays) go back to the device when ``x`` was a cupy array.
    """
    @functools.wraps(method)
    def wrapper(self, x, *args, **kwargs):
        args = tuple(to_host(a) for a in args)
        kwargs = {k: to_host(v) for k, v in kwargs.items()}
        out = method(self, to_host(x), *args, **kwargs)
        if not is_cupy(x):
            return out
        if isinstance(out, tuple):
            return tuple(like(o, x) for o in out)
        return like(out, x)
    return wrapper


class ScoreField:
    """Base class of score fields: implement :meth:`residual` (and set ``dim``).

    Everything else — :meth:`score`, :meth:`noise`, :meth:`denoise` with their
    input checks, :func:`scoredyn.solve` (the "numpy" engine), every sampler
    of :mod:`scoredyn.dynamics.sampling`, the smoothness analyses, mixed sampling and
    the memorization metrics on generated samples — is built on
    :meth:`residual`, so a field written outside the package runs wherever
    the package's own fields do.  A minimal field, the exact score of data
    ``N(mu, I)`` (``D = (alpha x + sigma^2 mu) / (alpha^2 + sigma^2)``)::

        class UnitGaussian(scoredyn.ScoreField):
            def __init__(self, mu):
                self.mu = np.asarray(mu, float)
                self.dim = self.mu.size

            def residual(self, x, sigma, alpha, label=None):
                D = (alpha[:, None] * x + (sigma**2)[:, None] * self.mu) / (alpha**2 + sigma**2)[:, None]
                return alpha[:, None] * D - x, None

    A trained denoiser ``D_theta(x, sigma)`` fits the same way:
    ``return alpha[:, None] * D_theta(x, sigma, alpha) - x, None``.
    """

    #: dimension of the data space (set by subclasses)
    dim: int
    #: regularization (None: r = 1)
    regularization = None
    #: dtype of the field's data: float32 data keep float32 results for float32 queries
    _dtype = np.float64

    def residual(self, x, sigma, alpha, label=None):
        """The residual ``alpha D(x) - x = sigma^2 grad log p_t(x)`` (the extension point).

        Called by the package with validated arrays; implement it in a subclass.

        Parameters
        ----------
        x : (Q, d) float64 ndarray
            Finite points.
        sigma, alpha : (Q,) float64 ndarrays
            Noise level and signal scale per point (``x_t = alpha x_0 + sigma eps``),
            positive; ``sigma`` may be as small as 5e-324 or as large as 1e308.
        label : optional
            Class label for class-conditional fields (None: unconditional).

        Returns
        -------
        residual : (Q, d) float64 ndarray
            ``alpha D(x) - x`` with ``D = E[x_0 | x_t = x]``.
        log_normalizer : (Q,) float64 ndarray or None
            ``logsumexp`` of the softmax logits where the field's regularization
            needs it (Empirical Bayes); None otherwise.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  f"`residual(x, sigma, alpha, label=None)`.")

    def _prepare(self, x, sigma, alpha):
        x64, xdtype = as_points(x, self.dim)
        q = x64.shape[0]
        sigma = as_positive(sigma, q, "sigma")
        alpha = as_positive(alpha, q, "alpha")
        return x64, sigma, alpha, result_dtype(np.empty(0, xdtype), np.empty(0, self._dtype))

    def _factors(self, sigma, lse):
        """``(r, r / sigma, r / sigma^2)`` per query."""
        if self.regularization is None:
            with np.errstate(over="ignore"):
                return np.ones_like(sigma), 1.0 / sigma, 1.0 / sigma / sigma
        return self.regularization.factors(sigma, lse)

    def _over_sigma(self, res, sigma, lse, power):
        """``r res / sigma^power``, dividing by sigma one factor at a time: ``1 / sigma^2``
        alone over- or underflows (sigma below ~1e-154 or above ~1e154) where the score itself
        does not."""
        reg = self.regularization
        if reg is not None and getattr(reg, "c", 0.0) > 0.0:
            # Tikhonov: r / sigma^2 = 1 / (sigma^2 + c) <= 1 / c, finite as it is
            return self._scaled(res, self._factors(sigma, lse)[power])
        out = res
        if reg is not None:                  # r / sigma^p with r in [0, 1] (r = 1 when c = 0)
            out = res * self._factors(sigma, lse)[0][:, None]
        with np.errstate(over="ignore", under="ignore"):
            for _ in range(power):
                out = out / sigma[:, None]
        return np.where(res == 0.0, 0.0, out)

    @staticmethod
    def _scaled(res, factor):
        # res == 0 exactly (x at a data point) gives 0 even where the factor is inf
        with np.errstate(invalid="ignore", over="ignore"):
            return np.where(res == 0.0, 0.0, res * factor[:, None])

    @array_io
    def score(self, x, sigma, alpha=1.0, *, label=None):
        """Score ``grad_x log p_t(x)`` of the noised data distribution.

        Parameters
        ----------
        x : (Q, d) array_like
            Points at which to evaluate.
        sigma : float or (Q,) array_like
            Noise level ``sigma_t > 0``.
        alpha : float or (Q,) array_like, default 1
            Signal scale ``alpha_t > 0`` (1 for VE; ``sqrt(1 - sigma^2)`` for VP).
        label : optional
            Class label for class-conditional fields.

        Returns
        -------
        (Q, d) ndarray
            ``r (alpha D - x) / sigma^2``.  An entry whose magnitude exceeds the float64
            range (x away from the data at sigma below about 1e-154) is ``+-inf`` with
            its exact sign; one whose residual is exactly 0 is 0.
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        return self._residual_over_sigma(x64, sigma, alpha, label, 2).astype(dt, copy=False)

    @array_io
    def noise(self, x, sigma, alpha=1.0, *, label=None):
        """Optimal noise prediction ``eps*(x) = -sigma * score = r (x - alpha D) / sigma``.

        Parameters and shapes as in :meth:`score`.
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        return (-self._residual_over_sigma(x64, sigma, alpha, label, 1)).astype(dt, copy=False)

    def _residual_over_sigma(self, x, sigma, alpha, label, power):
        """``r (alpha D - x) / sigma^power``: the score (power 2), minus the noise (power 1)."""
        res, lse = self.residual(x, sigma, alpha, label)
        return self._over_sigma(res, sigma, lse, power)

    @array_io
    def denoise(self, x, sigma, alpha=1.0, *, label=None):
        """Posterior mean ``E[x_0 | x_t = x] = (x + r (alpha D - x)) / alpha`` (Tweedie).

        Parameters and shapes as in :meth:`score`; for the unregularised
        empirical field this is ``D(x) = sum_i w_i x_i``.
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        return self._denoised(x64, sigma, alpha, label).astype(dt, copy=False)

    def _denoised(self, x, sigma, alpha, label):
        res, lse = self.residual(x, sigma, alpha, label)
        r = self._factors(sigma, lse)[0]
        return (x + r[:, None] * res) / alpha[:, None]
