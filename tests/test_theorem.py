"""Property-based tests of the theorem of Baptista et al. (Baptista et al. 2025, arXiv:2501.15785).

Random data sets (N from 1 to 50, d from 1 to 8, pairwise separation >= 0.3)
and random starts; the log-time ODE dz/ds = -(z - D(z; e^{-s})) is solved with
DOPRI5 at rtol 1e-10 (global error ~1e-8), which sets every tolerance below.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import scoredyn as sd
from scoredyn.geometry import voronoi as V
from scoredyn.geometry.convergence import fit_collapse, min_separation, sufficient_time
from scoredyn.apps.verify import separated_data

RTOL, ATOL = 1e-10, 1e-12


@st.composite
def datasets(draw, max_n=50, max_d=8):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = separated_data(n, d, rng, min_sep=0.3, scale=1.5) if d > 1 or n < 8 else \
        np.sort(rng.choice(np.arange(-40, 41) * 0.3, n, replace=False))[:, None]
    y0 = rng.standard_normal((8, d)) * 2.5
    return X, y0


prop = settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])


@prop
@given(datasets())
def test_claim1_bounded_and_in_the_convex_hull(case):
    """Claim 1: |y(s)| <= max(|y(0)|, R) for all s, and y(s) in conv({y(0)} U X).

    Checked at 40 save times and on the running maximum kept by the kernel,
    up to the global error of the integration (1e-7 relative).
    """
    from scipy.optimize import linprog
    X, y0 = case
    save = np.linspace(0.2, 10, 40)
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 10.0), rtol=RTOL, atol=ATOL, save_at=save)
    bound = np.maximum(np.linalg.norm(y0, axis=1), np.max(np.linalg.norm(X, axis=1)))
    assert np.all(np.linalg.norm(r.ys, axis=2) <= bound * (1 + 1e-7))
    assert np.all(r.max_norm <= bound * (1 + 1e-7))
    pts = np.vstack([y0[0], X])
    for k in (5, 39):
        res = linprog(np.zeros(len(pts)), A_eq=np.vstack([pts.T, np.ones(len(pts))]),
                      b_eq=np.append(r.ys[k, 0], 1.0), bounds=(0, None), method="highs")
        assert res.status == 0


@prop
@given(datasets())
def test_claim2_cells_are_invariant_after_s_star(case):
    """Claim 2: in V^delta(x_i) at some s >= s*(N, R, delta) implies in it for all later s."""
    X, y0 = case
    if X.shape[0] < 2:
        return  # one site: its cell is all of R^d, nothing to leave
    sep = min_separation(X)
    delta = 0.25 * sep
    R = max(np.max(np.linalg.norm(X, axis=1)), np.max(np.linalg.norm(y0, axis=1)))
    s_star = sufficient_time(X.shape[0], R, delta, sep)
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, max(s_star, 0) + 6.0), rtol=RTOL, atol=ATOL,
                 delta=delta, s_star=s_star)
    seen = np.isfinite(r.first_inside)
    assert np.all(r.entry_time[seen] <= r.first_inside[seen])
    assert np.all(np.isfinite(r.entry_time))          # by then everyone is in some V^delta


@prop
@given(datasets())
@example((np.array([[0.0]]), np.array([[3.0]])))                         # N = 1, d = 1
@example((np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([[1e-9, 0.5]])))  # just off a bisector
def test_claim3_random_starts_collapse_to_data(case):
    """Claim 3 (generic case): random starts converge to data points; classify agrees."""
    X, y0 = case
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 30.0), rtol=RTOL, atol=ATOL)
    c = V.classify(X, r.y, 1e-9 * (1 + np.max(np.abs(X))))
    assert np.all(c.kind == V.DATA)
    np.testing.assert_array_equal(c.site, r.nearest)


T = np.linspace(-2.1, 2.1, 7)
SQUARE = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


@pytest.mark.parametrize("X,starts,stratum", [
    (np.array([[-1.0, 0.0], [1.0, 0.0]]), np.column_stack([np.zeros(7), T]), 1),   # bisector x = 0
    (SQUARE, np.column_stack([T, T])[T != 0], 1),                                  # diagonal y = x
    (SQUARE, np.column_stack([T, -T])[T != 0], 1),                                 # diagonal y = -x
    (SQUARE, np.zeros((1, 2)), 3),                            # centre: vertex of 4 cells
    (np.vstack([np.eye(3), -np.eye(3)]), np.zeros((1, 3)), 5),  # octahedron centre: 6 cells
], ids=["two-points", "square-diagonal", "square-antidiagonal", "square-centre",
        "octahedron-centre"])
def test_claim3_symmetric_starts_stay_on_the_boundary(X, starts, stratum):
    """Claim 3 (boundary case): starts on an invariant bisector of reflection-symmetric data
    end on a Voronoi boundary of at least the given stratum (exact in binary: these data are
    exactly symmetric, and the kernels keep |y - x|^2 symmetric under coordinate swaps)."""
    r = sd.solve(sd.EmpiricalScore(X), starts, (0.0, 60.0), rtol=RTOL, atol=ATOL)
    c = V.classify(X, r.y, 1e-9)
    assert np.all(c.kind == V.BOUNDARY)
    assert np.all(c.stratum >= stratum)


@prop
@given(datasets())
def test_claim4_collapse_at_rate_one(case):
    """Claim 4: |y(s) - x_i| <= K e^{-s}; the fitted rate is 1 within 0.02 and K is finite."""
    X, y0 = case
    save = np.linspace(1.0, 40.0, 79)
    r = sd.solve(sd.EmpiricalScore(X), y0, (0.0, 40.0), rtol=RTOL, atol=1e-300, recentre=True,
                 save_at=save)
    dev = np.linalg.norm(r.ys - X[r.centre][None], axis=2)
    fit = fit_collapse(save, dev, s_min=12.0, floor=1e-13 * (1 + np.max(np.abs(X))))
    ok = np.isfinite(fit.rate)
    assert ok.sum() >= 1
    assert np.all(np.abs(fit.rate[ok] - 1.0) < 0.02)
    assert np.all(np.isfinite(fit.K[ok]) & (fit.K[ok] > 0))
    # past the float64 floor: the recentred deviation keeps decaying at rate 1
    np.testing.assert_allclose(r.nearest_distance[ok] * np.exp(40.0), fit.K[ok], rtol=0.02)


@given(st.floats(1e-12, 1e-2), st.floats(-2.0, 2.0), st.sampled_from([-1.0, 1.0]))
@example(1e-12, 0.0, 1.0)
@example(1e-12, 2.0, -1.0)
@settings(max_examples=20)
def test_claim5_boundaries_repel(eps, height, side):
    """Claim 5: a start eps off the bisector of (+-1, 0) leaves it and collapses on its side."""
    X = np.array([[-1.0, 0.0], [1.0, 0.0]])
    r = sd.solve(sd.EmpiricalScore(X), np.array([[side * eps, height]]), (0.0, 60.0),
                 rtol=RTOL, atol=ATOL)
    c = V.classify(X, r.y, 1e-9)
    assert c.kind[0] == V.DATA and c.site[0] == (1 if side > 0 else 0)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=5)
def test_claim6_tikhonov_prevents_collapse(seed):
    """Claim 6: with c > 0 the rate r = 1/(1 + c e^{2s}) is integrable, trajectories freeze
    (distance at s = 40 >= distance at s = 20 times exp(-int_20^inf r)), and the fraction
    within 1e-2 of a data point does not increase with c."""
    rng = np.random.default_rng(seed)
    X = np.random.RandomState(1).randn(20, 2)
    y0 = rng.standard_normal((150, 2))
    fractions = []
    for c in (1e-5, 1e-3, 1e-1):
        f = sd.EmpiricalScore(X, regularization=sd.Tikhonov(c))
        r = sd.solve(f, y0, (0.0, 40.0), rtol=RTOL, atol=ATOL, save_at=[20.0])
        d40, d20 = V.nearest(X, r.y)[2], V.nearest(X, r.ys[0])[2]
        assert np.all(d40 > 0)
        assert np.all(d40 >= d20 * np.exp(-0.5 * np.log1p(np.exp(-40.0) / c)) * (1 - 1e-6))
        fractions.append(np.mean(d40 < 1e-2))
    assert fractions[0] >= fractions[1] >= fractions[2]
