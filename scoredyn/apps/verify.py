"""Numerical verification of the theorem of Baptista, Dasgupta, Kovachki, Oberai and Stuart.

Each claim of the main theorem of Baptista et al. (2025, arXiv:2501.15785) is run as an
experiment on random data sets and random starts, measured, and compared with a tolerance that comes
from the integrator's accuracy (never tuned to pass).  :func:`run` returns the
table that ``scoredyn verify`` prints.
"""
import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linprog

from ..geometry import voronoi
from .._validation import as_rng
from ..geometry.convergence import fit_collapse, min_separation, sufficient_time
from ..fields.empirical import EmpiricalScore
from ..fields.regularization import Tikhonov
from ..dynamics.solver import solve

RTOL = 1e-10       # adaptive tolerance of every run (global error ~ 1e-8 at most)
ATOL = 1e-12


@dataclass
class ClaimResult:
    claim: str
    measured: str
    tolerance: str
    passed: bool
    trajectories: int
    seconds: float


def separated_data(n, d, rng, min_sep=0.2, scale=1.0):
    """``n`` points from N(0, scale^2 I_d), redrawn until all pairs are >= ``min_sep`` apart."""
    X = np.empty((0, d))
    while X.shape[0] < n:
        cand = rng.standard_normal(d) * scale
        if X.shape[0] == 0 or np.min(np.linalg.norm(X - cand, axis=1)) >= min_sep:
            X = np.vstack([X, cand])
    return X


def _configs(quick):
    if quick:
        return [(5, 2), (20, 2), (12, 3)], 60
    return [(20, 2), (100, 2), (50, 3), (200, 8), (1000, 16)], 1000


def claim_bounded(rng, quick):
    """|y(s)| <= max(|y(0)|, R), and y(s) in conv({y(0)} U X) (checked by LP on a sample)."""
    configs, q = _configs(quick)
    worst, hull_bad, hull_checked, total = -np.inf, 0, 0, 0
    for n, d in configs:
        X = separated_data(n, d, rng)
        y0 = rng.standard_normal((q, d)) * 2.5
        R = np.max(np.linalg.norm(X, axis=1))
        save = np.linspace(0.25, 12.0, 48)
        r = solve(EmpiricalScore(X), y0, (0.0, 12.0), rtol=RTOL, atol=ATOL, save_at=save)
        bound = np.maximum(np.linalg.norm(y0, axis=1), R)
        excess = (np.max(np.linalg.norm(r.ys, axis=2), axis=0) - bound) / bound
        worst = max(worst, float(np.max(excess)), float(np.max((r.max_norm - bound) / bound)))
        total += q
        for j in range(min(q, 10)):
            pts = np.vstack([y0[j], X])
            for k in (3, 20, 47):
                hull_checked += 1
                res = linprog(np.zeros(n + 1), A_eq=np.vstack([pts.T, np.ones(n + 1)]),
                              b_eq=np.append(r.ys[k, j], 1.0), bounds=(0, None), method="highs")
                hull_bad += int(res.status != 0)
    tol = 1e-7
    return ClaimResult("1 bounded: |y(s)| <= max(|y0|, R); y in conv({y0} U X)",
                       f"max relative excess {worst:.1e}; {hull_bad}/{hull_checked} hull LPs infeasible",
                       f"excess <= {tol:g} (global error at rtol {RTOL:g}); 0 infeasible",
                       worst <= tol and hull_bad == 0, total, 0.0)


def claim_invariance(rng, quick):
    """Once in V^delta(x_i) at some s >= s*(N, R, delta), a trajectory never leaves it."""
    configs, q = _configs(quick)
    violations, entered, total, stars = 0, 0, 0, []
    for n, d in configs:
        X = separated_data(n, d, rng)
        y0 = rng.standard_normal((q, d)) * 2.0
        sep = min_separation(X)
        delta = 0.25 * sep
        R = max(np.max(np.linalg.norm(X, axis=1)), np.max(np.linalg.norm(y0, axis=1)))
        s_star = sufficient_time(n, R, delta, sep)
        stars.append(s_star)
        r = solve(EmpiricalScore(X), y0, (0.0, max(s_star, 0.0) + 8.0), rtol=RTOL, atol=ATOL,
                  delta=delta, s_star=s_star)
        fi, en = r.first_inside, r.entry_time
        seen = np.isfinite(fi)
        entered += int(seen.sum())
        violations += int(np.sum(seen & ~(en <= fi)))
        total += q
    return ClaimResult("2 cell invariance after s*(N, R, delta)",
                       f"{violations} of {entered} trajectories inside V^delta after s* left it "
                       f"(s* in [{min(stars):.2f}, {max(stars):.2f}])",
                       "0 exits", violations == 0 and entered > 0, total, 0.0)


