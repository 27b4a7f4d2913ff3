"""Numerical traps (see scoredyn.kernels): cancellation near Voronoi boundaries, extreme sigma, ties."""
import numpy as np
import pytest

import scoredyn as sd
from scoredyn.apps.bench import near_boundary_case

from . import naive

METHODS = ["direct", "gemm"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("w_target", [0.27, 0.73])
def test_near_boundary_weights_match_mpmath(method, w_target):
    """The cancellation trap: d = 3072, sigma = 1e-6, 60-digit reference, max weight error <= 1e-8."""
    rng = np.random.default_rng(12 if w_target < 0.5 else 13)
    data, y = near_boundary_case(rng, w_target=w_target)
    exact = naive.mp_weights(y[0], data, 1e-6)
    assert 0.2 < exact[0] < 0.8 and abs(exact[0] + exact[1] - 1) < 1e-12
    f = sd.EmpiricalScore(data, method=method)
    w = f.weights(y, 1e-6)[0]
    assert np.max(np.abs(w - exact)) <= 1e-8
    D = f.denoise(y, 1e-6)[0]
    D_exact = exact[0] * data[0] + exact[1] * data[1]
    assert np.max(np.abs(D - D_exact)) <= 1e-8 * np.max(np.abs(data[:2]))
    i1, i2, _, _ = f.nearest(y)
    assert {i1[0], i2[0]} == {0, 1} and i1[0] == int(np.argmax(exact))


def test_gemm_expansion_alone_fails_the_same_case():
    """The trap is real: |y|^2 - 2 y.x + |x|^2 misplaces these weights by O(0.1)."""
    rng = np.random.default_rng(12)
    data, y = near_boundary_case(rng)
    exact = naive.mp_weights(y[0], data, 1e-6)
    D = (y**2).sum(1)[:, None] - 2 * y @ data.T + (data**2).sum(1)[None]
    l = -D / (2e-12)
    w = np.exp(l - l.max())
    w /= w.sum()
    assert np.max(np.abs(w[0] - exact)) > 1e-3


SIGMAS = [1e-300, 1e-200, 1e-155, 1e-20, 1e-3, 1.0, 1e20, 1e155, 1e200, 1e300]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_extreme_sigma_is_finite_and_has_the_right_limits(method, sigma):
    rng = np.random.default_rng(5)
    data = rng.standard_normal((40, 3))
    x = np.vstack([rng.standard_normal((6, 3)), data[7]])
    f = sd.EmpiricalScore(data, method=method)
    w = f.weights(x, sigma)
    D = f.denoise(x, sigma)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(D))
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-13)
    assert np.all(np.isfinite(f.noise(x, sigma)))  # |x - D| / sigma < 1e300 here
    s = f.score(x, sigma)
    assert not np.any(np.isnan(s))
    ld = f.log_density(x, sigma)
    assert not np.any(np.isnan(ld)) and np.isfinite(ld[-1])
    nearest = data[np.argmin(((x[:, None] - data[None]) ** 2).sum(-1), axis=1)]
    if sigma <= 1e-20:
        np.testing.assert_array_equal(D, nearest)
        assert np.all(s[-1] == 0.0)   # at a data point the score is exactly 0, however small sigma
        # beyond the float64 range the score is +-inf with the sign of D - x = nearest - x
        big = np.isinf(s)
        assert np.array_equal(np.sign(s[big]), np.sign((nearest - x)[big]))
    if sigma <= 1e-200:   # |x - x_i|^2 / (2 sigma^2) overflows for every i off the data
        assert np.all(ld[:-1] == -np.inf) and np.all(np.isinf(s[:-1]))
    if sigma >= 1e20:
        np.testing.assert_allclose(D, np.broadcast_to(data.mean(0), D.shape), atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_far_queries_at_vanishing_sigma_take_the_nearest_site(backend):
    """Queries near 1e301 at sigma = 1e-300: the length scale that keeps their squared
    distances in range takes sigma to 0, whose 1 / (2 sigma^2) is the exact limit (the
    nearest site, weight 1) and no warning (it raised \"divide by zero\" as an error where
    warnings are errors, as in EDM's sampler past a step to sigma = 1e-300)."""
    import warnings
    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 2))
    x = np.array([[4e301, -3e301], [1e300, 1e300], [-2e301, 5e300]])
    nearest = data[np.argmax(x / 1e300 @ data.T, axis=1)]     # |x| >> |x_i|: the farthest along x
    f = sd.EmpiricalScore(data, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(f.denoise(x, 1e-300), nearest)
        np.testing.assert_array_equal(f.weights(x, 1e-300).max(axis=1), 1.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigma", [1e-300, 1e-8, 1.0])
def test_exact_ties_split_evenly(method, sigma):
    """A query on the bisector of two sites (exactly, in binary) splits its weight 1/2-1/2."""
    data = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    x = np.array([[0.0, 0.7], [0.0, -2.0]])
    f = sd.EmpiricalScore(data, method=method)
    w = f.weights(x, sigma)
    assert w[0, 0] == w[0, 1]
    if sigma < 1e-7:
        np.testing.assert_array_equal(w[:, :2], 0.5)
        np.testing.assert_array_equal(f.denoise(x, sigma), [[0.0, 0.0], [0.0, 0.0]])


def test_tikhonov_score_stays_bounded_as_sigma_vanishes():
    """Tikhonov: s -> -(x - x_i) / c as t -> 0 (Baptista et al. 2025, arXiv:2501.15785), even at sigma = 1e-300."""
    data = np.array([[0.0, 0.0], [3.0, 0.0]])
    x = np.array([[0.4, -0.2]])
    f = sd.EmpiricalScore(data, regularization=sd.Tikhonov(0.01))
    for sigma in (1e-6, 1e-100, 1e-300):
        np.testing.assert_allclose(f.score(x, sigma), -(x - data[0]) / (sigma**2 + 0.01), rtol=1e-14)


def test_empirical_bayes_shrinks_to_zero_far_from_data():
    data = np.array([[0.0, 0.0], [3.0, 0.0]])
    x = np.array([[1.5, 9.0]])
    f = sd.EmpiricalScore(data, regularization=sd.EmpiricalBayes(0.5))
    for sigma in (1e-3, 1e-300):
        np.testing.assert_array_equal(f.score(x, sigma), 0.0)
        np.testing.assert_array_equal(f.denoise(x, sigma), x)


@pytest.mark.parametrize("backend, d", [("numba", 3), ("numba", 40), ("numpy", 3)])
@pytest.mark.parametrize("R, sigma", [(1e9, 1e-3), (1e16, 1.0), (1e16, 3e7), (1e40, 1e12),
                                      (1e120, 1e100)])
def test_far_queries_against_mpmath(backend, d, R, sigma):
    """Queries far from the data (|y| / |x| up to 1e120): direct differences round every
    |y - x_i|^2 to about the same number (the mean of all points came out before, not the
    nearest one); relative distances r_i = (x_i - x_0).(x_i + x_0 - 2 y) resolve them.
    Reference: the softmax over exact squared distances (2 log10 R + 40 digits).
    Tolerance: each r_i within B_i = gamma_{d+2} sum_j |x_ij - x_0j| (|x_ij + x_0j| +
    2 |y_j|), so each logit within delta = max B_i / (2 sigma^2).  Far out delta is itself
    large (y is only known to eps |y|), but the gap g between the two largest exact logits
    is often larger still; the weights are within min(4 delta, 2 e^-(g - delta)) of the
    exact ones (plus N eps; asserted below 1e-6), and D within that times max |x|.
    log_density: the nearest point's direct distance, within gamma_{d+3}."""
    rng = np.random.default_rng(int(np.log10(R)) + d)
    n = 12
    data = rng.standard_normal((n, d))
    u = rng.standard_normal(d)
    y = R * u / np.linalg.norm(u) + rng.standard_normal(d) * R * 1e-3
    f = sd.EmpiricalScore(data, backend=backend)
    dps = int(2 * np.log10(R)) + 40
    exact = naive.mp_weights(y, data, sigma, dps=dps)
    eps = np.finfo(float).eps
    g = lambda k: k * eps / (1 - k * eps)           # noqa: E731 (Higham's gamma_k)
    B = g(d + 2) * np.sum(np.abs(data - data[0]) * (np.abs(data + data[0]) + 2 * np.abs(y)),
                          axis=1)
    delta = np.max(B) / (2 * sigma ** 2)
    top2 = np.sort(exact)[-2:]
    with np.errstate(divide="ignore"):
        gap = np.log(top2[1]) - np.log(top2[0])
    tol = 4 * delta                                # each weight within 2 delta relatively
    if gap > 2 * delta:                            # decided: the rest weighs e^-(gap - delta)
        tol = min(tol, 2 * np.exp(-(gap - delta)))
    tol += n * eps
    assert tol < 1e-6                              # the check is not vacuous
    scale = np.max(np.abs(data))
    D = f.denoise(y[None], sigma)[0]
    np.testing.assert_allclose(D, exact @ data, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(f.weights(y[None], sigma)[0], exact, rtol=0, atol=tol)
    if exact.max() > 0.999:                          # a clear nearest point
        assert f.nearest(y[None])[0][0] == int(np.argmax(exact))
    import mpmath
    with mpmath.workdps(dps):
        s2 = mpmath.mpf(sigma) ** 2
        ls = [-mpmath.fsum((mpmath.mpf(a) - mpmath.mpf(b)) ** 2 for a, b in zip(y, x)) / (2 * s2)
              for x in data]
        ref = float(mpmath.log(mpmath.fsum(mpmath.exp(v) for v in ls)) - mpmath.log(n)
                    - d * mpmath.log(2 * mpmath.pi * s2) / 2)
    np.testing.assert_allclose(f.log_density(y[None], sigma)[0], ref, rtol=2 * g(d + 3))


def test_far_starts_leave_the_fused_engines():
    """The fused kernels form distances by direct differences only: starts far from the data
    (where those cannot resolve the softmax; the empirical field, and the point-mass
    mixture, which is the same field) go to an engine that recomputes them, an
    explicit fused engine is refused with the reason, and the flow from 1e17 out ends at
    the data point furthest along the start's direction: |y - x*| = 1e17 e^-60 ~ 1e-9 for
    the exact flow, plus the integration error, which rtol = 1e-8 bounds relative to
    |y| ~ |x*| ~ 1 late in the flow (1e-6 allows a few hundred such steps); every other
    data point is O(1) away."""
    rng = np.random.default_rng(21)
    d = 3
    data = rng.standard_normal((6, d))
    u = np.ones(d) / np.sqrt(d)
    y0 = np.stack([1e17 * u, -1e17 * u])
    target = np.stack([data[np.argmax(data @ u)], data[np.argmin(data @ u)]])
    for field, engines in ((sd.EmpiricalScore(data), ("numba", "numba-lanes")),
                           (sd.GaussianMixture(data, np.zeros(len(data))), ("numba",))):
        res = sd.solve(field, y0, (0.0, 60.0))
        assert res.engine in ("numpy", "batched")
        np.testing.assert_allclose(res.y, target, rtol=0, atol=1e-6)
        for engine in engines:
            with pytest.raises(ValueError, match="far from the data"):
                sd.solve(field, y0, (0.0, 60.0), engine=engine)
    # ordinary starts keep the fused engine
    assert sd.solve(sd.EmpiricalScore(data), 20.0 * rng.standard_normal((4, d)),
                    (-np.log(20.0), 5.0)).engine == "numba"


@pytest.mark.parametrize("d", [3, 40])
@pytest.mark.parametrize("R", [1e9, 1e17, 1e60])
def test_far_nearest_training_points_in_exact_order(d, R):
    """k nearest neighbours of queries far from the data: the order of the exact squared
    distances of the given floats (rational arithmetic), which direct differences lose at
    |y| ~ 1e16 |x| (every distance rounds alike and the data's order came out); the
    distances themselves to a relative gamma_{d+2}."""
    from fractions import Fraction
    rng = np.random.default_rng(d + int(np.log10(R)))
    X = rng.standard_normal((9, d))
    u = rng.standard_normal(d)
    Y = np.stack([R * u / np.linalg.norm(u), -R * u / np.linalg.norm(u)])
    idx, dist = sd.memorization.nearest_training_points(Y, X, k=4)
    for q in range(len(Y)):
        exact = [sum((Fraction(a) - Fraction(b)) ** 2 for a, b in zip(Y[q], x)) for x in X]
        order = sorted(range(len(X)), key=lambda i: (exact[i], i))[:4]
        assert list(idx[q]) == order
        np.testing.assert_allclose(dist[q] ** 2, [float(exact[i]) for i in order],
                                   rtol=2 * (d + 2) * np.finfo(float).eps)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("d", [3, 40])
def test_far_queries_classify_to_their_exact_cell(backend, d):
    """voronoi.classify and voronoi.nearest far from the data: the site whose cell holds the
    query by exact (rational) distances, and a positive margin to its bisectors (the first
    site came out before, with margins of -2.5e16)."""
    from fractions import Fraction
    rng = np.random.default_rng(30 + d)
    X = rng.standard_normal((9, d))
    u = rng.standard_normal(d)
    Y = np.stack([1e17 * u / np.linalg.norm(u), -1e20 * u / np.linalg.norm(u)])
    res = sd.voronoi.classify(X, Y, 1e-6, backend=backend)
    i1 = sd.voronoi.nearest(X, Y, backend=backend)[0]
    for q in range(len(Y)):
        exact = [sum((Fraction(a) - Fraction(b)) ** 2 for a, b in zip(Y[q], x)) for x in X]
        best = min(range(len(X)), key=lambda i: (exact[i], i))
        assert res.site[q] == best and i1[q] == best
        assert res.distance_to_boundary[q] > 0
