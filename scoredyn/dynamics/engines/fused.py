"""The fused engines: the whole time loop compiled, the posterior reduction inside.

* ``"numba"`` — :func:`scoredyn.kernels.odeint.integrate`, one trajectory per
  parallel iteration (:func:`scoredyn.kernels.trajectory.advance`);
* ``"numba-lanes"`` — :func:`scoredyn.kernels.odeint_lanes.integrate_lanes`,
  trajectories as SIMD lanes (the same scheme; ~3.5x faster at small N and, with each
  lane's sums formed along the data, 1.1-3x faster than the other engines at large N for
  d <= 16; but neither recentring nor ``V^delta`` tracking);
* ``"cuda"`` — :mod:`scoredyn.kernels.cuda_odeint`, one GPU thread per
  trajectory (``d <= 16``, at most 7 stages).

All three need a one-step method and an :class:`scoredyn.EmpiricalScore`
(unregularised, Tikhonov or Empirical Bayes); "numba" and "cuda" also take an
isotropic or diagonal :class:`scoredyn.GaussianMixture` (its component table in
place of the data: the sites of the diagnostics are the component means).  They
read the same :class:`KernelProblem` and write the same :class:`KernelOutputs`.
"""
import weakref
from dataclasses import dataclass

import numpy as np

from ..._validation import kernel_array
from ...coldstart import compiling
from ...kernels import trajectory as tr
from .base import Engine, SolveResult, messages


@dataclass(frozen=True)
class KernelProblem:
    """A :class:`Problem` as the kernels read it (C-ordered float64 / int64 arrays).

    Attributes
    ----------
    y0 : (Q, d)
    grid : (m + 1,)
        The span's ends and the save times.
    save_slot : (m + 1,) int64
        Index into the saved states per grid time, or -1.
    seg_steps : (m,) int64
        Fixed-step methods: steps per segment.
    A : (K, S, S), B, E : (K, S), Ef : (K,), C : (S,)
        The method in explicit form, per segment (K = m) or once (K = 1, adaptive).
    Berr : (S,), P : (S, 4)
        Adaptive pairs: error weights and dense output.
    cfg : (N_CFG,)
        The scalars, indexed by ``kernels.trajectory.CFG_*``.
    n_save : int
    """

    y0: np.ndarray
    grid: np.ndarray
    save_slot: np.ndarray
    seg_steps: np.ndarray
    A: np.ndarray
    B: np.ndarray
    E: np.ndarray
    Ef: np.ndarray
    C: np.ndarray
    Berr: np.ndarray
    P: np.ndarray
    cfg: np.ndarray
    n_save: int

    def arrays(self):
        """The kernels' leading arguments after the data, in their order."""
        return (self.y0, self.grid, self.save_slot, self.seg_steps, self.A, self.B, self.E,
                self.Ef, self.C, self.Berr, self.P, self.cfg)

    @classmethod
    def from_problem(cls, problem):
        """Build the kernels' description of ``problem`` (a field the fused kernels take)."""
        from ...fields.regularization import EmpiricalBayes, Tikhonov
        meth = problem.method
        reg = getattr(problem.field, "regularization", None)
        if reg is None:
            kind, param = tr.REG_NONE, 0.0
        elif isinstance(reg, Tikhonov):
            kind, param = tr.REG_TIKHONOV, reg.c
        elif isinstance(reg, EmpiricalBayes):
            kind, param = tr.REG_EMPIRICAL_BAYES, reg.tau
        else:
            raise TypeError(f"unsupported regularization {type(reg).__name__} for the fused "
                            f"kernels")
        grid, slot = problem.grid
        nseg = grid.size - 1
        if meth.adaptive:
            A, b, c, E, Ef, ell = meth.coefficients(None)
            A, B, E, Ef = A[None], b[None], E[None], np.array([Ef])
            seg_steps = np.ones(nseg, np.int64)
            berr, P, h0 = np.asarray(meth.b_err, float), np.asarray(meth.P, float), \
                problem.first_step
        else:
            seg_steps = np.maximum(1, np.ceil(np.diff(grid) / problem.h * (1 - 1e-12))
                                   ).astype(np.int64)
            coefs = [meth.coefficients(dg / n) for dg, n in zip(np.diff(grid), seg_steps)]
            A = np.stack([co[0] for co in coefs])
            B = np.stack([co[1] for co in coefs])
            E = np.stack([co[3] for co in coefs])
            Ef = np.array([co[4] for co in coefs])
            c, ell = coefs[0][2], coefs[0][5]
            berr, P, h0 = np.zeros(c.size), np.zeros((c.size, 4)), 0.0
        cfg = np.zeros(tr.N_CFG)
        cfg[tr.CFG_ELL] = ell
        cfg[tr.CFG_ADAPTIVE] = bool(meth.adaptive)
        cfg[tr.CFG_LAWSON] = bool(meth.adaptive and meth.lawson)
        cfg[tr.CFG_RTOL] = problem.rtol
        cfg[tr.CFG_ATOL] = problem.atol
        cfg[tr.CFG_H0] = h0
        cfg[tr.CFG_MAX_STEPS] = problem.max_steps
        cfg[tr.CFG_REG_KIND] = kind
        cfg[tr.CFG_REG_PARAM] = param
        cfg[tr.CFG_RECENTRE] = bool(problem.recentre)
        cfg[tr.CFG_DELTA] = problem.delta if problem.delta is not None else 0.0
        cfg[tr.CFG_S_STAR] = problem.s_star if problem.s_star is not None else np.inf
        f64 = kernel_array
        return cls(y0=problem.y0, grid=grid, save_slot=slot, seg_steps=seg_steps, A=f64(A),
                   B=f64(B), E=f64(E), Ef=f64(Ef), C=f64(c), Berr=f64(berr), P=f64(P), cfg=cfg,
                   n_save=problem.save.size)


