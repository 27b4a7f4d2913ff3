"""The fused time loop with trajectories as SIMD lanes (no recentring, no V^delta tracking).

``odeint.integrate`` runs one trajectory per thread (:func:`trajectory.advance`),
so each right-hand side is a pass over N data points for one state: at small N
(the paper's N = 20) the passes are short loops and their start-up cost dominates (~160 ns per
evaluation at N = 20, d = 2).  Here each thread advances ``LANES``
trajectories in lockstep by *stage* — each lane with its own time, step
size, acceptance and status — and the states are stored lane-contiguous
(``(d, LANES)``), so every loop over the data has a long, vectorisable inner
loop over lanes (the controller's powers are vectorised exp/log too).  In the plane the
two loops over the data run with blocks of lanes held in vector registers
(:mod:`simd`): at N = 20 an evaluation costs 11-13 ns on 2 cores (gl-dopri5, 10^4
trajectories, error norms and step factors included; AMD EPYC Zen 5), 3.5-4.0x the
exp-rate bound of N exps.
A lane whose trajectory ends takes the next one from the queue that all threads share
(:func:`launch.take_next`), so lanes do not idle until the last trajectories.

The scheme per lane is exactly :func:`trajectory.advance`'s (same RK form, PI
controller, dense output, equal steps per save segment, statuses and
diagnostics), with the posterior formed in two passes (the minimum squared
distance first, then the weights relative to it) instead of an online
softmax: results agree with the one-trajectory kernel to rounding (adaptive
step sequences to ~1e-9 relative, since the error norm is a difference of
nearly equal stages).

From ``sizes.one_pass``'s N on (128 data points, 256 in the plane) the layout turns
around: each lane's sums are formed on their own, in loops along the data
(:func:`_one_pass_sums`).
The shift of its exponents comes from the lane's previous evaluation by the triangle
inequality instead of a first pass, and the pass covers only the data that can carry
weight (sorted along one coordinate, a run searched from the lane's last one): all of them
early in the flow, a few late.  At N = 1000 (10^4 trajectories to s = 12, AMD EPYC, 2 cores) an
evaluation costs 1.4-1.5x (gl-dopri5), 1.1x (dopri5) and 0.7-0.8x (etd1) the exp-rate
bound of N exps, against 3.0x, 2.9x and 2.4x with the two passes.
"""
import functools

import numba
import numpy as np
from numba import cfunc, njit, types

from .config import FASTMATH, TILE_N, wide_vectors
from .launch import run_workers, take_next
from .sizes import LANES, one_pass
from .mathfn import (_float64_bits_as_int64, _int64_bits_as_float64, exp_any,
                     exp_any_into, exp_nonpos, exp_nonpos_into, log_pos_into)
from .odeint import CPU
from .simd import BLOCK, plane_distances, plane_sums
from .trajectory import (OUT_BOUNDARY_DISTANCE,
                         OUT_CELL_CHANGES, OUT_MAX_NORM, OUT_N_REJECTED, OUT_N_STEPS, OUT_NEAREST,
                         OUT_NEAREST_D2, OUT_NFEV, OUT_STATUS, REG_EMPIRICAL_BAYES, REG_TIKHONOV,
                         STATUS_MAX_STEPS, STATUS_NONFINITE, STATUS_RUNNING, STATUS_STEP_UNDERFLOW,
                         STATUS_SUCCESS)
from .scalar import (LAWSON_MAX_STEP, LOG_ERROLD_START, STEP_RESOLUTION, accept_step_exponent_cpu,
                     dense_weight_cpu, empirical_bayes_exponent_cpu, error_ratio_cpu,
                     next_log_errold_cpu, reject_step_exponent_cpu, softmax_exponent_cpu,
                     tikhonov_shrink_cpu)
from .voronoi import cell_margins

_rhs = CPU["rhs"]
_config = CPU["config"]

#: a lane's one-pass sums are refused (and formed exactly, :func:`_lane_sums`) when their shift
#: lies more than this below the nearest point's exponent: the weights' exponents then carry
#: a few u (16 + dmin inv + x) of rounding, against the exact shift's few u (dmin inv + x)
#: (the distances' own rounding, 2 u dist inv, is common to both)
WINDOW_MAX_SHIFT = 16.0
#: the one-pass sums neglect the data whose exponent lies below -WINDOW_NEGLECT (together
#: less than N e^-64 of the weights' sum; :func:`_one_pass_sums`)
WINDOW_NEGLECT = 80.0
#: largest ``shift * inv`` of the one-pass sums: no exponent then exceeds ~1e-3 (the most
#: a distance below the shift can be, by its rounding), far from exp's overflow at 709
WINDOW_MAX_SCALE = 2.0 ** 40
#: relative margins of the shift's triangle inequality and of the run's threshold, far above
#: the rounding of either (a few u)
WINDOW_BELOW = 1.0 - 2.0 ** -40
WINDOW_ABOVE = 1.0 + 2.0 ** -40
#: the bits of +inf: no squared distance orders above it but NaN
DIST_BITS_INF = np.int64(0x7FF0000000000000)
#: above every data index
DIST_INDEX_NONE = np.int64(2 ** 62)
#: a lane's outcome after the stages of a step (:func:`lane_chunk`); ordered: a lane that is
#: idle stays idle, one that is not finite is neither rejected nor accepted
OUTCOME_IDLE, OUTCOME_NONFINITE, OUTCOME_REJECTED, OUTCOME_ACCEPTED = 0, 1, 2, 3


