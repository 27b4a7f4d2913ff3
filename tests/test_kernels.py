"""The scalar kernels: the vectorised exp against mpmath."""
import mpmath
import numpy as np
import pytest
from numba import njit

from scoredyn.kernels.config import FASTMATH
from scoredyn.kernels.launch import run_workers, take_next
from scoredyn.kernels.mathfn import exp_nonpos, relative_weight
from scoredyn.kernels.simd import BLOCK, plane_distances, plane_sums


@njit
def _apply(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = exp_nonpos(a[i])
    return out


def test_exp_nonpos_within_one_ulp_of_mpmath():
    rng = np.random.default_rng(0)
    a = np.concatenate([-rng.uniform(0, 708, 3000), -rng.uniform(0, 1e-6, 200),
                        [0.0, -0.0, -1e-300, -np.log(2), -707.9999]])
    out = _apply(a)
    for v, o in zip(a, out):
        ex = mpmath.exp(mpmath.mpf(v))
        ulp = np.spacing(float(ex))
        assert abs(mpmath.mpf(o) - ex) <= 1.0 * ulp, v


def test_exp_polynomial_error_below_a_tenth_of_an_ulp():
    """The stored coefficients (:data:`scoredyn.kernels.mathfn.EXP_C`, as rounded to float64)
    evaluated exactly: relative error below 1.2e-17 on the whole reduced range |r| <= ln2 / 2
    (0.1 ulp, so the exp's error is its Horner rounding).  A Taylor polynomial of the same
    degree 11 would miss by 9e-15 at the ends; a degree-10 minimax by 2.9e-16."""
    from scoredyn.kernels.mathfn import EXP_C
    with mpmath.workdps(40):
        c = [mpmath.mpf(1), mpmath.mpf(1)] + [mpmath.mpf(v) for v in EXP_C]
        a = mpmath.log(2) / 2
        worst = mpmath.mpf(0)
        for i in range(2001):
            r = a * (2 * mpmath.mpf(i) / 2000 - 1)
            p = mpmath.mpf(0)
            for ck in reversed(c):
                p = p * r + ck
            worst = max(worst, abs(p / mpmath.exp(r) - 1))
    assert worst < 1.2e-17, float(worst)


def test_exp_nonpos_limits():
    out = _apply(np.array([-708.5, -1000.0, -np.inf, np.nan]))
    np.testing.assert_array_equal(out, 0.0)


def test_relative_weight_limits():
    assert relative_weight(2.0, 2.0, np.inf) == 1.0      # tie at sigma -> 0
    assert relative_weight(2.5, 2.0, np.inf) == 0.0
    assert relative_weight(2.5, 2.0, 0.0) == 1.0         # sigma -> inf


def _exact_tie(X):
    """Make ``X[0], X[1] = c -/+ e`` with dyadic ``c`` and ``e``, so that both distances from
    ``c`` have the same bits (an exact tie); returns ``c``."""
    d = X.shape[1]
    c = np.round(X[0] * 1024) / 1024
    e = np.array([2.0 ** -10, -2.0 ** -11, 2.0 ** -12])[:d]
    X[0], X[1] = c - e, c + e
    return c


def _lane_rhs_caller(rhs):
    """A compiled call of the lane right-hand side pointer ``rhs`` with ``want_nearest`` and
    no regularization (the pointer is only callable from compiled code)."""
    @njit
    def call(XT, Y, s, out, dist, inv, dmin, lsum, thr, near, near_d2, XS, perm, axis, ref):
        rhs(XT, Y, s, 0, 0.0, out, dist, inv, dmin, lsum, thr, True, near, near_d2, XS, perm,
            axis, ref)
    return call


def _lane_rhs_reference(X, Y, s):
    """``-(y - D(y, e^{-s}))`` per lane, in numpy: the squared distances summed in the
    kernel's order, the exponents ``-(dist - dmin) / (2 sigma^2)`` formed as it forms them
    (0 for the nearest), then ``np.exp`` and a plain weighted mean."""
    out = np.empty_like(Y)
    for b in range(Y.shape[1]):
        dist = np.zeros(X.shape[0])
        for k in range(X.shape[1]):
            dist = dist + (Y[k, b] - X[:, k]) ** 2
        delta = dist - dist.min()
        with np.errstate(over="ignore", invalid="ignore"):
            inv = 0.5 * np.exp(2.0 * s[b])
            x = np.where(delta <= 0.0, 0.0, -delta * inv)
        w = np.where(x >= -708.0, np.exp(x), 0.0)
        out[:, b] = w @ X / w.sum() - Y[:, b]
    return out


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("times", ["mixed", "infinite", "late"])
def test_lane_rhs_against_numpy(d, times):
    """The SIMD-lane right-hand side (``odeint_lanes._lane_rhs``, the kernel of every lane
    solve) against :func:`_lane_rhs_reference`, lane by lane, at times from s = -400
    (sigma^2 = e^800: every weight 1) through the collapse to s = 400 (sigma^2 below the
    smallest double: the nearest point alone, exact ties split evenly).  With every lane
    late in the flow ("late"), the far data points' weights flush to 0 in every lane and the
    kernel skips them by a distance test; a test too eager would drop weights of e^-20.

    Tolerance: both sides form the same exponents, so the weights differ by the two exps'
    rounding (1 ulp each); the weighted sums, in different orders, by at most N ulps of
    their largest term.  So ``|out - ref| <= (2 + 2N) u max|x| + 2 u max|y|`` per entry.
    """
    from scoredyn.kernels.odeint_lanes import lane_rhs, sorted_data
    from scoredyn.kernels.sizes import LANES
    rng = np.random.default_rng(5)
    n = 37
    X = 0.5 * rng.standard_normal((n, d))
    X[-6:-3, 0] += 3.0          # weights of e^-10 to e^-60 late on: too large to skip
    X[-3:] *= 80.0              # far from every lane: flushed to 0 in all of them late on
    Y = X[rng.integers(0, n - 6, LANES)].T + 0.3 * rng.standard_normal((d, LANES))
    Y[:, 0] = _exact_tie(X)
    s = np.tile(np.array([-400.0, 0.0, 2.0, 5.0, 9.0, 30.0, 12.0, 7.0]), LANES // 8)
    s[0] = 400.0 if times == "infinite" else 60.0
    if times == "late":
        s = np.linspace(1.0, 2.0, LANES)
    XT = np.ascontiguousarray(X.T)
    Y = np.ascontiguousarray(Y)
    out = np.empty((d, LANES))
    scratch = [np.empty(LANES) for _ in range(4)]
    near = np.empty(LANES, np.int64)
    call = _lane_rhs_caller(lane_rhs())
    call(XT, Y, s, out, np.empty((n, LANES)), *scratch, near, np.empty(LANES),
         *sorted_data(XT), np.full((d + 3, LANES), -1.0))
    ref = _lane_rhs_reference(X, Y, s)
    u = np.finfo(float).eps / 2
    tol = (2 + 2 * n) * u * np.abs(X).max() + 2 * u * np.abs(Y).max()
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol)
    np.testing.assert_array_equal(near, np.argmin(((Y.T[:, None] - X[None]) ** 2).sum(-1), 1))
    if times == "infinite":      # the tie at sigma -> 0: split evenly, so D is the midpoint c
        np.testing.assert_array_equal(out[:, 0], np.zeros(d))


@pytest.mark.parametrize("n", [1, 2, 6])
def test_stage_combination_is_the_numpy_expression_bit_for_bit(n):
    """The numpy engine's stage sums in one pass: the same roundings, in the same order, as
    ``y + h[:, None] * (c_0 K_0 + c_1 K_1 + ...)`` in numpy (so the engine's steps, and its
    agreement with the fused kernels, are unchanged)."""
    from scoredyn.kernels.stages import stage_combination
    rng = np.random.default_rng(n)
    m, d = 37, 5
    K = rng.standard_normal((7, m, d)) * np.exp(rng.uniform(-20, 20, (7, m, d)))
    y, h, c = rng.standard_normal((m, d)), rng.random(m), rng.standard_normal(7)
    total = c[0] * K[0]
    for j in range(1, n):
        total = total + c[j] * K[j]
    out = np.empty((m, d))
    stage_combination(y, h, c, K, n, out)
    np.testing.assert_array_equal(out, y + h[:, None] * total)
    stage_combination(None, h, c, K, n, out)
    np.testing.assert_array_equal(out, h[:, None] * total)


def _one_pass_problem(d):
    """N = 300 in d dimensions (a few far points and an exact tie among them) and 64 lanes:
    near data points at times from s = -2 to 30, one at s = -400 (inv = 0), one at s = 400
    (inv = inf: lane 0, on the tie), one NaN and one far from the data late in the flow."""
    from scoredyn.kernels.sizes import LANES
    rng = np.random.default_rng(8)
    n = 300
    X = 0.5 * rng.standard_normal((n, d))
    X[-3:] *= 80.0
    c = _exact_tie(X)
    Y = X[rng.integers(0, n - 3, LANES)].T + 0.05 * rng.standard_normal((d, LANES))
    Y[:, 0] = c
    s = rng.uniform(-2.0, 9.0, LANES)
    s[:4] = [400.0, -400.0, 12.0, 30.0]
    Y[:, 5] = np.nan
    Y[:, 6] = 40.0
    s[6] = 6.0
    return X, np.ascontiguousarray(Y), s


def _one_pass_tolerance(n):
    """Bound on ``|D_kernel - D_reference| / (u max|x|)`` of the one-pass sums.

    Both sides form the same squared distances (coordinate order).  The kernel's exponent
    ``(m - dist_j) inv`` carries ``2 u (r_j + delta)`` of rounding, the reference's
    ``-(dist_j - dmin) inv`` ``2 u r_j`` (``r_j = (dist_j - dmin) inv``, ``delta = (dmin -
    m) inv <= WINDOW_MAX_SHIFT``), each exp 1 ulp.  The relative weight errors ``eps_j <= 2 u
    (2 r_j + delta) + 4 u`` move the weighted mean by at most ``2 max|x| sum_j eps_j w_j /
    sum w``, and with ``w_j / sum w <= e^{-r_j}``, ``r e^{-r} <= 1 / e``:
    ``(8 N / e + 4 delta + 8) u max|x|``.  The sums' order adds ``(2 + 2N) u max|x|``, as in
    the two passes, and the points left out (exponents below -WINDOW_NEGLECT)
    ``2 N e^{delta - WINDOW_NEGLECT} max|x|``.
    """
    from scoredyn.kernels.odeint_lanes import WINDOW_MAX_SHIFT, WINDOW_NEGLECT
    u = np.finfo(float).eps / 2
    return (8 * n / np.e + 4 * WINDOW_MAX_SHIFT + 8 + 2 + 2 * n
            + 2 * n * np.exp(WINDOW_MAX_SHIFT - WINDOW_NEGLECT) / u)


@pytest.mark.parametrize("d", [2, 3])
def test_lane_rhs_one_pass_against_numpy(d):
    """The lane right-hand side's one-pass sums (``_one_pass_sums``: ``sizes.one_pass``,
    shifts from each lane's reference, sorted data, the run that can carry weight) against
    :func:`_lane_rhs_reference`, first without references (shift 0: refused where the
    nearest exponent lies below -16, and then served by the exact two passes) and then
    after a small move of every lane (the shifts from the first call's states); tolerance
    :func:`_one_pass_tolerance`, plus the two passes' ``2 u max|y|`` for the final
    difference.
    """
    from scoredyn.kernels.odeint_lanes import lane_rhs, sorted_data
    from scoredyn.kernels.sizes import LANES
    X, Y, s = _one_pass_problem(d)
    n = X.shape[0]
    XT = np.ascontiguousarray(X.T)
    call = _lane_rhs_caller(lane_rhs(one_pass=True))
    ref = np.full((d + 3, LANES), -1.0)
    sorted_xt = sorted_data(XT)
    u = np.finfo(float).eps / 2
    finite = np.isfinite(Y).all(0)
    move = 1e-3 * np.random.default_rng(9).standard_normal(Y.shape)
    for Yc in (Y, np.ascontiguousarray(Y + move)):
        out = np.empty((d, LANES))
        near = np.empty(LANES, np.int64)
        call(XT, Yc, s, out, np.empty((2, n)), *[np.empty(LANES) for _ in range(4)],
             near, np.empty(LANES), *sorted_xt, ref)
        with np.errstate(invalid="ignore"):         # the NaN lane
            expect = _lane_rhs_reference(X, Yc, s)
        tol = (_one_pass_tolerance(n) * u * np.abs(X).max()
               + 2 * u * np.abs(Yc[:, finite]).max())
        np.testing.assert_allclose(out[:, finite], expect[:, finite], rtol=0, atol=tol)
        assert np.isnan(out[:, ~finite]).all()
        dist = np.zeros((LANES, n))
        for k in range(d):                           # in the kernels' order
            dist = dist + (Yc[k][:, None] - X[:, k]) ** 2
        np.testing.assert_array_equal(near[finite], np.argmin(dist, 1)[finite])
        # references: this call's states and their exact smallest squared distances
        np.testing.assert_array_equal(ref[:d, finite], Yc[:, finite])
        np.testing.assert_array_equal(ref[d, finite], dist.min(1)[finite])
        if Yc is Y:            # lane 0 on the tie at s = 400: D is the midpoint, exactly
            np.testing.assert_array_equal(out[:, 0], np.zeros(d))


@pytest.mark.parametrize("d", [2, 3])
def test_one_pass_lane_refuses_what_it_cannot_serve_and_agrees_where_it_does(d):
    """``_lane_sums`` from a shift (the run of sorted data) against its exact two passes
    (all the data) lane by lane: served when the shift lies within WINDOW_MAX_SHIFT of the
    nearest exponent (equal nearest index and distance, sums within
    :func:`_one_pass_tolerance` of the weights' sum), refused for a shift further below, a
    shift times inv above WINDOW_MAX_SCALE, inv = 0 or inf and NaN states.  Each lane is
    served on its own, so its result does not depend on the other lanes."""
    from scoredyn.kernels.odeint_lanes import (WINDOW_MAX_SCALE, WINDOW_MAX_SHIFT, _lane_sums,
                                               sorted_data)
    X, Y, s = _one_pass_problem(d)
    XS, perm, axis = sorted_data(np.ascontiguousarray(X.T))
    u = np.finfo(float).eps / 2
    n = X.shape[0]
    rng = np.random.default_rng(d)
    vs, ws = np.empty(n), np.empty(n)
    exact_sums, sums = np.empty((d, Y.shape[1])), np.empty((d, Y.shape[1]))
    served = 0
    for b in range(Y.shape[1]):
        inv = 0.5 * np.exp(2.0 * s[b]) if s[b] < 300 else np.inf
        ok, exact_total, dmin, exact_first, lo, hi = _lane_sums(
            XS, axis, perm, Y, b, inv, 0.0, True, True, vs, ws, exact_sums, -1, -1)
        assert ok and (lo, hi) == (0, n)
        if not np.isfinite(dmin) or not 0 < inv < np.inf:
            assert not _lane_sums(XS, axis, perm, Y, b, inv, 0.0, False, True, vs, ws,
                                  sums, -1, -1)[0]
            continue
        for below in (0.0, 0.5, WINDOW_MAX_SHIFT - 1e-6, WINDOW_MAX_SHIFT + 1e-6, 100.0):
            m = max(dmin - below / inv, 0.0)
            guess = rng.integers(-1, n + 1, 2)      # the run does not depend on the guesses
            ok, total, dm, first, lo, hi = _lane_sums(XS, axis, perm, Y, b, inv, m, False, True,
                                                      vs, ws, sums, *guess)
            assert ok == ((dmin - m) * inv <= WINDOW_MAX_SHIFT
                          and m * inv <= WINDOW_MAX_SCALE), (b, below)
            if not ok:
                continue
            served += 1
            assert (dm, first) == (dmin, exact_first)
            # the exact sums relative to dmin, brought to the shift m
            scale = np.exp((m - dmin) * inv)
            bound = _one_pass_tolerance(n) * u * total * np.abs(X).max()
            assert abs(total - exact_total * scale) <= bound, (b, below)
            np.testing.assert_allclose(sums[:, b], exact_sums[:, b] * scale, rtol=0,
                                       atol=bound)
    assert served >= 4 * 50


@njit(nogil=True)
def _drain(queue, taken):
    n = taken.shape[0]
    while True:
        i = take_next(queue)
        if i >= n:
            return
        taken[i] += 1


def test_the_shared_queue_hands_out_every_item_once():
    """Four threads draining one queue (the lane solver's: :func:`launch.take_next`) take
    every item exactly once; a counter incremented without an atomic read-modify-write loses
    and repeats items under this contention."""
    taken = np.zeros(1_000_000, np.int64)
    queue = np.zeros(1, np.int64)
    run_workers(_drain, 4, queue, taken)
    assert np.all(taken == 1)
    assert queue[0] >= taken.shape[0] + 4 - 1      # each thread's last take finds it empty


@njit(fastmath=FASTMATH, error_model="numpy")
def _plane_loops_in_numba(XT, Y, inv, dist, dmin, thr, lsum, o0, o1):
    """The two passes of the lane right-hand side in the plane as plain numba loops over the
    lanes (the code :mod:`scoredyn.kernels.simd` replaced), with every ``inv`` finite."""
    n = XT.shape[1]
    for b in range(Y.shape[1]):
        dmin[b] = np.inf
        lsum[b] = 0.0
        o0[b] = 0.0
        o1[b] = 0.0
    for j in range(n):
        for b in range(Y.shape[1]):
            t0 = Y[0, b] - XT[0, j]
            t1 = Y[1, b] - XT[1, j]
            v = t0 * t0 + t1 * t1
            dist[j, b] = v
            dmin[b] = min(dmin[b], v)
    for b in range(Y.shape[1]):
        thr[b] = dmin[b] + 709.0 / inv[b]
    for j in range(n):
        for b in range(Y.shape[1]):
            w = exp_nonpos((dmin[b] - dist[j, b]) * inv[b])
            lsum[b] += w
            o0[b] += w * XT[0, j]
            o1[b] += w * XT[1, j]


@njit(error_model="numpy")
def _plane_loops_simd(XT, Y, inv, dist, dmin, thr, lsum, o0, o1):
    for b in range(Y.shape[1]):
        lsum[b] = 0.0
        o0[b] = 0.0
        o1[b] = 0.0
    for b0 in range(0, Y.shape[1], BLOCK):
        plane_distances(XT, Y, b0, dist, dmin)
    for b in range(Y.shape[1]):
        thr[b] = dmin[b] + 709.0 / inv[b]
    for b0 in range(0, Y.shape[1], BLOCK):
        plane_sums(XT, dist, dmin, inv, thr, b0, lsum, o0, o1)


def _plane_run(loops, XT, Y, inv):
    n, lanes = XT.shape[1], Y.shape[1]
    dist = np.full((n, lanes), -1.0)
    rest = [np.full(lanes, -1.0) for _ in range(5)]
    loops(XT, Y, inv, dist, *rest)
    return [dist] + rest


@pytest.mark.parametrize("n", [1, 7, 20, 200])
def test_simd_plane_loops_are_the_numba_loops_bit_for_bit(n):
    """:func:`simd.plane_distances` and :func:`simd.plane_sums` (the lanes held in registers)
    give the bits of the numba loops they replace: distances, minima, thresholds and sums,
    over lanes whose points are all skipped, partly skipped, exactly tied (the minimum taken
    once, weight 1 twice), NaN (never the minimum; weights 0) and at the exp's flush."""
    rng = np.random.default_rng(n)
    lanes = 64
    X = rng.standard_normal((n, 2))
    c = _exact_tie(X) if n > 1 else X[0]
    Y = X[rng.integers(0, n, lanes)] + 10.0 ** rng.uniform(-8, 1, (lanes, 1)) * rng.standard_normal((lanes, 2))
    Y[0] = c
    Y[1] = np.nan
    Y[2, 0] = np.nan
    inv = 10.0 ** rng.uniform(-3, 12, lanes)
    inv[3] = 0.0
    inv[4:12] = 1e300          # one block of 8 whose far points are all skipped
    XT, Yt = np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)
    expected = _plane_run(_plane_loops_in_numba, XT, Yt, inv)
    got = _plane_run(_plane_loops_simd, XT, Yt, inv)
    for name, e, g in zip(("dist", "dmin", "thr", "lsum", "o0", "o1"), expected, got):
        np.testing.assert_array_equal(g, e, err_msg=name)
    assert got[3][1] == 0.0 and got[3][2] == 0.0        # NaN lanes: every weight 0
    if n > 1:
        assert got[3][0] >= 2.0                             # the tie: both weights 1


