"""Parameter sweeps on a Dask cluster that persist each result as it completes and resume.

A sweep is a function of one parameter set (keyword arguments) and a grid of
parameter sets.  Each set runs as one task; its result is written to the store
(one JSON file per set, named by a hash of the parameters) as soon as the task
finishes, so a sweep interrupted by a crash or a cancelled job, run again with
the same store, computes only the sets that have no file yet.  A set whose
function raises is reported with its parameters; the others finish and are kept.
"""
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .cluster import gather_in_order, session


@dataclass
class SweepResult:
    """The outcome of :func:`sweep`.

    Attributes
    ----------
    params : list of dict
        The parameter sets, in grid order.
    results : list
        Each set's result (None for a failed set).
    failures : list of (dict, str)
        The parameter sets whose function raised, with the exception.
    computed : int
        How many sets ran in this call (the rest were found in the store).
    """

    params: list
    results: list
    failures: list = field(default_factory=list)
    computed: int = 0


def expand_grid(grid):
    """Parameter sets from a grid: a dict of lists (their Cartesian product, in the
    order given) or a list of dicts (as they are)."""
    if isinstance(grid, dict):
        if not grid:
            raise ValueError("`grid` must name at least one parameter.")
        names = list(grid)
        for name in names:
            if not isinstance(grid[name], (list, tuple, np.ndarray)) or len(grid[name]) == 0:
                raise ValueError(f"`grid[{name!r}]` must be a non-empty list of values.")
        return [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    sets = list(grid)
    if not sets or not all(isinstance(p, dict) for p in sets):
        raise ValueError("`grid` must be a dict of lists or a non-empty list of dicts "
                         "(parameter sets).")
    return sets


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a sweep result must be JSON-serialisable (numbers, strings, lists, "
                    f"dicts, numpy arrays); got {type(value).__name__}.")


def params_key(params):
    """A stable file name for a parameter set (hash of its canonical JSON)."""
    text = json.dumps(params, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _run_and_store(fn, params, path):
    try:
        result = fn(**params)
    except Exception as exc:                      # reported with its parameters by sweep()
        return {"failed": f"{type(exc).__name__}: {exc}"}
    record = {"params": params, "result": result}
    text = json.dumps(record, default=_jsonable)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return json.loads(text)


def sweep(fn, grid, store, *, client=None, workers=None, errors="raise", progress=None):
    """Run ``fn(**params)`` for every parameter set of ``grid`` on a Dask cluster.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled to the workers) returning a
        JSON-serialisable result (numpy arrays and scalars are converted).
    grid : dict of lists or list of dicts
        See :func:`expand_grid`.
    store : str or os.PathLike
        A directory for the results (``<hash>.json`` per set, holding the
        parameters and the result); created if missing.  On a multi-machine
        cluster it must be on a file system every worker sees.
    client, workers
        See :func:`scoredyn.distributed.connect`.
    errors : {"raise", "report"}
        When sets fail: raise ``RuntimeError`` listing them after all the others
        have finished and been stored, or only report them in the result.
    progress : bool or None
        A progress bar over the sets, fed as the cluster finishes them.

    Returns
    -------
    SweepResult
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
    if errors not in ("raise", "report"):
        raise ValueError(f"`errors` must be 'raise' or 'report'; got {errors!r}.")
    sets = expand_grid(grid)
    store = os.fspath(store)
    if os.path.exists(store) and not os.path.isdir(store):
        raise FileExistsError(f"`store` {store!r} exists and is not a directory.")
    os.makedirs(store, exist_ok=True)
    paths = [os.path.join(store, params_key(p) + ".json") for p in sets]
    results = [None] * len(sets)
    todo = []
    for i, path in enumerate(paths):
        if os.path.exists(path):
            with open(path) as f:
                record = json.load(f)
            if record.get("params") != json.loads(json.dumps(sets[i], default=_jsonable)):
                raise FileExistsError(f"`store` {store!r} holds {os.path.basename(path)} for "
                                      f"other parameters than {sets[i]!r}; use a new directory.")
            results[i] = record["result"]
        else:
            todo.append(i)
    failures = []
    if todo:
        with session(client, workers=workers) as c:
            futures = [c.submit(_run_and_store, fn, sets[i], paths[i], pure=False) for i in todo]
            records = gather_in_order(c, futures, what="sweep", progress=progress)
        for i, record in zip(todo, records):
            if "failed" in record:
                failures.append((sets[i], record["failed"]))
            else:
                results[i] = record["result"]
    out = SweepResult(sets, results, failures, len(todo))
    if failures and errors == "raise":
        listing = "; ".join(f"{p!r}: {e}" for p, e in failures)
        raise RuntimeError(f"sweep: {len(failures)} of {len(sets)} parameter sets failed "
                           f"({listing}); the other {len(sets) - len(failures)} are stored in "
                           f"{store!r}, and a re-run computes only the failed ones.")
    return out
