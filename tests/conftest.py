"""Hypothesis profiles (SCOREDYN_HYPOTHESIS_PROFILE=ci|thorough|derandomized) and GPU skips."""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("derandomized", parent=settings.get_profile("ci"), derandomize=True)
settings.load_profile(os.environ.get("SCOREDYN_HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    try:
        from numba import cuda
        has_gpu = cuda.is_available()
    except Exception:  # numba-cuda absent or broken: no GPU
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none usable here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None and not has_gpu:
            item.add_marker(skip)
