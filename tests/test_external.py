"""CallableField: a trained denoiser wrapped as a field equals the field it imitates.

The callables here are the exact empirical field seen through each parameterisation and
convention, so the wrapped field must reproduce ``EmpiricalScore`` to rounding; the bound
used is the logit error of the change of variables (module docstring of the test helper).
"""
import numpy as np
import pytest

import scoredyn as sd

EPS = np.finfo(float).eps


def _empirical():
    g = np.random.default_rng(0)
    return sd.EmpiricalScore(g.standard_normal((30, 3)), backend="numba")


def _network(E, parameterization, convention):
    """``fn(z, s)``: E's prediction of ``parameterization`` in ``convention``."""
    def fn(z, s):
        a = np.ones_like(s) if convention == "ve" else np.sqrt(1.0 - s * s)
        x0, eps = E.denoise(z, s, a), E.noise(z, s, a)
        return {"x0": x0, "eps": eps, "score": E.score(z, s, a),
                "v": a[:, None] * eps - s[:, None] * x0}[parameterization]
    return fn


def _edm_raw(E, sigma_data):
    """EDM's raw network F for the exact denoiser: D = c_skip z + c_out F(c_in z, c_noise)."""
    def F(u, c_noise):
        s = np.exp(4.0 * c_noise)
        root = np.sqrt(s * s + sigma_data ** 2)
        z = u * root[:, None]
        c_skip = sigma_data ** 2 / (s * s + sigma_data ** 2)
        return (E.denoise(z, s) - c_skip[:, None] * z) / (s * sigma_data / root)[:, None]
    return F


def _bound(E, x, sigma, alpha):
    """|D_wrapped - D| <= 2 max_i |delta l_i| R: the logits ``|x - alpha x_i|^2 / (2 sigma^2)``
    are recomputed after the change of variables (x / alpha, sigma / alpha: a few roundings
    each, relative), so each logit moves by <= 16 eps l_i; the weights by <= 2 max |delta l|
    relatively; R = max |x_i - D|.  Plus the parameterisation's own cancellation, a few eps
    times the size of the terms."""
    X = E.data
    l = ((x[:, None] - alpha * X[None]) ** 2).sum(-1) / (2 * sigma ** 2)
    R = np.sqrt(((X[None] - E.denoise(x, sigma, alpha)[:, None]) ** 2).sum(-1)).max()
    scale = 1 + np.abs(x).max() / alpha + R
    return 2 * 16 * EPS * l.max() * R + 64 * EPS * scale


@pytest.mark.parametrize("convention", ["ve", "vp"])
@pytest.mark.parametrize("parameterization", ["x0", "eps", "score", "v"])
@pytest.mark.parametrize("sigma, alpha", [(0.5, 1.0), (1.5, 1.0), (0.6, 0.8), (0.3, 2.0)])
def test_every_parameterisation_gives_the_field(parameterization, convention, sigma, alpha):
    E = _empirical()
    F = sd.CallableField(_network(E, parameterization, convention), 3,
                         parameterization=parameterization, convention=convention,
                         dtype="float64", batch_size=7)
    x = np.random.default_rng(1).standard_normal((20, 3)) * 2
    tol = _bound(E, x, sigma, alpha)
    np.testing.assert_allclose(F.denoise(x, sigma, alpha), E.denoise(x, sigma, alpha),
                               rtol=0, atol=tol)
    np.testing.assert_allclose(F.score(x, sigma, alpha) * sigma ** 2,
                               E.score(x, sigma, alpha) * sigma ** 2, rtol=0,
                               atol=tol * alpha + 8 * EPS * np.abs(x).max())


def test_edm_preconditioning():
    E = _empirical()
    F = sd.CallableField(_edm_raw(E, 0.5), 3, preconditioning="edm", dtype="float64")
    x = np.random.default_rng(2).standard_normal((10, 3))
    for sigma in (0.05, 0.7, 20.0):
        np.testing.assert_allclose(F.denoise(x, sigma), E.denoise(x, sigma), rtol=0,
                                   atol=_bound(E, x, sigma, 1.0) + 1e-13 * sigma)


def test_runs_in_solve_samplers_and_metrics():
    E = _empirical()
    F = sd.CallableField(_network(E, "eps", "vp"), 3, parameterization="eps", convention="vp",
                         dtype="float64")
    y0 = np.random.default_rng(3).standard_normal((8, 3))
    r = sd.solve(F, y0, (0.0, 3.0), method="rk4", h=0.1)
    r1 = sd.solve(E, y0, (0.0, 3.0), method="rk4", h=0.1, engine="numpy")
    assert r.engine == "numpy" and r.success
    np.testing.assert_allclose(r.y, r1.y, rtol=0, atol=1e-10)
    pf = sd.probability_flow(F, sd.VP(), y0, (1.0, 0.05), method="rk4", h=0.01)
    pf1 = sd.probability_flow(E, sd.VP(), y0, (1.0, 0.05), method="rk4", h=0.01)
    np.testing.assert_allclose(pf, pf1, rtol=0, atol=1e-9)
    m = sd.memorization.memorization_ratio(r.y, E.data, rng=0)
    assert 0 <= m.value <= 1