def claim_limits(rng, quick):
    """Random starts collapse onto data points; symmetric starts stay on Voronoi boundaries."""
    configs, q = _configs(quick)
    not_data, total = 0, 0
    for n, d in configs:
        X = separated_data(n, d, rng)
        y0 = rng.standard_normal((q, d)) * 2.0
        r = solve(EmpiricalScore(X), y0, (0.0, 30.0), rtol=RTOL, atol=ATOL)
        cls = voronoi.classify(X, r.y, 1e-9 * (1 + np.max(np.abs(X))))
        not_data += int(np.sum(cls.kind != voronoi.DATA))
        total += q
    # reflection-symmetric data: starts on an invariant bisector end on it
    sym_bad, sym_total = 0, 0
    t = np.linspace(-2.1, 2.1, 9)
    cases = [
        (np.array([[-1.0, 0.0], [1.0, 0.0]]), np.column_stack([np.zeros(9), t]), 1),
        (np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]),
         np.column_stack([t, t])[t != 0], 1),
        (np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), np.zeros((1, 2)), 3),
        # the octahedron's centre, a Voronoi vertex where 6 cells meet (exactly symmetric in
        # binary; a hexagon's cos(pi/3) is not, and the repelling boundary amplifies that)
        (np.vstack([np.eye(3), -np.eye(3)]), np.zeros((1, 3)), 5),
    ]
    for X, starts, stratum in cases:
        r = solve(EmpiricalScore(X), starts, (0.0, 60.0), rtol=RTOL, atol=ATOL)
        cls = voronoi.classify(X, r.y, 1e-9)
        ok = (cls.kind == voronoi.BOUNDARY) & (cls.stratum >= stratum)
        sym_bad += int(np.sum(~ok))
        sym_total += starts.shape[0]
    return ClaimResult("3 limit points: data points or Voronoi boundaries",
                       f"{not_data}/{total} random starts not at a data point; "
                       f"{sym_bad}/{sym_total} symmetric starts off the boundary",
                       "0 and 0 (classify tol 1e-9)", not_data == 0 and sym_bad == 0,
                       total + sym_total, 0.0)


def claim_collapse(rng, quick):
    """|y(s) - x_i| <= K e^{-s}: fitted rate 1 within 0.02, K finite (recentred to s = 40)."""
    configs, q = _configs(quick)
    worst, bad_k, fitted, total = 0.0, 0, 0, 0
    for n, d in configs:
        X = separated_data(n, d, rng)
        y0 = rng.standard_normal((q, d)) * 2.0
        f = EmpiricalScore(X)
        save = np.linspace(0.0, 40.0, 81)[1:]
        r = solve(f, y0, (0.0, 40.0), rtol=RTOL, atol=1e-300, recentre=True, save_at=save)
        dev = np.linalg.norm(r.ys - X[r.centre][None], axis=2)
        # distances resolved from the saved states only down to ~1e-15 |x_i|; use s <= 25
        fit = fit_collapse(save, dev, s_min=10.0, floor=1e-13 * (1 + np.max(np.abs(X))))
        ok = np.isfinite(fit.rate)
        fitted += int(ok.sum())
        worst = max(worst, float(np.max(np.abs(fit.rate[ok] - 1.0))))
        bad_k += int(np.sum(~np.isfinite(fit.K[ok]) | (fit.K[ok] <= 0)))
        # beyond the float64 floor: the recentred deviation at s = 40
        Kend = r.nearest_distance * np.exp(40.0)
        Kfit = fit.K[ok]
        worst = max(worst, float(np.max(np.abs(np.log(Kend[ok] / Kfit)) / 30.0)))
        total += q
    return ClaimResult("4 exponential collapse |y - x_i| <= K e^{-s}",
                       f"max |rate - 1| = {worst:.2e} over {fitted} fits (s in [10, 40], recentred)",
                       "<= 0.02, K finite", worst <= 0.02 and bad_k == 0 and fitted > 0, total, 0.0)


def claim_repelling(rng, quick):
    """Starts at distance eps from a symmetric bisector leave it and collapse onto a data point."""
    X = np.array([[-1.0, 0.0], [1.0, 0.0]])
    eps = np.logspace(-12, -2, 11)
    starts = np.column_stack([np.concatenate([eps, -eps]),
                              rng.uniform(-2, 2, 2 * eps.size)])
    r = solve(EmpiricalScore(X), starts, (0.0, 60.0), rtol=RTOL, atol=ATOL)
    cls = voronoi.classify(X, r.y, 1e-9)
    ok = (cls.kind == voronoi.DATA) & (cls.site == (starts[:, 0] > 0).astype(int))
    return ClaimResult("5 boundaries repel: eps-off starts collapse to their side's point",
                       f"{int(np.sum(~ok))}/{starts.shape[0]} did not (eps 1e-12..1e-2)",
                       "0", bool(np.all(ok)), starts.shape[0], 0.0)


