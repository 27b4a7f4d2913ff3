"""The log-time ODE: integrator orders, exactness, agreement with scipy and original time."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import scoredyn as sd
from scoredyn.geometry.convergence import empirical_order
from scoredyn.dynamics.integrators import METHODS, ExplicitRK, GeneralizedLawson, get_method

EPS = np.finfo(float).eps
ONE_STEP = ["euler", "heun", "rk4", "etd1", "etdrk2", "etdrk4"]
ALL_FIXED = ONE_STEP + ["etd2m"]


def authors_data():
    """N = 20 from N(0, I_2) as in the authors' notebooks (their global seed 1), from a local RandomState(1)."""
    return np.random.RandomState(1).randn(20, 2)


class DormandPrinceFixed(ExplicitRK):
    """DOPRI5's 5th-order tableau at fixed steps (to measure its order); also a user subclass."""
    name, order = "test-dopri5-fixed", 5
    A = np.asarray(METHODS["dopri5"].A)[:6, :6]
    b = np.asarray(METHODS["dopri5"].b)[:6]
    c = np.asarray(METHODS["dopri5"].c)[:6]


class LawsonDormandPrinceFixed(GeneralizedLawson):
    """The same tableau in generalized Lawson form at fixed steps: the transformed
    coefficients ``coefficients(h)`` keep the classical order."""
    name, order = "test-gl-dopri5-fixed", 5
    A, b, c = DormandPrinceFixed.A, DormandPrinceFixed.b, DormandPrinceFixed.c


def gaussian_problem():
    """One Gaussian N(mu, S), anisotropic: exact flow u_k(s) = u_k(0) sqrt((k_k + e^{-2s}) / (k_k + 1))."""
    mu = np.array([0.3, -0.2, 0.5])
    R, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    kappa = np.array([0.05, 0.7, 3.0])
    S = R @ np.diag(kappa) @ R.T
    field = sd.GaussianMixture(mu[None], S[None])
    y0 = np.array([[1.0, 2.0, -1.5], [-0.7, 0.1, 0.9]])

    def exact(s):
        u = (y0 - mu) @ R
        return mu + (u * np.sqrt((kappa + np.exp(-2 * s)) / (kappa + 1.0))) @ R.T
    return field, y0, exact


def fitted_order(errors, hs, floor):
    """The package's own estimator (scoredyn.geometry.convergence.empirical_order), on the last 4 points."""
    order = empirical_order(hs, errors, floor=floor, last=4)
    assert np.isfinite(order), f"too few points above the round-off floor: {errors}"
    return order


@pytest.mark.parametrize("method", ALL_FIXED + ["test-dopri5-fixed", "test-gl-dopri5-fixed"])
def test_order_on_a_gaussian(method):
    """Step halving on an exactly solvable problem: fitted slope within 0.3 of the declared order."""
    field, y0, exact = gaussian_problem()
    meth = get_method(method)
    hs = 2.0 ** -np.arange(0, 9)
    errs = np.array([np.max(np.abs(sd.solve(field, y0, (0.0, 2.0), method=method, h=h).y - exact(2.0)))
                     for h in hs])
    assert abs(fitted_order(errs, hs, 1e-12) - meth.order) < 0.3, errs


@pytest.mark.parametrize("method", ["euler", "heun", "rk4", "test-dopri5-fixed"])
def test_order_on_one_point_compiled(method):
    """N = 1: y(s) = x_1 + e^{-s} (y0 - x_1); classical methods converge at their order (compiled)."""
    x1 = np.array([[0.4, -1.2]])
    y0 = np.array([[2.0, 1.0], [-1.0, 0.5]])
    field = sd.EmpiricalScore(x1)
    exact = x1 + np.exp(-3.0) * (y0 - x1)
    hs = 2.0 ** -np.arange(0, 9)
    errs = np.array([np.max(np.abs(sd.solve(field, y0, (0.0, 3.0), method=method, h=h,
                                            backend="numba").y - exact)) for h in hs])
    assert abs(fitted_order(errs, hs, 1e-13) - get_method(method).order) < 0.3, errs


@pytest.mark.parametrize("engine,method", [(e, m) for e in ("numba", "numpy")
                                           for m in ("etd1", "etdrk2", "etdrk4",
                                                     "test-gl-dopri5-fixed")]
                         + [("numpy", "etd2m")])   # multistep: numpy engine only
