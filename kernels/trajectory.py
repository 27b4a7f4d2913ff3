"""The per-trajectory time loop of the log-time reverse ODE, written once for every target.

``dz/ds = -r(s) (z - D(z; sigma = e^{-s}))`` (Baptista, Dasgupta, Kovachki,
Oberai & Stuart 2025, arXiv:2501.15785: the reverse ODE in log-time ``s = -log t``).
:func:`advance` integrates one trajectory through its whole span: stages,
step control, dense output at save times, recentring and the online Voronoi
diagnostics.  It is plain Python over scalars and 1-D work arrays, compiled
for each target by :func:`target.specialise`, which binds the names it calls (the
posterior reduction, the cell margins, ``exp``/``log`` and the formulas of
:mod:`scalar`) to that target's compiled versions:

* :mod:`odeint` — ``njit`` for the CPU, launched by a ``prange`` over trajectories;
* :mod:`cuda_odeint` — ``cuda.jit(device=True)``, one thread per trajectory.

The launch wrappers allocate the work arrays (``np.empty`` per iteration, or
``cuda.local.array`` of the compile-time dimension) and call :func:`advance`.

The scheme
----------
Every method is written in one explicit form (classical RK: ``ell = 0``,
``E = 1``; exponential RK for the split ``y' = -y + N``: ``ell = 1``)::

    Y_i   = E_i u + h sum_{j<i} A_ij G_j,   G_j = f(Y_j, s + c_j h) + ell Y_j
    u_new = E_f u + h sum_i B_i G_i

Fixed-step methods take ``seg_steps[k]`` equal steps in each segment between
consecutive grid points (saved states land exactly).  The adaptive
Dormand-Prince 5(4) pair controls its step per trajectory with a PI
controller (Hairer, Norsett & Wanner, *Solving ODEs I*, §II.4) and saves
through its 4th-order dense output.  In generalized Lawson form (Hochbruck &
Ostermann 2010, Acta Numerica, §2.5) the pair's weights depend on the step and
are formed at every step (:func:`scalar.row_weights`); the stage values are
then stored as ``N_j - N_0`` so that near-cancelling sums are formed from
small differences.

Recentring: the state is the deviation ``u = y - x_c`` from the current
nearest site ``x_c`` (re-chosen at the start of each step), so ``|u| ~ e^{-s}``
keeps full relative precision far past the float64 floor of ``y`` (which the
collapse ``|y(s) - x_i| <= K e^{-s}`` of the theorem reaches near s = 35).

The problem's scalars travel in one float64 array ``cfg`` indexed by the
``CFG_*`` names below, the per-trajectory results in ``outi`` (int64) and
``outf`` (float64) rows indexed by ``OUT_*``; :mod:`scoredyn.dynamics.engines`
builds and reads them by name.
"""
import math

from .scalar import LAWSON_MAX_STEP, LOG_ERROLD_START, STEP_RESOLUTION

REG_NONE, REG_TIKHONOV, REG_EMPIRICAL_BAYES = 0, 1, 2
STATUS_RUNNING, STATUS_SUCCESS, STATUS_MAX_STEPS, STATUS_STEP_UNDERFLOW, STATUS_NONFINITE = (
    -9, 0, 1, 2, 3)

#: entries of ``cfg`` (float64; flags are 0.0 / 1.0)
(CFG_ELL, CFG_ADAPTIVE, CFG_LAWSON, CFG_RTOL, CFG_ATOL, CFG_H0, CFG_MAX_STEPS, CFG_REG_KIND,
 CFG_REG_PARAM, CFG_RECENTRE, CFG_DELTA, CFG_S_STAR) = range(12)
N_CFG = 12
#: rows of ``outi`` (int64, (N_OUTI, Q))
(OUT_CENTRE, OUT_N_STEPS, OUT_N_REJECTED, OUT_NFEV, OUT_STATUS, OUT_NEAREST,
 OUT_CELL_CHANGES) = range(7)
N_OUTI = 7
#: rows of ``outf`` (float64, (N_OUTF, Q))
OUT_NEAREST_D2, OUT_MAX_NORM, OUT_BOUNDARY_DISTANCE, OUT_ENTRY_TIME, OUT_FIRST_INSIDE = range(5)
N_OUTF = 5


def config(cfg):
    """The method's and the field's entries of ``cfg``: ``(ell, adaptive, lawson, rtol, atol,
    h0, max_steps, reg_kind, reg_param)``."""
    return (cfg[CFG_ELL], cfg[CFG_ADAPTIVE] != 0.0, cfg[CFG_LAWSON] != 0.0, cfg[CFG_RTOL],
            cfg[CFG_ATOL], cfg[CFG_H0], cfg[CFG_MAX_STEPS], int(cfg[CFG_REG_KIND]),
            cfg[CFG_REG_PARAM])