def claim_tikhonov(rng, quick):
    """Tikhonov c > 0: trajectories freeze at a c-dependent distance; memorization falls with c."""
    n, d = 20, 2
    X = np.random.RandomState(1).randn(n, d)       # the authors' data, without global seeding
    q = 200 if quick else 1000
    y0 = rng.standard_normal((q, d))
    cs = np.logspace(-5, -1, 5)
    fractions, frozen_ok, floor_ok = [], True, True
    for c in cs:
        f = EmpiricalScore(X, regularization=Tikhonov(c))
        r = solve(f, y0, (0.0, 40.0), rtol=RTOL, atol=ATOL, save_at=[20.0])
        dist = voronoi.nearest(X, r.y)[2]
        dist20 = voronoi.nearest(X, r.ys[0])[2]
        # int_20^inf r ds = 1/2 log(1 + e^{-40}/c): the distance shrinks at most by that factor
        frozen_ok &= bool(np.all(dist >= dist20 * np.exp(-0.5 * np.log1p(np.exp(-40.0) / c)) * (1 - 1e-6)))
        floor_ok &= bool(np.min(dist) > 0)
        fractions.append(float(np.mean(dist < 1e-2)))
    decreasing = all(a >= b for a, b in zip(fractions, fractions[1:]))
    ok = frozen_ok and floor_ok and decreasing and fractions[0] > fractions[-1]
    return ClaimResult("6 Tikhonov c > 0: no collapse; memorized fraction falls with c",
                       "fraction within 1e-2: " + ", ".join(f"{c:.0e}:{fr:.2f}" for c, fr in zip(cs, fractions))
                       + f"; frozen {'yes' if frozen_ok else 'NO'}",
                       "non-increasing in c; distance > 0 and frozen after s = 20", ok,
                       q * cs.size, 0.0)


CLAIMS = [claim_bounded, claim_invariance, claim_limits, claim_collapse, claim_repelling,
          claim_tikhonov]


def run(*, quick=False, rng=None, progress=True, client=None, workers=None, store=None):
    """Run every claim; returns a list of :class:`ClaimResult`.

    Each claim draws from its own child of ``rng`` (``Generator.spawn``), so the
    claims are independent experiments and may run in any order or place.

    Parameters
    ----------
    quick : bool
        Small ensembles (seconds).
    rng : int, Generator or None
    progress : bool
        A progress bar over the claims.
    client, workers : optional
        Run the claims as tasks on a Dask cluster (a ``distributed.Client`` or a
        scheduler address; or a number of local worker processes), through
        :func:`scoredyn.distributed.sweep`; ``rng`` must then be an int seed.
    store : str, optional
        With a cluster: the directory where each claim's result is written as it
        finishes; a re-run with the same store, seed and size runs only the
        claims that have no result yet.  None: a temporary directory.
    """
    if client is not None or workers is not None:
        return _run_on_cluster(quick, rng, progress, client, workers, store)
    children = as_rng(rng).spawn(len(CLAIMS))
    results = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(CLAIMS), desc="verifying", unit="claim")
    for claim, child in zip(CLAIMS, children):
        if bar is not None:
            bar.set_postfix_str(claim.__name__)
        results.append(_timed_claim(claim, child, quick))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return results


def _timed_claim(claim, rng, quick):
    t0 = time.perf_counter()
    res = claim(rng, quick)
    res.seconds = time.perf_counter() - t0
    return res


def claim_task(index, seed, quick):
    """Claim ``index`` with the generator :func:`run` gives it for ``rng=seed``; a dict."""
    child = np.random.default_rng(np.random.SeedSequence(seed).spawn(len(CLAIMS))[index])
    return asdict(_timed_claim(CLAIMS[index], child, quick))


def _run_on_cluster(quick, seed, progress, client, workers, store):
    import tempfile

    from ..distributed import sweep
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`rng` must be a non-negative int seed to run the claims on a "
                         f"cluster; got {seed!r}.")
    grid = [{"index": i, "seed": int(seed), "quick": bool(quick)} for i in range(len(CLAIMS))]
    with tempfile.TemporaryDirectory() as tmp:
        out = sweep(claim_task, grid, store if store is not None else tmp, client=client,
                    workers=workers, progress=progress)
    return [ClaimResult(**r) for r in out.results]


def format_table(results):
    lines = []
    for r in results:
        lines.append(f"[{'PASS' if r.passed else 'FAIL'}] {r.claim}  ({r.trajectories} trajectories, "
                     f"{r.seconds:.1f} s)")
        lines.append(f"       measured:  {r.measured}")
        lines.append(f"       tolerance: {r.tolerance}")
    return "\n".join(lines)


def as_json(results):
    return [asdict(r) for r in results]
