"""Ensembles on a Dask cluster: :func:`scoredyn.solve` in chunks of trajectories.

Each trajectory has its own step size, acceptance and status, so a chunk's
trajectories take exactly the steps they take in a single solve: the gathered
result equals :func:`scoredyn.solve` on the whole batch bit for bit, for any
chunking, provided every chunk runs on the same engine — the engine is chosen
once, for the whole batch, on the client — and the same compiled code.

The compiled code: numba keeps compiled kernels in an on-disk cache, and a kernel a
process compiled itself can differ in the last bit from the same kernel loaded from
the cache by another process (measured here: up to 1 ulp in a few percent of the
entries of a posterior mean).  Workers that start with a warm cache all load the same
code; run ``scoredyn compile`` once on each machine (a shared cache directory,
``NUMBA_CACHE_DIR``, serves a whole cluster) before starting the workers.
"""
import json
import os
from dataclasses import fields

import numpy as np

from ..dynamics.engines import SolveResult, choose
from ..dynamics.engines.base import messages
from .cluster import as_chunk_size, data_in_graph, gather_in_order, session

#: trajectories per task by default (10^4 trajectories in d <= 16: a task of ~0.1-1 s)
CHUNK_SIZE = 10_000

_MANIFEST = "manifest.json"


def solve(field, y0, s_span, *, client=None, workers=None, chunk_size=CHUNK_SIZE, store=None,
          progress=None, **options):
    """:func:`scoredyn.solve` on a Dask cluster, the initial states in chunks.

    Parameters
    ----------
    field : ScoreField
        Sent to the workers once (it must pickle; every field of the package does).
    y0 : (Q, d) array_like
    s_span : (s0, s1)
    client : distributed.Client or str, optional
        A client or a scheduler address (see :func:`scoredyn.distributed.connect`).
    workers : int, optional
        Without ``client``: run on a new local cluster of this many processes.
    chunk_size : int
        Trajectories per task.
    store : str or os.PathLike, optional
        A directory: each chunk's result is written there as ``chunk-NNNNNN.npz``
        as its task finishes, and a :class:`StoredSolve` is returned instead of the
        gathered result (for ensembles larger than the client's memory).  A re-run
        with the same problem finds the chunks already written and computes only
        the missing ones; a directory holding anything else is refused.  On a
        multi-machine cluster the directory must be on a file system every worker
        sees.
    progress : bool or None
        A progress bar over the chunks (None: when there are several).
    **options
        Everything :func:`scoredyn.solve` takes (``method``, ``rtol``, ``save_at``,
        ``engine``, ...).

    Returns
    -------
    SolveResult or StoredSolve
    """
    chunk_size = as_chunk_size(chunk_size)
    engine = _engine_for(field, y0, s_span, options)
    options = dict(options, engine=engine)
    y0 = np.ascontiguousarray(y0, dtype=np.float64)
    # no trajectories: one empty chunk, so that the result is scoredyn.solve's empty one
    bounds = [(i, min(i + chunk_size, len(y0))) for i in range(0, len(y0), chunk_size)] or [(0, 0)]
    if store is not None:
        store = os.fspath(store)
        _claim(store, field, y0, s_span, options, chunk_size)
    with session(client, workers=workers) as c:
        todo = [k for k, _ in enumerate(bounds)
                if store is None or not os.path.exists(_chunk_path(store, k))]
        with data_in_graph():
            held = c.submit(_hold, field, pure=False)      # recomputable if its worker dies
            futures = [c.submit(_solve_chunk, held, y0[bounds[k][0]:bounds[k][1]], s_span,
                                options, None if store is None else _chunk_path(store, k),
                                pure=False)
                       for k in todo]
        parts = gather_in_order(c, futures, what="solve (chunks)", chunk_rows=chunk_size,
                                progress=progress)
    if store is not None:
        return StoredSolve(store, bounds)
    return SolveResult.concatenate(parts)


def _engine_for(field, y0, s_span, options):
    """The engine :func:`scoredyn.solve` would choose for the whole batch (by name)."""
    from ..dynamics.solver import problem
    kw = {k: v for k, v in options.items() if k not in ("engine", "backend")}
    p = problem(field, y0, s_span, **kw)
    return choose(p, options.get("engine"), options.get("backend")).name


def _hold(value):
    return value


def _solve_chunk(field, y0, s_span, options, path):
    from ..dynamics.solver import solve
    res = solve(field, y0, s_span, **options)
    if path is None:
        return res
    save_result(path, res)
    return int(np.count_nonzero(res.status))


def _chunk_path(store, k):
    return os.path.join(store, f"chunk-{k:06d}.npz")


def _claim(store, field, y0, s_span, options, chunk_size):
    """Create ``store`` or check that it holds this very problem."""
    from dask.base import tokenize
    manifest = {"problem": tokenize(field, y0, np.asarray(s_span, float), sorted(options.items(),
                                    key=str)),
                "trajectories": len(y0), "chunk_size": chunk_size, "scoredyn": "solve"}
    path = os.path.join(store, _MANIFEST)
    if os.path.isdir(store) and os.listdir(store):
        try:
            with open(path) as f:
                found = json.load(f)
        except (OSError, ValueError):
            found = None
        if found != manifest:
            raise FileExistsError(
                f"`store` {store!r} exists and holds something else (not the chunks of this "
                f"solve: other data, other initial states or other options); give a new or "
                f"empty directory.")
        return
    if os.path.exists(store) and not os.path.isdir(store):
        raise FileExistsError(f"`store` {store!r} exists and is not a directory.")
    try:
        os.makedirs(store, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"`store` {store!r} cannot be made ({exc.strerror}); give a folder "
                         f"this process (and every worker) can write.") from None
    with open(path, "w") as f:
        json.dump(manifest, f)


def save_result(path, res):
    """Write a :class:`SolveResult` to ``path`` (.npz) atomically (a reader never sees half)."""
    arrays = {f.name: getattr(res, f.name) for f in fields(res)
              if f.name != "message" and getattr(res, f.name) is not None}
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_result(path):
    """Read a :class:`SolveResult` written by :func:`save_result`."""
    with np.load(path, allow_pickle=False) as z:
        values = {k: z[k] for k in z.files}
    values["method"] = str(values["method"])
    values["engine"] = str(values["engine"])
    values["message"] = messages(values["status"])
    return SolveResult(**values)


class StoredSolve:
    """A solve written chunk by chunk to a directory (:func:`solve` with ``store=``).

    Attributes
    ----------
    path : str
    bounds : list of (start, stop)
        The trajectories of each chunk.
    """

    def __init__(self, path, bounds):
        self.path = path
        self.bounds = list(bounds)

    def __len__(self):
        return len(self.bounds)

    def chunk(self, k):
        """The :class:`SolveResult` of chunk ``k``."""
        return load_result(_chunk_path(self.path, k))

    def load(self):
        """All chunks gathered into one :class:`SolveResult` (needs the memory for it)."""
        return SolveResult.concatenate(self.chunk(k) for k in range(len(self)))

    def __repr__(self):
        return f"StoredSolve({self.path!r}, {len(self)} chunks, {self.bounds[-1][1]} trajectories)"
