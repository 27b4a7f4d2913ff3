"""The command line: `scoredyn verify` (the main job) and `scoredyn bench` run and report."""
import json
import os

import numpy as np
import pytest

from scoredyn.apps import cli


def test_verify_quick_passes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "verify.json"
    assert cli.main(["verify", "--quick", "--no-progress", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 of 6 claims verified" in text and "[FAIL]" not in text
    rows = json.loads(out.read_text())
    assert len(rows) == 6 and all(r["passed"] for r in rows)


def test_verify_exit_code_reflects_failure(monkeypatch, capsys):
    from scoredyn.apps import verify

    def failing(rng, quick):
        return verify.ClaimResult("x", "m", "t", False, 1, 0.0)
    monkeypatch.setattr(verify, "CLAIMS", [failing])
    assert cli.main(["verify", "--quick", "--no-progress"]) == 1
    assert "0 of 1 claims verified" in capsys.readouterr().out


def test_bench_quick_runs(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "field", "--quick", "--repeat", "1", "--dtype", "float64",
                     "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["field"]
    assert len(rows) == 3 and all(r["numpy_err"] < 1e-10 for r in rows)
    header = capsys.readouterr().out.splitlines()[0]     # the machine the numbers belong to
    assert header.startswith("# machine: ") and f"{os.cpu_count()} logical CPUs" in header


def test_work_precision_sweep_and_plot(tmp_path):
    """The work-precision diagram's sweep at toy size: every method at every setting, the
    errors falling as the setting tightens, and the figure written."""
    from scoredyn.apps import bench, bench_peers
    rows = bench.work_precision(q=40, rtols=(1e-4, 1e-8), steps=(0.2, 0.05), echo=lambda s: None)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    n_peers = len(bench_peers.ode_peers(np.zeros((2, 2)), np.zeros((1, 2)), 1.0))  # installed
    assert len(methods) == 6 + n_peers and len(rows) == 2 * len(methods)
    for m in methods:
        loose, tight = (r["max_error"] for r in rows if r["method"] == m)
        assert tight < loose
    paths = bench.plot_work_precision(rows, tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_coldstart_bench_plumbing(monkeypatch, tmp_path, capsys):
    """The cold-start table's plumbing (a fresh interpreter, an empty NUMBA_CACHE_DIR, the
    rows parsed back); the real steps compile every kernel (a minute), run by hand."""
    from scoredyn.apps import bench_coldstart
    monkeypatch.setattr(bench_coldstart, "_STEPS", (
        "import json, os\n"
        "print(json.dumps([['cache', float(len(os.listdir(os.environ['NUMBA_CACHE_DIR'])))]]))"))
    out = tmp_path / "cold.json"
    assert cli.main(["bench", "coldstart", "--quick", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["coldstart"] == [{"step": "cache", "seconds": 0.0}]


def test_mixture_bench_at_toy_size(monkeypatch, tmp_path):
    """``scoredyn bench mixture``: every path timed, and the kernel agreeing with the numpy
    stream (the bench's own check) at toy sizes."""
    from scoredyn.apps import bench_mixture
    monkeypatch.setattr(bench_mixture, "SIZES_QUICK", [(50, 20, 2, "isotropic"),
                                                       (30, 10, 40, "diagonal"),
                                                       (20, 5, 40, "low-rank")])
    monkeypatch.setattr(bench_mixture, "ODE_SIZES_QUICK", [(8, 5, 2)])
    out = tmp_path / "mix.json"
    assert cli.main(["bench", "mixture", "--quick", "--repeat", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["mixture"]
    assert [r["form"] for r in rows] == ["isotropic", "diagonal", "low-rank"]
    assert all(r["max_difference"] < 1e-12 for r in rows)
    # the fused and the numpy engines take the same steps: end points within ~1e-12
    (ode,) = result["mixture_ode"]
    assert ode["Q"] == 8 and ode["max_difference"] < 1e-11


def test_figures_in_parallel_processes(tmp_path, capsys):
    """Independent figures in two fresh processes: every file written, listed in figure
    order."""
    out = tmp_path / "figs"
    assert cli.main(["figures", "--quick", "--only", "fig02", "fig07", "--out", str(out),
                     "--jobs", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    for name in ("fig02_weights", "fig07_score_time"):
        assert (out / f"{name}.png").exists()
    assert text.index("fig02_weights.png") < text.index("fig07_score_time.png")


def test_store_needs_a_cluster(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--quick", "--store", str(tmp_path)])
    assert exc.value.code == 2
    assert "--store keeps the claims' results of a cluster run" in capsys.readouterr().err


def test_ode_peers_agree_with_scoredyn():
    """The optional peers of ``bench ode`` (diffrax, torchdiffeq; skipped where neither is
    installed) integrate the same ODE: at rtol 1e-8 their end points agree with scoredyn's
    dopri5 at rtol 1e-10 to ~1e-6 (the tolerance times the flow's growth over s <= 4)."""
    from scoredyn.apps import bench_peers
    rng = np.random.default_rng(0)
    data, y0 = rng.standard_normal((5, 2)), rng.standard_normal((70, 2))
    peers = bench_peers.ode_peers(data, y0, 4.0)
    if not peers:
        pytest.skip("neither diffrax nor torchdiffeq is installed")
    import scoredyn as sd
    ref = sd.solve(sd.EmpiricalScore(data), y0, (0.0, 4.0), rtol=1e-10, atol=1e-12).y
    for label, kind, run in peers:
        assert kind == "rtol"
        np.testing.assert_allclose(run(1e-8), ref, rtol=0, atol=1e-6, err_msg=label)


def test_retrain_reaches_figure_14_only(tmp_path):
    """`--retrain` trains figure 14's networks and writes them with their manifest beside the
    figure; a figure without networks ignores it."""
    assert cli.main(["figures", "--quick", "--only", "fig02", "fig14", "--retrain", "--jobs",
                     "1", "--no-progress", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "fig14_networks" / "training.json").read_text())
    assert manifest["networks"] and all((tmp_path / "fig14_networks" / name).exists()
                                        for name in manifest["networks"])
    record = json.loads((tmp_path / "fig14_network_memorization.json").read_text())
    assert record["networks"].startswith("networks trained in this run")


def test_float32_certification_table(capsys):
    """The float32 analysis at toy size: the three kinds partition the entries; the logit
    bound falls like 1/sigma^2; small sigma leaves only the nearest to recompute and large
    sigma certifies everything at a loose tolerance."""
    from scoredyn.apps.bench_float32 import float32_certification
    rows = float32_certification(q=6, n=300, d=512, scales=(0.1, 1.0, 64.0), taus=(1e-3,),
                                 echo=False)
    for r in rows:
        assert abs(r["negligible"] + r["certified"] + r["recompute"] - 1.0) < 1e-12
    bounds = [r["logit_bound"] for r in rows]
    np.testing.assert_allclose(bounds[0] / bounds[1], 100.0, rtol=1e-9)
    assert rows[0]["recompute"] <= 3 / 300 and rows[-1]["certified"] == 1.0
    assert cli.main(["bench", "float32", "--quick"]) == 0
    assert "logit bound" in capsys.readouterr().out


def test_ode_data_benchmark_rows():
    """``scoredyn bench ode-data`` at toy size: every engine takes the same steps (equal
    evaluation counts), the batched engine's candidates serve part of the late stages, and
    the end points agree with the numpy engine's to the GEMM path's logit accuracy (tau =
    1e-12 per logit moves D by at most tau * diam(data) per evaluation, diam <= sqrt(64) = 8
    for pixels in [0, 1]; over the 11 units of s: 11 * 8e-12 < 1e-10)."""
    from scoredyn.apps.bench_ode_data import ode_data_benchmark
    cases = (("digits", ("digits", None), 12, 8.0, ("batched", "numpy", "numba")),)
    rows = ode_data_benchmark(cases, echo=False)
    assert [r["engine"] for r in rows] == ["batched", "numpy", "numba"]
    assert len({r["nfev"] for r in rows}) == 1 and all(r["success"] for r in rows)
    assert 0.2 < rows[0]["served"] < 1.0
    assert max(r["max_dy"] for r in rows) < 1e-10
    assert rows[0]["vs_batched"] == 1.0
    assert cli.build_parser().parse_args(["bench", "ode-data", "--quick"]).what == "ode-data"
