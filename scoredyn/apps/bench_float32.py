"""Why the float32 path computes in float64: what a rigorous float32 GEMM could certify.

A float32 posterior mean could take the peers' route — squared distances from one float32
matrix product, ``|y|^2 - 2 y.x + |x|^2`` — and stay exact the way the float64 GEMM path is
(:mod:`scoredyn.kernels.gemm_tile`): bound each entry's rounding error, keep the entries whose
bound is small against ``2 sigma^2``, drop those whose weight is provably negligible, and
recompute the rest by direct differences.  In float32 that bound is
``E = gamma_{d+4} (|y| + a |x|)^2`` with ``gamma_n = n u / (1 - n u)``, ``u = 2^-24``
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, Lemma 3.1, with
Cauchy-Schwarz), so the logit of an entry is known to ``E / (2 sigma^2)``.

:func:`float32_certification` counts, for one problem, the entries of each kind:

* **negligible**: ``dist - E`` exceeds the smallest upper bound ``min (dist + E)`` by
  ``2 sigma^2 (40 + log N)`` (everything dropped weighs < e^-40 in total, the GEMM path's rule);
* **certified**: ``E / (2 sigma^2) <= tau`` (the float32 product is good enough);
* **recompute**: neither — these need float64 work.

On the field benchmark's shape (d = 3072, ``sigma = sqrt(d) / 4``) the logit bound is about
1e-2: no entry is certified even at ``tau = 1e-3`` and none is negligible, so every entry
would be recomputed, which costs more than the float64 GEMM path.  Only at small sigma (one-hot
weights: recompute the nearest few) or at large sigma with a loose ``tau`` would a float32
product pay.  That is why the float32 path computes in float64 (``scoredyn bench float32``
prints the table).
"""
import numpy as np

from .._host.reduce import _gamma, neglect_margin

#: float32's unit roundoff
U32 = 2.0 ** -24


def float32_certification(q=50, n=5000, d=3072, scales=(0.25, 1.0, 4.0, 16.0, 64.0),
                          taus=(1e-6, 1e-3), rng=0, echo=True):
    """Fractions of the (query, point) entries a rigorous float32 GEMM could drop or keep.

    Parameters
    ----------
    q, n, d : int
        Queries (each a data point plus unit Gaussian noise), data points (standard normal),
        dimension.
    scales : sequence of float
        ``sigma = scale * sqrt(d) / 4`` (the field benchmark's sigma at scale 1).
    taus : sequence of float
        Accepted logit errors.
    rng : seed
    echo : bool
        Print the table.

    Returns
    -------
    list of dict
        One row per (tau, sigma): ``sigma``, ``tau``, ``logit_bound`` (median of
        ``E / (2 sigma^2)``), and the fractions ``negligible``, ``certified``, ``recompute``.
    """
    rng = np.random.default_rng(rng)
    X = rng.standard_normal((n, d))
    Y = X[rng.integers(0, n, q)] + rng.standard_normal((q, d))
    yn, xn = np.linalg.norm(Y, axis=1), np.linalg.norm(X, axis=1)
    # squared distances in float64 by direct differences, a query at a time (the truth the
    # float32 entries are measured against)
    dist = np.stack([np.einsum("ij,ij->i", X - y, X - y) for y in Y])
    E = _gamma(d + 4, U32) * (yn[:, None] + xn[None, :]) ** 2
    upper = np.min(dist + E, axis=1, keepdims=True)
    rows = []
    for tau in taus:
        for scale in scales:
            sigma = scale * np.sqrt(d) / 4.0
            ts2 = 2.0 * sigma * sigma
            negligible = (dist - E - upper) > ts2 * neglect_margin(n)
            certified = ~negligible & (E / ts2 <= tau)
            rows.append({"sigma": float(sigma), "tau": float(tau),
                         "logit_bound": float(np.median(E / ts2)),
                         "negligible": float(negligible.mean()),
                         "certified": float(certified.mean()),
                         "recompute": float(1.0 - negligible.mean() - certified.mean())})
    if echo:
        print(f"# float32 GEMM, (Q, N, d) = ({q}, {n}, {d}): entries by what a rigorous bound "
              f"allows")
        print(f"{'tau':>8s} {'sigma':>9s} {'logit bound':>12s} {'negligible':>11s} "
              f"{'certified':>10s} {'recompute':>10s}")
        for r in rows:
            print(f"{r['tau']:8.0e} {r['sigma']:9.2f} {r['logit_bound']:12.2e} "
                  f"{r['negligible']:11.4f} {r['certified']:10.4f} {r['recompute']:10.4f}")
    return rows
