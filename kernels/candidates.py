"""The posterior mean over a certified candidate set per query (the pruned stage evaluation).

Once sigma is small the softmax weights of the empirical field concentrate on a
few data points; every other point's weight is below ``e^-M`` of the largest
(``M = 40 + log N``, the neglect rule of the GEMM path,
:func:`scoredyn._host.reduce.neglect_margin`), so all of them together weigh less
than ``e^-40``.  An adaptive solve evaluates the field hundreds of times per
trajectory in that regime; this kernel lets each evaluation read ``k`` points
instead of ``N`` when that is *certified*:

For each query the caller keeps a reference point ``ref`` (a recent state of the
trajectory), the indices of its ``k`` nearest data points (the candidates) and a
lower bound ``R`` on the distance from ``ref`` of every other point (the
``(k+1)``-th nearest distance).  At a new query ``y`` with
``delta = |y - ref|`` the triangle inequality bounds every non-candidate's
distance below by ``R - delta``; the candidates' squared distances are computed
exactly (direct differences), their minimum is ``m``.  When

    ``(R - delta)^2 - m > 2 sigma^2 M``

every non-candidate is negligible by the rule above, ``m`` is the global
minimum, and the softmax over the candidates is the posterior mean to the same
accuracy as a full pass.  Otherwise the query is reported as not served and the
caller evaluates it with a full pass.  ``R`` and ``delta`` are shrunk and ``m``
enlarged by ``slack`` (relative) to cover their rounding (direct differences:
relative error below Higham's gamma_{d+2}; the caller passes ``2 gamma_{d+4}``).
"""
import numpy as np
from numba import njit, prange

from .config import FASTMATH
from .mathfn import relative_weight


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _sqdist(Y, i, X, j):
    acc = 0.0
    for t in range(Y.shape[1]):
        u = Y[i, t] - X[j, t]
        acc += u * u
    return acc


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def candidate_reduce(X, Y, inv2s2, twosig2, mneg, slack, rows, cand, ref, bound, mean, dmin,
                     lsum, served, dist):
    """Posterior mean of every query whose candidate set is certified (module docstring).

    Parameters
    ----------
    X : (N, d) float64
        The data.
    Y : (Q, d) float64
        Queries.
    inv2s2, twosig2 : (Q,) float64
        ``1 / (2 sigma^2)`` and ``2 sigma^2``.
    mneg : float
        Neglect margin ``M``.
    slack : float
        Relative rounding allowance on ``R``, ``delta`` and ``m``.
    rows : (Q,) int64
        Query ``i``'s row in ``cand``, ``ref`` and ``bound`` (the caller's per-trajectory
        state, read in place).
    cand : (T, k) int64
        Candidate indices per row.
    ref : (T, d) float64
        Reference points.
    bound : (T,) float64
        ``R``: every non-candidate is at least this far from ``ref`` (0: never served).
    mean : (Q, d) float64, out
        ``D(y)`` for served queries (rows of the others untouched).
    dmin, lsum : (Q,) float64, out
        Smallest squared distance and the sum of weights relative to it (served rows).
    served : (Q,) bool, out
    dist : (Q, k) float64
        Scratch: the candidates' squared distances, then their weights.
    """
    q, d = Y.shape
    k = cand.shape[1]
    for i in prange(q):
        served[i] = False
        r = rows[i]
        acc = 0.0
        for t in range(d):
            u = Y[i, t] - ref[r, t]
            acc += u * u
        lo = bound[r] * (1.0 - slack) - np.sqrt(acc) * (1.0 + slack)
        if not lo > 0.0:
            continue
        m = np.inf
        for c in range(k):
            dist[i, c] = _sqdist(Y, i, X, cand[r, c])
            m = min(m, dist[i, c])
        if not lo * lo - m * (1.0 + slack) > twosig2[i] * mneg:
            continue
        inv = inv2s2[i]
        s = 0.0
        for c in range(k):         # the weights first: a loop whose exps vectorise
            w = relative_weight(dist[i, c], m, inv)
            dist[i, c] = w
            s += w
        for t in range(d):
            mean[i, t] = 0.0
        for c in range(k):
            j = cand[r, c]
            w = dist[i, c]
            for t in range(d):
                mean[i, t] += w * X[j, t]
        for t in range(d):
            mean[i, t] /= s
        dmin[i] = m
        lsum[i] = s
        served[i] = True
