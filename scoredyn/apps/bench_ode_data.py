"""The log-time ODE on real dimensions: the batched engine against the others, one run.

The problem of the engines' crossover measurements: trajectories start at data points plus
``sigma0 = 20`` noise and run from ``s = -log 20`` to ``s1`` with dopri5 at rtol 1e-9
(atol 1e-12).  Every engine takes the same steps (the same error norm and controller), so
the table compares the cost of the stage evaluations: all of them a full pass (numpy
engine), per trajectory over all data (the per-trajectory kernel), or batched and pruned to
certified candidates (the batched engine: it reports the share of stage evaluations its
candidates served).  ``max |dy|`` is each engine's largest end-point difference from the
numpy engine's.
"""
import time

import numpy as np

from ..dynamics.engines.batched import CandidateStages
from ..dynamics.engines.numpy_engine import solve_numpy
from ..dynamics.solver import problem, solve
from ..fields.empirical import EmpiricalScore

#: (name, data, Q, s1, engines): scikit-learn's digits (pixels / 16) and standard normal
#: data in d = 3072 (CIFAR-10's dimension); the per-trajectory kernel only where it ends in
#: minutes
CASES = (("digits", ("digits", None), 1000, 16.0, ("batched", "numpy", "numba")),
         ("normal d=3072", ("normal", (5000, 3072)), 1000, 16.0, ("batched", "numpy")))
CASES_QUICK = (("digits", ("digits", None), 100, 8.0, ("batched", "numpy", "numba")),
               ("normal d=3072", ("normal", (500, 3072)), 20, 8.0, ("batched", "numpy")))
SIGMA0, RTOL, ATOL = 20.0, 1e-9, 1e-12


def _data(kind, shape, rng):
    if kind == "digits":
        from .datasets import load
        return load("digits")
    return rng.standard_normal(shape)


def ode_data_benchmark(cases=CASES, rng=0, echo=True):
    """Time each case on each of its engines.

    Returns
    -------
    list of dict
        One row per (case, engine): ``case``, ``N``, ``d``, ``Q``, ``engine``, ``seconds``,
        ``vs_batched`` (time / the batched engine's), ``nfev`` (total stage evaluations),
        ``served`` (batched: share served by candidates), ``max_dy`` (vs the numpy engine).
    """
    rows = []
    for name, (kind, shape), q, s1, engines in cases:
        gen = np.random.default_rng(rng)
        X = _data(kind, shape, gen)
        n, d = X.shape
        field = EmpiricalScore(X)
        y0 = X[gen.integers(0, n, q)] + SIGMA0 * gen.standard_normal((q, d))
        span = (-np.log(SIGMA0), s1)
        prob = problem(field, y0, span, method="dopri5", rtol=RTOL, atol=ATOL)
        # compile / load every kernel first (a short solve per engine), untimed
        for e in engines:
            solve(field, y0[:2], (span[0], span[0] + 0.1), rtol=1e-3, engine=e)
        results = {}
        for e in engines:
            t = time.perf_counter()
            if e == "batched":
                stages = CandidateStages(field, q)
                res = solve_numpy(prob, rhs=stages, engine=e)
                served = stages.served / max(1, stages.served + stages.full)
            else:
                res, served = solve(field, y0, span, method="dopri5", rtol=RTOL, atol=ATOL,
                                    engine=e), None
            results[e] = (time.perf_counter() - t, res, served)
        base = results["batched"][0]
        ref = results["numpy"][1].y if "numpy" in results else None
        for e, (sec, res, served) in results.items():
            row = dict(case=name, N=n, d=d, Q=q, s1=s1, engine=e, seconds=sec,
                       vs_batched=sec / base, nfev=int(res.nfev.sum()), served=served,
                       max_dy=None if ref is None else float(np.max(np.abs(res.y - ref))),
                       success=bool(res.success))
            rows.append(row)
            if echo:
                extra = "" if served is None else f"  served by candidates {served:.0%}"
                dy = "" if row["max_dy"] is None else f"  max |dy| {row['max_dy']:.1e}"
                print(f"{name:14s} N={n:<5d} d={d:<5d} Q={q:<5d} {e:8s} {sec:8.2f} s  "
                      f"x{sec / base:5.2f}  nfev {row['nfev']}{dy}{extra}", flush=True)
    return rows
