"""Ambient diffusion (Shah, Kalavasis, Klivans & Daras 2025): the ambient optimum, information leakage, cluster merging."""
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

import scoredyn as sd
from scoredyn.memorization.ambient import (AmbientScore, component_tv, leakage_ambient, leakage_ddpm,
                              leakage_monte_carlo)

COV = np.array([[1.0, 0.3], [0.3, 0.5]])


@pytest.mark.parametrize("m", [1, 2, 5])
def test_leakage_closed_form_against_monte_carlo(m):
    """Lemma 4.2 for a Gaussian x_0: the exact mutual information of m DDPM draws,
    1/2 log det(I + m SNR Sigma), agrees with an unbiased Monte-Carlo estimate within 4 standard
    errors; the lemma's m I(A; x_0) is an upper bound, strictly above it for m > 1."""
    est, se = leakage_monte_carlo(COV, 0.6, m, n=40_000, rng=m)
    exact = leakage_ddpm(COV, 0.6, m)
    assert abs(est - exact) < 4 * se
    lemma = leakage_ddpm(COV, 0.6, m, as_in_lemma=True)
    if m == 1:
        assert lemma == pytest.approx(exact) == pytest.approx(leakage_ambient(COV, 0.6))
    else:
        assert lemma > est + 10 * se


def test_leakage_limits():
    """No noise leaks everything (I -> inf), full noise nothing (I -> 0)."""
    assert leakage_ambient(COV, 1e-6) > 20
    assert leakage_ambient(COV, 1 - 1e-9) < 1e-8
    with pytest.raises(ValueError, match=r"`sigma_n` must lie in \(0, 1\)"):
        leakage_ambient(COV, 1.0)
    with pytest.raises(ValueError, match=r"`m` must be a positive integer; got 0"):
        leakage_ddpm(COV, 0.5, 0)


@pytest.mark.parametrize("cov", [COV, np.ones((2, 2))], ids=["full", "singular"])
@pytest.mark.parametrize("sigma_n", [1e-10, 1e-200])
def test_leakage_at_tiny_noise(cov, sigma_n):
    """Down to sigma_n = 1e-200 (where SNR = 1e400 overflows and the draws' noise is far below
    the signal's last bit) the closed form is the limit 1/2 sum_i log(m SNR lambda_i) to
    rounding, and the Monte-Carlo estimate agrees with it within 4 standard errors.  Before,
    the closed form divided by zero and the estimate failed in a Cholesky factorisation."""
    lam = np.linalg.eigvalsh(cov)
    lam = lam[lam > 1e-12]
    for m in (1, 3):
        exact = leakage_ddpm(cov, sigma_n, m)
        limit = 0.5 * np.sum(np.log(m * lam) - 2 * np.log(sigma_n))
        assert exact == pytest.approx(limit, rel=1e-14, abs=1e-12)
        est, se = leakage_monte_carlo(cov, sigma_n, m, n=20_000, rng=m)
        assert abs(est - exact) < 4 * se


def test_component_tv_and_lemma_4_5_thresholds():
    """Exact TV of identity-covariance components; at Lemma 4.5's noise levels the components are
    2 eps-separated and eps-merged up to the lemma's constants (here a 1e-6 relative excess)."""
    C = 1 / 600
    gap = 2 * norm.ppf((1 + C) / 2)                     # TV at t = 0 is exactly C
    assert component_tv([0.0], [gap], 0.0) == pytest.approx(C, rel=1e-12)
    assert component_tv([0.0], [gap], 1.0) == 0.0
    for eps in (1e-4, 4e-4):
        s_sep = np.sqrt(1 - (2 * eps / C) ** 2)
        s_mer = np.sqrt(1 - (eps / C) ** 2)
        assert component_tv([0.0], [gap], s_sep) > 2 * eps
        assert component_tv([0.0], [gap], s_mer) <= eps * (1 + 1e-5)
    s = np.linspace(0, 1, 11)
    assert np.all(np.diff(component_tv([0.0, 0.0], [3.0, 4.0], s)) < 0)   # merging with noise


def test_ambient_sampling_returns_the_noisy_set():
    """Lemma 4.1: the ambient optimum sampled down to t_n lands on S_{t_n}, not on the clean data."""
    X = np.random.default_rng(1).standard_normal((15, 2))
    amb = AmbientScore(X, 0.3, rng=2)
    vp = sd.VP()
    t_end = brentq(lambda t: vp.sigma(t) - 0.30001, 1e-6, 1.0)
    xT = np.random.default_rng(3).standard_normal((60, 2))
    x = sd.probability_flow(amb, vp, xT, (1.0, t_end), rtol=1e-8)
    # at sigma' = sqrt((0.30001^2 - 0.3^2) / 0.91) ~ 2.6e-3 the samples sit that close to S_tn
    assert np.max(sd.voronoi.nearest(amb.noisy, x)[2]) < 0.02
    assert np.median(sd.voronoi.nearest(X, x)[2]) > 0.1
    with pytest.raises(ValueError, match=r"AmbientScore is defined for sigma > sigma_n = 0.3"):
        amb.score(xT[:1], 0.2, np.sqrt(1 - 0.04))


def test_ambient_score_is_the_score_of_the_diffused_noisy_set():
    """At (sigma, alpha) the ambient score equals grad log of (1/N) sum N(a' y_i, s'^2 I) over S_tn."""
    X = np.random.default_rng(4).standard_normal((8, 3))
    amb = AmbientScore(X, 0.4, rng=5)
    x = np.random.default_rng(6).standard_normal((5, 3))
    sigma = 0.7
    alpha = np.sqrt(1 - sigma**2)
    c = np.sqrt(1 - 0.16)
    s2 = np.sqrt(sigma**2 - 0.16) / c
    a2 = alpha / c
    ref = sd.EmpiricalScore(amb.noisy).score(x, s2, a2)
    np.testing.assert_allclose(amb.score(x, sigma, alpha), ref, rtol=1e-12, atol=1e-12)
