"""Choice of the compute backend: ``"auto" | "numpy" | "numba" | "cuda"``.

Fields (``EmpiricalScore(..., backend=)``), :func:`scoredyn.solve` and the
functions of :mod:`scoredyn.geometry.voronoi` take ``backend=``; ``None`` (the default)
reads the environment variable ``SCOREDYN_BACKEND`` and falls back to ``"auto"``.

* ``"numba"``: the compiled CPU kernels (:mod:`scoredyn.kernels`).
* ``"numpy"``: plain, vectorised numpy — the slow, obviously correct
  reference, in query blocks so that memory stays bounded.
* ``"cuda"``: the numba-cuda kernels on an NVIDIA GPU (``pip install
  "scoredyn[gpu]"``).  Raises :class:`BackendUnavailable` saying why when no
  GPU is usable (numba-cuda or cupy missing, no driver or device, or numba's
  CUDA simulator switched on).
* ``"auto"``: ``"cuda"`` when cupy and a device are usable, else ``"numba"``.

Arrays: numpy in, numpy out; cupy in, cupy out (``backend="cuda"``).  The
O(Q N d) work runs on the device; validation and the O(Q d) epilogues run on
the host, so cupy inputs make one O(Q d) round trip through host memory.
"""
import functools
import os

BACKENDS = ("auto", "numpy", "numba", "cuda")
ENV_VAR = "SCOREDYN_BACKEND"

#: tests only: accept numba's CUDA simulator as a device (kernels then run in
#: Python, on numpy arrays).  Never set this outside the simulator test suite.
_ALLOW_SIMULATOR = False


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (the message says why)."""


def cuda_status():
    """Whether ``backend="cuda"`` can run here, and why not.

    Returns
    -------
    usable : bool
    reason : str
        "ok", or what is missing.
    """
    simulator = _probe_simulator()
    if simulator is None:
        return False, ("numba-cuda is not installed (pip install \"scoredyn[gpu]\", or "
                       "\"scoredyn[cuda]\" for the kernels without cupy)")
    if simulator:
        if _ALLOW_SIMULATOR:
            return True, "ok (numba's CUDA simulator, for tests)"
        return False, ("NUMBA_ENABLE_CUDASIM=1: numba's CUDA simulator is on; it runs kernels "
                       "in Python for testing, not on a GPU")
    return _device_status()


@functools.cache
def _probe_simulator():
    """None without numba-cuda, else whether numba's CUDA simulator is on (probed once)."""
    try:
        import numba_cuda  # noqa: F401  (the NVIDIA-maintained CUDA target)
    except ImportError:
        return None
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)


@functools.cache
def _device_status():
    try:
        import cupy
    except ImportError:
        return False, "cupy is not installed (pip install \"scoredyn[gpu]\")"
    from numba import cuda
    try:
        if not cuda.is_available():
            return False, f"no usable CUDA driver or device ({_numba_cuda_error()})"
        if not cupy.cuda.is_available():
            return False, "cupy sees no CUDA device"
    except Exception as exc:  # a broken driver install raises from either probe
        return False, f"the CUDA driver failed to initialise ({exc})"
    return True, "ok"


def _numba_cuda_error():
    from numba import cuda
    try:
        return str(cuda.cuda_error()) or "no reason given"
    except Exception as exc:
        return str(exc)


def resolve(backend=None, *, supported=("numpy", "numba", "cuda"),
            auto=("cuda", "numba", "numpy")):
    """The concrete backend for a request.

    Parameters
    ----------
    backend : {"auto", "numpy", "numba", "cuda"} or None
        None reads ``SCOREDYN_BACKEND`` (default "auto"); a backend named there
        that the caller cannot use for this request (not in ``auto``) means "auto".
    supported : tuple of str
        The concrete backends the caller offers.
    auto : tuple of str
        What "auto" tries, in order ("cuda" only where a GPU is usable).

    Returns
    -------
    str
        "numpy", "numba" or "cuda".

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones), or one not offered.
    BackendUnavailable
        ``"cuda"`` requested where no GPU is usable.
    """
    source = "`backend`"
    if backend is None:
        backend = os.environ.get(ENV_VAR, "auto")
        source = f"the environment variable {ENV_VAR}"
        if backend in BACKENDS and backend != "auto" and backend not in auto:
            backend = "auto"     # a default preference, not a demand: it applies where it can
    if backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(repr(b) for b in BACKENDS)}; "
                         f"got {backend!r}.")
    if backend == "auto":
        for candidate in auto:
            if candidate in supported and (candidate != "cuda" or cuda_status()[0]):
                return candidate
        return supported[0]
    if backend not in supported:
        raise ValueError(f"backend {backend!r} is not offered here; choose one of "
                         f"{', '.join(repr(b) for b in ('auto',) + tuple(supported))}.")
    if backend == "cuda":
        ok, why = cuda_status()
        if not ok:
            asked = ("backend='cuda'" if source == "`backend`"
                     else f"{ENV_VAR}=cuda (the environment variable)")
            raise BackendUnavailable(f"{asked} is not usable: {why}.")
    return backend


def is_cupy(a):
    """True for a cupy array (without importing cupy when it is not loaded)."""
    return type(a).__module__.startswith("cupy")


def to_host(a):
    """A cupy array's numpy copy; anything else unchanged."""
    return a.get() if is_cupy(a) else a


def like(result, reference):
    """``result`` as a cupy array when ``reference`` is one (numpy otherwise)."""
    if is_cupy(reference):
        import cupy
        return cupy.asarray(result)
    return result