def _lane_rhs(XT, Y, s, reg_kind, reg_param, out, dist, inv, dmin, lsum, thr, want_nearest,
              near, near_d2, XS, perm, axis, ref):
    """``out[:, b] = -r (Y[:, b] - D(Y[:, b]; e^{-s_b}))`` for every lane b.

    The softmax sums come from :func:`_two_pass_sums` (:func:`_lane_rhs_one_pass`: from
    :func:`_one_pass_sums`); :func:`_finish` applies the regularization.

    Parameters
    ----------
    XT : (d, N) float64
    Y : (d, B) float64
        Lane states.
    s : (B,) float64
        Lane times.
    out : (d, B) float64, out
    dist : (N, B) float64, scratch (the one-pass sums: (2, N))
    inv, dmin, lsum, thr : (B,) float64, scratch
    want_nearest : bool
        Also write the nearest site and its squared distance to ``near``,
        ``near_d2`` (ties: the lower index).
    XS, perm, axis
        The data sorted along coordinate ``axis`` (:func:`sorted_data`).
    ref : (d + 3, B) float64, in/out
        Per lane, a state of its trajectory and the smallest squared distance from it to
        the data (row d; negative or not finite: none), and the ends of its last run of
        sorted data (rows d + 1, d + 2; the next search's guesses), read and updated by
        :func:`_one_pass_sums`; :func:`lane_chunk` sets rows 0 to d when a lane takes a
        trajectory.
    """
    wide_vectors()
    _lane_inv(s, inv)
    _two_pass_sums(XT, Y, out, dist, inv, dmin, lsum, thr, want_nearest, near, near_d2)
    _finish(reg_kind, reg_param, Y, inv, out, dmin, lsum)


def _lane_rhs_one_pass(XT, Y, s, reg_kind, reg_param, out, dist, inv, dmin, lsum, thr,
                       want_nearest, near, near_d2, XS, perm, axis, ref):
    """:func:`_lane_rhs` with the sums of :func:`_one_pass_sums` (``sizes.one_pass``);
    ``dist`` is (2, N) scratch.  A function of its own, so that each compiles to its own
    function pointer (:func:`lane_rhs`) and a process compiles only the one it needs: the
    first lanes solve from an empty cache took 8.9 s with both in one function, 7.6 s
    (N = 20) and 8.2 s (one pass) apart."""
    wide_vectors()
    _lane_inv(s, inv)
    _one_pass_sums(XS, perm, axis, Y, inv, ref, out, dmin, lsum, want_nearest, near,
                   near_d2, dist[0], dist[1])
    _finish(reg_kind, reg_param, Y, inv, out, dmin, lsum)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _lane_inv(s, inv):
    """``inv[b] = 1 / (2 sigma_b^2) = e^{2 s_b} / 2`` for every lane."""
    for b in range(s.shape[0]):
        inv[b] = 0.5 * exp_any(2.0 * s[b])


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _two_pass_sums(XT, Y, out, dist, inv, dmin, lsum, thr, want_nearest, near, near_d2):
    """The softmax sums of every lane in two passes over the data: the squared distances and
    their minimum ``dmin``, then the weights ``exp(-(dist - dmin) inv)``.

    Writes ``out[:, b] = sum_j w_j x_j``, ``lsum[b] = sum_j w_j`` and ``dmin[b]`` (the shift),
    with the arguments of :func:`_lane_rhs`.  Serves every time, state and dimension.
    """
    wide_vectors()
    d, n = XT.shape
    B = Y.shape[1]
    for b in range(B):
        dmin[b] = np.inf
        lsum[b] = 0.0
    if d == 2:      # the paper's setting: the lanes in registers (:mod:`simd`)
        for b0 in range(0, B, BLOCK):
            plane_distances(XT, Y, b0, dist, dmin)
    else:
        for j in range(n):
            dj = dist[j]
            for b in range(B):
                dj[b] = 0.0
            for k in range(d):
                a = XT[k, j]
                yk = Y[k]
                for b in range(B):
                    t = yk[b] - a
                    dj[b] += t * t
            for b in range(B):
                dmin[b] = min(dmin[b], dj[b])
    if want_nearest:
        for b in range(B):
            near[b] = -1
        for j in range(n):
            dj = dist[j]
            for b in range(B):
                if near[b] < 0 and dj[b] == dmin[b]:
                    near[b] = j
        for b in range(B):
            near_d2[b] = dmin[b]
    for k in range(d):
        ok = out[k]
        for b in range(B):
            ok[b] = 0.0
    # a data point whose weight is exactly 0 in every lane (each exponent below exp_nonpos's
    # flush, EXP_FLUSH = -708) adds nothing: late in the flow that is most of them.  The test
    # is on the distance, against a threshold with margin: dist > dmin + 709 / inv implies
    # (dist - dmin) * inv > 708 after rounding, so no weight that is not 0 is skipped (inv = 0
    # gives an infinite threshold, inv = inf the threshold dmin; NaN is never skipped)
    n_inf = 0
    for b in range(B):
        thr[b] = dmin[b] + 709.0 / inv[b]
        n_inf += 1 if inv[b] == np.inf else 0
    # with every inv finite, -(dist - dmin) * inv is (dmin - dist) * inv (same bits; dist ==
    # dmin gives -0, whose exp is 1 as well): no select per weight
    finite = n_inf == 0
    if d == 2 and finite:       # the paper's setting: the lanes in registers (:mod:`simd`)
        for b0 in range(0, B, BLOCK):
            plane_sums(XT, dist, dmin, inv, thr, b0, lsum, out[0], out[1])
        return
    o0 = out[0]
    o1 = out[1] if d > 1 else out[0]       # o0, o1: read only when d == 2
    for j in range(n):
        dj = dist[j]
        live = 0
        for b in range(B):
            live += 0 if dj[b] > thr[b] else 1
        if live == 0:
            continue
        if d == 2:
            a0 = XT[0, j]
            a1 = XT[1, j]
            for b in range(B):
                w = exp_nonpos(softmax_exponent_cpu(dj[b], dmin[b], inv[b]))
                lsum[b] += w
                o0[b] += w * a0
                o1[b] += w * a1
        else:
            for b in range(B):
                w = exp_nonpos(softmax_exponent_cpu(dj[b], dmin[b], inv[b]))
                dj[b] = w
                lsum[b] += w
            for k in range(d):
                a = XT[k, j]
                ok = out[k]
                for b in range(B):
                    ok[b] += dj[b] * a


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _finish(reg_kind, reg_param, Y, inv, out, shift, lsum):
    """``out = r (out / lsum) - r Y`` per lane from the softmax sums (``out`` the weighted
    sums, ``lsum`` the weights' sum, both relative to ``e^{-shift inv}``), ``r`` the
    regularization's shrink factor.  ``shift`` and ``lsum`` are overwritten."""
    wide_vectors()
    d = Y.shape[0]
    B = Y.shape[1]
    dmin = shift
    # the branch on the regularization outside the loops over lanes: inside one, LLVM
    # if-converts it into a masked vector loop that calls log for every lane, masked or not
    # (log(0) takes libm's slow error path: 8 % of the time at N = 20)
    if reg_kind == REG_EMPIRICAL_BAYES:
        log_tau = np.log(reg_param)
        for b in range(B):
            r = exp_nonpos(empirical_bayes_exponent_cpu(lsum[b], dmin[b], inv[b], log_tau))
            dmin[b] = r / lsum[b]          # reuse: r / lsum
            lsum[b] = r
    elif reg_kind == REG_TIKHONOV:
        for b in range(B):
            r = tikhonov_shrink_cpu(reg_param, 2.0 * inv[b])
            dmin[b] = r / lsum[b]
            lsum[b] = r
    else:
        for b in range(B):
            dmin[b] = 1.0 / lsum[b]
            lsum[b] = 1.0
    for k in range(d):
        ok = out[k]
        yk = Y[k]
        for b in range(B):
            ok[b] = ok[b] * dmin[b] - lsum[b] * yk[b]


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _before(p, j, ya, thr, right):
    """Whether key ``j`` comes before the boundary :func:`_boundary` looks for: beyond the run
    of :func:`_window` to the left (``right`` False), or not beyond it to the right (``right``
    True)."""
    t = p[j] - ya if right else ya - p[j]
    beyond = t > 0.0 and t * t > thr
    return beyond != right