def test_simd_exp_is_exp_nonpos_bit_for_bit():
    """The vector exp of :mod:`scoredyn.kernels.simd` is :func:`exp_nonpos` bit for bit,
    read through :func:`simd.plane_sums` with one data point at the origin: each lane's sum
    is then exactly its weight ``exp_nonpos(-dist)``."""
    rng = np.random.default_rng(1)
    x = np.concatenate([-rng.uniform(0, 708, 4000), -rng.uniform(0, 1e-6, 400),
                        -10.0 ** rng.uniform(-300, 2.8, 400), [0.0, -np.log(2), -707.9999,
                        -708.0, -708.0000001, -745.2, -1e300, -np.inf, np.nan]])
    x = np.concatenate([x, np.zeros(-x.size % 64)]).reshape(-1, 64)
    XT = np.zeros((2, 1))
    zero = np.zeros(64)
    for row in x:
        dist = np.ascontiguousarray(-row[None, :])
        lsum, o0, o1 = np.zeros(64), np.zeros(64), np.zeros(64)
        _plane_sums_only(XT, dist, zero, np.ones(64), np.full(64, np.inf), lsum, o0, o1)
        np.testing.assert_array_equal(lsum, _apply(row))


@njit
def _plane_sums_only(XT, dist, dmin, inv, thr, lsum, o0, o1):
    for b0 in range(0, dist.shape[1], BLOCK):
        plane_sums(XT, dist, dmin, inv, thr, b0, lsum, o0, o1)


def test_window_is_the_run_within_the_threshold_from_any_guess():
    """``_window`` (the one-pass sums' run of sorted data) against counting in numpy: the
    keys beyond the threshold on the left, and those beyond it on the right, for sorted keys
    with repeats, states inside, between and outside the keys, thresholds from 0 to inf,
    NaN states, and guesses anywhere in [-1, N] (a lane's previous run, or none)."""
    from scoredyn.kernels.odeint_lanes import _window
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 300):
        p = np.sort(np.round(rng.standard_normal(n), 1))      # repeats
        for _ in range(400):
            ya = rng.choice([rng.uniform(-4, 4), p[rng.integers(n)], 1e300, np.nan])
            thr = rng.choice([0.0, 10.0 ** rng.uniform(-6, 2), np.inf])
            lo0, hi0 = rng.integers(-1, n + 2, 2)
            with np.errstate(invalid="ignore", over="ignore"):
                left = ((ya - p) > 0) & ((ya - p) ** 2 > thr)
                right = ((p - ya) > 0) & ((p - ya) ** 2 > thr)
            assert _window(p, ya, thr, lo0, hi0) == (left.sum(), n - right.sum()), (ya, thr)
