"""The numpy engine of :func:`scoredyn.solve`: any field, any registered method.

Vectorised over trajectories; fixed-step methods share the step grid, the
adaptive ones keep a step size, acceptance and status per trajectory.  The
scheme is the fused kernels' (:func:`scoredyn.kernels.trajectory.advance`):
the same error norm, PI controller and dense-output weights, taken from
:mod:`scoredyn.kernels.scalar` and applied per trajectory, so an adaptive
solve takes the same steps on every engine.  The field is evaluated through
its public :meth:`scoredyn.ScoreField.residual`, so fields written outside the
package run here.
"""
import functools

import numba
import numpy as np

from ...kernels import scalar
from ...kernels.stages import stage_combination
from ...kernels.trajectory import (STATUS_MAX_STEPS, STATUS_NONFINITE, STATUS_STEP_UNDERFLOW,
                                  STATUS_SUCCESS)
from .base import Engine, SolveResult, initial_step, messages



@functools.cache
def _ufunc(formula):
    """The scalar ``formula`` of :mod:`scoredyn.kernels.scalar` compiled as a numpy ufunc.

    The kernels' own source, applied element by element at compiled speed: the error
    norm runs on every component of every trajectory at every step (``np.vectorize``
    of the Python function spent about half of a large solve there).
    """
    nargs = formula.__code__.co_argcount
    return numba.vectorize([numba.float64(*([numba.float64] * nargs))],
                           cache=True)(formula)


def _error_ratio(*args):
    return _ufunc(scalar.error_ratio)(*args)


def _accept_exponent(*args):
    return _ufunc(scalar.accept_step_exponent)(*args)


def _reject_exponent(*args):
    return _ufunc(scalar.reject_step_exponent)(*args)


def _next_log_errold(*args):
    return _ufunc(scalar.next_log_errold)(*args)


def stage_rhs(field, label=None):
    """``f(z, s, rows) = r (D - z)`` at sigma = e^{-s} (alpha = 1), per trajectory.

    The engines' loops pass the states ``z`` (n, d), their times ``s`` (n,) and ``rows``,
    the trajectories they belong to (which this plain evaluation ignores; the batched
    engine's keeps state per trajectory).
    """
    def rhs(z, s, rows):
        with np.errstate(under="ignore", over="ignore"):
            sigma = np.exp(-s)
        # past s ~ 745 sigma underflows to 0 (before s ~ -709 it overflows to inf), where the
        # fields take their exact limits (1 / sigma^2 = inf picks the nearest site; 0 gives
        # equal weights); that is not an error here
        with np.errstate(divide="ignore", over="ignore"):
            res, lse = field.residual(z, sigma, np.ones_like(sigma), label)
            return field._factors(sigma, lse)[0][:, None] * res
    return rhs


def _norms(y):
    """``|y|`` per row without overflow or underflow of the squares (rows scaled by their
    largest entry)."""
    m = np.max(np.abs(y), axis=1)
    safe = np.where(m > 0, m, 1.0)
    return m * np.sqrt(np.sum((y / safe[:, None]) ** 2, axis=1))


def _rms(err, y, ynew, rtol, atol):
    """The RMS error norm per trajectory, from :func:`scalar.error_ratio` per component."""
    return np.sqrt(np.mean(_error_ratio(err, y, ynew, rtol, atol) ** 2, axis=1))


def integrate_rhs(rhs, y0, span, meth, h, rtol, atol, max_steps):
    """Integrate ``y' = rhs(y, s)`` (``s`` a (Q,) array) over ``span`` with ``meth``.

    Returns
    -------
    y : (Q, d) ndarray
        Final states (the last finite state where a trajectory stopped).
    status : (Q,) int ndarray
        As :attr:`SolveResult.status`.
    """
    span = np.asarray(span, dtype=float)
    q = y0.shape[0]
    stats = [np.zeros(q, np.int64) for _ in range(3)]
    status = np.full(q, STATUS_SUCCESS, np.int64)
    max_norm = _norms(y0)
    grid, slot = span, np.full(2, -1, np.int64)
    ys = np.empty((0,) + y0.shape)

    def rhs3(z, s, rows):
        return rhs(z, s)

    if meth.adaptive:
        first = h if h is not None else initial_step(span, meth.order, rtol)
        y = _adaptive(rhs3, y0, grid, slot, meth, first, rtol, atol, max_steps, ys, *stats,
                      status, max_norm)
    else:
        y = _fixed(rhs3, y0, grid, slot, meth, h, max_steps, ys, stats[0], stats[2], status,
                   max_norm)
    return y, status


