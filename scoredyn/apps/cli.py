"""The ``scoredyn`` command line."""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import time


class _Parser(argparse.ArgumentParser):
    """Errors are one line on stderr (``scoredyn verify: error: ...``) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _count(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}; got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive finite number; got {text!r}")
    return value


def _output_file(text):
    """A file to write at the end: refuse at once what would fail after the whole run."""
    path = pathlib.Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {str(parent)!r} does not exist")
    # try it (permission bits do not tell for root, or on /proc and read-only mounts)
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not writable ({exc.strerror})") from None
    if not existed:
        path.unlink()
    return text


def _output_dir(text):
    """A folder to write into (made when the work starts): refuse at once a file in the way
    or a place where it cannot be made."""
    path = pathlib.Path(text).absolute()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{str(existing)!r} is not a folder, so {text!r} "
                                         f"cannot be made")
    try:                     # try it: permission bits do not tell for root or on /proc
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".scoredyn-probe-")
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{str(existing)!r} is not writable "
                                         f"({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return text


def _machine():
    """The CPU (model name, AVX-512 or not, logical CPUs) and the kernels' thread count: the
    benchmarks' numbers, ratios included, depend on it."""
    import platform

    import numba
    info = {}
    try:
        with open("/proc/cpuinfo") as fh:        # Linux; the first CPU's entries
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    flags = info.get("flags", "").split()
    vec = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    return ", ".join(x for x in (name, vec, f"{os.cpu_count()} logical CPUs",
                                 f"{numba.get_num_threads()} kernel threads") if x)


def _bench(args):
    from threadpoolctl import threadpool_info

    from . import bench
    print(f"# machine: {_machine()}")
    blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
            for i in threadpool_info() if i.get("user_api") == "blas"]
    print(f"# BLAS: {blas}")
    rows = {}
    if args.what in ("field", "all"):
        sizes = bench.FIELD_SIZES_QUICK if args.quick else bench.FIELD_SIZES
        rows["field"] = bench.field_benchmark(sizes, dtypes=args.dtype, repeat=args.repeat,
                                              sigma=args.sigma)
    if args.what in ("ode", "all"):
        kw = dict(q=500, big=(5_000, 200)) if args.quick else {}
        rows["ode"] = bench.ode_benchmark(**kw)
        if args.plot:
            kw = dict(q=500, rtols=(1e-4, 1e-6, 1e-8), steps=(0.2, 0.05)) if args.quick else {}
            rows["work_precision"] = bench.work_precision(**kw)
            title = (f"log-time ODE, {kw.get('q', 10_000)} trajectories, N = 20, d = 2, "
                     f"s in [0, 12]")
            paths = bench.plot_work_precision(rows["work_precision"], args.plot, title=title)
            print(f"# wrote {paths[0]}")
    if args.what == "mixture":
        from . import bench_mixture
        rows["mixture"] = bench_mixture.mixture_benchmark(
            bench_mixture.SIZES_QUICK if args.quick else bench_mixture.SIZES, repeat=args.repeat)
        rows["mixture_ode"] = bench_mixture.ode_benchmark(
            bench_mixture.ODE_SIZES_QUICK if args.quick else bench_mixture.ODE_SIZES,
            repeat=args.repeat)
    if args.what == "ode-data":
        from . import bench_ode_data
        rows["ode_data"] = bench_ode_data.ode_data_benchmark(
            bench_ode_data.CASES_QUICK if args.quick else bench_ode_data.CASES)
    if args.what == "float32":
        from . import bench_float32
        kw = dict(q=10, n=1000) if args.quick else {}
        rows["float32"] = bench_float32.float32_certification(**kw)
    if args.what == "dask":
        from . import bench_dask
        rows["dask"] = bench_dask.dask_benchmark(quick=args.quick)
    if args.what == "coldstart":
        from . import bench_coldstart
        print("# each first call in a fresh process with an empty kernel cache")
        rows["coldstart"] = bench_coldstart.coldstart_benchmark(verify=not args.quick)
    if args.what == "gpu":
        from . import bench_gpu
        from ..backend import cuda_status
        usable, why = cuda_status()
        if not usable:
            print(f"scoredyn bench gpu: no usable GPU: {why}.", file=sys.stderr)
            return 2
        sizes = bench_gpu.REDUCTION_SIZES_QUICK if args.quick else bench_gpu.REDUCTION_SIZES
        rows["gpu_reduction"] = bench_gpu.reduction_benchmark(sizes, dtypes=args.dtype,
                                                              repeat=args.repeat)
        rows["gpu_ode"] = bench_gpu.ode_benchmark(
            bench_gpu.ODE_SIZE_QUICK if args.quick else bench_gpu.ODE_SIZE)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
        print(f"# wrote {args.json}")
    return 0


