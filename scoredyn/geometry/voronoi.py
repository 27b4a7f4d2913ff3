"""Voronoi limit geometry in any dimension , no tessellation needed.

The theorem of Baptista et al. (2025, arXiv:2501.15785) says limit points of the log-time
ODE are data points or lie on the boundaries of the Voronoi cells
``V(x_i) = {y : |y - x_i| < |y - x_l|, l != i}``.  These functions locate a
point in that geometry with one fused O(N d) pass per query (memory
O((Q + N) d)); 2-D and 3-D pictures use :func:`tessellation` (Qhull).

Coincident sites are treated as one site: the cell of an exact duplicate is
empty, so the lowest index stands for the group (see :func:`duplicate_sites`).
"""
from dataclasses import dataclass

import numpy as np

from .._host.reduce import query_blocks, two_nearest_numpy
from .._validation import as_data, as_points, as_scalar, length_scale
from ..backend import like, resolve, to_host
from ..coldstart import compiling
from ..kernels.voronoi import voronoi_pass

DATA, BOUNDARY, UNRESOLVED = 0, 1, 2
KIND_NAMES = ("data", "boundary", "unresolved")


def _prepare(data, y):
    X, _ = as_data(data)
    Y, _ = as_points(y, X.shape[1], "y")
    return X, Y


def _run(data, y, tol=0.0, backend=None):
    """``(i1, r1, i2, r2, bdist, gap, ntied)`` per query on the chosen backend.

    Beyond the ordinary range of magnitudes the pass runs on the data and the queries
    scaled by a power of two (:func:`length_scale`: exact), lengths scaled back.
    """
    X, Y = _prepare(data, y)
    c = length_scale(X, Y)
    if c != 1.0:
        i1, r1, i2, r2, bd, gp, nt = _run(X * c, Y * c, tol * c, backend)
        return i1, r1 / c, i2, r2 / c, bd / c, gp / c, nt
    choice = resolve(backend)
    if choice == "cuda":
        from .._host import cuda as _cuda
        return _far_rows_fixed(X, Y, tol, _cuda.voronoi_pass(X, Y, tol))
    if choice == "numpy":
        return _far_rows_fixed(X, Y, tol, _voronoi_numpy(X, Y, tol))
    q = Y.shape[0]
    i1, i2, nt = (np.empty(q, np.int64) for _ in range(3))
    r1, r2, bd, gp = (np.empty(q) for _ in range(4))
    with compiling("Voronoi", voronoi_pass):
        voronoi_pass(np.ascontiguousarray(X.T), Y, tol, i1, r1, i2, r2, bd, gp, nt)
    return _far_rows_fixed(X, Y, tol, (i1, r1, i2, r2, bd, gp, nt))


def _far_rows_fixed(X, Y, tol, out):
    """``out`` with the rows far from the data redone: direct differences cannot order their
    distances (at ``|y| ~ 1e16 |x|`` they all round alike and the first site came out, with
    negative margins to its bisectors); their two nearest come from relative distances
    (:func:`scoredyn._host.knn.k_nearest_squared`) and the margins, which are formed
    relative to the nearest site already, from :func:`_voronoi_numpy` given those."""
    from .._host.knn import k_nearest_squared
    from .._host.reduce import PreparedData, far_geometry
    if X.shape[0] < 2:
        return out
    A = np.sqrt(np.max(np.einsum("nk,nk->n", X, X)))
    far = np.flatnonzero(far_geometry(np.sqrt(np.einsum("qk,qk->q", Y, Y)), A, out[1] ** 2))
    if far.size:
        ki, kd = k_nearest_squared(PreparedData(X), Y[far], 2)
        fixed = _voronoi_numpy(X, Y[far], tol, nearest=(ki, kd))
        for arr, new in zip(out, fixed):
            arr[far] = new
    return out


