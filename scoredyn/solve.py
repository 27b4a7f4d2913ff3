"""``solve``: the log-time reverse ODE ``dz/ds = -r (z - D(z; e^{-s}))`` for a batch of states.

Three backends, one result:

* fused kernels — numba on the CPU (:mod:`scoredyn.kernels.odeint`, or
  :mod:`scoredyn.kernels.odeint_lanes` with trajectories as SIMD lanes when
  there are many and neither recentring nor ``delta`` is asked for) and
  numba-cuda on the GPU (:mod:`scoredyn.kernels.cuda_odeint`): for :class:`EmpiricalScore`
  (with or without Tikhonov / Empirical-Bayes regularization) and every
  one-step method in the registry; the whole time loop runs in the kernel,
  one trajectory per thread, with online diagnostics;
* numpy: any field with the :class:`ScoreField` interface (Gaussian mixtures,
  user fields) and every registered method including user subclasses and the
  multistep ETD2M; vectorised over trajectories, per-trajectory step sizes.

Step control is per trajectory: each has its own step size, acceptance and
status.  A numerical failure is reported in the result, never raised.
"""
from dataclasses import dataclass, field as dc_field

import numpy as np

from ._validation import as_scalar
from .backend import is_cupy, like, resolve, to_host
from .empirical import EmpiricalScore
from .fields import ScoreField
from .integrators import get_method
from .kernels import odeint, odeint_lanes
from .regularization import EmpiricalBayes, Tikhonov

#: the CPU backend advances trajectories as SIMD lanes (kernels.odeint_lanes) from
#: this many on, unless recentring or V^delta tracking is asked for
LANE_MIN_TRAJECTORIES = 2 * odeint_lanes.LANES

STATUS_MESSAGES = {
    odeint.STATUS_SUCCESS: "The solver successfully reached the end of the integration interval.",
    odeint.STATUS_MAX_STEPS: "The number of steps exceeded `max_steps`.",
    odeint.STATUS_STEP_UNDERFLOW: "The step size fell below the resolution of s.",
    odeint.STATUS_NONFINITE: "The state became non-finite.",
}


@dataclass
class SolveResult:
    """Outcome of :func:`solve` for Q trajectories in dimension d.

    Attributes
    ----------
    y : (Q, d) ndarray
        Final states.
    s : (m,) ndarray
        The save times (``save_at``; empty if none).
    ys : (m, Q, d) ndarray
        States at the save times.
    n_steps, n_rejected, nfev : (Q,) int ndarrays
        Accepted steps, rejected steps and right-hand-side evaluations per trajectory.
    status : (Q,) int ndarray
        0 success; 1 too many steps; 2 step-size underflow; 3 non-finite state.
    message : list of str
        One message per trajectory.
    nearest : (Q,) int ndarray or None
        Index of the data point nearest to the final state (empirical fields).
    nearest_distance : (Q,) ndarray or None
        Its distance ``|y - x_nearest|`` (from the recentred deviation when
        ``recentre=True``, so it is resolved far below the float64 floor of y).
    max_norm : (Q,) ndarray or None
        Largest ``|y|`` seen along the trajectory (at step starts and the end).
    deviation : (Q, d) ndarray or None
        ``recentre=True``: final ``y - x_centre`` to full relative precision.
    centre : (Q,) int ndarray or None
        The data point ``deviation`` is measured from.
    cell_changes : (Q,) int ndarray or None
        How often the nearest data point changed (between step starts).
    boundary_distance : (Q,) ndarray or None
        Final distance to the boundary of the final Voronoi cell.
    entry_time : (Q,) ndarray or None
        With ``delta``: the time from which the trajectory stayed in
        ``V^delta`` of its final cell (NaN if it ends outside).
    first_inside : (Q,) ndarray or None
        With ``delta`` and ``s_star``: the first step start ``>= s_star`` in
        ``V^delta`` of the nearest site (NaN if none).  Invariance after ``s*``
        (Baptista et al.) means ``entry_time <= first_inside``.
    method : str
    """

    y: np.ndarray
    s: np.ndarray
    ys: np.ndarray
    n_steps: np.ndarray
    n_rejected: np.ndarray
    nfev: np.ndarray
    status: np.ndarray
    method: str
    message: list = dc_field(default_factory=list)
    nearest: np.ndarray | None = None
    nearest_distance: np.ndarray | None = None
    max_norm: np.ndarray | None = None
    deviation: np.ndarray | None = None
    centre: np.ndarray | None = None
    cell_changes: np.ndarray | None = None
    boundary_distance: np.ndarray | None = None
    entry_time: np.ndarray | None = None
    first_inside: np.ndarray | None = None

    @property
    def success(self):
        """True when every trajectory reached the end of the span."""
        return bool(np.all(self.status == 0))


