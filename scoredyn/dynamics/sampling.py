"""Sampling as the papers do it: in original time, for any schedule.

* :func:`probability_flow` — the probability-flow ODE
  ``dx/dt = f(t) x - g(t)^2 / 2 * score(x, t)`` integrated backwards from
  ``t_span[0]`` to ``t_span[1]`` (adaptive DOPRI5 or a fixed-step method).
* :func:`reverse_sde` — Euler-Maruyama for
  ``dx = [f(t) x - g(t)^2 score(x, t)] dt + g(t) dW`` backwards in time.
* :func:`ddim_sample`, :func:`ddpm_sample` — discrete DDPM-time samplers
  (DDIM with ``eta``; DDPM ancestral), driven by a field or by a function
  ``step -> field`` (to mix fields along the path).

In log-time ``lambda = log(alpha / sigma)`` the probability-flow ODE of every
schedule is the one of :func:`scoredyn.solve` (the probability-flow ODE of Karras,
Aittala, Aila & Laine 2022, arXiv:2206.00364, after the change of variables
``z = x / alpha``, ``sigma~ = e^{-lambda}``); the tests check that both agree.
"""
import numpy as np

from .._validation import as_points, as_rng, as_scalar
from ..fields.base import ScoreField
from .engines.base import STATUS_MESSAGES
from .schedules import DDPM, Schedule
from .solver import check_max_steps, method_options


class IntegrationError(RuntimeError):
    """An original-time sampler's integration did not reach the end of its span."""


def _span(t_span):
    """``(t0, t1)`` as floats, or a ValueError naming ``t_span``."""
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"`t_span` must be two numbers (t0, t1); got {t_span!r}.") from None
    return t0, t1


def _start(field, x_T):
    """``x_T`` checked against the (first) field's dimension, as float64."""
    f = _field_at(field, 1) if not isinstance(field, ScoreField) else field
    return as_points(x_T, f.dim, "x_T")[0].copy()


def _field_at(field, step):
    return field(step) if callable(field) and not isinstance(field, ScoreField) else field


def _check_field(field):
    if not (isinstance(field, ScoreField) or callable(field)):
        raise TypeError(f"`field` must be a ScoreField or a callable step -> ScoreField; "
                        f"got {type(field).__name__}.")


