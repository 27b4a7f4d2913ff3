"""``solve``: the log-time reverse ODE ``dz/ds = -r (z - D(z; e^{-s}))`` for a batch of states.

The request is validated into a frozen :class:`scoredyn.dynamics.engines.Problem` and
run by one engine of :data:`scoredyn.dynamics.engines.ENGINES` (``engine=`` names one;
by default the choice follows ``backend=``, see :mod:`scoredyn.dynamics.engines`):

* the fused kernels — numba on the CPU (one trajectory per thread, or
  trajectories as SIMD lanes) and numba-cuda on the GPU — run the whole time
  loop compiled, with online Voronoi diagnostics, for
  :class:`EmpiricalScore` (with or without Tikhonov / Empirical-Bayes
  regularization) and every one-step method in the registry;
* numpy runs any field with the :class:`ScoreField` interface (Gaussian
  mixtures, trained networks, a user's own field) and every registered method,
  including user subclasses and the multistep ETD2M.

Step control is per trajectory: each has its own step size, acceptance and
status, and every engine takes the same steps.  A numerical failure is
reported in the result, never raised.
"""
import numpy as np

from .._validation import as_scalar, kernel_array
from ..backend import is_cupy, like, to_host
from .engines import STATUS_MESSAGES, Problem, SolveResult, choose  # noqa: F401 (re-exported)
from ..fields.base import ScoreField
from ..kernels.scalar import STEP_RESOLUTION
from .integrators import get_method


def method_options(method, h, rtol, atol):
    """Validate a method and its step options as :func:`solve` takes them.

    Returns
    -------
    meth : Integrator subclass
    h : float or None
        Required (> 0) for fixed-step methods; optional first step for adaptive ones.
    rtol, atol : float
        Positive and finite (adaptive methods; passed through otherwise).
    """
    meth = get_method(method)
    if meth.adaptive:
        rtol = as_scalar(rtol, "rtol", low=0.0, low_inclusive=False)
        atol = as_scalar(atol, "atol", low=0.0, low_inclusive=False)
        if h is not None:
            h = as_scalar(h, "h", low=0.0, low_inclusive=False)
    else:
        if h is None:
            raise ValueError(f"`h` (the largest step) is required for the fixed-step method "
                             f"{meth.name!r}.")
        h = as_scalar(h, "h", low=0.0, low_inclusive=False)
    return meth, h, rtol, atol


