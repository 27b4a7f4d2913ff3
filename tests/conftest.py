"""Hypothesis profiles (SCOREDYN_HYPOTHESIS_PROFILE=ci|thorough|derandomized) and GPU skips.

Markers: ``gpu`` tests need a real CUDA GPU and are skipped without one;
``cudasim`` tests run the CUDA kernels under numba's simulator and need
``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported — CI runs them in a
second invocation, ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim``;
every other test needs the simulator off (``compile_ptx`` cannot run under it).
"""
import os

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


def pytest_collection_modifyitems(config, items):
    simulator, has_gpu = _cuda_state()
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none usable here)")
    skip_sim = pytest.mark.skip(reason="runs under NUMBA_ENABLE_CUDASIM=1 (the second pytest "
                                       "invocation: NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim)")
    skip_plain = pytest.mark.skip(reason="needs the CUDA simulator off (NUMBA_ENABLE_CUDASIM is set)")
    for item in items:
        if item.get_closest_marker("gpu") is not None and not has_gpu:
            item.add_marker(skip_gpu)
        elif item.get_closest_marker("cudasim") is not None and not simulator:
            item.add_marker(skip_sim)
        elif item.get_closest_marker("cudasim") is None and simulator:
            item.add_marker(skip_plain)