@njit(fastmath=FASTMATH, cache=True)
def _boundary(p, ya, thr, right, g):
    """The first index in ``[0, N]`` at which :func:`_before` fails (it holds on a prefix of
    the sorted keys), searched from the guess ``g``: doubling steps away from it until the
    boundary is bracketed, then bisection.  The answer does not depend on the guess."""
    n = p.shape[0]
    g = min(max(g, 0), n)
    if g < n and _before(p, g, ya, thr, right):
        a = g                       # before(a)
        step = 1
        c = g + 1
        while c < n and _before(p, c, ya, thr, right):
            a = c
            step += step
            c = a + step
        c = min(c, n)               # not before(c), or c = N
    else:
        c = g                       # not before(c), or c = N
        step = 1
        a = g - 1
        while a >= 0 and not _before(p, a, ya, thr, right):
            c = a
            step += step
            a = c - step
        a = max(a, -1)              # before(a), or a = -1
    while c - a > 1:
        mid = (a + c) >> 1
        if _before(p, mid, ya, thr, right):
            a = mid
        else:
            c = mid
    return c


@njit(fastmath=FASTMATH, cache=True)
def _window(p, ya, thr, lo0, hi0):
    """``[lo, hi)``: the run of sorted keys ``p`` with ``(ya - p_j)^2 <= thr``, searched from
    the guesses ``lo0``, ``hi0`` (:func:`_boundary`; a lane's previous run).

    The squares are rounded as the distances round them (``t = ya - p_j``, then ``t * t``;
    ``p_j - ya`` is its exact negative), so a data point outside the run has a computed
    squared distance above ``thr``: rounding is monotone, and that distance adds a
    non-negative term to this one.  From a lane's previous run the search takes a few steps
    (a run moves little between evaluations); two bisections from scratch, of log2(N)
    dependent steps each, cost 12 % of a one-pass solve at N = 1000 (gl-dopri5).
    """
    return _boundary(p, ya, thr, False, lo0), _boundary(p, ya, thr, True, hi0)


@njit(fastmath=FASTMATH, cache=True)
def _distances(XS, Y, b, lo, hi, vs):
    """``vs[j] = |Y[:, b] - XS[:, lo + j]|^2`` for ``j < hi - lo``: the squares of the
    coordinate differences added in coordinate order, as :func:`_two_pass_sums` adds them
    (so the partial sums never decrease: each rounds a sum of non-negative terms), in one
    loop along the data per coordinate."""
    d = XS.shape[0]
    r = hi - lo
    x = XS[0, lo:hi]        # views from 0: numba then knows no index is negative, so the
    yk = Y[0, b]            # loads are plain vector loads (indexed from lo, they were gathers)
    for j in range(r):
        t = yk - x[j]
        vs[j] = t * t
    for k in range(1, d):
        x = XS[k, lo:hi]
        yk = Y[k, b]
        for j in range(r):
            t = yk - x[j]
            vs[j] += t * t


@njit(fastmath=FASTMATH, cache=True)
def _smallest(vs):
    """The smallest of the non-negative ``vs`` (NaN bits order above +inf unless negative):
    a minimum of their bits as integers, which vectorises where a float minimum does not."""
    low = DIST_BITS_INF
    for j in range(vs.shape[0]):
        low = min(low, _float64_bits_as_int64(vs[j]))
    return _int64_bits_as_float64(low)


@njit(fastmath=FASTMATH, cache=True)
def _weighted_sums(XS, lo, hi, ws, out, b):
    """``out[k, b] = sum_j ws[j] XS[k, lo + j]`` for every coordinate k."""
    for k in range(XS.shape[0]):
        x = XS[k, lo:hi]
        acc = 0.0
        for j in range(hi - lo):
            acc += ws[j] * x[j]
        out[k, b] = acc


