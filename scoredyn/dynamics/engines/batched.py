"""The batched engine: all trajectories' stages of an empirical field at once, pruned when certified.

The numpy engine's loop (per-trajectory steps, the fused kernels' controller,
error norm and dense output) with the stage evaluations of an
:class:`scoredyn.EmpiricalScore` done in two ways:

* **full pass** — every active trajectory whose stage cannot be pruned goes through
  the field's exact GEMM reduction at once (matrix products at BLAS speed, the
  entries that matter recomputed by direct differences; :mod:`scoredyn._host.reduce`);
* **certified candidates** — late in the flow (sigma small) each softmax
  concentrates on a few data points.  A trajectory then keeps its ``k`` nearest
  data points at a reference state and a lower bound on every other point's
  distance; a stage whose softmax the triangle inequality proves to be carried by
  the candidates (every other weight below ``e^-M``, the GEMM path's own neglect
  rule) reads ``k`` points instead of ``N`` (:mod:`scoredyn.kernels.candidates`).
  A stage that cannot be certified takes the full pass, and its trajectory gets new
  candidates (an exact k-nearest pass) once sigma is small enough for them to hold.

Both give the posterior mean to the GEMM path's accuracy, so the steps, step
counts and end points are those of the numpy engine up to rounding.  On
scikit-learn's digits (N = 1797, d = 64, 1000 trajectories from sigma = 20 to
s = 16, dopri5 at rtol 1e-9) about half the stage evaluations are served by
candidates (see ``scoredyn bench ode-data``).
"""
import numpy as np

from ..._host.knn import k_nearest_squared
from ..._host.reduce import Reduction, _gamma, neglect_margin
from ..._validation import length_scale
from ...coldstart import compiling
from ...kernels.candidates import candidate_reduce
from .base import Engine
from .numpy_engine import solve_numpy, stage_rhs

#: candidates kept per trajectory
PRUNE_K = 16
#: after a refresh whose candidates do not certify, the next refresh waits until sigma has
#: fallen by this factor (the margin needed, 2 sigma^2 M, shrinks with sigma^2)
RETRY_FACTOR = 0.7