@dataclass
class KernelOutputs:
    """What the fused kernels write: ``Ysave`` (m, Q, d), ``Yout``/``Uout`` (Q, d),
    ``outi`` (N_OUTI, Q) int64 and ``outf`` (N_OUTF, Q) float64 (rows named by
    ``kernels.trajectory.OUT_*``)."""

    Ysave: np.ndarray
    Yout: np.ndarray
    Uout: np.ndarray
    outi: np.ndarray
    outf: np.ndarray

    @classmethod
    def allocate(cls, n_save, q, d):
        """Host arrays with the values a kernel leaves where it writes nothing (NaN saves,
        no centre, no entry time)."""
        outi = np.zeros((tr.N_OUTI, q), np.int64)
        outi[tr.OUT_CENTRE] = -1
        outf = np.full((tr.N_OUTF, q), np.nan)
        return cls(np.full((n_save, q, d), np.nan), np.empty((q, d)), np.full((q, d), np.nan),
                   outi, outf)

    def arrays(self):
        return (self.Ysave, self.Yout, self.Uout, self.outi, self.outf)

    def result(self, problem, engine):
        """The :class:`SolveResult` of ``problem``."""
        oi, of = self.outi, self.outf
        nearest, centre = oi[tr.OUT_NEAREST], oi[tr.OUT_CENTRE]
        dist = np.sqrt(of[tr.OUT_NEAREST_D2])
        if problem.recentre:
            # the distance to the nearest site from the deviation (full relative precision)
            same = nearest == centre
            dist[same] = np.linalg.norm(self.Uout[same], axis=1)
        tracked = problem.delta is not None
        status = oi[tr.OUT_STATUS].copy()
        return SolveResult(
            y=self.Yout, s=problem.save, ys=self.Ysave, n_steps=oi[tr.OUT_N_STEPS].copy(),
            n_rejected=oi[tr.OUT_N_REJECTED].copy(), nfev=oi[tr.OUT_NFEV].copy(), status=status,
            method=problem.method.name, message=messages(status), nearest=nearest.copy(),
            nearest_distance=dist, max_norm=of[tr.OUT_MAX_NORM].copy(),
            deviation=self.Uout if problem.recentre else None,
            centre=centre.copy() if problem.recentre else None,
            cell_changes=oi[tr.OUT_CELL_CHANGES].copy(),
            boundary_distance=of[tr.OUT_BOUNDARY_DISTANCE].copy(),
            entry_time=of[tr.OUT_ENTRY_TIME].copy() if tracked else None,
            first_inside=(of[tr.OUT_FIRST_INSIDE].copy()
                          if tracked and problem.s_star is not None else None),
            engine=engine)


