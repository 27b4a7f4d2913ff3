"""Benchmarks of scoredyn's kernels against the peers a user would otherwise pick.

Run as ``scoredyn bench`` (see ``scoredyn bench --help``).  Peers:

* numpy: the GEMM expansion ``|y|^2 - 2 y.x + |x|^2`` and scipy's logsumexp on
  the full Q x N matrix (always);
* torch ``scaled_dot_product_attention`` (when torch is installed), two ways a
  user would write it: ``q = y / sigma``, ``k = x / sigma``, ``v = x`` with the
  additive mask ``-|x|^2 / (2 sigma^2)`` ("torch-sdpa"), and the same logits with
  no mask through one augmented coordinate ``q = [y / sigma, 1]``,
  ``k = [x / sigma, -|x|^2 / (2 sigma^2)]`` ("torch-sdpa-aug");
* pykeops ``sumsoftmaxweight`` on the direct squared distance (when installed).

Each row prints the median wall time of every method, the speed ratio
``peer / scoredyn`` (> 1: scoredyn is faster) and the largest deviation of the
peer's posterior mean from scoredyn's.  This is a benchmark, not a test.
"""
import time

import numpy as np
from scipy.special import logsumexp

from ..fields.empirical import EmpiricalScore

FIELD_SIZES = [(10_000, 10_000, 2), (1_000, 10_000, 64), (1_000, 5_000, 3072), (100, 50_000, 3072)]
FIELD_SIZES_QUICK = [(2_000, 2_000, 2), (200, 2_000, 64), (100, 1_000, 3072)]


