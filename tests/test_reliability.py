"""No silent wrong answer: bad, extreme and faulty inputs at the public entry points.

Table-driven, one table per entry point: each bad input with the error it must raise and
a message that names the parameter; each extreme input with its exact answer.
"""
import io
import os
import time
from contextlib import redirect_stderr

import numpy as np
import pytest

import scoredyn as sd
from scoredyn import coldstart
from scoredyn.apps import cli

from .test_ode import authors_data

# -- probability_flow: the arguments solve checks, and the outcome -----------------------------

FLOW_BAD = [
    (dict(rtol=0.0), ValueError, r"`rtol` must be positive; got 0.0"),
    (dict(atol=0.0), ValueError, r"`atol` must be positive; got 0.0"),
    (dict(rtol=np.nan), ValueError, r"`rtol` must be finite; got nan"),
    (dict(atol=-1e-9), ValueError, r"`atol` must be positive"),
    (dict(method="rk4", h=-0.1), ValueError, r"`h` must be positive; got -0.1"),
    (dict(method="rk4", h=np.inf), ValueError, r"`h` must be finite; got inf"),
    (dict(method="rk4"), ValueError, r"`h` \(the largest step\) is required"),
    (dict(max_steps=0), ValueError, r"`max_steps` must be a positive integer; got 0"),
    (dict(max_steps=2.5), ValueError, r"`max_steps` must be a positive integer; got 2.5"),
    (dict(max_steps=True), ValueError, r"`max_steps` must be a positive integer; got True"),
    (dict(method="rk9"), ValueError, r"`method` must be one of"),
    (dict(t_span=(0.01, 1.0)), ValueError, r"`t_span` must satisfy t0 > t1 > 0"),
    (dict(x_T=np.zeros((2, 3))), ValueError, r"`x_T`"),
]


@pytest.mark.parametrize("bad,exc,match", FLOW_BAD, ids=[m[:30] for _, _, m in FLOW_BAD])
def test_probability_flow_refuses(bad, exc, match):
    args = dict(x_T=np.zeros((2, 2)), t_span=(1.0, 0.01))
    args.update(bad)
    field = sd.EmpiricalScore(authors_data())
    with pytest.raises(exc, match=match):
        sd.probability_flow(field, sd.VE(), args.pop("x_T"), args.pop("t_span"), **args)


@pytest.mark.parametrize("kw", [dict(max_steps=2), dict(method="rk4", h=0.01, max_steps=5)])
def test_probability_flow_never_returns_a_state_part_of_the_way(kw):
    field = sd.EmpiricalScore(authors_data())
    with pytest.raises(sd.IntegrationError, match=r"2 of 2 trajectories did not reach t = 0.01 "
                                                  r"\(trajectory 0: The number of steps"):
        sd.probability_flow(field, sd.VE(), np.ones((2, 2)), (1.0, 0.01), **kw)


def test_probability_flow_reaches_its_end_exactly():
    """The span is (-t0, -t1) in the integrator's time, negative: the last step must land
    on -t1 (s + (s1 - s) rounds below s1 there), not leave a step below its resolution."""
    field = sd.EmpiricalScore(authors_data())
    x = np.random.default_rng(20).standard_normal((200, 2))
    y = sd.probability_flow(field, sd.VE(), x, (3.7, 0.01), rtol=1e-7)
    assert np.all(np.isfinite(y))


# -- the first compile says so ---------------------------------------------------------------

class _Uncompiled:
    signatures = []


def test_a_slow_first_compile_is_announced_once(monkeypatch):
    monkeypatch.setattr(coldstart, "NOTICE_AFTER_S", 0.05)
    monkeypatch.setattr(coldstart, "_said", set())
    err = io.StringIO()
    with redirect_stderr(err):
        for _ in range(2):
            with coldstart.compiling("test", _Uncompiled()):
                time.sleep(0.3)
    assert err.getvalue().count("scoredyn: compiling the test kernels on first use") == 1


def test_a_long_run_after_loading_is_not_announced(monkeypatch):
    """A kernel that loaded from the cache quickly and then runs for long (a big problem in
    a fresh process) is not announced as compiling."""
    monkeypatch.setattr(coldstart, "NOTICE_AFTER_S", 0.05)
    monkeypatch.setattr(coldstart, "_said", set())
    kernel = _Uncompiled()
    err = io.StringIO()
    with redirect_stderr(err):
        with coldstart.compiling("test", kernel):
            kernel.signatures = ["(float64[:],)"]           # loaded: now it only runs
            time.sleep(0.3)
    assert err.getvalue() == ""


def test_a_compiled_kernel_is_not_announced(monkeypatch):
    class Compiled:
        signatures = [("int64",)]
    monkeypatch.setattr(coldstart, "NOTICE_AFTER_S", 0.01)
    monkeypatch.setattr(coldstart, "_said", set())
    err = io.StringIO()
    with redirect_stderr(err):
        with coldstart.compiling("test", Compiled()):
            time.sleep(0.1)
    assert err.getvalue() == ""


