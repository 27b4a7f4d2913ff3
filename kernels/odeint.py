"""Fused time loop for the log-time reverse ODE of the empirical score.

``dz/ds = -r(s) (z - D(z; sigma = e^{-s}))`` (DESIGN.md §2), one trajectory per
parallel iteration, every step compiled (no Python per step), with the
streaming posterior reduction inside and online diagnostics instead of
stored paths.

Every method is written in one explicit form (classical RK: ``ell = 0``,
``E = 1``; exponential RK for the split ``y' = -y + N``: ``ell = 1``):

    Y_i   = E_i u + h sum_{j<i} A_ij G_j,   G_j = f(Y_j, s + c_j h) + ell Y_j
    u_new = E_f u + h sum_i B_i G_i

Fixed-step methods take ``n_k`` equal steps in each segment between
consecutive grid points (so saved states land exactly); the adaptive
Dormand-Prince 5(4) pair controls the step per trajectory with a PI
controller and saves through its 4th-order dense output.  In generalized
Lawson form (``lawson``) the same pair's weights depend on the step and are
formed at every step (``scalar.row_weights``).

Recentring: the state is the deviation ``u = y - x_c`` from the current
nearest site ``x_c`` (re-chosen at the start of each step), so ``|u| ~ e^{-s}``
keeps full relative precision far past the float64 floor of ``y``.
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH, TILE_N
from .mathfn import exp_any, exp_nonpos, log_pos
from .reduction import posterior_one
from .scalar import (LAWSON_MAX_STEP, LOG_ERROLD_START, accept_step_exponent_cpu,
                     dense_weight_cpu, empirical_bayes_exponent_cpu, error_ratio_cpu,
                     lawson_growth_cpu, next_log_errold_cpu, reject_step_exponent_cpu,
                     row_weights_cpu, tikhonov_shrink_cpu)
from .voronoi import cell_margins

REG_NONE, REG_TIKHONOV, REG_EMPIRICAL_BAYES = 0, 1, 2
STATUS_RUNNING, STATUS_SUCCESS, STATUS_MAX_STEPS, STATUS_STEP_UNDERFLOW, STATUS_NONFINITE = (
    -9, 0, 1, 2, 3)


@njit(fastmath=FASTMATH, cache=True, error_model="numpy")
def _rhs(XT, u, xc, s, reg_kind, reg_param, out, mean, dist, want_nearest):
    """out = -r (u - (D - x_c)); returns (nearest index, squared distance) if asked, else (-1, inf)."""
    d = XT.shape[0]
    e2s = exp_any(2.0 * s)                # inf past s ~ 354: handled by the kernel
    inv = 0.5 * e2s
    dmin, lsum, i1, d1, i2, d2 = posterior_one(XT, u, 1.0, xc, inv, want_nearest, mean, dist)
    r = 1.0
    if reg_kind == REG_TIKHONOV:
        r = tikhonov_shrink_cpu(reg_param, e2s)
    elif reg_kind == REG_EMPIRICAL_BAYES:
        r = exp_nonpos(empirical_bayes_exponent_cpu(lsum, dmin, inv, np.log(reg_param)))
    for k in range(d):
        out[k] = r * (mean[k] - u[k])
    return i1, d1


@njit(fastmath=FASTMATH, cache=True)
def _rms_error(err, u, unew, rtol, atol):
    acc = 0.0
    for k in range(u.shape[0]):
        v = error_ratio_cpu(err[k], u[k], unew[k], rtol, atol)
        acc += v * v
    return np.sqrt(acc / u.shape[0])


@njit(parallel=True, cache=True)
def integrate(XT, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, ell,
              adaptive, lawson, Berr, P, rtol, atol, h0, max_steps, reg_kind, reg_param, recentre,
              delta, s_star, Ysave, Yout, Uout, centre, n_steps, n_rejected, nfev, status, nearest,
              nearest_d2, max_norm, cell_changes, boundary_distance, entry_time,
              first_inside):
    """Integrate every trajectory from ``grid[0]`` to ``grid[-1]``.

    Parameters
    ----------
    XT : (d, N) float64
        Data, transposed.
    Y0 : (Q, d) float64
        Initial states.
    grid : (m + 1,) float64
        Increasing times: the span's ends and the save times.
    save_slot : (m + 1,) int64
        Index into ``Ysave`` for each grid time, or -1.
    seg_steps : (m,) int64
        Fixed-step methods: steps per segment (ignored when adaptive).
    A : (m, S, S), B, E : (m, S), Ef : (m,), C : (S,) float64
        The method's coefficients per segment (exponential ones depend on h).
    ell : float
        1 for exponential methods (``G = f + Y``), 0 for classical ones.
    adaptive : bool
        Embedded pair with error weights ``Berr`` (S,) and dense output ``P`` (S, 4)
        (first-same-as-last: stage S-1 is evaluated at the new state).
    lawson : bool
        Adaptive only: ``A[0], B[0], Berr, P`` are a classical tableau applied in
        generalized Lawson form (``ell = 1``), its weights formed at every step
        (:func:`scalar.row_weights`), ``G_j`` for ``j >= 1`` stored as
        ``N_j - N_0``, and steps at most ``LAWSON_MAX_STEP``.
    rtol, atol, h0 : float
        Tolerances and the first step (adaptive).
    max_steps : int
    reg_kind : int
        0 none, 1 Tikhonov (``reg_param = c``), 2 Empirical Bayes (``reg_param = tau``).
    recentre : bool
    delta : float
        > 0: track entry into the shrunken cell ``V^delta`` (one extra O(N d)
        pass per step); <= 0: off.
    s_star : float
        With ``delta``: also record the first step start at or after ``s_star``
        at which the state is in ``V^delta`` of its nearest site.
    Ysave : (n_save, Q, d) float64, out
    Yout, Uout : (Q, d) float64, out
        Final state and its deviation from the final centre.
    centre : (Q,) int64, out
        Site the deviation is measured from (-1 without recentring).
    n_steps, n_rejected, nfev, status, nearest : (Q,) int64, out
    nearest_d2, max_norm : (Q,) float64, out
        Final squared distance to the nearest site; largest ``|y|`` seen at the
        start of each step and at the end.
    cell_changes : (Q,) int64, out
        Number of times the nearest site changed between step starts.
    boundary_distance : (Q,) float64, out
        Final distance to the boundary of the final cell.
    entry_time : (Q,) float64, out
        Start of the last uninterrupted stay in ``V^delta`` of the final cell
        (NaN if the final state is not in it, or ``delta <= 0``).
    first_inside : (Q,) float64, out
        First step start ``>= s_star`` in ``V^delta`` (NaN if none).  Cell
        invariance after ``s*`` means ``entry_time <= first_inside``.
    """
    d = XT.shape[0]
    nq = Y0.shape[0]
    S = C.shape[0]
    nseg = grid.shape[0] - 1
    s_end = grid[nseg]
    for q in prange(nq):
        u = Y0[q].copy()
        xc = np.zeros(d)
        c = -1
        G = np.empty((S, d))
        Ys = np.empty(d)
        unew = np.empty(d)
        err = np.empty(d)
        mean = np.empty(d)
        dist = np.empty(TILE_N)
        f0 = np.empty(d)
        w = np.empty(S)
        growth = np.empty(S)
        bth = np.empty(S)
        ymax = 0.0
        ncell = 0
        cell = -1
        entry = np.nan
        first_in = np.nan
        nst = 0
        nrej = 0
        nf = 0
        stat = STATUS_RUNNING
        if save_slot[0] >= 0:
            Ysave[save_slot[0], q, :] = u
        s = grid[0]
        i1, dd1 = _rhs(XT, u, xc, s, reg_kind, reg_param, f0, mean, dist, True)
        nf += 1
        h = h0
        lerrold = LOG_ERROLD_START
        li1 = i1
        ld1 = dd1
        seg = 0
        k_in_seg = 0
        next_grid = 1
        while stat == STATUS_RUNNING:
            # -- start of a step: f0 = f(u, s), i1 = nearest site of y = u + xc
            if recentre and i1 != c:
                for k in range(d):
                    xn = XT[k, i1]
                    u[k] += xc[k] - xn
                    xc[k] = xn
                c = i1
            nrm = 0.0
            for k in range(d):
                nrm += (u[k] + xc[k]) ** 2
            ymax = max(ymax, np.sqrt(nrm))
            if i1 != cell:
                if cell >= 0:
                    ncell += 1
                cell = i1
                entry = np.nan
            if delta > 0.0:
                bd, gap, nt = cell_margins(XT, u, xc, i1, 0.0)
                if gap >= delta:
                    if np.isnan(entry):
                        entry = s
                    if s >= s_star and np.isnan(first_in):
                        first_in = s
                else:
                    entry = np.nan
            if nst >= max_steps:
                stat = STATUS_MAX_STEPS
                break
            if adaptive:
                h = min(h, s_end - s)
                if lawson:
                    h = min(h, LAWSON_MAX_STEP)
                    lawson_growth_cpu(C, S, h, growth)
                if h <= 1e-14 * max(1.0, abs(s)):
                    stat = STATUS_STEP_UNDERFLOW
                    break
                sg = 0
            else:
                sg = seg
                h = (grid[seg + 1] - grid[seg]) / seg_steps[seg]
            # -- stages
            for k in range(d):
                G[0, k] = f0[k] + ell * u[k]
            for i in range(1, S):
                e0 = row_weights_cpu(A[sg, i], i, E[sg, i], C[i], h, lawson, growth, w)
                for k in range(d):
                    acc = e0 * u[k]
                    for j in range(i):
                        acc += w[j] * G[j, k]
                    Ys[k] = acc
                li1, ld1 = _rhs(XT, Ys, xc, s + C[i] * h, reg_kind, reg_param, G[i], mean, dist,
                                adaptive and i == S - 1)
                nf += 1
                for k in range(d):
                    G[i, k] += ell * Ys[k]
                    if lawson:
                        G[i, k] -= G[0, k]
            e0 = row_weights_cpu(B[sg], S, Ef[sg], 1.0, h, lawson, growth, w)
            for k in range(d):
                acc = e0 * u[k]
                for i in range(S):
                    acc += w[i] * G[i, k]
                unew[k] = acc
            finite = True
            for k in range(d):
                if not np.isfinite(unew[k]):
                    finite = False
            if not finite:
                stat = STATUS_NONFINITE
                break
            if adaptive:
                # FSAL: the last stage was evaluated at unew
                row_weights_cpu(Berr, S, 0.0, 1.0, h, lawson, growth, w)
                if lawson:
                    w[0] = 0.0          # G_0 does not enter the error (N_0 - N_0)
                for k in range(d):
                    acc = 0.0
                    for i in range(S):
                        acc += w[i] * G[i, k]
                    err[k] = acc
                en = _rms_error(err, u, unew, rtol, atol)
                if en > 1.0:
                    nrej += 1
                    h *= exp_any(reject_step_exponent_cpu(log_pos(en)))
                    continue
                # dense output for save times inside (s, s + h]
                while next_grid <= nseg and grid[next_grid] <= s + h:
                    slot = save_slot[next_grid]
                    if slot >= 0:
                        th = (grid[next_grid] - s) / h
                        for i in range(S):
                            bth[i] = dense_weight_cpu(th, P[i, 0], P[i, 1], P[i, 2], P[i, 3])
                        e0 = row_weights_cpu(bth, S, 1.0, th, h, lawson, growth, w)
                        for k in range(d):
                            acc = e0 * u[k]
                            for i in range(S):
                                acc += w[i] * G[i, k]
                            Ysave[slot, q, k] = acc + xc[k]
                    next_grid += 1
                s_new = s + h
                len_ = log_pos(en)
                fac = exp_any(accept_step_exponent_cpu(len_, lerrold))
                lerrold = next_log_errold_cpu(len_)
                h_next = h * fac
                for k in range(d):       # f at unew (G_{S-1} is N_{S-1} - N_0 in Lawson form)
                    f0[k] = G[S - 1, k] + (G[0, k] if lawson else 0.0) - ell * unew[k]
                i1, dd1 = li1, ld1
                s = s_new
                h = h_next
                for k in range(d):
                    u[k] = unew[k]
                nst += 1
                if s >= s_end:
                    stat = STATUS_SUCCESS
            else:
                for k in range(d):
                    u[k] = unew[k]
                nst += 1
                k_in_seg += 1
                if k_in_seg == seg_steps[seg]:
                    s = grid[seg + 1]
                    slot = save_slot[seg + 1]
                    if slot >= 0:
                        for k in range(d):
                            Ysave[slot, q, k] = u[k] + xc[k]
                    seg += 1
                    k_in_seg = 0
                    if seg == nseg:
                        stat = STATUS_SUCCESS
                else:
                    s = grid[seg] + k_in_seg * h
                # f at the new state: stage 0 of the next step (and the final diagnostics)
                i1, dd1 = _rhs(XT, u, xc, s, reg_kind, reg_param, f0, mean, dist, True)
                nf += 1
        # final diagnostics at the last state
        nrm = 0.0
        for k in range(d):
            Yout[q, k] = u[k] + xc[k]
            Uout[q, k] = u[k]
            nrm += Yout[q, k] ** 2
        max_norm[q] = max(ymax, np.sqrt(nrm))
        bd, gap, nt = cell_margins(XT, u, xc, i1, 0.0)
        boundary_distance[q] = bd
        if i1 != cell:
            ncell += 1
            entry = np.nan
        if delta > 0.0 and gap >= delta:
            entry_time[q] = s if np.isnan(entry) else entry
            if s >= s_star and np.isnan(first_in):
                first_in = s
        else:
            entry_time[q] = np.nan
        first_inside[q] = first_in
        cell_changes[q] = ncell
        centre[q] = c
        nearest[q] = i1
        nearest_d2[q] = dd1
        n_steps[q] = nst
        n_rejected[q] = nrej
        nfev[q] = nf
        status[q] = stat
