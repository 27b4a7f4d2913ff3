"""The fused time loop of :mod:`scoredyn.kernels.odeint` on NVIDIA GPUs.

One thread per trajectory runs the whole loop of ``odeint.integrate`` — the
same explicit classical/exponential RK form, per-trajectory steps (PI control
for Dormand-Prince, equal steps per save segment for fixed-step methods),
dense output at save times, recentring, and the same online diagnostics —
with the formulas of :mod:`scalar` compiled for the device.  The kernel is
specialised per dimension ``D`` (``D <= MAX_D``; state vectors and the
``MAX_STAGES`` stage values live in registers / local memory).

The data are read from global memory: every thread of a warp reads the same
data point at the same time (a broadcast served from L1), so no shared-memory
staging is needed; the threads of a warp take different numbers of steps but
the same loop body.  float64 throughout: the collapse ``|y - x_i| ~ e^{-s}``
is tracked to ``s = 60`` by recentring, which float32 would cut near ``s = 16``.
"""
import functools
import math

from numba import cuda, float64

from .cuda_device import (accept_step_exponent, dense_weight, empirical_bayes_exponent,
                          error_ratio, lawson_growth, next_log_errold, query_functions,
                          reject_step_exponent, row_weights, tikhonov_shrink)
from .scalar import LAWSON_MAX_STEP, LOG_ERROLD_START
from .odeint import (REG_EMPIRICAL_BAYES, REG_TIKHONOV, STATUS_MAX_STEPS, STATUS_NONFINITE,
                     STATUS_RUNNING, STATUS_STEP_UNDERFLOW, STATUS_SUCCESS)

#: largest dimension and number of stages of the fused GPU integrator
MAX_D = 16
MAX_STAGES = 7


@functools.cache
def integrate_kernel(D):
    """The fused integrator for dimension ``D`` (arguments of :func:`integrate_source`)."""
    return cuda.jit(integrate_source(D))