def test_compile_command_warms_every_group(capsys):
    assert cli.main(["compile", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for group in ("fields", "Gaussian mixtures", "voronoi and nearest neighbours",
                  "solve, per trajectory",
                  "solve, SIMD lanes", "solve, batched"):
        assert group in out
    assert "compiled (or loaded from the cache) every CPU kernel" in out


def test_import_loads_no_compiler():
    """``import scoredyn`` loads neither numba, scipy nor matplotlib (checked in a fresh
    interpreter: this one has them already)."""
    import subprocess
    import sys
    code = ("import sys, scoredyn; "
            "print(sorted(m for m in ('numba', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", ["scoredyn", "scoredyn.fields", "scoredyn.dynamics",
                                     "scoredyn.geometry", "scoredyn.memorization"])
def test_every_lazy_name_resolves(package):
    """Each name a package lists in ``__all__`` loads (a typo in the lazy tables would only
    show when a user reaches for that name), and an unknown name is an AttributeError."""
    import importlib
    import types
    mod = importlib.import_module(package)
    for name in mod.__all__:
        value = getattr(mod, name)
        assert value is not None
        if isinstance(value, types.ModuleType):
            assert value.__name__.startswith("scoredyn.")
        assert name in dir(mod)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        getattr(mod, "no_such_name")


# -- schedules and helpers -------------------------------------------------------------------

def _ddpm_alpha(t):
    return sd.DDPM().alpha(t)


def _ddpm_sigma(t):
    return sd.DDPM().sigma(t)


HELPERS_BAD = [
    (_ddpm_alpha, (-1,), ValueError, r"`t` must be integer steps in \[0, 1000\]; got -1"),
    (_ddpm_alpha, (1001,), ValueError, r"`t` must be integer steps in \[0, 1000\]; got 1001"),
    (_ddpm_sigma, (2.5,), ValueError, r"`t` must be integer steps in \[0, 1000\]; got 2.5"),
    (_ddpm_sigma, (np.array([3, -2]),), ValueError, r"`t` must be integer steps .*got -2"),
    (lambda n: sd.EDM().steps(n), (2.5,), ValueError, r"`n` must be an integer >= 2; got 2.5"),
    (lambda n: sd.EDM().steps(n), (1,), ValueError, r"`n` must be an integer >= 2; got 1"),
    (sd.convergence.min_separation, ([[np.nan, 0.0], [1.0, 1.0]],), ValueError,
     r"All entries of `data` must be finite"),
    (sd.convergence.sufficient_time, (2.7, 1.0, 0.1, 1.0), ValueError,
     r"`n` must be a positive integer; got 2.7"),
    (lambda T: sd.DDPM(T=T), (2.5,), ValueError, r"`T` must be a positive integer; got 2.5"),
    (lambda b: sd.DDPM(beta_end=b), (2.0,), ValueError, r"`beta_end` must lie in \(0, 1\)"),
    (lambda b: sd.DDPM(betas=b), ("abc",), ValueError, r"`betas` must be a 1-D array of numbers"),
]


@pytest.mark.parametrize("fn,args,exc,match", HELPERS_BAD, ids=[m[:30] for *_, m in HELPERS_BAD])
def test_helpers_refuse(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args)


@pytest.mark.parametrize("c", [1e-300, 1e-200, 1.0, 1e200, 1e300])
def test_geometry_helpers_are_scale_equivariant(c):
    """min_separation scales with the data and s* shifts by -log c (only delta^2 carries a
    length outside a ratio), finite where the squares over- or underflow."""
    X = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]]) * c
    assert sd.convergence.min_separation(X) == pytest.approx(5.0 * c, rel=1e-15)
    s1 = sd.convergence.sufficient_time(20, 3.0, 0.5, 5.0)
    sc = sd.convergence.sufficient_time(20, 3.0 * c, 0.5 * c, 5.0 * c)
    assert np.isfinite(sc) and sc == pytest.approx(s1 - np.log(c), abs=1e-12 * max(1, abs(sc)))


def test_min_separation_resolves_tiny_gaps():
    assert sd.convergence.min_separation([[0.0, 0.0], [1e-170, 0.0]]) == 1e-170


# -- statistics that look valid but are not --------------------------------------------------

def _mmd(a, b, **kw):
    from scoredyn.memorization.early_stopping import mmd_test
    return mmd_test(a, b, rng=0, **kw)