def wall_time(fn, repeat):
    """Median wall time of ``repeat`` calls of ``fn`` after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def near_boundary_case(rng, d=3072, sigma=1e-6, w_target=0.27, n_far=62):
    """The cancellation trap (:mod:`scoredyn.kernels`, "Numerical traps"): two sites whose squared distances to y differ by ~1e-7 relative.

    At ``sigma = 1e-6`` the exact weight of the first site is ~``w_target``;
    the GEMM expansion ``|y|^2 - 2 y.x + |x|^2`` misplaces it by O(0.1).

    Returns
    -------
    data : (2 + n_far, d) ndarray
    y : (1, d) ndarray
    """
    x1 = rng.standard_normal(d)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    p = rng.standard_normal(d)
    p -= (p @ u) * u
    p *= 4e-3 / np.linalg.norm(p)
    delta = 2e-3
    mid = x1 + 0.5 * delta * u
    x2 = mid + 0.5 * delta * u
    logit_gap = np.log((1 - w_target) / w_target)       # l_1 - l_2 = -gap
    t = sigma**2 * logit_gap / delta                    # D1 - D2 = 2 t delta = 2 sigma^2 gap
    y = mid + t * u + p
    data = np.vstack([x1, x2, rng.standard_normal((n_far, d))])
    return data, y[None, :]


#: a timed call is repeated until its runs add up to this many seconds (at most
#: :data:`MAX_RUNS` runs) where a benchmark asks for it: a 10 ms solve timed 3 times
#: reports the machine's noise
MIN_TIMED_S = 1.0
MAX_RUNS = 25


def _median_time(fn, repeat, min_seconds=0.0):
    """``(median wall time, last result)`` of ``fn()`` after one warm-up call, over at least
    ``repeat`` runs and more (up to :data:`MAX_RUNS`) while they add up to less than
    ``min_seconds``."""
    fn()  # warm-up: compilation, caches
    times = []
    while len(times) < repeat or (sum(times) < min_seconds and len(times) < MAX_RUNS):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def numpy_peer(x, data, sigma):
    """The textbook numpy posterior mean: GEMM expansion, dense Q x N softmax."""
    sq = (x * x).sum(1)[:, None] - 2.0 * (x @ data.T) + (data * data).sum(1)[None, :]
    logits = -sq / (2.0 * sigma * sigma)
    w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    return w @ data


def _torch_peers():
    try:
        import torch
        from torch.nn.functional import scaled_dot_product_attention
    except ImportError:
        return {}

    def masked(x, data, sigma):
        with torch.no_grad():
            q = torch.from_numpy(x / sigma)[None]
            k = torch.from_numpy(data / sigma)[None]
            v = torch.from_numpy(data)[None]
            mask = torch.from_numpy(-(data * data).sum(1) / (2 * sigma * sigma))[None, None, :]
            return scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)[0].numpy()

    def augmented(x, data, sigma):
        with torch.no_grad():
            one = np.ones((x.shape[0], 1), x.dtype)
            bias = (-(data * data).sum(1, keepdims=True) / (2 * sigma * sigma)).astype(data.dtype)
            q = torch.from_numpy(np.hstack([x / sigma, one]))[None]
            k = torch.from_numpy(np.hstack([data / sigma, bias]))[None]
            v = torch.from_numpy(data)[None]
            return scaled_dot_product_attention(q, k, v, scale=1.0)[0].numpy()
    return {"torch-sdpa": masked, "torch-sdpa-aug": augmented}


def _keops_peer():
    try:
        from pykeops.numpy import LazyTensor
    except ImportError:
        return None

    def run(x, data, sigma):
        yi = LazyTensor(x[:, None, :])
        xj = LazyTensor(data[None, :, :])
        logits = -((yi - xj) ** 2).sum(-1) / (2 * sigma * sigma)
        return logits.sumsoftmaxweight(LazyTensor(data[None, :, :]), axis=1)
    return run


def field_benchmark(sizes=FIELD_SIZES, dtypes=("float64", "float32"), repeat=3, sigma=1.0,
                    rng=0, echo=print):
    """Time ``EmpiricalScore.denoise`` against the peers; return a list of row dicts.

    Parameters
    ----------
    sizes : list of (Q, N, d)
    dtypes : iterable of {"float64", "float32"}
    repeat : int
        Timed repetitions per method (median reported, after one warm-up).
    sigma : float
        Noise level (data and queries are standard normal).
    rng : seed for :func:`numpy.random.default_rng`
    echo : callable
        Receives each formatted line.
    """
    gen = np.random.default_rng(rng)
    peers = {"numpy": numpy_peer}
    torch_peers = _torch_peers()
    if torch_peers:
        peers.update(torch_peers)
    else:
        echo("# torch not installed: skipped")
    keops = _keops_peer()
    if keops is not None:
        peers["pykeops"] = keops
    else:
        echo("# pykeops not installed: skipped")
    rows = []
    header = f"{'dtype':8s} {'(Q, N, d)':>22s} {'scoredyn ms':>12s}" + "".join(
        f" {p + ' ms':>14s} {'ratio':>6s} {'max|dD|':>8s}" for p in peers)
    echo(header)
    for dt in dtypes:
        for q, n, d in sizes:
            data = gen.standard_normal((n, d)).astype(dt)
            x = gen.standard_normal((q, d)).astype(dt)
            s = float(sigma * np.sqrt(d) / 4 if d > 8 else sigma)
            field = EmpiricalScore(data, backend="numba")
            t_ours, ours = _median_time(lambda: field.denoise(x, s), repeat)
            row = {"dtype": dt, "Q": q, "N": n, "d": d, "sigma": s, "scoredyn_s": t_ours}
            line = f"{dt:8s} {str((q, n, d)):>22s} {1e3 * t_ours:12.1f}"
            for name, fn in peers.items():
                t, out = _median_time(lambda: fn(x, data, s), repeat)
                err = float(np.max(np.abs(np.asarray(out, np.float64) - ours)))
                row[f"{name}_s"], row[f"{name}_err"] = t, err
                line += f" {1e3 * t:14.1f} {t / t_ours:6.2f} {err:8.1e}"
            echo(line)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- ODE
def _numpy_denoise(y, data, sigma):
    """What a user without scoredyn writes: direct differences, dense softmax."""
    l = -((y[:, None, :] - data[None]) ** 2).sum(-1) / (2.0 * sigma * sigma)
    w = np.exp(l - l.max(1, keepdims=True))
    return (w @ data) / w.sum(1, keepdims=True)


def _stacked_rhs(data):
    d = data.shape[1]

    def rhs(s, y):
        z = y.reshape(-1, d)
        return (_numpy_denoise(z, data, np.exp(-s)) - z).ravel()
    return rhs


def _numpy_etd1(data, y0, s1, h):
    y = y0.copy()
    n = int(round(s1 / h))
    for k in range(n):
        e = np.exp(-h)
        y = e * y + (1 - e) * _numpy_denoise(y, data, np.exp(-k * h))
    return y


def _timed(run, setting):
    t0 = time.perf_counter()
    run(setting)
    return time.perf_counter() - t0


def _ode_problem(q, n, d, s1, rng, echo):
    """The benchmark problem and its reference (scipy DOP853 at rtol 1e-13, stacked state).

    Returns ``(gen, data, y0, ref)``, ``gen`` the generator after drawing ``data`` and
    ``y0``; the reference is computed once per problem (kept for a second caller).
    """
    gen = np.random.default_rng(rng)
    data = gen.standard_normal((n, d))
    y0 = gen.standard_normal((q, d))
    key = (q, n, d, s1, rng)
    if key not in _REFERENCES:
        from scipy.integrate import solve_ivp
        t0 = time.perf_counter()
        sol = solve_ivp(_stacked_rhs(data), (0.0, s1), y0.ravel(), method="DOP853", rtol=1e-13,
                        atol=1e-15)
        _REFERENCES.clear()
        _REFERENCES[key] = sol.y[:, -1].reshape(q, d)
        echo(f"# reference: scipy DOP853 rtol 1e-13 on the stacked state, "
             f"{time.perf_counter() - t0:.1f} s, {sol.nfev} rhs calls")
    return gen, data, y0, _REFERENCES[key].copy()


#: the last problem's reference final states, by (q, n, d, s1, rng)
_REFERENCES = {}


def _ode_methods(data, y0, s1, nfev):
    """``(label, kind, run)`` for every timed method: ``run(setting)`` returns the final states
    (``kind`` "rtol": atol = rtol / 100; "h": the fixed step); scoredyn's runs leave their
    evaluation count in ``nfev[label]``."""
    from scipy.integrate import solve_ivp

    from ..dynamics.solver import solve
    q, d = y0.shape
    field = EmpiricalScore(data, backend="numba")
    rhs = _stacked_rhs(data)
    methods = []
    for method, kind in (("gl-dopri5", "rtol"), ("dopri5", "rtol"), ("etdrk4", "h"),
                         ("rk4", "h")):
        label = f"scoredyn {method} (numba)"

        def run(setting, method=method, kind=kind, label=label):
            kw = {"rtol": setting, "atol": setting * 1e-2} if kind == "rtol" else {"h": setting}
            res = solve(field, y0, (0.0, s1), method=method, **kw)
            nfev[label] = int(res.nfev.sum())
            return res.y
        solve(field, y0[:200], (0.0, s1), method=method,
              **({"rtol": 1e-6} if kind == "rtol" else {"h": 0.1}))     # compile
        methods.append((label, kind, run))
    for method in ("RK45", "DOP853"):
        def run(rtol, method=method):
            sol = solve_ivp(rhs, (0.0, s1), y0.ravel(), method=method, rtol=rtol, atol=rtol * 1e-2)
            return sol.y[:, -1].reshape(q, d)
        methods.append((f"scipy solve_ivp {method} (stacked)", "rtol", run))
    from . import bench_peers
    methods += bench_peers.ode_peers(data, y0, s1)
    return methods


def exp_rate(n=4096, reps=20_000, repeat=3):
    """Softmax weights per second on every core (:func:`scoredyn.kernels.mathfn.exp_sum`,
    the kernels' vectorised exp on a cache-resident array, with 512-bit vectors where the CPU
    has them, as the kernels): best of ``repeat``."""
    from ..kernels.mathfn import exp_sum
    x = -np.random.default_rng(0).uniform(0.0, 50.0, n)
    exp_sum(x, 2)
    return n * reps / min(_timed(lambda _: exp_sum(x, reps), None) for _ in range(repeat))


def ode_benchmark(q=10_000, n=20, d=2, s1=12.0, target=1e-8, big=(10_000, 1000), rng=0,
                  repeat=3, echo=print):
    """Time the log-time ODE to a final error <= ``target`` against the peers.

    The reference is scipy DOP853 at rtol 1e-13 on the stacked state.  Each
    method's tolerance (or step) starts loose and is tightened by factors of
    sqrt(10) (2 for steps) until its largest final error is below ``target``.
    scoredyn and scipy get the same search (rtol from 1e-6, atol = rtol / 100).
    The reported time is the median of at least ``repeat`` runs at the setting found
    (after a warm-up run), and of more (up to :data:`MAX_RUNS`) while they add up to less
    than :data:`MIN_TIMED_S`.  The exp-rate bound (:func:`exp_rate`) is measured at the start
    and again just before each scoredyn method, whose cost per evaluation is reported
    against that second measurement (the machine's speed drifts over minutes).
    """
    from ..dynamics.solver import solve
    gen, data, y0, ref = _ode_problem(q, n, d, s1, rng, echo)
    rows = []
    rate = exp_rate()
    bound_ns = n / rate * 1e9
    import numba
    echo(f"# bound: {n} exponentials per evaluation at {rate / 1e9:.2f} G exp/s "
         f"({numba.get_num_threads()} threads, the kernels' vectorised exp) = "
         f"{bound_ns:.2f} ns per evaluation")
    rows.append({"method": "exp-rate bound", "seconds": None, "max_error": None,
                 "setting": f"{rate:.3g} exp/s", "ns_per_evaluation": bound_ns})
    nfev = {}

    def report(name, seconds, err, setting):
        rows.append({"method": name, "seconds": seconds, "max_error": err, "setting": setting})
        echo(f"{name:34s} {seconds:9.3f} s   max error {err:8.1e}   {setting}")

    echo(f"# Q = {q}, N = {n}, d = {d}, s in [0, {s1}], target max error {target:g}; "
         f"times: median of >= {repeat} runs (more, up to {MAX_RUNS}, within "
         f"{MIN_TIMED_S:g} s) at the setting found")
    for name, kind, run in _ode_methods(data, y0, s1, nfev):
        setting = 1e-6 if kind == "rtol" else 0.1
        while True:
            err = float(np.max(np.abs(run(setting) - ref)))
            if err <= target or setting < 1e-13:
                break
            setting = setting / np.sqrt(10.0) if kind == "rtol" else setting / 2
        if name in nfev:
            # the bound again, just before: the machine's speed drifts over the minutes
            # between the first measurement and this method
            bound_ns = n / exp_rate() * 1e9
        seconds = _median_time(lambda: run(setting), repeat, MIN_TIMED_S)[0]
        extra = ""
        if name in nfev:
            per = seconds / nfev[name] * 1e9
            extra = (f", {per:.1f} ns per evaluation = {per / bound_ns:.1f}x the bound "
                     f"({bound_ns:.2f} ns)")
        report(name, seconds, err, f"{kind}={setting:.3g}{extra}")
        if name in nfev:
            rows[-1].update(nfev=nfev[name], ns_per_evaluation=per, bound_ns=bound_ns,
                            over_bound=per / bound_ns)
    peers = [r for r in rows if r["method"].startswith(("diffrax", "torchdiffeq"))]
    if peers:
        best = min(peers, key=lambda r: r["seconds"])
        same = {r["method"]: r for r in peers}.get("diffrax Dopri5 (JAX, vmap 64)")
        for r in rows:
            if r["method"] in nfev and r["setting"].startswith("rtol"):
                line = (f"# {r['method']}: {best['seconds'] / r['seconds']:.1f}x the fastest "
                        f"peer ({best['method']})")
                if same is not None:
                    line += f", {same['seconds'] / r['seconds']:.1f}x diffrax's Dopri5"
                echo(line)
    # vectorised numpy exponential Euler (= DDIM): fixed steps send near-boundary starts to the
    # wrong data point, so the error stays O(1) until h resolves every crossing; reported as
    # measured, with no extrapolation
    for h in (1e-2, 1e-3):
        t0 = time.perf_counter()
        y = _numpy_etd1(data, y0, s1, h)
        t = time.perf_counter() - t0
        err = float(np.max(np.abs(y - ref)))
        wrong = int(np.sum(np.argmin(((y[:, None] - data[None]) ** 2).sum(-1), 1)
                           != np.argmin(((ref[:, None] - data[None]) ** 2).sum(-1), 1)))
        report("numpy exponential Euler", t, err, f"h={h:g}, {wrong} of {q} at the wrong point")
    echo(f"# numpy exponential Euler does not reach {target:g} at any affordable h")
    if big:
        qb, nb = big
        datab = gen.standard_normal((nb, d))
        yb = gen.standard_normal((qb, d))
        fb = EmpiricalScore(datab, backend="numba")
        finals = {}
        for method, kw in (("gl-dopri5", {"rtol": 1e-8, "atol": 1e-10}),
                           ("dopri5", {"rtol": 1e-8, "atol": 1e-10}), ("etd1", {"h": 0.01})):
            bound_nb = nb / exp_rate() * 1e9       # measured just before, as above
            t0 = time.perf_counter()
            r = solve(fb, yb, (0.0, s1), method=method, **kw)
            t = time.perf_counter() - t0
            per = t / r.nfev.sum() * 1e9
            over = per / bound_nb
            rows.append({"method": f"scoredyn {method} Q={qb} N={nb}", "seconds": t,
                         "max_error": None, "setting": str(kw), "engine": r.engine,
                         "mean_steps": float(r.n_steps.mean()), "ns_per_evaluation": per,
                         "bound_ns": bound_nb, "over_bound": over})
            finals[method] = r
            echo(f"scoredyn {method} Q={qb}, N={nb}, d={d}: {t:.2f} s "
                 f"(mean {r.n_steps.mean():.0f} steps, {r.nfev.sum() / t / 1e6:.2f} M rhs/s, "
                 f"{per:.0f} ns per evaluation = {over:.1f}x the bound of "
                 f"{nb} exponentials, {bound_nb:.0f} ns; {r.engine})")
        # trajectories that pass within the tolerance of a basin boundary may end at another
        # data point (the theorem's boundary limit points); counted apart from the rest
        base = finals["dopri5"]
        for method in ("gl-dopri5", "etd1"):
            other = finals[method]
            same = other.nearest == base.nearest
            gap = float(np.max(np.abs(other.y[same] - base.y[same]), initial=0.0))
            rows.append({"method": f"{method} vs dopri5 Q={qb} N={nb}", "seconds": None,
                         "max_error": gap, "setting": "", "other_endpoint": int(np.sum(~same))})
            echo(f"# {method} vs dopri5 (rtol 1e-8): {int(np.sum(~same))} of {qb} end at another "
                 f"data point; the rest differ by <= {gap:.1e}")
    return rows


def work_precision(q=10_000, n=20, d=2, s1=12.0, rtols=tuple(10.0 ** -np.arange(4, 11)),
                   steps=(0.4, 0.2, 0.1, 0.05, 0.025, 0.0125), rng=0, echo=print):
    """Largest final error against wall time for every method over a range of settings.

    The problem, the reference and the methods are those of :func:`ode_benchmark`
    (adaptive ones at each ``rtols``, atol = rtol / 100; fixed-step ones at each
    of ``steps``); one timed run per setting.  Returns rows ``{"method",
    "setting", "seconds", "max_error"}``.
    """
    _, data, y0, ref = _ode_problem(q, n, d, s1, rng, echo)
    rows = []
    for name, kind, run in _ode_methods(data, y0, s1, {}):
        run(rtols[0] if kind == "rtol" else steps[0])          # compile (JAX), untimed
        for setting in (rtols if kind == "rtol" else steps):
            t0 = time.perf_counter()
            y = run(setting)
            seconds = time.perf_counter() - t0
            err = float(np.max(np.abs(y - ref)))
            rows.append({"method": name, "setting": f"{kind}={setting:.3g}", "seconds": seconds,
                         "max_error": err})
            echo(f"{name:34s} {kind}={setting:<9.3g} {seconds:9.3f} s   max error {err:8.1e}")
    return rows


def plot_work_precision(rows, out_dir, target=1e-8, name="work_precision",
                        title="log-time ODE: largest final error against wall time"):
    """Draw :func:`work_precision`'s rows (error against time, log-log) and save
    ``name.png/.pdf/.json`` in ``out_dir``; returns the paths."""
    from .plotting import save, style
    with style() as plt:
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["seconds"], max(r["max_error"], 1e-16)) for r in rows if r["method"] == method]
            t, e = np.array(pts).T
            scipy_peer = method.startswith("scipy")
            ax.loglog(t, e, "o--" if scipy_peer else "o-", ms=3, label=method)
        ax.axhline(target, color="0.4", lw=0.7, ls=":")
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("largest final error")
        ax.set_title(title)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
        paths = save(fig, out_dir, name, {"target": target, "rows": rows})
        plt.close(fig)
    return paths
