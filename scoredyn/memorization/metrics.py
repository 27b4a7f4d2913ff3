"""Memorization metrics of the four measurement papers, exact and streaming.

Every metric compares generated samples with the training set through their
exact nearest training points (:func:`nearest_training_points`: streaming
kernels, O((Q + N) d + Q k) memory, so 10^4 samples against 5*10^4 training
points in d = 3072 need no Q x N matrix) and returns a :class:`MetricResult`
with a percentile-bootstrap confidence interval over the generated samples.

Conventions (so that numbers from the different papers can be compared):

* Distances are Euclidean in the units of the arrays passed.  Images must be
  given on one scale for both sets (e.g. pixels in [-1, 1] as in EDM/DDPM
  code, or [0, 1]); the papers' thresholds refer to their own scaling.
* ``normalize=True`` divides distances by ``sqrt(d)`` (the per-dimension RMS
  distance, Carlini et al.'s "normalized l2").
* The ratio tests (:func:`memorization_ratio`, :func:`carlini_memorization`)
  are invariant to both choices; :func:`knn_distance` and
  :func:`fraction_within` are not.
"""
import numbers
from dataclasses import dataclass, field

import numpy as np

from .._host.knn import k_nearest
from .._host.reduce import PreparedData
from .._validation import as_data, as_points, as_rng, as_scalar, length_scale