def probability_flow(field, schedule, x_T, t_span, *, method="dopri5", h=None, rtol=1e-8,
                     atol=1e-10, max_steps=100_000, label=None):
    """Integrate the probability-flow ODE of ``schedule`` from ``t_span[0]`` down to ``t_span[1]``.

    Parameters
    ----------
    field : ScoreField
    schedule : Schedule
    x_T : (Q, d) array_like
        States at ``t_span[0]``.
    t_span : (t0, t1), t0 > t1 > 0
    method, h, rtol, atol, max_steps : as in :func:`scoredyn.solve`
        (the step is in original time ``t``).

    Returns
    -------
    (Q, d) ndarray
        States at ``t_span[1]``.

    Raises
    ------
    IntegrationError
        When a trajectory did not reach ``t_span[1]`` (too many steps, a step
        below the resolution of t, or a non-finite state): a state part of the
        way is never returned as a sample.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule; got {type(schedule).__name__}.")
    x, _ = as_points(x_T, field.dim, "x_T")
    t0, t1 = _span(t_span)
    if not (np.isfinite(t0) and np.isfinite(t1) and t0 > t1 > 0):
        raise ValueError(f"`t_span` must satisfy t0 > t1 > 0 (integration runs backwards); "
                         f"got {tuple(t_span)}.")
    meth, h, rtol, atol = method_options(method, h, rtol, atol)
    check_max_steps(max_steps)
    kw = {} if label is None else {"label": label}

    def rhs(y, tau):
        # tau = -t runs forward (each trajectory at its own time); dy/dtau = -(f y - g^2/2 score)
        t = -tau
        sc = field.score(y, schedule.sigma(t), schedule.alpha(t), **kw)
        return -(schedule.drift_coefficient(t)[:, None] * y - 0.5 * schedule.g2(t)[:, None] * sc)

    from .engines.numpy_engine import integrate_rhs
    y, status = integrate_rhs(rhs, x, (-t0, -t1), meth, h, rtol, atol, max_steps)
    failed = status != 0
    if np.any(failed):
        first = int(np.flatnonzero(failed)[0])
        raise IntegrationError(
            f"probability_flow: {int(failed.sum())} of {status.size} trajectories did not reach "
            f"t = {t1} (trajectory {first}: {STATUS_MESSAGES[int(status[first])]}); raise "
            f"`max_steps` or loosen `rtol`/`atol`, or lower `h`.")
    return y


def reverse_sde(field, schedule, x_T, t_span, *, n_steps, rng=None, label=None):
    """Euler-Maruyama for the reverse-time SDE on a uniform grid in ``t``.

    ``x_{k+1} = x_k - [f(t) x_k - g^2(t) score(x_k, t)] dt + g(t) sqrt(dt) xi_k``,
    ``dt = (t0 - t1) / n_steps``, ``xi_k ~ N(0, I)`` drawn from ``rng``.

    Returns
    -------
    (Q, d) ndarray
        Samples at ``t_span[1]``.
    """
    x, _ = as_points(x_T, field.dim, "x_T")
    t0, t1 = _span(t_span)
    if not (np.isfinite(t0) and np.isfinite(t1) and t0 > t1 >= 0):
        raise ValueError(f"`t_span` must satisfy t0 > t1 >= 0; got {tuple(t_span)}.")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive integer; got {n_steps!r}.")
    rng = as_rng(rng)
    kw = {} if label is None else {"label": label}
    dt = (t0 - t1) / n_steps
    x = x.copy()
    for k in range(n_steps):
        t = t0 - k * dt
        g2 = schedule.g2(t)
        drift = schedule.drift_coefficient(t) * x - g2 * field.score(
            x, schedule.sigma(t), schedule.alpha(t), **kw)
        x = x - drift * dt + np.sqrt(g2 * dt) * rng.standard_normal(x.shape)
    return x


def _ddpm_steps(schedule, steps):
    if not isinstance(schedule, DDPM):
        raise TypeError(f"`schedule` must be a DDPM schedule; got {type(schedule).__name__}.")
    if steps is None:
        return np.arange(schedule.T, 0, -1)
    steps = np.asarray(steps)
    if (steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer)
            or np.any(np.diff(steps) >= 0) or steps[-1] < 1 or steps[0] > schedule.T):
        raise ValueError(f"`steps` must be a strictly decreasing sequence of integers in "
                         f"[1, {schedule.T}].")
    return steps


def ddim_sample(field, schedule, x_T, *, steps=None, eta=0.0, rng=None, label=None,
                return_path=False):
    """DDIM (Song et al. 2021) in discrete DDPM time; ``eta = 0`` is deterministic.

    ``x_prev = alpha_prev x0_hat + sqrt(sigma_prev^2 - c^2) eps_hat + c xi``,
    ``c = eta sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev)``,
    with ``x0_hat = field.denoise`` and ``eps_hat = field.noise`` at
    ``(sigma_t, alpha_t)``.  With ``eta = 0`` this is exponential Euler (ETD1)
    on the log-time ODE with steps ``lambda_prev - lambda_t``.

    Parameters
    ----------
    field : ScoreField or callable step -> ScoreField
    schedule : DDPM
    x_T : (Q, d) array_like
    steps : decreasing ints in [1, T], optional
        The visited time indices (default T, T-1, ..., 1); the last update
        goes to ``t = 0`` (returns ``x0_hat`` of the last step).
    eta : float in [0, 1]
    rng : for eta > 0
    return_path : bool
        Also return the states after every update, shape (len(steps), Q, d).
    """
    _check_field(field)
    steps = _ddpm_steps(schedule, steps)
    eta = as_scalar(eta, "eta", low=0.0)
    rng = as_rng(rng)
    x = _start(field, x_T)
    kw = {} if label is None else {"label": label}
    path = []
    for n, t in enumerate(steps):
        f = _field_at(field, int(t))
        prev = int(steps[n + 1]) if n + 1 < steps.size else 0
        a_t, s_t = schedule.alpha(t), schedule.sigma(t)
        a_p, s_p = schedule.alpha(prev), schedule.sigma(prev)
        x0 = f.denoise(x, s_t, a_t, **kw)
        eps = f.noise(x, s_t, a_t, **kw)
        c = eta * (s_p / s_t) * np.sqrt(max(0.0, 1.0 - (a_t / a_p) ** 2)) if prev > 0 else 0.0
        x = a_p * x0 + np.sqrt(max(s_p**2 - c**2, 0.0)) * eps
        if c > 0:
            x = x + c * rng.standard_normal(x.shape)
        if return_path:
            path.append(x.copy())
    return (x, np.array(path)) if return_path else x


def ddpm_sample(field, schedule, x_T, *, rng=None, label=None, variance="posterior"):
    """DDPM ancestral sampling (Ho et al. 2020), t = T..1.

    ``x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(1 - beta_t) + s_t z``,
    with ``s_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t)`` ("posterior") or
    ``beta_t`` ("beta"); no noise at the last step.
    """
    _check_field(field)
    if variance not in ("posterior", "beta"):
        raise ValueError(f"`variance` must be 'posterior' or 'beta'; got {variance!r}.")
    if not isinstance(schedule, DDPM):
        raise TypeError(f"`schedule` must be a DDPM schedule; got {type(schedule).__name__}.")
    rng = as_rng(rng)
    x = _start(field, x_T)
    kw = {} if label is None else {"label": label}
    ab = schedule.abar
    for t in range(schedule.T, 0, -1):
        f = _field_at(field, t)
        beta = schedule.betas[t - 1]
        eps = f.noise(x, schedule.sigma(t), schedule.alpha(t), **kw)
        x = (x - beta / np.sqrt(1 - ab[t]) * eps) / np.sqrt(1 - beta)
        if t > 1:
            var = beta * (1 - ab[t - 1]) / (1 - ab[t]) if variance == "posterior" else beta
            x = x + np.sqrt(var) * rng.standard_normal(x.shape)
    return x
