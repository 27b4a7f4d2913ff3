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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


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


def run_workers(kernel, workers, *args):
    """Run ``kernel(*args)`` once on each of ``workers`` threads of the pool (``workers <= 1``:
    once, here), for kernels that share their work out among themselves
    (:func:`take_next`)."""
    if workers <= 1:
        kernel(*args)
        return
    pool = thread_pool(workers, os.getpid())
    for future in [pool.submit(kernel, *args) for _ in range(workers)]:
        future.result()


@intrinsic
def take_next(typingctx, counter):
    """``counter[0]``'s value before adding 1 to it, atomically: the next item of a queue that
    the threads of :func:`run_workers` share (an ``int64[::1]`` array, 0 at the start).

    Every thread takes an item as soon as it has room for one, so none idles while another
    still has items queued (with fixed ranges per thread, each range's last items ran with
    the other lanes idle).  A value at or past the end means the queue is empty.
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", array.data, ir.Constant(ir.IntType(64), 1),
                                  "monotonic")

    return sig, codegen