@dataclass
class MetricResult:
    """A memorization metric over Q generated samples.

    Attributes
    ----------
    name : str
    value : float
        The metric (a fraction in [0, 1], or a mean distance).
    ci_low, ci_high : float
        Percentile-bootstrap confidence interval at ``level`` (NaN if
        ``n_bootstrap = 0``).
    level : float
    per_sample : (Q,) ndarray
        The per-sample quantity averaged into ``value`` (0/1 indicators or distances).
    n_bootstrap : int
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    level: float
    per_sample: np.ndarray = field(repr=False)
    n_bootstrap: int = 0


#: resampled indices held at once by :func:`bootstrap_ci` (2^21: 16 MiB, plus the gathered values)
BOOTSTRAP_ENTRIES = 2 ** 21


def bootstrap_ci(values, *, n_bootstrap=1000, level=0.95, rng=None):
    """Percentile-bootstrap interval of the mean of ``values`` (resampling with replacement).

    Parameters
    ----------
    values : (Q,) array_like
    n_bootstrap : int, >= 0
    level : float in (0, 1)
    rng : seed or numpy.random.Generator

    Returns
    -------
    (low, high) : floats (NaN, NaN when ``n_bootstrap == 0``)
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError(f"`values` must be a finite 1-D array; got shape {values.shape}"
                         f"{'' if np.all(np.isfinite(values)) else ' with non-finite entries'}.")
    n_bootstrap = _count(n_bootstrap, "n_bootstrap", low=0)
    level = as_scalar(level, "level", low=0.0, low_inclusive=False)
    if level >= 1.0:
        raise ValueError(f"`level` must lie in (0, 1); got {level}.")
    if values.size == 0:
        raise ValueError("`values` must contain at least one value (an empty sample has no "
                         "mean to bound).")
    if n_bootstrap == 0:
        return float("nan"), float("nan")
    rng = as_rng(rng)
    means = np.empty(n_bootstrap)
    # bounded memory: as many resamples at a time as fit BOOTSTRAP_ENTRIES indices (at least one)
    rows = max(1, BOOTSTRAP_ENTRIES // values.size)
    for b in range(0, n_bootstrap, rows):
        m = min(rows, n_bootstrap - b)
        idx = rng.integers(0, values.size, (m, values.size))
        means[b:b + m] = values[idx].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def nearest_training_points(generated, training, k=2, *, method="auto"):
    """Exact k nearest training points of every generated sample.

    Parameters
    ----------
    generated : (Q, d) array_like
    training : (N, d) array_like or scoredyn.distributed.ShardedData
        A sharded training set is searched on its Dask cluster, shard by shard
        (the same answer, bit for bit); every metric below accepts one.
    k : int, 1 <= k <= N
    method : {"auto", "direct", "gemm"}

    Returns
    -------
    index : (Q, k) int64
    distance : (Q, k) float64
        Ascending Euclidean distances; ties keep the lower training index first.
    """
    return _nearest(generated, training, _count(k, "k", low=1), method,
                    "`k` must be at most the number of training points ({N}); got {k}.")


def _nearest(generated, training, k, method, too_many):
    """:func:`nearest_training_points` for a checked count ``k``; ``too_many`` is the message
    (``{N}``: training points, ``{k}``) when k > N, in the caller's own terms."""
    from ..distributed.sharded import ShardedData
    sharded = isinstance(training, ShardedData)
    X = training if sharded else as_data(training, "training")[0]
    Y, _ = as_points(generated, X.shape[1], "generated")
    if Y.shape[0] == 0:
        raise ValueError("`generated` must contain at least one sample.")
    if k > X.shape[0]:
        raise ValueError(too_many.format(N=X.shape[0], k=k))
    if sharded:
        return training.k_nearest(Y, k)
    c = length_scale(X, Y)       # a power of two beyond the ordinary range: exact
    if c != 1.0:
        index, distance = k_nearest(PreparedData(X * c), Y * c, k, method)
        return index, distance / c
    return k_nearest(PreparedData(X), Y, k, method)


def memorization_ratio(generated, training, *, threshold=1 / 3, n_bootstrap=1000, level=0.95,
                       rng=None, method="auto"):
    """Yoon et al.'s ratio test, as used by Gu et al. (TMLR 2025, eq. 62).

    A sample is memorized if ``|x - NN1| / |x - NN2| < threshold`` (1/3 by
    default), ``NN_j`` its j-th nearest training point.  Needs N >= 2.
    """
    threshold = _fraction(threshold, "threshold")
    _, dist = _nearest(generated, training, 2, method,
                       "The ratio test needs at least 2 training points (it divides by the "
                       "distance to the second nearest); `training` has {N}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = dist[:, 0] / dist[:, 1]
    # both distances 0 (a sample on duplicated training points): memorized
    memorized = np.where(dist[:, 1] == 0, 1.0, (ratio < threshold).astype(float))
    return _result("memorization_ratio", memorized, n_bootstrap, level, rng)


def carlini_memorization(generated, training, *, n=50, alpha=0.5, delta=0.12, n_bootstrap=1000,
                         level=0.95, rng=None, method="auto"):
    """Carlini et al.'s criterion as given in Wang, Han & Zou 2024, "On the Discrepancy and Connection between Memorization and Generation in Diffusion Models", Appendix A (eqs. 16-17).

    ``l(x, x*) = l2(x, x*) / (alpha * mean_{z in S_n(x)} l2(x, z))`` with
    ``S_n(x)`` the n training points closest to x and ``l2`` the normalized
    Euclidean distance; x is memorized if ``min_{x*} l(x, x*) = l(x, NN1) <= delta``.
    Defaults n = 50, alpha = 0.5, delta = 0.12.  The normalization by sqrt(d)
    cancels in the ratio.
    """
    n = _count(n, "n", low=1)
    alpha = as_scalar(alpha, "alpha", low=0.0, low_inclusive=False)
    delta = as_scalar(delta, "delta", low=0.0, low_inclusive=False)
    _, dist = _nearest(generated, training, n, method,
                       "`n` (the neighbourhood S_n) must be at most the number of training "
                       "points ({N}); got {k}.")
    scale = alpha * dist.mean(axis=1)
    memorized = np.where(scale == 0, 1.0, (dist[:, 0] <= delta * scale).astype(float))
    return _result("carlini_memorization", memorized, n_bootstrap, level, rng)


def knn_distance(generated, training, *, normalize=False, n_bootstrap=1000, level=0.95, rng=None,
                 method="auto"):
    """Mean distance to the nearest training point (Gu et al., TMLR 2025, eq. 63)."""
    _, dist = nearest_training_points(generated, training, 1, method=method)
    d1 = dist[:, 0] / (np.sqrt(np.shape(training)[1]) if normalize else 1.0)
    return _result("knn_distance", d1, n_bootstrap, level, rng)


def fraction_within(generated, training, tol, *, normalize=False, n_bootstrap=1000, level=0.95,
                    rng=None, method="auto"):
    """Fraction of samples closer than ``tol`` to a training point.

    The memorization paper (Baptista et al.) counts a sample as memorized
    within ``tol = 1e-2``.
    """
    tol = as_scalar(tol, "tol", low=0.0, low_inclusive=False)
    _, dist = nearest_training_points(generated, training, 1, method=method)
    d1 = dist[:, 0] / (np.sqrt(np.shape(training)[1]) if normalize else 1.0)
    return _result("fraction_within", (d1 < tol).astype(float), n_bootstrap, level, rng)


def _result(name, per_sample, n_bootstrap, level, rng):
    low, high = bootstrap_ci(per_sample, n_bootstrap=n_bootstrap, level=level, rng=rng)
    return MetricResult(name, float(per_sample.mean()), low, high, float(level), per_sample,
                        int(n_bootstrap))


def _count(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < low:
        rule = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"`{name}` must be {rule}; got {value!r}.")
    return int(value)


def _fraction(value, name):
    v = as_scalar(value, name, low=0.0, low_inclusive=False)
    if v > 1.0:
        raise ValueError(f"`{name}` must lie in (0, 1]; got {v}.")
    return v
