"""Settings shared by the figures: the data and noise schedules of Baptista, Dasgupta, Kovachki,
Oberai and Stuart (2025, arXiv:2501.15785), as the authors' published code sets them."""
import numpy as np

import scoredyn as sd

BOUNDS = (-3.2, 3.2, -3.2, 3.2)


def authors_data():
    """N = 20 from N(0, I_2) the same numbers as the authors' global seed 1, from a local RandomState(1)."""
    return np.random.RandomState(1).randn(20, 2)


def ve():
    """The authors' VE schedule: g(t) = sigma_max^t, sigma_max = 10, T = 1."""
    return sd.VEGeometric(10.0)


def vp():
    """The authors' VP schedule: beta in [0.001, 3], T = 1."""
    return sd.VP(0.001, 3.0)


def sample_prior(schedule, n, rng):
    """x(T) ~ N(0, (alpha(T)^2 + sigma(T)^2) I): the noise end of the forward process for N(0, I) data."""
    a, s = schedule.alpha(1.0), schedule.sigma(1.0)
    return rng.standard_normal((n, 2)) * np.sqrt(a * a + s * s)


def log_time_run(field, schedule, x_T, horizon, n_save=400, **kw):
    """Solve in log-time from T = 1 for ``horizon`` units; return (lambda grid, t grid, x path, result).

    ``x path`` has shape (n_save, Q, d) in original coordinates ``x = alpha z``.
    """
    lam0 = float(schedule.lam(1.0))
    grid = lam0 + np.linspace(0.0, horizon, n_save)
    r = sd.solve(field, x_T / schedule.alpha(1.0), (lam0, lam0 + horizon), save_at=grid,
                 **({"rtol": 1e-9, "atol": 1e-11} | kw))
    t = schedule.t_of_lam(grid)
    return grid, t, r.ys * schedule.alpha(t)[:, None, None], r
