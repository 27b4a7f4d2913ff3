"""The batched engine: stages through the GEMM reduction, pruned to certified candidates."""
import warnings

import numpy as np
import pytest

import scoredyn as sd
from scoredyn._host.knn import k_nearest_squared
from scoredyn._host.reduce import PreparedData, _gamma, neglect_margin
from scoredyn.dynamics.engines.batched import CandidateStages
from scoredyn.dynamics.engines.numpy_engine import solve_numpy
from scoredyn.dynamics.solver import problem
from scoredyn.kernels.candidates import candidate_reduce

from .naive import denoise as naive_denoise


def _candidates(X, ref, k):
    """Candidates (k nearest of ``ref``) and the bound R (the (k+1)-th nearest distance)."""
    ki, kd = k_nearest_squared(PreparedData(X), ref, k + 1)
    return ki[:, :k].copy(), np.sqrt(kd[:, k])


def _run_kernel(X, Y, sigma, cand, ref, bound):
    q, d = Y.shape
    mean, dmin, lsum = np.zeros((q, d)), np.empty(q), np.empty(q)
    served = np.empty(q, bool)
    candidate_reduce(X, Y, 0.5 / sigma ** 2, 2.0 * sigma ** 2, neglect_margin(len(X)),
                     2.0 * _gamma(d + 4), np.arange(q), cand, ref, bound, mean, dmin, lsum,
                     served, np.empty(cand.shape))
    return mean, dmin, lsum, served


@pytest.mark.parametrize("seed", range(4))
def test_a_served_query_is_certified_and_exact(seed):
    """Whenever the kernel serves a query, the weights it leaves out are provably negligible:
    measured with the dense softmax, their sum is below ``e^-40`` of the total (the neglect
    rule), and the mean equals the dense reference (relative weights 1e-16 off: the mean
    moves by at most ~1e-15 of the data's spread, bounded here by 1e-13 of its scale)."""
    rng = np.random.default_rng(seed)
    n, d, k = 400, 12, 8
    X = rng.standard_normal((n, d))
    ref = X[rng.integers(0, n, 200)] + 0.05 * rng.standard_normal((200, d))
    cand, bound = _candidates(X, ref, k)
    # queries moved from their references by up to about the gap, sigma over two decades
    Y = ref + rng.uniform(0, 0.6, (200, 1)) * rng.standard_normal((200, d)) / np.sqrt(d)
    sigma = 10.0 ** rng.uniform(-3, -0.5, 200)
    mean, dmin, lsum, served = _run_kernel(X, Y, sigma, cand, ref, bound)
    assert 20 < served.sum() < 200          # both outcomes occur
    dist = ((Y[:, None, :] - X[None]) ** 2).sum(-1)
    logw = -(dist - dist.min(1, keepdims=True)) / (2 * sigma[:, None] ** 2)
    w = np.exp(logw)
    outside = np.ones_like(w, bool)
    np.put_along_axis(outside, cand, False, axis=1)
    left_out = (w * outside).sum(1) / w.sum(1)
    assert np.all(left_out[served] < np.exp(-40.0))
    ref_mean = naive_denoise(Y[served], X, sigma[served, None])
    np.testing.assert_allclose(mean[served], ref_mean, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dmin[served], dist.min(1)[served], rtol=1e-14)


