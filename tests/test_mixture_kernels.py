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


@pytest.mark.parametrize("form, sigma", [
    (form, sigma) for form in ("isotropic", "diagonal", "low-rank") for sigma in (1e-4, 0.3, 5.0)
] + [(form, sigma) for form in ("isotropic", "diagonal")
     for sigma in (5e-324, 1e-300, 1e-160, 1e-140, 1e140, 1e160, 1e300, 1.7e308)])
def test_point_mass_limit_is_the_empirical_field(form, sigma):
    """Point masses are the empirical field at every sigma (the kernels' limit when every
    logit leaves the float64 range, and their hypot form where sigma^2 is not normal)."""
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
    (dict(covariances=-0.5), r"`covariances\[0\]` must be positive semi-definite"),
    (dict(covariances=np.nan), r"must be finite"),
    (dict(covariances=np.ones((3, 2)), factors=np.full((3, 2, 1), np.nan)), r"All entries of `factors` must be finite"),
    (dict(covariances=np.ones(3), backend="gpu"), r"`backend` must be one of"),
    (dict(covariances=np.full(3, 1e301)), r"standard deviations .* of `covariances` must not "
                                          r"exceed 1e\+150"),
])
def test_bad_input(kw, message):
    with pytest.raises(ValueError, match=message):
        sd.GaussianMixture(np.zeros((3, 2)), **kw)


