"""Launching a compiled loop over trajectories on the CPU's cores.

The time loops run one compiled function per chunk of trajectories
(``kernel(lo, hi, *args)``, compiled with ``nogil=True``), and this module
hands the chunks to a pool of Python threads, as many as numba's thread
count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), started once per process
(:func:`thread_pool`).  Each chunk is
independent and writes only its own trajectories' outputs, so the result does
not depend on the number of threads or the chunking.

Why not ``prange``: a parallel loop is compiled through numba's parfor
passes, which cost about 8 s for the one-line body of the per-trajectory
loop and most of the 40 s of the SIMD-lane loop on two cores, for every new
installation; a thread pool costs nothing to compile.  It also keeps these
loops off the OpenMP threading layer, which cannot survive a ``fork``.
"""
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numba


@functools.cache
def thread_pool(workers, pid):
    """The process's pool of ``workers`` threads, started once: starting them cost about 1 ms
    per call (a tenth of a 2000-trajectory solve), and the batched engine's reductions run
    thousands of times per solve.

    Keyed by ``pid`` (pass ``os.getpid()``): a child made by ``fork`` inherits the parent's
    pool without its threads, so it makes its own.  Tasks must not wait on other tasks of the
    same pool (none here do: every task is one compiled kernel or BLAS call).
    """
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scoredyn")


def run_chunks(kernel, n, chunk, *args):
    """Run ``kernel(lo, hi, *args)`` over ``[0, n)`` in chunks of ``chunk``.

    Parameters
    ----------
    kernel : numba dispatcher compiled with ``nogil=True``
    n : int
        Number of items (trajectories).
    chunk : int
        Items per call (>= 1); chunks are taken by idle threads in order.
    *args
        The kernel's remaining arguments.
    """
    bounds = [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
    workers = min(numba.get_num_threads(), len(bounds))
    if workers <= 1:
        for lo, hi in bounds:
            kernel(lo, hi, *args)
        return
    pool = thread_pool(workers, os.getpid())
    for future in [pool.submit(kernel, lo, hi, *args) for lo, hi in bounds]:
        future.result()


def chunk_size(n, per_thread=8):
    """Items per chunk: about ``per_thread`` chunks per thread (dynamic balance), at least 1."""
    return max(1, -(-n // (per_thread * numba.get_num_threads())))
