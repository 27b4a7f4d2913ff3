"""GPU benchmarks: ``scoredyn bench gpu`` (needs an NVIDIA GPU, numba-cuda and cupy).

Reduction (the posterior mean, ``4 Q N d`` flops in the usual accounting: a
subtraction and a multiply-add per coordinate for the distances, a
multiply-add for ``P X``) at the sizes of the performance targets, in float64 and float32:

* scoredyn's kernel alone (data and queries already on the device, timed with
  CUDA events) — achieved FLOP/s and the fraction of the device's peak for the
  dtype (FMA lanes per SM x SMs x clock x 2; the non-tensor-core peak, since
  the kernels do not use tensor cores);
* the public call ``EmpiricalScore(..., backend="cuda").denoise`` from host
  arrays (transfers included);
* peers on the same GPU: cupy (cuBLAS GEMM expansion + logsumexp, in query
  blocks that fit memory) and torch ``scaled_dot_product_attention``
  (augmented-coordinate form, when torch sees the GPU);
* the CPU kernels (``backend="numba"``) on a slice of the queries, scaled.

Exactness: the near-boundary case of :mod:`scoredyn.kernels`, "Numerical traps" (d = 3072, sigma = 1e-6) — the
largest error of the first site's weight against the CPU kernel (itself
checked against a 60-digit reference in tests/test_extremes.py).

ODE: ``10^6`` trajectories, N = 1000, d = 2, s in [0, 20], fused ETD1 and
Dormand-Prince on the GPU, with the CPU kernel on a slice for the ratio.

This is a benchmark, not a test; it prints a table and returns the rows.
"""
import time

import numpy as np

from .bench import near_boundary_case, wall_time
from ..fields.empirical import EmpiricalScore

REDUCTION_SIZES = [(100_000, 10_000, 2), (10_000, 50_000, 3072)]
REDUCTION_SIZES_QUICK = [(20_000, 2_000, 2), (2_000, 5_000, 3072)]
ODE_SIZE = (1_000_000, 1000, 2, 20.0)
ODE_SIZE_QUICK = (100_000, 200, 2, 20.0)

#: FMA lanes per SM (float32, float64) by compute capability (CUDA programming guide,
#: "Arithmetic Instructions"); others: (128, 2), the consumer parts.
_LANES = {(7, 0): (64, 32), (8, 0): (64, 32), (9, 0): (128, 64), (10, 0): (128, 64)}


def device_info():
    """Name, compute capability, SM count, clock and the non-tensor FP32 / FP64 peaks."""
    from numba import cuda
    dev = cuda.get_current_device()
    cc = tuple(dev.compute_capability)
    sms = dev.MULTIPROCESSOR_COUNT
    clock = dev.CLOCK_RATE * 1e3                       # kHz -> Hz
    l32, l64 = _LANES.get(cc, (128, 2))
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return {"name": name, "cc": cc, "sms": sms, "clock_hz": clock,
            "peak_float32": 2.0 * l32 * sms * clock, "peak_float64": 2.0 * l64 * sms * clock}


def _events_time(fn, repeat):
    """Median seconds of ``fn()`` on the device (CUDA events), after one warm-up."""
    from numba import cuda
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cuda.event_elapsed_time(start, stop) * 1e-3)
    return float(np.median(times))


def _kernel_runner(X, Y, sigma, dtype):
    """A closure running only the reduction kernels on device-resident arrays."""
    from numba import cuda

    from .._host import cuda as _cuda
    from ..kernels import cuda_reduction as cr
    q, d = Y.shape
    dev = _cuda.DeviceData(X)
    if dtype == "float64":
        Xd, Yd = dev.float64(), cuda.to_device(Y)
    else:
        Xd, c = dev.float32()
        Yd = cuda.to_device(np.ascontiguousarray(Y - c, dtype=np.float32))
    alpha = cuda.to_device(np.ones(q))
    inv = cuda.to_device(np.full(q, 0.5 / sigma ** 2))
    mean = cuda.device_array((q, d), dtype=np.dtype(dtype))
    dmin, lsum, d1, d2, fac = (cuda.device_array(q) for _ in range(5))
    i1, i2 = (cuda.device_array(q, dtype=np.int64) for _ in range(2))
    if d <= cr.SMALL_MAX_D:
        return lambda: cr.reduce_small(Xd, Yd, alpha, inv, False, mean, dmin, lsum, i1, d1, i2,
                                       d2, threads=_cuda.THREADS)
    nt = _cuda._tile_width(q, X.shape[0], np.dtype(dtype).itemsize, cr.GEOMETRY[0])
    work = cuda.device_array((q, nt), dtype=np.dtype(dtype))
    return lambda: cr.reduce_tiled(Xd, Yd, alpha, inv, False, mean, dmin, lsum, i1, d1, i2, d2,
                                   workspace=work, fac=fac, threads=_cuda.THREADS)


