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
from .._validation import as_data, as_rng
from ..geometry.convergence import fit_collapse, min_separation, sufficient_time
from ..fields.empirical import EmpiricalScore
from ..fields.regularization import Tikhonov
from ..dynamics.engines import SolveResult
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


#: with a user's data set: trajectories per claim are capped so that one solve costs about
#: this many point-coordinates per trajectory step in total (q N d)
USER_BUDGET = 2_000_000
#: trajectories per solve call (the progress bar advances per batch)
BATCH = 256


class Setting:
    """What the claims run on: random separated data sets (the default) or a user's data.

    Parameters
    ----------
    quick : bool
    data : (N, d) ndarray, optional
        The user's distinct points at unit size (:func:`scoredyn.apps.datasets.prepare`).
    progress : tqdm bar or None
    """

    def __init__(self, quick, data=None, progress=None):
        self.quick = quick
        self.data = data
        self.bar = progress

    def datasets(self, rng):
        """``[(X, q)]``: the data sets of a claim and the trajectories per set."""
        if self.data is None:
            configs, q = _configs(self.quick)
            return [(separated_data(n, d, rng), q) for n, d in configs]
        n, d = self.data.shape
        q = _configs(self.quick)[1]
        return [(self.data, int(max(8, min(q, USER_BUDGET // (n * d)))))]

    def starts(self, X, q, factor, rng):
        """``q`` starting points: ``factor`` N(0, I) for the random sets (unit-variance data);
        around a user's data, ``factor`` times its per-coordinate spread about its mean."""
        if self.data is None:
            return rng.standard_normal((q, X.shape[1])) * factor
        spread = np.sqrt(np.mean(np.sum((X - X.mean(0)) ** 2, axis=1)) / X.shape[1])
        return X.mean(0) + factor * spread * rng.standard_normal((q, X.shape[1]))

    def begin(self, claim, total):
        if self.bar is not None:
            self.bar.reset(total=total)
            self.bar.set_description(claim)

    def solve(self, field, y0, span, **kw):
        """:func:`solve` in batches of :data:`BATCH` trajectories, the bar advancing per batch
        (each trajectory's steps do not depend on the batch)."""
        parts = []
        for b0 in range(0, len(y0), BATCH):
            parts.append(solve(field, y0[b0:b0 + BATCH], span, **kw))
            if self.bar is not None:
                self.bar.update(len(parts[-1].y))
        return SolveResult.concatenate(parts)


def _total(sets, solves=1):
    return sum(q for _, q in sets) * solves


def claim_bounded(rng, setting):
    """|y(s)| <= max(|y(0)|, R), and y(s) in conv({y(0)} U X) (checked by LP on a sample)."""
    sets = setting.datasets(rng)
    setting.begin("1 bounded", _total(sets))
    worst, hull_bad, hull_checked, total = -np.inf, 0, 0, 0
    for X, q in sets:
        n, d = X.shape
        y0 = setting.starts(X, q, 2.5, rng)
        R = np.max(np.linalg.norm(X, axis=1))
        save = np.linspace(0.25, 12.0, 48)
        r = setting.solve(EmpiricalScore(X), y0, (0.0, 12.0), rtol=RTOL, atol=ATOL, save_at=save)
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


def claim_invariance(rng, setting):
    """Once in V^delta(x_i) at some s >= s*(N, R, delta), a trajectory never leaves it."""
    sets = setting.datasets(rng)
    setting.begin("2 cell invariance", _total(sets))
    violations, entered, total, stars = 0, 0, 0, []
    for X, q in sets:
        n = X.shape[0]
        y0 = setting.starts(X, q, 2.0, rng)
        sep = min_separation(X)
        delta = 0.25 * sep
        R = max(np.max(np.linalg.norm(X, axis=1)), np.max(np.linalg.norm(y0, axis=1)))
        s_star = sufficient_time(n, R, delta, sep)
        stars.append(s_star)
        r = setting.solve(EmpiricalScore(X), y0, (0.0, max(s_star, 0.0) + 8.0), rtol=RTOL,
                          atol=ATOL, delta=delta, s_star=s_star)
        fi, en = r.first_inside, r.entry_time
        seen = np.isfinite(fi)
        entered += int(seen.sum())
        violations += int(np.sum(seen & ~(en <= fi)))
        total += q
    return ClaimResult("2 cell invariance after s*(N, R, delta)",
                       f"{violations} of {entered} trajectories inside V^delta after s* left it "
                       f"(s* in [{min(stars):.2f}, {max(stars):.2f}])",
                       "0 exits", violations == 0 and entered > 0, total, 0.0)


#: reflection-symmetric data sets and starts on an invariant bisector (which stay on it), with
#: the least number of tied bisectors expected at the end
SYMMETRIC = [
    (np.array([[-1.0, 0.0], [1.0, 0.0]]), "column"),
    (np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), "diagonal"),
    (np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), "centre"),
    # the octahedron's centre, a Voronoi vertex where 6 cells meet (exactly symmetric in
    # binary; a hexagon's cos(pi/3) is not, and the repelling boundary amplifies that)
    (np.vstack([np.eye(3), -np.eye(3)]), "centre"),
]


def _symmetric_cases():
    t = np.linspace(-2.1, 2.1, 9)
    starts = {"column": (np.column_stack([np.zeros(9), t]), 1),
              "diagonal": (np.column_stack([t, t])[t != 0], 1)}
    for X, kind in SYMMETRIC:
        if kind == "centre":
            yield X, np.zeros((1, X.shape[1])), 3 if X.shape[1] == 2 else 5
        else:
            yield (X,) + starts[kind]


def claim_limits(rng, setting):
    """Random starts collapse onto data points; symmetric starts stay on Voronoi boundaries."""
    sets = setting.datasets(rng)
    cases = list(_symmetric_cases())
    setting.begin("3 limit points", _total(sets) + sum(len(s) for _, s, _ in cases))
    not_data, total = 0, 0
    for X, q in sets:
        y0 = setting.starts(X, q, 2.0, rng)
        s_end = 30.0 + _resolve_time(X)
        r = setting.solve(EmpiricalScore(X), y0, (0.0, s_end), rtol=RTOL, atol=ATOL)
        cls = voronoi.classify(X, r.y, 1e-9 * (1 + np.max(np.abs(X))))
        not_data += int(np.sum(cls.kind != voronoi.DATA))
        total += q
    sym_bad, sym_total = 0, 0
    for X, starts, stratum in cases:
        r = setting.solve(EmpiricalScore(X), starts, (0.0, 60.0), rtol=RTOL, atol=ATOL)
        cls = voronoi.classify(X, r.y, 1e-9)
        ok = (cls.kind == voronoi.BOUNDARY) & (cls.stratum >= stratum)
        sym_bad += int(np.sum(~ok))
        sym_total += starts.shape[0]
    return ClaimResult("3 limit points: data points or Voronoi boundaries",
                       f"{not_data}/{total} random starts not at a data point; "
                       f"{sym_bad}/{sym_total} symmetric starts off the boundary",
                       "0 and 0 (classify tol 1e-9)", not_data == 0 and sym_bad == 0,
                       total + sym_total, 0.0)


def _resolve_time(X):
    """Extra log-time a data set needs before its points are resolved: ``-log`` of its
    minimum separation beyond unit size (0 for the random sets, separated by >= 0.2)."""
    return max(0.0, -np.log(min_separation(X)))


def claim_collapse(rng, setting):
    """|y(s) - x_i| <= K e^{-s}: fitted rate 1 within 0.02, K finite (recentred to s = 40)."""
    sets = setting.datasets(rng)
    setting.begin("4 exponential collapse", _total(sets))
    worst, bad_k, fitted, total = 0.0, 0, 0, 0
    for X, q in sets:
        y0 = setting.starts(X, q, 2.0, rng)
        f = EmpiricalScore(X)
        s0 = _resolve_time(X)
        save = np.linspace(0.0, 40.0, 81)[1:] + s0
        r = setting.solve(f, y0, (0.0, 40.0 + s0), rtol=RTOL, atol=1e-300, recentre=True,
                          save_at=save)
        dev = np.linalg.norm(r.ys - X[r.centre][None], axis=2)
        # distances resolved from the saved states only down to ~1e-15 |x_i|; use s <= 25
        fit = fit_collapse(save, dev, s_min=10.0 + s0, floor=1e-13 * (1 + np.max(np.abs(X))))
        ok = np.isfinite(fit.rate)
        fitted += int(ok.sum())
        worst = max(worst, float(np.max(np.abs(fit.rate[ok] - 1.0), initial=0.0)))
        bad_k += int(np.sum(~np.isfinite(fit.K[ok]) | (fit.K[ok] <= 0)))
        # beyond the float64 floor: the recentred deviation at the end
        Kend = r.nearest_distance * np.exp(40.0 + s0)
        Kfit = fit.K[ok]
        if Kfit.size:
            worst = max(worst, float(np.max(np.abs(np.log(Kend[ok] / Kfit)) / 30.0)))
        total += q
    return ClaimResult("4 exponential collapse |y - x_i| <= K e^{-s}",
                       f"max |rate - 1| = {worst:.2e} over {fitted} fits (s in [10, 40], recentred)",
                       "<= 0.02, K finite", worst <= 0.02 and bad_k == 0 and fitted > 0, total, 0.0)


def claim_repelling(rng, setting):
    """Starts at distance eps from a symmetric bisector leave it and collapse onto a data point."""
    X = np.array([[-1.0, 0.0], [1.0, 0.0]])
    eps = np.logspace(-12, -2, 11)
    starts = np.column_stack([np.concatenate([eps, -eps]),
                              rng.uniform(-2, 2, 2 * eps.size)])
    setting.begin("5 boundaries repel", len(starts))
    r = setting.solve(EmpiricalScore(X), starts, (0.0, 60.0), rtol=RTOL, atol=ATOL)
    cls = voronoi.classify(X, r.y, 1e-9)
    ok = (cls.kind == voronoi.DATA) & (cls.site == (starts[:, 0] > 0).astype(int))
    return ClaimResult("5 boundaries repel: eps-off starts collapse to their side's point",
                       f"{int(np.sum(~ok))}/{starts.shape[0]} did not (eps 1e-12..1e-2)",
                       "0", bool(np.all(ok)), starts.shape[0], 0.0)


def claim_tikhonov(rng, setting):
    """Tikhonov c > 0: trajectories freeze at a c-dependent distance; memorization falls with c."""
    if setting.data is None:
        X = np.random.RandomState(1).randn(20, 2)  # the authors' data, without global seeding
        q = 200 if setting.quick else 1000
    else:
        [(X, q)] = setting.datasets(rng)
    y0 = setting.starts(X, q, 1.0, rng)
    cs = np.logspace(-5, -1, 5)
    setting.begin("6 Tikhonov", q * cs.size)
    fractions, frozen_ok, floor_ok = [], True, True
    for c in cs:
        f = EmpiricalScore(X, regularization=Tikhonov(c))
        r = setting.solve(f, y0, (0.0, 40.0), rtol=RTOL, atol=ATOL, save_at=[20.0])
        dist = voronoi.nearest(X, r.y)[2]
        dist20 = voronoi.nearest(X, r.ys[0])[2]
        # int_20^inf r ds = 1/2 log(1 + e^{-40}/c): the distance shrinks at most by that factor
        frozen_ok &= bool(np.all(dist >= dist20 * np.exp(-0.5 * np.log1p(np.exp(-40.0) / c)) * (1 - 1e-6)))
        floor_ok &= bool(np.min(dist) > 0)
        fractions.append(float(np.mean(dist < 1e-2)))
    # each fraction is a mean over q starts: a rise from one c to the next counts only beyond
    # two standard errors of the difference of two binomial proportions (on a user's data
    # set of 10 collinear points, one start of 60 landing near a point at c = 0.1 read as a
    # rise of 0.02 from 0.00); the largest c must still memorize less than the smallest
    def rise_beyond_noise(a, b):
        return b - a > 2.0 * np.sqrt((a * (1 - a) + b * (1 - b)) / q)
    decreasing = not any(rise_beyond_noise(a, b) for a, b in zip(fractions, fractions[1:]))
    ok = frozen_ok and floor_ok and decreasing and fractions[0] > fractions[-1]
    return ClaimResult("6 Tikhonov c > 0: no collapse; memorized fraction falls with c",
                       "fraction within 1e-2: " + ", ".join(f"{c:.0e}:{fr:.2f}" for c, fr in zip(cs, fractions))
                       + f"; frozen {'yes' if frozen_ok else 'NO'}",
                       "non-increasing in c (no rise beyond 2 binomial standard errors), lower "
                       "at the largest c; distance > 0 and frozen after s = 20", ok,
                       q * cs.size, 0.0)


CLAIMS = [claim_bounded, claim_invariance, claim_limits, claim_collapse, claim_repelling,
          claim_tikhonov]


def run(*, quick=False, rng=None, progress=True, data=None, client=None, workers=None,
        store=None):
    """Run every claim; returns a list of :class:`ClaimResult`.

    Each claim draws from its own child of ``rng`` (``Generator.spawn``), so the
    claims are independent experiments and may run in any order or place.

    Parameters
    ----------
    quick : bool
        Small ensembles (seconds).
    rng : int, Generator or None
    progress : bool
        A progress bar, advancing per batch of trajectories, the claim in its description.
    data : (N, d) array_like, optional
        Run the claims on these points instead of random data sets (distinct points at
        unit size: see :func:`scoredyn.apps.datasets.prepare`; claim 5 keeps its
        symmetric pair, and claim 3 adds its symmetric cases).
    client, workers : optional
        Run the claims as tasks on a Dask cluster (a ``distributed.Client`` or a
        scheduler address; or a number of local worker processes), through
        :func:`scoredyn.distributed.sweep`; ``rng`` must then be an int seed.
    store : str, optional
        With a cluster: the directory where each claim's result is written as it
        finishes; a re-run with the same store, seed and size runs only the
        claims that have no result yet.  None: a temporary directory.
    """
    if data is not None:
        data = as_data(data, "data")[0]
    if client is not None or workers is not None:
        return _run_on_cluster(quick, rng, progress, data, client, workers, store)
    children = as_rng(rng).spawn(len(CLAIMS))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=1, unit="traj")
    setting = Setting(quick, data, bar)
    try:
        return [_timed_claim(claim, child, setting) for claim, child in zip(CLAIMS, children)]
    finally:
        if bar is not None:
            bar.close()


def _timed_claim(claim, rng, setting):
    t0 = time.perf_counter()
    res = claim(rng, setting)
    res.seconds = time.perf_counter() - t0
    return res


def claim_task(index, seed, quick, data=None):
    """Claim ``index`` with the generator :func:`run` gives it for ``rng=seed``; a dict.

    ``data``: a path to an ``.npy`` file of the prepared points (read on the worker)."""
    child = np.random.default_rng(np.random.SeedSequence(seed).spawn(len(CLAIMS))[index])
    X = None if data is None else np.load(data)
    return asdict(_timed_claim(CLAIMS[index], child, Setting(quick, X)))


def _run_on_cluster(quick, seed, progress, data, client, workers, store):
    import hashlib
    import os
    import tempfile

    from ..distributed import sweep
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`rng` must be a non-negative int seed to run the claims on a "
                         f"cluster; got {seed!r}.")
    with tempfile.TemporaryDirectory() as tmp:
        where = store if store is not None else tmp
        path = None
        if data is not None:          # the workers read the points from the store
            os.makedirs(where, exist_ok=True)
            digest = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]
            path = os.path.abspath(os.path.join(where, f"data-{digest}.npy"))
            if not os.path.exists(path):
                np.save(path, data)
        grid = [{"index": i, "seed": int(seed), "quick": bool(quick), "data": path}
                for i in range(len(CLAIMS))]
        out = sweep(claim_task, grid, where, client=client, workers=workers, progress=progress)
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
