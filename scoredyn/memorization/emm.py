"""Effective model memorization (Gu et al., TMLR 2025, Definition 2.1).

``EMM_zeta = max{N : E[R_mem(D, M, T)] >= 1 - zeta, |D| = N}``; under their
Hypothesis 2.2 (the ratio falls with N) it is estimated from ratios measured at
several data-set sizes as the size where the curve crosses ``1 - zeta``
(their Figure 2: "the intersections of dashed line (90%) and curves").
"""
from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, as_scalar
from .metrics import memorization_ratio


@dataclass
class EMMResult:
    """EMM estimate and the curve behind it.

    Attributes
    ----------
    emm : float
        Interpolated crossing (linear in log N between the bracketing sizes);
        the largest size if the curve never drops below ``1 - zeta`` (then a
        lower bound: ``bound = "lower"``); the smallest size if the curve starts below
        (then an upper bound, ``bound = "upper"``: the EMM lies below the sizes measured).
    sizes, ratios : ndarray
    zeta : float
    bound : str
        "crossing", "lower" or "upper".
    """

    emm: float
    sizes: np.ndarray
    ratios: np.ndarray
    zeta: float
    bound: str


def effective_memorization(sizes, ratios, zeta=0.1):
    """EMM from memorization ratios measured at increasing data-set sizes.

    Parameters
    ----------
    sizes : (m,) array_like
        Strictly increasing data-set sizes.
    ratios : (m,) array_like
        Memorization ratios in [0, 1] at those sizes.
    zeta : float in (0, 1)

    Returns
    -------
    EMMResult
    """
    sizes = np.asarray(sizes, dtype=float)
    ratios = np.asarray(ratios, dtype=float)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.shape != ratios.shape:
        raise ValueError(f"`sizes` and `ratios` must be 1-D of equal, non-zero length; got "
                         f"{sizes.shape} and {ratios.shape}.")
    if np.any(np.diff(sizes) <= 0) or sizes[0] <= 0:
        raise ValueError("`sizes` must be positive and strictly increasing.")
    if np.any((ratios < 0) | (ratios > 1)) or not np.all(np.isfinite(ratios)):
        raise ValueError("`ratios` must lie in [0, 1].")
    zeta = as_scalar(zeta, "zeta", low=0.0, low_inclusive=False)
    if zeta >= 1:
        raise ValueError(f"`zeta` must lie in (0, 1); got {zeta}.")
    level = 1.0 - zeta
    above = ratios >= level
    if not above[0]:
        return EMMResult(float(sizes[0]), sizes, ratios, zeta, "upper")
    below = np.flatnonzero(~above)
    if below.size == 0:
        return EMMResult(float(sizes[-1]), sizes, ratios, zeta, "lower")
    k = below[0]
    r0, r1 = ratios[k - 1], ratios[k]
    f = (r0 - level) / (r0 - r1)
    emm = float(np.exp(np.log(sizes[k - 1]) + f * (np.log(sizes[k]) - np.log(sizes[k - 1]))))
    return EMMResult(emm, sizes, ratios, zeta, "crossing")


def memorization_curve(data, sizes, make_field, sample, *, zeta=0.1, threshold=1 / 3, rng=None):
    """Run a sampler on nested subsets of ``data`` and estimate the EMM.

    Parameters
    ----------
    data : (N, d) array_like
        Shuffled once with ``rng``; the subset of size n is its first n rows
        (nested, as the definition's expectation over D is taken along one chain).
    sizes : increasing ints <= N
    make_field : callable (subset) -> ScoreField
        E.g. ``lambda D: EmpiricalScore(D, regularization=Tikhonov(c))``.
    sample : callable (field, rng) -> (n_samples, d) samples
    zeta, threshold : EMM level and the ratio test's threshold.

    Returns
    -------
    EMMResult (with ``ratios`` the measured memorization ratios)
    """
    rng = as_rng(rng)
    data = np.asarray(data, dtype=float)
    sizes = [int(s) for s in sizes]
    if max(sizes) > data.shape[0] or min(sizes) < 2:
        raise ValueError(f"`sizes` must lie in [2, {data.shape[0]}]; got {sizes}.")
    shuffled = data[rng.permutation(data.shape[0])]
    ratios = []
    for n in sizes:
        subset = shuffled[:n]
        samples = sample(make_field(subset), rng)
        ratios.append(memorization_ratio(samples, subset, threshold=threshold, n_bootstrap=0).value)
    return effective_memorization(sizes, ratios, zeta)
