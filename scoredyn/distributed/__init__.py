"""scoredyn on a Dask cluster: ensembles, sharded training sets, sweeps that resume.

Needs the optional extra ``dask`` (``pip install "scoredyn[dask]"``: dask and
distributed); nothing else in scoredyn imports it.

* :func:`connect` — a ``distributed.Client`` from a client, a scheduler address,
  or a number of local worker processes (:func:`session`: the same as a context
  that closes what it started);
* :func:`solve` — :func:`scoredyn.solve` with the initial states in chunks, one
  task per chunk, gathered into one :class:`~scoredyn.SolveResult` (equal bit for
  bit to the single-process solve) or written chunk by chunk to a directory;
* :class:`ShardedData` and :class:`ShardedEmpiricalScore` — a training set split
  over the workers: the posterior mean, score and log-density, and (through the
  metrics of :mod:`scoredyn.memorization`) the nearest training points, merged
  from per-shard streaming states;
* :func:`sweep` — a function over a parameter grid, each finished result
  persisted as it completes, so a re-run computes only what is missing.

Dask reruns the tasks of a worker that dies; every task here is a pure function
of its inputs, so a rerun changes nothing.
"""
from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "connect": "cluster", "session": "cluster", "solve": "ensemble", "StoredSolve": "ensemble",
    "ShardedData": "sharded", "ShardedEmpiricalScore": "sharded",
    "sweep": "sweep", "SweepResult": "sweep",
}, ("cluster", "ensemble", "sharded", "sweep"))
