"""``scoredyn bench dask``: the distributed workloads on 1 and 2 local workers.

Two workloads, each on the single-process path, on a ``LocalCluster`` of one
worker and of two (one thread each, and one numba thread per process, so that
workers do not compete for cores and the comparison is per core):

* an ensemble: Q trajectories of the authors' problem (N data points, d = 2,
  dopri5 from s = 0 to 20) through :func:`scoredyn.distributed.solve`;
* a sharded memorization audit: the ratio test of Q samples against N training
  points in d = 64, the training set in shards on the workers.

Reported: wall time, throughput relative to the single process, the scaling
efficiency of two workers over one (``t1 / (2 t2)``), and the per-task overhead
(an empty task's round trip).  A benchmark, not a test.
"""
import os
import time

import numpy as np

#: (trajectories, data points) of the ensemble; (samples, training points) of the audit
FULL = dict(ensemble=(100_000, 1000), audit=(10_000, 200_000))
QUICK = dict(ensemble=(10_000, 1000), audit=(2_000, 40_000))
_ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}


def _noop(x):
    return x


def _ensemble(sizes, rng):
    import scoredyn as sd
    q, n = sizes["ensemble"]
    g = np.random.default_rng(rng)
    return sd.EmpiricalScore(g.standard_normal((n, 2)), backend="numba"), g.standard_normal((q, 2))


def _audit(sizes, rng):
    q, n = sizes["audit"]
    g = np.random.default_rng(rng + 1)
    X = g.standard_normal((n, 64))
    Y = np.concatenate([X[:q // 4] + 1e-3 * g.standard_normal((q // 4, 64)),
                        g.standard_normal((q - q // 4, 64))])
    return X, Y


def dask_benchmark(quick=False, rng=0, echo=print):
    """Time both workloads on 0 (single process), 1 and 2 workers; returns the rows."""
    import dask
    import distributed
    import numba
    from threadpoolctl import threadpool_limits

    import scoredyn as sd
    from scoredyn import distributed as sdd
    sizes = QUICK if quick else FULL
    # this process and the workers all load the same compiled code (compared bit for bit)
    from ..coldstart import warm_elsewhere
    warm_elsewhere()
    field, y0 = _ensemble(sizes, rng)
    X, Y = _audit(sizes, rng)
    kw = dict(method="dopri5", rtol=1e-6, atol=1e-9)
    rows = []
    q_ens, n_ens = sizes["ensemble"]
    q_aud, n_aud = sizes["audit"]
    echo(f"# ensemble: {q_ens} trajectories, N = {n_ens}, d = 2, dopri5 to s = 20; "
         f"audit: memorization ratio of {q_aud} samples against {n_aud} points, d = 64")
    echo(f"# one thread per process (numba, BLAS); {os.cpu_count()} cores")
    # single process, one thread
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1):
            sd.solve(field, y0[:256], (0.0, 20.0), **kw)                # compile
            t0 = time.perf_counter()
            ref = sd.solve(field, y0, (0.0, 20.0), **kw)
            t_ens = time.perf_counter() - t0
            t0 = time.perf_counter()
            ref_ratio = sd.memorization.memorization_ratio(Y, X, n_bootstrap=0).value
            t_aud = time.perf_counter() - t0
    finally:
        numba.set_num_threads(old)
    base = {"ensemble": t_ens, "audit": t_aud}
    rows += [dict(workload="ensemble", workers=0, seconds=t_ens, tasks=1),
             dict(workload="audit", workers=0, seconds=t_aud, tasks=1)]
    echo(f"{'workload':10s} {'workers':>7s} {'tasks':>6s} {'seconds':>9s} {'vs 1 process':>13s}")
    for row in rows:
        echo(f"{row['workload']:10s} {'-':>7s} {1:6d} {row['seconds']:9.2f} {1.0:13.2f}")
    for workers in (1, 2):
        # the worker processes must see the thread counts before numba loads (distributed
        # may import it while starting a worker, before a Nanny's ``env`` is applied)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _ONE_THREAD}), \
                distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            threads = set(client.run(numba.get_num_threads).values())
            assert threads == {1}, f"workers run {threads} numba threads, not 1"
            client.submit(sd.solve, field, y0[:256], (0.0, 20.0), **kw).result()   # warm
            t0 = time.perf_counter()
            for _ in range(50):
                client.submit(_noop, 1, pure=False).result()
            overhead = (time.perf_counter() - t0) / 50
            chunk = max(256, q_ens // (8 * workers))
            t0 = time.perf_counter()
            res = sdd.solve(field, y0, (0.0, 20.0), client=client, chunk_size=chunk,
                            progress=False, **kw)
            t = time.perf_counter() - t0
            assert np.array_equal(res.y, ref.y), "the distributed ensemble differs"
            rows.append(dict(workload="ensemble", workers=workers, seconds=t,
                             tasks=-(-q_ens // chunk), task_overhead=overhead))
            shards = sdd.ShardedData.from_array(X, client=client,
                                                shard_size=-(-n_aud // (2 * workers)))
            sdd_ratio = sd.memorization.memorization_ratio(Y, shards, n_bootstrap=0)   # warm
            t0 = time.perf_counter()
            sdd_ratio = sd.memorization.memorization_ratio(Y, shards, n_bootstrap=0).value
            t = time.perf_counter() - t0
            assert sdd_ratio == ref_ratio, "the sharded audit differs"
            rows.append(dict(workload="audit", workers=workers, seconds=t,
                             tasks=2 * workers, task_overhead=overhead))
            for row in rows[-2:]:
                echo(f"{row['workload']:10s} {workers:7d} {row['tasks']:6d} {row['seconds']:9.2f} "
                     f"{base[row['workload']] / row['seconds']:13.2f}")
            echo(f"# per-task overhead on {workers} worker(s): {overhead * 1e3:.2f} ms")
    for w in ("ensemble", "audit"):
        t1 = next(r["seconds"] for r in rows if r["workload"] == w and r["workers"] == 1)
        t2 = next(r["seconds"] for r in rows if r["workload"] == w and r["workers"] == 2)
        echo(f"# {w}: 2 workers = {t1 / t2:.2f}x one worker (efficiency {t1 / (2 * t2):.0%}); "
             f"one worker = {base[w] / t1:.2f}x the single process")
    return rows
