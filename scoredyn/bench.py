"""Benchmarks of scoredyn's kernels against the peers a user would otherwise pick.

Run as ``scoredyn bench`` (see ``scoredyn bench --help``).  Peers:

* numpy: the GEMM expansion ``|y|^2 - 2 y.x + |x|^2`` and scipy's logsumexp on
  the full Q x N matrix (always);
* torch ``scaled_dot_product_attention`` with ``q = [y / sigma, 1]``,
  ``k = [x / sigma, -|x|^2 / (2 sigma^2)]``, ``v = x`` (the logits up to a
  per-row constant, with no mask so torch's fused CPU kernel runs; when torch
  is installed);
* pykeops ``sumsoftmaxweight`` on the direct squared distance (when installed).

Each row prints the median wall time of every method, the speed ratio
``peer / scoredyn`` (> 1: scoredyn is faster) and the largest deviation of the
peer's posterior mean from scoredyn's.  This is a benchmark, not a test.
"""
import time

import numpy as np
from scipy.special import logsumexp

from .empirical import EmpiricalScore

FIELD_SIZES = [(10_000, 10_000, 2), (1_000, 10_000, 64), (1_000, 5_000, 3072), (100, 50_000, 3072)]
FIELD_SIZES_QUICK = [(2_000, 2_000, 2), (200, 2_000, 64), (100, 1_000, 3072)]


def _median_time(fn, repeat):
    fn()  # warm-up: compilation, caches
    times = []
    for _ in range(repeat):
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


def _torch_peer():
    try:
        import torch
        from torch.nn.functional import scaled_dot_product_attention
    except ImportError:
        return None

    def run(x, data, sigma):
        with torch.no_grad():
            one = np.ones((x.shape[0], 1), x.dtype)
            bias = (-(data * data).sum(1, keepdims=True) / (2 * sigma * sigma)).astype(data.dtype)
            q = torch.from_numpy(np.hstack([x / sigma, one]))[None]
            k = torch.from_numpy(np.hstack([data / sigma, bias]))[None]
            v = torch.from_numpy(data)[None]
            return scaled_dot_product_attention(q, k, v, scale=1.0)[0].numpy()
    return run


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
    for name, make in (("torch-sdpa", _torch_peer), ("pykeops", _keops_peer)):
        fn = make()
        if fn is not None:
            peers[name] = fn
        else:
            echo(f"# {name} not installed: skipped")
    rows = []
    header = f"{'dtype':8s} {'(Q, N, d)':>22s} {'scoredyn ms':>12s}" + "".join(
        f" {p + ' ms':>14s} {'ratio':>6s} {'max|dD|':>8s}" for p in peers)
    echo(header)
    for dt in dtypes:
        for q, n, d in sizes:
            data = gen.standard_normal((n, d)).astype(dt)
            x = gen.standard_normal((q, d)).astype(dt)
            s = float(sigma * np.sqrt(d) / 4 if d > 8 else sigma)
            field = EmpiricalScore(data)
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
