"""What a new user waits for: each first call timed in a fresh process with an empty kernel cache.

Each measurement runs in a new interpreter whose numba cache is a new, empty
folder (``NUMBA_CACHE_DIR``), so every kernel compiles as on a fresh install:

* ``import scoredyn``;
* the first ``denoise`` (N = 20, d = 2);
* the first ``solve`` of 10 trajectories (the per-trajectory loop);
* then the first ``solve`` of 1000 trajectories, dopri5 and gl-dopri5 (the SIMD-lane loop);
* the first ``voronoi.classify``;
* and, in another fresh process and cache, ``scoredyn verify --quick``.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

_STEPS = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import scoredyn as sd
rows = [("import scoredyn", time.perf_counter() - t0)]
rng = np.random.default_rng(1)
X = rng.standard_normal((20, 2))
field = sd.EmpiricalScore(X)
def step(name, fn):
    t = time.perf_counter()
    fn()
    rows.append((name, time.perf_counter() - t))
step("first denoise (N = 20, d = 2)", lambda: field.denoise(rng.standard_normal((5, 2)), 0.1))
step("first solve, 10 trajectories", lambda: sd.solve(field, rng.standard_normal((10, 2)),
                                                          (0.0, 12.0), rtol=1e-8))
for m in ("dopri5", "gl-dopri5"):
    step(f"first solve, 1000 trajectories, {m}",
         lambda m=m: sd.solve(field, rng.standard_normal((1000, 2)), (0.0, 12.0), method=m,
                              rtol=1e-8))
step("first voronoi.classify", lambda: sd.voronoi.classify(X, rng.standard_normal((100, 2)),
                                                            1e-9))
rows.append(("total", time.perf_counter() - t0))
print(json.dumps(rows))
"""


def _fresh_env(cache):
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


def coldstart_benchmark(*, verify=True, echo=print):
    """Time each first call from an empty kernel cache.

    Parameters
    ----------
    verify : bool
        Also time ``scoredyn verify --quick`` from its own empty cache.
    echo : callable
        Receives one line per measurement.

    Returns
    -------
    list of dict
        ``{"step": name, "seconds": s}``.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="scoredyn-coldstart-") as cache:
        out = subprocess.run([sys.executable, "-c", _STEPS], env=_fresh_env(cache),
                             capture_output=True, text=True, check=True)
        for name, seconds in json.loads(out.stdout.strip().splitlines()[-1]):
            rows.append({"step": name, "seconds": seconds})
            echo(f"{name:44s} {seconds:7.2f} s")
    if verify:
        with tempfile.TemporaryDirectory(prefix="scoredyn-coldstart-") as cache:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "scoredyn.apps.cli", "verify", "--quick",
                            "--no-progress"], env=_fresh_env(cache), capture_output=True,
                           text=True, check=True)
            seconds = time.perf_counter() - t0
        rows.append({"step": "scoredyn verify --quick", "seconds": seconds})
        echo(f"{'scoredyn verify --quick':44s} {seconds:7.2f} s")
    return rows
