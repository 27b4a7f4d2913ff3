"""Voronoi geometry against brute force and against Qhull (scipy.spatial.Voronoi)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scoredyn as sd
from scoredyn.geometry import voronoi as V
from scoredyn.geometry.convergence import empirical_order, fit_collapse, min_separation, sufficient_time

EPS = np.finfo(float).eps


def _point_segment(p, a, b):
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t * ab))


def test_boundary_distance_matches_qhull_polygons_2d():
    """Distance to the cell boundary = distance to the Qhull polygon's edges (bounded cells)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 2))
    vor = V.tessellation(X)
    Y = rng.uniform(-0.6, 0.6, (300, 2))
    dist, ntied, cell = V.distance_to_boundary(X, Y)
    checked = 0
    for q in range(Y.shape[0]):
        region = vor.regions[vor.point_region[cell[q]]]
        if -1 in region or len(region) == 0:
            continue
        poly = vor.vertices[region]
        ref = min(_point_segment(Y[q], poly[k], poly[(k + 1) % len(poly)]) for k in range(len(poly)))
        assert abs(dist[q] - ref) <= 1e-12 * (1 + ref)
        checked += 1
    assert checked > 200


def test_boundary_distance_matches_qhull_facets_3d():
    """In 3-D: the min over Qhull's neighbouring bisector planes equals our min over all sites."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (60, 3))
    vor = V.tessellation(X)
    nbrs = {i: set() for i in range(60)}
    for a, b in vor.ridge_points:
        nbrs[a].add(b)
        nbrs[b].add(a)
    Y = rng.uniform(-0.8, 0.8, (200, 3))
    dist, _, cell = V.distance_to_boundary(X, Y)
    for q in range(Y.shape[0]):
        i = cell[q]
        ref = min((np.linalg.norm(Y[q] - X[l]) ** 2 - np.linalg.norm(Y[q] - X[i]) ** 2)
                  / (2 * np.linalg.norm(X[l] - X[i])) for l in nbrs[i])
        assert abs(dist[q] - ref) <= 1e-12 * (1 + ref)


@given(st.integers(2, 40), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_nearest_and_cells_against_brute_force(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((25, d)) * 1.5
    i1, i2, r1, r2 = V.nearest(X, Y)
    D = np.linalg.norm(Y[:, None] - X[None], axis=2)
    order = np.argsort(D, axis=1, kind="stable")
    np.testing.assert_allclose(r1, D[np.arange(25), order[:, 0]], rtol=8 * EPS)
    np.testing.assert_allclose(r2, D[np.arange(25), order[:, 1]], rtol=8 * EPS)
    delta = 0.1
    inside, cell = V.in_cell(X, Y, delta)
    gaps = np.sort(D, axis=1)[:, 1] - np.sort(D, axis=1)[:, 0]
    sure = np.abs(gaps - delta) > 1e-12
    np.testing.assert_array_equal(inside[sure], (gaps >= delta)[sure])
    dist, _, _ = V.distance_to_boundary(X, Y)
    with np.errstate(invalid="ignore", divide="ignore"):   # the own-site column is 0/0, masked
        ref = _brute_boundary(X, Y, D, cell, n)
    np.testing.assert_allclose(dist, ref, rtol=1e-9, atol=1e-12)


def _brute_boundary(X, Y, D, cell, n):
    return np.min(np.where(np.arange(n)[None] == cell[:, None], np.inf,
                          (D**2 - D[np.arange(Y.shape[0]), cell][:, None] ** 2)
                          / (2 * np.linalg.norm(X[None] - X[cell][:, None], axis=2))), axis=1)


def test_classify_strata():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    Y = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0], [0.3, 0.0]])
    c = V.classify(X, Y, 1e-9)
    assert list(c.names) == ["data", "boundary", "boundary", "unresolved"]
    assert list(c.stratum) == [0, 1, 3, 0]
    assert c.counts() == {"data": 1, "boundary": 2, "unresolved": 1}


def test_duplicates_are_one_site():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert [list(g) for g in V.duplicate_sites(X)] == [[0, 2]]
    dist, _, cell = V.distance_to_boundary(X, np.array([[0.5, 0.3]]))
    assert cell[0] == 0 and abs(dist[0] - 0.5) < 1e-15     # the duplicate's bisector is skipped
    assert V.duplicate_sites(np.eye(2)) == []


def test_voronoi_segments_square():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    segs = V.voronoi_segments(X, (-2, 2, -2, 2))
    assert segs.shape == (4, 2, 2)
    for seg in segs:  # the diagonals y = +-x from the centre to the box corners
        assert np.allclose(np.abs(seg[:, 0]), np.abs(seg[:, 1]))


@pytest.mark.parametrize("call,match", [
    (lambda: V.nearest(np.zeros((0, 2)), np.zeros((1, 2))), r"`data` must contain at least one point"),
    (lambda: V.nearest(np.zeros((3, 2)), np.zeros((1, 3))), r"`y` has dimension 3 but the data have dimension 2"),
    (lambda: V.classify(np.eye(2), np.zeros((1, 2)), 0.0), r"`tol` must be positive; got 0.0"),
    (lambda: V.distance_to_boundary(np.eye(2), np.zeros((1, 2)), -1.0), r"`tol` must be positive"),
    (lambda: V.in_cell(np.eye(2), np.zeros((1, 2)), 0.0), r"`delta` must be positive; got 0.0"),
    (lambda: V.tessellation(np.zeros((5, 4))), r"draws 2-D or 3-D data; got dimension 4"),
    (lambda: sufficient_time(5, 2.0, 1.0, 0.5), r"`delta` must be smaller than `separation`"),
    (lambda: sufficient_time(0, 2.0, 0.1, 0.5), r"`n` must be a positive integer"),
    (lambda: sd.solve(sd.EmpiricalScore(np.eye(2)), np.zeros((1, 2)), (0, 1), delta=-1.0),
     r"`delta` must be positive"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_fit_collapse_recovers_rate_and_constant():
    s = np.linspace(0, 30, 61)
    dist = np.column_stack([3.0 * np.exp(-s), 0.5 * np.exp(-1.3 * s)])
    dist[:4] = 10.0       # a crossing phase, excluded by the ceiling
    fit = fit_collapse(s, dist)
    np.testing.assert_allclose(fit.rate, [1.0, 1.3], rtol=1e-10)
    np.testing.assert_allclose(fit.K, [3.0, 0.5], rtol=1e-9)
    assert np.all(fit.r2 > 1 - 1e-12)


def test_empirical_order():
    h = 2.0 ** -np.arange(8)
    assert abs(empirical_order(h, 3 * h**4 + 1e-14, floor=1e-13) - 4) < 0.05


def test_sufficient_time_monotone():
    """s* grows as delta shrinks and as N grows (more competing weight)."""
    a = sufficient_time(10, 2.0, 0.1, 0.5)
    assert sufficient_time(10, 2.0, 0.05, 0.5) > a
    assert sufficient_time(1000, 2.0, 0.1, 0.5) > a
    assert sufficient_time(1, 2.0, 0.1, 0.5) == -np.inf
    assert min_separation(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])) == 5.0


@pytest.mark.parametrize("k", [-1000, -664, 664, 1000])
def test_voronoi_segments_at_any_scale(k):
    """The edges of data scaled by 2^k (about 1e-300 to 1e300, exact) are the unit-size
    edges times 2^k, bit for bit.  Near 1e200 the coordinates' products overflowed; near
    1e-200 the absolute parallel-bisector test took every bisector for parallel (15 edges
    instead of 10)."""
    X = np.random.default_rng(0).standard_normal((6, 2))
    ref = V.voronoi_segments(X, (-3, 3, -3, 3))
    c = 2.0 ** k
    np.testing.assert_array_equal(V.voronoi_segments(X * c, (-3 * c, 3 * c, -3 * c, 3 * c)) / c,
                                  ref)