class CandidateStages:
    """Stage evaluations ``f(z, s) = r (D - z)`` of an empirical field for the batched engine.

    Parameters
    ----------
    field : EmpiricalScore
        On the CPU kernels (``field.backend == "numba"``).
    q : int
        Trajectories of the solve (``rows`` index them).
    label : object
        Class label (None: all data).
    k : int
        Candidates per trajectory (at most N - 1).

    Attributes
    ----------
    served, full : int
        Stage evaluations served by candidates and by full passes so far.
    """

    def __init__(self, field, q, label=None, k=PRUNE_K):
        self.field, self.label = field, label
        self.prep = field._prepared(label)
        n, d = self.prep.n, self.prep.d
        self.k = min(k, n - 1)
        self.cand = np.zeros((q, max(self.k, 1)), np.int64)
        self.ref = np.zeros((q, d))
        self.bound = np.zeros(q)                 # 0: no candidates (never served)
        self.retry = np.full(q, np.inf)          # refresh when sigma is below this
        self.mneg = neglect_margin(n)
        self.slack = 2.0 * _gamma(d + 4)
        self.served = 0
        self.full = 0
        self._plain = stage_rhs(field, label)

    def __call__(self, z, s, rows):
        """``f(z, s)`` for trajectories ``rows`` (indices into the solve's Q)."""
        if self.k < 1 or length_scale(self.prep.magnitude, z) != 1.0:
            self.full += z.shape[0]
            return self._plain(z, s, rows)
        # sigma may under- or overflow far out in s; the kernels take the exact limits there
        with np.errstate(under="ignore", over="ignore", divide="ignore"):
            sigma = np.exp(-s)
            twosig2 = 2.0 * sigma * sigma
            inv2s2 = 0.5 / sigma / sigma
        q, d = z.shape
        mean = np.empty((q, d))
        dmin, lsum_c = np.empty(q), np.empty(q)
        served = np.zeros(q, bool)
        if np.any(self.bound[rows] > 0.0):     # early in the flow no trajectory has candidates
            with compiling("solve (certified candidates)", candidate_reduce):
                candidate_reduce(self.prep.X, z, inv2s2, twosig2, self.mneg, self.slack,
                                 rows, self.cand, self.ref, self.bound, mean, dmin, lsum_c,
                                 served, np.empty((q, self.cand.shape[1])))
        n_served = int(np.count_nonzero(served))
        self.served += n_served
        self.full += q - n_served
        if n_served == 0:                       # the early flow: one full pass, no copies
            out, lsum = self._full(z, sigma)
            self._refresh(z, sigma, rows, lsum)
            return out
        if n_served < q:
            out = np.empty((q, d))
            rest = ~served
            out[rest], lsum = self._full(z[rest], sigma[rest])
            self._refresh(z[rest], sigma[rest], rows[rest], lsum)
            out[served] = self._candidate_rhs(mean[served], dmin[served], lsum_c[served],
                                              sigma[served], inv2s2[served], z[served])
            return out
        return self._candidate_rhs(mean, dmin, lsum_c, sigma, inv2s2, z)

    def _candidate_rhs(self, mean, dmin, lsum, sigma, inv2s2, z):
        """``f`` of served rows from the candidate kernel's mean and softmax state."""
        red = Reduction(mean, dmin, lsum, inv2s2)
        with np.errstate(divide="ignore", over="ignore"):      # 1 / sigma at sigma = 0
            r = self.field._factors(sigma, red.log_normalizer())[0]
        return r[:, None] * (mean - z)

    def _full(self, z, sigma):
        """``f`` by a full pass over the data, and each row's sum of relative weights."""
        with np.errstate(divide="ignore", over="ignore"):
            res, lse, red = self.field._residual_reduction(z, sigma, np.ones_like(sigma),
                                                           self.label)
            return self.field._factors(sigma, lse)[0][:, None] * res, red.lsum

    def _refresh(self, z, sigma, rows, lsum):
        """New candidates for the trajectories whose sigma has fallen below their retry level.

        A row whose weights, relative to the largest, sum to more than ``k + 1`` cannot be
        certified (that needs every non-candidate's weight below ``e^-M``, so the sum below
        ``k + N e^-M``); it is not searched.
        """
        due = (sigma < self.retry[rows]) & (lsum <= self.k + 1.0)
        if not np.any(due):
            return
        z, sigma, rows = z[due], sigma[due], rows[due]
        ki, kd = k_nearest_squared(self.prep, np.ascontiguousarray(z), self.k + 1)
        self.cand[rows] = ki[:, :self.k]
        self.ref[rows] = z
        self.bound[rows] = np.sqrt(kd[:, self.k])
        # would they certify at the reference itself (delta = 0)?
        holds = kd[:, self.k] - kd[:, 0] > 2.0 * sigma * sigma * self.mneg
        self.retry[rows] = np.where(holds, sigma, RETRY_FACTOR * sigma)


class BatchedEngine(Engine):
    """The numpy engine's loop with an :class:`scoredyn.EmpiricalScore`'s stages batched through
    the GEMM reduction and pruned to certified candidates (module docstring)."""

    name = "batched"
    backend = "numba"

    def unavailable(self, problem):
        from ...fields.empirical import EmpiricalScore
        if not isinstance(problem.field, EmpiricalScore):
            return (f"it evaluates an EmpiricalScore, not a "
                    f"{type(problem.field).__name__}")
        if problem.field.backend != "numba":
            return (f"the field's backend is {problem.field.backend!r}; the candidate kernel "
                    f"runs on the CPU ('numba')")
        if problem.recentre or problem.delta is not None:
            return ("`recentre` and `delta` need a fused engine ('numba' or 'cuda')")
        return None

    def run(self, problem):
        stages = CandidateStages(problem.field, problem.y0.shape[0], problem.label)
        return solve_numpy(problem, rhs=stages, engine=self.name)
