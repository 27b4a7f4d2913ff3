"""The CUDA kernels under numba's simulator, against the CPU kernels.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim`` (CI's second
invocation).  Inputs are tiny but cross every boundary of the kernels' tiling:
4 threads per block (so 11 queries span 3 blocks), more data points than one
shared-memory tile (64 for the small-d reduction, 32 for the Voronoi pass),
more coordinates than one Voronoi chunk (32), and for the large-d path more
queries and coordinates than one 64 x 64 output tile and several data blocks.

Tolerances: the GPU and CPU kernels evaluate the same formulas in a different
order (per point vs per tile online softmax; FMA contraction), so float64
results agree to a few ulps of the quantities involved (1e-12 relative here);
float32 to its resolution times the conditioning (see each test).
"""
import math

import numpy as np
import pytest

import scoredyn as sd
from scoredyn import backend

from .backends import assert_reductions_match, cpu_and_gpu

pytestmark = pytest.mark.cudasim


@pytest.fixture(autouse=True)
def simulator(monkeypatch):
    """Accept the simulator as a device and launch 4 threads per block."""
    from scoredyn._host import cuda as _cuda
    monkeypatch.setattr(backend, "_ALLOW_SIMULATOR", True)
    monkeypatch.setattr(_cuda, "THREADS", 4)
    return _cuda


fields = cpu_and_gpu


# -- the posterior reduction ----------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3])
def test_small_d_reduction_matches_cpu(d):
    rng = np.random.default_rng(d)
    X = rng.standard_normal((70, d))                 # 70 > 64: two shared-memory tiles
    Y = 1.5 * rng.standard_normal((11, d))           # 11 queries: three blocks of 4
    sigma = np.exp(rng.uniform(-2, 1, 11))
    alpha = rng.uniform(0.5, 1.0, 11)
    cpu, gpu = fields(X)
    np.testing.assert_allclose(gpu.denoise(Y, sigma, alpha), cpu.denoise(Y, sigma, alpha),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gpu.log_normalizer(Y, sigma, alpha),
                               cpu.log_normalizer(Y, sigma, alpha), rtol=1e-12)
    for u, v in zip(gpu.nearest(Y, 1.0, alpha), cpu.nearest(Y, 1.0, alpha)):
        np.testing.assert_allclose(u, v, rtol=1e-13)
    np.testing.assert_allclose(gpu.score(Y, sigma), cpu.score(Y, sigma), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("geometry,q,n,d", [((16, 8, 2), 20, 45, 40), ((64, 16, 4), 65, 70, 33)],
                         ids=["small-tiles", "production-tiles"])
def test_large_d_tiled_reduction_matches_cpu(simulator, monkeypatch, geometry, q, n, d):
    """d > 32 takes the tiled path.  Small tiles (16 x 16 outputs, 8-deep stages, 2 x 2 per
    thread): 2 query tiles, 3 coordinate tiles, 5 stages, and a workspace of 16 points so
    that the data take 3 blocks.  Production tiles (64 x 64, 16-deep, 4 x 4): 2 query
    tiles, 3 stages, 2 data blocks of 64."""
    monkeypatch.setattr(simulator, "TILE_GEOMETRY", geometry)
    monkeypatch.setattr(simulator, "WORKSPACE_BYTES", q * geometry[0] * 8)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, d))
    Y = X[rng.integers(0, n, q)] + 0.8 * rng.standard_normal((q, d))
    sigma = np.full(q, 2.0)
    cpu, gpu = fields(X)
    assert_reductions_match(cpu, gpu, Y, sigma)


@pytest.mark.parametrize("d", [2, 40])
def test_exact_near_a_boundary_at_tiny_sigma(d):
    """Two sites 1 apart, a query 1e-12 off their bisector, sigma = 1e-6, |x| = 10.

    ``w_1 = 1 / (1 + e^{-g})`` with ``g = (|y - x_2|^2 - |y - x_1|^2) / (2 sigma^2) =
    (1 - 2 y_2) / (2 sigma^2) = 1`` (the offset is read back from y, so the input's
    rounding does not count).  Direct differences give each squared distance to
    ~1e-16 relative, i.e. g to ~1e-16 * 0.25 / (2e-12) ~ 1e-5 absolute: D to ~1e-6.
    The expansion ``|y|^2 - 2 y.x + |x|^2`` errs by ~1e-16 * 100 / 2e-12 ~ 5 in g."""
    x1 = np.zeros(d)
    x1[0] = 10.0
    x2 = x1.copy()
    x2[1] = 1.0                                          # bisector: second coordinate 0.5
    X = np.stack([x1, x2])
    y = x1.copy()
    y[1] = 0.5 - 1e-12
    sigma = 1e-6
    g = (1.0 - 2.0 * y[1]) / (2 * sigma ** 2)            # 1 - 2 y_2 is exact (Sterbenz)
    w1 = 1.0 / (1.0 + math.exp(-g))
    D_exact = w1 * x1 + (1 - w1) * x2
    for field in fields(X):
        D = field.denoise(y[None], sigma)[0]
        np.testing.assert_allclose(D[1], D_exact[1], rtol=1e-6)


