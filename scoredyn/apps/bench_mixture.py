"""``scoredyn bench mixture``: Gaussian-mixture scores on the kernels against their peers.

Per size (Q queries, K components, dimension d), in one run (median wall times): the compiled streaming kernel
(``GaussianMixture``, isotropic or diagonal), the numpy stream over components (the
package's reference path, O((Q + K) d) memory), scikit-learn's ``score_samples`` for the
log-density of the same mixture (where installed), and the exact empirical field at
(Q, N = K, d), whose time the kernel is measured against.  Reported as times and ratios;
the rows check that the kernel and the numpy stream agree (``max_difference``).  A
benchmark, not a test.

:func:`ode_benchmark` times ``solve`` under a diagonal mixture on the compiled time loop
(engine "numba") against the numpy engine, which evaluates the same kernels once per stage
from Python (same steps; the rows report the largest difference of the end points).
"""
import numpy as np

from .bench import wall_time

#: (Q, K, d, form) of the full and the quick runs
SIZES = [(10_000, 1000, 2, "isotropic"), (10_000, 1000, 2, "diagonal"),
         (1000, 2000, 64, "diagonal"), (1000, 500, 3072, "diagonal"),
         (1000, 500, 3072, "low-rank")]
SIZES_QUICK = [(2000, 500, 2, "isotropic"), (2000, 500, 2, "diagonal"),
               (500, 500, 64, "diagonal"), (200, 100, 3072, "diagonal"),
               (200, 100, 3072, "low-rank")]
RANK = 16


def _sklearn_model(means, var, sigma):
    """A fitted-looking sklearn diagonal mixture with covariances ``var + sigma^2`` (the
    density of x_t at alpha = 1), or None without scikit-learn."""
    try:
        from sklearn.mixture import GaussianMixture as SkGM
    except ImportError:
        return None
    k = means.shape[0]
    model = SkGM(k, covariance_type="diag")
    model.means_ = means
    model.covariances_ = var + sigma * sigma
    model.precisions_cholesky_ = 1.0 / np.sqrt(model.covariances_)
    model.weights_ = np.full(k, 1.0 / k)
    return model


def mixture_benchmark(sizes=SIZES, *, repeat=3, rng=0, echo=print):
    """Time the mixture paths at each size; returns the rows."""
    import scoredyn as sd
    g = np.random.default_rng(rng)
    rows = []
    echo(f"{'Q':>6s} {'K':>5s} {'d':>5s} {'form':>9s} {'kernel':>9s} {'numpy':>9s} "
         f"{'sklearn':>9s} {'empirical':>9s}  numpy/kernel  kernel/empirical")
    for q, k, d, form in sizes:
        means = g.standard_normal((k, d))
        var = g.uniform(0.1, 1.0, (k, d))
        sigma = 0.5 * max(1.0, np.sqrt(d) / 4)
        x = g.standard_normal((q, d))
        kw = {}
        if form == "isotropic":
            var = var[:, 0]
        elif form == "low-rank":
            kw["factors"] = 0.1 * g.standard_normal((k, d, RANK))
        kernel = sd.GaussianMixture(means, var, **kw)
        stream = sd.GaussianMixture(means, var, backend="numpy", **kw)
        t_np = wall_time(lambda: stream.denoise(x, sigma), 1)
        t_k = wall_time(lambda: kernel.denoise(x, sigma), 1 if form == "low-rank" else repeat)
        err = float(np.max(np.abs(kernel.denoise(x, sigma) - stream.denoise(x, sigma))))
        emp = sd.EmpiricalScore(means)
        t_e = wall_time(lambda: emp.denoise(x, sigma), repeat)
        t_sk = float("nan")
        if form == "diagonal":
            model = _sklearn_model(means, var, sigma)
            if model is not None:
                t_sk = wall_time(lambda: model.score_samples(x), 1)
        row = dict(Q=q, K=k, d=d, form=form, kernel=t_k, numpy=t_np, sklearn=t_sk,
                   empirical=t_e, max_difference=err)
        rows.append(row)
        echo(f"{q:6d} {k:5d} {d:5d} {form:>9s} {t_k:9.3f} {t_np:9.3f} {t_sk:9.3f} {t_e:9.3f}  "
             f"{t_np / t_k:12.1f}  {t_k / t_e:16.2f}")
    return rows


#: (Q trajectories, K components, d) of the ODE rows, full and quick
ODE_SIZES = [(1000, 200, 2), (200, 500, 16)]
ODE_SIZES_QUICK = [(200, 50, 2)]


def ode_benchmark(sizes=ODE_SIZES, *, repeat=3, rng=0, echo=print):
    """Time ``solve`` (gl-dopri5, s from -1 to 8, rtol 1e-8) under a diagonal mixture on the
    fused engine and on the numpy engine; returns the rows."""
    import scoredyn as sd
    g = np.random.default_rng(rng)
    rows = []
    echo(f"{'Q':>6s} {'K':>5s} {'d':>4s} {'fused':>9s} {'numpy':>9s}  numpy/fused  max|dy|")
    for q, k, d in sizes:
        gm = sd.GaussianMixture(2 * g.standard_normal((k, d)), g.uniform(0.01, 0.2, (k, d)))
        y0 = 3 * g.standard_normal((q, d))
        out = {}

        def run(engine):
            out[engine] = sd.solve(gm, y0, (-1.0, 8.0), method="gl-dopri5", rtol=1e-8,
                                   atol=1e-10, engine=engine)
        t_f = wall_time(lambda: run("numba"), repeat)
        t_n = wall_time(lambda: run("numpy"), 1)
        diff = float(np.max(np.abs(out["numba"].y - out["numpy"].y)))
        rows.append(dict(Q=q, K=k, d=d, fused=t_f, numpy=t_n, max_difference=diff))
        echo(f"{q:6d} {k:5d} {d:4d} {t_f:9.3f} {t_n:9.3f}  {t_n / t_f:11.1f}  {diff:.1e}")
    return rows