def _validate(field, y0, s_span, method, h, rtol, atol, save_at, max_steps, delta=None):
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
        raise ValueError(f"`s_span` must be increasing (s0 < s1); got {tuple(span)}.")
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
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive integer; got {max_steps!r}.")
    if delta is not None:
        as_scalar(delta, "delta", low=0.0, low_inclusive=False)
    return np.ascontiguousarray(y0, dtype=np.float64), span, meth, h, rtol, atol, save


def _grid(span, save):
    grid = np.unique(np.concatenate([span, save]))
    slot = np.full(grid.size, -1, np.int64)
    slot[np.searchsorted(grid, save)] = np.arange(save.size)
    return grid, slot


def solve(field, y0, s_span, *, method="dopri5", h=None, rtol=1e-6, atol=1e-9, save_at=None,
          recentre=False, delta=None, s_star=None, max_steps=100_000, label=None,
          backend=None):
    """Integrate ``dz/ds = -r(s) (z - D(z; sigma = e^{-s}))`` from ``s_span[0]`` to ``s_span[1]``.

    For the VE schedule ``sigma(t) = t`` this is the theorem's log-time
    ``s = -log t``, ``y(s) = x(e^{-s})`` (seed 001; DESIGN.md §2); for other
    schedules map with :class:`scoredyn.schedules.Schedule` (``s = lambda``,
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
        A name in :data:`scoredyn.integrators.METHODS` (message lists them).
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
        With ``delta``: record ``SolveResult.first_inside`` from this time on.
    max_steps : int
        Per trajectory.
    label : optional
        Class label for class-conditional fields.
    backend : {"auto", "numba", "cuda", "numpy"} or None
        "numba" and "cuda" run the fused kernel (one trajectory per thread,
        the whole time loop compiled) and need an :class:`EmpiricalScore` and
        a one-step method ("cuda": ``d <= 16``); "numpy" is the vectorised
        engine for any field and method.  "auto" (default, or the
        ``SCOREDYN_BACKEND`` variable) takes the GPU when usable, else the
        CPU kernel, else numpy.  See :mod:`scoredyn.backend`.

    Returns
    -------
    SolveResult
    """
    y0_in = y0
    y0, span, meth, h, rtol, atol, save = _validate(field, to_host(y0), s_span, method, h, rtol,
                                                    atol, save_at, max_steps, delta)
    compilable = (type(field) is EmpiricalScore and not meth.multistep
                  and (meth.adaptive is False or meth.P is not None))
    choice = resolve(backend, auto=("cuda", "numba") if compilable else ("numpy",))
    if choice != "numpy" and not compilable:
        raise ValueError(f"backend {choice!r} runs the fused kernel, which needs an EmpiricalScore "
                         f"field and a one-step method (got {type(field).__name__} with "
                         f"{meth.name!r}); use backend='numpy'.")
    if (recentre or delta is not None) and choice == "numpy":
        raise ValueError("`recentre` and `delta` need the fused kernel (backend 'numba' or "
                         "'cuda', an EmpiricalScore field and a one-step method).")
    if choice == "numpy":
        from ._solve_numpy import solve_numpy
        res = solve_numpy(field, y0, span, meth, h, rtol, atol, save, max_steps, label)
    else:
        if choice == "cuda" and backend in (None, "auto") and field.dim > _cuda_max_d():
            choice = "numba"          # "auto": the GPU kernel is specialised for d <= 16
        res = _solve_fused(field, y0, span, meth, h, rtol, atol, save, recentre, max_steps,
                           label, delta, s_star, choice)
    return _like(res, y0_in)


def _cuda_max_d():
    from .kernels.cuda_odeint import MAX_D
    return MAX_D


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