class NumpyEngine(Engine):
    """Vectorised numpy over trajectories: any :class:`scoredyn.ScoreField`, every method
    (multistep ones included); no recentring or ``V^delta`` tracking."""

    name = "numpy"
    backend = "numpy"

    def unavailable(self, problem):
        if problem.recentre or problem.delta is not None:
            return ("`recentre` and `delta` need a fused engine ('numba' or 'cuda': an "
                    "EmpiricalScore field and a one-step method)")
        return None

    def run(self, problem):
        return solve_numpy(problem)


def solve_numpy(problem, rhs=None, engine="numpy"):
    """Run ``problem`` (a :class:`Problem`) on the numpy engine's loop.

    ``rhs(z, s, rows)`` evaluates the stages (default: :func:`stage_rhs` of the
    problem's field); ``engine`` names the engine in the result.
    """
    field, y0, label = problem.field, problem.y0, problem.label
    meth, save = problem.method, problem.save
    q, d = y0.shape
    if rhs is None:
        rhs = stage_rhs(field, label)

    grid, slot = problem.grid
    ys = np.full((save.size, q, d), np.nan)
    n_steps = np.zeros(q, np.int64)
    n_rej = np.zeros(q, np.int64)
    nfev = np.zeros(q, np.int64)
    status = np.full(q, STATUS_SUCCESS, np.int64)
    max_norm = _norms(y0)
    if slot[0] >= 0:
        ys[slot[0]] = y0
    if meth.adaptive:
        y = _adaptive(rhs, y0, grid, slot, meth, problem.first_step, problem.rtol, problem.atol,
                      problem.max_steps, ys, n_steps, n_rej, nfev, status, max_norm)
    else:
        y = _fixed(rhs, y0, grid, slot, meth, problem.h, problem.max_steps, ys, n_steps, nfev,
                   status, max_norm)
    result = SolveResult(y=y, s=save, ys=ys, n_steps=n_steps, n_rejected=n_rej, nfev=nfev,
                         status=status, method=meth.name, message=messages(status),
                         max_norm=max_norm, engine=engine)
    if hasattr(field, "nearest"):
        kw = {} if label is None else {"label": label}
        i1, _, r1, _ = field.nearest(y, **kw)
        result.nearest, result.nearest_distance = i1, r1
    return result


def _fixed(rhs, y0, grid, slot, meth, h, max_steps, ys, n_steps, nfev, status, max_norm):
    y = y0.copy()
    q = y.shape[0]
    rows = np.arange(q)
    n_prev = None   # ETD2M: N at the previous step and that step's size
    h_prev = None
    for k in range(grid.size - 1):
        dg = grid[k + 1] - grid[k]
        n = max(1, int(np.ceil(dg / h * (1 - 1e-12))))
        hk = dg / n
        if meth.multistep:
            e = np.exp(-hk)
            p1 = -np.expm1(-hk)
        else:
            A, b, c, E, Ef, ell = meth.coefficients(hk)
        for i in range(n):
            if n_steps[0] >= max_steps:
                status[:] = STATUS_MAX_STEPS
                return y
            s = grid[k] + i * hk
            sv = np.full(q, s)
            if meth.multistep:
                N = rhs(y, sv, rows) + y
                nfev += 1
                if n_prev is None:
                    ynew = e * y + p1 * N
                else:
                    r = h_prev / hk
                    ynew = e * y + p1 * ((1 + 0.5 / r) * N - (0.5 / r) * n_prev)
                n_prev, h_prev = N, hk
            else:
                G = []
                for st in range(c.size):
                    Y = E[st] * y + hk * sum(A[st, j] * G[j] for j in range(st)) if st else y
                    G.append(rhs(Y, sv + c[st] * hk, rows) + ell * Y)
                    nfev += 1
                ynew = Ef * y + hk * sum(b[st] * G[st] for st in range(c.size))
            bad = ~np.all(np.isfinite(ynew), axis=1)
            status[bad] = STATUS_NONFINITE
            y = np.where(bad[:, None], y, ynew)
            n_steps += 1
            max_norm[:] = np.maximum(max_norm, _norms(y))
        if slot[k + 1] >= 0:
            ys[slot[k + 1]] = y
    return y