# The simulator computes with numpy scalars, which warn where IEEE arithmetic overflows to
# -inf in an exponent (exp then gives the exact weight 0); its threads ignore np.errstate.
@pytest.mark.filterwarnings("ignore:.*overflow encountered in scalar multiply:RuntimeWarning")
def test_extreme_sigma_and_ties():
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    Y = np.array([[0.0, 0.3], [0.9, 0.1], [0.0, 0.0], [0.2, -0.3]])
    cpu, gpu = fields(X)
    for sigma in (1e-300, 1e-154, 1e-6, 1.0, 1e154, 1e300):
        a, b = cpu.denoise(Y, sigma), gpu.denoise(Y, sigma)
        assert np.all(np.isfinite(b))
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(gpu.denoise(Y[:1], 1e-300), [[1.0 / 3.0, 0.0]])  # tie 1 : 2


def test_float32_reduction():
    """float32 in centred coordinates: weights to ~ d u32 |y - x|^2 / (2 sigma^2) in the logits.

    Data far from the origin (offset 1000) would cost float32 all its digits in y - x
    without the centring."""
    rng = np.random.default_rng(3)
    X = 1000.0 + rng.standard_normal((70, 3))
    Y = X[:11] + 0.5 * rng.standard_normal((11, 3))
    cpu = sd.EmpiricalScore(X, backend="numba")
    gpu = sd.EmpiricalScore(X, backend="cuda", gpu_dtype="float32")
    D64 = cpu.denoise(Y, 0.7)
    D32 = gpu.denoise(Y, 0.7)
    # logit error <~ 3 * 6e-8 * |y - x|^2 / (2 * 0.49) ~ 1e-6 for |y - x|^2 ~ 5; D moves by
    # (logit error) * spread of the data (~3)
    np.testing.assert_allclose(D32 - 1000.0, D64 - 1000.0, atol=2e-5)
    i1a, _, _, _ = cpu.nearest(Y)
    i1b, _, _, _ = gpu.nearest(Y)
    np.testing.assert_array_equal(i1a, i1b)


# -- the Voronoi pass --------------------------------------------------------------------

@pytest.mark.parametrize("d, n", [(2, 70), (3, 70), (33, 34)])
def test_voronoi_pass_matches_cpu(d, n):
    """70 points: three tiles of 32; d = 33: two coordinate chunks of 32 (and, to keep the
    simulator's run short, two tiles: 34 points and 6 queries)."""
    rng = np.random.default_rng(20 + d)
    X = rng.standard_normal((n, d))
    X[9] = X[4]                                                   # coincident sites
    Y = np.concatenate([rng.standard_normal((9 if n > 64 else 4, d)), X[:2] + 1e-3])
    for fn in (sd.voronoi.nearest,
               lambda X, Y, backend: sd.voronoi.distance_to_boundary(X, Y, 1e-9, backend=backend),
               lambda X, Y, backend: sd.voronoi.in_cell(X, Y, 0.05, backend=backend)):
        for u, v in zip(fn(X, Y, backend="cuda"), fn(X, Y, backend="numba")):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)


def test_voronoi_strata_on_the_square():
    """Exactly symmetric points: centre of a square (4 cells meet: 3 tied bisectors), edge
    midpoints (2 cells, 1 bisector)."""
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    Y = np.array([[0.5, 0.5], [0.5, 0.0], [0.0, 0.5], [0.25, 0.25]])
    cls = sd.voronoi.classify(X, Y, 1e-12, backend="cuda")
    np.testing.assert_array_equal(cls.kind, [1, 1, 1, 2])
    np.testing.assert_array_equal(cls.stratum, [3, 1, 1, 0])
    np.testing.assert_array_equal(cls.distance_to_boundary[:3], 0.0)


# -- the fused integrator ------------------------------------------------------------------

METHODS = [dict(method="dopri5", rtol=1e-5, atol=1e-8),
           dict(method="gl-dopri5", rtol=1e-5, atol=1e-8), dict(method="etd1", h=0.2),
           dict(method="rk4", h=0.25), dict(method="etdrk4", h=0.4), dict(method="heun", h=0.2)]