def _solve_fused(field, y0, span, meth, h, rtol, atol, save, recentre, max_steps, label,
                 delta, s_star, backend):
    prep = field._prepared(label)
    reg = field.regularization
    if reg is None:
        kind, param = odeint.REG_NONE, 0.0
    elif isinstance(reg, Tikhonov):
        kind, param = odeint.REG_TIKHONOV, reg.c
    elif isinstance(reg, EmpiricalBayes):
        kind, param = odeint.REG_EMPIRICAL_BAYES, reg.tau
    else:
        raise TypeError(f"unsupported regularization {type(reg).__name__} for the fused kernel")
    grid, slot = _grid(span, save)
    nseg = grid.size - 1
    if meth.adaptive:
        A, b, c, E, Ef, ell = meth.coefficients(None)
        A, B, E, Ef = A[None], b[None], E[None], np.array([Ef])
        seg_steps = np.ones(nseg, np.int64)
        berr, P = np.asarray(meth.b_err, float), np.asarray(meth.P, float)
        h0 = h if h is not None else _initial_step(span, meth.order, rtol)
    else:
        seg_steps = np.maximum(1, np.ceil(np.diff(grid) / h * (1 - 1e-12))).astype(np.int64)
        coefs = [meth.coefficients(dg / n) for dg, n in zip(np.diff(grid), seg_steps)]
        A = np.stack([co[0] for co in coefs])
        B = np.stack([co[1] for co in coefs])
        E = np.stack([co[3] for co in coefs])
        Ef = np.array([co[4] for co in coefs])
        c, ell = coefs[0][2], coefs[0][5]
        berr, P, h0 = np.zeros(c.size), np.zeros((c.size, 4)), 0.0
    q, d = y0.shape
    args = (y0, grid, slot, seg_steps, np.ascontiguousarray(A, float),
            np.ascontiguousarray(B, float), np.ascontiguousarray(E, float),
            np.ascontiguousarray(Ef, float), np.ascontiguousarray(c, float), float(ell),
            bool(meth.adaptive), bool(meth.adaptive and meth.lawson), berr,
            np.ascontiguousarray(P, float), float(rtol), float(atol), float(h0), int(max_steps),
            kind, float(param), bool(recentre),
            float(delta) if delta is not None else 0.0,
            float(s_star) if s_star is not None else np.inf)
    if backend == "cuda":
        from . import _cuda
        (ys, y, u, centre, n_steps, n_rej, nfev, status, nearest, near_d2, max_norm, changes,
         bdist, entry, first_in) = _cuda.integrate(prep.X, args, save.size, q, d)
    else:
        ys = np.full((save.size, q, d), np.nan)
        y, u = np.empty((q, d)), np.empty((q, d))
        centre, n_steps, n_rej, nfev, status, nearest = (np.zeros(q, np.int64) for _ in range(6))
        near_d2, max_norm, bdist, entry, first_in = (np.empty(q) for _ in range(5))
        changes = np.zeros(q, np.int64)
        if recentre or delta is not None or q < LANE_MIN_TRAJECTORIES:
            odeint.integrate(prep.XT, *args, ys, y, u, centre, n_steps, n_rej, nfev, status,
                             nearest, near_d2, max_norm, changes, bdist, entry, first_in)
        else:   # trajectories as SIMD lanes: the same scheme, ~4x faster at small N
            odeint_lanes.integrate_lanes(prep.XT, *args[:-3], ys, y, n_steps, n_rej, nfev,
                                         status, nearest, near_d2, max_norm, changes, bdist)
    if recentre:
        # distance to the nearest site from the deviation (full relative precision)
        same = nearest == centre
        dist = np.sqrt(near_d2)
        dist[same] = np.linalg.norm(u[same], axis=1)
    else:
        dist = np.sqrt(near_d2)
    return SolveResult(
        y=y, s=save, ys=ys, n_steps=n_steps, n_rejected=n_rej, nfev=nfev, status=status,
        method=meth.name, message=[STATUS_MESSAGES[int(st)] for st in status], nearest=nearest,
        nearest_distance=dist, max_norm=max_norm, deviation=u if recentre else None,
        centre=centre if recentre else None, cell_changes=changes, boundary_distance=bdist,
        entry_time=entry if delta is not None else None,
        first_inside=first_in if (delta is not None and s_star is not None) else None)


def _initial_step(span, order, rtol):
    """A conservative first step; the controller adapts it within a few steps."""
    return float(min(0.1 * (span[1] - span[0]), 0.1 * rtol ** (1.0 / (order + 1))))
