"""The engines of ``solve`` as objects, and a score field defined outside the package."""
import numpy as np
import pytest

import scoredyn as sd
from scoredyn.dynamics.engines import (BATCHED_MIN_ND, BATCHED_MIN_Q, ENGINES,
                                       LANE_ANY_N_MAX_D, LANE_MAX_N, LANE_MIN_TRAJECTORIES,
                                       choose)

from .test_ode import authors_data

CPU_ENGINES = ("numpy", "numba", "numba-lanes", "batched")


def _data(name):
    """The authors' N = 20, or N = 300 points in d = 2 or 3 (the lane kernel's one-pass
    sums, ``sizes.one_pass``)."""
    if name == "authors":
        return authors_data()
    return np.random.default_rng(14).standard_normal((300, 3 if name == "n300-3d" else 2))


@pytest.mark.parametrize("data", ["authors", "n300"])
@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
def test_every_engine_takes_the_same_steps(method, data):
    """One scheme on every engine: the same error norm, PI controller, end-of-span rule and
    dense output, so equal step, rejection and evaluation counts per trajectory.

    The states differ only by the rounding of the posterior reduction (numpy over the
    whole data, the per-trajectory kernel in tiles with an online softmax, the lane kernel
    in two passes): a few ulps of the O(1) state per evaluation, which the flow then carries.
    At the end (s = 8) every trajectory sits deep in its cell, where the flow contracts, and
    the engines agree to 1e-12 (measured 4e-14).  At the save times some trajectories are
    still near a Voronoi boundary, which repels: there the flow amplifies a rounding-level
    change ~10^3-fold (a 4-ulp change of the start moves trajectory 24 by 9e-13 at s = 4.5).
    So each trajectory's bound at the save times is its own amplification, measured with
    that 4-ulp change on the reference engine, times its number of evaluations (each adds
    at most a few ulps; linear propagation), plus 1e-12: at most 1e-10 here (measured ratio
    to the bound <= 0.14), four orders below the ~rtol = 1e-6 by which a change in the step
    sequence would move a state — so the bound also proves the steps equal.
    """
    field = sd.EmpiricalScore(_data(data))
    y0 = 1.5 * np.random.default_rng(11).standard_normal((40, 2))
    kw = dict(method=method, rtol=1e-6, atol=1e-8, save_at=[1.0, 4.5])
    res = {e: sd.solve(field, y0, (0.0, 8.0), engine=e, **kw) for e in CPU_ENGINES}
    ref = res["numba"]
    assert ref.success and ref.n_rejected.sum() > 0          # the controller was exercised
    moved = sd.solve(field, y0 * (1 + 4 * np.finfo(float).eps), (0.0, 8.0), engine="numba",
                     **kw)
    bound = 1e-12 + ref.nfev * np.abs(moved.ys - ref.ys).max(axis=2)     # (n_save, Q)
    assert bound.max() < 1e-9
    for name, r in res.items():
        assert r.engine == name
        for attr in ("n_steps", "n_rejected", "nfev", "status", "nearest"):
            np.testing.assert_array_equal(getattr(r, attr), getattr(ref, attr),
                                          err_msg=f"{name}: {attr}")
        np.testing.assert_allclose(r.y, ref.y, rtol=0, atol=1e-12, err_msg=name)
        excess = np.abs(r.ys - ref.ys).max(axis=2) / bound
        assert excess.max() <= 1.0, (name, excess.max())


