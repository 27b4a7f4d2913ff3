"""Voronoi geometry of the data in any dimension, one O(N d) pass per query, on the CPU.

:func:`voronoi_pass` gives every query's two nearest sites and the margins of
its cell (:mod:`cell`, compiled here for the CPU's transposed data layout).
"""
import numpy as np
from numba import njit, prange

from . import cell
from .config import FASTMATH
from .scalar import bisector_margins_cpu, top2_insert_cpu
from .target import specialise


@njit(fastmath=FASTMATH, cache=True)
def nearest_two(XT, u, xc):
    """Nearest and second-nearest site of ``y = u + xc`` (squared distances)."""
    d, n = XT.shape
    i1 = -1
    i2 = -1
    d1 = np.inf
    d2 = np.inf
    for j in range(n):
        acc = 0.0
        for k in range(d):
            t = u[k] - (XT[k, j] - xc[k])
            acc += t * t
        i1, d1, i2, d2 = top2_insert_cpu(acc, j, i1, d1, i2, d2)
    return i1, d1, i2, d2


@njit(inline="always")
def ndim(XT):
    """Dimension of the data in the CPU layout (d, N)."""
    return XT.shape[0]


@njit(inline="always")
def npoints(XT):
    """Number of data points in the CPU layout (d, N)."""
    return XT.shape[1]


@njit(inline="always")
def site(XT, j, k):
    """Coordinate ``k`` of data point ``j`` in the CPU layout (d, N)."""
    return XT[k, j]


@njit(inline="always")
def square(t):
    """``t * t``, never fused into an FMA (FASTMATH has no ``contract``)."""
    return t * t


_CPU = dict(ndim=ndim, npoints=npoints, site=site, square=square,
            bisector_margins=bisector_margins_cpu)
_CPU["bisector_"] = njit(fastmath=FASTMATH, cache=True, inline="always")(
    specialise(cell.bisector, _CPU, "bisector_cpu", cell.TARGET_NAMES))
#: :func:`cell.cell_margins` on the CPU (data as (d, N))
cell_margins = njit(fastmath=FASTMATH, cache=True, error_model="numpy")(
    specialise(cell.cell_margins, _CPU, "cell_margins_cpu", cell.TARGET_NAMES + ("bisector_",)))


@njit(parallel=True, cache=True)
def voronoi_pass(XT, Y, tol, i1, r1, i2, r2, bdist, gap, ntied):
    """For every query: two nearest sites, boundary distance, gap, tied count.

    Outputs are (Q,) arrays; ``r1, r2`` are distances (not squared).
    """
    d = XT.shape[0]
    zero = np.zeros(d)
    for q in prange(Y.shape[0]):
        a, da, b, db = nearest_two(XT, Y[q], zero)
        i1[q], r1[q], i2[q], r2[q] = a, np.sqrt(da), b, np.sqrt(db)
        bdist[q], gap[q], ntied[q] = cell_margins(XT, Y[q], zero, a, tol)