@njit(fastmath=FASTMATH, cache=True)
def _first_at(vs, perm, dmin):
    """The lowest ``perm[j]`` with ``vs[j] == dmin``; -1 if none (NaN states)."""
    first = DIST_INDEX_NONE
    for j in range(vs.shape[0]):
        first = min(first, perm[j] if vs[j] == dmin else DIST_INDEX_NONE)
    return first if first < DIST_INDEX_NONE else -1


@njit(fastmath=FASTMATH, cache=True)
def _lane_sums(XS, axis, perm, Y, b, ib, m, exact, want_nearest, vs, ws, out, lo0, hi0):
    """Lane ``b``'s softmax sums (:func:`_one_pass_sums`); ``vs``, ``ws``: scratch of N.

    ``exact`` False: relative to the shift ``m``, over the run of sorted data that can
    carry weight (:func:`_window`, from the guesses ``lo0``, ``hi0``), or refused.  ``exact`` True: over all the data, relative to the smallest
    squared distance, as :func:`_two_pass_sums` forms them (the nearest exponent exactly 0;
    ``inv`` 0 gives every weight 1, ``inv`` infinite the nearest points alone).

    Returns
    -------
    ok : bool
        False when the shift is refused (nothing is written to ``out`` then).
    total : float
        ``sum_j w_j``; ``out[:, b] = sum_j w_j x_j``.
    dmin : float
        The smallest squared distance.
    first : int
        With ``want_nearest``, the lowest original index at ``dmin``.
    lo, hi : int
        The run of sorted data summed over (all of it with ``exact``).
    """
    lo = 0
    hi = XS.shape[1]
    if not exact:
        if not (ib > 0.0 and ib < np.inf and m * ib <= WINDOW_MAX_SCALE):
            return False, 0.0, 0.0, -1, lo0, hi0
        lo, hi = _window(XS[axis], Y[axis, b], (m + WINDOW_NEGLECT / ib) * WINDOW_ABOVE,
                         lo0, hi0)
    r = hi - lo
    _distances(XS, Y, b, lo, hi, vs)
    total = 0.0
    if exact:
        m = _smallest(vs[:r])
    if exact and ib == np.inf:      # sigma -> 0: the nearest points alone, ties evenly
        for j in range(r):
            w = 1.0 if vs[j] == m else 0.0
            ws[j] = w
            total += w
        dmin = m
    else:           # the weights and (as the bits' integer minimum) dmin in one loop
        low = DIST_BITS_INF
        for j in range(r):
            v = vs[j]
            low = min(low, _float64_bits_as_int64(v))
            w = exp_nonpos((m - v) * ib)     # exact: (dmin - v) inv, the two passes' bits
            ws[j] = w
            total += w
        dmin = _int64_bits_as_float64(low)
        if not (exact or (dmin - m) * ib <= WINDOW_MAX_SHIFT):
            return False, 0.0, 0.0, -1, lo, hi
    _weighted_sums(XS, lo, hi, ws, out, b)
    first = _first_at(vs[:r], perm[lo:hi], dmin) if want_nearest else -1
    return True, total, dmin, first, lo, hi


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _one_pass_sums(XS, perm, axis, Y, inv, ref, out, shift, lsum, want_nearest, near,
                   near_d2, vs, ws):
    """The softmax sums of every lane, each in one pass over the data that can carry
    weight, vectorised along the data; written as :func:`_two_pass_sums` writes them, with
    ``shift`` (in place of ``dmin``) the exponent's origin.

    The two passes need the smallest squared distance ``dmin`` before the first weight.
    Any shift ``m <= dmin`` gives the same softmax: the weights ``exp((m - dist_j) inv)``
    are those relative to ``dmin`` times ``e^{-(dmin - m) inv}``.  Such an ``m`` comes
    from the lane's reference (``ref``: a state of this trajectory, its first or its last
    evaluated, and the smallest squared distance ``ref_d`` from it) by the triangle
    inequality ``sqrt(dmin) >= sqrt(ref_d) - |y - ref|``, with relative margins of 2^-40,
    far above the rounding of either side.  One pass over the distances then forms the
    weights and their minimum (as integers: the bits of non-negative doubles order as the
    numbers do, and an integer minimum vectorises), one per coordinate the weighted sums.

    The pass runs over the data sorted along one coordinate (``XS[axis]``), and only over
    the run whose squared gap along it is within ``thr = m + WINDOW_NEGLECT / inv``
    (:func:`_window`): any other point's exponent is below -WINDOW_NEGLECT = -80, so its
    weight is below ``e^-64`` times the nearest point's (whose exponent is at least
    ``-WINDOW_MAX_SHIFT``), and all of them together move ``D`` by less than
    ``2 N e^-64 max|x| = 3e-28 N max|x|``: below the rounding for any N under 10^11.  From
    s ~ 1 on (N = 1000 standard normal points in the plane) the run leaves points out; late
    in the flow it is a few points.

    A lane's shift is refused unless ``0 < inv < inf``, ``m inv <= WINDOW_MAX_SCALE`` and,
    after the pass, ``(dmin - m) inv <= WINDOW_MAX_SHIFT``.  The first two keep every
    exponent far below exp's overflow; the last keeps the weights' rounding near the two
    passes' and implies that the nearest point lies in the run (its squared gap along the
    axis is at most ``dmin < thr``), so that ``dmin`` is the minimum over all points.  NaN
    and infinite states fail it.  A refused lane takes the exact two passes of its own
    (:func:`_lane_sums` with ``exact``).  Either way the result depends on the lane's own
    state, time and reference only, so a trajectory's bits do not depend on its lane, its
    neighbours or the thread count.
    """
    wide_vectors()
    d = XS.shape[0]
    for b in range(Y.shape[1]):
        step2 = 0.0
        for k in range(d):
            e = Y[k, b] - ref[k, b]
            step2 += e * e
        ref_d = ref[d, b]       # negative, infinite or NaN: no reference, shift 0
        root = np.sqrt(ref_d) if 0.0 <= ref_d < np.inf else 0.0
        gap = root * WINDOW_BELOW - np.sqrt(step2) * WINDOW_ABOVE
        m = gap * gap * WINDOW_BELOW if gap > 0.0 else 0.0
        lo, hi = int(ref[d + 1, b]), int(ref[d + 2, b])
        for exact in (False, True):     # one call site: one copy of the sums to compile
            ok, total, dmin, first, lo, hi = _lane_sums(XS, axis, perm, Y, b, inv[b], m, exact,
                                                        want_nearest, vs, ws, out, lo, hi)
            if ok:
                break
        if exact:
            m = dmin
        lsum[b] = total
        shift[b] = m
        if want_nearest:
            near[b] = first
            near_d2[b] = dmin
        for k in range(d):
            ref[k, b] = Y[k, b]
        ref[d, b] = dmin
        if not exact:
            ref[d + 1, b] = lo
            ref[d + 2, b] = hi


