"""The empirical score field against the dense references, and its exact properties."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import scoredyn as sd
from scoredyn._host.reduce import GEMM_LOGIT_TOL

from . import naive
from .strategies import problems

EPS = np.finfo(np.float64).eps
METHODS = ["direct", "gemm"]


def reference_tol(data, x, sigma, alpha):
    """Error bound shared by two float64 evaluations of the softmax (not a fitted number).

    A squared distance D from direct differences carries a relative error of at
    most ~(d + 2) u, so a logit D / (2 sigma^2) is off by (d + 2) u L with L
    the largest logit magnitude; a weight's relative error is at most twice
    that (its own logit and the normaliser), for each of the two
    implementations, and D = sum w_i x_i inherits it times max |x_i|.
    """
    d = data.shape[1]
    dist = np.sum((x[:, None, :] - alpha * data[None]) ** 2, axis=-1)
    big = np.max(dist) / (2 * sigma**2)
    return 4 * (d + 2) * EPS * (1 + big) * (1 + np.max(np.abs(data)))


@pytest.mark.parametrize("method", METHODS)
@given(problems())
@example((np.zeros((1, 1)), np.zeros((1, 1)), 1.0, 1.0))
@example((np.array([[0.0], [1.0]]), np.array([[0.5]]), 0.1, 1.0))
@example((np.array([[0.75]]), np.array([[0.75]]), 0.05078125, 0.9))   # GEMM log-normaliser
def test_matches_dense_reference(method, prob):
    """denoise, score, noise, log_density, weights and nearest equal the dense formulas."""
    data, x, sigma, alpha = prob
    f = sd.EmpiricalScore(data, method=method)
    tol = reference_tol(data, x, sigma, alpha)
    ref_w = naive.weights(x, data, sigma, alpha)
    np.testing.assert_allclose(f.weights(x, sigma, alpha), ref_w, rtol=tol, atol=tol)
    D = naive.denoise(x, data, sigma, alpha)
    np.testing.assert_allclose(f.denoise(x, sigma, alpha), D, rtol=0, atol=tol)
    np.testing.assert_allclose(f.score(x, sigma, alpha) * sigma**2, alpha * D - x, rtol=0,
                               atol=alpha * tol + 4 * EPS * np.max(np.abs(x)))
    np.testing.assert_allclose(f.noise(x, sigma, alpha) * sigma, x - alpha * D, rtol=0,
                               atol=alpha * tol + 4 * EPS * np.max(np.abs(x)))
    ld = naive.log_density(x, data, sigma, alpha)
    # the GEMM path accepts logit errors up to GEMM_LOGIT_TOL where they do not move a weight
    # (a shift common to all logits cancels in the weights but not in the log-normaliser)
    ld_tol = tol + (GEMM_LOGIT_TOL if method == "gemm" else 0.0)
    np.testing.assert_allclose(f.log_density(x, sigma, alpha), ld, rtol=tol, atol=ld_tol)
    i1, i2, r1, r2 = f.nearest(x, sigma, alpha)
    # distances of the scaled differences: a plain sum of squares underflows below ~1e-154,
    # where the field (which scales by a power of two there) resolves them
    diff = x[:, None, :] - alpha * data[None]
    big = np.max(np.abs(diff), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        dist = np.where(big[..., 0] == 0.0, 0.0,
                        big[..., 0] * np.sqrt(np.sum((diff / big) ** 2, axis=-1)))
    srt = np.sort(dist, axis=1)
    # squared distances below float64's smallest normal (2.2e-308) lose their digits, so a
    # distance is resolved to sqrt(d * tiny) absolutely (when the data are in the ordinary
    # range; the field rescales data beyond it)
    floor = 2 * np.sqrt(x.shape[1] * np.finfo(float).tiny)
    np.testing.assert_allclose(r1, srt[:, 0], rtol=16 * EPS, atol=floor)
    # the reported site is at the reported distance (summation order: a few ulp)
    np.testing.assert_allclose(dist[np.arange(len(x)), i1], r1, rtol=16 * EPS, atol=floor)
    if data.shape[0] > 1:
        np.testing.assert_allclose(r2, srt[:, 1], rtol=16 * EPS, atol=floor)
        assert np.all(i1 != i2)
    else:
        assert np.all(i2 == -1) and np.all(np.isinf(r2))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,q,d", [(1300, 40, 3), (4500, 300, 30), (4500, 7, 30), (2049, 257, 5)])
def test_tiles_and_blocks(method, n, q, d):
    """Tile, block and data-chunk boundaries of both kernels give the dense answer."""
    rng = np.random.default_rng(n + q + d)
    data = rng.standard_normal((n, d))
    x = data[rng.integers(0, n, q)] + 0.3 * rng.standard_normal((q, d))
    sigma = 0.4
    f = sd.EmpiricalScore(data, method=method)
    tol = reference_tol(data, x, sigma, 1.0)
    np.testing.assert_allclose(f.denoise(x, sigma), naive.denoise(x, data, sigma), atol=tol)
    np.testing.assert_allclose(f.log_density(x, sigma), naive.log_density(x, data, sigma),
                               rtol=tol)
    i1, i2, _, _ = f.nearest(x)
    r1, r2 = naive.two_nearest(x, data)
    np.testing.assert_array_equal(i1, r1)
    np.testing.assert_array_equal(i2, r2)


@pytest.mark.parametrize("method", METHODS)
def test_float32_in_float32_out(method):
    """float32 data and queries give float32 results equal to the float64 ones rounded."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((300, 4)).astype(np.float32)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    f32 = sd.EmpiricalScore(data, method=method)
    f64 = sd.EmpiricalScore(data.astype(np.float64), method=method)
    for name in ("denoise", "score", "noise"):
        a = getattr(f32, name)(x, 0.7)
        b = getattr(f64, name)(x.astype(np.float64), 0.7)
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=np.finfo(np.float32).eps, atol=1e-6)
    assert f32.denoise(x.astype(np.float64), 0.7).dtype == np.float64


