"""Helpers shared by the CUDA test modules: the same field on the CPU and on the GPU."""
import numpy as np

import scoredyn as sd


def cpu_and_gpu(X, **kw):
    """``(EmpiricalScore(backend="numba"), EmpiricalScore(backend="cuda"))`` on the same data."""
    return sd.EmpiricalScore(X, backend="numba", **kw), sd.EmpiricalScore(X, backend="cuda", **kw)


def assert_reductions_match(cpu, gpu, Y, sigma, alpha=1.0, rtol=1e-12):
    """Denoiser, log-normaliser and two nearest sites agree (float64: a few ulps apart)."""
    np.testing.assert_allclose(gpu.denoise(Y, sigma, alpha), cpu.denoise(Y, sigma, alpha),
                               rtol=rtol, atol=rtol)
    np.testing.assert_allclose(gpu.log_normalizer(Y, sigma, alpha),
                               cpu.log_normalizer(Y, sigma, alpha), rtol=rtol)
    for u, v in zip(gpu.nearest(Y, 1.0, alpha), cpu.nearest(Y, 1.0, alpha)):
        np.testing.assert_allclose(u, v, rtol=rtol)