def test_a_query_outside_the_certified_ball_is_not_served():
    """Far from its reference the triangle inequality proves nothing: never served, however
    small sigma is."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((100, 4))
    ref = X[:10].copy()
    cand, bound = _candidates(X, ref, 3)
    Y = ref + 2.0 * bound[:, None]               # beyond R from the reference
    served = _run_kernel(X, Y, np.full(10, 1e-6), cand, ref, bound)[3]
    assert not served.any()
    # without candidates (R = 0) nothing is served either
    served = _run_kernel(X, ref, np.full(10, 1e-6), cand, ref, np.zeros(10))[3]
    assert not served.any()


def test_batched_engine_matches_numpy_engine_with_pruning():
    """A GEMM-regime solve (d = 32) to s = 10: most late stages are served by candidates, and
    the result is the numpy engine's (every stage a full pass) — the same steps, and end
    states that differ only by the two reductions' logit errors (at most tau = 1e-12 per
    logit on the GEMM path, so ``|Delta D| <= tau * diam(data)`` per evaluation; integrated
    over the 11 units of s: ``11 * 1e-12 * 20 < 3e-10``, diam < 20 for these data)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300, 32))
    field = sd.EmpiricalScore(X)
    y0 = X[rng.integers(0, 300, 60)] + 3.0 * rng.standard_normal((60, 32))
    prob = problem(field, y0, (-1.0, 10.0), method="dopri5", rtol=1e-8, atol=1e-10)
    stages = CandidateStages(field, 60)
    got = solve_numpy(prob, rhs=stages, engine="batched")
    ref = solve_numpy(prob)
    assert np.ptp(X, axis=0).max() < 20 and np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)).max() < 20
    assert stages.served > stages.full > 0          # pruning did most of the work
    assert got.success and ref.success
    for attr in ("n_steps", "n_rejected", "nfev", "nearest"):
        np.testing.assert_array_equal(getattr(got, attr), getattr(ref, attr), err_msg=attr)
    np.testing.assert_allclose(got.y, ref.y, rtol=0, atol=3e-10)


def test_batched_engine_runs_regularised_and_class_conditional_fields():
    """The regularisation's factor (from the log-normaliser, which pruning keeps exact) and a
    class's data: the same answers as the numpy engine."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((120, 30))
    labels = np.arange(120) % 2
    for field, label in ((sd.EmpiricalScore(X, regularization=sd.EmpiricalBayes(5.0)), None),
                         (sd.EmpiricalScore(X, labels=labels), 1)):
        y0 = rng.standard_normal((20, 30))
        a = sd.solve(field, y0, (0.0, 8.0), label=label, engine="batched", rtol=1e-8)
        b = sd.solve(field, y0, (0.0, 8.0), label=label, engine="numpy", rtol=1e-8)
        assert a.engine == "batched"
        np.testing.assert_array_equal(a.nfev, b.nfev)
        np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-10)


def test_batched_engine_refuses_what_it_cannot_run():
    field = sd.GaussianMixture([[0.0, 1.0]], [0.5])
    with pytest.raises(ValueError, match="batched.*EmpiricalScore"):
        sd.solve(field, np.zeros((3, 2)), (0.0, 1.0), engine="batched")
    emp = sd.EmpiricalScore(np.eye(3))
    with pytest.raises(ValueError, match="fused engine"):
        sd.solve(emp, np.zeros((3, 3)), (0.0, 1.0), engine="batched", recentre=True)
    numpy_field = sd.EmpiricalScore(np.eye(3), backend="numpy")
    with pytest.raises(ValueError, match="backend"):
        sd.solve(numpy_field, np.zeros((3, 3)), (0.0, 1.0), engine="batched")


@pytest.mark.parametrize("span", [(-700.0, 800.0), (300.0, 900.0), (-1000.0, -900.0)])
def test_batched_engine_at_extreme_times(span):
    """sigma = e^{-s} overflowing to inf or underflowing to 0 takes the fields' exact limits
    (equal weights; the nearest point) on both engines, silently and without NaN; the two
    differ only by rounding (a few ulps of the O(1) states)."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((200, 30))
    field = sd.EmpiricalScore(X)
    y0 = X[:5] + 0.3 * rng.standard_normal((5, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = sd.solve(field, y0, span, engine="batched")
        b = sd.solve(field, y0, span, engine="numpy")
    assert a.success and b.success and np.all(np.isfinite(a.y))
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kw", [dict(method="rk4", h=0.1), dict(method="etd2m", h=0.1),
                                dict(method="gl-dopri5"), dict(method="dopri5", max_steps=5)])
def test_batched_engine_runs_every_method(kw):
    """Fixed-step, multistep and Lawson methods, and a solve stopped by ``max_steps``: the
    numpy engine's loop, so the same statuses and the same states up to rounding."""
    rng = np.random.default_rng(10)
    X = rng.standard_normal((200, 30))
    field = sd.EmpiricalScore(X)
    y0 = X[:5] + 0.3 * rng.standard_normal((5, 30))
    a = sd.solve(field, y0, (0.0, 12.0), engine="batched", **kw)
    b = sd.solve(field, y0, (0.0, 12.0), engine="numpy", **kw)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-13)
