"""Reaching a Dask cluster, and running tasks on it with a progress bar and clear failures."""
import contextlib
import warnings

from .._validation import as_scalar

#: how long :func:`connect` waits for a scheduler address to answer (seconds)
CONNECT_TIMEOUT = 10


def require():
    """Import ``distributed``, or explain how to install it."""
    try:
        import distributed
    except ImportError:
        raise ImportError("scoredyn.distributed needs Dask: pip install \"scoredyn[dask]\" "
                          "(dask and distributed).") from None
    return distributed


def connect(client=None, *, workers=None, timeout=None):
    """A ``distributed.Client``.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client (returned as it is), or a scheduler address such as
        ``"tcp://10.0.0.5:8786"``.  None: with ``workers``, a new local cluster;
        without, the client already running in this process
        (``distributed.get_client``).
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes (one thread each).
    timeout : float, optional
        Seconds to wait for an address to answer (default :data:`CONNECT_TIMEOUT`).

    Returns
    -------
    client : distributed.Client
    owned : bool
        True when this call started the client (and, with ``workers``, its
        cluster); the caller closes it (:func:`session` does).
    """
    distributed = require()
    timeout = CONNECT_TIMEOUT if timeout is None else as_scalar(timeout, "timeout", low=0.0,
                                                                 low_inclusive=False)
    if isinstance(client, distributed.Client):
        if workers is not None:
            raise ValueError("Give either `client` or `workers`, not both.")
        return client, False
    if client is not None and not isinstance(client, str):
        raise TypeError(f"`client` must be a distributed.Client or a scheduler address "
                        f"(str); got {type(client).__name__}.")
    if isinstance(client, str):
        if not client.strip():
            raise ConnectionError("The scheduler address is empty; give one such as "
                                  "tcp://HOST:8786 (or `workers=N` for a local cluster).")
        if workers is not None:
            raise ValueError("Give either `client` (a scheduler address) or `workers`, not both.")
        try:
            return distributed.Client(client, timeout=timeout), True
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"Could not reach a Dask scheduler at {client!r} within {timeout:g} s ({exc}). "
                f"Start one (`dask scheduler`, then `dask worker ADDRESS`) or pass "
                f"`workers=N` for a local cluster.") from None
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"`workers` must be a positive integer; got {workers!r}.")
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, dashboard_address=":0")
        return distributed.Client(cluster), True
    try:
        return distributed.get_client(), False
    except ValueError:
        raise ValueError("No Dask client: pass `client=` (a distributed.Client or a scheduler "
                         "address) or `workers=N` for a local cluster.") from None


@contextlib.contextmanager
def session(client=None, *, workers=None):
    """:func:`connect` as a context: closes what it started (client and local cluster)."""
    c, owned = connect(client, workers=workers)
    try:
        yield c
    finally:
        if owned:
            cluster = c.cluster
            c.close()
            if cluster is not None and workers is not None:
                cluster.close()


def as_chunk_size(chunk_size, name="chunk_size"):
    """A positive integer number of rows per task."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {chunk_size!r}.")
    return chunk_size


def gather_in_order(client, futures, *, what, chunk_rows=None, progress=None, on_result=None):
    """Results of ``futures`` in their order, a progress bar fed as tasks finish.

    A task that kills its workers (``KilledWorker``: typically memory) or raises
    ``MemoryError`` is reported naming the chunk size to lower.

    Parameters
    ----------
    futures : list of distributed.Future
    what : str
        What a task computes (for the bar and the messages).
    chunk_rows : int, optional
        Rows per task (named in the memory message).
    progress : bool or None
        Show a tqdm bar (None: when there are several tasks).
    on_result : callable(i, result), optional
        Called as each task finishes (in completion order).
    """
    distributed = require()
    from tqdm.auto import tqdm
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    show = len(futures) > 1 if progress is None else progress
    with tqdm(total=len(futures), desc=what, disable=not show, unit="task") as bar:
        for fut in distributed.as_completed(futures):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except distributed.KilledWorker as exc:
                raise MemoryError(_memory_message(what, i, chunk_rows, exc)) from None
            except MemoryError as exc:
                raise MemoryError(_memory_message(what, i, chunk_rows, exc)) from None
            if on_result is not None:
                on_result(i, results[i])
            bar.update()
    return results


def _memory_message(what, i, chunk_rows, exc):
    lower = (f"lower `chunk_size` (now {chunk_rows} rows per task)" if chunk_rows
             else "lower the rows per task")
    return (f"{what}: task {i} failed on the workers ({type(exc).__name__}: {exc}); a task "
            f"that kills its worker has usually run out of memory: {lower}, or give the "
            f"workers more memory.")


@contextlib.contextmanager
def data_in_graph():
    """Submit tasks whose arguments carry data (initial states, shards from an array).

    The data travel inside the task graph on purpose: the scheduler keeps what it
    needs to run a task again when a worker dies (scattered data would be lost with
    it).  Dask warns about graphs of more than a few MiB; the warning is silenced
    here, where the size is expected (for data larger than the client's memory,
    :meth:`ShardedData.from_loaders` loads each shard on its worker instead).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        yield
