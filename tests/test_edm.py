"""EDM's sampler (Karras et al. 2022, Algorithm 2) on the one-Gaussian problem, where the
probability-flow ODE has a closed form."""
import numpy as np
import pytest

import scoredyn as sd

MU = np.array([0.7, -1.2])


class OneGaussian(sd.ScoreField):
    """Exact field of data N(MU, I): D = (alpha x + sigma^2 MU) / (alpha^2 + sigma^2)."""

    dim = 2

    def residual(self, x, sigma, alpha, label=None):
        D = (alpha[:, None] * x + (sigma ** 2)[:, None] * MU) / (alpha ** 2 + sigma ** 2)[:, None]
        return alpha[:, None] * D - x, None


def _exact(x_T, sigma_T, sigma):
    """The flow of N(MU, I) from sigma_T to sigma: x = MU + (x_T - MU) sqrt((1 + sigma^2) /
    (1 + sigma_T^2))."""
    return MU + (x_T - MU) * np.sqrt((1 + sigma ** 2) / (1 + sigma_T ** 2))


def test_heun_is_second_order():
    x_T = np.random.default_rng(0).standard_normal((50, 2)) * 80.0
    errors = []
    for n in (16, 32, 64):
        sig = sd.EDM().steps(n)
        x = sd.edm_sample(OneGaussian(), x_T, sigmas=sig)
        errors.append(np.abs(x - _exact(x_T, sig[0], 0.0)).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    # second order: each halving of the step divides the error by ~4 (rate within 0.25 of 2)
    assert np.all(np.abs(rates - 2.0) < 0.25), (errors, rates)


def test_churn_samples_the_data_distribution():
    """With S_churn > 0 the sampler is a stochastic solver of the same marginals: from
    sigma_max N(0, I) it draws N(MU, I); mean and variance within 5 standard errors (plus
    the discretisation error measured without churn)."""
    q = 20_000
    rng = np.random.default_rng(1)
    x_T = 80.0 * rng.standard_normal((q, 2))
    x = sd.edm_sample(OneGaussian(), x_T, steps=64, S_churn=40, S_tmin=0.05, S_tmax=50,
                      S_noise=1.0, rng=2)
    assert np.all(np.abs(x.mean(0) - MU) < 5 * np.sqrt(1 / q) + 1e-3)
    assert np.all(np.abs(x.var(0) - 1.0) < 5 * np.sqrt(2 / q) + 1e-3)
    again = sd.edm_sample(OneGaussian(), x_T, steps=64, S_churn=40, S_tmin=0.05, S_tmax=50,
                          rng=2)
    np.testing.assert_array_equal(x, again)                         # rng= reproduces


def test_agrees_with_solve_in_the_limit():
    """S_churn = 0 and solve integrate the same ODE (in sigma and in s = -log sigma): both
    converge to the closed form at sigma_min."""
    x_T = np.random.default_rng(3).standard_normal((20, 2)) * 10.0
    a, a2 = (sd.edm_sample(OneGaussian(), x_T, sigmas=sd.EDM(sigma_max=10.0).steps(n))
             for n in (256, 512))
    b = sd.solve(OneGaussian(), x_T, (-np.log(10.0), -np.log(0.002)), rtol=1e-10, atol=1e-12).y
    assert np.abs(b - _exact(x_T, 10.0, 0.002)).max() < 1e-8
    # second order: the error at n steps is ~ 4/3 |x_n - x_2n| (Richardson); allow 2x that
    exact = _exact(x_T, 10.0, 0.0)
    assert np.abs(a - exact).max() <= 2 * np.abs(a - a2).max()
    assert np.abs(a2 - exact).max() < np.abs(a - exact).max() / 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(sigmas=[1.0, 2.0]), "strictly decreasing"),
    (dict(sigmas=[1.0, 0.0]), "positive"),
    (dict(S_churn=-1.0), "`S_churn` must be >= 0"),
    (dict(S_tmin=2.0, S_tmax=1.0), "`S_tmax` must be >= S_tmin"),
    (dict(steps=1), "`n` must be"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sd.edm_sample(OneGaussian(), np.zeros((2, 2)), **kwargs)
