"""Backend choice, the numpy reference backend, and the CUDA kernels compiled for sm_90.

The CUDA kernels *run* in tests/test_cudasim.py (numba's simulator) and
tests/test_gpu.py (a real GPU); here every kernel is compiled to PTX for an
H100 (``compute_90``) with ``numba.cuda.compile_ptx``, which needs numba-cuda
and the NVVM wheel but no GPU.
"""
import numpy as np
import pytest

import scoredyn as sd
from scoredyn import backend


# -- choosing a backend ------------------------------------------------------------------

def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"`backend` must be one of 'auto', 'numpy', 'numba', "
                                         r"'cuda'; got 'gpu'"):
        backend.resolve("gpu")


def test_environment_override(monkeypatch):
    monkeypatch.setenv("SCOREDYN_BACKEND", "numpy")
    assert backend.resolve() == "numpy"
    assert sd.EmpiricalScore(np.zeros((2, 2))).backend == "numpy"
    assert backend.resolve("numba") == "numba"        # an explicit argument wins
    monkeypatch.setenv("SCOREDYN_BACKEND", "tpu")
    with pytest.raises(ValueError, match=r"the environment variable SCOREDYN_BACKEND must be one "
                                         r"of .*got 'tpu'"):
        backend.resolve()


def test_auto_falls_back_to_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(backend, "cuda_status", lambda: (False, "no GPU"))
    assert backend.resolve("auto") == "numba"
    assert backend.resolve("auto", auto=("cuda", "numpy")) == "numpy"
    monkeypatch.setattr(backend, "cuda_status", lambda: (True, "ok"))
    assert backend.resolve("auto") == "cuda"


def test_cuda_without_a_usable_gpu_says_why(monkeypatch):
    usable, why = backend.cuda_status()
    if usable:
        pytest.skip("a GPU is usable here")
    with pytest.raises(backend.BackendUnavailable, match="backend='cuda' is not usable: "):
        sd.EmpiricalScore(np.zeros((2, 2)), backend="cuda")
    for reason in ("numba-cuda is not installed", "NUMBA_ENABLE_CUDASIM=1: numba's CUDA simulator",
                   "cupy is not installed", "no usable CUDA driver or device"):
        monkeypatch.setattr(backend, "cuda_status", lambda reason=reason: (False, reason))
        with pytest.raises(backend.BackendUnavailable, match=reason):
            backend.resolve("cuda")


def test_cuda_status_reasons(monkeypatch):
    monkeypatch.setattr(backend, "_probe_simulator", lambda: None)
    assert "numba-cuda is not installed" in backend.cuda_status()[1]
    monkeypatch.setattr(backend, "_probe_simulator", lambda: True)
    usable, why = backend.cuda_status()
    assert not usable and "NUMBA_ENABLE_CUDASIM=1" in why
    monkeypatch.setattr(backend, "_ALLOW_SIMULATOR", True)
    assert backend.cuda_status()[0]


def test_backend_not_offered():
    with pytest.raises(ValueError, match=r"backend 'cuda' is not offered here; choose one of "
                                         r"'auto', 'numpy', 'numba'"):
        backend.resolve("cuda", supported=("numpy", "numba"))


def test_bad_gpu_dtype():
    with pytest.raises(ValueError, match=r"`gpu_dtype` must be 'float64' or 'float32'; got 'half'"):
        sd.EmpiricalScore(np.zeros((2, 2)), gpu_dtype="half")


# -- the numpy backend is the reference the kernels are compared with --------------------

@pytest.mark.parametrize("d", [1, 2, 30])
def test_numpy_backend_fields_match_numba(d):
    rng = np.random.default_rng(d)
    X = rng.standard_normal((57, d))
    Y = rng.standard_normal((23, d))
    sigma = rng.uniform(0.2, 2.0, 23)
    alpha = rng.uniform(0.5, 1.0, 23)
    a = sd.EmpiricalScore(X, backend="numba")
    b = sd.EmpiricalScore(X, backend="numpy")
    np.testing.assert_allclose(b.denoise(Y, sigma, alpha), a.denoise(Y, sigma, alpha),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.log_normalizer(Y, sigma, alpha), a.log_normalizer(Y, sigma, alpha),
                               rtol=1e-12, atol=1e-12)
    for u, v in zip(b.nearest(Y, 1.0, alpha), a.nearest(Y, 1.0, alpha)):
        np.testing.assert_allclose(u, v, rtol=1e-13)


def test_numpy_backend_ties_and_tiny_sigma():
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])         # a duplicate
    Y = np.array([[0.0, 0.3], [0.9, 0.0]])
    f = sd.EmpiricalScore(X, backend="numpy")
    D = f.denoise(Y, 1e-300)
    np.testing.assert_array_equal(D, [[1.0 / 3.0, 0.0], [1.0, 0.0]])   # exact tie: 1 : 2
    for field in (f, sd.EmpiricalScore(X, backend="numba")):
        i1, i2, _, _ = field.nearest(Y)
        np.testing.assert_array_equal(i1, [0, 1])                # ties: the lower index first
        np.testing.assert_array_equal(i2, [1, 2])


