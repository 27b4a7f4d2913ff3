"""DDPM closed forms and mixed sampling (Wang, Han & Zou 2024, "On the Discrepancy and
Connection between Memorization and Generation in Diffusion Models").

* :class:`DDPMOptimum` — the optimal noise prediction eps*(x_t, t) (Wang, Han & Zou 2024,
  eq. 4; TMLR eq. 29) and x-hat*(x_t, t) (eqs. 5-7) in discrete DDPM time:
  the empirical field evaluated at ``sigma_t = sqrt(1 - abar_t)``,
  ``alpha_t = sqrt(abar_t)``.
* :func:`mixed_sample` — Wang, Han & Zou (2024) Algorithm 2 / eq. 15: sample with one field
  inside a window ``i <= t <= j`` of steps and another outside (the paper's
  Algorithm 2 prints ``i < t < j``; eq. 15 and Table 1's "0 0 = standard
  sampler" row fix the inclusive window used here; ``i > j`` is plain sampling).
* :func:`window_sweep` — the Table 1 experiment: the same starts and noise for
  every window, the memorization ratio of each.

With the exact population score of Gaussian-mixture data as the generalising
field, the trend of Table 1 is reproduced (replication falls as the window moves
to noisier steps; windows reaching t = 1 replicate everything), but a late
window such as (5, 10) replicates ~64% rather than ~100%: DDPM's pull towards
x-hat* per step is about beta_t / (1 - abar_t) ~ 1/t, so six steps only halve
the distance, and an exact generalising field does not complete the replication
the way the paper's trained networks do.
"""
import numpy as np

from .._validation import as_count, as_data, as_rng

from ..fields.base import ScoreField
from .metrics import memorization_ratio
from ..dynamics.sampling import ddim_sample, ddpm_sample
from ..dynamics.schedules import DDPM

#: the windows of Wang, Han & Zou (2024) Table 1 (T = 1000); (0, 0) is the standard sampler
TABLE1_WINDOWS = ((0, 0), (5, 10), (50, 100), (100, 200), (200, 300), (500, 600), (700, 800))


class DDPMOptimum:
    """eps* and x-hat* of a closed-form field on a discrete DDPM schedule.

    Parameters
    ----------
    field : ScoreField
        Usually ``EmpiricalScore(training)`` (the optimum of the DDPM loss).
    schedule : DDPM
    """

    def __init__(self, field, schedule):
        if not isinstance(field, ScoreField):
            raise TypeError(f"`field` must be a ScoreField; got {type(field).__name__}.")
        if not isinstance(schedule, DDPM):
            raise TypeError(f"`schedule` must be a DDPM schedule; got {type(schedule).__name__}.")
        self.field, self.schedule = field, schedule

    def _t(self, t):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= self.schedule.T:
            raise ValueError(f"`t` must be an integer step in [1, {self.schedule.T}]; got {t!r}.")
        return int(t)

    def eps(self, x, t, **kw):
        """eps*(x_t, t) = x_t / sqrt(1 - abar_t) - sqrt(abar_t / (1 - abar_t)) sum_i w_i x_i (eq. 4), (Q, d)."""
        t = self._t(t)
        return self.field.noise(x, self.schedule.sigma(t), self.schedule.alpha(t), **kw)

    def x0(self, x, t, **kw):
        """x-hat*(x_t, t) = (x_t - sqrt(1 - abar_t) eps*) / sqrt(abar_t) = sum_i w_i x_i (eqs. 6-7), (Q, d)."""
        t = self._t(t)
        return self.field.denoise(x, self.schedule.sigma(t), self.schedule.alpha(t), **kw)


def _window(window, T):
    try:
        i, j = window
        if any(isinstance(v, bool) or float(v) != int(v) for v in (i, j)):
            raise ValueError
        i, j = int(i), int(j)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"`window` must be a pair of integer steps (i, j); got {window!r}.") from None
    if i < 0 or j < 0:
        raise ValueError(f"`window` must be non-negative steps (i, j); got {(i, j)}.")
    if i <= j and j > T:
        raise ValueError(f"`window` must lie within the schedule's steps [0, {T}]; got {(i, j)}.")
    return i, j


def mixed_sample(inside, outside, schedule, x_T, window, *, sampler="ddpm", rng=None, eta=0.0):
    """Sample with ``inside`` for steps ``i <= t <= j`` and ``outside`` otherwise (Wang, Han & Zou 2024, Alg. 2).

    Parameters
    ----------
    inside, outside : ScoreField
        E.g. the empirical optimum and a generalising field.
    schedule : DDPM
    x_T : (Q, d) array_like
    window : (i, j)
        Non-negative steps; ``i > j`` (or (0, 0)) is an empty window: plain sampling
        with ``outside``.
    sampler : {"ddpm", "ddim"}
    rng : for the DDPM noise (and DDIM with eta > 0)

    Returns
    -------
    (Q, d) ndarray
    """
    if not isinstance(schedule, DDPM):
        raise TypeError(f"`schedule` must be a DDPM schedule; got {type(schedule).__name__}.")
    i, j = _window(window, schedule.T)

    def field_at(t):
        return inside if i <= t <= j else outside
    if sampler == "ddpm":
        return ddpm_sample(field_at, schedule, x_T, rng=rng)
    if sampler == "ddim":
        return ddim_sample(field_at, schedule, x_T, eta=eta, rng=rng)
    raise ValueError(f"`sampler` must be 'ddpm' or 'ddim'; got {sampler!r}.")


def window_sweep(inside, outside, schedule, training, *, n=256, windows=TABLE1_WINDOWS,
                 sampler="ddpm", threshold=1 / 3, rng=None):
    """Memorization ratio of :func:`mixed_sample` for each window (Wang, Han & Zou 2024, Table 1).

    Every window uses the same starts ``x_T ~ N(0, I)`` and the same noise
    (the paper fixes the seed), so differences come from the window alone.

    Returns
    -------
    list of dict
        ``{"window": (i, j), "ratio": MetricResult}`` per window.
    """
    n = as_count(n, "n")
    training, _ = as_data(training, "training")
    seed = as_rng(rng).integers(2**63)
    d = training.shape[1]
    x_T = np.random.default_rng(seed).standard_normal((n, d))
    out = []
    for w in windows:
        x0 = mixed_sample(inside, outside, schedule, x_T, w, sampler=sampler,
                          rng=np.random.default_rng(seed + 1))
        out.append({"window": tuple(w), "ratio": memorization_ratio(
            x0, training, threshold=threshold, rng=np.random.default_rng(seed + 2))})
    return out
