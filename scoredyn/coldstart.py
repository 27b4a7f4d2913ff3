"""First use of a compiled kernel: a notice when compiling is slow, and compiling ahead of time.

numba compiles each kernel the first time it is called with new argument
types and keeps the machine code in its on-disk cache (``cache=True``), so
only the first process pays; every later one loads the kernels in well under
a second.  The first call of :func:`scoredyn.solve` on the CPU compiles the
time loop (about 20 s on two cores), the SIMD-lane loop another 40 s;
:meth:`scoredyn.EmpiricalScore.denoise` and :mod:`scoredyn.geometry.voronoi` take a few
seconds each.

* :func:`compiling` prints one line on stderr when such a first call has run
  for :data:`NOTICE_AFTER_S` seconds, so that a pause is never unexplained.
* :func:`warm` (``scoredyn compile``) compiles every CPU kernel ahead of
  time, with a progress bar.

Where the cache lives: numba writes it beside the kernels' source
(``scoredyn/kernels/__pycache__``, for an editable or a writable install) or,
when that folder is read-only (a system-wide install), in numba's per-user
cache folder; the environment variable ``NUMBA_CACHE_DIR`` sets one location
for both (see numba's documentation, "Cache sharing").
"""
import contextlib
import sys
import threading
import time

#: a first call still compiling after this many seconds prints its notice
NOTICE_AFTER_S = 3.0

_said = set()
_lock = threading.Lock()
#: dispatchers seen compiled in this process (they stay so): reading ``signatures`` builds a
#: list each time, ~60 us, and solvers pass through :func:`compiling` once per stage
_ready = set()


def _compiled(dispatchers):
    """Whether every one of ``dispatchers`` has compiled (or loaded) code in this process."""
    for d in dispatchers:
        if d in _ready:
            continue
        if not getattr(d, "signatures", True):
            return False
        _ready.add(d)
    return True


def _say(what, dispatchers=()):
    if dispatchers and _compiled(dispatchers):
        return              # compiled (or loaded from the cache) by now: the block is running
    with _lock:
        if what in _said:
            return
        _said.add(what)
    print(f"scoredyn: compiling the {what} kernels on first use (once per installation; "
          f"`scoredyn compile` does it ahead of time)...", file=sys.stderr, flush=True)


@contextlib.contextmanager
def compiling(what, *dispatchers):
    """Announce on stderr a block that compiles ``dispatchers`` for longer than a few seconds.

    Parameters
    ----------
    what : str
        What is compiled, for the message (e.g. "solve (per trajectory)").
    *dispatchers : numba dispatchers
        The kernels the block calls; nothing is announced when each has
        compiled (or loaded from the cache) in this process already.
    """
    if what in _said or _compiled(dispatchers):
        yield
        return
    timer = threading.Timer(NOTICE_AFTER_S, _say, (what, dispatchers))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def warm_elsewhere():
    """:func:`warm` in a fresh interpreter: every kernel into numba's on-disk cache while this
    process compiles nothing, so that it and any worker started later all load the same
    compiled code (a kernel compiled in-process can differ from the cached one in the last
    bit; see :mod:`scoredyn.distributed.ensemble`)."""
    import subprocess
    subprocess.run([sys.executable, "-m", "scoredyn.apps.cli", "compile", "--no-progress"],
                   check=True, capture_output=True)


def warm(*, progress=True):
    """Compile (or load from the cache) every CPU kernel by running tiny problems.

    Parameters
    ----------
    progress : bool
        Show a progress bar (one step per kernel group).

    Returns
    -------
    list of (str, float)
        Each group and the seconds it took.
    """
    import numpy as np
    from tqdm.auto import tqdm

    import scoredyn as sd
    from scoredyn.kernels.sizes import ONE_PASS_MIN_N

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    Y = rng.standard_normal((5, 2))
    X64 = rng.standard_normal((30, 64))
    Y64 = rng.standard_normal((5, 64))
    lanes = sd.engines.LANE_MIN_TRAJECTORIES

    def fields():
        for data, y in ((X, Y), (X64, Y64)):
            f = sd.EmpiricalScore(data, backend="numba")
            f.denoise(y, 0.5)
            f.log_density(y, 0.5)
            f.nearest(y)
            f.jacobian(y[:2], 0.5)

    def geometry():
        sd.voronoi.classify(X, Y, 1e-9)
        sd.memorization.nearest_training_points(Y, X)
        sd.memorization.nearest_training_points(Y64, X64)

    def solve(engine, q):
        def run():
            sd.solve(sd.EmpiricalScore(X), rng.standard_normal((q, 2)), (0.0, 1.0),
                     engine=engine, save_at=[0.5])
        return run

    def lane_solves():
        solve("numba-lanes", lanes)()
        # from kernels.sizes.one_pass's N on, each lane's sums are formed along the data
        # by a right-hand side of its own
        many = rng.standard_normal((ONE_PASS_MIN_N, 3))
        sd.solve(sd.EmpiricalScore(many), many[:lanes] + 0.1, (0.0, 1.0),
                 engine="numba-lanes")

    def mixture():
        gm = sd.GaussianMixture(X, np.full(30, 0.1))
        gm.denoise(Y, 0.5)                                   # component-major kernel
        y = np.repeat(Y, 4, axis=0)
        gm.denoise(y, np.linspace(0.1, 1.0, 20))             # per-query times
        sd.GaussianMixture(X, np.full((30, 2), 0.1),
                           factors=np.ones((30, 2, 1))).denoise(Y, 0.5)   # low rank
        sd.solve(gm, Y, (0.0, 1.0), engine="numba", save_at=[0.5])       # the fused time loop
        sd.GaussianMixture(X64, np.full((30, 64), 0.1)).denoise(Y64, 0.5)    # GEMM path
        sd.GaussianMixture(X64, np.full((30, 64), 0.1),
                           factors=np.ones((30, 64, 2))).denoise(Y64, 0.5)   # low rank, GEMM

    def batched():
        # to s = 10 so that the certified candidates serve some stages (their kernel and the
        # k-nearest search compile too); the numpy engine's controller comes with it
        sd.solve(sd.EmpiricalScore(X64), X64[:4] + 0.1 * Y64[:4], (0.0, 10.0),
                 engine="batched")

    groups = [("fields", fields), ("Gaussian mixtures", mixture),
              ("voronoi and nearest neighbours", geometry),
              ("solve, per trajectory", solve("numba", 2)),
              ("solve, SIMD lanes", lane_solves),
              ("solve, batched", batched)]
    took = []
    bar = tqdm(groups, desc="compiling", unit="group", disable=not progress)
    for name, fn in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        fn()
        took.append((name, time.perf_counter() - t0))
    return took
