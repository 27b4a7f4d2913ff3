"""scoredyn.distributed on a real Dask LocalCluster (2 worker processes, 1 thread each).

No mocks: a real scheduler and real workers, started and closed by the fixtures.

The single-process references are computed on a worker (:func:`on_worker`): numba's cached
object code and a kernel freshly compiled in this process may differ in the last bit (see
``scoredyn.distributed.ensemble``), and the workers run the cached code.
"""
import functools
import os
import signal
import threading
import time

import numpy as np
import pytest

import scoredyn as sd

distributed = pytest.importorskip("distributed")
sdd = pytest.importorskip("scoredyn.distributed")
from scoredyn.kernels.config import TILE_N  # noqa: E402

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module", autouse=True)
def warm_cache():
    """Every kernel in numba's on-disk cache before a worker starts, so that every worker
    loads the same compiled code rather than compiling its own (``scoredyn compile``)."""
    from scoredyn.coldstart import warm_elsewhere
    warm_elsewhere()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def on_worker(client, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` run on a worker: the compiled code the chunks run."""
    return client.submit(fn, *args, pure=False, **kwargs).result()


def _problem(q=600, n=20, d=2, seed=0):
    g = np.random.default_rng(seed)
    return sd.EmpiricalScore(g.standard_normal((n, d)), backend="numba"), g.standard_normal((q, d))


# -- ensembles ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["dopri5", "gl-dopri5"])
@pytest.mark.parametrize("chunk_size", [97, 250])
def test_ensemble_equals_single_process_bit_for_bit(client, method, chunk_size):
    field, y0 = _problem()
    ref = on_worker(client, sd.solve, field, y0, (0.0, 12.0), method=method, rtol=1e-8,
                    atol=1e-10)
    res = sdd.solve(field, y0, (0.0, 12.0), client=client, chunk_size=chunk_size, method=method,
                    rtol=1e-8, atol=1e-10, progress=False)
    assert res.engine == ref.engine
    for name in ("y", "n_steps", "n_rejected", "nfev", "status", "nearest", "nearest_distance",
                 "max_norm", "cell_changes", "boundary_distance"):
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)
    assert res.message == ref.message


def test_ensemble_of_no_trajectories_is_the_empty_solve(client, tmp_path):
    """Q = 0: scoredyn.solve's empty result (shapes, engine), gathered or stored; it had
    raised about an internal `parts` list."""
    field, _ = _problem()
    y0 = np.zeros((0, 2))
    ref = sd.solve(field, y0, (0.0, 4.0), save_at=[1.0])
    res = sdd.solve(field, y0, (0.0, 4.0), client=client, save_at=[1.0], progress=False)
    assert res.engine == ref.engine and res.y.shape == ref.y.shape == (0, 2)
    assert res.ys.shape == ref.ys.shape == (1, 0, 2) and res.message == ref.message == []
    stored = sdd.solve(field, y0, (0.0, 4.0), client=client, store=tmp_path / "s",
                       progress=False)
    assert stored.load().y.shape == (0, 2)


def test_ensemble_with_every_diagnostic_and_a_store(client, tmp_path):
    field, y0 = _problem(q=300)
    kw = dict(method="dopri5", recentre=True, delta=0.05, s_star=2.0, save_at=[1.0, 4.0])
    ref = on_worker(client, sd.solve, field, y0, (0.0, 10.0), **kw)
    store = tmp_path / "run"
    stored = sdd.solve(field, y0, (0.0, 10.0), client=client, chunk_size=64, store=store,
                       progress=False, **kw)
    assert len(stored) == 5 and stored.bounds[-1] == (256, 300)
    res = stored.load()
    for name in ("y", "ys", "deviation", "centre", "entry_time", "first_inside", "nfev"):
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)
    # a re-run computes only the missing chunk: the others keep their files untouched
    mtimes = {p: os.stat(p).st_mtime_ns for p in store.glob("chunk-*.npz")}
    os.remove(store / "chunk-000002.npz")
    again = sdd.solve(field, y0, (0.0, 10.0), client=client, chunk_size=64, store=store,
                      progress=False, **kw).load()
    np.testing.assert_array_equal(again.y, ref.y)
    for p, t in mtimes.items():
        if p.name != "chunk-000002.npz":
            assert os.stat(p).st_mtime_ns == t
    # the same store for another problem is refused
    with pytest.raises(FileExistsError, match="holds something else"):
        sdd.solve(field, y0[:10], (0.0, 10.0), client=client, chunk_size=64, store=store, **kw)


def test_a_killed_worker_changes_nothing(tmp_path):
    """Kill one worker process while chunks are running: Dask reruns its tasks, and the
    gathered result is still the single-process one (nothing lost, nothing counted twice)."""
    field, y0 = _problem(q=3000, n=200, seed=3)
    store = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        ref = on_worker(c, sd.solve, field, y0, (0.0, 12.0), method="dopri5", rtol=1e-9,
                        atol=1e-11)
        victim = list(c.run(os.getpid).values())[0]
        killed = threading.Event()

        def kill_when_running():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not list(store.glob("chunk-*.npz")):
                time.sleep(0.01)
            os.kill(victim, signal.SIGKILL)
            killed.set()

        t = threading.Thread(target=kill_when_running)
        t.start()
        stored = sdd.solve(field, y0, (0.0, 12.0), client=c, chunk_size=100, store=store,
                           method="dopri5", rtol=1e-9, atol=1e-11, progress=False)
        t.join()
        assert killed.is_set()
        assert victim not in c.run(os.getpid).values()          # the worker did die
    res = stored.load()
    np.testing.assert_array_equal(res.y, ref.y)
    np.testing.assert_array_equal(res.nfev, ref.nfev)
    assert len(res.y) == len(y0)


def test_ensemble_bad_input(client, tmp_path):
    field, y0 = _problem(q=10)
    with pytest.raises(ValueError, match="`chunk_size` must be a positive integer; got 0"):
        sdd.solve(field, y0, (0.0, 1.0), client=client, chunk_size=0)
    with pytest.raises(ValueError, match="`s_span` must be increasing"):
        sdd.solve(field, y0, (1.0, 0.0), client=client)
    with pytest.raises(TypeError, match="unexpected keyword"):
        sdd.solve(field, y0, (0.0, 1.0), client=client, rtool=1e-3)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds something else"):
        sdd.solve(field, y0, (0.0, 1.0), client=client, store=other)
    with pytest.raises(ConnectionError, match="Could not reach a Dask scheduler at"):
        sdd.connect("tcp://127.0.0.1:9", timeout=1)
    with pytest.raises(ValueError, match="`workers` must be a positive integer"):
        sdd.connect(workers=0)
    with pytest.raises(ValueError, match="`timeout` must be positive; got -1.0"):
        sdd.connect("tcp://127.0.0.1:9", timeout=-1)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"`store` .* cannot be made"):
        sdd.solve(field, y0, (0.0, 1.0), client=client, store=blocker / "sub")


# -- sharded training sets ----------------------------------------------------------------------

def _bound(X, D, n_shards):
    """The rounding bound of the sharded posterior mean (module docstring of
    scoredyn.distributed.sharded), per query."""
    n = len(X)
    eps = np.finfo(float).eps / 2
    R = np.sqrt(np.max(((X[None] - D[:, None]) ** 2).sum(-1), axis=1))
    return eps * R * (2 * (TILE_N + n / TILE_N + n_shards) + 8 * (np.log(n) + 4))


@pytest.fixture(scope="module")
def sharded(client):
    g = np.random.default_rng(7)
    X = g.standard_normal((1500, 3))
    X[11] = X[1200]                                        # a duplicate across shards
    return X, sdd.ShardedData.from_array(X, client=client, shard_size=400)


@pytest.mark.parametrize("sigma", [1e-300, 1e-3, 0.05, 0.4, 3.0, 1e300])
def test_sharded_field_equals_one_machine(sharded, sigma):
    X, S = sharded
    field, one = sdd.ShardedEmpiricalScore(S), sd.EmpiricalScore(X, backend="numba")
    Y = np.random.default_rng(8).standard_normal((300, 3))
    D, D1 = field.denoise(Y, sigma), one.denoise(Y, sigma)
    assert np.all(np.isfinite(D))
    err = np.sqrt(((D - D1) ** 2).sum(-1))
    assert np.all(err <= _bound(X, D1, 4)), err.max()
    lp, lp1 = field.log_density(Y, sigma), one.log_density(Y, sigma)
    finite = np.isfinite(lp1)
    np.testing.assert_array_equal(np.isfinite(lp), finite)
    # logsumexp: both sides' relative weights err by the same few ulp (no N-fold term)
    np.testing.assert_array_equal(lp[~finite], lp1[~finite])     # -inf below float64's range
    if finite.any():
        np.testing.assert_allclose(lp[finite], lp1[finite], rtol=0,
                                   atol=16 * np.finfo(float).eps * (1 + np.abs(lp1[finite]).max()))


def test_sharded_exact_ties_and_duplicates(sharded):
    """A query at the midpoint of two points in different shards, at sigma far below the
    gap: D is their average exactly as on one machine; a query on the duplicated point
    (in two shards) gets exactly that point."""
    X, S = sharded
    field, one = sdd.ShardedEmpiricalScore(S), sd.EmpiricalScore(X, backend="numba")
    Y = np.stack([X[11], (X[5] + X[1300]) / 2])
    np.testing.assert_array_equal(field.denoise(Y[:1], 1e-200), X[11][None])
    np.testing.assert_array_equal(field.denoise(Y, 1e-200), one.denoise(Y, 1e-200))


def test_sharded_nearest_and_metrics_are_exact(sharded, tmp_path, client):
    X, S = sharded
    Y = np.concatenate([X[:40] + 1e-7, np.random.default_rng(9).standard_normal((200, 3))])
    i1, d1 = sd.memorization.nearest_training_points(Y, S, k=5)
    i2, d2 = on_worker(client, sd.memorization.nearest_training_points, Y, X, k=5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    for metric in (sd.memorization.memorization_ratio, sd.memorization.knn_distance):
        a, b = metric(Y, S, rng=0), on_worker(client, metric, Y, X, rng=0)
        assert (a.value, a.ci_low, a.ci_high) == (b.value, b.ci_low, b.ci_high)
    # shards loaded by the workers themselves, from files
    paths = []
    for j, lo in enumerate(range(0, len(X), 500)):
        paths.append(tmp_path / f"shard{j}.npy")
        np.save(paths[-1], X[lo:lo + 500])
    S2 = sdd.ShardedData.from_loaders([functools.partial(np.load, p) for p in paths],
                                      client=client)
    assert S2.shape == X.shape
    np.testing.assert_array_equal(sd.memorization.nearest_training_points(Y, S2, k=2)[0], i2[:, :2])


def test_sharded_field_runs_in_solve(sharded):
    X, S = sharded
    Y = np.random.default_rng(10).standard_normal((6, 3))
    r = sd.solve(sdd.ShardedEmpiricalScore(S), Y, (0.0, 4.0), method="rk4", h=0.25)
    r1 = sd.solve(sd.EmpiricalScore(X), Y, (0.0, 4.0), method="rk4", h=0.25, engine="numpy")
    assert r.engine == "numpy"
    np.testing.assert_allclose(r.y, r1.y, rtol=0, atol=1e-12)


# -- sweeps ---------------------------------------------------------------------------------------

def _square(x, fail=False):
    if fail:
        raise ArithmeticError(f"no square for {x}")
    return {"x2": x * x, "arr": np.arange(3) * x}


def _slow_square(x):
    time.sleep(0.05)
    return x * x


def test_sweep_persists_and_resumes(client, tmp_path):
    store = tmp_path / "sweep"
    out = sdd.sweep(_square, {"x": [1, 2, 3]}, store, client=client, progress=False)
    assert out.computed == 3 and [r["x2"] for r in out.results] == [1, 4, 9]
    assert out.results[2]["arr"] == [0, 3, 6]
    again = sdd.sweep(_square, {"x": [1, 2, 3, 4]}, store, client=client, progress=False)
    assert again.computed == 1 and again.results[3]["x2"] == 16


def test_sweep_reports_a_failing_set_and_keeps_the_others(client, tmp_path):
    grid = [{"x": 1}, {"x": 2, "fail": True}, {"x": 3}]
    with pytest.raises(RuntimeError, match=r"1 of 3 parameter sets failed \(\{'x': 2, 'fail': True\}"
                                           r": ArithmeticError: no square for 2\)"):
        sdd.sweep(_square, grid, tmp_path / "s", client=client, progress=False)
    out = sdd.sweep(_square, grid, tmp_path / "s", client=client, errors="report", progress=False)
    assert out.computed == 1                                  # only the failed set ran again
    assert out.results[0]["x2"] == 1 and out.results[1] is None and out.results[2]["x2"] == 9
    assert out.failures == [({"x": 2, "fail": True}, "ArithmeticError: no square for 2")]
    with pytest.raises(ValueError, match="`grid\\['x'\\]` must be a non-empty list"):
        sdd.sweep(_square, {"x": []}, tmp_path / "t", client=client)


def test_sweep_survives_a_killed_worker(tmp_path):
    store = tmp_path / "k"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        victim = list(c.run(os.getpid).values())[1]

        def kill_soon():
            while store.exists() is False or len(list(store.glob("*.json"))) < 3:
                time.sleep(0.005)
            os.kill(victim, signal.SIGKILL)

        t = threading.Thread(target=kill_soon)
        t.start()
        out = sdd.sweep(_slow_square, {"x": list(range(40))}, store, client=c, progress=False)
        t.join()
    assert out.results == [x * x for x in range(40)] and not out.failures
    assert len(list(store.glob("*.json"))) == 40


# -- the command line -----------------------------------------------------------------------------

def test_figures_as_tasks_resume(tmp_path, capsys):
    from scoredyn.apps import cli
    out = tmp_path / "figs"
    args = ["figures", "--quick", "--only", "fig02", "--out", str(out), "--workers", "1",
            "--no-progress"]
    assert cli.main(args) == 0
    assert (out / "fig02_weights.png").exists()
    assert cli.main(args) == 0
    assert "1 of 1 figures were already made" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["verify", "--quick", "--scheduler", "tcp://127.0.0.1:9"], "Could not reach a Dask scheduler"),
    (["figures", "--workers", "1", "--scheduler", "tcp://127.0.0.1:9"],
     "give either --scheduler or --workers"),
    (["verify", "--workers", "0"], "--workers: must be an integer >= 1"),
    (["figures", "--scheduler", " "], "The scheduler address is empty"),
])
def test_cluster_flags_bad_input(argv, message, capsys, monkeypatch):
    from scoredyn.distributed import cluster
    from scoredyn.apps import cli
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


class _Exhausting(sd.ScoreField):
    """A field that runs out of memory (raises MemoryError) or, with ``kill``, takes its
    worker process down (as the kernel's OOM killer would) — only on a Dask worker."""

    dim = 2

    def __init__(self, kill):
        self.kill = kill

    def residual(self, x, sigma, alpha, label=None):
        try:
            distributed.get_worker()
        except ValueError:                                   # on the client: harmless
            return -x, None
        if self.kill:
            os._exit(1)
        raise MemoryError("Unable to allocate 64.0 GiB")


@pytest.mark.parametrize("kill", [False, True])
def test_a_task_out_of_memory_names_the_chunk_size(kill):
    import dask
    y0 = np.zeros((6, 2))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        with pytest.raises(MemoryError, match=r"lower `chunk_size` \(now 3 rows per task\)"):
            sdd.solve(_Exhausting(kill), y0, (0.0, 1.0), client=c, chunk_size=3,
                      method="rk4", h=0.5, progress=False)
