"""The trained score network: gradients, learning, the field interface, checkpoints, errors."""
import numpy as np
import pytest

import scoredyn as sd
from scoredyn.fields.network import ScoreMLP


@pytest.mark.parametrize("activation", ["relu", "silu"])
@pytest.mark.parametrize("c", [0.0, 0.05])
def test_gradients_match_central_differences(activation, c):
    """Hand-written backpropagation against central differences (h = 1e-6: error ~1e-9 relative)."""
    net = ScoreMLP(2, width=12, depth=2, n_fourier=3, activation=activation, rng=0)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((6, 2))
    sig = np.exp(rng.uniform(-2, 1, 6))
    eps = rng.standard_normal((6, 2))
    _, grads = net.loss_and_grad(x0, sig, eps, c)
    h = 1e-6
    for k, p in enumerate(net.params):
        flat = p.ravel()
        for idx in range(0, flat.size, max(1, flat.size // 9)):
            old = flat[idx]
            flat[idx] = old + h
            lp, _ = net.loss_and_grad(x0, sig, eps, c)
            flat[idx] = old - h
            lm, _ = net.loss_and_grad(x0, sig, eps, c)
            flat[idx] = old
            fd = (lp - lm) / (2 * h)
            an = grads[k].ravel()[idx]
            # ReLU kinks are measure-zero for random inputs; the tolerance is FD truncation + rounding
            assert abs(fd - an) <= 1e-6 * max(1e-3, abs(fd) + abs(an)), (k, idx, fd, an)


def test_learns_the_exact_score_of_one_point():
    """N = 1: the DSM target is deterministic, n* = sigma s = (x_1 - x)/sigma; a seeded 20 000-step
    run gets within 10% on average over sigma in [0.2, 2] (untrained: ~100%)."""
    x1 = np.array([[0.5, -0.3]])
    rng = np.random.default_rng(2)
    sig = np.exp(rng.uniform(np.log(0.2), np.log(2.0), 400))
    x = x1 + sig[:, None] * rng.standard_normal((400, 2))
    exact = (x1 - x) / sig[:, None]
    net = ScoreMLP(2, width=64, depth=2, n_fourier=4, rng=0)

    def rel_err():
        return (np.linalg.norm(net.predict(x, sig) - exact, axis=1).mean()
                / np.linalg.norm(exact, axis=1).mean())
    before = rel_err()
    log = net.fit(x1, steps=20_000, batch=256, lr=1e-3, sigma_min=0.2, sigma_max=2.0, rng=1)
    assert before > 0.5 and rel_err() < 0.1
    assert log.loss[-1] < 0.1 * log.loss[0]
    np.testing.assert_allclose(net.score(x, sig), net.predict(x, sig) / sig[:, None])


def test_field_interface_and_samplers():
    """score = n / sigma, noise = -n, denoise = x + sigma n (VE); VP through z = x / alpha."""
    net = ScoreMLP(3, width=16, depth=2, rng=3)
    x = np.random.default_rng(4).standard_normal((5, 3))
    n = net.predict(x, np.full(5, 0.4))
    np.testing.assert_allclose(net.score(x, 0.4), n / 0.4, rtol=1e-14)
    np.testing.assert_allclose(net.noise(x, 0.4), -n, rtol=1e-14)
    np.testing.assert_allclose(net.denoise(x, 0.4), x + 0.4 * n, rtol=1e-14)
    a = 0.8
    np.testing.assert_allclose(net.score(x, 0.6, a), net.score(x / a, 0.6 / a) / a, rtol=1e-13)
    r = sd.solve(net, x, (0.0, 3.0), method="rk4", h=0.1)
    assert r.success and np.all(np.isfinite(r.y))
    assert np.all(np.isfinite(sd.ddim_sample(net, sd.DDPM(T=20), x)))


def test_checkpoint_roundtrip_and_reproducibility(tmp_path):
    data = np.random.RandomState(1).randn(20, 2)
    a = ScoreMLP(2, width=32, depth=2, rng=5)
    b = ScoreMLP(2, width=32, depth=2, rng=5)
    a.fit(data, steps=200, rng=6)
    b.fit(data, steps=200, rng=6)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    a.save(tmp_path / "net.npz")
    c = ScoreMLP.load(tmp_path / "net.npz")
    x = np.random.default_rng(7).standard_normal((4, 2))
    np.testing.assert_array_equal(c.score(x, 0.3), a.score(x, 0.3))
    assert repr(c) == repr(a)


@pytest.mark.parametrize("kwargs,match", [
    (dict(width=0), r"`width` must be a positive integer; got 0"),
    (dict(depth=1.5), r"`depth` must be a positive integer; got 1.5"),
    (dict(activation="tanh"), r"`activation` must be one of \('relu', 'silu'\); got 'tanh'"),
    (dict(fourier_scale=-1.0), r"`fourier_scale` must be positive"),
])
def test_bad_architecture(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScoreMLP(2, **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0), r"`steps` must be a positive integer; got 0"),
    (dict(lr=0.0), r"`lr` must be positive; got 0.0"),
    (dict(c=-1.0), r"`c` must be >= 0.0; got -1.0"),
    (dict(sigma_min=1.0, sigma_max=0.5), r"`sigma_max` must be > 1.0; got 0.5"),
])
def test_bad_training_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScoreMLP(2, width=8, rng=0).fit(np.zeros((3, 2)), **kwargs)
    with pytest.raises(ValueError, match=r"`data` has dimension 3 but the network has dimension 2"):
        ScoreMLP(2, width=8, rng=0).fit(np.zeros((3, 3)))