def sorted_data(XT):
    """The data sorted along its coordinate of largest range, for :func:`_one_pass_sums`.

    Returns
    -------
    XS : (d, N) float64
    perm : (N,) int64
        ``XS[:, j] = XT[:, perm[j]]``.
    axis : int
    """
    axis = int(np.argmax(XT.max(axis=1) - XT.min(axis=1)))
    perm = np.argsort(XT[axis], kind="stable").astype(np.int64)
    return np.ascontiguousarray(XT[:, perm]), perm, axis


_F2 = types.float64[:, ::1]
_F1 = types.float64[::1]
#: how :func:`lane_chunk` calls the right-hand side
LANE_RHS_SIGNATURE = types.void(_F2, _F2, _F1, types.int64, types.float64, _F2, _F2, _F1, _F1,
                                _F1, _F1, types.boolean, types.int64[::1], _F1, _F2,
                                types.int64[::1], types.int64, _F2)


@functools.cache
def lane_rhs(one_pass=False):
    """:func:`_lane_rhs` (``one_pass``: :func:`_lane_rhs_one_pass`) compiled once, on its own
    (or loaded from its cache entry), as the function pointer :func:`lane_chunk` calls.

    Why not a plain call: numba links every callee into its caller's module and optimises the
    copy again.  The process that compiles the caller runs the callee's own code; a process
    that loads the caller from the cache runs the re-optimised copy, which for this function
    was 17-24 % slower (and rounded differently in the last bit).  Through a pointer every
    process runs the one compiled code.
    """
    return cfunc(LANE_RHS_SIGNATURE, cache=True, fastmath=FASTMATH, error_model="numpy",
                 _nrt=False)(_lane_rhs_one_pass if one_pass else _lane_rhs)


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _lane_coefficients(e, a, uniform, sg, h, ce, ca):
    """``ce[b] = e[sg_b]`` and ``ca[j, b] = h_b a[sg_b, j]`` for every column j of ``a``.

    ``e`` (m,) and ``a`` (m, k) hold a stage's (or the update's) coefficients per
    segment; with one set (``uniform``) the loops over lanes have no gathers.
    """
    L = ce.shape[0]
    if uniform:
        e0 = e[0]
        for b in range(L):
            ce[b] = e0
        for j in range(a.shape[1]):
            aj = a[0, j]
            caj = ca[j]
            for b in range(L):
                caj[b] = h[b] * aj
    else:
        for b in range(L):
            ce[b] = e[sg[b]]
            for j in range(a.shape[1]):
                ca[j, b] = h[b] * a[sg[b], j]


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _lane_row(u, G, n, ce, ca, out):
    """``out[k, b] = ce[b] u[k, b] + sum_{j<n} ca[j, b] G[j, k, b]``: a stage or the update."""
    for k in range(u.shape[0]):
        uk = u[k]
        ok = out[k]
        for b in range(uk.shape[0]):
            ok[b] = ce[b] * uk[b]
        for j in range(n):
            gjk = G[j, k]
            caj = ca[j]
            for b in range(uk.shape[0]):
                ok[b] += caj[b] * gjk[b]


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _lane_lawson_coefficients(a, n, decay, h, growth, ce, ca):
    """Generalized Lawson weights of a row for every lane (``scalar.row_weights``, vectorised).

    ``ce[b] = decay[b] = e^{-c_row h_b}``, ``ca[0, b] = 1 - ce[b]`` and
    ``ca[j, b] = h_b a_j ce[b] growth[j, b]`` for ``1 <= j < n``.
    """
    L = ce.shape[0]
    for b in range(L):
        ce[b] = decay[b]
        ca[0, b] = 1.0 - ce[b]
    for j in range(1, n):
        aj = a[j]
        caj = ca[j]
        gj = growth[j]
        for b in range(L):
            caj[b] = h[b] * aj * ce[b] * gj[b]