#: the fused kernels square coordinate differences as they are: magnitudes within
#: 2^+-FUSED_EXP keep the squares normal float64 numbers
FUSED_EXP = 450


#: a mixture's sigma = e^{-s} must keep 2 sigma^2 = e^{-2s} a finite, non-zero float64 in the
#: fused loop: spans within |s| <= MIXTURE_MAX_S
MIXTURE_MAX_S = 340.0


#: _fused_unavailable's answers per problem: the automatic choice asks it for up to three
#: engines, and the far-start test reads every start
_WHY = weakref.WeakKeyDictionary()


def _fused_unavailable(problem, mixtures=True):
    """Why the fused kernels cannot run ``problem`` (a sentence), or None; computed once per
    problem and flag."""
    from ...fields.empirical import EmpiricalScore
    memo = _WHY.setdefault(problem, {})
    key = None if type(problem.field) is EmpiricalScore else mixtures   # the flag: mixtures
    if key not in memo:
        memo[key] = _fused_why(problem, mixtures)
    return memo[key]


def _fused_why(problem, mixtures):
    from ...fields.empirical import EmpiricalScore
    from ...fields.mixture import GaussianMixture
    field = problem.field
    if type(field) is GaussianMixture and mixtures:
        if not field._exact_at_every_sigma:
            return (f"it takes isotropic and diagonal mixtures on backend 'numba' (got a "
                    f"{field.covariance_type} one on backend {field.backend!r}); the 'numpy' "
                    f"engine runs every mixture")
        span = np.abs(problem.grid[0][[0, -1]])
        if np.max(span) > MIXTURE_MAX_S:
            return (f"it integrates a mixture for |s| <= {MIXTURE_MAX_S:g} (got the span "
                    f"({problem.grid[0][0]:g}, {problem.grid[0][-1]:g}))")
    elif type(field) is not EmpiricalScore:
        kinds = "an EmpiricalScore or a GaussianMixture" if mixtures else "an EmpiricalScore"
        return (f"it needs {kinds} field (got {type(field).__name__}); the 'numpy' engine "
                f"runs any field")
    if not problem.one_step:
        return (f"it needs a one-step method with a dense output if adaptive (got "
                f"{problem.method.name!r}); the 'numpy' engine runs every method")
    if type(field) is GaussianMixture:
        q = problem.y0.shape[0]
        with np.errstate(over="ignore", under="ignore"):
            sigma0 = np.full(q, np.exp(-problem.span[0]))
        far = field._far(problem.y0, sigma0, np.ones(q)).size
        return None if far == 0 else _FAR_STARTS.format(far)
    # the states stay within the hull of the starts and the data (Baptista et al. 2025, the
    # trajectories are bounded), so these two magnitudes bound every distance the kernels form
    m = float(np.max(np.abs(field.data)))
    if m > 0 and not 2.0 ** -FUSED_EXP <= m <= 2.0 ** FUSED_EXP:
        return (f"the data reach magnitude {m:.3g}, beyond 2^+-{FUSED_EXP} where its squared "
                f"distances over- or underflow; the 'numpy' engine rescales them")
    m0 = float(np.max(np.abs(problem.y0))) if problem.y0.size else 0.0
    if m0 > 2.0 ** FUSED_EXP:
        return (f"the starts reach magnitude {m0:.3g}, beyond 2^{FUSED_EXP} where their squared "
                f"distances overflow; the 'numpy' engine rescales them")
    far = _far_starts(field, problem)
    return None if far == 0 else _FAR_STARTS.format(far)


_FAR_STARTS = ("{} start(s) lie so far from the data that direct differences cannot resolve "
               "their softmax (see scoredyn.kernels, 'Queries far from the data'); the 'numpy' "
               "engine (and for an EmpiricalScore the 'batched' one) recomputes such states "
               "from relative distances")