@given(problems())
def test_weights_are_a_probability_vector(prob):
    data, x, sigma, alpha = prob
    w = sd.EmpiricalScore(data).weights(x, sigma, alpha)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=data.shape[0] * 4 * EPS)


@given(problems(), st.randoms(use_true_random=False))
def test_permutation_invariance(prob, rnd):
    """D(x; X) does not depend on the order of the data; weights permute with it."""
    data, x, sigma, alpha = prob
    perm = np.array(rnd.sample(range(data.shape[0]), data.shape[0]))
    f, g = sd.EmpiricalScore(data), sd.EmpiricalScore(data[perm])
    tol = reference_tol(data, x, sigma, alpha)
    np.testing.assert_allclose(g.denoise(x, sigma, alpha), f.denoise(x, sigma, alpha), atol=tol)
    np.testing.assert_allclose(g.weights(x, sigma, alpha), f.weights(x, sigma, alpha)[:, perm],
                               rtol=tol, atol=tol)


@given(problems(max_d=4), st.integers(0, 2**32 - 1))
def test_rigid_motion_equivariance(prob, seed):
    """D(R x + alpha b; R X + b) = R D(x; X) + b for orthogonal R and any shift b."""
    data, x, sigma, alpha = prob
    rng = np.random.default_rng(seed)
    d = data.shape[1]
    R, _ = np.linalg.qr(rng.standard_normal((d, d)))
    b = rng.uniform(-3, 3, d)
    f = sd.EmpiricalScore(data)
    g = sd.EmpiricalScore(data @ R.T + b)
    lhs = g.denoise(x @ R.T + alpha * b, sigma, alpha)
    rhs = f.denoise(x, sigma, alpha) @ R.T + b
    # rounding of the moved inputs perturbs each logit by ~ u (|x| + |b|) |x - a x_i| / sigma^2
    scale = np.max(np.abs(x)) + np.max(np.abs(data)) + 3.0 * (1 + alpha)
    tol = reference_tol(data, x, sigma, alpha) + 8 * d * EPS * scale**2 / sigma**2 * scale
    np.testing.assert_allclose(lhs, rhs, atol=tol)


@given(problems(max_n=12, max_d=3, max_q=3))
def test_score_is_gradient_of_log_density(prob):
    """score = grad_x log p_t, checked by central differences (truncation O(h^2))."""
    data, x, sigma, alpha = prob
    f = sd.EmpiricalScore(data)
    s = f.score(x, sigma, alpha)
    h = 1e-4 * sigma
    fd = np.empty_like(x)
    for k in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[k] = h
        fd[:, k] = (f.log_density(x + e, sigma, alpha) - f.log_density(x - e, sigma, alpha)) / (2 * h)
    # truncation h^2/6 |f'''| with |f'''| <~ (1 + R/sigma)^3 / sigma^3 ; rounding eps |log p| / h
    R = np.max(np.abs(x)) + alpha * np.max(np.abs(data))
    logp = np.max(np.abs(f.log_density(x, sigma, alpha)))
    tol = h**2 * 4 * (1 + R / sigma) ** 3 / sigma**3 + 8 * EPS * (1 + logp) / h
    np.testing.assert_allclose(fd, s, atol=tol, rtol=1e-6)