A2 = np.random.default_rng(21).standard_normal((12, 2))
B2 = np.random.default_rng(22).standard_normal((10, 2))
STATS_BAD = [
    (_mmd, (A2, B2), dict(n_permutations=-3), ValueError,
     r"`n_permutations` must be a positive integer; got -3"),
    (_mmd, (A2, B2), dict(n_permutations=2.5), ValueError, r"`n_permutations` must be"),
    (_mmd, (np.zeros((6, 2)), np.zeros((5, 2))), {}, ValueError,
     r"median-heuristic bandwidth of the pooled samples is 0.0"),
    (_mmd, (A2, np.ones((5, 3))), {}, ValueError, r"`a` and `b` must have the same dimension"),
    (_mmd, (A2, B2[:1]), {}, ValueError, r"`a` and `b` need at least 2 samples each"),
    (_mmd, (A2, np.full((4, 2), np.nan)), {}, ValueError, r"All entries of `b` must be finite"),
    (sd.ambient.leakage_ambient, ([[-2.0]], 0.5), {}, ValueError,
     r"`cov` must be positive semi-definite; its smallest eigenvalue is -2"),
    (sd.ambient.leakage_ambient, ([[1.0, 2.0], [0.0, 1.0]], 0.5), {}, ValueError,
     r"`cov` must be symmetric"),
    (sd.ambient.leakage_ddpm, ([[1.0, np.inf], [np.inf, 1.0]], 0.5, 2), {}, ValueError,
     r"All entries of `cov` must be finite"),
    (sd.ambient.component_tv, ([0.0, 0.0], [1.0, 1.0, 1.0], 0.3), {}, ValueError,
     r"`mu_i` and `mu_j` must be vectors of the same length"),
    (sd.ambient.component_tv, ([0.0], [1.0], np.nan), {}, ValueError, r"`sigma_t` must lie in"),
    (sd.ambient.leakage_monte_carlo, ([[1.0]], 0.5, 0), {}, ValueError,
     r"`m` must be a positive integer; got 0"),
    (sd.memorization.bootstrap_ci, ([1.0, np.nan],), {}, ValueError,
     r"`values` must be a finite 1-D array"),
    (sd.memorization.bootstrap_ci, ([],), {}, ValueError,
     r"`values` must contain at least one value"),
]