def _mpmath_reference(means, var, weights, x, sigma, alpha, want=None):
    """``(alpha D - x, log p_t)`` of a diagonal mixture in 60-digit arithmetic; with
    ``want="score"`` or ``"denoise"``, ``grad log p_t`` or ``D`` in place of the residual."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    k, d = means.shape
    res, logp = np.empty_like(x), np.empty(len(x))
    s2 = mp.mpf(sigma) ** 2
    a = mp.mpf(alpha)
    for q, y in enumerate(x):
        logits, r = [], []
        for c in range(k):
            den = [s2 + a * a * mp.mpf(v) for v in var[c]]
            du = [mp.mpf(y[j]) - a * mp.mpf(means[c, j]) for j in range(d)]
            logits.append(mp.log(weights[c]) - sum(du[j] ** 2 / den[j] for j in range(d)) / 2
                          - sum(mp.log(2 * mp.pi * den[j]) for j in range(d)) / 2)
            if want == "score":
                r.append([-du[j] / den[j] for j in range(d)])
            elif want == "denoise":
                r.append([mp.mpf(means[c, j]) + a * mp.mpf(var[c, j]) * du[j] / den[j]
                          for j in range(d)])
            else:
                r.append([-du[j] * s2 / den[j] for j in range(d)])
        top = max(logits)
        w = [mp.exp(lg - top) for lg in logits]
        tot = sum(w)
        logp[q] = float(top + mp.log(tot))
        res[q] = [float(sum(w[c] * r[c][j] for c in range(k)) / tot) for j in range(d)]
    return res, logp


@pytest.mark.parametrize("sigma", [1e-300, 1e-200, 1e-160, 1e-140, 1e-3, 1.0, 1e140, 1e160,
                                   1e300])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_extreme_sigma_against_mpmath(sigma, alpha):
    """Isotropic and diagonal mixtures, with a zero-variance direction, at sigma from 1e-300
    to 1e300, against 60-digit arithmetic.  Tolerance: each logit within 8 d eps of its
    largest term (the module docstring's bound), so relative ``2 |delta l|`` on the
    responsibilities; the residual within that times its size plus 16 eps of the scale.  The
    logits omit ``-(d/2) log(2 pi sigma^2)``, added afterwards: log p_t is a difference of
    terms of size ``|log p_t| + d |log sigma| + d`` (~4000 at sigma = 1e-300), which sets
    the scale of its rounding."""
    rng = np.random.default_rng(12)
    k, d = 5, 3
    means = rng.standard_normal((k, d))
    var = rng.uniform(0.1, 1.0, (k, d))
    var[1, 2] = 0.0
    w = rng.dirichlet(np.ones(k))
    x = np.concatenate([rng.standard_normal((3, d)), means[1:2] * alpha + 1e-3])
    for gm in (sd.GaussianMixture(means, var, w), sd.GaussianMixture(means, var[:, 0], w)):
        v = gm.variances
        res, logp = _mpmath_reference(means, v, w, x, sigma, alpha)
        got = gm.residual(x, np.full(len(x), sigma), np.full(len(x), alpha))[0]
        ld = gm.log_density(x, sigma, alpha)
        scale = np.abs(x).max() + np.abs(means).max()
        finite = np.isfinite(logp)
        lmax = (np.abs(logp[finite]).max() if finite.any() else 0.0) + d * (abs(np.log(sigma))
                                                                            + 1.0)
        dl = 8 * d * EPS * max(lmax, 1.0)
        np.testing.assert_allclose(got, res, rtol=0, atol=2 * dl * scale + 16 * EPS * scale)
        np.testing.assert_array_equal(np.isfinite(ld), finite)
        np.testing.assert_allclose(ld[finite], logp[finite], rtol=0, atol=dl + 16 * EPS * lmax)


def _mpmath_full_reference(means, covs, weights, x, sigma, alpha, dps=60):
    """``(alpha D - x, grad log p_t, log p_t, responsibilities)`` of a mixture with full
    covariances ``covs`` (K, d, d) in ``dps``-digit arithmetic (``sigma^2`` has no range
    there; a singular covariance at sigma = 1e-300 needs ~700 digits to see sigma^2).

    Each covariance is taken as :class:`GaussianMixture` stores it, ``V diag(max(lam, 0)) V^T``
    from the eigendecomposition of the float64 matrix, formed exactly: positive semi-definite
    for any V.  The float64 matrix itself is not: a singular covariance rounds to one whose
    smallest eigenvalue is ~1e-17 of either sign (it depends on the machine's BLAS), and a
    negative one makes ``det(C)`` negative for sigma^2 below it."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = dps
    k, d = means.shape
    res, score = np.empty_like(x), np.empty_like(x)
    logp, rho = np.empty(len(x)), np.empty((len(x), k))
    s2, a = mp.mpf(sigma) ** 2, mp.mpf(alpha)
    lam, V = np.linalg.eigh(0.5 * (covs + np.swapaxes(covs, 1, 2)))
    lam = np.maximum(lam, 0.0)
    exact = [[[sum(mp.mpf(V[c, i, p]) * mp.mpf(lam[c, p]) * mp.mpf(V[c, j, p]) for p in range(d))
               for j in range(d)] for i in range(d)] for c in range(k)]
    for q, y in enumerate(x):
        logits, g = [], []
        for c in range(k):
            C = mp.matrix([[a * a * exact[c][i][j] + (s2 if i == j else 0)
                            for j in range(d)] for i in range(d)])
            u = mp.matrix([mp.mpf(y[j]) - a * mp.mpf(means[c, j]) for j in range(d)])
            Cu = mp.lu_solve(C, u)
            quad = sum(u[j] * Cu[j] for j in range(d))
            logits.append(mp.log(weights[c]) - quad / 2 - mp.log(mp.det(2 * mp.pi * C)) / 2)
            g.append([-Cu[j] for j in range(d)])
        top = max(logits)
        w = [mp.exp(lg - top) for lg in logits]
        tot = sum(w)
        logp[q] = float(top + mp.log(tot))
        rho[q] = [float(wc / tot) for wc in w]
        score[q] = [float(sum(w[c] * g[c][j] for c in range(k)) / tot) for j in range(d)]
        res[q] = [float(s2 * sum(w[c] * g[c][j] for c in range(k)) / tot) for j in range(d)]
    return res, score, logp, rho


def _full_and_lowrank(rng, k=4, d=3):
    """A full-covariance mixture (one component singular) and a low-rank one (rank 1 plus a
    positive diagonal), each with its covariances as (K, d, d) matrices."""
    means = rng.standard_normal((k, d))
    w = rng.dirichlet(np.ones(k))
    Q = np.linalg.qr(rng.standard_normal((k, d, d)))[0]
    lam = rng.uniform(0.2, 1.0, (k, d))
    lam[1, 0] = 0.0                                      # a direction of zero variance
    full = np.einsum("kij,kj,klj->kil", Q, lam, Q)
    U = rng.standard_normal((k, d, 1))
    v = rng.uniform(0.2, 1.0, (k, d))
    low = np.einsum("kip,kjp->kij", U, U) + np.einsum("ki,ij->kij", v, np.eye(d))
    return ((sd.GaussianMixture(means, full, w), means, full, w),
            (sd.GaussianMixture(means, v, w, factors=U), means, low, w))


@pytest.mark.parametrize("sigma", [1e-300, 1e-200, 1e-160, 1e-140, 1e-3, 1.0, 1e140, 1e160,
                                   1e300])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_full_and_lowrank_at_every_sigma_against_mpmath(sigma, alpha):
    """The full and low-rank forms from sigma = 1e-300 to 1e300 (the stream's ratio forms
    outside 1e-150 < sigma < 1e150, the kernels inside) against 60-digit arithmetic:
    residual, score, log-density and responsibilities, with a singular component.

    Tolerance: the eigen- or Cholesky factorisation carries a relative error of about
    ``d eps cond`` into each quadratic form and log-determinant (``cond <= 5 / 0.2 = 25``
    here: eigenvalues in [0.2, 1], rank-1 terms below ``|U|^2 <~ 10``), so each logit is off
    by at most ``dl = 8 d eps cond`` times its size ``lmax`` (plus ``d |log sigma|`` from the
    normaliser); the responsibilities by ``2 dl`` relative, the residual and the score by
    that times their scale; results in the subnormal range (the score at sigma = 1e160 is
    ~1e-320) carry an absolute rounding of a few of the smallest subnormals per operation
    (``sub``)."""
    rng = np.random.default_rng(21)
    d = 3
    sub = 16 * d * np.nextafter(0.0, 1.0)
    for gm, means, covs, w in _full_and_lowrank(rng, d=d):
        x = np.concatenate([rng.standard_normal((3, d)), alpha * means[2:3] + 1e-3])
        res, score, logp, rho = _mpmath_full_reference(means, covs, w, x, sigma, alpha)
        finite = np.isfinite(logp)
        lmax = (np.abs(logp[finite]).max() if finite.any() else 0.0) + d * (abs(np.log(sigma))
                                                                            + 1.0)
        dl = 8 * d * EPS * 25 * max(lmax, 1.0)
        scale = np.abs(x).max() + np.abs(means).max()
        got = gm.residual(x, np.full(len(x), sigma), np.full(len(x), alpha))[0]
        np.testing.assert_allclose(got, res, rtol=0,
                                   atol=2 * dl * scale + 16 * EPS * scale + sub,
                                   err_msg=gm.covariance_type)
        ss = np.abs(score).max()
        np.testing.assert_allclose(gm.score(x, sigma, alpha), score, rtol=0,
                                   atol=2 * dl * ss + 16 * EPS * ss + sub,
                                   err_msg=gm.covariance_type)
        np.testing.assert_allclose(gm.weights(x, sigma, alpha), rho, rtol=0, atol=4 * dl)
        ld = gm.log_density(x, sigma, alpha)
        np.testing.assert_array_equal(np.isfinite(ld), finite)
        np.testing.assert_allclose(ld[finite], logp[finite], rtol=0, atol=dl + 16 * EPS * lmax)
        assert np.all(np.isfinite(gm.jacobian(x, sigma, alpha)))


def test_full_form_far_and_singular_limits():
    """Where every component's logit overflows — a query far from every component, or
    sigma = 1e-300 with the query off the support of every (singular) component — the
    weight goes to the smallest quadratic form, as 60-digit arithmetic says, with no NaN;
    log p_t is -inf (below float64).  A low-rank factor reaching a direction of zero
    diagonal variance cannot use the Woodbury form at such sigma: a ValueError says so."""
    means = np.array([[0.0, 0.0], [3.0, 0.0], [0.5, 4.0]])
    covs = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.5, 0.0], [0.0, 2.0]],
                     [[0.25, 0.0], [0.0, 0.0]]])
    singular = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]],
                         [[0.5, 0.5], [0.5, 0.5]]])
    w = np.array([0.2, 0.3, 0.5])
    for c, x, sigma in ((covs, np.array([[1e200, 3e199]]), 1.0),
                        (singular, np.array([[0.8, 1.3]]), 1e-300)):
        gm = sd.GaussianMixture(means, c, w)
        res, score, logp, rho = _mpmath_full_reference(means, c, w, x, sigma, 1.0, dps=700)
        np.testing.assert_allclose(gm.weights(x, sigma), rho, rtol=0, atol=1e-15)
        np.testing.assert_allclose(gm.residual(x, np.array([sigma]), np.array([1.0]))[0], res,
                                   rtol=1e-13)
        np.testing.assert_allclose(gm.score(x, sigma), score, rtol=1e-13)
        assert gm.log_density(x, sigma)[0] == -np.inf and logp[0] < -1e300
    gm = sd.GaussianMixture(means, [[1.0, 0.0]] * 3, factors=np.ones((3, 2, 1)))
    with pytest.raises(ValueError, match=r"`sigma` = 1e-300: the low-rank factors of component "
                                         r"0 reach a direction of zero diagonal variance"):
        gm.denoise(np.zeros((1, 2)), 1e-300)