@functools.cache
def integrate_source(D):
    """The Python function of the fused integrator for dimension ``D``.

    ``kernel(X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, ell, adaptive, lawson, Berr, P,
    rtol, atol, h0, max_steps, reg_kind, reg_param, recentre, delta, s_star, Ysave, Yout,
    Uout, centre, n_steps, n_rejected, nfev, status, nearest, nearest_d2, max_norm,
    cell_changes, boundary_distance, entry_time, first_inside)`` — the arguments of
    ``odeint.integrate`` with the data ``X`` as (N, D) instead of transposed.
    """
    _, posterior, cell_margins = query_functions(D)

    @cuda.jit(device=True, inline="always")
    def rhs(X, u, xc, s, reg_kind, reg_param, out, mean, want_nearest):
        e2s = math.exp(2.0 * s)
        inv = 0.5 * e2s
        dmin, lsum, i1, d1 = posterior(X, u, xc, inv, want_nearest, mean)
        r = 1.0
        if reg_kind == REG_TIKHONOV:
            r = tikhonov_shrink(reg_param, e2s)
        elif reg_kind == REG_EMPIRICAL_BAYES:
            r = math.exp(empirical_bayes_exponent(lsum, dmin, inv, math.log(reg_param)))
        for k in range(D):
            out[k] = r * (mean[k] - u[k])
        return i1, d1

    def kernel(X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, ell, adaptive, lawson, Berr, P,
               rtol, atol, h0, max_steps, reg_kind, reg_param, recentre, delta, s_star, Ysave,
               Yout, Uout, centre, n_steps, n_rejected, nfev, status, nearest, nearest_d2,
               max_norm, cell_changes, boundary_distance, entry_time, first_inside):
        q = cuda.grid(1)
        if q >= Y0.shape[0]:
            return
        S = C.shape[0]
        nseg = grid.shape[0] - 1
        s_end = grid[nseg]
        u = cuda.local.array(D, float64)
        xc = cuda.local.array(D, float64)
        G = cuda.local.array((MAX_STAGES, D), float64)
        Ys = cuda.local.array(D, float64)
        unew = cuda.local.array(D, float64)
        mean = cuda.local.array(D, float64)
        f0 = cuda.local.array(D, float64)
        Gi = cuda.local.array(D, float64)
        w = cuda.local.array(MAX_STAGES, float64)
        growth = cuda.local.array(MAX_STAGES, float64)
        bth = cuda.local.array(MAX_STAGES, float64)
        for k in range(D):
            u[k] = Y0[q, k]
            xc[k] = 0.0
        c = -1
        ymax = 0.0
        ncell = 0
        cell = -1
        entry = math.nan
        first_in = math.nan
        nst = 0
        nrej = 0
        nf = 0
        stat = STATUS_RUNNING
        if save_slot[0] >= 0:
            for k in range(D):
                Ysave[save_slot[0], q, k] = u[k]
        s = grid[0]
        i1, dd1 = rhs(X, u, xc, s, reg_kind, reg_param, f0, mean, True)
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
                for k in range(D):
                    xn = X[i1, k]
                    u[k] += xc[k] - xn
                    xc[k] = xn
                c = i1
            nrm = 0.0
            for k in range(D):
                nrm += (u[k] + xc[k]) ** 2
            ymax = max(ymax, math.sqrt(nrm))
            if i1 != cell:
                if cell >= 0:
                    ncell += 1
                cell = i1
                entry = math.nan
            if delta > 0.0:
                bd, gap, nt = cell_margins(X, u, xc, i1, 0.0)
                if gap >= delta:
                    if math.isnan(entry):
                        entry = s
                    if s >= s_star and math.isnan(first_in):
                        first_in = s
                else:
                    entry = math.nan
            if nst >= max_steps:
                stat = STATUS_MAX_STEPS
                break
            if adaptive:
                h = min(h, s_end - s)
                if lawson:
                    h = min(h, LAWSON_MAX_STEP)
                    lawson_growth(C, S, h, growth)
                if h <= 1e-14 * max(1.0, abs(s)):
                    stat = STATUS_STEP_UNDERFLOW
                    break
                sg = 0
            else:
                sg = seg
                h = (grid[seg + 1] - grid[seg]) / seg_steps[seg]
            # -- stages
            for k in range(D):
                G[0, k] = f0[k] + ell * u[k]
            for i in range(1, S):
                e0 = row_weights(A[sg, i], i, E[sg, i], C[i], h, lawson, growth, w)
                for k in range(D):
                    acc = e0 * u[k]
                    for j in range(i):
                        acc += w[j] * G[j, k]
                    Ys[k] = acc
                li1, ld1 = rhs(X, Ys, xc, s + C[i] * h, reg_kind, reg_param, Gi, mean,
                               adaptive and i == S - 1)
                nf += 1
                for k in range(D):
                    G[i, k] = Gi[k] + ell * Ys[k]
                    if lawson:
                        G[i, k] -= G[0, k]
            e0 = row_weights(B[sg], S, Ef[sg], 1.0, h, lawson, growth, w)
            for k in range(D):
                acc = e0 * u[k]
                for i in range(S):
                    acc += w[i] * G[i, k]
                unew[k] = acc
            finite = True
            for k in range(D):
                if not math.isfinite(unew[k]):
                    finite = False
            if not finite:
                stat = STATUS_NONFINITE
                break
            if adaptive:
                # FSAL: the last stage was evaluated at unew
                row_weights(Berr, S, 0.0, 1.0, h, lawson, growth, w)
                if lawson:
                    w[0] = 0.0          # G_0 does not enter the error (N_0 - N_0)
                acc2 = 0.0
                for k in range(D):
                    acc = 0.0
                    for i in range(S):
                        acc += w[i] * G[i, k]
                    v = error_ratio(acc, u[k], unew[k], rtol, atol)
                    acc2 += v * v
                en = math.sqrt(acc2 / D)
                if en > 1.0:
                    nrej += 1
                    h *= math.exp(reject_step_exponent(math.log(en)))
                    continue
                # dense output for save times inside (s, s + h]
                while next_grid <= nseg and grid[next_grid] <= s + h:
                    slot = save_slot[next_grid]
                    if slot >= 0:
                        th = (grid[next_grid] - s) / h
                        for i in range(S):
                            bth[i] = dense_weight(th, P[i, 0], P[i, 1], P[i, 2], P[i, 3])
                        e0 = row_weights(bth, S, 1.0, th, h, lawson, growth, w)
                        for k in range(D):
                            acc = e0 * u[k]
                            for i in range(S):
                                acc += w[i] * G[i, k]
                            Ysave[slot, q, k] = acc + xc[k]
                    next_grid += 1
                s_new = s + h
                len_ = math.log(en)
                fac = math.exp(accept_step_exponent(len_, lerrold))
                lerrold = next_log_errold(len_)
                h_next = h * fac
                for k in range(D):       # f at unew (G_{S-1} is N_{S-1} - N_0 in Lawson form)
                    f0[k] = G[S - 1, k] + (G[0, k] if lawson else 0.0) - ell * unew[k]
                i1, dd1 = li1, ld1
                s = s_new
                h = h_next
                for k in range(D):
                    u[k] = unew[k]
                nst += 1
                if s >= s_end:
                    stat = STATUS_SUCCESS
            else:
                for k in range(D):
                    u[k] = unew[k]
                nst += 1
                k_in_seg += 1
                if k_in_seg == seg_steps[seg]:
                    s = grid[seg + 1]
                    slot = save_slot[seg + 1]
                    if slot >= 0:
                        for k in range(D):
                            Ysave[slot, q, k] = u[k] + xc[k]
                    seg += 1
                    k_in_seg = 0
                    if seg == nseg:
                        stat = STATUS_SUCCESS
                else:
                    s = grid[seg] + k_in_seg * h
                i1, dd1 = rhs(X, u, xc, s, reg_kind, reg_param, f0, mean, True)
                nf += 1
        # final diagnostics at the last state
        nrm = 0.0
        for k in range(D):
            Yout[q, k] = u[k] + xc[k]
            Uout[q, k] = u[k]
            nrm += Yout[q, k] ** 2
        max_norm[q] = max(ymax, math.sqrt(nrm))
        bd, gap, nt = cell_margins(X, u, xc, i1, 0.0)
        boundary_distance[q] = bd
        if i1 != cell:
            ncell += 1
            entry = math.nan
        if delta > 0.0 and gap >= delta:
            entry_time[q] = s if math.isnan(entry) else entry
            if s >= s_star and math.isnan(first_in):
                first_in = s
        else:
            entry_time[q] = math.nan
        first_inside[q] = first_in
        cell_changes[q] = ncell
        centre[q] = c
        nearest[q] = i1
        nearest_d2[q] = dd1
        n_steps[q] = nst
        n_rejected[q] = nrej
        nfev[q] = nf
        status[q] = stat

    return kernel