@njit(nogil=True, cache=True, error_model="numpy", _nrt=False)
def lane_chunk(queue, rhs_fn, XT, sorted_xt, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C,
               Berr, P, cfg, Ysave, Yout, Uout, outi, outf, work):
    """The trajectories of the shared ``queue`` (:func:`launch.take_next`: an int64 counter,
    0 at the start, shared by every thread's call), LANES at a time; ``rhs_fn`` is
    :func:`lane_rhs`'s function pointer, ``sorted_xt`` the data as :func:`sorted_data`
    returns them, ``work`` this call's scratch (:func:`work_arrays`).

    :func:`trajectory.advance` without recentring or ``V^delta`` tracking.
    Arguments as in :func:`scoredyn.kernels.odeint.integrate` (same meaning; the
    recentring, ``delta`` and ``s_star`` entries of ``cfg`` must be off; ``Uout``,
    ``outi``'s centre and ``outf``'s entry-time rows are left as they are).

    Compiled without reference counting (``_nrt=False``; it allocates nothing): every row
    view and every inlined helper's array argument would otherwise cost an atomic
    increment and decrement, about 150 of each per step of 64 lanes (8 % of the time at
    N = 20).
    """
    wide_vectors()
    ell, adaptive, lawson, rtol, atol, h0, max_steps, reg_kind, reg_param = _config(cfg)
    n_steps = outi[OUT_N_STEPS]
    n_rejected = outi[OUT_N_REJECTED]
    nfev = outi[OUT_NFEV]
    status = outi[OUT_STATUS]
    nearest = outi[OUT_NEAREST]
    cell_changes = outi[OUT_CELL_CHANGES]
    nearest_d2 = outf[OUT_NEAREST_D2]
    max_norm = outf[OUT_MAX_NORM]
    boundary_distance = outf[OUT_BOUNDARY_DISTANCE]
    d = XT.shape[0]
    always = d > 0          # a runtime True: literal ones would compile the rhs twice
    S = C.shape[0]
    nseg = grid.shape[0] - 1
    s_end = grid[nseg]
    uniform = A.shape[0] == 1       # one set of coefficients for every step (adaptive, or one segment)
    L = LANES
    fl, it, st, G, ca, growth, decay, dist, vec, bth, scratch, ref = work
    XS, perm, axis = sorted_xt
    u = st[0]
    Ys = st[1]
    unew = st[2]
    inv = fl[0]
    dmin = fl[1]
    lsum = fl[2]
    sl = fl[3]
    ce = fl[4]
    neard = fl[5]
    s = fl[6]
    h = fl[7]
    lerrold = fl[8]
    lerr_next = fl[9]
    en = fl[10]
    acc2 = fl[11]
    ebuf = fl[12]
    escale = fl[13]
    fac_acc = fl[14]
    fac_rej = fl[15]
    ymax2 = fl[16]        # the largest |u|^2 so far: one sqrt per trajectory, at its end
    dd1 = fl[17]
    thr = fl[18]
    near = it[0]
    traj = it[1]
    nst = it[2]
    nrej = it[3]
    nf = it[4]
    seg = it[5]
    kseg = it[6]
    nextg = it[7]
    sg = it[8]
    ncell = it[9]
    cell = it[10]
    i1 = it[11]
    stat = it[12]
    outcome = it[13]
    tmp = vec[0]
    f0 = vec[1]
    mean = vec[2]
    zero = vec[3]
    nq = Y0.shape[0]
    queue_empty = False
    while True:
        # -- step start for every lane: finish, refill, then step size
        active = 0
        for b in range(L):
            while True:
                if traj[b] < 0:
                    if queue_empty:
                        break
                    q = take_next(queue)
                    if q >= nq:
                        queue_empty = True
                        break
                    traj[b] = q
                    for k in range(d):
                        u[k, b] = Y0[q, k]
                        tmp[k] = Y0[q, k]
                    if save_slot[0] >= 0:
                        for k in range(d):
                            Ysave[save_slot[0], q, k] = tmp[k]
                    s[b] = grid[0]
                    i1[b], dd1[b] = _rhs(XT, tmp, zero, s[b], reg_kind, reg_param, f0,
                                         mean, scratch, always)
                    for k in range(d):
                        ref[k, b] = tmp[k]
                    ref[d, b] = dd1[b]
                    for k in range(d):
                        G[0, k, b] = f0[k]
                    nf[b] = 1
                    h[b] = h0
                    lerrold[b] = LOG_ERROLD_START
                    nst[b] = 0
                    nrej[b] = 0
                    seg[b] = 0
                    kseg[b] = 0
                    nextg[b] = 1
                    ymax2[b] = 0.0
                    ncell[b] = 0
                    cell[b] = -1
                    stat[b] = STATUS_RUNNING
                # step start of lane b (G[0] holds f at u)
                if stat[b] == STATUS_RUNNING:
                    nrm = 0.0
                    for k in range(d):
                        nrm += u[k, b] ** 2
                    ymax2[b] = max(ymax2[b], nrm)
                    if i1[b] != cell[b]:
                        if cell[b] >= 0:
                            ncell[b] += 1
                        cell[b] = i1[b]
                    if nst[b] >= max_steps:
                        stat[b] = STATUS_MAX_STEPS
                    elif adaptive:
                        h[b] = min(h[b], s_end - s[b])
                        if lawson:
                            h[b] = min(h[b], LAWSON_MAX_STEP)
                        if h[b] <= STEP_RESOLUTION * max(1.0, abs(s[b])):
                            stat[b] = STATUS_STEP_UNDERFLOW
                        sg[b] = 0
                    else:
                        sg[b] = seg[b]
                        h[b] = (grid[seg[b] + 1] - grid[seg[b]]) / seg_steps[seg[b]]
                if stat[b] == STATUS_RUNNING:
                    break
                # lane b's trajectory is over: write it out, take the next one
                q = traj[b]
                nrm = 0.0
                for k in range(d):
                    Yout[q, k] = u[k, b]
                    tmp[k] = u[k, b]
                    nrm += u[k, b] ** 2
                max_norm[q] = np.sqrt(max(ymax2[b], nrm))     # sqrt is monotone: same bits
                bd, gap, ntie = cell_margins(XT, tmp, zero, i1[b], -np.inf)   # no tie count
                boundary_distance[q] = bd
                cell_changes[q] = ncell[b] + (1 if i1[b] != cell[b] else 0)
                nearest[q] = i1[b]
                nearest_d2[q] = dd1[b]
                n_steps[q] = nst[b]
                n_rejected[q] = nrej[b]
                nfev[q] = nf[b]
                status[q] = stat[b]
                traj[b] = -1
                h[b] = 0.0
            if traj[b] >= 0:
                active += 1
        if active == 0:
            break
        # -- stages, all lanes in lockstep (idle lanes compute on their last state)
        for k in range(d):
            for b in range(L):
                G[0, k, b] += ell * u[k, b]
        if lawson:     # decay[j] = e^{-c_j h}, growth[j] = e^{c_j h} (h <= 64),
                       # decay[S] = e^{-h}
            # (the division takes the exp from a register and vectorises; reading it back
            # from decay, LLVM issued 64 scalar divisions.  decay[S] goes through
            # exp_nonpos_into: as a loop of its own here, LLVM called exp_nonpos per lane.)
            # Row 0 is never read (G_0 enters with 1 - e^{-c_i h}); a node that repeats an
            # earlier one (dopri5: c_5 = c_6 = 1, and 1 again for decay[S]) copies its factors
            for j in range(1, S + 1):
                cj = C[j] if j < S else 1.0
                first = j
                for i in range(1, j):
                    if C[i] == cj:
                        first = i
                        break
                ej = decay[j]
                if first < j:
                    ef = decay[first]
                    for b in range(L):
                        ej[b] = ef[b]
                    if j < S:
                        gj = growth[j]
                        gf = growth[first]
                        for b in range(L):
                            gj[b] = gf[b]
                elif j < S:
                    gj = growth[j]
                    for b in range(L):
                        e = exp_nonpos(-cj * h[b])
                        ej[b] = e
                        gj[b] = 1.0 / e
                else:
                    for b in range(L):
                        sl[b] = -h[b]
                    exp_nonpos_into(sl, ej)
        for i in range(1, S):
            # per-lane coefficients first, so that the combination below vectorises
            if lawson:
                _lane_lawson_coefficients(A[0, i], i, decay[i], h, growth, ce, ca)
            else:
                _lane_coefficients(E[:, i], A[:, i, :i], uniform, sg, h, ce, ca)
            _lane_row(u, G, i, ce, ca, Ys)
            for b in range(L):
                sl[b] = s[b] + C[i] * h[b]
            rhs_fn(XT, Ys, sl, reg_kind, reg_param, G[i], dist, inv, dmin, lsum, thr,
                   adaptive and i == S - 1, near, neard, XS, perm, axis, ref)
            for k in range(d):
                gik = G[i, k]
                yk = Ys[k]
                if lawson:         # stored as N_i - N_0
                    g0k = G[0, k]
                    for b in range(L):
                        gik[b] = (gik[b] + ell * yk[b]) - g0k[b]
                else:
                    for b in range(L):
                        gik[b] += ell * yk[b]
        if lawson:                 # leaves ce = e^{-h}, used by the error below
            _lane_lawson_coefficients(B[0], S, decay[S], h, growth, ce, ca)
        else:
            _lane_coefficients(Ef, B, uniform, sg, h, ce, ca)
        _lane_row(u, G, S, ce, ca, unew)
        if adaptive:
            # error norms and both step factors of every lane, vectorised (the powers as
            # exp of logs); lanes that are idle or not finite are handled below
            i0 = 1 if lawson else 0     # Lawson: G_0 = N_0 does not enter the error
            for b in range(L):
                acc2[b] = 0.0
                escale[b] = h[b] * ce[b] if lawson else h[b]    # ce = e^{-h} (Lawson)
            for k in range(d):
                for b in range(L):
                    ebuf[b] = 0.0
                for i in range(i0, S):
                    gik = G[i, k]
                    bi = Berr[i]
                    if lawson:
                        gri = growth[i]
                        for b in range(L):
                            ebuf[b] += bi * gri[b] * gik[b]
                    else:
                        for b in range(L):
                            ebuf[b] += bi * gik[b]
                uk = u[k]
                nk = unew[k]
                for b in range(L):
                    v = error_ratio_cpu(escale[b] * ebuf[b], uk[b], nk[b], rtol, atol)
                    acc2[b] += v * v
            for b in range(L):
                en[b] = np.sqrt(acc2[b] / d)
            # the powers as exps of logs, each one vectorised loop (distinct input and output:
            # LLVM's overlap check would send an in-place loop down its scalar path)
            log_pos_into(en, lerr_next)             # log en, for the three lines below
            for b in range(L):
                ebuf[b] = accept_step_exponent_cpu(lerr_next[b], lerrold[b])
                escale[b] = reject_step_exponent_cpu(lerr_next[b])
                lerr_next[b] = next_log_errold_cpu(lerr_next[b])
            exp_any_into(ebuf, fac_acc)
            exp_nonpos_into(escale, fac_rej)
        # -- per lane: accept or reject, save, advance.  Each lane's outcome first, in loops
        # that vectorise: OUTCOME_IDLE, _NONFINITE, _REJECTED or _ACCEPTED
        for b in range(L):
            outcome[b] = OUTCOME_ACCEPTED if traj[b] >= 0 else OUTCOME_IDLE
        for k in range(d):
            nk = unew[k]
            for b in range(L):
                outcome[b] = outcome[b] if np.isfinite(nk[b]) else min(outcome[b],
                                                                         OUTCOME_NONFINITE)
        if adaptive:
            for b in range(L):
                rejected = outcome[b] == OUTCOME_ACCEPTED and en[b] > 1.0
                outcome[b] = OUTCOME_REJECTED if rejected else outcome[b]
        # the counters, the step size and the saves, lane by lane (the saves read the step's
        # start, u and G_0, which the loops after this one overwrite)
        for b in range(L):
            if outcome[b] == OUTCOME_IDLE:
                continue
            nf[b] += S - 1
            if outcome[b] == OUTCOME_NONFINITE:
                stat[b] = STATUS_NONFINITE
                continue
            if adaptive:
                if outcome[b] == OUTCOME_REJECTED:
                    nrej[b] += 1
                    h[b] *= fac_rej[b]
                    continue
                q = traj[b]
                # the step that reaches s_end ends there exactly (see trajectory.advance)
                s_next = s_end if h[b] >= s_end - s[b] else s[b] + h[b]
                while nextg[b] <= nseg and grid[nextg[b]] <= s_next:
                    slot = save_slot[nextg[b]]
                    if slot >= 0:
                        th = (grid[nextg[b]] - s[b]) / h[b]
                        for i in range(S):     # Lawson: w(theta) weights, G_0 apart
                            bth[i] = dense_weight_cpu(th, P[i, 0], P[i, 1], P[i, 2], P[i, 3])
                            if lawson:
                                bth[i] = 0.0 if i == 0 else bth[i] * growth[i, b]
                        eth = exp_nonpos(-th * h[b]) if lawson else 1.0
                        for k in range(d):
                            acc = 0.0
                            for i in range(S):
                                acc += bth[i] * G[i, k, b]
                            if lawson:
                                Ysave[slot, q, k] = (eth * (u[k, b] + h[b] * acc)
                                                     + (1.0 - eth) * G[0, k, b])
                            else:
                                Ysave[slot, q, k] = u[k, b] + h[b] * acc
                    nextg[b] += 1
                lerrold[b] = lerr_next[b]
                s[b] = s_next
                h[b] *= fac_acc[b]
                i1[b] = near[b]
                dd1[b] = neard[b]
                nst[b] += 1
                if s[b] >= s_end:
                    stat[b] = STATUS_SUCCESS
            else:
                nst[b] += 1
                kseg[b] += 1
                if kseg[b] == seg_steps[seg[b]]:
                    s[b] = grid[seg[b] + 1]
                    slot = save_slot[seg[b] + 1]
                    if slot >= 0:
                        for k in range(d):
                            Ysave[slot, traj[b], k] = unew[k, b]
                    seg[b] += 1
                    kseg[b] = 0
                    if seg[b] == nseg:
                        stat[b] = STATUS_SUCCESS
                else:
                    s[b] = grid[seg[b]] + kseg[b] * h[b]
        # the states and G_0 of every lane, as selects: an accepted step moves to unew with
        # f at unew (Lawson: G_{S-1} = N_{S-1} - N_0) as G_0; a rejected one takes G_0 back
        # to f at u; idle and non-finite lanes keep both
        for k in range(d):
            g0k = G[0, k]
            glk = G[S - 1, k]
            uk = u[k]
            nk = unew[k]
            if adaptive:
                for b in range(L):
                    new_f = (glk[b] + (g0k[b] if lawson else 0.0)) - ell * nk[b]
                    old_f = g0k[b] - ell * uk[b]
                    g0k[b] = (new_f if outcome[b] == OUTCOME_ACCEPTED else
                              old_f if outcome[b] == OUTCOME_REJECTED else g0k[b])
            for b in range(L):
                uk[b] = nk[b] if outcome[b] == OUTCOME_ACCEPTED else uk[b]
        if not adaptive:
            # f at the new states: stage 0 of the next step and the nearest site
            rhs_fn(XT, u, s, reg_kind, reg_param, G[0], dist, inv, dmin, lsum, thr, always,
                   near, neard, XS, perm, axis, ref)
            for b in range(L):
                if traj[b] >= 0 and stat[b] != STATUS_NONFINITE:
                    nf[b] += 1
                    i1[b] = near[b]
                    dd1[b] = neard[b]