@pytest.mark.parametrize("data", ["authors", "n300", "n300-3d"])
@pytest.mark.parametrize("engine", ["numba", "numba-lanes"])
def test_the_result_does_not_depend_on_the_thread_count(engine, data):
    """The compiled loops hand out work items sized by Q and the thread count (300
    trajectories: one lane work item of 320 on one thread, two of 192 on two); a
    trajectory's arithmetic is the same in every lane and work item, so the bits are too."""
    import numba
    from dataclasses import fields
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only: nothing to vary")
    X = _data(data)
    field = sd.EmpiricalScore(X)
    y0 = 1.5 * np.random.default_rng(12).standard_normal((300, X.shape[1]))
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(sd.solve(field, y0, (0.0, 8.0), method="gl-dopri5", rtol=1e-6,
                                 atol=1e-8, save_at=[1.0], engine=engine))
    finally:
        numba.set_num_threads(before)
    for f in fields(runs[0]):
        a, b = getattr(runs[0], f.name), getattr(runs[1], f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name


def test_the_end_of_the_span_is_reached_exactly():
    """``s + (s1 - s)`` rounds below ``s1`` when ``s < 0 < s1`` or ``s1 < 0``; the step that
    reaches the end must end there, not leave a one-ulp step that underflows (status 2)."""
    field = sd.EmpiricalScore(authors_data())
    y0 = np.random.default_rng(12).standard_normal((300, 2))
    for span in ((-3.7, 0.01), (-7.3, -0.01), (-0.3, 5.1)):
        for engine in CPU_ENGINES:
            r = sd.solve(field, y0, span, method="dopri5", rtol=1e-7, save_at=[span[1]],
                         engine=engine)
            assert r.success, (span, engine, np.bincount(r.status))
            # the save at s1 is the dense output at theta = 1, equal to the step's update
            # up to the rounding of a differently ordered sum: a few ulps of the state
            np.testing.assert_allclose(r.ys[0], r.y, rtol=0, atol=8 * np.finfo(float).eps)


@pytest.mark.parametrize("q,kw,expected", [
    (10, {}, "numba"),
    (LANE_MIN_TRAJECTORIES, {}, "numba-lanes"),
    (LANE_MIN_TRAJECTORIES, dict(delta=0.1), "numba"),
    (LANE_MIN_TRAJECTORIES, dict(recentre=True), "numba"),
    (10, dict(backend="numpy"), "numpy"),
    (10, dict(method="etd2m", h=0.1, backend="numpy"), "numpy"),
    (10, dict(engine="numba-lanes"), "numba-lanes"),
])
def test_the_automatic_choice(q, kw, expected):
    field = sd.EmpiricalScore(authors_data())
    y0 = np.random.default_rng(13).standard_normal((q, 2))
    assert sd.solve(field, y0, (0.0, 1.0), backend=kw.pop("backend", "numba"), **kw
                    ).engine == expected


@pytest.mark.parametrize("n,d,q,backend,expected", [
    (LANE_MAX_N, 2, LANE_MIN_TRAJECTORIES, "numba", "numba-lanes"),
    (LANE_MAX_N + 1, LANE_ANY_N_MAX_D + 1, LANE_MIN_TRAJECTORIES, "numba", "batched"),
    (LANE_MAX_N + 1, 2, LANE_MIN_TRAJECTORIES, "numba", "numba-lanes"),      # one-pass sums
    (BATCHED_MIN_ND, LANE_ANY_N_MAX_D, LANE_MIN_TRAJECTORIES, "numba", "numba-lanes"),
    (BATCHED_MIN_ND, 2, BATCHED_MIN_Q, "numba", "batched"),   # ... need 2 lane sets
    (LANE_MAX_N, 2, LANE_MIN_TRAJECTORIES - 1, "numba", "numba"),     # few trajectories
    (BATCHED_MIN_ND // 48, 48, BATCHED_MIN_Q, "auto", "batched"),          # large data
    (BATCHED_MIN_ND // 48, 48, BATCHED_MIN_Q, "numba", "batched"),         # same family
    (BATCHED_MIN_ND // 48, 48, BATCHED_MIN_Q - 1, "auto", "numba"),
    (BATCHED_MIN_ND // 48 - 1, 48, BATCHED_MIN_Q, "auto", "numba"),
    (BATCHED_MIN_ND // 48, 48, BATCHED_MIN_Q, "numpy", "numpy"),
])
def test_the_automatic_choice_by_size(monkeypatch, n, d, q, backend, expected):
    """The measured crossovers (scoredyn.dynamics.engines): lanes at any N up to
    LANE_ANY_N_MAX_D, else the batched engine's GEMM stages for large data, else lanes up to
    LANE_MAX_N points, else one trajectory per thread."""
    from scoredyn import backend as backend_module
    monkeypatch.setattr(backend_module, "cuda_status", lambda: (False, "no GPU in this test"))
    rng = np.random.default_rng(14)
    field = sd.EmpiricalScore(rng.standard_normal((n, d)))
    problem = sd.dynamics.solver.problem(field, rng.standard_normal((q, d)), (0.0, 1.0))
    assert choose(problem, backend=backend).name == expected


def test_fields_the_fused_kernels_do_not_take_run_on_numpy():
    """A full-covariance mixture and a user's field run on numpy; a diagonal mixture runs
    in the compiled loop (the fused engines take isotropic and diagonal mixtures)."""
    full = sd.GaussianMixture([[0.0, 1.0]], [[[0.5, 0.1], [0.1, 0.5]]])
    r = sd.solve(full, np.zeros((3, 2)), (0.0, 1.0))
    assert r.engine == "numpy" and r.success
    diag = sd.GaussianMixture([[0.0, 1.0]], [0.5])
    assert sd.solve(diag, np.zeros((3, 2)), (0.0, 1.0)).engine == "numba"
    assert sd.solve(diag, np.zeros((300, 2)), (0.0, 1.0)).engine == "numba"    # not lanes


def test_registry_is_complete():
    assert set(ENGINES) == {"numpy", "numba", "numba-lanes", "cuda", "batched"}
    for name, engine in ENGINES.items():
        assert engine.name == name and engine.backend in ("numpy", "numba", "cuda")


# -- the extension point: a field from outside the package -----------------------------------

class UnitGaussian(sd.ScoreField):
    """The exact field of data ``N(mu, v I)``, written as a user would: only ``residual``.

    ``D(x) = E[x_0 | x_t = x] = (alpha v x + sigma^2 mu) / (alpha^2 v + sigma^2)``.
    """

    def __init__(self, mu, v):
        self.mu = np.asarray(mu, float)
        self.v = float(v)
        self.dim = self.mu.size

    def residual(self, x, sigma, alpha, label=None):
        a, s2 = alpha[:, None], (sigma ** 2)[:, None]
        D = (a * self.v * x + s2 * self.mu) / (a ** 2 * self.v + s2)
        return a * D - x, None


MU, VAR = np.array([0.3, -1.2]), 0.7


@pytest.fixture
def pair():
    """The user's field and the package's own field of the same data."""
    return UnitGaussian(MU, VAR), sd.GaussianMixture(MU[None], [VAR])


def test_user_field_everywhere_fields_run(pair):
    """The same answers as the package's GaussianMixture of the same data, in every
    consumer of fields.  Both evaluate the same closed form in a different order, so they
    agree to a few ulps per evaluation (1e-12 after a whole solve)."""
    mine, ref = pair
    rng = np.random.default_rng(14)
    x = rng.standard_normal((25, 2))
    close = dict(rtol=1e-12, atol=1e-12)
    for name in ("score", "noise", "denoise"):
        np.testing.assert_allclose(getattr(mine, name)(x, 0.4, 0.9), getattr(ref, name)(x, 0.4, 0.9),
                                   **close)
    # solve (numpy engine), adaptive and fixed-step
    for kw in (dict(method="dopri5", rtol=1e-8), dict(method="etdrk4", h=0.1)):
        a = sd.solve(mine, x, (0.0, 6.0), save_at=[2.0], **kw)
        b = sd.solve(ref, x, (0.0, 6.0), save_at=[2.0], **kw)
        assert a.success and a.engine == "numpy"
        np.testing.assert_array_equal(a.n_steps, b.n_steps)
        np.testing.assert_allclose(a.y, b.y, **close)
        np.testing.assert_allclose(a.ys, b.ys, **close)
    # original-time samplers
    np.testing.assert_allclose(sd.probability_flow(mine, sd.VE(), x, (2.0, 0.05)),
                               sd.probability_flow(ref, sd.VE(), x, (2.0, 0.05)), **close)
    np.testing.assert_allclose(sd.reverse_sde(mine, sd.VP(), x, (1.0, 0.01), n_steps=50, rng=3),
                               sd.reverse_sde(ref, sd.VP(), x, (1.0, 0.01), n_steps=50, rng=3),
                               **close)
    dd = sd.DDPM(T=50)
    np.testing.assert_allclose(sd.ddim_sample(mine, dd, x), sd.ddim_sample(ref, dd, x), **close)
    np.testing.assert_allclose(sd.ddpm_sample(mine, dd, x, rng=4), sd.ddpm_sample(ref, dd, x, rng=4),
                               **close)
    # smoothness analyses: the user's field has no exact Jacobian, so central differences
    # (noise is affine in x here: exact up to rounding, eps |eps*| / h ~ 1e-16 / 1e-5 relative)
    lam = np.array([0.0, 0.3, 0.7])
    for fn in (sd.smoothness.pseudo_difference_quotient, sd.smoothness.interpolation_loss):
        np.testing.assert_allclose(fn(mine, dd, MU, -MU, 20, lam, rng=5),
                                   fn(ref, dd, MU, -MU, 20, lam, rng=5), **close)
    np.testing.assert_allclose(sd.smoothness.noise_jacobian(mine, dd, x[:4], 20),
                               sd.smoothness.noise_jacobian(ref, dd, x[:4], 20), rtol=1e-8,
                               atol=1e-8)
    # mixed sampling, with the user's field outside the window
    data = sd.EmpiricalScore(rng.standard_normal((10, 2)))
    a = sd.ddpm.mixed_sample(data, mine, dd, x, (1, 10), rng=6)
    b = sd.ddpm.mixed_sample(data, ref, dd, x, (1, 10), rng=6)
    np.testing.assert_allclose(a, b, **close)
    # memorization metrics on the user's samples
    ra = sd.memorization.memorization_ratio(a, data.data, n_bootstrap=50, rng=7)
    rb = sd.memorization.memorization_ratio(b, data.data, n_bootstrap=50, rng=7)
    assert ra.value == rb.value


def test_a_field_without_residual_says_what_to_implement():
    class Empty(sd.ScoreField):
        dim = 2
    with pytest.raises(NotImplementedError, match=r"Empty must implement `residual\(x, sigma, alpha"):
        Empty().score(np.zeros((1, 2)), 0.5)
