"""Bad input gets a clear error naming the parameter and the rule."""
import numpy as np
import pytest

import scoredyn as sd

X = np.zeros((4, 2))
X[1, 0] = X[2, 1] = 1.0


@pytest.mark.parametrize("data,exc,match", [
    (np.zeros(3), ValueError, r"`data` must be a 2-D array of shape \(N, d\); got shape \(3,\)"),
    (np.zeros((0, 2)), ValueError, r"`data` must contain at least one point"),
    (np.zeros((3, 0)), ValueError, r"`data` must have dimension d >= 1"),
    (np.array([[0.0, np.nan]]), ValueError, r"All entries of `data` must be finite"),
    (np.array([[0.0, np.inf]]), ValueError, r"All entries of `data` must be finite"),
    (np.array([["a", "b"]]), TypeError, r"`data` must be a real numeric array"),
    (np.zeros((2, 2), complex), TypeError, r"`data` must be a real numeric array"),
])
def test_bad_data(data, exc, match):
    with pytest.raises(exc, match=match):
        sd.EmpiricalScore(data)


@pytest.mark.parametrize("name", ["denoise", "score", "noise", "log_density", "weights",
                                  "jacobian", "nearest", "log_normalizer"])
def test_bad_queries_and_levels(name):
    f = getattr(sd.EmpiricalScore(X), name)
    with pytest.raises(ValueError, match=r"`x` must be a 2-D array of shape \(Q, d\); got shape \(2,\)"):
        f(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"`x` has dimension 3 but the data have dimension 2"):
        f(np.zeros((1, 3)), 1.0)
    with pytest.raises(ValueError, match=r"All entries of `x` must be finite"):
        f(np.array([[np.nan, 0.0]]), 1.0)
    with pytest.raises(ValueError, match=r"`sigma` must be positive; got -0.1"):
        f(np.zeros((1, 2)), -0.1)
    with pytest.raises(ValueError, match=r"`sigma` must be positive; got 0.0"):
        f(np.zeros((1, 2)), 0.0)
    with pytest.raises(ValueError, match=r"`sigma` must be finite; got inf"):
        f(np.zeros((1, 2)), np.inf)
    with pytest.raises(ValueError, match=r"`sigma` must be finite; got nan"):
        f(np.zeros((1, 2)), np.nan)
    with pytest.raises(ValueError, match=r"`sigma` must be a scalar or an array of shape \(1,\)"):
        f(np.zeros((1, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"`alpha` must be positive; got 0.0"):
        f(np.zeros((1, 2)), 1.0, 0.0)


def test_bad_regularization():
    with pytest.raises(ValueError, match=r"`c` must be >= 0.0; got -1.0"):
        sd.Tikhonov(-1.0)
    with pytest.raises(ValueError, match=r"`c` must be finite; got inf"):
        sd.Tikhonov(np.inf)
    with pytest.raises(ValueError, match=r"`tau` must be positive; got 0.0"):
        sd.EmpiricalBayes(0.0)
    with pytest.raises(TypeError, match=r"`tau` must be a real number; got str"):
        sd.EmpiricalBayes("1")
    with pytest.raises(TypeError, match=r"`regularization` must be None, Tikhonov\(c\) or EmpiricalBayes"):
        sd.EmpiricalScore(X, regularization=0.1)
    with pytest.raises(ValueError, match=r"`log_density` is defined only for regularization=None"):
        sd.EmpiricalScore(X, regularization=sd.Tikhonov(0.1)).log_density(X, 1.0)


def test_bad_labels():
    with pytest.raises(ValueError, match=r"`labels` must have shape \(4,\), one per data point; got shape \(3,\)"):
        sd.EmpiricalScore(X, labels=[0, 1, 1])
    f = sd.EmpiricalScore(X, labels=[0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"`label` 7 is not the label of any data point; labels are \[0, 1\]"):
        f.denoise(X, 1.0, label=7)
    with pytest.raises(ValueError, match=r"`label` was given but the field has no `labels`"):
        sd.EmpiricalScore(X).denoise(X, 1.0, label=0)


def test_bad_method():
    with pytest.raises(ValueError, match=r"`method` must be one of 'auto', 'direct', 'gemm'; got 'blas'"):
        sd.EmpiricalScore(X, method="blas")


def test_bad_mixture():
    mu = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"`covariances\[1\]` must be positive semi-definite; its smallest eigenvalue is -1"):
        sd.GaussianMixture(mu, np.array([np.eye(2), -np.eye(2)]))
    with pytest.raises(ValueError, match=r"`covariances\[0\]` must be symmetric"):
        sd.GaussianMixture(mu, np.array([[[1.0, 0.5], [0.0, 1.0]], np.eye(2)]))
    with pytest.raises(ValueError, match=r"`covariances\[0\]` must be positive semi-definite"):
        sd.GaussianMixture(mu, np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match=r"`covariances` must have shape \(2,\), \(2, 2\) or \(2, 2, 2\)"):
        sd.GaussianMixture(mu, np.ones(3))
    with pytest.raises(ValueError, match=r"`weights` must be finite and non-negative"):
        sd.GaussianMixture(mu, np.ones(2), [1.5, -0.5])
    with pytest.raises(ValueError, match=r"`weights` must sum to 1; got 0.8"):
        sd.GaussianMixture(mu, np.ones(2), [0.4, 0.4])
    with pytest.raises(ValueError, match=r"`weights` must have shape \(2,\)"):
        sd.GaussianMixture(mu, np.ones(2), [1.0])
    with pytest.raises(ValueError, match=r"`means` must contain at least one point"):
        sd.GaussianMixture(np.zeros((0, 2)), np.ones(0))
    gm = sd.GaussianMixture(mu, np.ones(2))
    with pytest.raises(ValueError, match=r"`n` must be a non-negative integer; got -1"):
        gm.sample(-1)
    with pytest.raises(ValueError, match=r"`x` has dimension 1 but the data have dimension 2"):
        gm.score(np.zeros((1, 1)), 1.0)