@pytest.mark.parametrize("fn,args,kw,exc,match", STATS_BAD, ids=[m[:30] for *_, m in STATS_BAD])
def test_statistics_refuse(fn, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


def test_leakage_of_a_singular_covariance():
    """A rank-1 covariance is valid (x0 on a line): the Monte-Carlo estimate samples it through
    its eigendecomposition (Cholesky fails) and agrees with the closed form within 4 standard
    errors."""
    cov = np.array([[1.0, 1.0], [1.0, 1.0]])
    exact = sd.ambient.leakage_ambient(cov, 0.5)
    est, se = sd.ambient.leakage_monte_carlo(cov, 0.5, 1, n=20000, rng=23)
    assert abs(est - exact) < 4 * se


def test_bootstrap_memory_is_bounded():
    """Q = 2 * 10^5 samples, 256 resamples: the peak stays within the 2^21-index chunk (16 MiB
    of indices and 16 MiB of gathered values), where 256 x Q indices took 792 MB."""
    import tracemalloc
    values = np.random.default_rng(24).random(200_000)
    tracemalloc.start()
    try:
        low, high = sd.memorization.bootstrap_ci(values, n_bootstrap=256, rng=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2 ** 20, peak
    assert low < values.mean() < high


# -- the command line: every argument checked before the work starts -------------------------

CLI_BAD = [
    (["verify", "--json", "{tmp}"], r"argument --json: '.*' is a directory"),
    (["verify", "--json", "{tmp}/missing/out.json"], r"argument --json: the folder .* does not exist"),
    (["verify", "--seed", "-1"], r"argument --seed: must be an integer >= 0; got -1"),
    (["verify", "--seed", "2.5"], r"argument --seed: must be an integer >= 0; got '2.5'"),
    (["bench", "--repeat", "0"], r"argument --repeat: must be an integer >= 1; got 0"),
    (["bench", "--sigma", "nan"], r"argument --sigma: must be a positive finite number"),
    (["bench", "--sigma", "-1"], r"argument --sigma: must be a positive finite number"),
    (["bench", "ode", "--plot", "{file}/x"], r"argument --plot: .* is not a folder"),
    (["figures", "--only", ""], r"unknown figure '' in --only"),
    (["figures", "--only", "fig99"], r"unknown figure 'fig99' in --only"),
    (["figures", "--out", "{file}"], r"argument --out: .* exists and is not a folder"),
    (["run", "--out", "{file}"], r"argument --out: .* exists and is not a folder"),
    # writability is tried, not read off permission bits (root may write anywhere they say)
    pytest.param(["verify", "--json", "/proc/x.json"], r"argument --json: '/proc/x.json' is "
                 r"not writable", marks=pytest.mark.skipif(not os.path.isdir("/proc/self"),
                                                           reason="needs Linux's /proc")),
    pytest.param(["figures", "--out", "/proc/new"], r"argument --out: '/proc' is not writable",
                 marks=pytest.mark.skipif(not os.path.isdir("/proc/self"),
                                          reason="needs Linux's /proc")),
]


@pytest.mark.parametrize("argv,match", CLI_BAD,
                         ids=[" ".join(getattr(c, "values", c)[0]) for c in CLI_BAD])
def test_cli_refuses_in_one_line_with_exit_code_2(argv, match, tmp_path, capsys):
    import re
    afile = tmp_path / "a_file"
    afile.write_text("x")
    argv = [a.format(tmp=tmp_path, file=afile) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(match, err), err


# -- data scale: the answers are scale-equivariant, at every representable scale ------------

SCALES = [2.0 ** -1000, 1e-300, 1e-200, 1e-154, 1.0, 1e154, 1e200, 1e300]


@pytest.mark.parametrize("c", SCALES)
def test_empirical_field_at_every_scale(c):
    """Two sites 0 and 3 c, the query at 1.2 c, sigma = c / 2: the logits are -2.88 and -6.48
    whatever c is, so D = 3 c / (1 + e^{3.6}) (closed form), the score and noise scale as
    1/c and 1, and the nearest site is site 0 at 1.2 c.  (Unscaled, squares overflow past
    ~1e154, lose their digits below ~1e-154, and returned D = 0, NaN, or 80% errors.)"""
    X = np.array([[0.0, 0.0], [3.0, 0.0]]) * c
    x = np.array([[1.2, 0.0]]) * c
    f = sd.EmpiricalScore(X)
    w1 = 1.0 / (1.0 + np.exp(3.6))
    D = 3.0 * w1
    np.testing.assert_allclose(f.denoise(x, 0.5 * c) / c, [[D, 0.0]], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(f.score(x, 0.5 * c) * c, [[(D - 1.2) / 0.25, 0.0]], rtol=1e-14,
                               atol=1e-15)
    np.testing.assert_allclose(f.noise(x, 0.5 * c), [[(1.2 - D) / 0.5, 0.0]], rtol=1e-14,
                               atol=1e-15)
    np.testing.assert_allclose(f.weights(x, 0.5 * c), [[1 - w1, w1]], rtol=1e-14)
    i1, i2, r1, r2 = f.nearest(x)
    assert (i1[0], i2[0]) == (0, 1)
    np.testing.assert_allclose([r1[0] / c, r2[0] / c], [1.2, 1.8], rtol=1e-15)
    # log p = logsumexp(l) - log 2 - log(2 pi sigma^2): only the last term sees the scale
    lse = np.logaddexp(-2.88, -6.48)
    np.testing.assert_allclose(f.log_density(x, 0.5 * c),
                               lse - np.log(2) - np.log(2 * np.pi * 0.25) - 2 * np.log(c),
                               rtol=1e-14)
    np.testing.assert_allclose(f.jacobian(x, 0.5 * c)[0, 0, 0], 9.0 * w1 * (1 - w1) / 0.25,
                               rtol=1e-13)


@pytest.mark.parametrize("c", SCALES)
def test_voronoi_at_every_scale(c):
    """Never index -1 (which silently picked the last point): nearest sites, distances and
    margins scale with the data."""
    X = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]) * c
    y = np.array([[2.9, 1.0], [0.2, 0.1]]) * c
    i1, i2, r1, r2 = sd.voronoi.nearest(X, y)
    np.testing.assert_array_equal(i1, [1, 0])
    np.testing.assert_allclose(r1 / c, [np.hypot(0.1, 1.0), np.hypot(0.2, 0.1)], rtol=1e-15)
    # distance to the bisector x = 1.5 between sites 0 and 1
    dist, n_tied, cell = sd.voronoi.distance_to_boundary(X, y[1:])
    np.testing.assert_allclose(dist / c, [1.3], rtol=1e-14)
    assert (n_tied[0], cell[0]) == (1, 0)
    index, distance = sd.memorization.nearest_training_points(y, X)
    np.testing.assert_array_equal(index[:, 0], [1, 0])
    np.testing.assert_allclose(distance[:, 0] / c, r1 / c, rtol=1e-15)


@pytest.mark.parametrize("c", [1e-200, 1e200])
def test_solve_beyond_the_fused_range_runs_on_numpy(c):
    """The log-time flow is scale-equivariant: data and y0 times c, s shifted by -log c.  The
    fused kernels square coordinates as they are, so beyond 2^+-450 the automatic choice takes
    the numpy engine (which rescales), and naming a fused engine says why it cannot."""
    X = np.random.default_rng(25).standard_normal((20, 2))
    y0 = np.random.default_rng(26).standard_normal((6, 2))
    ref = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 3.0), rtol=1e-8, atol=1e-300)
    f = sd.EmpiricalScore(X * c)
    r = sd.solve(f, y0 * c, (-np.log(c), 3.0 - np.log(c)), rtol=1e-8, atol=1e-300)
    assert r.engine == "numpy" and r.success
    np.testing.assert_array_equal(r.nearest, ref.nearest)
    np.testing.assert_allclose(r.y / c, ref.y, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match=r"`engine`='numba' cannot run this problem: the data "
                                         r"reach magnitude"):
        sd.solve(f, y0 * c, (0.0, 1.0), engine="numba")


def test_far_starts_run_on_numpy():
    """Starts beyond 2^450 (the data at unit scale): squared distances overflow in the fused
    kernels, which ended every trajectory as 'non-finite'; the automatic choice takes the numpy
    engine, whose answer is the exact e^{-s} contraction towards the data."""
    X = np.random.default_rng(27).standard_normal((20, 2))
    y0 = np.random.default_rng(28).standard_normal((4, 2)) * 1e300
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 2.0), rtol=1e-10, atol=1e-300)
    assert r.engine == "numpy" and r.success
    np.testing.assert_allclose(r.y, y0 * np.exp(-2.0), rtol=1e-8)
    with pytest.raises(ValueError, match=r"the starts reach magnitude 1.*e\+300"):
        sd.solve(sd.EmpiricalScore(X), y0, (0.0, 2.0), engine="numba")


