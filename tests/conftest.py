"""Hypothesis profiles (SCOREDYN_HYPOTHESIS_PROFILE=ci|thorough|derandomized) and GPU skips.

Markers: ``gpu`` tests need a real CUDA GPU and are skipped without one;
``cudasim`` tests run the CUDA kernels under numba's simulator and need
``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported — CI runs them in a
second invocation, ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim``;
every other test needs the simulator off (``compile_ptx`` cannot run under it).
"""
import os

import sys

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("derandomized", parent=settings.get_profile("ci"), derandomize=True)
settings.load_profile(os.environ.get("SCOREDYN_HYPOTHESIS_PROFILE", "ci"))

# Tests that do not name a backend test the CPU kernels, even where a GPU would make
# "auto" pick it; the CUDA tests name backend="cuda".  SCOREDYN_BACKEND=cuda runs the
# whole suite's fields and solves on the GPU instead.
os.environ.setdefault("SCOREDYN_BACKEND", "numba")


def _cuda_state():
    """(simulator on, real GPU usable)."""
    try:
        from numba.core import config
        from numba import cuda
        if config.ENABLE_CUDASIM:
            return True, False
        return False, bool(cuda.is_available())
    except Exception:  # numba-cuda absent or broken: no GPU
        return False, False


def _lock_simulated_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` atomic.

    numba-cuda's simulator (``FakeCUDAShared.array``) looks a block's shared array up by
    the caller's source line and creates it when missing, without a lock: two simulated
    threads that interleave between the lookup and the store each get an array of their
    own, and one reads the other's uninitialised memory (seen here as a 1e233 in a
    posterior mean once thread hand-overs became frequent).  The same code under a lock;
    ``stack[-2]`` is still the kernel's line, since this replaces the method itself.
    """
    import threading
    import traceback

    import numpy as np
    from numba.cuda.simulator import kernelapi

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return original(self, shape, dtype, alignment)
        dtype = _as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = np.empty(shape, dtype)
                self._allocations[caller] = res
        return res

    kernelapi.FakeCUDAShared.array = array


def _as_dtype(dtype):
    import numpy as np
    from numba.core import types
    from numba.np import numpy_support
    return numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else np.dtype(dtype)


def pytest_collection_modifyitems(config, items):
    simulator, has_gpu = _cuda_state()
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none usable here)")
    skip_sim = pytest.mark.skip(reason="runs under NUMBA_ENABLE_CUDASIM=1 (the second pytest "
                                       "invocation: NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim)")
    skip_plain = pytest.mark.skip(reason="needs the CUDA simulator off (NUMBA_ENABLE_CUDASIM is set)")
    if simulator:
        # The simulator runs each GPU thread of a block as a Python thread, and its launcher
        # busy-polls them for the barrier (cuda.syncthreads) while holding the GIL; at the
        # default switch interval (5 ms) a launch waits that long per hand-over, and the same
        # test took 0.7 s or 50 s by the luck of the scheduler.  Handing over every 50 us
        # makes every launch take about a second.
        sys.setswitchinterval(5e-5)
        _lock_simulated_shared_arrays()
    for item in items:
        if item.get_closest_marker("gpu") is not None and not has_gpu:
            item.add_marker(skip_gpu)
        elif item.get_closest_marker("cudasim") is not None and not simulator:
            item.add_marker(skip_sim)
        elif item.get_closest_marker("cudasim") is None and simulator:
            item.add_marker(skip_plain)