@pytest.mark.parametrize("reg", [None, sd.Tikhonov(0.3), sd.EmpiricalBayes(0.7)])
@given(problems())
def test_tweedie_consistency(reg, prob):
    """noise = -sigma score and denoise = (x + sigma^2 score) / alpha, for every field."""
    data, x, sigma, alpha = prob
    f = sd.EmpiricalScore(data, regularization=reg)
    s = f.score(x, sigma, alpha)
    scale = 8 * EPS * (np.max(np.abs(x)) + np.max(np.abs(data)) * alpha + 1)
    np.testing.assert_allclose(f.noise(x, sigma, alpha), -sigma * s, atol=scale / sigma, rtol=1e-13)
    np.testing.assert_allclose(f.denoise(x, sigma, alpha), (x + sigma**2 * s) / alpha,
                               atol=scale / alpha, rtol=1e-13)


@given(problems())
def test_tikhonov_formula_and_limit(prob):
    """Tikhonov(c) score = (alpha D - x)/(sigma^2 + c); c = 0 is the empirical score exactly."""
    data, x, sigma, alpha = prob
    tol = reference_tol(data, x, sigma, alpha)
    base = sd.EmpiricalScore(data)
    np.testing.assert_array_equal(sd.EmpiricalScore(data, regularization=sd.Tikhonov(0.0))
                                  .score(x, sigma, alpha), base.score(x, sigma, alpha))
    for c in (1e-12, 0.01, 3.0):
        f = sd.EmpiricalScore(data, regularization=sd.Tikhonov(c))
        ref = naive.score(x, data, sigma, alpha, c=c)
        np.testing.assert_allclose(f.score(x, sigma, alpha), ref, rtol=1e-12,
                                   atol=tol * alpha / (sigma**2 + c))
    # c -> 0: the difference is exactly the factor c / (sigma^2 + c)
    s0 = base.score(x, sigma, alpha)
    sc = sd.EmpiricalScore(data, regularization=sd.Tikhonov(1e-9)).score(x, sigma, alpha)
    np.testing.assert_allclose(sc, s0 * sigma**2 / (sigma**2 + 1e-9), rtol=1e-12,
                               atol=tol * alpha / sigma**2)


@given(problems(), st.sampled_from([1e-3, 0.05, 1.0, 30.0]))
def test_empirical_bayes_matches_authors_formula(prob, tau):
    data, x, sigma, alpha = prob
    f = sd.EmpiricalScore(data, regularization=sd.EmpiricalBayes(tau))
    ref = naive.empirical_bayes_score(x, data, sigma, tau, alpha)
    tol = reference_tol(data, x, sigma, alpha) * (1 + np.max(np.abs(x)))
    np.testing.assert_allclose(f.score(x, sigma, alpha), ref, rtol=1e-9, atol=tol / sigma**2)


def test_class_conditional_equals_field_on_subset():
    """A conditional field with label k equals the unconditional field of class k's points."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((60, 3))
    labels = rng.choice(np.array(["cat", "dog", "eel"]), 60)
    x = rng.standard_normal((9, 3))
    f = sd.EmpiricalScore(data, labels=labels)
    assert set(f.classes) == {"cat", "dog", "eel"}
    for lab in ("cat", "dog", "eel"):
        g = sd.EmpiricalScore(data[labels == lab])
        for name in ("denoise", "score", "noise", "log_density", "weights", "jacobian"):
            np.testing.assert_array_equal(getattr(f, name)(x, 0.6, label=lab),
                                          getattr(g, name)(x, 0.6))
    np.testing.assert_array_equal(f.denoise(x, 0.6), sd.EmpiricalScore(data).denoise(x, 0.6))


@pytest.mark.parametrize("reg", [None, sd.Tikhonov(0.05), sd.EmpiricalBayes(0.2),
                                 sd.EmpiricalBayes(50.0)])
@given(problems(max_n=10, max_d=3, max_q=3))
def test_jacobian_matches_finite_differences(reg, prob):
    data, x, sigma, alpha = prob
    f = sd.EmpiricalScore(data, regularization=reg)
    J = f.jacobian(x, sigma, alpha)
    h = 1e-5 * sigma
    d = x.shape[1]
    fd = np.empty_like(J)
    for k in range(d):
        e = np.zeros(d)
        e[k] = h
        fd[:, :, k] = (f.denoise(x + e, sigma, alpha) - f.denoise(x - e, sigma, alpha)) / (2 * h)
    R = np.max(np.abs(x)) + alpha * np.max(np.abs(data)) + 1
    # truncation: h^2/6 times the third derivative of D, <~ (R/sigma)^4 R / sigma^3 ... bounded
    # crudely by h^2 (R/sigma)^5 / sigma; rounding: eps R / h.
    tol = h**2 * (R / sigma) ** 5 / sigma + 16 * EPS * R / h * (1 + R / sigma**2)
    np.testing.assert_allclose(J, fd, atol=tol, rtol=1e-5)


def test_duplicates_carry_double_weight():
    data = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    x = np.array([[0.5, 0.3]])
    w = sd.EmpiricalScore(data).weights(x, 1e-3)
    np.testing.assert_allclose(w, [[1 / 3, 1 / 3, 1 / 3]], rtol=1e-12)