def test_far_queries_take_the_exact_limit():
    """A query so far from every component that each logit overflows (|y| = 1e200 at
    sigma = 1, or sigma = 1e-200 at distance 1): all weight on the nearest component in the
    covariance metric, as 60-digit arithmetic says, and log p_t = -inf (below float64)."""
    means = np.array([[0.0, 0.0], [3.0, 0.0], [0.5, 4.0]])
    var = np.array([[1.0, 1.0], [0.5, 2.0], [0.0, 0.25]])
    zero_somewhere = np.array([[0.0, 1.0], [0.5, 0.0], [0.0, 0.25]])
    for x, sigma, v in ((np.array([[1e200, 3e199]]), 1.0, var),
                        (np.array([[0.8, 1.3]]), 1e-200, zero_somewhere)):
        gm = sd.GaussianMixture(means, v)
        res, logp = _mpmath_reference(means, gm.variances, gm.mixing, x, sigma, 1.0)
        got = gm.residual(x, np.array([sigma]), np.array([1.0]))[0]
        np.testing.assert_allclose(got, res, rtol=1e-14)
        assert gm.log_density(x, sigma)[0] == -np.inf and logp[0] < -1e300
        assert np.all(np.isfinite(gm.denoise(x, sigma)))


def test_fused_engine_takes_the_numpy_engines_steps():
    """A diagonal mixture in the compiled time loop: the steps, rejections and evaluations
    of the numpy engine (which evaluates the field with the same kernels, in another
    association order), states within 1e-12 (a change of step would move them by ~rtol),
    and the diagnostics' sites are the component means."""
    rng = np.random.default_rng(13)
    means = rng.standard_normal((15, 2)) * 2
    gm = sd.GaussianMixture(means, rng.uniform(0.01, 0.2, (15, 2)))
    y0 = rng.standard_normal((30, 2)) * 3
    for method in ("dopri5", "gl-dopri5"):
        res = {e: sd.solve(gm, y0, (-1.0, 8.0), method=method, rtol=1e-6, atol=1e-8,
                           save_at=[2.0], engine=e) for e in ("numpy", "numba")}
        ref, fused = res["numpy"], res["numba"]
        assert fused.engine == "numba" and fused.success and fused.n_rejected.sum() > 0
        for attr in ("n_steps", "n_rejected", "nfev", "status"):
            np.testing.assert_array_equal(getattr(fused, attr), getattr(ref, attr), attr)
        np.testing.assert_allclose(fused.y, ref.y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(fused.ys, ref.ys, rtol=0, atol=1e-12)
        i, dist = sd.voronoi.nearest(means, fused.y)[::2]
        np.testing.assert_array_equal(fused.nearest, i)
        np.testing.assert_allclose(fused.nearest_distance, dist, rtol=1e-12)
    assert sd.solve(gm, y0, (0.0, 2.0)).engine == "numba"          # the automatic choice
    with pytest.raises(ValueError, match=r"\|s\| <= 340"):
        sd.solve(gm, y0, (0.0, 400.0), engine="numba")


@pytest.mark.parametrize("sigma, alpha", [(0.5, 1e-10), (0.5, 1e-300), (2.0, 0.01),
                                          (1e-300, 1.0), (1e-200, 0.5), (1e-140, 1.0)])
def test_score_and_denoise_where_the_residual_loses_them(sigma, alpha):
    """Small alpha: ``(x + res) / alpha`` cancels, so the kernel sums the posterior mean
    itself; sigma below 1e-150 with positive variances: the residual ``sigma^2 score``
    underflows while the score is finite, so the kernel sums the score.  Against 60 digits,
    to the responsibilities' relative bound ``2 |delta l|`` (module docstring) times the
    sizes, plus 16 eps of the scale."""
    rng = np.random.default_rng(14)
    k, d = 4, 3
    means = rng.standard_normal((k, d))
    var = rng.uniform(0.1, 1.0, (k, d))
    w = rng.dirichlet(np.ones(k))
    gm = sd.GaussianMixture(means, var, w)
    x = rng.standard_normal((5, d))
    # the logits' terms: the quadratic forms and the log-determinants
    with np.errstate(under="ignore"):
        denom = sigma * sigma + alpha * alpha * var.min()
    lmax = (np.abs(x).max() + np.abs(means).max()) ** 2 / denom + d * (abs(np.log(sigma)) + 1)
    dl = 8 * d * EPS * lmax
    for want, got in (("score", gm.score(x, sigma, alpha)),
                      ("denoise", gm.denoise(x, sigma, alpha))):
        ref = _mpmath_reference(means, var, w, x, sigma, alpha, want)[0]
        scale = np.abs(ref).max()
        np.testing.assert_allclose(got, ref, rtol=0, atol=(2 * dl + 16 * EPS) * scale,
                                   err_msg=want)
    np.testing.assert_allclose(gm.noise(x, sigma, alpha), -sigma * gm.score(x, sigma, alpha),
                               rtol=1e-15, atol=0)


@pytest.mark.parametrize("form", ["isotropic", "diagonal"])
@pytest.mark.parametrize("sigma, alpha", [(1e-6, 1.0), (0.05, 0.9), (1.0, 1.0), (30.0, 0.3)])
def test_gemm_path_matches_the_dense_reference(monkeypatch, form, sigma, alpha):
    """d > GEMM_MIN_D: the quadratic forms through BLAS.  Small tiles and blocks so that
    several component tiles, query blocks and merged chunks are crossed.  Queries next to
    a component mean at sigma = 1e-6 take the recompute path (the GEMM bound there is far
    above the logit tolerance).  Tolerance: each logit within max(GEMM_LOGIT_TOL, 4x the
    direct bound gamma_{d+3} |l|) (kernels.mixture.mixture_gemm_tile), so the weights within
    2 |delta l| relatively; the accumulations of K non-negative weights times values of size
    ``scale`` add gamma_K scale."""
    from scoredyn._host import mixture_gemm, reduce
    monkeypatch.setattr(mixture_gemm, "GEMM_TILE_N", 64)
    monkeypatch.setattr(reduce, "GEMM_BLOCK_Q", 8)
    calls = []
    gemm = mixture_gemm.mixture_gemm
    monkeypatch.setattr(mixture_gemm, "mixture_gemm", lambda *a: calls.append(1) or gemm(*a))
    rng = np.random.default_rng(15)
    k, d = 150, 40
    means = rng.standard_normal((k, d))
    var = rng.uniform(0.0, 0.3, k if form == "isotropic" else (k, d))
    w = rng.dirichlet(np.ones(k))
    gm = sd.GaussianMixture(means, var, w)
    ref = DenseMixture(means, var, w)
    x = np.concatenate([rng.standard_normal((12, d)),
                        alpha * means[:6] + 1e-7 * rng.standard_normal((6, d))])
    s, a = np.full(len(x), sigma), np.full(len(x), alpha)
    logits = ref._components(x, s, a)[0]
    dl = max(1e-12, 4 * (d + 3) * EPS * np.abs(logits[np.isfinite(logits)]).max()) * 2
    scale = np.abs(x).max() + np.abs(means).max()
    acc = k * EPS * scale
    np.testing.assert_allclose(gm.denoise(x, sigma, alpha), ref.denoise(x, sigma, alpha),
                               rtol=0, atol=(2 * dl * scale + acc) / alpha)
    np.testing.assert_allclose(gm.residual(x, s, a)[0], ref.residual(x, s, a)[0], rtol=0,
                               atol=2 * dl * scale + acc + 4 * EPS * scale)
    lref = ref.log_density(x, sigma, alpha)
    np.testing.assert_allclose(gm.log_density(x, sigma, alpha), lref, rtol=0,
                               atol=dl + 16 * EPS * np.abs(lref).max())
    assert len(calls) == 3                                   # every call took the GEMM path


@pytest.mark.parametrize("d, sigma", [(40, 1.0), (40, 0.05), (300, 3.0)])
def test_gemm_tile_rows_with_and_without_recomputation(d, sigma):
    """kernels.mixture.mixture_gemm_tile finishes a row in branch-free loops when no entry
    needs recomputation, and otherwise neglects, keeps or recomputes entry by entry.  The
    same tile through both (tau = inf: every row the first way; tau = 0: every entry whose
    bound exceeds 4x its direct bound recomputed) against the weights from direct
    differences.  Each path's logits are within delta_k = max(E_k, 4 rho z_k) / (2 sigma^2)
    plus the rounding of ``base - z / (2 sigma^2)`` (a few ulp of its terms), so each
    normalised weight within 2 delta relatively of the exact one; the sums add nt eps."""
    from scoredyn._host.reduce import _gamma, neglect_margin
    from scoredyn.kernels.mixture import diag_gemm_tables, mixture_gemm_tile
    rng = np.random.default_rng(17)
    k, q, alpha = 90, 24, 0.8
    means = rng.standard_normal((k, d))
    var = rng.uniform(0.05, 1.0, (k, d))
    logpi = np.log(rng.dirichlet(np.ones(k)))
    Y = np.concatenate([rng.standard_normal((q - 4, d)),
                        alpha * means[:4] + 1e-3 * rng.standard_normal((4, d))])
    inv = 1.0 / sigma ** 2
    F, B, MF, AVG = (np.empty((k, d)) for _ in range(4))
    c, fmax, base = np.empty(k), np.empty(k), np.empty(k)
    diag_gemm_tables(means, var, logpi, alpha, inv, F, B, MF, AVG, c, fmax, base)
    np.testing.assert_allclose(F, 1 / (1 + alpha ** 2 * var * inv), rtol=2 * EPS)
    np.testing.assert_allclose(AVG, alpha * var * inv * F, rtol=4 * EPS)
    np.testing.assert_allclose(base, logpi - 0.5 * np.log1p(alpha ** 2 * var * inv).sum(1),
                               rtol=d * EPS, atol=d * EPS)
    z = np.einsum("qkj,kj->qk", (Y[:, None, :] - alpha * means[None]) ** 2, F)
    exact = base - 0.5 * z * inv
    p_exact = np.exp(exact - exact.max(axis=1, keepdims=True))
    p_exact /= p_exact.sum(axis=1, keepdims=True)
    A0, S0 = (Y * Y) @ F.T, Y @ B.T
    gamma, rho = _gamma(d + 4), _gamma(d + 3)
    E = gamma * (np.sqrt(A0) + np.sqrt(c)) ** 2
    delta = (np.maximum(E, 4 * rho * z) * inv / 2
             + 4 * EPS * (np.abs(base) + z * inv / 2)).max()
    for tau in (np.inf, 0.0):
        A, S = A0.copy(), S0.copy()
        m, l, fac = np.full(q, -np.inf), np.zeros(q), np.empty(q)
        mixture_gemm_tile(A, S, Y, (Y * Y).sum(1), alpha * means, F, fmax, c, base, inv,
                          gamma, rho, tau, neglect_margin(k), m, l, fac)
        np.testing.assert_allclose(A / l[:, None], p_exact, rtol=2.5 * delta + k * EPS,
                                   atol=np.exp(-neglect_margin(k)), err_msg=f"tau={tau}")
        np.testing.assert_allclose(m + np.log(l), np.log(np.exp(exact).sum(1)), rtol=0,
                                   atol=delta + k * EPS)


@pytest.mark.parametrize("sigma, alpha", [(1e-4, 1.0), (0.05, 0.9), (1.0, 1.0), (30.0, 0.3)])
def test_lowrank_gemm_path_matches_the_dense_reference(monkeypatch, sigma, alpha):
    """Low-rank plus diagonal components above GEMM_MIN_D: the Woodbury sums as matrix
    products (kernels.mixture.mixture_lowrank_gemm_tile), across component tiles, query
    blocks and merged chunks, with queries next to a mean at small sigma (recomputed).
    Tolerance as for the diagonal GEMM path: each logit within max(GEMM_LOGIT_TOL, 4x its
    direct bound), the accumulations within gamma_K of their scale."""
    from scoredyn._host import mixture_gemm, reduce
    monkeypatch.setattr(mixture_gemm, "GEMM_TILE_N", 32)           # 8 components per tile
    monkeypatch.setattr(reduce, "GEMM_BLOCK_Q", 8)
    calls = []
    gemm = mixture_gemm.mixture_lowrank_gemm
    monkeypatch.setattr(mixture_gemm, "mixture_lowrank_gemm",
                        lambda *a: calls.append(1) or gemm(*a))
    rng = np.random.default_rng(16)
    k, d, r = 40, 30, 4
    means = rng.standard_normal((k, d))
    U = 0.4 * rng.standard_normal((k, d, r))
    cov = rng.uniform(0.05, 0.3, (k, d))
    w = rng.dirichlet(np.ones(k))
    gm = sd.GaussianMixture(means, cov, w, factors=U)
    ref = DenseMixture(means, U @ np.swapaxes(U, 1, 2) + np.stack([np.diag(c) for c in cov]), w)
    x = np.concatenate([rng.standard_normal((12, d)),
                        alpha * means[:6] + 1e-6 * rng.standard_normal((6, d))])
    s, a = np.full(len(x), sigma), np.full(len(x), alpha)
    logits = ref._components(x, s, a)[0]
    dl = max(1e-12, 4 * (d + 4) * EPS * np.abs(logits[np.isfinite(logits)]).max()) * 2
    scale = np.abs(x).max() + np.abs(means).max()
    acc = k * (r + 1) * EPS * scale
    np.testing.assert_allclose(gm.residual(x, s, a)[0], ref.residual(x, s, a)[0], rtol=0,
                               atol=2 * dl * scale + acc + 4 * EPS * scale)
    lref = ref.log_density(x, sigma, alpha)
    np.testing.assert_allclose(gm.log_density(x, sigma, alpha), lref, rtol=0,
                               atol=dl + 16 * EPS * np.abs(lref).max())
    assert len(calls) == 2


@pytest.mark.parametrize("form", ["isotropic", "diagonal"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("R, sigma, vscale", [(1e9, 1e-3, 0.0), (1e17, 1.0, 0.0),
                                              (1e17, 1.0, 1e-3), (1e40, 1e12, 0.0),
                                              (1e40, 1e12, 1e20)])
def test_far_queries_against_mpmath(form, backend, R, sigma, vscale):
    """Queries far from every mean (|y| / |mu| up to 1e40), components of (nearly) equal
    variance: direct differences cannot resolve the responsibilities there (a point-mass
    mixture returned the mean of its means, the numpy backend's (x + res) / alpha cancelled
    to O(1e23)); GaussianMixture._far_reduce forms the logits relative to component 0 from
    the differences of means and variances.  Reference: 2 log10 R + 40 digits.  Tolerance:
    each relative logit within half of B_k = 8 gamma_{d+4} (sum_j y_j^2 |1/c_kj - 1/c_0j|
    + 2 |y_j| |m_kj/c_kj - m_0j/c_0j| + m_kj^2/c_kj + m_0j^2/c_0j) (the three coefficients
    each within a few ulp, then the sums).  Far out that bound is itself large (y is only
    known to eps |y|), but the gap g between the two largest exact logits is often larger
    still: the responsibilities are within min(4 max B, 2 e^-(g - max B)) of the exact ones
    (plus K eps; asserted below 1e-6) and D within that times the largest per-component
    mean."""
    import mpmath
    rng = np.random.default_rng(int(np.log10(R)))
    k, d, alpha = 7, 5, 0.9
    means = rng.standard_normal((k, d))
    var = vscale * (1 + 1e-3 * rng.uniform(size=k if form == "isotropic" else (k, d)))
    w = rng.dirichlet(np.ones(k))
    gm = sd.GaussianMixture(means, var, w, backend=backend)
    V = np.broadcast_to(var[:, None] if form == "isotropic" else var, (k, d))
    u = rng.standard_normal(d)
    y = R * u / np.linalg.norm(u)
    dps = int(2 * np.log10(R)) + 40
    with mpmath.workdps(dps):
        mp = mpmath.mpf
        s2 = mp(sigma) ** 2
        logit, Dk = [], []
        for j in range(k):
            c = [s2 + mp(alpha) ** 2 * mp(V[j, i]) for i in range(d)]
            logit.append(mpmath.log(mp(w[j])) - sum(mpmath.log(ci) for ci in c) / 2
                         - sum((mp(y[i]) - mp(alpha) * mp(means[j, i])) ** 2 / c[i]
                               for i in range(d)) / 2)
            Dk.append([mp(means[j, i]) * s2 / c[i] + mp(alpha) * mp(V[j, i]) * mp(y[i]) / c[i]
                       for i in range(d)])
        top = max(logit)
        e = [mpmath.exp(v - top) for v in logit]
        tot = mpmath.fsum(e)
        rho = np.array([float(v / tot) for v in e])
        D = np.array([float(mpmath.fsum(e[j] * Dk[j][i] for j in range(k)) / tot)
                      for i in range(d)])
        lse = float(top + mpmath.log(tot) - d * mpmath.log(2 * mpmath.pi * s2) / 2)
    c = sigma ** 2 + alpha ** 2 * V
    m = alpha * means
    B = 8 * (d + 4) * EPS * ((y * y) @ np.abs(1 / c - 1 / c[0]).T
                             + 2 * np.abs(y) @ np.abs(m / c - m[0] / c[0]).T
                             + np.sum(m * m / c, axis=1) + np.sum(m[0] ** 2 / c[0]))
    delta = np.max(B)
    lf = np.sort(np.array([float(v - top) for v in logit]))
    gap = lf[-1] - lf[-2]
    tol = 4 * delta                                # each weight within 2 delta relatively
    if gap > 2 * delta:                            # decided: the rest weighs e^-(gap - delta)
        tol = min(tol, 2 * np.exp(-(gap - delta)))
    tol += k * EPS
    assert tol < 1e-6                              # the check is not vacuous
    scale = np.max(np.abs(means)) + np.max(alpha * V / c) * R
    np.testing.assert_allclose(gm.weights(y[None], sigma, alpha)[0], rho, rtol=0, atol=tol)
    np.testing.assert_allclose(gm.denoise(y[None], sigma, alpha)[0], D, rtol=0,
                               atol=tol * scale)
    res = gm.residual(y[None], np.array([sigma]), np.array([alpha]))[0][0]
    np.testing.assert_allclose(res, alpha * D - y, rtol=4 * EPS, atol=tol * scale)
    np.testing.assert_allclose(gm.log_density(y[None], sigma, alpha)[0], lse,
                               rtol=4 * (d + 3) * EPS)