def _float32_net(z, s):
    return z.astype(np.float32)


@pytest.mark.parametrize("fn, message", [
    (lambda z, s: z[:, :2], r"returned shape \(5, 2\) for a batch of shape \(5, 3\)"),
    (lambda z, s: z.astype(np.float64), r"returned dtype float64 for inputs of dtype float32"),
    (lambda z, s: np.full_like(z, np.nan), r"non-finite values in 5 of 5 rows"),
    (lambda z, s: z.tolist(), r"must return an array of shape \(5, 3\); got list"),
])
def test_a_bad_network_output_is_named(fn, message):
    F = sd.CallableField(fn, 3)
    with pytest.raises(ValueError, match=r"CallableField\(<lambda>\): .*" + message):
        F.denoise(np.zeros((5, 3)), 0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(parameterization="mu"), "`parameterization` must be one of"),
    (dict(convention="subvp"), "`convention` must be one of"),
    (dict(preconditioning="edm", parameterization="eps"), "needs convention='ve' and"),
    (dict(batch_size=0), "`batch_size` must be a positive integer"),
    (dict(framework="tensorflow"), "`framework` must be one of"),
    (dict(dtype="float16"), "`dtype` must be 'float32' or 'float64'"),
    (dict(sigma_data=-1.0), "`sigma_data` must be positive"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sd.CallableField(_float32_net, 3, **kwargs)
    with pytest.raises(ValueError, match="`dim` must be a positive integer"):
        sd.CallableField(_float32_net, 0)


def test_float32_network_and_extreme_sigma():
    """A float32 network (the usual case): exact within float32's range of sigma, a clear
    error outside it (the network cannot be called there); a float64 network takes sigma
    from 1e-300 to 1e300."""
    F = sd.CallableField(_float32_net, 3)                      # x0-prediction: D = z
    x = np.random.default_rng(4).standard_normal((4, 3))
    for sigma in (1e-30, 1.0, 1e30):
        np.testing.assert_array_equal(F.denoise(x, sigma), x.astype(np.float32))
    # the score (D - x) / sigma^2: D - x is float32 rounding (~1e-8)
    res = x.astype(np.float32) - x
    np.testing.assert_allclose(F.score(x, 1e-10), res / 1e-10 / 1e-10, rtol=1e-15, atol=0)
    for sigma in (1e-300, 1e300):
        with pytest.raises(ValueError, match=r"the noise level the network is called with "
                                             r"reaches .* outside the range of its dtype float32"):
            F.denoise(x, sigma)
    F64 = sd.CallableField(lambda z, s: z, 3, dtype="float64")
    for sigma in (1e-300, 1e300):
        np.testing.assert_array_equal(F64.denoise(x, sigma), x)
        np.testing.assert_array_equal(F64.score(x, sigma), np.zeros_like(x))


def test_torch_module():
    torch = pytest.importorskip("torch")
    E = _empirical()
    X = torch.from_numpy(E.data)

    class ExactDenoiser(torch.nn.Module):
        def forward(self, z, s):
            l = -((z[:, None] - X[None]) ** 2).sum(-1) / (2 * s[:, None] ** 2)
            return torch.softmax(l, dim=1) @ X

    F = sd.CallableField(ExactDenoiser(), 3, framework="torch", dtype="float64")
    x = np.random.default_rng(5).standard_normal((6, 3))
    np.testing.assert_allclose(F.denoise(x, 0.7), E.denoise(x, 0.7), rtol=0, atol=1e-12)


def test_mixed_sampling_and_smoothness_take_a_network():
    """A network outside the window and the optimum inside (Wang, Han & Zou 2024, Alg. 2),
    and the smoothness analyses, with a CallableField: with the network equal to the
    optimum (in another parameterisation) every answer equals the optimum's."""
    E = _empirical()
    net = sd.CallableField(_network(E, "v", "vp"), 3, parameterization="v", convention="vp",
                           dtype="float64")
    sched = sd.DDPM()
    x_T = np.random.default_rng(6).standard_normal((16, 3))
    a = sd.ddpm.mixed_sample(E, net, sched, x_T, (100, 300), sampler="ddim")
    b = sd.ddpm.mixed_sample(E, E, sched, x_T, (100, 300), sampler="ddim")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    x = np.random.default_rng(7).standard_normal((4, 3))
    np.testing.assert_allclose(sd.smoothness.jacobian_singular_values(net, sched, x, 500),
                               sd.smoothness.jacobian_singular_values(E, sched, x, 500),
                               rtol=1e-6, atol=1e-9)