def _voronoi_numpy(X, Y, tol, nearest=None):
    """The numpy reference of ``kernels.voronoi.voronoi_pass`` (same formulas, query blocks);
    ``nearest``: the two nearest ``(index (Q, 2), squared distance (Q, 2))`` when known."""
    q, d = Y.shape
    n = X.shape[0]
    i1, i2, nt = (np.empty(q, np.int64) for _ in range(3))
    r1, r2, bd, gp = (np.empty(q) for _ in range(4))
    for b in query_blocks(q, n, d):
        if nearest is None:
            diff = Y[b, None, :] - X[None, :, :]
            dist = np.einsum("qnk,qnk->qn", diff, diff)
            a, da, c, dc = two_nearest_numpy(dist)
        else:
            a, c = nearest[0][b, 0], nearest[0][b, 1]
            da, dc = nearest[1][b, 0], nearest[1][b, 1]
        i1[b], r1[b], i2[b], r2[b] = a, np.sqrt(da), c, np.sqrt(dc)
        xi = X[a]                                    # (B, d)
        delta = X[None, :, :] - xi[:, None, :]        # (B, N, d)
        p = Y[b, None, :] - (0.5 * delta + xi[:, None, :])
        num = np.einsum("qnk,qnk->qn", p, delta)
        nrm = np.einsum("qnk,qnk->qn", delta, delta)
        skip = (nrm == 0.0) | (np.arange(n)[None, :] == a[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(skip, np.inf, -num / np.sqrt(nrm))
            ri = np.sqrt(da)[:, None]
            den = np.sqrt(np.maximum(da[:, None] - 2.0 * num, 0.0)) + ri
            g = np.where(skip, np.inf, np.where(den == 0.0, 0.0, -2.0 * num / den))
        bd[b] = h.min(axis=1)
        gp[b] = g.min(axis=1)
        tied = (~skip) & (h <= bd[b, None] + tol)
        nt[b] = np.where(np.isfinite(bd[b]), tied.sum(axis=1), 0)
    return i1, r1, i2, r2, bd, gp, nt


def nearest(data, y, *, backend=None):
    """Nearest and second-nearest data point of each query.

    Parameters
    ----------
    data : (N, d) array_like
    y : (Q, d) array_like
    backend : {"auto", "numba", "cuda", "numpy"} or None
        Where the O(Q N d) pass runs (:mod:`scoredyn.backend`); a cupy ``y``
        gives cupy results.

    Returns
    -------
    i1, i2 : (Q,) int64
        Indices (ties: lower index first; ``i2 = -1`` if N = 1).
    r1, r2 : (Q,) float64
        Distances ``|y - x_i1|``, ``|y - x_i2|`` (``inf`` when absent).
    """
    i1, r1, i2, r2, *_ = _run(to_host(data), to_host(y), backend=backend)
    return tuple(like(a, y) for a in (i1, i2, r1, r2))


def distance_to_boundary(data, y, tol=None, *, backend=None):
    """Exact distance from ``y`` to the boundary of its Voronoi cell.

    ``dist(y, dV(x_i*)) = min_{l != i*} (|y - x_l|^2 - |y - x_i*|^2) / (2 |x_l - x_i*|)``
    (a cell is a convex polytope), formed without cancellation.

    Parameters
    ----------
    data : (N, d) array_like
    y : (Q, d) array_like
    tol : float, optional
        Bisectors within ``tol`` of the nearest one count as tied (default
        ``1e-9 * (1 + max |x|)``, or ``2e-9 max |x|`` for data within the unit ball).
    backend : {"auto", "numba", "cuda", "numpy"} or None
        As in :func:`nearest`.

    Returns
    -------
    dist : (Q,) float64
        ``inf`` when the cell is all of R^d (a single distinct site).
    n_tied : (Q,) int64
        Number of bisectors at (within ``tol`` of) that distance: for a point
        on the boundary (``dist <= tol``), 1 means a face (codimension 1),
        2 a ridge where three cells meet, ``k`` a stratum of codimension ``k``.
    cell : (Q,) int64
        Index of the nearest site.
    """
    X, _ = as_data(to_host(data))
    tol = _default_tol(X) if tol is None else as_scalar(tol, "tol", low=0.0, low_inclusive=False)
    i1, _, _, _, bd, _, nt = _run(X, to_host(y), tol, backend)
    return like(bd, y), like(nt, y), like(i1, y)


def in_cell(data, y, delta, *, backend=None):
    """Membership of the shrunken cell ``V^delta(x_i) = {|y - x_i| <= |y - x_l| - delta, l != i}``.

    Parameters
    ----------
    data : (N, d) array_like
    y : (Q, d) array_like
    delta : float, > 0
    backend : {"auto", "numba", "cuda", "numpy"} or None
        As in :func:`nearest`.

    Returns
    -------
    inside : (Q,) bool
    cell : (Q,) int64
        The nearest site (the only cell whose ``V^delta`` can contain y).
    """
    delta = as_scalar(delta, "delta", low=0.0, low_inclusive=False)
    i1, _, _, _, _, gap, _ = _run(to_host(data), to_host(y), backend=backend)
    return like(gap >= delta, y), like(i1, y)


@dataclass
class Classification:
    """Where end points of trajectories lie.

    Attributes
    ----------
    kind : (Q,) int64
        0 ``data`` (within ``tol`` of a site), 1 ``boundary`` (within ``tol`` of
        a Voronoi face), 2 ``unresolved``.
    site : (Q,) int64
        Nearest site.
    stratum : (Q,) int64
        For ``boundary``: number of cells meeting there minus 1 (1 face,
        2 ridge, ..., d vertex); 0 otherwise.
    distance_to_site, distance_to_boundary : (Q,) float64
    """

    kind: np.ndarray
    site: np.ndarray
    stratum: np.ndarray
    distance_to_site: np.ndarray
    distance_to_boundary: np.ndarray

    @property
    def names(self):
        """The kinds as strings."""
        return np.array(KIND_NAMES)[self.kind]

    def counts(self):
        """``{"data": n, "boundary": n, "unresolved": n}``."""
        return {name: int(np.sum(self.kind == k)) for k, name in enumerate(KIND_NAMES)}


def classify(data, y, tol, *, backend=None):
    """Classify end points: at a site, on a Voronoi boundary, or unresolved.

    Parameters
    ----------
    data : (N, d) array_like
    y : (Q, d) array_like
    tol : float, > 0
        Distance within which a point counts as at a site / on a face.
    backend : {"auto", "numba", "cuda", "numpy"} or None
        As in :func:`nearest` (the classification's arrays are numpy arrays).

    Returns
    -------
    Classification
    """
    tol = as_scalar(tol, "tol", low=0.0, low_inclusive=False)
    i1, r1, _, _, bd, _, nt = _run(to_host(data), to_host(y), tol, backend)
    kind = np.full(i1.shape, UNRESOLVED, np.int64)
    on_boundary = bd <= tol
    kind[on_boundary] = BOUNDARY
    kind[r1 <= tol] = DATA
    stratum = np.where(kind == BOUNDARY, nt, 0)
    return Classification(kind, i1, stratum, r1, bd)


def duplicate_sites(data):
    """Groups of exactly coincident data points (their Voronoi cells are empty but one).

    Returns
    -------
    list of (k,) int arrays
        Each group's indices, lowest first; empty list when all sites are distinct.
    """
    X, _ = as_data(data)
    _, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    return [np.flatnonzero(inverse.ravel() == g) for g in np.flatnonzero(counts > 1)]


def tessellation(data):
    """``scipy.spatial.Voronoi`` of 2-D or 3-D data (Qhull), for plots and as a test oracle."""
    from scipy.spatial import Voronoi
    X, _ = as_data(data)
    if X.shape[1] not in (2, 3):
        raise ValueError(f"`tessellation` draws 2-D or 3-D data; got dimension {X.shape[1]}.")
    if X.shape[0] < X.shape[1] + 2:
        raise ValueError(f"`tessellation` needs at least d + 2 = {X.shape[1] + 2} points; got "
                         f"{X.shape[0]}.")
    return Voronoi(X)


def voronoi_segments(data, bounds):
    """Finite 2-D Voronoi edges clipped to a box, for plotting.

    Parameters
    ----------
    data : (N, 2) array_like, N >= 2
    bounds : (xmin, xmax, ymin, ymax)

    Returns
    -------
    (E, 2, 2) ndarray
        Segment end points.  Computed from the bisectors directly (each
        bisector of a Delaunay neighbour pair clipped to where it bounds both
        cells), so it also works for N = 2, 3.
    """
    X, _ = as_data(data)
    if X.shape[1] != 2:
        raise ValueError(f"`voronoi_segments` needs 2-D data; got dimension {X.shape[1]}.")
    try:
        xmin, xmax, ymin, ymax = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"`bounds` must be four numbers (xmin, xmax, ymin, ymax); got "
                         f"{bounds!r}.") from None
    if not (np.all(np.isfinite([xmin, xmax, ymin, ymax])) and xmin < xmax and ymin < ymax):
        raise ValueError(f"`bounds` must be finite with xmin < xmax and ymin < ymax; got "
                         f"{(xmin, xmax, ymin, ymax)}.")
    # at unit size (a power of two: exact): the products of coordinates below overflowed
    # for data near 1e200, and the parallel-bisector test is absolute
    c = length_scale(X, np.array([xmin, xmax, ymin, ymax]))
    if c != 1.0:
        return voronoi_segments(X * c, (xmin * c, xmax * c, ymin * c, ymax * c)) / c
    diag = np.hypot(xmax - xmin, ymax - ymin)
    segs = []
    n = X.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            dvec = X[j] - X[i]
            if not np.any(dvec):
                continue
            m = 0.5 * (X[i] + X[j])
            t = np.array([-dvec[1], dvec[0]]) / np.hypot(*dvec)
            lo, hi = -2 * diag, 2 * diag
            # clip the bisector line m + s t by the half-planes of every other site
            ok = True
            for k in range(n):
                if k in (i, j):
                    continue
                # keep points closer to x_i than to x_k: (p - (x_i + x_k)/2).(x_k - x_i) <= 0
                a = X[k] - X[i]
                c0 = (m - 0.5 * (X[i] + X[k])) @ a
                c1 = t @ a
                if abs(c1) < 1e-15:
                    if c0 > 0:
                        ok = False
                        break
                    continue
                s = -c0 / c1
                if c1 > 0:
                    hi = min(hi, s)
                else:
                    lo = max(lo, s)
                if lo >= hi:
                    ok = False
                    break
            if not ok:
                continue
            p, r = m + lo * t, m + hi * t
            seg = _clip_to_box(p, r, xmin, xmax, ymin, ymax)
            if seg is not None:
                segs.append(seg)
    return np.array(segs).reshape(-1, 2, 2)


def _clip_to_box(p, r, xmin, xmax, ymin, ymax):
    """Liang-Barsky clipping of segment p->r to a box."""
    d = r - p
    t0, t1 = 0.0, 1.0
    for pk, qk in ((-d[0], p[0] - xmin), (d[0], xmax - p[0]), (-d[1], p[1] - ymin),
                   (d[1], ymax - p[1])):
        if pk == 0:
            if qk < 0:
                return None
            continue
        t = qk / pk
        if pk < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return np.array([p + t0 * d, p + t1 * d])


def _default_tol(X):
    """``1e-9`` of the data's extent (``1e-9 (1 + max |x|)`` for data of magnitude near 1;
    relative below, so that data of any scale get the same answer)."""
    m = float(np.max(np.abs(X)))
    return 1e-9 * (1.0 + m) if m >= 1.0 or m == 0.0 else 2e-9 * m
