"""The Runge-Kutta stage combinations of the numpy engine, as one pass each.

``y + h * (c_0 K_0 + c_1 K_1 + ...)`` per trajectory, added in the order numpy
would add them (each product rounded, then added to the running sum, then
scaled by ``h`` and added to ``y``; no fused multiply-add), so the results are
bit for bit those of the array expression, in one pass over memory instead of
two temporaries per stage.
"""
from numba import njit


@njit(cache=True, nogil=True)
def stage_combination(y, h, coef, K, n, out):
    """``out[i] = y[i] + h[i] * sum_{j < n} coef[j] K[j, i]`` (sum from j = 0 up).

    Parameters
    ----------
    y : (m, d) float64
        States; ``None`` gives ``out[i] = h[i] * sum ...`` (an error estimate).
    h : (m,) float64
        Step sizes.
    coef : (>= n,) float64
    K : (>= n, m, d) float64
        Stage values.
    n : int
        Stages combined (at least 1).
    out : (m, d) float64, out
    """
    m, d = out.shape
    for i in range(m):
        oi = out[i]
        for k in range(d):          # loops over contiguous k: they vectorise
            oi[k] = coef[0] * K[0, i, k]
        for j in range(1, n):
            cj = coef[j]
            for k in range(d):
                oi[k] += cj * K[j, i, k]
        hi = h[i]
        if y is None:
            for k in range(d):
                oi[k] = hi * oi[k]
        else:
            for k in range(d):
                oi[k] = y[i, k] + hi * oi[k]