# -- checkpoints ----------------------------------------------------------------------------

def _checkpoint(tmp_path, edit=None, raw=None):
    net = sd.ScoreMLP(2, width=8, depth=1, rng=0)
    path = tmp_path / "net.npz"
    net.save(path)
    if raw is not None:
        path.write_bytes(raw(path.read_bytes()))
    if edit is not None:
        arrays = dict(np.load(path))
        edit(arrays)
        np.savez(path, **arrays)
    return path


def _drop(key):
    def edit(a):
        del a[key]
    return edit


def _set(key, value):
    def edit(a):
        a[key] = value(a[key]) if callable(value) else value
    return edit


CHECKPOINTS_BAD = [
    (dict(raw=lambda b: b[:200]), r"net.npz: not a ScoreMLP checkpoint \(.npz written by "
                                  r"ScoreMLP.save\)"),
    (dict(raw=lambda b: b"not a zip"), r"net.npz: not a ScoreMLP checkpoint"),
    (dict(edit=_drop("p1")), r"net.npz: not a ScoreMLP checkpoint: the key 'p1' is missing"),
    (dict(edit=_drop("dim")), r"net.npz: not a ScoreMLP checkpoint: the key 'dim' is missing"),
    (dict(edit=_set("p0", lambda p: p[:3])), r"net.npz: 'p0' must be a float array of shape "
                                             r"\(18, 8\); got float64 of shape \(3, 8\)"),
    (dict(edit=_set("p2", lambda p: p * np.nan)), r"net.npz: 'p2' has non-finite entries"),
    (dict(edit=_set("freqs", lambda p: p.astype(np.int64))), r"net.npz: 'freqs' must be a "
                                                             r"float array"),
    (dict(edit=_set("width", np.array(2.5))), r"net.npz: 'width' must be an integer"),
    (dict(edit=_set("activation", np.array("tanh"))), r"net.npz: not a valid ScoreMLP "
                                                      r"architecture: `activation` must be"),
]


@pytest.mark.parametrize("kw,match", CHECKPOINTS_BAD, ids=[m[:40] for _, m in CHECKPOINTS_BAD])
def test_checkpoint_refused_naming_file_and_key(tmp_path, kw, match):
    path = _checkpoint(tmp_path, **kw)
    with pytest.raises(ValueError, match=match):
        sd.ScoreMLP.load(path)


def test_checkpoint_round_trip_and_missing_file(tmp_path):
    path = _checkpoint(tmp_path)
    net = sd.ScoreMLP.load(path)
    x = np.random.default_rng(27).standard_normal((4, 2))
    np.testing.assert_array_equal(net.score(x, 0.3), sd.ScoreMLP(2, width=8, depth=1,
                                                                 rng=0).score(x, 0.3))
    with pytest.raises(FileNotFoundError):
        sd.ScoreMLP.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("betas,match", [((1.0, 0.999), r"`betas\[0\]` must lie in \[0, 1\); got 1.0"),
                                         ((0.9, np.nan), r"`betas\[1\]` must lie in \[0, 1\)"),
                                         ((0.9,), r"`betas` must be two numbers")])
def test_adam_betas_are_checked(betas, match):
    net = sd.ScoreMLP(2, width=4, depth=1, rng=0)
    with pytest.raises(ValueError, match=match):
        net.fit(np.zeros((4, 2)), steps=1, betas=betas)
    assert all(np.all(np.isfinite(p)) for p in net.params)


def test_diverged_training_stops_and_says_so():
    """A step with a non-finite loss or gradient stops the training with the step and the
    learning rate named; the parameters stay those of the last finite step."""
    net = sd.ScoreMLP(2, width=8, depth=1, rng=0)
    with pytest.raises(FloatingPointError, match=r"Training diverged at step \d+.*lower `lr` "
                                                 r"\(got 1e\+300\)"):
        net.fit(np.random.default_rng(0).standard_normal((20, 2)), steps=50, lr=1e300, rng=0)
    assert all(np.all(np.isfinite(p)) for p in net.params)


SMOOTHNESS_BAD = [
    (lambda: sd.smoothness.noised_pair(sd.DDPM(), [0.0, 1.0], [1.0, 2.0, 3.0], 5),
     r"`x0` and `y0` must have the same length; got 2 and 3"),
    (lambda: sd.smoothness.interpolation_loss(_E, sd.DDPM(), [0.0, 1.0], [1.0, 0.0], 5, [2.0]),
     r"`lambdas` must be a 1-D array in \[0, 1\]"),
    (lambda: sd.smoothness.pseudo_difference_quotient(_E, sd.DDPM(), [0.0, 1.0], [0.0, 1.0], 5,
                                                      [0.5]), r"`x0` and `y0` must differ"),
    (lambda: sd.smoothness.noised_pair(sd.DDPM(), [0.0, np.nan], [1.0, 2.0], 5),
     r"`x0` must be a non-empty 1-D vector of finite numbers"),
    (lambda: sd.ddpm.mixed_sample(_E, _E, sd.DDPM(), np.zeros((2, 2)), (0, 5000)),
     r"`window` must lie within the schedule's steps \[0, 1000\]"),
    (lambda: sd.ddpm.mixed_sample(_E, _E, sd.DDPM(), np.zeros((2, 2)), (0, 2.7)),
     r"`window` must be a pair of integer steps"),
]
_E = sd.EmpiricalScore(np.eye(2))