class _Cluster:
    """The Dask client of ``--scheduler`` / ``--workers`` (None without them), opened once per
    command and closed at its end; a scheduler that cannot be reached is a one-line error."""

    def __init__(self, args):
        self.args = args
        self.ctx = None

    def __enter__(self):
        scheduler = getattr(self.args, "scheduler", None)
        workers = getattr(self.args, "workers", None)
        if getattr(self.args, "client", None) is not None or (scheduler is None and workers is None):
            return getattr(self.args, "client", None)
        if scheduler is not None and workers is not None:
            _fail(self.args, "give either --scheduler or --workers, not both")
        try:
            from ..distributed.cluster import session
            self.ctx = session(scheduler, workers=workers)
            self.args.client = self.ctx.__enter__()
        except (ImportError, ConnectionError) as exc:
            _fail(self.args, str(exc))
        return self.args.client

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.args.client = None
            return self.ctx.__exit__(*exc)
        return False


def _fail(args, message):
    print(f"scoredyn {args.command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def figure_task(name, out, seed, quick, retrain=False):
    """One figure, as a task of a Dask cluster: the files it wrote.  ``retrain`` reaches the
    figures that ship trained networks (their ``main`` takes it) and no other."""
    import importlib
    import inspect
    mod = importlib.import_module(f"scoredyn.paper_figures.{name}")
    options = {"retrain": True} if retrain and "retrain" in inspect.signature(mod.main).parameters \
        else {}
    return {"files": [str(p) for p in mod.main(out, rng=seed, quick=quick, **options)["files"]]}


def _verify(args):
    from . import verify
    data, report = None, None
    if getattr(args, "data", None) is not None:
        from . import datasets
        try:
            data, report = datasets.prepare(datasets.load(args.data, args.key))
        except (OSError, ValueError, ImportError) as exc:
            _fail(args, str(exc))
        for line in report.lines():
            print(line)
    elif getattr(args, "key", None) is not None:
        _fail(args, "--key names an array of the --data archive; give --data too")
    if getattr(args, "store", None) is not None and args.scheduler is None \
            and args.workers is None and getattr(args, "client", None) is None:
        _fail(args, "--store keeps the claims' results of a cluster run; give --scheduler or "
                    "--workers too")
    with _Cluster(args) as client:
        results = verify.run(quick=args.quick, rng=args.seed, progress=not args.no_progress,
                             data=data, client=client, store=getattr(args, "store", None))
    print(verify.format_table(results))
    n_ok = sum(r.passed for r in results)
    print(f"{n_ok} of {len(results)} claims verified")
    if args.json:
        out = verify.as_json(results)
        if report is not None:
            from dataclasses import asdict
            out = {"data": {"source": str(args.data), "key": args.key, **asdict(report)},
                   "claims": out}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"wrote {args.json}")
    return 0 if n_ok == len(results) else 1