@pytest.mark.parametrize("d", [2, 3, 12])
def test_numpy_backend_voronoi_matches_numba(d):
    rng = np.random.default_rng(10 + d)
    X = rng.standard_normal((41, d))
    X[7] = X[3]                                                  # coincident sites
    # near (not at) bisectors: an exact tie's winner depends on the summation order
    Y = np.concatenate([rng.standard_normal((30, d)),
                        0.5 * (X[:5] + X[5:10]) + 1e-3 * rng.standard_normal((5, d))])
    for fn in (sd.voronoi.nearest, lambda X, Y, backend: sd.voronoi.distance_to_boundary(
            X, Y, 1e-9, backend=backend), lambda X, Y, backend: sd.voronoi.in_cell(
            X, Y, 0.05, backend=backend)):
        for u, v in zip(fn(X, Y, backend="numpy"), fn(X, Y, backend="numba")):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


# -- every CUDA kernel compiles for sm_90 ------------------------------------------------

def _compile(pyfunc, sig):
    cuda = pytest.importorskip("numba_cuda") and __import__("numba").cuda
    ptx, _ = cuda.compile_ptx(pyfunc, sig, cc=(9, 0))
    assert ".target sm_90" in ptx
    return ptx


V = "float64[::1]"
IV = "int64[::1]"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("d", [1, 2, 3, 16, 32])
def test_small_reduction_kernel_compiles_for_sm90(d, dtype):
    from scoredyn.kernels import cuda_reduction as cr
    M = f"{dtype}[:, ::1]"
    ptx = _compile(cr.small_kernel_source(d, dtype),
                   f"({M}, {M}, {V}, {V}, boolean, {M}, {V}, {V}, {IV}, {V}, {IV}, {V})")
    assert ".shared" in ptx                                       # the data tile
    if dtype == "float32":
        assert "ex2.approx.ftz.f32" in ptx or "ex2.approx.f32" in ptx   # float32 exp per pair


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tile_kernels_compile_for_sm90(dtype):
    from scoredyn.kernels import cuda_reduction as cr
    dist, soft, accum, norm = cr.tile_kernel_sources(dtype)
    M = f"{dtype}[:, ::1]"
    for fn, sig in [(dist, f"({M}, {M}, {V}, int64, int64, {M})"),
                    (soft, f"({M}, int64, int64, {V}, boolean, {V}, {V}, {V}, {IV}, {V}, {IV}, {V})"),
                    (accum, f"({M}, {M}, int64, int64, {V}, {M})"),
                    (norm, f"({M}, {V})")]:
        ptx = _compile(fn, sig)
        if fn in (dist, accum):
            assert ".shared" in ptx and ".local" not in ptx        # tiles in registers, no spills
    _compile(cr._fill_source, f"({M}, {V}, {V}, {IV}, {V}, {IV}, {V})")


def test_voronoi_kernel_compiles_for_sm90():
    from scoredyn.kernels import cuda_voronoi as cv
    M = "float64[:, ::1]"
    ptx = _compile(cv.voronoi_kernel, f"({M}, {M}, float64, {IV}, {V}, {IV}, {V}, {V}, {V}, {IV})")
    assert ".shared" in ptx


@pytest.mark.parametrize("d", [2, 16])
def test_integrator_kernel_compiles_for_sm90(d):
    from scoredyn.kernels import cuda_odeint as co
    M = "float64[:, ::1]"
    M3 = "float64[:, :, ::1]"
    IM = "int64[:, ::1]"
    # (X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout, Uout, outi, outf)
    sig = (f"({M}, {M}, {V}, {IV}, {IV}, {M3}, {M}, {M}, {V}, {V}, {V}, {M}, {V}, "
           f"{M3}, {M}, {M}, {IM}, {M})")
    ptx = _compile(co.integrate_source(d), sig)
    assert "mul.rn.f64" in ptx          # __dmul_rn: squares NVVM may not fuse into an FMA


def test_mixture_integrator_kernel_compiles_for_sm90(d=2):
    # one dimension: d only sizes the thread's local arrays (the integrator test above covers
    # a second one), and each compilation of this loop takes about a minute
    from scoredyn.kernels import cuda_odeint as co
    M = "float64[:, ::1]"
    M3 = "float64[:, :, ::1]"
    IM = "int64[:, ::1]"
    sig = (f"({M}, {M}, {V}, {IV}, {IV}, {M3}, {M}, {M}, {V}, {V}, {V}, {M}, {V}, "
           f"{M3}, {M}, {M}, {IM}, {M})")
    _compile(co.integrate_source(d, mixture=True), sig)


def test_mixture_field_kernel_compiles_for_sm90():
    from scoredyn.kernels import cuda_mixture as cm
    M = "float64[:, ::1]"
    # (Y, alpha, sigma, group, P, logdet, xc, res, lse, scratch, mode)
    _compile(cm.field_kernel().py_func,
             f"({M}, {V}, {V}, {IV}, {M}, {M}, {V}, {M}, {V}, {M}, int64)")