def check_max_steps(max_steps):
    """``max_steps`` must be a positive integer (bool refused)."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive integer; got {max_steps!r}.")


def _validate(field, y0, s_span, method, h, rtol, atol, save_at, max_steps, delta=None,
              s_star=None):
    if not isinstance(field, ScoreField):
        raise TypeError(f"`field` must be a ScoreField (EmpiricalScore, GaussianMixture, ...); "
                        f"got {type(field).__name__}.")
    y0 = np.asarray(y0)
    if y0.ndim != 2 or y0.shape[1] != field.dim:
        raise ValueError(f"`y0` must have shape (Q, {field.dim}); got shape {y0.shape}.")
    if not np.issubdtype(y0.dtype, np.number) or np.iscomplexobj(y0):
        raise TypeError(f"`y0` must be a real numeric array; got dtype {y0.dtype}.")
    if not np.all(np.isfinite(y0)):
        raise ValueError("All components of the initial state `y0` must be finite.")
    span = np.asarray(s_span, dtype=float)
    if span.shape != (2,) or not np.all(np.isfinite(span)):
        raise ValueError(f"`s_span` must be two finite numbers (s0, s1); got {s_span!r}.")
    if not span[1] > span[0]:
        raise ValueError(f"`s_span` must be increasing (s0 < s1); got ({span[0]:g}, {span[1]:g}).")
    meth, h, rtol, atol = method_options(method, h, rtol, atol)
    # a fixed step below the resolution of s (the rule by which the adaptive loops report a
    # step underflow) cannot advance it, and the number of steps it implies overflows a count
    resolution = STEP_RESOLUTION * max(1.0, abs(span[0]), abs(span[1]))
    if not meth.adaptive and h <= resolution:
        raise ValueError(f"`h` must exceed the resolution of s on s_span ({resolution:.3g} = "
                         f"{STEP_RESOLUTION:g} max(1, |s|)); got {h:g}.")
    if save_at is None:
        save = np.empty(0)
    else:
        save = np.atleast_1d(np.asarray(save_at, dtype=float))
        if save.ndim != 1 or not np.all(np.isfinite(save)):
            raise ValueError("`save_at` must be a 1-D array of finite times.")
        if np.any(save < span[0]) or np.any(save > span[1]):
            raise ValueError(f"`save_at` must lie within s_span {tuple(span)}; got values in "
                             f"[{save.min()}, {save.max()}].")
        if np.any(np.diff(save) <= 0):
            raise ValueError("`save_at` must be strictly increasing.")
    check_max_steps(max_steps)
    if delta is not None:
        delta = as_scalar(delta, "delta", low=0.0, low_inclusive=False)
    if s_star is not None:
        s_star = as_scalar(s_star, "s_star")
        if delta is None:
            raise ValueError("`s_star` (from when `first_inside` is recorded) needs `delta` "
                             "(the shrunken cell V^delta it records); got s_star alone.")
        if s_star > span[1]:
            raise ValueError(f"`s_star` must not exceed the end of s_span ({span[1]:g}): "
                             f"nothing would be recorded; got {s_star:g}.")
    return kernel_array(y0), span, meth, h, rtol, atol, save, delta, s_star


def solve(field, y0, s_span, *, method="dopri5", h=None, rtol=1e-6, atol=1e-9, save_at=None,
          recentre=False, delta=None, s_star=None, max_steps=100_000, label=None,
          backend=None, engine=None):
    """Integrate ``dz/ds = -r(s) (z - D(z; sigma = e^{-s}))`` from ``s_span[0]`` to ``s_span[1]``.

    For the VE schedule ``sigma(t) = t`` this is the theorem's log-time
    ``s = -log t``, ``y(s) = x(e^{-s})`` (Baptista et al. 2025, arXiv:2501.15785, §3); for other
    schedules map with :class:`scoredyn.dynamics.schedules.Schedule` (``s = lambda``,
    ``z = x / alpha``).

    Parameters
    ----------
    field : ScoreField
        The score field; ``r`` is its regularization's shrink factor (1 without).
    y0 : (Q, d) array_like
        Initial states at ``s_span[0]`` (a cupy array gives cupy results).
    s_span : (s0, s1)
        Increasing log-time span.
    method : str or Integrator subclass
        A name in :data:`scoredyn.dynamics.integrators.METHODS` (message lists them).
        ``"gl-dopri5"`` reaches a given final error with about a third of
        ``"dopri5"``'s steps on this dynamics (it is exact once ``D`` is
        constant); its late steps are long (up to 64 in ``s``), so the
        diagnostics sampled at step starts (``max_norm``, ``cell_changes``,
        ``entry_time``) are sampled more sparsely there.
    h : float
        Fixed-step methods: the largest step (each segment between save times
        takes equal steps <= h).  Adaptive methods: the first step (optional).
    rtol, atol : float
        Adaptive methods: tolerances of the RMS error norm per trajectory.
    save_at : (m,) array_like, optional
        Increasing times within the span at which to store states.
    recentre : bool
        Integrate the deviation from the nearest data point (empirical fields,
        fused kernels): resolves ``|y - x_i| ~ e^{-s}`` far past the float64 floor.
    delta : float, optional
        Track entry into the shrunken Voronoi cell ``V^delta`` (fused kernels;
        one extra O(N d) pass per step); see ``SolveResult.entry_time``.
    s_star : float, optional
        With ``delta`` (required): record ``SolveResult.first_inside`` from this time on
        (at most ``s_span[1]``).
    max_steps : int
        Per trajectory.
    label : optional
        Class label for class-conditional fields.
    backend : {"auto", "numba", "cuda", "numpy"} or None
        The family of engines: "numba" and "cuda" run the fused kernels (the
        whole time loop compiled) and need an :class:`EmpiricalScore` and a
        one-step method ("cuda": ``d <= 16``); "numpy" is the vectorised engine
        for any field and method.  "auto" (default, or the ``SCOREDYN_BACKEND``
        variable) takes the GPU when usable, else the CPU kernels, else numpy.
        See :mod:`scoredyn.backend`.
    engine : {"numpy", "numba", "numba-lanes", "batched", "cuda"} or None
        One engine by name (:data:`scoredyn.dynamics.engines.ENGINES`; ``ValueError``
        with the reason when it cannot run the problem).  None: the automatic
        choice described in :mod:`scoredyn.dynamics.engines` (on the CPU, the SIMD-lane
        kernel from 128 trajectories on when neither ``recentre`` nor ``delta``
        is asked for).

    Returns
    -------
    SolveResult
    """
    p = problem(field, y0, s_span, method=method, h=h, rtol=rtol, atol=atol, save_at=save_at,
                recentre=recentre, delta=delta, s_star=s_star, max_steps=max_steps, label=label)
    return _like(choose(p, engine, backend).run(p), y0)


def problem(field, y0, s_span, *, method="dopri5", h=None, rtol=1e-6, atol=1e-9, save_at=None,
            recentre=False, delta=None, s_star=None, max_steps=100_000, label=None):
    """The validated, frozen :class:`~scoredyn.dynamics.engines.Problem` that :func:`solve`
    hands its engine (arguments as in :func:`solve`; host arrays)."""
    y0, span, meth, h, rtol, atol, save, delta, s_star = _validate(
        field, to_host(y0), s_span, method, h, rtol, atol, save_at, max_steps, delta, s_star)
    return Problem(field=field, y0=y0, span=span, method=meth, h=h, rtol=rtol, atol=atol,
                   save=save, max_steps=int(max_steps), label=label, recentre=bool(recentre),
                   delta=delta, s_star=s_star)


def _like(res, reference):
    """Arrays of the result as cupy arrays when ``y0`` was one."""
    if not is_cupy(reference):
        return res
    for name in ("y", "ys", "deviation", "nearest", "nearest_distance", "max_norm", "centre",
                 "cell_changes", "boundary_distance", "entry_time", "first_inside", "n_steps",
                 "n_rejected", "nfev", "status"):
        value = getattr(res, name)
        if value is not None:
            setattr(res, name, like(value, reference))
    return res
