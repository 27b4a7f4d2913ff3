"""Per-element math shared by the CPU and the CUDA kernels.

Each function here is plain Python on scalars (float64 bookkeeping of the
online softmax, the Voronoi margins, the regularization factors and the step
controller).  It is compiled twice: below with ``njit(inline="always")`` for
the CPU kernels, and in :mod:`scoredyn.kernels.cuda_device` with
``cuda.jit(device=True, inline="always")`` for the GPU kernels, so that both
targets apply the same formulas, limits and rounding order.

Developers: these are inlined into their callers, and numba's on-disk cache is
keyed on each kernel's own source file — after editing this file, delete the
``*.nbi``/``*.nbc`` files under ``kernels/__pycache__``.
"""
import math

from numba import njit

from .config import FASTMATH_STRICT


def softmax_exponent(dist, dmin, inv):
    """Exponent ``-(dist - dmin) * inv <= 0`` of a relative softmax weight.

    ``dist == dmin`` gives exactly 0 even when ``inv`` is infinite (sigma below
    ~1e-154), so exact ties split evenly at every sigma; ``inv == 0`` (sigma
    above ~1e154) gives 0 for every finite distance.
    """
    delta = dist - dmin
    return 0.0 if delta <= 0.0 else -delta * inv


def top2_insert(v, j, i1, d1, i2, d2):
    """Insert site ``j`` at squared distance ``v`` into the two-nearest list.

    Strict comparisons: on ties the earlier (lower) index stays first.

    Returns
    -------
    i1, d1, i2, d2
    """
    if v < d2:
        if v < d1:
            return j, v, i1, d1
        return i1, d1, j, v
    return i1, d1, i2, d2


def bisector_margins(num, nrm, ri2):
    """Signed distance to a bisector and the distance gap, from ``(y - m).Delta``.

    Parameters
    ----------
    num : float
        ``(y - m) . Delta`` with ``Delta = x_l - x_i`` and ``m`` their midpoint.
    nrm : float
        ``|Delta|^2`` (> 0).
    ri2 : float
        ``|y - x_i|^2``.

    Returns
    -------
    h : float
        ``-num / |Delta|``: distance to the bisector, > 0 on ``x_i``'s side.
    g : float
        ``|y - x_l| - |y - x_i| = -2 num / (|y - x_l| + |y - x_i|)``
        (``|y - x_l|^2 = |y - x_i|^2 - 2 num``), without cancellation.
    """
    h = -num / math.sqrt(nrm)
    rl = math.sqrt(max(ri2 - 2.0 * num, 0.0))
    den = rl + math.sqrt(ri2)
    g = 0.0 if den == 0.0 else -2.0 * num / den
    return h, g


def tikhonov_shrink(c, e2s):
    """Tikhonov shrink factor ``r = sigma^2 / (sigma^2 + c) = 1 / (1 + c e^{2s})``."""
    return 1.0 / (1.0 + c * e2s)


def empirical_bayes_exponent(lsum, dmin, inv, log_tau):
    """``log r`` of Empirical Bayes: ``min(0, logsumexp_i(l_i) - log tau)``.

    ``logsumexp_i(l_i) = -dmin * inv + log(lsum)`` (``dmin = 0``: no shift, so
    ``0 * inf`` never occurs).
    """
    lse = math.log(lsum)
    if dmin > 0.0:
        lse -= dmin * inv
    return min(0.0, lse - log_tau)


def error_ratio(err, a, b, rtol, atol):
    """``err / (atol + rtol max(|a|, |b|))``: one component of the RMS error norm."""
    return err / (atol + rtol * max(abs(a), abs(b)))


# PI step-size controller (Hairer-Wanner, order 5): factor 0.9 en^-0.17 errold^0.04 in
# [0.2, 5] after an accepted step, 0.9 en^-0.2 (at least 0.2) after a rejected one.  Written
# in logs so that each target forms the powers with its own (CPU: vectorised) log and exp.
_LOG_SAFETY = math.log(0.9)
_LOG_FAC_MIN = math.log(0.2)
_LOG_FAC_MAX = math.log(5.0)
_LOG_EN_FLOOR = math.log(1e-10)
#: log of the previous-error norm at the first step (errold = 1e-4)
LOG_ERROLD_START = math.log(1e-4)