def _cupy_peer(X, Y, sigma, block_bytes=4 * 2 ** 30):
    """What a cupy user writes: cuBLAS GEMM expansion, dense softmax, in query blocks."""
    import cupy
    Xd, Yd = cupy.asarray(X), cupy.asarray(Y)
    xn2 = (Xd * Xd).sum(1)
    rows = max(1, block_bytes // (X.shape[0] * X.itemsize))

    def run():
        out = cupy.empty_like(Yd)
        for q0 in range(0, Yd.shape[0], rows):
            y = Yd[q0:q0 + rows]
            logits = (2.0 * (y @ Xd.T) - (y * y).sum(1)[:, None] - xn2[None]) / (2 * sigma ** 2)
            logits -= logits.max(1, keepdims=True)
            w = cupy.exp(logits)
            out[q0:q0 + rows] = (w @ Xd) / w.sum(1, keepdims=True)
        return out
    return run


def _torch_peer(X, Y, sigma):
    try:
        import torch
        from torch.nn.functional import scaled_dot_product_attention
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    one = np.ones((Y.shape[0], 1), Y.dtype)
    bias = (-(X * X).sum(1, keepdims=True) / (2 * sigma * sigma)).astype(X.dtype)
    q = torch.from_numpy(np.hstack([Y / sigma, one]))[None].to(dev)
    k = torch.from_numpy(np.hstack([X / sigma, bias]))[None].to(dev)
    v = torch.from_numpy(X)[None].to(dev)

    def run():
        with torch.no_grad():
            return scaled_dot_product_attention(q, k, v, scale=1.0)[0]
    return run


def reduction_benchmark(sizes=REDUCTION_SIZES, dtypes=("float64", "float32"), repeat=3, rng=0,
                        cpu_queries=200, echo=print):
    """Time the GPU reduction and its peers; return a list of row dicts."""
    info = device_info()
    echo(f"# device: {info['name']} (cc {info['cc'][0]}.{info['cc'][1]}, {info['sms']} SMs, "
         f"{info['clock_hz'] / 1e9:.2f} GHz); peaks without tensor cores: "
         f"FP32 {info['peak_float32'] / 1e12:.1f} TFLOP/s, FP64 {info['peak_float64'] / 1e12:.1f}")
    gen = np.random.default_rng(rng)
    rows = []
    echo(f"{'dtype':8s} {'(Q, N, d)':>22s} {'kernel s':>9s} {'TFLOP/s':>8s} {'of peak':>8s} "
         f"{'API s':>8s} {'cupy s':>8s} {'torch s':>8s} {'CPU s (scaled)':>15s}")
    for dt in dtypes:
        for q, n, d in sizes:
            X = gen.standard_normal((n, d)).astype(dt)
            Y = gen.standard_normal((q, d)).astype(dt)
            sigma = float(np.sqrt(d) / 4 if d > 8 else 1.0)
            X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
            t_kernel = _events_time(_kernel_runner(X64, Y64, sigma, dt), repeat)
            flops = 4.0 * q * n * d / t_kernel
            frac = flops / info[f"peak_{dt}"]
            field = EmpiricalScore(X64, backend="cuda", gpu_dtype=dt)
            t_api = wall_time(lambda: field.denoise(Y64, sigma), repeat)
            row = {"dtype": dt, "Q": q, "N": n, "d": d, "kernel_s": t_kernel, "flops": flops,
                   "fraction_of_peak": frac, "api_s": t_api, "device": info["name"]}
            try:
                row["cupy_s"] = _events_time(_cupy_peer(X, Y, sigma), repeat)
            except Exception as exc:                      # out of memory, no cupy
                row["cupy_s"], row["cupy_error"] = None, str(exc)
            torch_run = _torch_peer(X, Y, sigma)
            row["torch_s"] = _events_time(torch_run, repeat) if torch_run else None
            cpu = EmpiricalScore(X64, backend="numba")
            qc = min(q, cpu_queries)
            row["cpu_s"] = wall_time(lambda: cpu.denoise(Y64[:qc], sigma), 1) * q / qc
            fmt = lambda v: "-" if v is None else f"{v:8.3f}"           # noqa: E731
            echo(f"{dt:8s} {str((q, n, d)):>22s} {t_kernel:9.4f} {flops / 1e12:8.2f} "
                 f"{100 * frac:7.1f}% {t_api:8.3f} {fmt(row['cupy_s'])} {fmt(row['torch_s'])} "
                 f"{row['cpu_s']:15.2f}")
            rows.append(row)
    rows.append(_exactness_row(echo))
    return rows


def _exactness_row(echo):
    """Weight error on the near-boundary cancellation case, scoredyn GPU vs the peers."""
    data, y = near_boundary_case(np.random.default_rng(12))
    sigma = 1e-6
    ref = EmpiricalScore(data, backend="numba")
    w_ref = ref.weights(y, sigma)[0, 0]
    D_ref = ref.denoise(y, sigma)[0]
    scale = np.max(np.abs(data[:2]))
    row = {"case": "near-boundary cancellation", "w1": float(w_ref)}
    gpu = EmpiricalScore(data, backend="cuda").denoise(y, sigma)[0]
    row["scoredyn_D_error"] = float(np.max(np.abs(gpu - D_ref)) / scale)
    try:
        row["cupy_D_error"] = float(np.max(np.abs(_cupy_peer(data, y, sigma)().get()[0] - D_ref))
                                    / scale)
    except Exception:
        row["cupy_D_error"] = None
    torch_run = _torch_peer(data, y, sigma)
    row["torch_D_error"] = (float(np.max(np.abs(torch_run().cpu().numpy()[0] - D_ref)) / scale)
                            if torch_run else None)
    echo(f"# near-boundary case (d = 3072, sigma = 1e-6, w1 = {w_ref:.3f}): relative error of D: "
         f"scoredyn {row['scoredyn_D_error']:.1e}, cupy {row['cupy_D_error']}, "
         f"torch {row['torch_D_error']}")
    return row


def ode_benchmark(size=ODE_SIZE, rng=0, cpu_trajectories=20_000, echo=print):
    """Fused ETD1, Dormand-Prince and its generalized Lawson form on the GPU at
    ``size = (Q, N, d, s1)``."""
    from numba import cuda

    from ..dynamics.solver import solve
    q, n, d, s1 = size
    gen = np.random.default_rng(rng)
    X = gen.standard_normal((n, d))
    y0 = gen.standard_normal((q, d))
    gpu = EmpiricalScore(X, backend="cuda")
    cpu = EmpiricalScore(X, backend="numba")
    rows = []
    for method, kw in (("etd1", {"h": 0.01}), ("dopri5", {"rtol": 1e-6, "atol": 1e-9}),
                       ("gl-dopri5", {"rtol": 1e-6, "atol": 1e-9})):
        solve(gpu, y0[:256], (0.0, 1.0), method=method, **kw)            # compile
        cuda.synchronize()
        t0 = time.perf_counter()
        r = solve(gpu, y0, (0.0, s1), method=method, **kw)
        t = time.perf_counter() - t0
        qc = min(q, cpu_trajectories)
        t1 = time.perf_counter()
        rc = solve(cpu, y0[:qc], (0.0, s1), method=method, **kw)
        tc = (time.perf_counter() - t1) * q / qc
        err = float(np.max(np.abs(r.y[:qc] - rc.y)))
        rows.append({"method": method, "Q": q, "N": n, "d": d, "s1": s1, "gpu_s": t,
                     "cpu_s_scaled": tc, "mean_steps": float(r.n_steps.mean()),
                     "success": bool(r.success), "max_gpu_cpu_difference": err})
        echo(f"{method:9s} Q={q} N={n} d={d} s in [0, {s1:g}]: GPU {t:.2f} s, CPU {tc:.1f} s "
             f"(scaled from {qc}), mean {r.n_steps.mean():.0f} steps, |GPU - CPU| <= {err:.1e}")
    return rows