def integrate_lanes(XT, *args):
    """Every trajectory on all cores: one :func:`lane_chunk` per thread (:func:`lane_workers`),
    each with its own :func:`work_arrays`, all taking trajectories from one queue.

    ``integrate_lanes(XT, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave,
    Yout, Uout, outi, outf)``, as :func:`scoredyn.kernels.odeint.integrate`.
    """
    nq = args[0].shape[0]
    d, n = XT.shape
    rhs_fn = lane_rhs(one_pass(d, n))
    n_stages = args[8].shape[0]
    sorted_xt = sorted_data(XT)
    queue = np.zeros(1, np.int64)

    def worker():
        lane_chunk(queue, rhs_fn, XT, sorted_xt, *args, work_arrays(d, n, n_stages))

    run_workers(worker, lane_workers(nq))


def work_arrays(d, n, n_stages):
    """The scratch of one :func:`lane_chunk` call, for ``LANES`` lanes in dimension ``d``
    with ``n`` data points and a method of ``n_stages`` stages.

    Returns
    -------
    tuple
        ``(fl, it, st, G, ca, growth, decay, dist, vec, bth, scratch, ref)``: per-lane
        float rows (19, LANES) and integer rows (14, LANES; trajectory indices start at -1,
        no trajectory), the states ``u``, stage argument and update (3, d, LANES), the
        stages (S, d, LANES), the combination weights (S, LANES), the Lawson factors
        ``e^{c_j h}`` (S, LANES) and ``e^{-c_j h}``, ``e^{-h}`` (S + 1, LANES), the
        distances (n, LANES; (2, n) for the one-pass sums, which need 2n numbers), four (d,)
        vectors, the dense-output weights (S,), the one-trajectory right-hand side's tile
        (TILE_N,) and the right-hand side's reference states and runs (d + 3, LANES;
        :func:`_lane_rhs`; none yet).
    """
    L = LANES
    it = np.zeros((14, L), np.int64)
    it[1] = -1
    return (np.zeros((19, L)), it, np.zeros((3, d, L)), np.zeros((n_stages, d, L)),
            np.zeros((n_stages, L)), np.ones((n_stages, L)), np.ones((n_stages + 1, L)),
            np.empty((2, n) if one_pass(d, n) else (n, L)), np.zeros((4, d)), np.empty(n_stages),
            np.empty(TILE_N), np.full((d + 3, L), -1.0))


def lane_workers(nq):
    """Threads for ``nq`` trajectories: every thread, but no more than there are lane sets.

    The threads share one queue of trajectories (:func:`lane_chunk`), so they end together,
    within one trajectory's run, and a lane idles only in that last stretch.  Before, each
    thread ran fixed ranges of at most 1024 trajectories, and each range's last trajectories
    ran with the other lanes idle: 5 % of the lane steps at N = 20, Q = 10^4 (gl-dopri5,
    2 threads; 0.4 % with one queue, counted from the trajectories' step counts).  Which lane
    or thread runs a trajectory does not change its arithmetic, so neither does the result.
    """
    return max(1, min(numba.get_num_threads(), -(-nq // LANES)))