def _lawson_stages(rhs, meth, y, s, h, f0, nfev, idx):
    """One generalized Lawson step of every trajectory in ``idx`` (see GeneralizedLawson).

    Returns the new states, the error estimates, the stage values ``f`` ((S, m, d); the
    last one at the new state, FSAL) and ``combine(row, theta, rows, j)``: the
    dense output of trajectory ``j`` of the subset ``rows`` at ``theta``.
    """
    c = meth.c
    N0 = f0 + y                                       # N = f + y
    dN = [np.zeros_like(y)]                           # N_j - N_0
    K = np.empty((c.size,) + y.shape)
    K[0] = f0

    def row(a, c_row, hh, yy, n0, dn):
        w, e = meth.row_weights(a, c_row, hh)
        return (e[:, None] * yy + (1.0 - e[:, None]) * n0
                + sum(w[:, j, None] * dn[j] for j in range(1, len(dn))))
    for st in range(1, c.size):
        Y = row(np.where(np.arange(c.size) < st, meth.A[st], 0.0), c[st], h, y, N0, dN)
        K[st] = rhs(Y, s + c[st] * h, idx)
        dN.append(K[st] + Y - N0)
        nfev[idx] += 1
    ynew = row(meth.b, 1.0, h, y, N0, dN)
    w, _ = meth.row_weights(meth.b_err, 1.0, h)
    err = sum(w[:, j, None] * dN[j] for j in range(1, c.size))

    def combine(bth, th, rows, j):
        sel = [v[rows][j:j + 1] for v in dN]
        return row(bth, th, h[rows][j:j + 1], y[rows][j:j + 1], N0[rows][j:j + 1], sel)[0]
    return ynew, err, K, combine


def _subset(combine, ok):
    """``combine`` of :func:`_lawson_stages` for the trajectories ``ok`` (a mask) of its step."""
    keep = np.flatnonzero(ok)
    return lambda bth, th, rows, j: combine(bth, th, keep[rows], j)