@pytest.mark.parametrize("call,match", SMOOTHNESS_BAD, ids=[m[:40] for _, m in SMOOTHNESS_BAD])
def test_smoothness_and_mixed_sampling_refuse(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mixed_sampling_needs_a_ddpm_schedule():
    with pytest.raises(TypeError, match=r"`schedule` must be a DDPM schedule; got VE"):
        sd.ddpm.mixed_sample(_E, _E, sd.VE(), np.zeros((2, 2)), (0, 5))


def test_emm_below_every_size_is_an_upper_bound():
    """A curve already below 1 - zeta at the smallest size: the EMM lies below it (it was NaN)."""
    res = sd.emm.effective_memorization([10, 50, 100], [0.5, 0.2, 0.1])
    assert res.bound == "upper" and res.emm == 10.0


# -- random generators, labels, the mixture's sigma range ---------------------------------------

@pytest.mark.parametrize("call", [
    lambda rng: sd.reverse_sde(sd.GaussianMixture([[0.0]], [1.0]), sd.VE(), np.zeros((1, 1)),
                               (1.0, 0.1), n_steps=2, rng=rng),
    lambda rng: sd.memorization.bootstrap_ci([0.1, 0.2], rng=rng),
    lambda rng: sd.GaussianMixture([[0.0]], [1.0]).sample(3, rng=rng),
    lambda rng: sd.ScoreMLP(1, width=2, depth=1, rng=rng),
], ids=["reverse_sde", "bootstrap_ci", "GaussianMixture.sample", "ScoreMLP"])
def test_a_bad_rng_is_named(call):
    with pytest.raises(ValueError, match=r"`rng` must be None, a non-negative integer seed or a "
                                         r"numpy.random.Generator; got -1"):
        call(-1)


def test_nan_labels_are_refused():
    with pytest.raises(ValueError, match=r"`labels` must be finite"):
        sd.EmpiricalScore(np.zeros((2, 1)), labels=[0.0, np.nan])


@pytest.mark.parametrize("sigma", [1e-300, 1e-151, 1e151, 1e300])
def test_mixture_serves_every_sigma(sigma):
    """Every covariance form and backend serves sigma outside the range where sigma^2 is a
    normal float64 (the numpy stream and the dense responsibilities and jacobian once
    refused it; they returned NaN before that): finite answers from every method.  Their
    values are checked against 60-digit arithmetic in test_mixture_kernels."""
    x = np.array([[0.0, 0.0], [0.3, 1.2]])
    for gm in (sd.GaussianMixture([[0.0, 1.0]], [0.5], backend="numpy"),
               sd.GaussianMixture([[0.0, 1.0], [1.0, 0.0]], [[[1.0, 0.2], [0.2, 1.0]]] * 2),
               sd.GaussianMixture([[0.0, 1.0]], [[1.0, 1.0]], factors=np.ones((1, 2, 1))),
               sd.GaussianMixture([[0.0, 1.0]], [0.5])):
        for method in (gm.denoise, gm.score, gm.noise, gm.log_density, gm.weights,
                       gm.jacobian):
            assert np.all(np.isfinite(method(x, sigma))), (gm, method.__name__)


# -- fork after first use ---------------------------------------------------------------------

def _denoise_in_child(i):
    f = sd.EmpiricalScore(np.array([[0.0, 0.0], [3.0, 0.0]]))
    return float(f.denoise(np.array([[1.2 + i, 0.0]]), 0.5)[0, 0])


def _lane_solve(_):
    f = sd.EmpiricalScore(np.random.default_rng(1).standard_normal((20, 2)))
    y0 = np.random.default_rng(2).standard_normal((300, 2))
    r = sd.solve(f, y0, (0.0, 4.0), method="gl-dopri5", rtol=1e-6, engine="numba-lanes")
    return r.y.tobytes()


def _fresh_interpreter(code):
    """Run ``code`` in a fresh interpreter from the repository root, with numba left to pick
    its threading layer (no ``NUMBA_THREADING_LAYER``) and a time limit, so that a hang fails
    instead of stalling the suite; the completed process (exit status 0 checked)."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    return out


def test_fork_after_first_use():
    """A fork-started pool after the parent ran the parallel kernels: under GNU OpenMP the
    children terminated ("fork() called from a process already using GNU OpenMP"); numba's
    TBB layer (loaded by ``import scoredyn``, :mod:`scoredyn._tbb`, so also when the user
    sets numba's thread count before the first kernel, as here) is fork-safe; and the thread
    pool the time loops and reductions keep (:func:`scoredyn.kernels.launch.thread_pool`)
    comes to a child without its threads, so a child starts its own (a lane solve in each
    child, equal to the parent's bit for bit).  In a fresh interpreter, with a time limit,
    so that a hang fails instead of stalling the suite."""
    code = (
        "import multiprocessing as mp, numba, numpy as np, scoredyn as sd\n"
        "numba.set_num_threads(2)\n"
        "from tests.test_reliability import _denoise_in_child, _lane_solve\n"
        "f = sd.EmpiricalScore(np.random.default_rng(0).standard_normal((500, 2)))\n"
        "f.denoise(np.zeros((4000, 2)), 0.5)\n"
        "parent = _lane_solve(0)\n"
        "print(numba.threading_layer())\n"
        "with mp.get_context('fork').Pool(2) as pool:\n"
        "    print(pool.map(_denoise_in_child, range(4)))\n"
        "    print(all(c == parent for c in pool.map(_lane_solve, range(2))))\n")
    out = _fresh_interpreter(code)
    layer, values, same = out.stdout.strip().splitlines()
    assert layer == "tbb" and "OpenMP" not in out.stderr
    assert same == "True"
    w = 1.0 / (1.0 + np.exp(3.6))
    assert float(values.strip("[]").split(",")[0]) == pytest.approx(3.0 * w, rel=1e-14)


def test_openmp_chosen_before_scoredyn_is_announced():
    """numba's threading layer chosen before ``import scoredyn`` (``set_num_threads`` first):
    where that is GNU OpenMP (no TBB on the loader's path, as in a virtual environment), the
    kernels warn, once, that a fork-started child will be terminated; where it is not,
    nothing is said.  In a fresh interpreter: this one chose its layer long ago."""
    code = ("import warnings, numba\n"
            "numba.set_num_threads(1)\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import numpy as np, scoredyn as sd\n"
            "    sd.EmpiricalScore(np.zeros((3, 2))).denoise(np.ones((2, 2)), 1.0)\n"
            "    sd.EmpiricalScore(np.ones((3, 2))).denoise(np.ones((2, 2)), 1.0)\n"
            "from numba.np.ufunc import omppool\n"
            "gnu = numba.threading_layer() == 'omp' and omppool.openmp_vendor == 'GNU'\n"
            "print(gnu, sum('GNU OpenMP' in str(w.message) for w in caught))\n")
    gnu, warnings_seen = _fresh_interpreter(code).stdout.split()
    assert warnings_seen == ("1" if gnu == "True" else "0"), out.stdout


# -- messages that name the parameter ------------------------------------------------------------

def _gm():
    return sd.GaussianMixture([[0.0, 1.0]], [0.5])


NAMED = [
    (lambda: sd.ddim_sample(_gm(), sd.DDPM(T=10), np.full((2, 2), np.nan)), ValueError,
     r"All entries of `x_T` must be finite"),
    (lambda: sd.ddpm_sample(_gm(), sd.DDPM(T=10), np.zeros((2, 3)), rng=0), ValueError,
     r"`x_T` has dimension 3"),
    (lambda: sd.probability_flow(_gm(), sd.VE(), np.zeros((1, 2)), (1.0, 0.5, 0.1)),
     ValueError, r"`t_span` must be two numbers \(t0, t1\)"),
    (lambda: sd.reverse_sde(_gm(), sd.VE(), np.zeros((1, 2)), ("a", 0.1), n_steps=2),
     ValueError, r"`t_span` must be two numbers"),
    (lambda: sd.smoothness.noise_jacobian(_gm(), sd.DDPM(T=10), np.zeros((1, 2)), 5, h=np.nan),
     ValueError, r"`h` must be finite; got nan"),
    (lambda: sd.early_stopping.uniformity_check(np.zeros((3, 3)), np.zeros((4, 2))), ValueError,
     r"`samples` has dimension 3"),
    (lambda: sd.early_stopping.sample_smoothed(np.zeros((4, 2)), sd.VP(), 0.5, 2.7), ValueError,
     r"`n` must be a positive integer; got 2.7"),
    (lambda: sd.ddpm.window_sweep(_gm(), _gm(), sd.DDPM(T=10), np.zeros((4, 2)), n=-1),
     ValueError, r"`n` must be a positive integer; got -1"),
    (lambda: sd.voronoi.voronoi_segments(np.eye(2), (1, 0, 1, 0)), ValueError,
     r"`bounds` must be finite with xmin < xmax and ymin < ymax"),
    (lambda: sd.voronoi.voronoi_segments(np.eye(2), (1, 0, 1)), ValueError,
     r"`bounds` must be four numbers"),
    (lambda: sd.convergence.fit_collapse([3, 2, 1], [1, 0.5, 0.2]), ValueError,
     r"`s` must be finite and strictly increasing"),
    (lambda: sd.convergence.fit_collapse([1, 2, 3], [1, -0.5, 0.2]), ValueError,
     r"`dist` must be non-negative"),
    (lambda: sd.convergence.empirical_order([0.1, -0.05, 0.01], [1, 0.2, 0.1]), ValueError,
     r"`steps` must be positive and finite"),
    (lambda: sd.convergence.empirical_order([0.1, 0.05], [1, 0.2, 0.1]), ValueError,
     r"`steps` and `errors` must be 1-D of the same length"),
    (lambda: sd.ddpm.mixed_sample(_gm(), _gm(), sd.DDPM(T=10), np.zeros((2, 2)), (-1, 3)),
     ValueError, r"`window` must be non-negative steps \(i, j\); got \(-1, 3\)"),
    (lambda: sd.early_stopping.uniformity_check(np.zeros((0, 2)), np.zeros((4, 2))),
     ValueError, r"`samples` must contain at least one sample"),
    (lambda: sd.ScoreMLP(2).predict(np.zeros((5, 3)), 0.5), ValueError,
     r"`x` has dimension 3 but the data have dimension 2"),
    (lambda: sd.ScoreMLP(2).predict(np.zeros((5, 2)), -0.5), ValueError, r"`sigma`"),
    (lambda: sd.VP(3.0, 0.001), ValueError, r"`beta_max` must be >= beta_min"),
    (lambda: sd.ddim_sample(_gm(), sd.DDPM(T=10), np.zeros((2, 2)), eta=2.0), ValueError,
     r"`eta` must lie in \[0, 1\]; got 2.0"),
]


def test_component_tv_beyond_the_float64_range():
    """Means 1e200 apart at a tiny noise level: TV is 1 (no overflow warning, no NaN); the
    gap is formed without squaring (1e200^2 would overflow)."""
    assert sd.ambient.component_tv(np.zeros(2), np.full(2, 1e200), 0.5) == 1.0
    assert sd.ambient.component_tv(np.array([-1e308]), np.array([1e308]), 0.0) == 1.0
    np.testing.assert_allclose(sd.ambient.component_tv(np.zeros(2), [3e-200, 4e-200], 0.0),
                               2 * __import__("scipy").stats.norm.cdf(2.5e-200) - 1)


@pytest.mark.parametrize("call,exc,match", NAMED, ids=[m[:30] for _, _, m in NAMED])
def test_messages_name_the_parameter(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_environment_backend_is_named(monkeypatch):
    from scoredyn import backend
    monkeypatch.setenv("SCOREDYN_BACKEND", "cuda")
    monkeypatch.setattr(backend, "cuda_status", lambda: (False, "no device (test)"))
    with pytest.raises(backend.BackendUnavailable,
                       match=r"SCOREDYN_BACKEND=cuda \(the environment variable\) is not usable"):
        backend.resolve(None)


def test_read_only_inputs_give_the_same_bits():
    """Read-only arrays (unpickled on a Dask worker, or frozen by a user) reach the kernels
    as writeable copies: the same compiled code, the same bits."""
    g = np.random.default_rng(0)
    X, Y = g.standard_normal((20, 2)), g.standard_normal((300, 2))
    Xr, Yr = X.copy(), Y.copy()
    Xr.flags.writeable = False
    Yr.flags.writeable = False
    F, Fr = sd.EmpiricalScore(X), sd.EmpiricalScore(Xr)
    for method, engine in (("gl-dopri5", "numba-lanes"), ("dopri5", "numba")):
        a = sd.solve(F, Y, (0.0, 12.0), method=method, engine=engine, rtol=1e-8, atol=1e-10)
        b = sd.solve(Fr, Yr, (0.0, 12.0), method=method, engine=engine, rtol=1e-8, atol=1e-10)
        np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(F.denoise(Y, 0.3), Fr.denoise(Yr, 0.3))
    for k in range(2):
        np.testing.assert_array_equal(sd.memorization.nearest_training_points(Y, X)[k],
                                      sd.memorization.nearest_training_points(Yr, Xr)[k])


def _gemm_denoise_sum(args):
    X, Y = args
    return float(sd.EmpiricalScore(X).denoise(Y, 0.5).sum())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork start method: POSIX only")
def test_gemm_reduction_runs_in_a_forked_child():
    """The GEMM path keeps one thread pool per process; a child made by ``fork`` after the
    parent used it inherits the pool without its threads and must make its own (it used to
    wait forever).  In a fresh interpreter with two numba threads (the pool is used from two
    on), with a time limit: forking this test process would also copy whatever threads
    other tests left running."""
    import subprocess
    import sys
    code = (
        "import multiprocessing as mp, numpy as np, scoredyn as sd\n"
        "from tests.test_reliability import _gemm_denoise_sum\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((600, 40))\n"                  # d > 24: the GEMM path
        "Y = X[:300] + 0.1 * rng.standard_normal((300, 40))\n"
        "parent = _gemm_denoise_sum((X, Y))\n"                  # the parent's pool exists
        "with mp.get_context('fork').Pool(1) as pool:\n"
        "    child = pool.map_async(_gemm_denoise_sum, [(X, Y)]).get(timeout=60)\n"
        "print(child == [parent])\n")
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