def rhs(X, u, xc, s, reg_kind, reg_param, out, mean, dist, want_nearest):
    """``out = -r (u - (D - x_c))``: the right-hand side at ``y = u + x_c``, time ``s``.

    Returns the nearest site's index and squared distance when
    ``want_nearest``, else ``(-1, inf)``.  ``dist`` is the target's scratch
    for the reduction (a tile of distances on the CPU; unused on the GPU).
    """
    d = ndim(X)
    e2s = exp(2.0 * s)                # inf past s ~ 354: the weights take their exact limit
    inv = 0.5 * e2s
    dmin, lsum, i1, d1 = posterior(X, u, xc, inv, want_nearest, mean, dist)
    r = 1.0
    if reg_kind == REG_TIKHONOV:
        r = tikhonov_shrink(reg_param, e2s)
    elif reg_kind == REG_EMPIRICAL_BAYES:
        r = exp(empirical_bayes_exponent(lsum, dmin, inv, math.log(reg_param)))
    for k in range(d):
        out[k] = r * (mean[k] - u[k])
    return i1, d1


#: rows of the work array ``vec`` (N_VEC, d) and of ``per_stage`` (N_PER_STAGE, S)
N_VEC, N_PER_STAGE = 7, 3


def advance(q, X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
            Uout, outi, outf, vec, G, per_stage, dist):
    """Integrate trajectory ``q`` from ``grid[0]`` to ``grid[-1]``.

    Parameters
    ----------
    q : int
        The trajectory (row of ``Y0``, column of the outputs).
    X : target's data layout
        The data (CPU: (d, N) transposed; GPU: (N, d)); read through ``ndim``
        and ``site``.
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
    Berr : (S,) float64
        Adaptive: error weights (first-same-as-last: stage S-1 is evaluated at
        the new state).
    P : (S, 4) float64
        Adaptive: dense-output polynomial coefficients per stage.
    cfg : (N_CFG,) float64
        ``ell`` (1 exponential, 0 classical), ``adaptive``, ``lawson``,
        ``rtol``, ``atol``, ``h0`` (first step), ``max_steps``, ``reg_kind``
        (0 none, 1 Tikhonov with ``reg_param = c``, 2 Empirical Bayes with
        ``reg_param = tau``), ``recentre``, ``delta`` (> 0: track entry into
        the shrunken cell ``V^delta``, one extra O(N d) pass per step) and
        ``s_star`` (with ``delta``: record the first step start at or after
        it that lies in ``V^delta`` of its nearest site).
    Ysave : (n_save, Q, d) float64, out
    Yout, Uout : (Q, d) float64, out
        Final state and its deviation from the final centre.
    outi : (N_OUTI, Q) int64, out
        Centre (-1 without recentring), accepted and rejected steps,
        evaluations, status, nearest site, and how often the nearest site
        changed between step starts.
    outf : (N_OUTF, Q) float64, out
        Squared distance to the nearest site; largest ``|y|`` at step starts
        and the end; distance to the boundary of the final cell; start of the
        last uninterrupted stay in ``V^delta`` of the final cell (NaN if it
        ends outside); first step start ``>= s_star`` in ``V^delta`` (NaN if
        none).  Cell invariance after ``s*`` means ``entry_time <= first_inside``.
    vec : (N_VEC, d) float64
        Work rows: the state ``u``, the centre ``xc``, a stage state, the new
        state, the posterior mean, ``f`` at the step start and a stage's ``f``.
    G : (S, d) float64
        Stage values.
    per_stage : (N_PER_STAGE, S) float64
        Row weights, Lawson growth factors and dense-output weights.
    dist : target's reduction scratch
        (The work arrays are allocated by the launch wrapper; a call with more
        than 30 arguments would compile to a ``*args`` call, which CUDA cannot inline.)
    """
    u, xc, Ys, unew, mean, f0, Gi = vec[0], vec[1], vec[2], vec[3], vec[4], vec[5], vec[6]
    w, growth, bth = per_stage[0], per_stage[1], per_stage[2]
    d = ndim(X)
    ell, adaptive, lawson, rtol, atol, h, max_steps, reg_kind, reg_param = config(cfg)
    recentre = cfg[CFG_RECENTRE] != 0.0
    delta = cfg[CFG_DELTA]
    s_star = cfg[CFG_S_STAR]
    always = d > 0          # a runtime True: a literal one would compile rhs a second time
    S = C.shape[0]
    nseg = grid.shape[0] - 1
    s_end = grid[nseg]
    for k in range(d):
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
        for k in range(d):
            Ysave[save_slot[0], q, k] = u[k]
    s = grid[0]
    i1, dd1 = rhs(X, u, xc, s, reg_kind, reg_param, f0, mean, dist, always)
    nf += 1
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
                xn = site(X, i1, k)
                u[k] += xc[k] - xn
                xc[k] = xn
            c = i1
        nrm = 0.0
        for k in range(d):
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
            if h <= STEP_RESOLUTION * max(1.0, abs(s)):
                stat = STATUS_STEP_UNDERFLOW
                break
            # the step that reaches s_end ends there exactly: s + (s_end - s) can round
            # below s_end (s < 0 < s_end, or s_end < 0), which would leave a step of one ulp
            s_next = s_end if h >= s_end - s else s + h
            sg = 0
        else:
            sg = seg
            h = (grid[seg + 1] - grid[seg]) / seg_steps[seg]
        # -- stages
        for k in range(d):
            G[0, k] = f0[k] + ell * u[k]
        for i in range(1, S):
            e0 = row_weights(A[sg, i], i, E[sg, i], C[i], h, lawson, growth, w)
            for k in range(d):
                acc = e0 * u[k]
                for j in range(i):
                    acc += w[j] * G[j, k]
                Ys[k] = acc
            li1, ld1 = rhs(X, Ys, xc, s + C[i] * h, reg_kind, reg_param, Gi, mean, dist,
                           adaptive and i == S - 1)
            nf += 1
            for k in range(d):
                G[i, k] = Gi[k] + ell * Ys[k]
                if lawson:
                    G[i, k] -= G[0, k]
        e0 = row_weights(B[sg], S, Ef[sg], 1.0, h, lawson, growth, w)
        finite = True
        for k in range(d):
            acc = e0 * u[k]
            for i in range(S):
                acc += w[i] * G[i, k]
            unew[k] = acc
            if not math.isfinite(acc):
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
            for k in range(d):
                acc = 0.0
                for i in range(S):
                    acc += w[i] * G[i, k]
                v = error_ratio(acc, u[k], unew[k], rtol, atol)
                acc2 += v * v
            en = math.sqrt(acc2 / d)
            if en > 1.0:
                nrej += 1
                h *= exp(reject_step_exponent(log(en)))
                continue
            # dense output for save times inside (s, s + h]
            while next_grid <= nseg and grid[next_grid] <= s_next:
                slot = save_slot[next_grid]
                if slot >= 0:
                    th = (grid[next_grid] - s) / h
                    for i in range(S):
                        bth[i] = dense_weight(th, P[i, 0], P[i, 1], P[i, 2], P[i, 3])
                    e0 = row_weights(bth, S, 1.0, th, h, lawson, growth, w)
                    for k in range(d):
                        acc = e0 * u[k]
                        for i in range(S):
                            acc += w[i] * G[i, k]
                        Ysave[slot, q, k] = acc + xc[k]
                next_grid += 1
            len_ = log(en)
            fac = exp(accept_step_exponent(len_, lerrold))
            lerrold = next_log_errold(len_)
            for k in range(d):       # f at unew (G_{S-1} is N_{S-1} - N_0 in Lawson form)
                f0[k] = G[S - 1, k] + (G[0, k] if lawson else 0.0) - ell * unew[k]
                u[k] = unew[k]
            i1, dd1 = li1, ld1
            s = s_next
            h = h * fac
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
            i1, dd1 = rhs(X, u, xc, s, reg_kind, reg_param, f0, mean, dist, always)
            nf += 1
    # final diagnostics at the last state
    nrm = 0.0
    for k in range(d):
        Yout[q, k] = u[k] + xc[k]
        Uout[q, k] = u[k]
        nrm += Yout[q, k] ** 2
    outf[OUT_MAX_NORM, q] = max(ymax, math.sqrt(nrm))
    bd, gap, nt = cell_margins(X, u, xc, i1, 0.0)
    outf[OUT_BOUNDARY_DISTANCE, q] = bd
    if i1 != cell:
        ncell += 1
        entry = math.nan
    if delta > 0.0 and gap >= delta:
        outf[OUT_ENTRY_TIME, q] = s if math.isnan(entry) else entry
        if s >= s_star and math.isnan(first_in):
            first_in = s
    else:
        outf[OUT_ENTRY_TIME, q] = math.nan
    outf[OUT_FIRST_INSIDE, q] = first_in
    outf[OUT_NEAREST_D2, q] = dd1
    outi[OUT_CELL_CHANGES, q] = ncell
    outi[OUT_CENTRE, q] = c
    outi[OUT_NEAREST, q] = i1
    outi[OUT_N_STEPS, q] = nst
    outi[OUT_N_REJECTED, q] = nrej
    outi[OUT_NFEV, q] = nf
    outi[OUT_STATUS, q] = stat


#: the names :func:`rhs` and :func:`advance` call, which each target binds
#: (:func:`target.specialise`; :func:`advance` also calls the target's ``rhs``)
TARGET_NAMES = ("config", "ndim", "site", "posterior", "cell_margins", "exp", "log",
                "tikhonov_shrink", "empirical_bayes_exponent", "error_ratio", "accept_step_exponent",
                "next_log_errold", "reject_step_exponent", "dense_weight", "lawson_growth",
                "row_weights")