@pytest.mark.parametrize("kw", METHODS, ids=[k["method"] for k in METHODS])
@pytest.mark.parametrize("d", [2, 3])
def test_fused_integrator_matches_cpu(kw, d):
    rng = np.random.default_rng(30 + d)
    X = rng.standard_normal((8, d))
    y0 = 2.0 * rng.standard_normal((5, d))              # 5 trajectories: two blocks of 4
    opts = dict(save_at=[0.5, 2.5], recentre=True, delta=0.05, s_star=2.0, **kw)
    cpu, gpu = fields(X)
    a = sd.solve(cpu, y0, (0.0, 3.0), **opts)
    b = sd.solve(gpu, y0, (0.0, 3.0), **opts)
    assert b.success
    np.testing.assert_allclose(b.y, a.y, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(b.ys, a.ys, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(b.deviation, a.deviation, rtol=1e-9, atol=1e-14)
    for name in ("n_steps", "n_rejected", "nfev", "status", "nearest", "centre", "cell_changes"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    np.testing.assert_allclose(b.max_norm, a.max_norm, rtol=1e-13)
    # (|y - x_l|^2 - |y - x_i|^2) / (2 |x_l - x_i|): absolute error of O(eps |y - x|^2 / |x_l - x_i|)
    # on top of the states' 1e-13, whatever the distance's size
    np.testing.assert_allclose(b.boundary_distance, a.boundary_distance, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(b.nearest_distance, a.nearest_distance, rtol=1e-9)
    # step starts: identical for fixed steps; adaptive step sizes follow the error norm,
    # a difference of nearly equal stages, so they agree to ~1e-9 only
    np.testing.assert_allclose(b.entry_time, a.entry_time, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(b.first_inside, a.first_inside, rtol=1e-8, equal_nan=True)


@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
def test_cuda_engine_takes_the_cpu_engines_steps(method):
    """``engine="cuda"`` runs the CPU's loop (kernels.trajectory) on the device: the same
    steps, rejections and evaluations as every CPU engine, states within 1e-12 (the
    reductions differ in summation order only; see tests/test_engines.py)."""
    rng = np.random.default_rng(50)
    X = rng.standard_normal((5, 2))
    y0 = 1.5 * rng.standard_normal((3, 2))
    field = sd.EmpiricalScore(X)
    kw = dict(method=method, rtol=1e-5, atol=1e-7, save_at=[1.0])
    ref = sd.solve(field, y0, (0.0, 3.0), engine="numba", **kw)
    assert ref.n_rejected.sum() > 0                      # the controller was exercised
    for engine in ("cuda", "numpy"):
        r = sd.solve(field, y0, (0.0, 3.0), engine=engine, **kw)
        assert r.engine == engine
        for name in ("n_steps", "n_rejected", "nfev", "status", "nearest"):
            np.testing.assert_array_equal(getattr(r, name), getattr(ref, name), err_msg=name)
        np.testing.assert_allclose(r.y, ref.y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.ys, ref.ys, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reg", [sd.Tikhonov(1e-2), sd.EmpiricalBayes(0.05)],
                         ids=["tikhonov", "empirical_bayes"])
def test_fused_integrator_regularised(reg):
    rng = np.random.default_rng(40)
    X = rng.standard_normal((6, 2))
    y0 = rng.standard_normal((5, 2))
    cpu, gpu = fields(X, regularization=reg)
    a = sd.solve(cpu, y0, (0.0, 5.0), method="dopri5", rtol=1e-6)
    b = sd.solve(gpu, y0, (0.0, 5.0), method="dopri5", rtol=1e-6)
    np.testing.assert_allclose(b.y, a.y, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(b.n_steps, a.n_steps)


def test_fused_integrator_collapse_rate_recentred():
    """|y(s) - x_i| e^{s} -> const up to s = 60, resolved by recentring far below y's float64
    floor (tests/test_ode.py's check, on the GPU kernel), and equal to the CPU kernel's."""
    X = np.array([[0.0, 0.0], [2.0, 0.5], [-1.0, 1.5]])
    y0 = np.array([[0.3, -0.4], [1.2, 0.9]])
    cpu, gpu = fields(X)
    kw = dict(method="dopri5", rtol=1e-10, atol=1e-300, recentre=True)
    K = []
    for s1 in (20.0, 60.0):
        r = sd.solve(gpu, y0, (0.0, s1), **kw)
        assert r.success and np.all(r.nearest == r.centre)
        K.append(r.nearest_distance * np.exp(s1))
    assert np.all(K[0] > 1e-3)
    np.testing.assert_allclose(K[1], K[0], rtol=1e-6)
    ref = sd.solve(cpu, y0, (0.0, 60.0), **kw)
    # relative to the deviation's size, not per component: a component of a deviation of norm
    # e^{-60} may itself be near 0
    scale = np.linalg.norm(ref.deviation, axis=1, keepdims=True)
    assert np.all(np.abs(r.deviation - ref.deviation) <= 1e-9 * scale), (r.deviation, ref.deviation)


def test_fused_integrator_limits():
    X = np.zeros((3, 17))
    X[:, 0] = [0.0, 1.0, 2.0]
    gpu = sd.EmpiricalScore(X, backend="cuda")
    with pytest.raises(ValueError, match=r"backend 'cuda' cannot run this problem: it integrates "
                                         r"in dimension d <= 16 \(got d = 17\)"):
        sd.solve(gpu, np.zeros((1, 17)), (0.0, 1.0), backend="cuda")
    with pytest.raises(ValueError, match=r"`engine`='cuda' cannot run this problem: it integrates"):
        sd.solve(gpu, np.zeros((1, 17)), (0.0, 1.0), engine="cuda")
    r = sd.solve(gpu, np.ones((1, 17)), (0.0, 1.0), backend="auto")   # auto: the CPU kernel
    assert r.success and r.engine == "numba"


# -- arrays in, arrays out ---------------------------------------------------------------

class FakeDeviceArray:
    """Stands in for a cupy array: ``is_cupy`` keys on the type's module."""

    __module__ = "cupy._core.core"

    def __init__(self, a):
        self.a = np.asarray(a)

    def get(self):
        return self.a


def test_device_arrays_in_device_arrays_out(monkeypatch):
    import sys
    import types
    fake = types.ModuleType("cupy")
    fake.asarray = FakeDeviceArray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    rng = np.random.default_rng(50)
    X = rng.standard_normal((9, 2))
    Y = rng.standard_normal((5, 2))
    cpu, gpu = fields(X)
    out = gpu.denoise(FakeDeviceArray(Y), 0.5)
    assert isinstance(out, FakeDeviceArray)
    np.testing.assert_allclose(out.a, cpu.denoise(Y, 0.5), rtol=1e-12)
    i1, i2, r1, r2 = gpu.nearest(FakeDeviceArray(Y))
    assert isinstance(i1, FakeDeviceArray) and isinstance(r2, FakeDeviceArray)
    res = sd.solve(gpu, FakeDeviceArray(Y), (0.0, 2.0), method="etd1", h=0.5)
    assert isinstance(res.y, FakeDeviceArray) and isinstance(res.nfev, FakeDeviceArray)
    bd, nt, cell = sd.voronoi.distance_to_boundary(X, FakeDeviceArray(Y), backend="cuda")
    assert isinstance(bd, FakeDeviceArray)
    assert isinstance(gpu.denoise(Y, 0.5), np.ndarray)            # numpy in, numpy out


def test_tiled_path_exact_on_the_design_case(simulator, monkeypatch):
    """The cancellation trap on the GPU's tiled path, at d = 256 (d = 3072 takes minutes in the
    simulator; tests/test_gpu.py runs it on hardware): two sites whose squared distances to
    y differ by ~1e-7 relative, sigma = 1e-6.  D within 1e-8 of the CPU kernel (held to a
    60-digit reference in tests/test_extremes.py), where the GEMM expansion misplaces the
    weight by > 1e-3.  Small tiles: every tile boundary is crossed."""
    from scoredyn.apps.bench import near_boundary_case
    monkeypatch.setattr(simulator, "TILE_GEOMETRY", (16, 8, 2))
    monkeypatch.setattr(simulator, "WORKSPACE_BYTES", 16 * 8)
    data, y = near_boundary_case(np.random.default_rng(12), d=256, n_far=14)
    cpu, gpu = fields(data)
    w = cpu.weights(y, 1e-6)[0]
    assert 0.2 < w[0] < 0.8
    sq = (y ** 2).sum(1)[:, None] - 2 * y @ data.T + (data ** 2).sum(1)[None]
    l = -sq[0] / 2e-12
    w_gemm = np.exp(l - l.max()) / np.exp(l - l.max()).sum()
    assert abs(w_gemm[0] - w[0]) > 1e-3                     # the trap is real at d = 256
    D_cpu, D_gpu = cpu.denoise(y, 1e-6)[0], gpu.denoise(y, 1e-6)[0]
    assert np.max(np.abs(D_gpu - D_cpu)) <= 1e-8 * np.max(np.abs(data[:2]))
    i1, i2, _, _ = gpu.nearest(y)
    assert {i1[0], i2[0]} == {0, 1} and i1[0] == int(np.argmax(w[:2]))


def test_gpu_benchmark_runs(simulator):
    """The pieces of ``scoredyn bench gpu`` that the simulator can run, at toy sizes."""
    from scoredyn.apps import bench_gpu
    rows = bench_gpu.ode_benchmark((6, 5, 2, 0.1), cpu_trajectories=6, echo=lambda s: None)
    assert [r["method"] for r in rows] == ["etd1", "dopri5", "gl-dopri5"]
    assert all(r["success"] and r["max_gpu_cpu_difference"] < 1e-12 for r in rows)
    rng = np.random.default_rng(60)
    for dtype in ("float64", "float32"):
        for d in (2, 33):
            bench_gpu._kernel_runner(rng.standard_normal((20, d)), rng.standard_normal((5, d)),
                                     1.0, dtype)()


# -- Gaussian mixtures ------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("cov", ["isotropic", "diagonal"])
def test_mixture_field_kernel_matches_cpu(cov):
    """The mixture's per-query loop (kernels.mixture_query) on the device against the CPU's:
    per-query and grouped log-determinants, and sigma where only the hypot form serves and
    where every logit leaves float64 (the exact limit).  Same formulas, libm's exp instead
    of the CPU's vectorised one (1 ulp): 1e-12 relative."""
    rng = np.random.default_rng(21)
    k, d = 9, 3
    means = rng.standard_normal((k, d))
    var = rng.uniform(0.0, 0.5, k if cov == "isotropic" else (k, d))
    if cov == "diagonal":
        var[2, 1] = 0.0
    cpu = sd.GaussianMixture(means, var, backend="numba")
    gpu = sd.GaussianMixture(means, var, backend="cuda")
    y = 1.5 * rng.standard_normal((11, d))
    for sigma in (np.exp(rng.uniform(-3, 1, 11)), np.full(11, 0.4), np.full(11, 1e-200),
                  np.full(11, 1e200)):
        np.testing.assert_allclose(gpu.denoise(y, sigma), cpu.denoise(y, sigma), rtol=1e-12,
                                   atol=1e-13)
        np.testing.assert_allclose(gpu.log_density(y, sigma), cpu.log_density(y, sigma),
                                   rtol=1e-12)


def test_cuda_engine_takes_a_mixtures_cpu_steps():
    """A diagonal mixture in the device's time loop: the CPU engine's steps, states within
    1e-12, the component means as the diagnostics' sites."""
    rng = np.random.default_rng(22)
    means = rng.standard_normal((4, 2)) * 2
    gm = sd.GaussianMixture(means, rng.uniform(0.01, 0.2, (4, 2)))
    y0 = rng.standard_normal((3, 2)) * 3
    kw = dict(method="dopri5", rtol=1e-5, atol=1e-7, save_at=[1.0])
    ref = sd.solve(gm, y0, (0.0, 2.0), engine="numba", **kw)
    r = sd.solve(gm, y0, (0.0, 2.0), engine="cuda", **kw)
    assert r.engine == "cuda" and r.success
    for attr in ("n_steps", "n_rejected", "nfev", "status", "nearest"):
        np.testing.assert_array_equal(getattr(r, attr), getattr(ref, attr), attr)
    np.testing.assert_allclose(r.y, ref.y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.ys, ref.ys, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.boundary_distance, ref.boundary_distance, rtol=1e-12)


def test_simulated_shared_arrays_are_one_per_block():
    """The suite's premise: every simulated thread of a block sees the same shared array.
    tests/conftest.py makes the simulator's lazy allocation atomic; without it, this kernel
    gave one block's threads arrays of their own in 1 of 20 launches in a standalone run
    (64 wrong sums), so this guard can miss a regression: it fails only when the race hits."""
    from numba import cuda, float64

    # the simulator swaps the kernel's global `cuda` for its fake module, so the kernel
    # needs `cuda` among its globals (not a local of this test)
    source = (
        "def total(out):\n"
        "    s = cuda.shared.array(64, float64)\n"
        "    t = cuda.threadIdx.x\n"
        "    s[t] = t + 1.0\n"
        "    cuda.syncthreads()\n"
        "    acc = 0.0\n"
        "    for j in range(64):\n"
        "        acc += s[j]\n"
        "    out[cuda.blockIdx.x * 64 + t] = acc\n")
    namespace = {"cuda": cuda, "float64": float64}
    exec(source, namespace)
    total = cuda.jit(namespace["total"])

    for _ in range(10):
        out = np.zeros(4 * 64)
        total[4, 64](out)
        np.testing.assert_array_equal(out, 64 * 65 / 2)