def _far_starts(field, problem):
    """How many starts are far from the data at the first sigma: :func:`far_rows` with
    ``(|y| - A)^2`` for the nearest distance (``A`` the largest data norm; a lower bound).
    Along the flow ``|y - D|`` and sigma shrink alike (Baptista et al. 2025,
    arXiv:2501.15785, the reverse ODE in log-time), so the start is where the logit error
    bound is decided."""
    from ..._host.reduce import far_rows
    prep = field._prepared(problem.label)
    y0 = problem.y0
    q = y0.shape[0]
    low = np.maximum(np.sqrt(np.einsum("qk,qk->q", y0, y0)) - prep.xn_max, 0.0) ** 2
    with np.errstate(over="ignore"):
        inv2s2 = np.full(q, 0.5 * np.exp(2.0 * problem.span[0]))
    return far_rows(prep, y0, np.ones(q), inv2s2, low).size


def _kernel_data(problem, layout):
    """What the fused kernels read as ``X``: the data (``layout`` "cpu": transposed (d, N);
    "gpu": (N, d)), or a mixture's component table (K, 2 d + 2)."""
    field = problem.field
    if hasattr(field, "_component_table"):
        return field._component_table()
    prepared = field._prepared(problem.label)
    return prepared.XT if layout == "cpu" else prepared.X


class NumbaEngine(Engine):
    """One trajectory per parallel iteration on the CPU (any d, every diagnostic)."""

    name = "numba"
    backend = "numba"

    def unavailable(self, problem):
        return _fused_unavailable(problem)

    def run(self, problem):
        from ...kernels import odeint
        kp = KernelProblem.from_problem(problem)
        out = KernelOutputs.allocate(kp.n_save, *problem.y0.shape)
        mixture = hasattr(problem.field, "_component_table")
        chunk = odeint.integrate_mixture_chunk if mixture else odeint.integrate_chunk
        with compiling("solve (per trajectory)" + (", Gaussian mixture" if mixture else ""),
                       chunk):
            odeint.integrate(_kernel_data(problem, "cpu"), *kp.arrays(), *out.arrays(),
                             chunk=chunk)
        return out.result(problem, self.name)


class LaneEngine(NumbaEngine):
    """Trajectories as SIMD lanes on the CPU: fastest for many trajectories; no
    recentring or ``V^delta`` tracking."""

    name = "numba-lanes"

    def unavailable(self, problem):
        why = _fused_unavailable(problem, mixtures=False)
        if why is None and (problem.recentre or problem.delta is not None):
            why = "`recentre` and `delta` need the 'numba' or 'cuda' engine"
        return why

    def run(self, problem):
        from ...kernels import odeint_lanes
        kp = KernelProblem.from_problem(problem)
        out = KernelOutputs.allocate(kp.n_save, *problem.y0.shape)
        with compiling("solve (SIMD lanes)", odeint_lanes.lane_chunk):
            odeint_lanes.integrate_lanes(problem.field._prepared(problem.label).XT,
                                         *kp.arrays(), *out.arrays())
        return out.result(problem, self.name)


class CudaEngine(Engine):
    """One GPU thread per trajectory (numba-cuda; ``d <= 16``, at most 7 stages)."""

    name = "cuda"
    backend = "cuda"

    def unavailable(self, problem):
        from ...kernels.sizes import MAX_D, MAX_STAGES
        why = _fused_unavailable(problem)
        if why is None and problem.y0.shape[1] > MAX_D:
            why = f"it integrates in dimension d <= {MAX_D} (got d = {problem.y0.shape[1]})"
        if why is None and problem.method.c.size > MAX_STAGES:
            why = (f"it supports methods with at most {MAX_STAGES} stages "
                   f"({problem.method.name!r} has {problem.method.c.size})")
        return why

    def run(self, problem):
        from ..._host import cuda as _cuda
        kp = KernelProblem.from_problem(problem)
        out = KernelOutputs.allocate(kp.n_save, *problem.y0.shape)
        _cuda.integrate(_kernel_data(problem, "gpu"), kp, out,
                        mixture=hasattr(problem.field, "_component_table"))
        return out.result(problem, self.name)
