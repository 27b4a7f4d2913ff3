"""Smoothness analyses of Wang, Han & Zou (2024) against their closed forms."""
import numpy as np
import pytest

import scoredyn as sd
from scoredyn.fields.network import ScoreMLP
from scoredyn.memorization.smoothness import (interpolation_loss, jacobian_singular_values, noise_jacobian,
                                 noised_pair, pseudo_difference_quotient)

DD = sd.DDPM()


def test_pdq_of_the_optimum_tends_to_its_closed_form():
    """Wang, Han & Zou (2024) App. E: as lambda -> 1 the optimum's quotient is 1 / sqrt(1 - abar_t) (x-hat* is
    locally constant near x_t at small t)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8))
    f = sd.EmpiricalScore(X)
    for t in (10, 50):
        q = pseudo_difference_quotient(f, DD, X[0], X[1], t, [0.999, 0.9999], rng=1)
        np.testing.assert_allclose(q, 1 / np.sqrt(1 - DD.abar[t]), rtol=1e-6)


def test_interpolation_loss_of_the_optimum_ends_at_the_endpoints():
    """l*(0) ~ 0 and l*(1) ~ 0 at small t (x-hat* returns x_0 and y_0), l* > 0 in between."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 6))
    f = sd.EmpiricalScore(X)
    l = interpolation_loss(f, DD, X[3], X[7], 10, [0.0, 0.5, 1.0], rng=3)
    assert l[0] < 1e-8 and l[2] < 1e-8 and l[1] > 0.1


def test_noise_jacobian_exact_vs_differences_and_rank_one_structure():
    """d eps*/dx from the exact Jacobian equals central differences; on the bisector of two points
    it is I/sigma plus a rank-one term: one singular value differs from 1/sigma, the rest equal it."""
    X = np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    f = sd.EmpiricalScore(X)
    t = 30
    s, a = float(DD.sigma(t)), float(DD.alpha(t))
    x = np.array([[0.0, 0.3, -0.2], [0.2, 0.1, 0.0]])
    J = noise_jacobian(f, DD, x, t)
    h = 1e-6
    fd = np.empty_like(J)
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd[:, :, k] = (f.noise(x + e, s, a) - f.noise(x - e, s, a)) / (2 * h)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-4)
    sv = jacobian_singular_values(f, DD, x[:1], t)[0]
    assert sv[0] > 10 / s                       # the dominant direction x_1 - x_0
    np.testing.assert_allclose(sv[1:], 1 / s, rtol=1e-12)


def test_trained_field_uses_finite_differences():
    net = ScoreMLP(3, width=8, depth=1, rng=0)
    x = np.random.default_rng(4).standard_normal((2, 3))
    J = noise_jacobian(net, DD, x, 100)
    s, a = float(DD.sigma(100)), float(DD.alpha(100))
    e = np.zeros(3)
    e[1] = 1e-4
    col = (net.noise(x + e, s, a) - net.noise(x - e, s, a)) / 2e-4
    np.testing.assert_allclose(J[:, :, 1], col, rtol=1e-5, atol=1e-8)


def test_bad_input():
    f = sd.EmpiricalScore(np.eye(3))
    with pytest.raises(ValueError, match=r"`t` must be an integer step in \[1, 1000\]; got 0"):
        pseudo_difference_quotient(f, DD, np.zeros(3), np.ones(3), 0, [0.5])
    with pytest.raises(ValueError, match=r"`lambdas` must be a 1-D array in \[0, 1\)"):
        pseudo_difference_quotient(f, DD, np.zeros(3), np.ones(3), 5, [1.0])
    with pytest.raises(TypeError, match=r"`schedule` must be a DDPM schedule"):
        interpolation_loss(f, sd.VP(), np.zeros(3), np.ones(3), 5, [0.5])
    a, b = noised_pair(DD, np.zeros(3), np.ones(3), 5, rng=0)
    np.testing.assert_allclose(b - a, DD.alpha(5) * np.ones(3))
