"""Noise schedules and their log-time (the change of variables behind :func:`scoredyn.solve`).

A schedule gives the forward process ``x_t = alpha(t) x_0 + sigma(t) eps`` and
its half log-SNR ``lambda(t) = log(alpha / sigma)``.  In the variables
``lambda`` and ``z = x / alpha`` the probability-flow ODE of every schedule is

    dz / dlambda = -(z - D(z; sigma~ = e^{-lambda}))                       (*)

so a schedule is only a monotone map ``t <-> lambda`` plus the rescaling
``z = x / alpha``.  For :class:`VE` (``sigma = t``) ``lambda = -log t = s``, the
theorem's log-time.
"""
import functools

import numpy as np

from .._validation import as_count, as_scalar, as_steps


def _numbers(value, name):
    """``value`` as a float array, or a ValueError naming ``name``."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number or an array of numbers; got "
                         f"{value!r}.") from None


def _times(method):
    """Check a schedule method's ``t`` — numbers, none negative or NaN: the forward process
    starts at t = 0, where ``sigma = 0`` (``+inf`` is its end) — and pass it on as a float
    array; a log of ``sigma(0) = 0`` is ``-inf`` without a warning."""
    @functools.wraps(method)
    def checked(self, t, *args):
        t = _numbers(t, "t")
        bad = ~(t >= 0)
        if np.any(bad):
            raise ValueError(f"`t` must be non-negative (the schedule starts at t = 0); got "
                             f"{t[bad].flat[0]}.")
        with np.errstate(divide="ignore"):
            return method(self, t, *args)
    return checked


def _log_snrs(method):
    """Check ``t_of_lam``'s ``lam`` (numbers, not NaN; ``+inf`` is t = 0) and pass it on as a
    float array."""
    @functools.wraps(method)
    def checked(self, lam):
        lam = _numbers(lam, "lam")
        if np.any(np.isnan(lam)):
            raise ValueError("`lam` must not be NaN.")
        with np.errstate(over="ignore"):
            return method(self, lam)
    return checked


class Schedule:
    """Base class.  Subclasses define alpha, sigma, their t-derivatives and t(lambda)."""

    #: time interval [t_min, t_max] on which the schedule is defined
    t_min = 0.0
    t_max = 1.0

    @_times
    def alpha(self, t):
        return np.ones_like(np.asarray(t, dtype=float))

    @_times
    def dalpha(self, t):
        return np.zeros_like(np.asarray(t, dtype=float))

    @_times
    def sigma(self, t):
        raise NotImplementedError

    @_times
    def dsigma(self, t):
        raise NotImplementedError

    @_times
    def lam(self, t):
        """Half log-SNR ``lambda(t) = log(alpha(t) / sigma(t))`` (decreasing in t)."""
        t = np.asarray(t, dtype=float)
        return np.log(self.alpha(t)) - np.log(self.sigma(t))

    @_log_snrs
    def t_of_lam(self, lam):
        """Inverse of :meth:`lam`."""
        raise NotImplementedError

    @_times
    def to_log_time(self, t, x):
        """``(lambda, z = x / alpha)`` for states ``x`` (Q, d) at time ``t``."""
        return self.lam(t), np.asarray(x) / self.alpha(t)

    def from_log_time(self, lam, z):
        """``(t, x = alpha z)``."""
        t = self.t_of_lam(lam)
        return t, np.asarray(z) * self.alpha(t)

    @_times
    def g2(self, t):
        """Squared diffusion coefficient ``g(t)^2`` of the forward SDE
        ``dx = f(t) x dt + g(t) dW`` with ``f = alpha'/alpha``:
        ``g^2 = 2 sigma sigma' - 2 (alpha'/alpha) sigma^2``."""
        t = np.asarray(t, dtype=float)
        a, s = self.alpha(t), self.sigma(t)
        return 2 * s * self.dsigma(t) - 2 * self.dalpha(t) / a * s * s

    @_times
    def drift_coefficient(self, t):
        """``f(t) = alpha'(t) / alpha(t)``."""
        t = np.asarray(t, dtype=float)
        return self.dalpha(t) / self.alpha(t)


class VE(Schedule):
    """Variance exploding with ``sigma(t) = t`` (``g(t)^2 = 2t``): the theorem's setting.

    ``lambda = -log t = s``.
    """

    def __init__(self, t_max=1.0):
        self.t_max = as_scalar(t_max, "t_max", low=0.0, low_inclusive=False)

    @_times
    def sigma(self, t):
        return np.asarray(t, dtype=float)

    @_times
    def dsigma(self, t):
        return np.ones_like(np.asarray(t, dtype=float))

    @_log_snrs
    def t_of_lam(self, lam):
        return np.exp(-np.asarray(lam, dtype=float))

    def __repr__(self):
        return f"VE(t_max={self.t_max})"


class VEGeometric(Schedule):
    """Variance exploding with ``g(t) = sigma_max^t`` (the authors' notebooks, sigma_max = 10).

    ``sigma(t)^2 = int_0^t sigma_max^{2 tau} dtau = (sigma_max^{2t} - 1) / (2 log sigma_max)``.
    """

    def __init__(self, sigma_max=10.0):
        self.sigma_max = as_scalar(sigma_max, "sigma_max", low=1.0, low_inclusive=False)
        self._L = np.log(self.sigma_max)

    @_times
    def sigma(self, t):
        t = np.asarray(t, dtype=float)
        return np.sqrt(np.expm1(2 * self._L * t) / (2 * self._L))

    @_times
    def dsigma(self, t):
        t = np.asarray(t, dtype=float)
        return np.exp(2 * self._L * t) / (2 * self.sigma(t))

    @_log_snrs
    def t_of_lam(self, lam):
        return np.log1p(2 * self._L * np.exp(-2 * np.asarray(lam, dtype=float))) / (2 * self._L)

    def __repr__(self):
        return f"VEGeometric(sigma_max={self.sigma_max})"