def _figures(args):
    import importlib

    from ..paper_figures import FIGURES
    if args.list:
        for name in FIGURES:
            mod = importlib.import_module(f"scoredyn.paper_figures.{name}")
            print(f"{name:26s} {mod.__doc__.strip().splitlines()[0]}")
        return 0
    names = FIGURES if not args.only else _select(args.only, FIGURES)
    written = []
    with _Cluster(args) as client:
        if client is not None:
            from ..distributed import sweep
            store = os.path.join(args.out, ".scoredyn-tasks")
            out = str(pathlib.Path(args.out).absolute())        # the workers' cwd may differ
            grid = [{"name": n, "out": out, "seed": args.seed, "quick": args.quick,
                     "retrain": args.retrain}
                    for n in names]
            done = sweep(figure_task, grid, store, client=client, progress=not args.no_progress)
            if done.computed < len(names):
                print(f"# {len(names) - done.computed} of {len(names)} figures were already made "
                      f"(results in {store}; delete it to make them again)")
            for r in done.results:
                written.extend(r["files"])
        else:
            jobs = min(args.jobs or os.cpu_count() or 1, len(names))
            files = (_figures_in_processes(names, args, jobs) if jobs > 1 else
                     _figures_here(names, args))
            for name in names:
                written.extend(files[name])
    print(f"wrote {len(written)} files to {args.out}:")
    for path in written:
        print(f"  {path}")
    return 0


#: started first, slowest first (about 50 s each on one core: figure 15 trains a network,
#: figure 8 integrates 10^4 trajectories over N = 1000 points), so that the other processes
#: work through the rest meanwhile and the progress bar keeps moving
_SLOW_FIRST = ("fig15_trained_vs_optimal", "fig08_rates_at_scale")


def _figures_here(names, args):
    from tqdm.auto import tqdm
    return {name: figure_task(name, args.out, args.seed, args.quick, args.retrain)["files"]
            for name in tqdm(names, desc="figures", unit="fig", disable=args.no_progress)}


