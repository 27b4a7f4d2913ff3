"""What every engine of :func:`scoredyn.solve` takes and returns.

:class:`Problem` is a validated, frozen description of one solve; an
:class:`Engine` says whether it can serve a problem (:meth:`Engine.unavailable`)
and runs it (:meth:`Engine.run`) into a :class:`SolveResult`.
"""
from dataclasses import dataclass, fields, field as dc_field

import numpy as np

from ...kernels.trajectory import (STATUS_MAX_STEPS, STATUS_NONFINITE, STATUS_STEP_UNDERFLOW,
                                  STATUS_SUCCESS)

STATUS_MESSAGES = {
    STATUS_SUCCESS: "The solver successfully reached the end of the integration interval.",
    STATUS_MAX_STEPS: "The number of steps exceeded `max_steps`.",
    STATUS_STEP_UNDERFLOW: "The step size fell below the resolution of s.",
    STATUS_NONFINITE: "The state became non-finite.",
}


def initial_step(span, order, rtol):
    """A conservative first step for an adaptive method of ``order``; the controller adapts it
    within a few steps."""
    return float(min(0.1 * (span[1] - span[0]), 0.1 * rtol ** (1.0 / (order + 1))))


@dataclass(frozen=True, eq=False)
class Problem:
    """One validated solve of ``dz/ds = -r(s) (z - D(z; sigma = e^{-s}))``.

    Attributes
    ----------
    field : ScoreField
    y0 : (Q, d) float64 ndarray
        Initial states at ``span[0]`` (C-ordered).
    span : (2,) float64 ndarray
        ``(s0, s1)``, increasing.
    method : type
        An :class:`scoredyn.dynamics.integrators.Integrator` subclass.
    h : float or None
        Fixed-step methods: the largest step; adaptive ones: the first step (None: chosen).
    rtol, atol : float
        Adaptive methods: tolerances of the RMS error norm.
    save : (m,) float64 ndarray
        Increasing save times within the span.
    max_steps : int
        Accepted steps per trajectory.
    label : object
        Class label for class-conditional fields (None: all data).
    recentre : bool
        Integrate the deviation from the nearest data point.
    delta, s_star : float or None
        ``V^delta`` tracking and the time from which ``first_inside`` is recorded.
    """

    field: object
    y0: np.ndarray
    span: np.ndarray
    method: type
    h: float | None
    rtol: float
    atol: float
    save: np.ndarray
    max_steps: int
    label: object = None
    recentre: bool = False
    delta: float | None = None
    s_star: float | None = None

    @property
    def grid(self):
        """``(grid, slot)``: the span's ends and the save times, increasing, and each
        grid time's index into the saved states (-1 for none)."""
        grid = np.unique(np.concatenate([self.span, self.save]))
        slot = np.full(grid.size, -1, np.int64)
        slot[np.searchsorted(grid, self.save)] = np.arange(self.save.size)
        return grid, slot

    @property
    def first_step(self):
        """Adaptive methods: ``h``, or a conservative first step the controller adapts
        within a few steps."""
        if self.h is not None:
            return float(self.h)
        return initial_step(self.span, self.method.order, self.rtol)

    @property
    def one_step(self):
        """True for a one-step method with everything the fused kernels need (adaptive
        pairs: a dense output)."""
        m = self.method
        return not m.multistep and (m.adaptive is False or m.P is not None)


@dataclass
class SolveResult:
    """Outcome of :func:`scoredyn.solve` for Q trajectories in dimension d.

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
        (Baptista et al. 2025, arXiv:2501.15785, main theorem) means
        ``entry_time <= first_inside``.
    method : str
    engine : str
        The engine that ran the solve (see :data:`scoredyn.dynamics.engines.ENGINES`).
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
    engine: str = ""

    @property
    def success(self):
        """True when every trajectory reached the end of the span."""
        return bool(np.all(self.status == 0))

    @classmethod
    def concatenate(cls, parts):
        """One result from the results of consecutive blocks of trajectories.

        Per-trajectory arrays are joined along the trajectory axis (``ys`` along its
        second); the save times, method and engine must agree.  Used to gather a solve
        run in chunks (:func:`scoredyn.distributed.solve`); each trajectory's steps do
        not depend on the others, so the joined result equals a single solve.
        """
        parts = list(parts)
        if not parts:
            raise ValueError("`parts` must hold at least one SolveResult.")
        first = parts[0]
        for p in parts[1:]:
            if (p.method, p.engine) != (first.method, first.engine) or not np.array_equal(p.s, first.s):
                raise ValueError("SolveResult.concatenate: the parts differ in method, engine "
                                 "or save times.")
        out = {}
        for f in fields(cls):
            values = [getattr(p, f.name) for p in parts]
            if f.name in ("s", "method", "engine"):
                out[f.name] = values[0]
            elif f.name == "message":
                out[f.name] = [m for v in values for m in v]
            elif values[0] is None:
                out[f.name] = None
            else:
                out[f.name] = np.concatenate(values, axis=1 if f.name == "ys" else 0)
        return cls(**out)


def messages(status):
    """One message per trajectory status."""
    return [STATUS_MESSAGES[st] for st in np.asarray(status).tolist()]


class Engine:
    """An engine of :func:`scoredyn.solve`.

    Subclasses set :attr:`name` and :attr:`backend` and implement
    :meth:`unavailable` and :meth:`run`.
    """

    #: the name ``solve(..., engine=)`` takes
    name = ""
    #: the ``backend=`` family it belongs to ("numpy", "numba" or "cuda")
    backend = ""

    def unavailable(self, problem):
        """Why this engine cannot run ``problem`` (a sentence), or None when it can."""
        raise NotImplementedError

    def run(self, problem):
        """Solve ``problem``; returns a :class:`SolveResult` (host arrays)."""
        raise NotImplementedError

    def __repr__(self):
        return f"<scoredyn engine {self.name!r}>"