def test_etd_exact_for_one_point(engine, method):
    """Exponential integrators solve the N = 1 problem exactly at any step size."""
    x1 = np.array([[0.4, -1.2]])
    y0 = np.array([[2.0, 1.0], [-1.0, 0.5]])
    r = sd.solve(sd.EmpiricalScore(x1), y0, (0.0, 5.0), method=method, h=1.7, backend=engine)
    np.testing.assert_allclose(r.y, x1 + np.exp(-5.0) * (y0 - x1), rtol=0, atol=16 * EPS)


@given(st.integers(1, 12), st.integers(1, 4), st.floats(0.01, 3.0), st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_etd1_stays_in_the_ball_at_every_step(n, d, h, seed):
    """Claim 1 at the discrete level: ETD1 keeps |y| <= max(|y0|, R) at every step (convex combination)."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, d)) * 2
    y0 = rng.standard_normal((6, d)) * 3
    R = np.max(np.linalg.norm(data, axis=1))
    bound = np.maximum(np.linalg.norm(y0, axis=1), R) * (1 + 8 * EPS)
    grid = np.arange(1, 40) * h
    r = sd.solve(sd.EmpiricalScore(data), y0, (0.0, grid[-1]), method="etd1", h=h,
                 save_at=grid)
    assert np.all(np.linalg.norm(r.ys, axis=2) <= bound)
    assert np.all(r.max_norm <= bound)


def _reference(field, y0, s1):
    def rhs(s, y):
        return field.denoise(y.reshape(-1, 2), np.exp(-s)).ravel() - y
    sol = solve_ivp(rhs, (0.0, s1), y0.ravel(), method="DOP853", rtol=1e-12, atol=1e-14)
    return sol.y[:, -1].reshape(-1, 2)


@pytest.fixture(scope="module")
def authors_problem():
    data = authors_data()
    y0 = np.random.default_rng(2).standard_normal((12, 2))
    field = sd.EmpiricalScore(data)
    return field, y0, _reference(field, y0, 8.0)


@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_adaptive_agrees_with_scipy_dop853(authors_problem, engine, method):
    """At rtol 1e-8 the global error at s = 8 stays within 100 rtol (scipy DOP853 at 1e-12 as truth)."""
    field, y0, ref = authors_problem
    r = sd.solve(field, y0, (0.0, 8.0), method=method, rtol=1e-8, atol=1e-10, backend=engine)
    assert r.success
    assert np.max(np.abs(r.y - ref)) < 1e-6
    assert np.all(r.nearest == np.argmin(((ref[:, None] - field.data[None]) ** 2).sum(-1), 1))


@pytest.mark.parametrize("method", ALL_FIXED)
def test_fixed_step_methods_converge_to_scipy(authors_problem, method):
    """Halving h divides the error against DOP853 by ~2^order (within a factor 2^0.5)."""
    field, y0, ref = authors_problem
    p = get_method(method).order
    h = 0.02 if p >= 2 else 0.002
    e1 = np.max(np.abs(sd.solve(field, y0, (0.0, 8.0), method=method, h=h).y - ref))
    e2 = np.max(np.abs(sd.solve(field, y0, (0.0, 8.0), method=method, h=h / 2).y - ref))
    assert e2 < 1e-3
    assert np.log2(e1 / e2) > p - 0.5, (e1, e2)


@pytest.mark.parametrize("method", ONE_STEP + ["test-gl-dopri5-fixed"])
def test_engines_agree(authors_problem, method):
    """The compiled loop and the numpy engine compute the same scheme."""
    field, y0, _ = authors_problem
    a = sd.solve(field, y0, (0.0, 6.0), method=method, h=0.05, save_at=[1.0, 3.5],
                 backend="numba")
    b = sd.solve(field, y0, (0.0, 6.0), method=method, h=0.05, save_at=[1.0, 3.5], backend="numpy")
    np.testing.assert_allclose(a.ys, b.ys, rtol=0, atol=1e-11)
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-11)
    np.testing.assert_array_equal(a.n_steps, b.n_steps)


@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_dense_output_at_save_times(engine, method):
    """Adaptive pairs save through their dense output: states at save times match the exact flow."""
    field, y0, exact = gaussian_problem()
    if engine == "numba":
        x1 = np.array([[0.4, -1.2, 0.0]])
        field = sd.EmpiricalScore(x1)

        def exact(s):
            return x1 + np.exp(-s) * (y0 - x1)
    save = np.array([0.013, 0.5, 1.37, 2.0])
    r = sd.solve(field, y0, (0.0, 2.0), method=method, rtol=1e-10, atol=1e-12, save_at=save,
                 backend=engine)
    for k, s in enumerate(save):
        np.testing.assert_allclose(r.ys[k], exact(s), atol=1e-8)
    assert np.all(r.n_steps < 200)


def test_regularised_fields_compiled_vs_numpy(authors_problem):
    field, y0, _ = authors_problem
    for reg in (sd.Tikhonov(1e-3), sd.EmpiricalBayes(0.3)):
        f = sd.EmpiricalScore(field.data, regularization=reg)
        a = sd.solve(f, y0, (0.0, 9.0), method="rk4", h=0.02, backend="numba")
        b = sd.solve(f, y0, (0.0, 9.0), method="rk4", h=0.02, backend="numpy")
        np.testing.assert_allclose(a.y, b.y, atol=1e-11)


def test_log_time_equals_original_time_ve():
    """VE sigma = t: y(s) = x(e^{-s})."""
    data = authors_data()
    f = sd.EmpiricalScore(data)
    x1 = np.random.default_rng(4).standard_normal((6, 2))
    a = sd.solve(f, x1, (0.0, 4.0), rtol=1e-11, atol=1e-13).y
    b = sd.probability_flow(f, sd.VE(), x1, (1.0, np.exp(-4.0)), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("schedule", [sd.VP(), sd.VP(0.1, 20.0), sd.VEGeometric(10.0)])
def test_log_time_equals_original_time(schedule):
    """x(t) = alpha(t) z(lambda(t)) with z solving (*) in lambda, at several t (authors' s = -log sigma grid)."""
    data = authors_data()
    f = sd.EmpiricalScore(data)
    x1 = np.random.default_rng(5).standard_normal((6, 2)) * schedule.sigma(1.0)
    s_grid = -np.log(schedule.sigma(1.0)) + np.array([0.5, 1.5, 3.0])      # s = -log sigma
    t_grid = np.array([_t_of_sigma(schedule, np.exp(-s)) for s in s_grid])
    lam0 = schedule.lam(1.0)
    r = sd.solve(f, x1 / schedule.alpha(1.0), (lam0, schedule.lam(t_grid[-1])),
                 save_at=schedule.lam(t_grid), rtol=1e-11, atol=1e-13)
    for k, t in enumerate(t_grid):
        xt = sd.probability_flow(f, schedule, x1, (1.0, t), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(r.ys[k] * schedule.alpha(t), xt, atol=1e-8)


@pytest.mark.parametrize("schedule", [sd.VE(), sd.VEGeometric(10.0), sd.VP(), sd.EDM()])
def test_schedules_start_at_zero_and_refuse_earlier_times(schedule):
    """Every schedule method is defined for t >= 0 only: a negative or NaN time is a
    ValueError naming `t` (VE's sigma(-1) was -1 and VEGeometric's NaN); t = 0 gives the exact
    limits sigma = 0, alpha = 1, lambda = +inf without a warning, and t_of_lam inverts them
    (lambda = +inf is t = 0; NaN is refused)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert schedule.sigma(0.0) == 0.0 and schedule.alpha(0.0) == 1.0
        assert schedule.lam(0.0) == np.inf and schedule.t_of_lam(np.inf) == 0.0
        t = np.array([0.05, 0.3, 1.0])
        np.testing.assert_allclose(schedule.t_of_lam(schedule.lam(t)), t, rtol=1e-12)
    for method in (schedule.sigma, schedule.alpha, schedule.lam, schedule.g2):
        for bad in (-1e-3, np.nan, [0.2, -0.1]):
            with pytest.raises(ValueError, match=r"`t` must be non-negative"):
                method(bad)
    with pytest.raises(ValueError, match=r"`t` must be a number"):
        schedule.sigma("soon")
    with pytest.raises(ValueError, match=r"`lam` must not be NaN"):
        schedule.t_of_lam(np.nan)


def _t_of_sigma(schedule, sigma):
    from scipy.optimize import brentq
    return brentq(lambda t: schedule.sigma(t) - sigma, 1e-12, 1.0, xtol=1e-15, rtol=1e-15)


def test_reverse_sde_reproduces_the_gaussian_marginal():
    """Euler-Maruyama from the exact p_T of Gaussian data: mean and covariance of p_t at t = 0.05.

    Weak error O(dt) with dt = 1/400 is far below the Monte-Carlo tolerance (6 standard errors).
    """
    mu = np.array([1.0, -0.5])
    S = np.array([[0.5, 0.2], [0.2, 0.3]])
    field = sd.GaussianMixture(mu[None], S[None])
    vp = sd.VP()
    n = 40_000
    rng = np.random.default_rng(6)
    cT = vp.alpha(1.0) ** 2 * S + vp.sigma(1.0) ** 2 * np.eye(2)
    xT = vp.alpha(1.0) * mu + rng.standard_normal((n, 2)) @ np.linalg.cholesky(cT).T
    xt = sd.reverse_sde(field, vp, xT, (1.0, 0.05), n_steps=400, rng=rng)
    ct = vp.alpha(0.05) ** 2 * S + vp.sigma(0.05) ** 2 * np.eye(2)
    se_mean = np.sqrt(np.diag(ct) / n)
    assert np.all(np.abs(xt.mean(0) - vp.alpha(0.05) * mu) < 6 * se_mean)
    se_cov = np.sqrt((ct**2 + np.outer(np.diag(ct), np.diag(ct))) / n)
    assert np.all(np.abs(np.cov(xt.T) - ct) < 6 * se_cov)


def test_reverse_sde_has_weak_order_one():
    """Euler-Maruyama's bias in the mean of p_t halves with the step: fitted weak order 1 +- 0.3.

    Biases at 5, 10, 20 steps (~5e-2 .. 1.3e-2) sit well above the Monte-Carlo standard
    error of the mean with 2e5 samples (~1.2e-3, about 0.1 in the fitted slope).
    """
    mu = np.array([1.0, -0.5])
    S = np.array([[0.5, 0.2], [0.2, 0.3]])
    field = sd.GaussianMixture(mu[None], S[None])
    vp = sd.VP()
    n, t1 = 200_000, 0.05
    cT = vp.alpha(1.0) ** 2 * S + vp.sigma(1.0) ** 2 * np.eye(2)
    steps = np.array([5, 10, 20])
    bias = []
    for k in steps:
        rng = np.random.default_rng(11)
        xT = vp.alpha(1.0) * mu + rng.standard_normal((n, 2)) @ np.linalg.cholesky(cT).T
        xt = sd.reverse_sde(field, vp, xT, (1.0, t1), n_steps=int(k), rng=rng)
        bias.append(np.linalg.norm(xt.mean(0) - vp.alpha(t1) * mu))
    order = -np.polyfit(np.log(steps), np.log(bias), 1)[0]
    assert abs(order - 1.0) < 0.3, bias


def test_ddim_is_exponential_euler_in_log_time():
    """DDIM (eta = 0) on a DDPM schedule = ETD1 with steps lambda_{t-1} - lambda_t, to rounding."""
    f = sd.EmpiricalScore(authors_data())
    dd = sd.DDPM(T=60)
    xT = np.random.default_rng(7).standard_normal((5, 2))
    _, path = sd.ddim_sample(f, dd, xT, return_path=True)
    lams = dd.lam(np.arange(60, 0, -1))
    r = sd.solve(f, xT / dd.alpha(60), (lams[0], lams[-1]), method="etd1", h=100.0,
                 save_at=lams[1:])
    np.testing.assert_allclose(path[:-1], r.ys * dd.alpha(np.arange(59, 0, -1))[:, None, None],
                               atol=1e-13)


def test_ddpm_ancestral_samples_gaussian_data():
    mu = np.array([1.0, -0.5])
    S = np.array([[0.5, 0.2], [0.2, 0.3]])
    field = sd.GaussianMixture(mu[None], S[None])
    dd = sd.DDPM(T=1000)
    n = 40_000
    rng = np.random.default_rng(8)
    x0 = sd.ddpm_sample(field, dd, rng.standard_normal((n, 2)), rng=rng)
    se = np.sqrt(np.diag(S) / n)
    assert np.all(np.abs(x0.mean(0) - mu) < 6 * se + 1e-3)
    assert np.all(np.abs(np.cov(x0.T) - S) < 6 * np.sqrt(2 / n) * np.max(S) + 2e-3)


@pytest.mark.parametrize("method", ["etd1", "dopri5", "gl-dopri5"])
def test_recentred_collapse_is_resolved_to_s_60(method):
    """|y(s) - x_i| e^{s} tends to a constant up to s = 60 (far past the float64 floor at s ~ 35)."""
    data = np.array([[0.0, 0.0], [2.0, 0.5], [-1.0, 1.5]])
    y0 = np.array([[0.3, -0.4], [1.2, 0.9]])
    f = sd.EmpiricalScore(data)
    kw = dict(method=method, h=0.05, rtol=1e-10, atol=1e-300, recentre=True)
    K = []
    for s1 in (20.0, 40.0, 60.0):
        r = sd.solve(f, y0, (0.0, s1), **{k: v for k, v in kw.items()
                                          if not (method == "etd1" and k in ("rtol", "atol"))})
        assert r.success
        assert np.all(r.nearest == r.centre)
        K.append(r.nearest_distance * np.exp(s1))
    K = np.array(K)
    assert np.all(K > 1e-3)
    np.testing.assert_allclose(K[1:], np.broadcast_to(K[0], K[1:].shape), rtol=1e-6)
    plain = sd.solve(f, y0, (0.0, 60.0), method="etd1", h=0.05)
    # without recentring the site away from the origin sticks at the float64 floor ~ 1e-16 |x_i|
    assert np.any(np.abs(plain.nearest_distance * np.exp(60.0) - K[2]) > 1e3 * K[2])


@pytest.mark.parametrize("bad,exc,match", [
    (dict(y0=np.array([[np.nan, 0.0]])), ValueError, r"All components of the initial state `y0` must be finite"),
    (dict(y0=np.zeros(2)), ValueError, r"`y0` must have shape \(Q, 2\); got shape \(2,\)"),
    (dict(y0=np.zeros((1, 3))), ValueError, r"`y0` must have shape \(Q, 2\)"),
    (dict(s_span=(1.0, 1.0)), ValueError, r"`s_span` must be increasing"),
    (dict(s_span=(0.0, np.inf)), ValueError, r"`s_span` must be two finite numbers"),
    (dict(method="rk9"), ValueError, r"`method` must be one of \['ddim', 'dopri5'"),
    (dict(method="rk4", h=0.0), ValueError, r"`h` must be positive; got 0.0"),
    (dict(method="rk4"), ValueError, r"`h` \(the largest step\) is required for the fixed-step method 'rk4'"),
    (dict(rtol=-1e-3), ValueError, r"`rtol` must be positive; got -0.001"),
    (dict(atol=0.0), ValueError, r"`atol` must be positive; got 0.0"),
    (dict(save_at=[-1.0]), ValueError, r"`save_at` must lie within s_span"),
    (dict(save_at=[2.0, 1.0]), ValueError, r"`save_at` must be strictly increasing"),
    (dict(max_steps=0), ValueError, r"`max_steps` must be a positive integer; got 0"),
    (dict(backend="gpu"), ValueError, r"`backend` must be one of 'auto', 'numpy', 'numba', 'cuda'; got 'gpu'"),
    (dict(recentre=True, backend="numpy"), ValueError, r"backend 'numpy' cannot run this problem: `recentre` and `delta` need a fused engine"),
    (dict(method="etd2m", h=0.1, backend="numba"), ValueError, r"backend 'numba' runs the fused kernel, which cannot run this problem: it needs a one-step method"),
    (dict(engine="scipy"), ValueError, r"`engine` must be one of 'numpy', 'numba', 'numba-lanes', 'cuda', 'batched'; got 'scipy'"),
    (dict(engine="numba-lanes", delta=0.1), ValueError, r"`engine`='numba-lanes' cannot run this problem: `recentre` and `delta` need"),
    (dict(engine="numba", method="etd2m", h=0.1), ValueError, r"`engine`='numba' cannot run this problem: it needs a one-step method"),
    (dict(engine="numpy", backend="numba"), ValueError, r"`engine`='numpy' runs on backend 'numpy', but `backend`='numba'"),
    (dict(s_star=np.nan, delta=0.1), ValueError, r"`s_star` must be finite; got nan"),
    (dict(delta=np.nan), ValueError, r"`delta` must be finite; got nan"),
    (dict(s_star=1.0), ValueError, r"`s_star` \(from when `first_inside` is recorded\) needs `delta`"),
    (dict(s_star=6.0, delta=0.1), ValueError, r"`s_star` must not exceed the end of s_span \(5\)"),
    # s + h == s: the step count (span / h) would overflow int64 in the fused engines
    (dict(method="rk4", h=1e-300), ValueError, r"`h` must exceed the resolution of s on s_span \(5e-14"),
])
def test_bad_input(bad, exc, match):
    args = dict(field=sd.EmpiricalScore(authors_data()), y0=np.zeros((1, 2)), s_span=(0.0, 5.0))
    args.update(bad)
    field, y0, span = args.pop("field"), args.pop("y0"), args.pop("s_span")
    with pytest.raises(exc, match=match):
        sd.solve(field, y0, span, **args)


def test_bad_tableau_is_rejected_when_defined():
    with pytest.raises(ValueError, match=r"row sums of A must equal c"):
        class Broken(ExplicitRK):  # noqa: F841
            name, order = "test-broken", 2
            A, b, c = [[0, 0], [0.7, 0]], [0.5, 0.5], [0, 1.0]
    assert "test-broken" not in METHODS


def test_failure_is_reported_not_raised():
    r = sd.solve(sd.EmpiricalScore(authors_data()), np.zeros((3, 2)), (0.0, 50.0), method="rk4",
                 h=0.1, max_steps=10)
    assert not r.success and np.all(r.status == 1)
    assert r.message[0] == "The number of steps exceeded `max_steps`."


LANE_CASES = [dict(method="dopri5", rtol=1e-7, atol=1e-9),
              dict(method="gl-dopri5", rtol=1e-7, atol=1e-9), dict(method="rk4", h=0.1),
              dict(method="etd1", h=0.1), dict(method="etdrk4", h=0.3), dict(method="etdrk2", h=0.2),
              dict(method="heun", h=0.05), dict(method="euler", h=0.02)]


def _per_trajectory(*args, **kw):
    """The same solve on the one-trajectory-per-thread kernel."""
    return sd.solve(*args, engine="numba", **kw)


def _lanes(*args, **kw):
    """The same solve on the SIMD-lane kernel."""
    return sd.solve(*args, engine="numba-lanes", **kw)


@pytest.mark.parametrize("kw", LANE_CASES, ids=[c["method"] for c in LANE_CASES])
def test_lane_kernel_matches_the_per_trajectory_kernel(authors_problem, kw):
    """SIMD-lane stepping is the same scheme: 300 trajectories (4 full lane sets and a partial
    one), save times that split the span into segments of different step sizes (exponential
    coefficients differ per segment), every diagnostic compared."""
    field = authors_problem[0]
    y0 = 1.5 * np.random.default_rng(3).standard_normal((300, 2))
    opts = dict(save_at=[0.7, 2.0, 5.5], **kw)
    a = _lanes(field, y0, (0.0, 8.0), **opts)
    b = _per_trajectory(field, y0, (0.0, 8.0), **opts)
    assert a.success and b.success
    # adaptive steps follow the error norm (a difference of nearly equal stages), so the
    # two kernels' step sizes, and then the states, agree to ~1e-9 of the O(1) states
    tol = (dict(rtol=1e-9, atol=1e-9) if "rtol" in kw else dict(rtol=1e-12, atol=1e-13))
    np.testing.assert_allclose(a.y, b.y, **tol)
    np.testing.assert_allclose(a.ys, b.ys, **tol)
    for name in ("n_steps", "n_rejected", "nfev", "status", "nearest", "cell_changes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_allclose(a.max_norm, b.max_norm, rtol=1e-9)
    np.testing.assert_allclose(a.nearest_distance, b.nearest_distance, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(a.boundary_distance, b.boundary_distance, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
@pytest.mark.parametrize("reg", [sd.Tikhonov(1e-2), sd.EmpiricalBayes(0.05)],
                         ids=["tikhonov", "empirical_bayes"])
def test_lane_kernel_regularised(authors_problem, reg, method):
    data = authors_problem[0].data
    field = sd.EmpiricalScore(data, regularization=reg)
    y0 = np.random.default_rng(4).standard_normal((200, 2))
    a = _lanes(field, y0, (0.0, 10.0), method=method, rtol=1e-8)
    b = _per_trajectory(field, y0, (0.0, 10.0), method=method, rtol=1e-8)
    np.testing.assert_array_equal(a.n_steps, b.n_steps)
    np.testing.assert_array_equal(a.n_rejected, b.n_rejected)
    # adaptive: step sizes follow the error norm, a difference of nearly equal stages, so
    # the kernels' rounding (two-pass vs online softmax) moves them; Empirical Bayes' factor
    # has a kink in s (min(0, .)) where the controller rejects again and again, which
    # amplifies that.  The kernels must agree far better than either agrees with the
    # solution: within 1% of each trajectory's own error (truth: dopri5 at rtol 1e-13),
    # or 1e-9.  (Measured: at most 0.5% of it, 2e-9 against 1.7e-6, EB with gl-dopri5.)
    truth = sd.solve(field, y0, (0.0, 10.0), method="dopri5", rtol=1e-13, atol=1e-15).y
    gap = np.max(np.abs(a.y - b.y), axis=1)
    own = np.max(np.abs(b.y - truth), axis=1)
    assert np.all(gap <= np.maximum(1e-9, 0.01 * own)), (gap.max(), own[np.argmax(gap)])


def test_lane_kernel_failures_are_reported(authors_problem):
    field = authors_problem[0]
    y0 = np.random.default_rng(5).standard_normal((150, 2))
    a = _lanes(field, y0, (0.0, 8.0), method="dopri5", max_steps=5)
    b = _per_trajectory(field, y0, (0.0, 8.0), method="dopri5", max_steps=5)
    assert np.all(a.status == 1) and np.all(a.n_steps == 5)
    # stopped mid-span at adaptive step starts, which agree to ~1e-9 of the O(1) states (see
    # above): an absolute tolerance, since a component near 0 carries the same absolute
    # difference (a bare rtol failed on a component of 0.006 off by 1.7e-10)
    np.testing.assert_allclose(a.y, b.y, rtol=1e-9, atol=1e-9)
    # Euler with h = 1e10 multiplies a state's distance from D by ~1e10 a step.  Data and
    # starts at 1e100 (within the fused kernels' range, and not far from the data: states
    # far beyond the data's scale are refused, see test_extremes): from a generic start the
    # squared distances overflow within 6 steps; a start on a data point stays there
    big = sd.EmpiricalScore(field.data * 1e100)
    y0 = 1e100 * y0
    y0[1::3] = big.data[np.arange(y0[1::3].shape[0]) % big.n]
    a = _lanes(big, y0, (0.0, 1e11), method="euler", h=1e10)
    b = _per_trajectory(big, y0, (0.0, 1e11), method="euler", h=1e10)
    assert np.all(a.status[::3] == 3) and np.all(a.status[1::3] == 0)
    assert np.all(np.isfinite(a.y))
    np.testing.assert_array_equal(a.status, b.status)
    # the two kernels sum the 20 weighted points in orders the compiler may vectorise
    # differently (reassociation is on), so each D differs by <= gamma_20 ~ 20 u relative;
    # every Euler step scales state and difference alike, so over the 11 steps the states
    # differ by <= 11 * 20 u ~ 2.4e-14 relative (the bits agree when the orders happen to)
    np.testing.assert_allclose(a.y, b.y, rtol=11 * 20 * 2.0 ** -53 * 2, atol=0)


# -- generalized Lawson ----------------------------------------------------------------------

LAWSON_ENGINES = [("numba", 3), ("numba", 200), ("numpy", 3)]
LAWSON_IDS = ["per-trajectory", "lanes", "numpy"]


@pytest.mark.parametrize("engine,q", LAWSON_ENGINES, ids=LAWSON_IDS)
def test_generalized_lawson_exact_for_one_point(engine, q):
    """N = 1: D is constant, so gl-dopri5 is exact whatever its steps, its error estimate
    vanishes and its step grows by the controller's largest factor (5) up to MAX_STEP:
    a handful of steps to s = 40, and s = 400 (huge, sigma = e^{-400}) stays finite."""
    x1 = np.array([[0.4, -1.2]])
    y0 = 3.0 * np.random.default_rng(6).standard_normal((q, 2))
    field = sd.EmpiricalScore(x1)
    for s1, most in ((40.0, 8), (400.0, 8 + int(np.ceil(360 / GeneralizedLawson.MAX_STEP)))):
        r = sd.solve(field, y0, (0.0, s1), method="gl-dopri5", rtol=1e-10, atol=1e-12,
                     backend=engine)
        assert r.success
        np.testing.assert_allclose(r.y, x1 + np.exp(-s1) * (y0 - x1), rtol=0, atol=16 * EPS)
        assert np.all(r.n_steps <= most) and np.all(r.n_rejected == 0), r.n_steps
    classical = sd.solve(field, y0, (0.0, 40.0), method="dopri5", rtol=1e-10, atol=1e-12,
                         backend=engine)
    assert np.all(classical.n_steps > 5 * r.n_steps)    # it resolves e^{-s} all the way


@pytest.mark.parametrize("engine,q", LAWSON_ENGINES, ids=LAWSON_IDS)
def test_generalized_lawson_step_is_its_tableau(authors_problem, engine, q):
    """One step of every engine (weights formed per step in the kernels) equals the
    transformed tableau ``coefficients(h)`` applied by hand with the field's denoiser."""
    field = authors_problem[0]
    y0 = 1.5 * np.random.default_rng(7).standard_normal((q, 2))
    h = 0.7
    r = sd.solve(field, y0, (0.0, 5.0), method="gl-dopri5", h=h, rtol=1e3, atol=1e3,
                 max_steps=1, backend=engine)
    assert np.all(r.n_steps == 1) and np.all(r.status == 1)
    A, b, c, E, Ef, ell = get_method("gl-dopri5").coefficients(h)
    assert ell == 1.0
    G = []
    for i in range(c.size):      # G_i = f(Y_i) + Y_i = D(Y_i; e^{-c_i h})
        Y = E[i] * y0 + h * sum(A[i, j] * G[j] for j in range(i))
        G.append(field.denoise(Y, np.exp(-c[i] * h)))
    y1 = Ef * y0 + h * sum(b[i] * G[i] for i in range(c.size))
    np.testing.assert_allclose(r.y, y1, rtol=0, atol=1e-13)


def test_generalized_lawson_needs_fewer_steps_for_the_same_error(authors_problem):
    """The point of the method: on the authors' problem to s = 8, gl-dopri5 at rtol 1e-6
    is several times more accurate than dopri5 at rtol 1e-7, with fewer than half its
    right-hand sides (the settled trajectories' e^{-s} tails cost it nothing).
    Measured: 2.9e-9 with 1416 evaluations against 1.7e-8 with 3012."""
    field, y0, ref = authors_problem
    gl = sd.solve(field, y0, (0.0, 8.0), method="gl-dopri5", rtol=1e-6, atol=1e-8)
    cl = sd.solve(field, y0, (0.0, 8.0), method="dopri5", rtol=1e-7, atol=1e-9)
    assert np.max(np.abs(gl.y - ref)) < 0.25 * np.max(np.abs(cl.y - ref))
    assert gl.nfev.sum() < 0.5 * cl.nfev.sum(), (gl.nfev.sum(), cl.nfev.sum())


@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
@pytest.mark.parametrize("engine,q", LAWSON_ENGINES, ids=LAWSON_IDS)
def test_dense_output_on_the_authors_problem(authors_problem, engine, q, method):
    """Save times inside steps, on a problem where D varies (so the Lawson dense output's
    N_j - N_0 terms matter): against scipy DOP853 at rtol 1e-13 run to each save time.
    At rtol 1e-10 the 4th-order interpolant errs by ~1e-9 (measured: dopri5 1e-9,
    gl-dopri5 1.6e-9 with its longer steps); a wrong dense weight would give ~1e-3."""
    field = authors_problem[0]
    y0 = 1.5 * np.random.default_rng(8).standard_normal((q, 2))
    save = np.array([0.37, 1.3, 2.9, 5.1])

    def rhs(s, y):
        return field.denoise(y.reshape(-1, 2), np.exp(-s)).ravel() - y
    truth = [solve_ivp(rhs, (0.0, t), y0.ravel(), method="DOP853", rtol=1e-13,
                       atol=1e-15).y[:, -1].reshape(-1, 2) for t in save]
    r = sd.solve(field, y0, (0.0, 6.0), method=method, rtol=1e-10, atol=1e-12, save_at=save,
                 backend=engine)
    np.testing.assert_allclose(r.ys, np.stack(truth), rtol=0, atol=1e-8)


@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_huge_s_past_the_sigma_underflow(engine, method):
    """s_span to 10^4: sigma = e^{-s} underflows to 0 past s ~ 745, where the fields take their
    exact limit (D = the nearest site; duplicates double its weight): every trajectory ends on
    its data point, finite, with no warning (pytest turns warnings into errors) — exactly for
    gl-dopri5 (exact once D is constant), within ~atol for the classical pair, which leaves
    the last deviation |y - x_i| at the absolute tolerance's level."""
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.3, 2.0]])
    y0 = np.array([[0.0, 0.5], [0.0, -3.0], [0.9, 0.1], [5.0, 5.0]])
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 1e4), method=method, rtol=1e-10, atol=1e-12,
                 backend=engine)
    assert r.success and np.all(np.isfinite(r.y))
    tol = 0.0 if method == "gl-dopri5" else 100 * 1e-12
    np.testing.assert_allclose(r.y, X[[1, 1, 1, 3]], rtol=0, atol=tol)
