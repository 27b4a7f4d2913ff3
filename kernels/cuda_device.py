"""CUDA device functions: the shared formulas of :mod:`scalar` and per-query loops.

The scalar formulas are the very functions the CPU kernels inline, compiled
here with ``cuda.jit(device=True)``.  The loops (absorbing one data point into
an online softmax, the posterior of one query against data in global memory,
the margins of a Voronoi cell) are generated per dimension ``D`` so that
per-thread vectors live in registers (``cuda.local.array(D)`` with ``D`` a
compile-time constant).

Requires numba-cuda (``pip install scoredyn[cuda]``).  Under
``NUMBA_ENABLE_CUDASIM=1`` everything here runs in numba's simulator.
"""
import functools
import math

from numba import cuda, float32, float64
from numba.core import config

from . import cell, scalar, softmax
from .target import specialise


def _device(fn):
    return cuda.jit(device=True, inline="always")(fn)


def _log_nonneg(x):
    # log(0) = -inf as on the CPU (the simulator's math.log would raise)
    return math.log(x) if x > 0.0 else -math.inf


#: ``log`` of a non-negative number, ``-inf`` at 0 (an exact step's error norm)
log_nonneg = _device(_log_nonneg)
softmax_exponent = _device(scalar.softmax_exponent)
top2_insert = _device(scalar.top2_insert)
bisector_margins = _device(scalar.bisector_margins)
tikhonov_shrink = _device(scalar.tikhonov_shrink)
empirical_bayes_exponent = _device(scalar.empirical_bayes_exponent)
error_ratio = _device(scalar.error_ratio)
accept_step_exponent = _device(scalar.accept_step_exponent)
next_log_errold = _device(scalar.next_log_errold)
reject_step_exponent = _device(scalar.reject_step_exponent)
dense_weight = _device(scalar.dense_weight)
lawson_growth = _device(scalar.lawson_growth)
row_weights = _device(scalar.row_weights)


if config.ENABLE_CUDASIM:
    def _square64(t):
        return t * t

    _square32 = _square64
else:
    from numba.cuda import libdevice

    def _square64(t):
        return libdevice.dmul_rn(t, t)

    def _square32(t):
        return libdevice.fmul_rn(t, t)

#: ``t * t`` rounded on its own.  NVVM contracts ``acc + t * t`` into an FMA by
#: default (and numba-cuda has no switch for it); that makes ``|y - x|^2``
#: depend on the order of the coordinates and breaks the exact reflection
#: symmetry that keeps a trajectory on a Voronoi bisector (the CPU kernels drop
#: ``contract`` for the same reason, see ``config.FASTMATH``).  ``__dmul_rn``
#: is never contracted.
square = _device(_square64)
square32 = _device(_square32)
SQUARE = {float64: square, float32: square32}


@functools.cache
def data_layout(D):
    """The GPU's data accessors for :func:`target.specialise`: data as (N, D), D a constant.

    Under numba's simulator they stay plain Python: a simulated device function pays
    for a module swap on every call, which made a d = 40 Voronoi pass take minutes.
    """
    wrap = (lambda fn: fn) if config.ENABLE_CUDASIM else _device

    @wrap
    def ndim(X):
        return D

    @wrap
    def npoints(X):
        return X.shape[0]

    @wrap
    def site(X, j, k):
        return X[j, k]

    return dict(ndim=ndim, npoints=npoints, site=site)


@functools.cache
def query_functions(D, ft=float64):
    """Device functions for one query in dimension ``D`` (a compile-time constant).

    ``ft`` is the type ``absorb`` evaluates its weights in (``exp`` in float32
    for float32 kernels); the running minimum and sum stay float64.

    Returns
    -------
    absorb : device function
        ``absorb(dist, j, src, row, xc, inv, want_top2, acc, m, l, i1, d1, i2, d2)``
        folds data point ``src[row]`` (index ``j``, squared distance ``dist``)
        into the running state: ``m`` the smallest distance so far, ``l =
        sum exp(-(dist_i - m) inv)``, ``acc = sum exp(...) (x_i - xc)`` —
        :func:`softmax.fold`, the CPU kernel's tile update, with a tile of one
        point.  Returns ``(m, l, i1, d1, i2, d2)``.
    posterior : device function
        ``posterior(X, u, xc, inv, want_top2, mean)``: the posterior mean of
        ``y = u + xc`` relative to ``xc`` against all rows of ``X`` (global
        memory), written to ``mean``; returns ``(dmin, lsum, i1, d1)``.
    cell_margins : device function
        ``cell_margins(X, u, xc, i, tol)``: :func:`cell.cell_margins` on the
        device, ``(bdist, gap, ntied)``.
    """

    layout = data_layout(D)

    @_device
    def rescale(m_old, m_new, inv):
        return math.exp(softmax_exponent(m_old, m_new, inv))

    @_device
    def weight(dist, m, inv):
        return math.exp(ft(softmax_exponent(dist, m, inv)))

    @_device
    def weighted_sum(w, nt, src, r0, k, c):       # the GPU folds one point at a time
        return w[0] * (src[r0, k] - c)

    fold = _device(specialise(softmax.fold, dict(layout, top2_insert=top2_insert,
                                                 rescale=rescale, weight=weight,
                                                 weighted_sum=weighted_sum),
                              f"fold_cuda_{D}_{ft}", softmax.TARGET_NAMES))

    @_device
    def absorb(dist, j, src, row, xc, inv, want_top2, acc, m, l, i1, d1, i2, d2):
        one = cuda.local.array(1, ft)         # a tile of one point (registers, once inlined)
        one[0] = dist
        return fold(one, 1, j, src, row, xc, inv, want_top2, acc, m, l, i1, d1, i2, d2)

    @_device
    def posterior(X, u, xc, inv, want_top2, mean):
        m = math.inf
        l = 0.0
        i1 = -1
        i2 = -1
        d1 = math.inf
        d2 = math.inf
        for k in range(D):
            mean[k] = 0.0
        for j in range(X.shape[0]):
            dist = 0.0
            for k in range(D):
                dist += square(u[k] - (X[j, k] - xc[k]))
            m, l, i1, d1, i2, d2 = absorb(dist, j, X, j, xc, inv, want_top2, mean, m, l,
                                          i1, d1, i2, d2)
        for k in range(D):
            mean[k] /= l
        return m, l, i1, d1

    bindings = dict(layout, square=square, bisector_margins=bisector_margins)
    bindings["bisector_"] = _device(specialise(cell.bisector, bindings, "bisector_cuda",
                                               cell.TARGET_NAMES))
    cell_margins = _device(specialise(cell.cell_margins, bindings, "cell_margins_cuda",
                                      cell.TARGET_NAMES + ("bisector_",)))

    return absorb, posterior, cell_margins
