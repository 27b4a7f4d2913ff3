"""The streaming mixture (kernel and numpy stream) against the dense reference, its
properties, the four covariance forms, scikit-learn interop and bad input.

Tolerances: both sides compute the same logits with different association orders, each
logit to within a few ulp of its terms (``|delta l| <= 8 d eps max(|l|, 1)``); the
responsibilities then move by ``<= 2 |delta l|`` relatively, the residual by
``2 |delta l| max_k |r_k|`` plus its own rounding, and the log-density by ``|delta l|``.
"""
import numpy as np
import pytest

import scoredyn as sd

from .naive_mixture import DenseMixture

EPS = np.finfo(float).eps
FORMS = ["isotropic", "diagonal", "low-rank", "full"]


def make(form, rng, k=6, d=4, backend=None, dtype=np.float64):
    means = (rng.standard_normal((k, d)) * 2).astype(dtype)
    w = rng.dirichlet(np.ones(k))
    kw = {}
    if form == "isotropic":
        cov = rng.uniform(0.1, 1.0, k)
        full = cov[:, None, None] * np.eye(d)
    elif form == "diagonal":
        cov = rng.uniform(0.0, 1.0, (k, d))
        cov[0, 1] = 0.0                                        # a zero-variance direction
        full = np.stack([np.diag(c) for c in cov])
    elif form == "low-rank":
        U = rng.standard_normal((k, d, 2))
        cov = rng.uniform(0.05, 0.5, (k, d))
        full = U @ np.swapaxes(U, 1, 2) + np.stack([np.diag(c) for c in cov])
        kw["factors"] = U
    else:
        A = rng.standard_normal((k, d, d))
        cov = full = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(d)
    gm = sd.GaussianMixture(means, cov, w, backend=backend, **kw)
    return gm, DenseMixture(means.astype(float), full, w)


def _tol(ref, x, sigma, alpha):
    """The logit bound of the module docstring, and the residual's."""
    logits = ref._components(x, np.full(len(x), sigma), np.full(len(x), alpha))[0]
    dl = 8 * x.shape[1] * EPS * max(np.abs(logits[np.isfinite(logits)]).max(), 1.0)
    r = np.abs(x).max() + alpha * np.abs(ref.means).max()
    return dl, 2 * dl * r + 16 * EPS * r


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("sigma, alpha", [(0.3, 1.0), (2.0, 0.6), (1e-3, 0.99), (1e-120, 1.0),
                                          (1e120, 0.5)])
def test_matches_the_dense_reference(form, backend, sigma, alpha):
    rng = np.random.default_rng(0)
    gm, ref = make(form, rng, backend=backend)
    x = rng.standard_normal((9, 4)) * 2
    dl, dr = _tol(ref, x, sigma, alpha)
    np.testing.assert_allclose(gm.residual(x, np.full(9, sigma), np.full(9, alpha))[0],
                               ref.residual(x, np.full(9, sigma), np.full(9, alpha))[0],
                               rtol=0, atol=dr)
    np.testing.assert_allclose(gm.log_density(x, sigma, alpha), ref.log_density(x, sigma, alpha),
                               rtol=0, atol=dl + 16 * EPS * np.abs(ref.log_density(x, sigma, alpha)).max())
    np.testing.assert_allclose(gm.weights(x, sigma, alpha), ref.weights(x, sigma, alpha),
                               rtol=0, atol=2 * dl + 4 * EPS)
    assert np.all(np.isfinite(gm.denoise(x, sigma, alpha)))


@pytest.mark.parametrize("form", FORMS)
def test_per_query_times(form):
    """Each query at its own (sigma, alpha), as in an ODE stage (the kernel forms the
    log-determinants itself past a few distinct pairs)."""
    rng = np.random.default_rng(1)
    gm, ref = make(form, rng)
    x = rng.standard_normal((40, 4))
    sigma = np.exp(rng.uniform(-3, 1, 40))
    alpha = rng.uniform(0.5, 1.0, 40)
    a, b = gm.residual(x, sigma, alpha)[0], ref.residual(x, sigma, alpha)[0]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)


