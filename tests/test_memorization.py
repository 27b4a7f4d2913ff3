"""Memorization metrics against brute force, their bootstrap intervals, and their errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoredyn import memorization as M


def brute(G, X):
    D = np.sqrt(((G[:, None] - X[None]) ** 2).sum(-1))
    return np.sort(D, axis=1)


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6))
    copies = X[:40] + 1e-3 * rng.standard_normal((40, 6))
    G = np.vstack([copies, rng.standard_normal((160, 6))])
    return G, X


@pytest.mark.parametrize("method", ["direct", "gemm"])
def test_metrics_match_brute_force(sets, method):
    G, X = sets
    D = brute(G, X)
    r = M.memorization_ratio(G, X, n_bootstrap=0, method=method)
    np.testing.assert_array_equal(r.per_sample, (D[:, 0] / D[:, 1] < 1 / 3).astype(float))
    c = M.carlini_memorization(G, X, n=50, n_bootstrap=0, method=method)
    l = (D[:, 0] / np.sqrt(6)) / (0.5 * (D[:, :50] / np.sqrt(6)).mean(1))
    np.testing.assert_array_equal(c.per_sample, (l <= 0.12).astype(float))
    k = M.knn_distance(G, X, n_bootstrap=0, method=method)
    np.testing.assert_allclose(k.value, D[:, 0].mean(), rtol=1e-13)
    kn = M.knn_distance(G, X, normalize=True, n_bootstrap=0, method=method)
    np.testing.assert_allclose(kn.value, D[:, 0].mean() / np.sqrt(6), rtol=1e-13)
    f = M.fraction_within(G, X, 1e-2, n_bootstrap=0, method=method)
    assert f.value == np.mean(D[:, 0] < 1e-2) == 0.2
    assert r.value == 0.2 and c.value == 0.2          # exactly the 40 near-copies
    assert np.isnan(r.ci_low) and np.isnan(r.ci_high)


def test_nearest_training_points_exact_in_high_dimension():
    """GEMM path at d = 3072 against brute force: same neighbours, distances to rounding."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2500, 3072))
    G = X[:30] + 1e-6 * rng.standard_normal((30, 3072))
    idx, dist = M.nearest_training_points(G, X, 5)
    D = np.sqrt(((G[:, None] - X[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(idx, np.argsort(D, 1, kind="stable")[:, :5])
    np.testing.assert_allclose(dist, np.sort(D, 1)[:, :5], rtol=1e-12, atol=1e-15)


def test_bootstrap_interval_covers_and_is_reproducible(sets):
    G, X = sets
    a = M.memorization_ratio(G, X, rng=5)
    b = M.memorization_ratio(G, X, rng=5)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.ci_low <= a.value <= a.ci_high
    # the binomial standard error is sqrt(p(1-p)/Q) = 0.028; a 95% interval spans ~4 of them
    width = a.ci_high - a.ci_low
    assert 0.08 < width < 0.14


@given(st.floats(1e-3, 1e3), st.floats(-50, 50))
def test_ratio_tests_are_invariant_to_scale_and_shift(scale, shift):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 3))
    G = np.vstack([X[:10] + 1e-4 * rng.standard_normal((10, 3)), rng.standard_normal((30, 3))])
    for f in (M.memorization_ratio, M.carlini_memorization):
        kw = {"n": 20} if f is M.carlini_memorization else {}
        a = f(G, X, n_bootstrap=0, **kw).per_sample
        b = f(G * scale + shift, X * scale + shift, n_bootstrap=0, **kw).per_sample
        np.testing.assert_array_equal(a, b)


def test_duplicated_training_points_count_as_memorized():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    assert M.memorization_ratio(np.array([[0.0, 0.0]]), X, n_bootstrap=0).value == 1.0


@pytest.mark.parametrize("call,match", [
    (lambda G, X: M.memorization_ratio(G, X, threshold=0.0), r"`threshold` must be positive"),
    (lambda G, X: M.memorization_ratio(G, X, threshold=1.5), r"`threshold` must lie in \(0, 1\]; got 1.5"),
    (lambda G, X: M.memorization_ratio(G[:0], X), r"`generated` must contain at least one sample"),
    (lambda G, X: M.memorization_ratio(G, X[:0]), r"`training` must contain at least one point"),
    (lambda G, X: M.memorization_ratio(G[:, :2], X), r"`generated` has dimension 2 but the data have dimension 3"),
    (lambda G, X: M.memorization_ratio(G, X[:1]), r"ratio test needs at least 2 training points.*`training` has 1"),
    (lambda G, X: M.carlini_memorization(G, X, n=0), r"`n` must be a positive integer; got 0"),
    (lambda G, X: M.carlini_memorization(G, X, n=99), r"`n` \(the neighbourhood S_n\) must be at most the number of training points \(10\); got 99"),
    (lambda G, X: M.nearest_training_points(G, X, k=11), r"`k` must be at most the number of training points \(10\); got 11"),
    (lambda G, X: M.carlini_memorization(G, X, n=5, delta=-1.0), r"`delta` must be positive"),
    (lambda G, X: M.fraction_within(G, X, 0.0), r"`tol` must be positive; got 0.0"),
    (lambda G, X: M.knn_distance(G, X, level=1.0), r"`level` must lie in \(0, 1\); got 1.0"),
    (lambda G, X: M.knn_distance(G, X, n_bootstrap=-1), r"`n_bootstrap` must be an integer >= 0; got -1"),
])
def test_bad_input(call, match):
    G = np.zeros((4, 3))
    X = np.arange(30, dtype=float).reshape(10, 3)
    with pytest.raises(ValueError, match=match):
        call(G, X)
