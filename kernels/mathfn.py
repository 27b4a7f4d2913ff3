"""Scalar math shared by the kernels.

``exp_nonpos`` exists because numba's ``np.exp`` is a scalar libm call
(~6.5 ns here, no SVML with current llvmlite); this one vectorises inside
the kernels' loops (~0.4 ns) and is accurate to 1 ulp.  ``log_pos`` is the
same for ``np.log`` (the step controller's powers, formed as exp of logs).
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .config import FASTMATH, FASTMATH_STRICT, wide_vectors
from .scalar import softmax_exponent_cpu

_LOG2E = 1.4426950408889634
# Cody-Waite split of ln 2 (fdlibm): n * _LN2_HI is exact for |n| < 2**20.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: :func:`exp_nonpos` returns exactly 0 below this (and for NaN)
EXP_FLUSH = -708.0
# e^r ~ 1 + r + r^2 (c2 + c3 r + ... + c11 r^9) on |r| <= ln2 / 2: the minimax (Remez
# exchange, 40-digit arithmetic) of the relative error with c0 = c1 = 1 held exact.  As
# rounded to float64 the polynomial's relative error is below 1.2e-17 (0.1 ulp; checked in
# tests/test_kernels.py), as small as the degree-13 Taylor polynomial's it replaces, with
# two multiply-adds fewer per exp.
EXP_C = (0.5000000000000011, 0.16666666666666413, 0.041666666666530267, 0.008333333333494333,
         0.001388888894359769, 0.00019841269506779664, 2.4801493136197254e-05,
         2.7557586266408486e-06, 2.7630233914958636e-07, 2.5000072292151244e-08)
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11 = EXP_C


@intrinsic
def _int64_bits_as_float64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (a free ``bitcast``)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _float64_bits_as_int64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (a free ``bitcast``)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


# fdlibm's log polynomial: log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f)
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951


@njit(fastmath=FASTMATH_STRICT, cache=True)
def log_pos(x):
    """``log(x)`` for normal ``x > 0`` (and ``inf`` -> ~709.8), to ~1 ulp, vectorisable.

    ``x = 2^k m`` from the bits, ``m`` moved into ``[sqrt(2)/2, sqrt(2))``,
    then fdlibm's polynomial for ``log(m)``.  Zero and subnormals give about
    ``-709`` (they are read as ``2^-1023 m``) instead of ``-inf``/the exact
    value; callers (the step controller) floor their arguments far above.
    """
    bits = _float64_bits_as_int64(x)
    k = ((bits >> 52) & 0x7FF) - 1023
    m = _int64_bits_as_float64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    dk = np.float64(k + 1) if big else np.float64(k)
    f = m - 1.0
    t = f / (2.0 + f)
    z = t * t
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    return dk * _LN2_HI - ((hfsq - (t * (hfsq + r) + dk * _LN2_LO)) - f)


@njit(fastmath=FASTMATH_STRICT, cache=True)
def exp_nonpos(x):
    """``exp(x)`` for ``x <= 0``, to 1 ulp; ``0`` for ``x < -708`` and for NaN.

    Range reduction ``x = n ln2 + r``, ``|r| <= ln2 / 2``, a degree-11 minimax
    polynomial for ``e^r`` (:data:`EXP_C`; relative error < 1.2e-17), and ``2^n``
    assembled from its exponent bits.  Results below ``e^-708`` (about 3e-308) are flushed to 0:
    they are relative weights, negligible against the largest weight 1.

    Parameters
    ----------
    x : float64
        Argument, expected ``<= 0`` (positive arguments above 709 would
        overflow the exponent field; the kernels never pass them).

    Returns
    -------
    float64
    """
    small = not (x >= EXP_FLUSH)  # also catches NaN
    xc = EXP_FLUSH if small else x
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + 1.0
    p = p * r + 1.0
    scale = _int64_bits_as_float64((np.int64(n) + 1023) << 52)
    v = p * scale
    return 0.0 if small else v


@njit(fastmath=FASTMATH_STRICT, cache=True)
def relative_weight(dist, dmin, inv2s2):
    """``exp(-(dist - dmin) * inv2s2)`` with the limits of the softmax made exact.

    ``dist == dmin`` gives exactly 1 even when ``inv2s2`` is infinite (sigma
    below ~1e-154), so exact ties split evenly at every sigma; ``inv2s2 == 0``
    (sigma above ~1e154) gives 1 for every finite distance.
    """
    return exp_nonpos(softmax_exponent_cpu(dist, dmin, inv2s2))


@njit(fastmath=FASTMATH_STRICT, cache=True, inline="always")
def exp_any(x):
    """``e^x`` for either sign from :func:`exp_nonpos` (``inf`` past 708; <= 2 ulp).

    Vectorises where ``np.exp`` would be a scalar libm call.  Callers compile
    with ``error_model="numpy"`` (``1 / 0 = inf`` instead of an exception).
    """
    e = exp_nonpos(-abs(x))     # one exp: vectorised, both branches would be evaluated
    return e if x <= 0.0 else 1.0 / e


# the same functions inlined by numba (same flags, so the same rounding): the loops below
# vectorise whatever LLVM's inliner decides about the out-of-line versions
_exp_nonpos_inline = njit(fastmath=FASTMATH_STRICT, cache=True, inline="always")(
    exp_nonpos.py_func)
_log_pos_inline = njit(fastmath=FASTMATH_STRICT, cache=True, inline="always")(log_pos.py_func)


@njit(fastmath=FASTMATH_STRICT, cache=True)
def exp_nonpos_into(x, out):
    """``out[i] = exp_nonpos(x[i])``, bit for bit, as one vectorised loop.

    A scalar call per element inside a loop blocks its vectorisation unless
    LLVM chooses to inline it; a step controller's three powers per lane were
    such calls.  ``x`` and ``out`` are 1-D of equal length; they may be the same
    array, but then LLVM's overlap check sends the loop down its scalar path.
    """
    wide_vectors()
    for i in range(x.shape[0]):
        out[i] = _exp_nonpos_inline(x[i])


@njit(fastmath=FASTMATH_STRICT, cache=True)
def exp_any_into(x, out):
    """``out[i] = exp_any(x[i])`` (either sign), bit for bit, as one vectorised loop."""
    wide_vectors()
    for i in range(x.shape[0]):
        e = _exp_nonpos_inline(-abs(x[i]))
        out[i] = e if x[i] <= 0.0 else 1.0 / e


@njit(fastmath=FASTMATH_STRICT, cache=True)
def log_pos_into(x, out):
    """``out[i] = log_pos(x[i])``, bit for bit, as one vectorised loop."""
    wide_vectors()
    for i in range(x.shape[0]):
        out[i] = _log_pos_inline(x[i])


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def exp_sum(x, reps):
    """``reps`` times ``sum_i exp_nonpos(x_i)``, the repetitions spread over every core: the
    rate at which this machine forms softmax weights (an evaluation of the empirical field
    takes N of them), with ``x`` small enough to stay in cache.

    Parameters
    ----------
    x : (n,) float64
        Arguments <= 0.
    reps : int
    """
    total = 0.0
    for r in prange(reps):
        wide_vectors()      # in the loop body: prange outlines it into its own function
        s = 0.0
        for i in range(x.shape[0]):
            s += exp_nonpos(x[i] - 1e-3 * r)
        total += s
    return total
