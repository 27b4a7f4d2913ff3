"""The engines of :func:`scoredyn.solve`, one object each, and the automatic choice.

=================  =====================================================================
``"numpy"``        vectorised numpy: any :class:`~scoredyn.ScoreField` (a user's own
                   included), every method (multistep ETD2M too); the slow reference.
``"numba"``        the fused CPU kernel, one trajectory per parallel iteration: an
                   :class:`~scoredyn.EmpiricalScore`, a one-step method, any d, every
                   diagnostic (recentring, ``V^delta`` tracking).
``"numba-lanes"``  the fused CPU kernel with trajectories as SIMD lanes: as "numba" but
                   without recentring or ``V^delta`` tracking; ~3.5x faster at small N.
``"cuda"``         the fused GPU kernel (numba-cuda), one thread per trajectory:
                   ``d <= 16``, at most 7 stages.
``"batched"``      the numpy engine's loop with an :class:`~scoredyn.EmpiricalScore`'s
                   stages of all trajectories through the GEMM reduction, each
                   trajectory's softmax pruned to certified candidates once sigma is
                   small (:mod:`.batched`); any method, no recentring or ``V^delta``.
=================  =====================================================================

The automatic choice (``solve(..., engine=None)``): the ``backend=`` argument
(or ``SCOREDYN_BACKEND``, see :mod:`scoredyn.backend`) picks the family —
"cuda" when a GPU is usable and the problem fits it, else "numba" when the
problem is fused-compatible, else "numpy" — and within "numba":

* ``"numba-lanes"`` for ``d <= LANE_ANY_N_MAX_D`` from :data:`LANE_MIN_TRAJECTORIES`
  trajectories on, at any N (from 128 points on its right-hand side forms each lane's sums
  in loops along the data, ``kernels.sizes.one_pass``), unless recentring or ``V^delta``
  tracking is asked for;
* else ``"batched"`` for large data (``N d >= BATCHED_MIN_ND``) and many trajectories
  (``Q >= BATCHED_MIN_Q``), unless recentring or ``V^delta`` tracking is asked for;
* else ``"numba-lanes"`` from :data:`LANE_MIN_TRAJECTORIES` trajectories on, up to
  ``N <= LANE_MAX_N`` data points (a lane set's distances, ``64 N`` numbers, then stay in a
  core's L2 cache), unless recentring or ``V^delta`` tracking is asked for;
* else ``"numba"``.

The thresholds are measured crossovers (2 cores; seconds).  Lanes, batched and
per-trajectory (standard normal data, starts at data points plus sigma = 20 noise, s from
-log 20 to 12, dopri5 at rtol 1e-8), (N, d): Q = 1000: (200, 2) 0.20 / 0.54 / 0.32,
(1000, 2) 0.82 / 1.25 / 1.50, (3000, 2) 4.26 / 3.31 / 3.29, (100, 32) 0.53 / 1.73 / 1.03,
(300, 32) 1.57 / 2.64 / 2.52, (1000, 8) 2.22 / 2.17 / 2.54, (1000, 32) 7.52 / 3.69 / 8.66,
(300, 64) 4.60 / 3.81 / 5.31; Q = 200: (1000, 2) 0.23 / 0.38 / 0.28, (300, 64)
0.84 / 0.92 / 0.87, (1000, 32) 1.84 / 1.02 / 1.72.  With the lanes' one-pass sums (AMD
EPYC, Zen 5; same problem): Q = 1000: (3000, 2) 0.34 / 0.85 / 1.08, (12000, 2) 1.25 /
3.07 / 3.87, (1000, 3) 0.17 / 0.38 / 0.46, (10000, 3) 1.46 / 2.94, (1000, 8) 0.35 / 0.54 /
0.78, (3000, 8) 1.04 / 1.35, (2000, 16) 1.26 / 1.39, (300, 32) 0.39 / 0.55 / 0.74,
(1000, 32) 1.06 / 0.97; Q = 200: (12000, 2) 0.31 / 0.80 / 0.80, (50000, 2) 1.29 / 3.15 /
3.27, (20000, 4) 0.99 / 1.57, (5000, 16) 0.89 / 0.96, (2000, 64) 1.28 / 0.64, (1000, 128)
1.18 / 0.60.  (Before the lanes' work items were
sized by Q, a solve of 1000 trajectories ran on one core and the lanes lost from N = 1000
on.)  Batched against per-trajectory on the same problem to s = 16 at rtol 1e-9,
(N, d, Q): (2000, 32, 1000) 9.4 against 32.8, (1000, 128, 1000) 13.5 against 61.4,
(5000, 64, 200) 6.0 against 32.4, (1500, 48, 200) 2.7 against 7.1, (1000, 24, 200) 1.6
against 2.2, (2000, 16, 1000) 11.5 against 14.4, (1000, 64, 50) 1.4 against 1.5; but
(300, 32, 200) 1.6 against 0.7 and (200, 64, 100) 1.1 against 0.6.  ``engine=`` names one
engine directly; it raises ``ValueError`` with the reason when that engine cannot serve the
problem.
"""
from ...backend import resolve
from ...kernels.sizes import LANES, one_pass
from .base import Engine, Problem, SolveResult, STATUS_MESSAGES
from .batched import BatchedEngine
from .fused import CudaEngine, LaneEngine, NumbaEngine
from .numpy_engine import NumpyEngine

