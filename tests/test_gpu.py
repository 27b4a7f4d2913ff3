"""The CUDA backend on a real GPU, against the CPU kernels (skipped without a GPU).

Same comparisons as tests/test_cudasim.py at sizes the simulator cannot reach:
production tiles, thousands of queries, d = 3072, cupy arrays.  Tolerances as
there: float64 agrees with the CPU to 1e-12 relative (same formulas, another
summation order), float32 to its resolution times the logits' conditioning.
"""
import numpy as np
import pytest

import scoredyn as sd

from .backends import assert_reductions_match, cpu_and_gpu

pytestmark = pytest.mark.gpu


fields = cpu_and_gpu


@pytest.mark.parametrize("q,n,d", [(3000, 5000, 2), (700, 3000, 16), (300, 2000, 300)])
def test_reduction_matches_cpu(q, n, d):
    rng = np.random.default_rng(d)
    X = rng.standard_normal((n, d))
    Y = X[rng.integers(0, n, q)] + 0.5 * rng.standard_normal((q, d))
    sigma = np.exp(rng.uniform(-1, 1, q)) * (np.sqrt(d) / 4 if d > 8 else 1.0)
    cpu, gpu = fields(X)
    assert_reductions_match(cpu, gpu, Y, sigma)


@pytest.mark.parametrize("w_target", [0.27, 0.73])
def test_design_case_at_d3072(w_target):
    from scoredyn.apps.bench import near_boundary_case
    data, y = near_boundary_case(np.random.default_rng(12 if w_target < 0.5 else 13),
                                 w_target=w_target)
    cpu, gpu = fields(data)
    D_cpu, D_gpu = cpu.denoise(y, 1e-6)[0], gpu.denoise(y, 1e-6)[0]
    assert np.max(np.abs(D_gpu - D_cpu)) <= 1e-8 * np.max(np.abs(data[:2]))


def test_float32_reduction_large_d():
    rng = np.random.default_rng(7)
    X = 5.0 + rng.standard_normal((4000, 512))
    Y = X[:200] + 0.3 * rng.standard_normal((200, 512))
    sigma = 6.0
    cpu = sd.EmpiricalScore(X, backend="numba")
    gpu = sd.EmpiricalScore(X, backend="cuda", gpu_dtype="float32")
    # logits err by ~ d u32 |y - x|^2 / (2 sigma^2) ~ 512 * 6e-8 * 1000 / 72 ~ 4e-4 at worst
    # (random-sign rounding: ~ sqrt(d) of that); D moves by that times the data's spread
    np.testing.assert_allclose(gpu.denoise(Y, sigma), cpu.denoise(Y, sigma), atol=2e-3)


@pytest.mark.parametrize("kw", [dict(method="dopri5", rtol=1e-8, atol=1e-10),
                                dict(method="gl-dopri5", rtol=1e-7, atol=1e-9),
                                dict(method="etd1", h=0.01), dict(method="rk4", h=0.05)],
                         ids=["dopri5", "gl-dopri5", "etd1", "rk4"])
def test_fused_integrator_matches_cpu(kw):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((200, 2))
    y0 = 2 * rng.standard_normal((5000, 2))
    cpu, gpu = fields(X)
    opts = dict(save_at=[1.0, 5.0], delta=0.05, s_star=6.0, **kw)
    a = sd.solve(cpu, y0, (0.0, 12.0), **opts)
    b = sd.solve(gpu, y0, (0.0, 12.0), **opts)
    assert b.success
    # trajectories that pass within rounding of a Voronoi boundary may legitimately split
    same = b.nearest == a.nearest
    assert same.mean() > 0.999
    np.testing.assert_allclose(b.y[same], a.y[same], rtol=1e-9, atol=1e-11)


def test_voronoi_matches_cpu():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((3000, 3))
    Y = rng.standard_normal((4000, 3))
    for u, v in zip(sd.voronoi.distance_to_boundary(X, Y, 1e-9, backend="cuda"),
                    sd.voronoi.distance_to_boundary(X, Y, 1e-9, backend="numba")):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)


def test_cupy_in_cupy_out():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(10)
    X = rng.standard_normal((500, 2))
    Y = rng.standard_normal((100, 2))
    cpu, gpu = fields(X)
    out = gpu.denoise(cupy.asarray(Y), 0.3)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(out.get(), cpu.denoise(Y, 0.3), rtol=1e-12)
    res = sd.solve(gpu, cupy.asarray(Y), (0.0, 5.0), method="dopri5")
    assert isinstance(res.y, cupy.ndarray)