def _adaptive(rhs, y0, grid, slot, meth, h0, rtol, atol, max_steps, ys, n_steps, n_rej,
              nfev, status, max_norm):
    A, b, c, _, _, _ = meth.coefficients(None)
    A, b = np.ascontiguousarray(A, float), np.ascontiguousarray(b, float)
    berr = np.asarray(meth.b_err, float)
    P = None if meth.P is None else np.asarray(meth.P, float)
    fsal = c[-1] == 1.0 and np.allclose(A[-1], b)
    q = y0.shape[0]
    y = y0.copy()
    s = np.full(q, grid[0])
    h = np.full(q, float(h0))
    lerrold = np.full(q, scalar.LOG_ERROLD_START)
    nxt = np.ones(q, np.int64)   # next grid index to reach / save
    active = np.ones(q, bool)
    f0 = rhs(y, s, np.arange(q))
    nfev += 1
    while np.any(active):
        idx = np.flatnonzero(active)
        over = n_steps[idx] >= max_steps
        status[idx[over]] = STATUS_MAX_STEPS
        active[idx[over]] = False
        idx = idx[~over]
        if idx.size == 0:
            break
        yi, si = y[idx], s[idx]
        target = grid[-1] if P is not None else grid[nxt[idx]]
        hi = np.minimum(h[idx], target - si)
        if meth.lawson:
            hi = np.minimum(hi, meth.MAX_STEP)
        tiny = hi <= scalar.STEP_RESOLUTION * np.maximum(1.0, np.abs(si))
        if np.any(tiny):
            status[idx[tiny]] = STATUS_STEP_UNDERFLOW
            active[idx[tiny]] = False
            keep = ~tiny
            idx, yi, si, hi = idx[keep], yi[keep], si[keep], hi[keep]
            if idx.size == 0:
                continue
            target = target if np.ndim(target) == 0 else target[keep]
        # the step that reaches its target ends there exactly (s + (target - s) can round
        # below it when s < 0)
        s_next = np.where(hi >= target - si, target, si + hi)
        if meth.lawson:
            ynew, err, K, combine = _lawson_stages(rhs, meth, yi, si, hi, f0[idx], nfev, idx)
        else:
            combine = None
            K = np.empty((c.size,) + yi.shape)          # the stages, (S, m, d)
            K[0] = f0[idx]
            for st in range(1, c.size):
                Y = np.empty_like(yi)
                stage_combination(yi, hi, A[st], K, st, Y)
                K[st] = rhs(Y, si + c[st] * hi, idx)
                nfev[idx] += 1
            ynew = np.empty_like(yi)
            stage_combination(yi, hi, b, K, c.size, ynew)
            err = np.empty_like(yi)
            stage_combination(None, hi, berr, K, c.size, err)
        # a non-finite new state ends its trajectory, which keeps its last finite state
        bad = ~np.all(np.isfinite(ynew), axis=1)
        if np.any(bad):
            status[idx[bad]] = STATUS_NONFINITE
            active[idx[bad]] = False
            ok = ~bad
            idx, yi, si, hi, ynew, err, s_next = (idx[ok], yi[ok], si[ok], hi[ok], ynew[ok],
                                                   err[ok], s_next[ok])
            K = K[:, ok]
            if combine is not None:
                combine = _subset(combine, ok)
        en = _rms(err, yi, ynew, rtol, atol)
        acc = en <= 1.0
        rej = ~acc
        n_rej[idx[rej]] += 1
        if np.any(rej):
            h[idx[rej]] = hi[rej] * np.exp(_reject_exponent(np.log(en[rej])))
        ia = idx[acc]
        if ia.size:
            ha, ya, yn, sa, sn = hi[acc], yi[acc], ynew[acc], si[acc], s_next[acc]
            ka = np.flatnonzero(acc)        # the accepted rows of K
            # saves inside (s, s + h]: dense output or exact landing
            nxt_a = nxt[ia]
            due = nxt_a < grid.size
            due[due] = grid[nxt_a[due]] <= sn[due]
            for jj in np.flatnonzero(due):
                qq = ia[jj]
                while nxt[qq] < grid.size and grid[nxt[qq]] <= sn[jj]:
                    sl = slot[nxt[qq]]
                    if sl >= 0:
                        if P is not None:
                            th = (grid[nxt[qq]] - sa[jj]) / ha[jj]
                            w = scalar.dense_weight(th, P[:, 0], P[:, 1], P[:, 2], P[:, 3])
                            if meth.lawson:
                                ys[sl, qq] = combine(w, th, acc, jj)
                            else:
                                ys[sl, qq] = ya[jj] + ha[jj] * sum(w[st] * K[st][ka[jj]]
                                                                   for st in range(c.size))
                        else:
                            ys[sl, qq] = yn[jj]
                    nxt[qq] += 1
            with np.errstate(divide="ignore"):     # en = 0 (exact step): log = -inf, floored
                log_en = np.log(en[acc])
            fac = np.exp(_accept_exponent(log_en, lerrold[ia]))
            lerrold[ia] = _next_log_errold(log_en)
            h[ia] = ha * fac
            y[ia] = yn
            s[ia] = sn
            n_steps[ia] += 1
            max_norm[ia] = np.maximum(max_norm[ia], _norms(yn))
            if fsal:
                f0[ia] = K[-1][ka]
            else:
                f0[ia] = rhs(yn, s[ia], ia)
                nfev[ia] += 1
            done = (s[ia] >= grid[-1]) | (nxt[ia] >= grid.size)
            active[ia[done]] = False
    return y