#: every engine by name
ENGINES = {e.name: e for e in (NumpyEngine(), NumbaEngine(), LaneEngine(), CudaEngine(),
                               BatchedEngine())}

#: from this many trajectories on, the automatic choice on the CPU takes "numba-lanes"
#: (two full lane sets: fewer leave most lanes idle) ...
LANE_MIN_TRAJECTORIES = 2 * LANES
#: ... up to this many data points (a lane set's 64 N distances stay in L2)
LANE_MAX_N = 2000
#: ... and at any N up to this dimension (one-pass sums; measured against batched: 1.1x
#: faster at d = 16, 0.9x at d = 32, 0.5x at d = 64)
LANE_ANY_N_MAX_D = 16
#: the automatic choice takes the batched engine from this much data (N d) and this many
#: trajectories on (module docstring)
BATCHED_MIN_ND, BATCHED_MIN_Q = 24_000, 100

__all__ = ["ENGINES", "Engine", "Problem", "SolveResult", "STATUS_MESSAGES", "choose",
           "LANE_MIN_TRAJECTORIES", "LANE_MAX_N", "LANE_ANY_N_MAX_D", "BATCHED_MIN_ND",
           "BATCHED_MIN_Q"]


def choose(problem, engine=None, backend=None):
    """The engine that runs ``problem``.

    Parameters
    ----------
    problem : Problem
    engine : str or None
        A name in :data:`ENGINES`, or None for the automatic choice.
    backend : {"auto", "numpy", "numba", "cuda"} or None
        The family for the automatic choice; with ``engine``, it must agree.

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        Unknown engine, an engine that cannot serve ``problem`` (the message
        says why), or ``engine`` and ``backend`` that disagree.
    """
    if engine is not None:
        if engine not in ENGINES:
            raise ValueError(f"`engine` must be one of {', '.join(map(repr, ENGINES))}; "
                             f"got {engine!r}.")
        chosen = ENGINES[engine]
        if backend is not None and backend != "auto" and backend != chosen.backend:
            raise ValueError(f"`engine`={engine!r} runs on backend {chosen.backend!r}, but "
                             f"`backend`={backend!r} was asked for; give one of them.")
        if chosen.backend == "cuda":
            resolve("cuda")                 # BackendUnavailable with the reason
        why = chosen.unavailable(problem)
        if why is not None:
            raise ValueError(f"`engine`={engine!r} cannot run this problem: {why}.")
        return chosen
    fused = ENGINES["numba"].unavailable(problem) is None
    explicit = backend not in (None, "auto")
    family = resolve(backend, auto=("cuda", "numba") if fused else ("numpy",))
    if family == "cuda":
        why = ENGINES["cuda"].unavailable(problem)
        if why is None:
            return ENGINES["cuda"]
        if explicit:
            raise ValueError(f"backend 'cuda' cannot run this problem: {why}; use "
                             f"backend='numba' or 'numpy'.")
        family = "numba" if fused else "numpy"
    if family == "numba":
        why = ENGINES["numba"].unavailable(problem)
        if why is not None:
            raise ValueError(f"backend 'numba' runs the fused kernel, which cannot run this "
                             f"problem: {why}; use backend='numpy'.")
        q, d = problem.y0.shape
        n = getattr(problem.field, "n", None) or getattr(problem.field, "n_components", 0)
        lanes = ENGINES["numba-lanes"]
        lanes_fit = q >= LANE_MIN_TRAJECTORIES and lanes.unavailable(problem) is None
        if lanes_fit and d <= LANE_ANY_N_MAX_D and one_pass(d, n):
            return lanes
        if (n * d >= BATCHED_MIN_ND and q >= BATCHED_MIN_Q
                and ENGINES["batched"].unavailable(problem) is None):
            return ENGINES["batched"]
        if lanes_fit and n <= LANE_MAX_N:
            return lanes
        return ENGINES["numba"]
    why = ENGINES["numpy"].unavailable(problem)
    if why is not None:
        raise ValueError(f"backend 'numpy' cannot run this problem: {why}.")
    return ENGINES["numpy"]