def accept_step_exponent(log_en, log_errold):
    """log of the step factor after an accepted step, ``0.9 en^-0.17 errold^0.04`` in [0.2, 5].

    Parameters
    ----------
    log_en : float
        log of the RMS error norm of the step (``en <= 1``; ``en`` is floored at 1e-10).
    log_errold : float
        log of the previous accepted step's norm (``LOG_ERROLD_START`` at the start).
    """
    x = _LOG_SAFETY - 0.17 * max(log_en, _LOG_EN_FLOOR) + 0.04 * log_errold
    return min(_LOG_FAC_MAX, max(_LOG_FAC_MIN, x))


def next_log_errold(log_en):
    """``log max(en, 1e-4)``: the ``log_errold`` of the next accepted step."""
    return max(log_en, LOG_ERROLD_START)


def reject_step_exponent(log_en):
    """log of the step factor after a rejected step (``en > 1``): ``0.9 en^-0.2``, at least 0.2."""
    return max(_LOG_FAC_MIN, _LOG_SAFETY - 0.2 * log_en)


def dense_weight(th, p0, p1, p2, p3):
    """``th (p0 + th (p1 + th (p2 + th p3)))``: a stage's weight in the dense output."""
    return th * (p0 + th * (p1 + th * (p2 + th * p3)))


#: a step at or below STEP_RESOLUTION max(1, |s|) cannot advance s (s + h == s to within a
#: few ulps): the adaptive loops end such a step with STATUS_STEP_UNDERFLOW, and solve()
#: refuses such a fixed step
STEP_RESOLUTION = 1e-14

#: largest step of an adaptive generalized Lawson method: e^{c_j h} stays far from overflow
LAWSON_MAX_STEP = 64.0


def lawson_growth(c, n, h, growth):
    """``growth[j] = e^{c_j h}`` for ``j < n``: the generalized Lawson factors of a step.

    The caller keeps ``h <= GeneralizedLawson.MAX_STEP`` so that they stay finite.
    """
    for j in range(n):
        growth[j] = math.exp(c[j] * h)


def row_weights(a, n, e_fixed, c_row, h, lawson, growth, w):
    """Weights ``w[:n]`` of one row of a step, ``e u + sum_{j<n} w_j G_j``; returns ``e``.

    Classical and exponential RK (``lawson`` false): ``w_j = h a_j``, ``e = e_fixed``.
    Generalized Lawson, with ``G_0 = N_n`` and ``G_j = N_j - N_n`` (``j >= 1``):
    ``e = e^{-c_row h}``, ``w_0 = 1 - e``, ``w_j = h a_j e^{-(c_row - c_j) h}``
    (see ``scoredyn.dynamics.integrators.GeneralizedLawson``).

    Parameters
    ----------
    a : (>= n,) float64
        The row (stage ``a_i.``, ``b``, ``b_err`` or dense ``b(theta)``).
    n : int
        Number of entries used.
    e_fixed : float
        The coefficient of ``u`` when not ``lawson``.
    c_row : float
        The row's node (``c_i``, 1 or ``theta``).
    growth : (>= n,) float64
        ``e^{c_j h}`` from :func:`lawson_growth` (read only if ``lawson``).
    w : (>= n,) float64, out
    """
    if not lawson:
        for j in range(n):
            w[j] = h * a[j]
        return e_fixed
    e = math.exp(-c_row * h)
    w[0] = 1.0 - e
    for j in range(1, n):
        w[j] = h * a[j] * e * growth[j]
    return e


def _cpu(fn):
    return njit(fastmath=FASTMATH_STRICT, inline="always")(fn)


softmax_exponent_cpu = _cpu(softmax_exponent)
top2_insert_cpu = _cpu(top2_insert)
bisector_margins_cpu = _cpu(bisector_margins)
tikhonov_shrink_cpu = _cpu(tikhonov_shrink)
empirical_bayes_exponent_cpu = _cpu(empirical_bayes_exponent)
error_ratio_cpu = _cpu(error_ratio)
accept_step_exponent_cpu = _cpu(accept_step_exponent)
next_log_errold_cpu = _cpu(next_log_errold)
reject_step_exponent_cpu = _cpu(reject_step_exponent)
dense_weight_cpu = _cpu(dense_weight)
lawson_growth_cpu = _cpu(lawson_growth)
row_weights_cpu = _cpu(row_weights)