class VP(Schedule):
    """Variance preserving with linear ``beta(t) = beta_min + (beta_max - beta_min) t``.

    ``alpha = exp(-B(t)/2)``, ``B(t) = int_0^t beta``, ``sigma = sqrt(1 - alpha^2)``.
    The authors' setting is ``beta in [0.001, 3]``, ``T = 1``.
    """

    def __init__(self, beta_min=0.001, beta_max=3.0):
        self.beta_min = as_scalar(beta_min, "beta_min", low=0.0)
        self.beta_max = as_scalar(beta_max, "beta_max", low=0.0)
        if self.beta_max <= 0 and self.beta_min <= 0:
            raise ValueError("`beta_max` must be positive when `beta_min` is 0.")
        if self.beta_max < self.beta_min:
            raise ValueError(f"`beta_max` must be >= beta_min ({self.beta_min}; beta grows "
                             f"with t); got {self.beta_max}.")

    def _B(self, t):
        t = np.asarray(t, dtype=float)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    @_times
    def beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * np.asarray(t, dtype=float)

    @_times
    def alpha(self, t):
        return np.exp(-0.5 * self._B(t))

    @_times
    def dalpha(self, t):
        return -0.5 * self.beta(t) * self.alpha(t)

    @_times
    def sigma(self, t):
        return np.sqrt(-np.expm1(-self._B(t)))

    @_times
    def dsigma(self, t):
        return 0.5 * self.beta(t) * np.exp(-self._B(t)) / self.sigma(t)

    @_times
    def lam(self, t):
        B = self._B(t)
        return -0.5 * B - 0.5 * np.log(-np.expm1(-B))

    @_log_snrs
    def t_of_lam(self, lam):
        # alpha^2 / sigma^2 = e^{2 lam}  =>  B = log1p(e^{-2 lam})
        B = np.log1p(np.exp(-2 * np.asarray(lam, dtype=float)))
        a = 0.5 * (self.beta_max - self.beta_min)
        if a == 0:
            return B / self.beta_min
        b = self.beta_min
        return 2 * B / (b + np.sqrt(b * b + 4 * a * B))   # stable root of a t^2 + b t - B = 0

    def __repr__(self):
        return f"VP(beta_min={self.beta_min}, beta_max={self.beta_max})"


class DDPM:
    """Discrete DDPM schedule ``beta_1..beta_T`` (linear 1e-4..0.02 by default).

    ``abar_t = prod_{s<=t} (1 - beta_s)``, ``alpha_t = sqrt(abar_t)``,
    ``sigma_t = sqrt(1 - abar_t)``, ``lambda_t = log(alpha_t / sigma_t)``;
    index ``t = 1..T`` (``t = 0`` is the data: ``abar_0 = 1``).
    """

    def __init__(self, betas=None, *, T=1000, beta_start=1e-4, beta_end=0.02):
        if betas is None:
            T = as_count(T, "T")
            beta_start = as_scalar(beta_start, "beta_start", low=0.0, low_inclusive=False)
            beta_end = as_scalar(beta_end, "beta_end", low=0.0, low_inclusive=False)
            for name, b in (("beta_start", beta_start), ("beta_end", beta_end)):
                if b >= 1.0:
                    raise ValueError(f"`{name}` must lie in (0, 1); got {b}.")
            betas = np.linspace(beta_start, beta_end, T)
        try:
            betas = np.asarray(betas, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"`betas` must be a 1-D array of numbers; got {betas!r}.") from None
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(f"`betas` must be a non-empty 1-D array; got shape {betas.shape}.")
        if not np.all((betas > 0) & (betas < 1)):
            raise ValueError("`betas` must lie in (0, 1).")
        self.betas = betas
        self.T = betas.size
        self.abar = np.concatenate([[1.0], np.cumprod(1.0 - betas)])

    def alpha(self, t):
        """``sqrt(abar_t)`` for integer steps ``0 <= t <= T``."""
        return np.sqrt(self.abar[as_steps(t, self.T)])

    def sigma(self, t):
        """``sqrt(1 - abar_t)`` for integer steps ``0 <= t <= T``."""
        return np.sqrt(1.0 - self.abar[as_steps(t, self.T)])

    def lam(self, t):
        """``log(alpha_t / sigma_t)``; ``+inf`` at ``t = 0`` (the data)."""
        with np.errstate(divide="ignore"):
            return np.log(self.alpha(t)) - np.log(self.sigma(t))

    def __repr__(self):
        return f"DDPM(T={self.T})"


class EDM(VE):
    """EDM (Karras et al. 2022): ``sigma = t``, ``alpha = 1``, rho-spaced steps."""

    def __init__(self, sigma_min=0.002, sigma_max=80.0, rho=7.0):
        super().__init__(t_max=sigma_max)
        self.sigma_min = as_scalar(sigma_min, "sigma_min", low=0.0, low_inclusive=False)
        self.sigma_max = as_scalar(sigma_max, "sigma_max", low=self.sigma_min, low_inclusive=False)
        self.rho = as_scalar(rho, "rho", low=0.0, low_inclusive=False)

    def steps(self, n):
        """The ``n`` noise levels ``sigma_i`` from sigma_max down to sigma_min (rho spacing)."""
        n = as_count(n, "n", low=2)
        i = np.arange(n) / (n - 1)
        r = 1.0 / self.rho
        return (self.sigma_max**r + i * (self.sigma_min**r - self.sigma_max**r)) ** self.rho

    def __repr__(self):
        return f"EDM(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, rho={self.rho})"
