"""``scoredyn bench mixture``: Gaussian-mixture scores on the kernels against their peers.

Per size (Q queries, K components, dimension d), in one run (median wall times): the compiled streaming kernel
(``GaussianMixture``, isotropic or diagonal), the numpy stream over components (the
package's reference path, O((Q + K) d) memory), scikit-learn's ``score_samples`` for the
log-density of the same mixture (where installed), and the exact empirical field at
(Q, N = K, d), whose time the kernel is measured against.  Reported as times and ratios;
the rows check that the kernel and the numpy stream agree (``max_difference``).  A
benchmark, not a test.
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
