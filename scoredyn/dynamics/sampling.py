"""Sampling as the papers do it: in original time, for any schedule.

* :func:`probability_flow` — the probability-flow ODE
  ``dx/dt = f(t) x - g(t)^2 / 2 * score(x, t)`` integrated backwards from
  ``t_span[0]`` to ``t_span[1]`` (adaptive DOPRI5 or a fixed-step method).
* :func:`reverse_sde` — Euler-Maruyama for
  ``dx = [f(t) x - g(t)^2 score(x, t)] dt + g(t) dW`` backwards in time.
* :func:`ddim_sample`, :func:`ddpm_sample` — discrete DDPM-time samplers
  (DDIM with ``eta``; DDPM ancestral), driven by a field or by a function
  ``step -> field`` (to mix fields along the path).
* :func:`edm_sample` — EDM's Heun sampler with churn (Karras et al. 2022,
  Algorithm 2).

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

    Notes
    -----
    For the exact empirical field with an adaptive method the flow runs on the
    fused log-time kernels of :func:`scoredyn.solve` (``z = x / alpha``,
    ``lambda = log(alpha / sigma)``: the same ODE, tens of times faster, and
    ``rtol`` / ``atol`` then measure ``z``; ``h`` is not used); other fields and
    fixed-step methods integrate in original time on the numpy engine.

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
    if _log_time_exact(field, schedule, meth):
        y, status = _in_log_time(field, schedule, x, t0, t1, meth, rtol, atol, max_steps, label)
    else:
        y, status = _in_original_time(field, schedule, x, t0, t1, meth, h, rtol, atol,
                                      max_steps, kw)
    failed = status != 0
    if np.any(failed):
        first = int(np.flatnonzero(failed)[0])
        raise IntegrationError(
            f"probability_flow: {int(failed.sum())} of {status.size} trajectories did not reach "
            f"t = {t1} (trajectory {first}: {STATUS_MESSAGES[int(status[first])]}); raise "
            f"`max_steps` or loosen `rtol`/`atol`, or lower `h`.")
    return y


def _log_time_exact(field, schedule, meth):
    """True when the fused log-time kernels integrate this very flow.

    In ``z = x / alpha``, ``lambda = log(alpha / sigma)`` the flow is ``dz/dlambda =
    -r (z - D(z; e^{-lambda}))`` exactly when the field's denoiser depends on (x, sigma,
    alpha) only through (x / alpha, sigma / alpha) — true of the exact empirical field —
    and so does its shrink factor r (no regularization, or a schedule with alpha = 1).
    The fused kernels take adaptive one-step methods here (a fixed step ``h`` is in t).
    """
    from ..fields.empirical import EmpiricalScore
    if type(field) is not EmpiricalScore or field.backend == "numpy" or not meth.adaptive \
            or meth.multistep or meth.P is None:
        return False
    if field.regularization is None:
        return True
    try:
        return bool(np.all(schedule.alpha(np.linspace(schedule.t_min, schedule.t_max, 7)[1:])
                           == 1.0))
    except ValueError:                  # a discrete schedule: integer steps only
        return False


def _in_log_time(field, schedule, x, t0, t1, meth, rtol, atol, max_steps, label):
    """The flow on the fused kernels (tolerances apply to ``z = x / alpha``)."""
    from .solver import solve
    lam0, lam1 = float(schedule.lam(t0)), float(schedule.lam(t1))
    res = solve(field, x / schedule.alpha(t0), (lam0, lam1), method=meth, rtol=rtol, atol=atol,
                max_steps=max_steps, label=label)
    return res.y * schedule.alpha(t1), res.status


def _in_original_time(field, schedule, x, t0, t1, meth, h, rtol, atol, max_steps, kw):
    """The flow in original time on the numpy engine (any field, any method)."""
    def rhs(y, tau):
        # tau = -t runs forward (each trajectory at its own time); dy/dtau = -(f y - g^2/2 score)
        t = -tau
        sc = field.score(y, schedule.sigma(t), schedule.alpha(t), **kw)
        return -(schedule.drift_coefficient(t)[:, None] * y - 0.5 * schedule.g2(t)[:, None] * sc)

    from .engines.numpy_engine import integrate_rhs
    return integrate_rhs(rhs, x, (-t0, -t1), meth, h, rtol, atol, max_steps)


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
    if eta > 1.0:
        raise ValueError(f"`eta` must lie in [0, 1]; got {eta}.")
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


def edm_sample(field, x_T, *, sigmas=None, steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0,
               S_churn=0.0, S_tmin=0.0, S_tmax=float("inf"), S_noise=1.0, rng=None, label=None,
               return_path=False):
    """EDM's sampler (Karras, Aittala, Aila & Laine 2022, arXiv:2206.00364, Algorithm 2).

    Heun steps in ``sigma`` on ``dx/dsigma = (x - D(x; sigma)) / sigma`` (VE, ``alpha = 1``)
    over a rho-spaced grid, with the stochastic "churn": at each level in
    ``[S_tmin, S_tmax]`` the noise is first raised to ``sigma_hat = (1 + gamma) sigma_i``,
    ``gamma = min(S_churn / n, sqrt(2) - 1)``, by adding ``sqrt(sigma_hat^2 - sigma_i^2)
    S_noise xi``.  The last step (to sigma = 0) is an Euler step.  ``S_churn = 0`` is the
    deterministic second-order solver of the probability-flow ODE.

    Parameters
    ----------
    field : ScoreField or callable step -> ScoreField
        Any field (``field.denoise`` at ``alpha = 1``); a callable receives the step
        index ``i`` (0 at sigma_max) and returns the field to use there.
    x_T : (Q, d) array_like
        States at ``sigmas[0]`` (EDM draws them as ``sigma_max * N(0, I)``).
    sigmas : (n,) array_like, optional
        Decreasing positive noise levels; default :meth:`EDM.steps` with
        ``steps``, ``sigma_min``, ``sigma_max``, ``rho``.  ``0`` is appended.
    S_churn, S_tmin, S_tmax, S_noise : float
        EDM's stochasticity parameters (Table 5 of the paper).
    rng : int, Generator or None
        For ``S_churn > 0``.
    return_path : bool
        Also return the states after every step, shape (n, Q, d).

    Returns
    -------
    (Q, d) ndarray, and the path with ``return_path``.
    """
    from .schedules import EDM
    _check_field(field)
    if sigmas is None:
        sigmas = EDM(sigma_min, sigma_max, rho).steps(steps)
    sigmas = np.asarray(sigmas, dtype=float)
    if sigmas.ndim != 1 or sigmas.size < 1 or not np.all(np.isfinite(sigmas)) \
            or np.any(sigmas <= 0) or np.any(np.diff(sigmas) >= 0):
        raise ValueError("`sigmas` must be a 1-D array of positive, finite, strictly "
                         "decreasing noise levels.")
    S_churn = as_scalar(S_churn, "S_churn", low=0.0)
    S_noise = as_scalar(S_noise, "S_noise", low=0.0)
    S_tmin = as_scalar(S_tmin, "S_tmin", low=0.0)
    S_tmax = float(S_tmax)
    if not (S_tmax >= S_tmin):
        raise ValueError(f"`S_tmax` must be >= S_tmin ({S_tmin}); got {S_tmax}.")
    rng = as_rng(rng)
    x = _start(field, x_T)
    kw = {} if label is None else {"label": label}
    n = sigmas.size
    t = np.append(sigmas, 0.0)
    path = []
    for i in range(n):
        f = _field_at(field, i)
        gamma = min(S_churn / n, np.sqrt(2.0) - 1.0) if S_tmin <= t[i] <= S_tmax else 0.0
        t_hat = t[i] * (1.0 + gamma)
        if gamma > 0:
            x = x + np.sqrt(t_hat * t_hat - t[i] * t[i]) * S_noise * rng.standard_normal(x.shape)
        d = (x - f.denoise(x, t_hat, **kw)) / t_hat
        x_next = x + (t[i + 1] - t_hat) * d
        if t[i + 1] > 0:
            d2 = (x_next - f.denoise(x_next, t[i + 1], **kw)) / t[i + 1]
            x_next = x + (t[i + 1] - t_hat) * (0.5 * d + 0.5 * d2)
        x = x_next
        if return_path:
            path.append(x.copy())
    return (x, np.array(path)) if return_path else x
