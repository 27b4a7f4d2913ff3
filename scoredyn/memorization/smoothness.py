"""Smoothness of a score field (Wang, Han & Zou 2024, "On the Discrepancy and Connection
between Memorization and Generation in Diffusion Models", §3 and Appendices B, E, F).

On a DDPM schedule, for two training points x_0, y_0 noised with the same eps
(``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``, likewise y_t):

* :func:`pseudo_difference_quotient` — eq. 28,
  ``D_f(lambda) = |f(x_t) - f(lambda x_t + (1 - lambda) y_t)| / ((1 - lambda) |x_t - y_t|)``
  for the noise prediction f = eps; for the optimum it tends to
  ``1 / sqrt(1 - abar_t)`` as lambda -> 1 (where x-hat* is locally constant).
* :func:`interpolation_loss` — eqs. 9-10,
  ``l(lambda) = |x-hat(z_t(lambda), t) - z_0(lambda)|`` with
  ``z_t(lambda) = lambda y_t + (1 - lambda) x_t`` and likewise z_0.
* :func:`noise_jacobian` — ``d eps / dx = (I - alpha dD/dx) / sigma`` from the
  field's exact Jacobian when it has one (empirical, mixture), central
  differences otherwise (a trained network); :func:`jacobian_singular_values`.
"""
import numpy as np

from .._validation import as_points, as_rng, as_scalar

from ..fields.base import ScoreField
from ..dynamics.schedules import DDPM


def _check(field, schedule, t):
    if not isinstance(field, ScoreField):
        raise TypeError(f"`field` must be a ScoreField; got {type(field).__name__}.")
    if not isinstance(schedule, DDPM):
        raise TypeError(f"`schedule` must be a DDPM schedule; got {type(schedule).__name__}.")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= schedule.T:
        raise ValueError(f"`t` must be an integer step in [1, {schedule.T}]; got {t!r}.")
    return float(schedule.sigma(t)), float(schedule.alpha(t))


def _pair(x0, y0):
    """``x0, y0`` as finite float vectors of one length (two training points)."""
    out = []
    for name, v in (("x0", x0), ("y0", y0)):
        try:
            v = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be a vector of numbers; got {v!r}.") from None
        if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"`{name}` must be a non-empty 1-D vector of finite numbers; got "
                             f"shape {v.shape}.")
        out.append(v)
    if out[0].shape != out[1].shape:
        raise ValueError(f"`x0` and `y0` must have the same length; got {out[0].size} and "
                         f"{out[1].size}.")
    return out


def _lambdas(lambdas, hi_open):
    lam = np.asarray(lambdas, dtype=float)
    if lam.ndim != 1 or not np.all(np.isfinite(lam)) or np.any(lam < 0) or np.any(
            lam >= 1 if hi_open else lam > 1):
        raise ValueError(f"`lambdas` must be a 1-D array in [0, 1{')' if hi_open else ']'}; "
                         f"got {lambdas!r}.")
    return lam


def noised_pair(schedule, x0, y0, t, rng=None):
    """``(x_t, y_t)`` with one shared noise draw, each of shape (d,)."""
    if not isinstance(schedule, DDPM):
        raise TypeError(f"`schedule` must be a DDPM schedule; got {type(schedule).__name__}.")
    x0, y0 = _pair(x0, y0)
    eps = as_rng(rng).standard_normal(x0.shape)
    a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
    return a * x0 + s * eps, a * y0 + s * eps


def pseudo_difference_quotient(field, schedule, x0, y0, t, lambdas, *, rng=None):
    """eq. 28 for the noise prediction of ``field`` at step t, shape (len(lambdas),)."""
    s, a = _check(field, schedule, t)
    lam = _lambdas(lambdas, hi_open=True)
    x0, y0 = _pair(x0, y0)
    if np.array_equal(x0, y0):
        raise ValueError("`x0` and `y0` must differ (the quotient divides by |x_t - y_t|).")
    xt, yt = noised_pair(schedule, x0, y0, t, rng)
    z = lam[:, None] * xt + (1 - lam[:, None]) * yt
    f = field.noise(np.vstack([xt[None], z]), s, a)
    return np.linalg.norm(f[1:] - f[0], axis=1) / ((1 - lam) * np.linalg.norm(xt - yt))


def interpolation_loss(field, schedule, x0, y0, t, lambdas, *, rng=None):
    """eqs. 9-10: ``|x-hat(z_t(lambda), t) - z_0(lambda)|``, shape (len(lambdas),)."""
    s, a = _check(field, schedule, t)
    lam = _lambdas(lambdas, hi_open=False)
    x0, y0 = _pair(x0, y0)
    xt, yt = noised_pair(schedule, x0, y0, t, rng)
    zt = lam[:, None] * yt + (1 - lam[:, None]) * xt
    z0 = lam[:, None] * y0 + (1 - lam[:, None]) * x0
    return np.linalg.norm(field.denoise(zt, s, a) - z0, axis=1)


def noise_jacobian(field, schedule, x, t, *, h=None):
    """``d eps(x, t) / dx``, shape (Q, d, d): exact when the field has a Jacobian, else central differences.

    Parameters
    ----------
    h : float, optional
        Finite-difference step (default ``1e-5 sigma_t``), used only without an exact Jacobian.
    """
    s, a = _check(field, schedule, t)
    x = as_points(np.atleast_2d(np.asarray(x)), field.dim, "x")[0]
    if h is not None:
        h = as_scalar(h, "h", low=0.0, low_inclusive=False)
    d = x.shape[1]
    if hasattr(field, "jacobian"):
        return (np.eye(d)[None] - a * field.jacobian(x, s, a)) / s
    h = 1e-5 * s if h is None else h
    J = np.empty((x.shape[0], d, d))
    for k in range(d):
        e = np.zeros(d)
        e[k] = h
        J[:, :, k] = (field.noise(x + e, s, a) - field.noise(x - e, s, a)) / (2 * h)
    return J


def jacobian_singular_values(field, schedule, x, t):
    """Singular values of ``d eps / dx`` at each point, descending, shape (Q, d)."""
    return np.linalg.svd(noise_jacobian(field, schedule, x, t), compute_uv=False)