@pytest.mark.parametrize("form", FORMS)
def test_properties(form):
    rng = np.random.default_rng(2)
    gm, _ = make(form, rng)
    x = rng.standard_normal((6, 4))
    # responsibilities sum to 1
    np.testing.assert_allclose(gm.weights(x, 0.4).sum(axis=1), 1.0, rtol=0, atol=8 * EPS * 6)
    # score = grad log_density (central differences: truncation ~1e-10, rounding ~eps/h)
    h = 1e-5
    fd = np.stack([(gm.log_density(x + h * e, 0.7, 0.8) - gm.log_density(x - h * e, 0.7, 0.8))
                   / (2 * h) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(gm.score(x, 0.7, 0.8), fd, atol=1e-8)
    # permutation of the components changes nothing
    perm = rng.permutation(gm.n_components)
    kw = {"factors": gm.factors[perm]} if gm.factors is not None else {}
    cov = (gm.variances[perm] if gm.covariance_type != "full"
           else np.einsum("kij,kj,klj->kil", gm.eigenvectors, gm.eigenvalues, gm.eigenvectors)[perm])
    if gm.covariance_type == "isotropic":
        cov = cov[:, 0]
    gp = sd.GaussianMixture(gm.means[perm], cov, gm.mixing[perm], **kw)
    np.testing.assert_allclose(gp.denoise(x, 0.4), gm.denoise(x, 0.4), rtol=0, atol=1e-13)
    np.testing.assert_allclose(gp.weights(x, 0.4), gm.weights(x, 0.4)[:, perm], rtol=0, atol=1e-14)


def test_rigid_motion_equivariance():
    """Rotating and translating data and queries rotates and translates D (isotropic and
    full forms stay in their form under a rotation)."""
    rng = np.random.default_rng(3)
    gm, _ = make("full", rng)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    b = rng.standard_normal(4)
    S = np.einsum("kij,kj,klj->kil", gm.eigenvectors, gm.eigenvalues, gm.eigenvectors)
    moved = sd.GaussianMixture(gm.means @ Q.T + b, Q @ S @ Q.T, gm.mixing)
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(moved.denoise(x @ Q.T + b, 0.5), gm.denoise(x, 0.5) @ Q.T + b,
                               rtol=0, atol=1e-12)
    iso, _ = make("isotropic", rng)
    moved = sd.GaussianMixture(iso.means @ Q.T + b, iso.variances[:, 0], iso.mixing)
    np.testing.assert_allclose(moved.denoise(x @ Q.T + b, 0.5), iso.denoise(x, 0.5) @ Q.T + b,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", ["isotropic", "diagonal", "low-rank"])
@pytest.mark.parametrize("sigma", [1e-4, 0.3, 5.0])
def test_point_mass_limit_is_the_empirical_field(form, sigma):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((7, 3))
    kw = {"factors": np.zeros((7, 3, 1))} if form == "low-rank" else {}
    cov = np.zeros(7) if form == "isotropic" else np.zeros((7, 3))
    gm = sd.GaussianMixture(X, cov, **kw)
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(gm.denoise(x, sigma), sd.EmpiricalScore(X).denoise(x, sigma),
                               rtol=0, atol=1e-13)


def test_float32_means_keep_float32_results():
    rng = np.random.default_rng(5)
    gm, ref = make("diagonal", rng, dtype=np.float32)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    out = gm.denoise(x, 0.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.denoise(x.astype(float), 0.5), rtol=1e-6, atol=1e-6)


def test_mixture_trajectories_do_not_collapse():
    """Under the mixture's score the ODE ends spread over the components (distances to the
    data stay bounded below); the empirical field of the same points collapses onto them."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 2)) * 3
    gm = sd.GaussianMixture(X, np.full(20, 0.25))
    y0 = rng.standard_normal((200, 2)) * 4
    span = (-np.log(4.0), 12.0)
    mix = sd.solve(gm, y0, span, method="dopri5", rtol=1e-8, atol=1e-10)
    emp = sd.solve(sd.EmpiricalScore(X), y0, span, method="dopri5", rtol=1e-8, atol=1e-10)
    d_mix = sd.voronoi.nearest(X, mix.y)[2]
    d_emp = sd.voronoi.nearest(X, emp.y)[2]
    assert mix.success and emp.success
    assert np.median(d_mix) > 0.1 and np.max(d_emp) < 1e-4


@pytest.mark.parametrize("kind", ["spherical", "diag", "full", "tied"])
def test_from_sklearn(kind):
    mixture = pytest.importorskip("sklearn.mixture")
    rng = np.random.default_rng(7)
    data = np.concatenate([rng.standard_normal((150, 3)) + 3, rng.standard_normal((150, 3)) - 3])
    model = mixture.GaussianMixture(2, covariance_type=kind, random_state=0).fit(data)
    gm = sd.GaussianMixture.from_sklearn(model)
    x = rng.standard_normal((6, 3))
    # sklearn's score_samples is log p_0: our log_density at sigma -> 0 (here 1e-9, alpha 1)
    np.testing.assert_allclose(gm.log_density(x, 1e-9), model.score_samples(x), rtol=1e-9,
                               atol=1e-9)
    with pytest.raises(ValueError, match="must be a fitted sklearn.mixture.GaussianMixture"):
        sd.GaussianMixture.from_sklearn(mixture.GaussianMixture(2))


@pytest.mark.parametrize("kw, message", [
    (dict(covariances=np.ones((3, 3, 3, 1))), r"`covariances` must have shape"),
    (dict(covariances=np.ones((3, 2)), factors=np.ones((3, 2, 3))), r"rank r = 3 larger than"),
    (dict(covariances=np.ones((3, 2)), factors=np.ones((3, 3, 1))), r"`factors` must have shape \(3, 2, r\)"),
    (dict(covariances=np.ones((3, 2, 2)), factors=np.ones((3, 2, 1))), r"`covariances` is the diagonal part"),
    (dict(covariances=-np.ones((3, 2))), r"`covariances\[0\]` must be positive semi-definite"),
    (dict(covariances=np.full(3, np.inf)), r"must be finite"),
    (dict(covariances=np.ones((3, 2)), factors=np.full((3, 2, 1), np.nan)), r"All entries of `factors` must be finite"),
    (dict(covariances=np.ones(3), backend="cuda"), r"`backend` must be None, 'auto', 'numba'"),
])
def test_bad_input(kw, message):
    with pytest.raises(ValueError, match=message):
        sd.GaussianMixture(np.zeros((3, 2)), **kw)
