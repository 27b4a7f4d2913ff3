"""Margins of one query's Voronoi cell, written once for the CPU and the GPU.

For the nearest site ``x_i`` of ``y`` and every other site ``x_l``
(``Delta = x_l - x_i``, midpoint ``m``):

* signed distance to the bisector, ``h_l = -(y - m).Delta / |Delta|`` (> 0 on
  ``x_i``'s side); the distance to the boundary of the cell is ``min_l h_l``
  (a cell is a convex polytope; redundant half-spaces never lower the min);
* distance gap ``g_l = |y - x_l| - |y - x_i| = 2 |Delta| h_l / (|y - x_l| + |y - x_i|)``;
  ``y`` is in the shrunken cell ``V^delta(x_i)`` of Baptista et al. (2025,
  arXiv:2501.15785, main theorem) iff ``min_l g_l >= delta``.

Both are formed from ``(y - m).Delta`` (no difference of squared distances), in
coordinates centred at ``xc``: ``y - m = u - (Delta / 2 + (x_i - xc))``, exact
when ``xc = x_i`` however small ``u`` is.  Exact duplicates of ``x_i``
(``Delta = 0``) are skipped: coincident sites are one site.

Plain Python bound to a target by :func:`target.specialise`: the data are read
through ``ndim(X)``, ``npoints(X)`` and ``site(X, j, k)`` (the CPU stores them
transposed, the GPU row-major), squares through ``square`` (the GPU's is never
fused into an FMA), and :func:`scalar.bisector_margins` through ``bisector_margins``.
"""
import math

#: the names the functions below call, which each target binds; :func:`cell_margins` also
#: calls ``bisector_``, the target's compiled :func:`bisector`
TARGET_NAMES = ("ndim", "npoints", "site", "square", "bisector_margins")


def bisector(X, u, xc, i, l):
    """``((y - m).Delta, |Delta|^2)`` for sites i, l: ``y - m = u - (Delta/2 + (x_i - xc))``."""
    num = 0.0
    nrm = 0.0
    for k in range(ndim(X)):
        xi = site(X, i, k)
        dl = site(X, l, k) - xi
        p = u[k] - (0.5 * dl + (xi - xc[k]))
        num += p * dl
        nrm += dl * dl
    return num, nrm


def cell_margins(X, u, xc, i, tol):
    """Boundary distance, distance gap and the number of near-tied bisectors.

    Parameters
    ----------
    X : target's data layout
    u, xc : (d,) float64
        ``y = u + xc``.
    i : int
        Index of the nearest site.
    tol : float
        Bisectors with ``h_l <= min h + tol`` are counted as tied (``-inf``: none, and the
        pass that counts them is left out).

    Returns
    -------
    bdist : float
        Distance from y to the boundary of V(x_i) (``inf`` if N = 1 or all
        other sites coincide with ``x_i``).
    gap : float
        ``min_l |y - x_l| - |y - x_i|``.
    ntied : int
        Number of sites l whose bisector is within ``tol`` of the minimum.
    """
    n = npoints(X)
    ri2 = 0.0
    for k in range(ndim(X)):
        ri2 += square(u[k] - (site(X, i, k) - xc[k]))
    bdist = math.inf
    gap = math.inf
    for l in range(n):
        if l == i:
            continue
        num, nrm = bisector_(X, u, xc, i, l)
        if nrm == 0.0:
            continue
        h, g = bisector_margins(num, nrm, ri2)
        bdist = min(bdist, h)
        gap = min(gap, g)
    ntied = 0
    if math.isfinite(bdist) and tol > -math.inf:
        for l in range(n):
            if l == i:
                continue
            num, nrm = bisector_(X, u, xc, i, l)
            if nrm > 0.0 and -num / math.sqrt(nrm) <= bdist + tol:
                ntied += 1
    return bdist, gap, ntied