def _limit_threads(threads):
    """Worker-process initializer: the cores shared out between the figure processes (set
    before numba or BLAS load in the fresh process)."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _figures_in_processes(names, args, jobs):
    """Independent figures in ``jobs`` fresh processes (the cores shared out between them);
    the bar advances as each figure is written."""
    import concurrent.futures
    import multiprocessing

    from tqdm.auto import tqdm
    order = sorted(names, key=lambda n: _SLOW_FIRST.index(n) if n in _SLOW_FIRST
                   else len(_SLOW_FIRST))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    files = {}
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads, initargs=(threads,)) as pool, \
            tqdm(total=len(names), desc=f"figures ({jobs} processes)", unit="fig",
                 disable=args.no_progress) as bar:
        futures = {pool.submit(figure_task, n, args.out, args.seed, args.quick, args.retrain): n
                   for n in order}
        for fut in concurrent.futures.as_completed(futures):
            files[futures[fut]] = fut.result()["files"]
            bar.update()
    return files


def _select(wanted, names):
    chosen = []
    for w in wanted:
        hits = [n for n in names if w and (n == w or n.startswith(w) or n.split("_", 1)[1] == w)]
        if not hits:
            print(f"scoredyn figures: error: unknown figure {w!r} in --only; see --list",
                  file=sys.stderr)
            raise SystemExit(2)
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _compile(args):
    from ..coldstart import warm
    t0 = time.perf_counter()
    took = warm(progress=not args.no_progress)
    for name, seconds in took:
        print(f"  {name:32s} {seconds:6.1f} s")
    print(f"compiled (or loaded from the cache) every CPU kernel in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def _run(args):
    with _Cluster(args):                   # one cluster for both steps
        rc = _verify(args)
        args.only, args.list = None, False
        return max(rc, _figures(args))


def _cluster_options(p, store=False):
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the tasks on the Dask cluster at ADDRESS (tcp://host:8786; needs "
                        "the dask extra); finished results are kept, so a re-run does only "
                        "what is missing")
    p.add_argument("--workers", type=_count(1), metavar="N",
                   help="run the tasks on a local Dask cluster of N worker processes")
    if store:
        p.add_argument("--store", metavar="DIR", type=_output_dir,
                       help="with --scheduler/--workers: keep each claim's result in DIR as it "
                            "finishes (a re-run with the same DIR runs only the missing ones)")


def _retrain_option(p):
    p.add_argument("--retrain", action="store_true",
                   help="figure 14: train its networks anew (4 to 7 minutes on one core) and "
                        "write them to OUT/fig14_networks, instead of loading the shipped ones")


def build_parser():
    parser = _Parser(prog="scoredyn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("bench", help="time the kernels against numpy / torch / pykeops")
    b.add_argument("what", nargs="?", default="all",
                   choices=["field", "ode", "ode-data", "all", "gpu", "coldstart", "dask",
                            "mixture", "float32"],
                   help="the posterior-mean kernel, the ODE solver, both on the CPU (default), "
                        "the CUDA kernels against cupy / torch on an NVIDIA GPU, each first "
                        "call from an empty kernel cache (coldstart; --quick: without verify), "
                        "the distributed workloads on 1 and 2 local Dask workers (dask), "
                        "Gaussian-mixture scores against numpy and scikit-learn (mixture), "
                        "the ODE on scikit-learn's digits and in d = 3072 on every engine "
                        "(ode-data; digits need scikit-learn), or "
                        "what a rigorous float32 GEMM could certify at large d (float32)")
    b.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    b.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                   choices=["float64", "float32"])
    b.add_argument("--repeat", type=_count(1), default=3)
    b.add_argument("--sigma", type=_positive_float, default=1.0,
                   help="noise level (scaled by sqrt(d)/4 for d > 8 so weights stay non-trivial)")
    b.add_argument("--json", metavar="PATH", type=_output_file,
                   help="also write the rows as JSON")
    b.add_argument("--plot", metavar="DIR", type=_output_dir,
                   help="ode: also sweep the tolerances and draw the work-precision diagram "
                        "(DIR/work_precision.png)")
    b.set_defaults(func=_bench)
    v = sub.add_parser("verify", help="verify the theorem's claims numerically (exit 1 on failure)")
    v.add_argument("--quick", action="store_true", help="small ensembles (seconds)")
    v.add_argument("--seed", type=_count(0), default=0, help="seed of the random data and starts")
    v.add_argument("--json", metavar="PATH", type=_output_file,
                   help="also write the results as JSON")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument("--data", metavar="FILE",
                   help="run the claims on your data: .npy, .npz (with --key), .csv or .txt "
                        "(N rows of d coordinates), or 'digits' (scikit-learn's 8x8 digits; "
                        "the data extra)")
    v.add_argument("--key", metavar="NAME", help="the array of a .npz archive to use")
    _cluster_options(v, store=True)
    v.set_defaults(func=_verify)
    f = sub.add_parser("figures", help="regenerate the paper's figures (PNG, PDF and the numbers)")
    f.add_argument("--out", default="figures", type=_output_dir,
                   help="output folder (default ./figures)")
    f.add_argument("--only", nargs="+", metavar="NAME", help="figure names or prefixes, e.g. fig03")
    f.add_argument("--quick", action="store_true", help="small settings (CI)")
    f.add_argument("--list", action="store_true", help="list the figures and exit")
    f.add_argument("--seed", type=_count(0), default=0)
    _retrain_option(f)
    f.add_argument("--no-progress", action="store_true")
    f.add_argument("--jobs", type=_count(1), metavar="N",
                   help="figures made at once in separate processes (default: one per core)")
    _cluster_options(f)
    f.set_defaults(func=_figures)
    c = sub.add_parser("compile", help="compile every CPU kernel now (numba's on-disk cache), "
                                       "so that first calls start at once")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_compile)
    r = sub.add_parser("run", help="the main job: `verify` then `figures`")
    r.add_argument("--out", default="figures", type=_output_dir)
    r.add_argument("--quick", action="store_true")
    r.add_argument("--seed", type=_count(0), default=0)
    _retrain_option(r)
    r.add_argument("--json", metavar="PATH", type=_output_file,
                   help="verification results as JSON")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--jobs", type=_count(1), metavar="N",
                   help="figures made at once in separate processes (default: one per core)")
    _cluster_options(r, store=True)
    r.set_defaults(func=_run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
