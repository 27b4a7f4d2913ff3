"""GaussianMixture against scipy's densities, finite differences, and the empirical field."""
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import scoredyn as sd

EPS = np.finfo(float).eps


def make(kind, rng, k=3, d=3):
    means = rng.standard_normal((k, d)) * 2
    if kind == "isotropic":
        cov = rng.uniform(0.1, 1.0, k)
        full = cov[:, None, None] * np.eye(d)
    elif kind == "diagonal":
        cov = rng.uniform(0.1, 1.0, (k, d))
        full = np.stack([np.diag(c) for c in cov])
    else:
        A = rng.standard_normal((k, d, d))
        cov = full = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(d)
    w = rng.dirichlet(np.ones(k))
    return sd.GaussianMixture(means, cov, w), means, full, w


KINDS = ["isotropic", "diagonal", "full"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sigma,alpha", [(0.3, 1.0), (2.0, 0.6), (1e-3, 0.99)])
def test_log_density_matches_scipy(kind, sigma, alpha):
    rng = np.random.default_rng(0)
    gm, means, full, w = make(kind, rng)
    x = rng.standard_normal((7, 3)) * 2
    ref = np.log(sum(wk * multivariate_normal(alpha * m, alpha**2 * C + sigma**2 * np.eye(3)).pdf(x)
                     for wk, m, C in zip(w, means, full)))
    np.testing.assert_allclose(gm.log_density(x, sigma, alpha), ref, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_score_and_jacobian_match_finite_differences(kind):
    rng = np.random.default_rng(1)
    gm, *_ = make(kind, rng)
    x = rng.standard_normal((5, 3))
    sigma, alpha, h = 0.7, 0.8, 1e-5
    fd_s = np.empty_like(x)
    fd_J = np.empty((5, 3, 3))
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd_s[:, k] = (gm.log_density(x + e, sigma, alpha) - gm.log_density(x - e, sigma, alpha)) / (2 * h)
        fd_J[:, :, k] = (gm.denoise(x + e, sigma, alpha) - gm.denoise(x - e, sigma, alpha)) / (2 * h)
    # central differences: O(h^2) truncation ~1e-10 here, rounding ~ eps * 10 / h ~ 2e-10
    np.testing.assert_allclose(gm.score(x, sigma, alpha), fd_s, atol=1e-8)
    np.testing.assert_allclose(gm.jacobian(x, sigma, alpha), fd_J, atol=1e-8)
    np.testing.assert_allclose(gm.noise(x, sigma, alpha), -sigma * gm.score(x, sigma, alpha), rtol=1e-14)


@pytest.mark.parametrize("cov", [[1.0, 1.0], [[1.0, 2.0], [1.0, 2.0]], [np.eye(2), np.eye(2)]],
                         ids=["isotropic", "diagonal", "full"])
@pytest.mark.parametrize("far", [1e16, 1e30, 1e60, 1e100, 1e150])
def test_weights_of_far_queries(cov, far):
    """Components at (0, 0) and (3, 0) with equal covariances: a query at (far, 0) belongs to
    the second (log-odds 3 far / c), one on the bisector x = 1.5 to both equally.  Their
    quadratic forms ~far^2 rounded the difference away: 1/2 each from far = 1e60 (isotropic,
    diagonal: beyond the relative form's range) and from 1e30 (full form)."""
    gm = sd.GaussianMixture([[0.0, 0.0], [3.0, 0.0]], cov)
    np.testing.assert_array_equal(gm.weights(np.array([[far, 0.0], [-far, 0.0]]), 1.0),
                                  [[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(gm.weights(np.array([[1.5, far]]), 1.0), [[0.5, 0.5]],
                               rtol=1e-12)


@pytest.mark.parametrize("x, expected", [
    ([1e8, 0.0], [0.5, 0.5]),        # one-hot responsibilities: (I - sigma^2 P_1), exactly
    ([1e12, 0.0], [0.5, 0.5]),
    ([1.5, 0.3], [1.0625, 0.5]),     # on the bisector: + Var(sigma g_x) = 0.75^2
    ([1.5, 1e200], [1.0625, 0.5]),
])
def test_jacobian_of_far_queries(x, expected):
    """Two unit-variance components at (0, 0) and (3, 0), sigma = 1: the Jacobian is
    diag(1/2, 1/2) where one component takes all the weight and diag(1/2 + 9/16, 1/2) on
    the bisector, however far out.  Formed from r r^T of sigma g_k ~ |x| / sigma it came out
    0 instead of 1/2 at |x| = 1e8 (the terms swamped I - sigma^2 P) and NaN at 1e200."""
    gm = sd.GaussianMixture([[0.0, 0.0], [3.0, 0.0]], [1.0, 1.0])
    np.testing.assert_allclose(gm.jacobian(np.array([x]), 1.0)[0], np.diag(expected),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sigma", [1e-4, 0.3, 5.0])
def test_point_mass_mixture_is_the_empirical_field(sigma):
    rng = np.random.default_rng(2)
    data = rng.standard_normal((15, 2))
    x = rng.standard_normal((6, 2))
    gm = sd.GaussianMixture(data, np.zeros(15))
    f = sd.EmpiricalScore(data)
    for name in ("denoise", "log_density", "weights", "jacobian"):
        a, b = getattr(gm, name)(x, sigma, 0.9), getattr(f, name)(x, sigma, 0.9)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.max(np.abs(b)))
    np.testing.assert_allclose(gm.score(x, sigma), f.score(x, sigma), rtol=1e-9,
                               atol=1e-12 / sigma**2)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_moments(kind):
    """Sample mean and covariance within 6 standard errors of the mixture's moments."""
    rng = np.random.default_rng(3)
    gm, means, full, w = make(kind, rng)
    n = 200_000
    xs = gm.sample(n, rng=np.random.default_rng(4))
    mean = w @ means
    cov = sum(wk * (C + np.outer(m - mean, m - mean)) for wk, m, C in zip(w, means, full))
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(xs.mean(0) - mean) < 6 * se)
    np.testing.assert_allclose(np.cov(xs.T), cov, atol=6 * np.max(np.diag(cov)) * np.sqrt(2 / n) * 2)
    np.testing.assert_array_equal(xs, gm.sample(n, rng=np.random.default_rng(4)))


def test_level_groups_match_numpy_unique():
    """The grouping of queries by (sigma, alpha) that every mixture evaluation starts with:
    the same groups and pairs as np.unique(axis=0), for repeated, single and empty levels."""
    from scoredyn.fields.mixture import _groups
    rng = np.random.default_rng(3)
    levels = rng.uniform(0.1, 2.0, (5, 2))
    for q in (0, 1, 7, 500):
        for stack in (levels[rng.integers(0, 5, q)], np.broadcast_to(levels[2], (q, 2))):
            group, pairs = _groups(stack[:, 0], stack[:, 1])
            ref, inverse = np.unique(stack, axis=0, return_inverse=True)
            assert [tuple(p) for p in ref] == pairs
            np.testing.assert_array_equal(group, inverse.reshape(-1))


def test_a_scalar_covariance_is_one_variance_for_every_component():
    rng = np.random.default_rng(5)
    mu, y = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    shared = sd.GaussianMixture(mu, 0.3)
    per = sd.GaussianMixture(mu, np.full(4, 0.3))
    assert shared.covariance_type == "isotropic"
    np.testing.assert_array_equal(shared.score(y, 0.7), per.score(y, 0.7))
    low = sd.GaussianMixture(mu, 0.3, factors=rng.standard_normal((4, 3, 1)))
    np.testing.assert_array_equal(low.variances, np.full((4, 3), 0.3))


@pytest.mark.parametrize("kind", KINDS + ["low-rank", "numpy"])
@pytest.mark.parametrize("d", [3, 40])
def test_no_queries_give_empty_results(kind, d):
    """An empty batch of queries (valid input) gives empty results of the right shapes on
    every path (the min and max over no queries raised before)."""
    rng = np.random.default_rng(5)
    if kind == "low-rank":
        gm = sd.GaussianMixture(rng.standard_normal((4, d)), rng.uniform(0.1, 1, (4, d)),
                                factors=0.1 * rng.standard_normal((4, d, 2)))
    elif kind == "numpy":
        gm = sd.GaussianMixture(rng.standard_normal((4, d)), rng.uniform(0.1, 1, (4, d)),
                                backend="numpy")
    else:
        gm = make(kind, rng, k=4, d=d)[0]
    x = np.empty((0, d))
    for method in ("denoise", "score", "noise"):
        assert getattr(gm, method)(x, 0.5).shape == (0, d), method
    assert gm.log_density(x, 0.5).shape == (0,)
    assert gm.jacobian(x, 0.5).shape == (0, d, d)
    assert gm.residual(x, np.ones(0), np.ones(0))[0].shape == (0, d)
