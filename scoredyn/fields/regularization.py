"""Regularised optima of score matching (Baptista et al. 2025, arXiv:2501.15785).

Every regularised field here is the exact score ``s = r (a D - x) / sigma^2``
with a shrink factor ``r`` in ``[0, 1]`` (``r = 1`` is the empirical score):

* :class:`Tikhonov` — minimiser of ``E|s - grad log p|^2 + gamma(t)^2 E|s|^2``
  with ``gamma^2 sigma^2 = c`` (Baptista et al. 2025, arXiv:2501.15785, "Optimal regularized score
  function"): ``r = sigma^2 / (sigma^2 + c)``, so ``s -> -(x - x_i)/c``, bounded,
  as ``t -> 0``.
* :class:`EmpiricalBayes` — the authors' published variant with unnormalised
  weights ``w~_i = exp(l_i - max(logsumexp(l), log tau))``,
  ``l_i = -|x - a x_i|^2 / (2 sigma^2)``: ``r = min(1, exp(logsumexp(l)) / tau)``.

Consequently ``noise = r (x - a D) / sigma`` and the Tweedie denoiser is
``(x + r (a D - x)) / a``; in log-time the ODE becomes
``dz/ds = -r (z - D)`` (:func:`scoredyn.solve`).
"""
import numpy as np

from .._validation import as_scalar


class Regularization:
    """Base class: a shrink factor ``r(sigma, logsumexp(l))`` in [0, 1].

    Subclasses give ``r``, ``r / sigma`` and ``r / sigma^2`` in forms that
    neither overflow nor underflow prematurely at extreme sigma.
    """

    def factors(self, sigma, log_normalizer):
        """``(r, r / sigma, r / sigma^2)``, each of shape (Q,)."""
        raise NotImplementedError

    def ratio(self, sigma, log_normalizer):
        """The shrink factor ``r``, shape (Q,)."""
        return self.factors(sigma, log_normalizer)[0]

    def dlog_ratio_dlse(self, sigma, log_normalizer):
        """``d log r / d logsumexp(l)``, shape (Q,) (for the Jacobian)."""
        return np.zeros_like(log_normalizer)


class Tikhonov(Regularization):
    """Tikhonov-regularised score, ``gamma(t)^2 sigma(t)^2 = c``.

    Parameters
    ----------
    c : float
        Regularization strength, ``c >= 0`` (``c = 0`` is the empirical score).
    """

    def __init__(self, c):
        self.c = as_scalar(c, "c", low=0.0)

    def factors(self, sigma, log_normalizer):
        with np.errstate(over="ignore", divide="ignore"):
            if self.c == 0.0:
                return np.ones_like(sigma), 1.0 / sigma, 1.0 / sigma / sigma
            den = sigma * sigma + self.c                 # >= c > 0: never 0
            return 1.0 / (1.0 + self.c / sigma / sigma), sigma / den, 1.0 / den

    def __repr__(self):
        return f"Tikhonov(c={self.c!r})"


class EmpiricalBayes(Regularization):
    """Empirical-Bayes regularised score of the authors' code.

    Parameters
    ----------
    tau : float
        Threshold on the mixture's unnormalised mass, ``tau > 0``.
    """

    def __init__(self, tau):
        self.tau = as_scalar(tau, "tau", low=0.0, low_inclusive=False)

    def factors(self, sigma, log_normalizer):
        r = np.exp(np.minimum(0.0, log_normalizer - np.log(self.tau)))
        with np.errstate(over="ignore"):
            return r, r / sigma, r / sigma / sigma

    def dlog_ratio_dlse(self, sigma, log_normalizer):
        return (log_normalizer < np.log(self.tau)).astype(np.float64)

    def __repr__(self):
        return f"EmpiricalBayes(tau={self.tau!r})"
