"""The early-stopping theorem (Wu, "Memorization effect of diffusion
models", Theorem 3, after Li et al. 2024, Theorem 4.3), checked numerically.

With the exact empirical score, the reverse dynamics started from the exact
noised empirical distribution p^_T return

* with early stopping at delta > 0: samples of p^_delta = (1/N) sum_k N(alpha_delta x_k,
  sigma_delta^2 I), the Gaussian kernel density estimate at time delta;
* without it (delta -> 0): the training points, uniformly.

:func:`early_stopping_check` pushes exact samples of p^_T through the
probability-flow ODE (in log-time, DOPRI5) down to delta and compares them with
fresh samples of p^_delta by an unbiased MMD^2 with a permutation p-value;
:func:`uniformity_check` tests the hit counts over the training points.
"""
from dataclasses import dataclass

import numpy as np
from scipy.stats import chisquare

from .._validation import as_count, as_data, as_points, as_rng, as_scalar
from ..fields.empirical import EmpiricalScore
from ..dynamics.schedules import Schedule
from ..dynamics.solver import solve
from ..geometry.voronoi import nearest


@dataclass
class TwoSampleResult:
    """Unbiased MMD^2 (Gaussian kernel, median-heuristic bandwidth) and its permutation p-value."""

    mmd2: float
    p_value: float
    bandwidth: float


@dataclass
class UniformityResult:
    """Chi-square test of hit counts over the training points."""

    counts: np.ndarray
    statistic: float
    p_value: float


def mmd_test(a, b, *, n_permutations=200, rng=None):
    """Two-sample test: unbiased MMD^2 between samples ``a`` (n, d) and ``b`` (m, d).

    The p-value is the fraction of label permutations with an MMD^2 at least as
    large (plus one, over permutations plus one).
    """
    a, _ = as_data(a, "a")
    b, _ = as_data(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`a` and `b` must have the same dimension; got {a.shape[1]} and "
                         f"{b.shape[1]}.")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"`a` and `b` need at least 2 samples each (the unbiased MMD^2); got "
                         f"{a.shape[0]} and {b.shape[0]}.")
    n_permutations = as_count(n_permutations, "n_permutations", low=1)
    rng = as_rng(rng)
    pooled = np.vstack([a, b])
    sq = np.sum((pooled[:, None] - pooled[None]) ** 2, axis=-1)
    bw = float(np.sqrt(0.5 * np.median(sq[np.triu_indices_from(sq, 1)])))
    if not (bw > 0 and np.isfinite(bw)):
        raise ValueError(f"the median-heuristic bandwidth of the pooled samples is {bw} (more "
                         f"than half of the pairs coincide, or the samples overflow): the "
                         f"Gaussian-kernel MMD is undefined for `a` and `b`.")
    K = np.exp(-sq / (2 * bw * bw))
    n = a.shape[0]

    def stat(idx):
        x, y = idx[:n], idx[n:]
        kxx = K[np.ix_(x, x)]
        kyy = K[np.ix_(y, y)]
        m = y.size
        return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                - 2 * K[np.ix_(x, y)].mean())

    base = np.arange(pooled.shape[0])
    observed = stat(base)
    exceed = sum(stat(rng.permutation(base)) >= observed for _ in range(n_permutations))
    return TwoSampleResult(float(observed), (exceed + 1) / (n_permutations + 1), bw)


def uniformity_check(samples, data):
    """Chi-square test that the nearest training points of ``samples`` are uniform over ``data``."""
    X, _ = as_data(data)
    samples, _ = as_points(samples, X.shape[1], "samples")
    if samples.shape[0] == 0:
        raise ValueError("`samples` must contain at least one sample.")
    idx = nearest(X, samples)[0]
    counts = np.bincount(idx, minlength=X.shape[0])
    res = chisquare(counts)
    return UniformityResult(counts, float(res.statistic), float(res.pvalue))


def sample_smoothed(data, schedule, t, n, rng=None):
    """n samples of p^_t = (1/N) sum_k N(alpha_t x_k, sigma_t^2 I)."""
    X, _ = as_data(data)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule; got {type(schedule).__name__}.")
    n = as_count(n, "n")
    t = as_scalar(t, "t", low=0.0, low_inclusive=False)
    rng = as_rng(rng)
    k = rng.integers(0, X.shape[0], n)
    return schedule.alpha(t) * X[k] + schedule.sigma(t) * rng.standard_normal((n, X.shape[1]))


def reverse_from_noise(data, schedule, T, delta, n, *, rtol=1e-9, rng=None):
    """Exact samples of p^_T pushed by the exact empirical probability-flow ODE to time delta."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` must be a Schedule; got {type(schedule).__name__}.")
    T = as_scalar(T, "T", low=0.0, low_inclusive=False)
    delta = as_scalar(delta, "delta", low=0.0, low_inclusive=False)
    if delta >= T:
        raise ValueError(f"`delta` must be smaller than `T` ({T}); got {delta}.")
    X, _ = as_data(data)
    xT = sample_smoothed(X, schedule, T, n, rng)
    lam0, lam1 = float(schedule.lam(T)), float(schedule.lam(delta))
    z = solve(EmpiricalScore(X), xT / schedule.alpha(T), (lam0, lam1), rtol=rtol,
              atol=rtol * 1e-2).y
    return z * schedule.alpha(delta)


def early_stopping_check(data, schedule, T, delta, n=400, *, n_permutations=200, rng=None):
    """MMD two-sample test between reverse-ODE samples at ``delta`` and p^_delta itself.

    Returns
    -------
    TwoSampleResult
        A large p-value is what Theorem 3 predicts (same distribution).
    """
    n = as_count(n, "n", low=2)
    rng = as_rng(rng)
    gen = reverse_from_noise(data, schedule, T, delta, n, rng=rng)
    ref = sample_smoothed(data, schedule, delta, n, rng)
    return mmd_test(gen, ref, n_permutations=n_permutations, rng=rng)
