"""numba's threading layer: Intel TBB (the ``tbb`` wheel) made loadable at ``import scoredyn``.

numba picks its threading layer once per process, at its first parallel launch — a
parallel kernel, or ``numba.set_num_threads`` — and takes TBB when it can load
``libtbb``.  The wheel puts the library in ``<prefix>/lib``, which is not on the loader's
path of a virtual environment, so numba falls back to GNU OpenMP, whose process cannot
``fork`` afterwards: a ``multiprocessing`` pool with the fork start method (Linux's
default), joblib or Dask's nanny dies with "fork() called from a process already using GNU
OpenMP".  TBB is fork-safe and thread-safe.

Loading it here, when the package is imported, rather than when the kernels are, covers a
user who calls ``numba.set_num_threads`` between ``import scoredyn`` and the first kernel.
Only ``ctypes`` is imported (``import scoredyn`` stays free of numba).  Nothing happens
when the user chose a layer without TBB (``NUMBA_THREADING_LAYER``) or TBB is not
installed.  When the kernels load and find numba already on GNU OpenMP (it chose before
``import scoredyn``), :func:`check_layer` says so.
"""
import ctypes
import os
import site
import sys
import warnings

#: the file names of TBB's runtime library (Linux, macOS, Windows)
_NAMES = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")


def load():
    """Load ``libtbb`` from the environment's ``lib`` folder (global symbols, so that numba's
    TBB pool links against it); the handle, or None where there is none to load or the
    user chose a layer without TBB (``NUMBA_THREADING_LAYER=omp`` or ``workqueue``)."""
    if os.environ.get("NUMBA_THREADING_LAYER", "").lower() in ("omp", "workqueue"):
        return None
    for folder in (os.path.join(sys.prefix, "lib"), os.path.join(site.getuserbase(), "lib")):
        for name in _NAMES:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                try:
                    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    continue
    return None


def check_layer():
    """Warn (RuntimeWarning) when numba already runs on GNU OpenMP as the kernels load: it
    chose its layer before ``import scoredyn``, and a fork-started child process will be
    terminated.  Silent while no layer is chosen yet (the usual case: numba then takes TBB
    where it is installed), for TBB and workqueue, and when the user chose the layer
    (``NUMBA_THREADING_LAYER``)."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:          # no parallel launch yet: numba will take TBB if it can
        return
    if layer != "omp":
        return
    from numba.np.ufunc import omppool
    if getattr(omppool, "openmp_vendor", "GNU") != "GNU":
        return
    warnings.warn(
        "numba's threading layer is GNU OpenMP: it was chosen before scoredyn loaded Intel "
        "TBB (a numba parallel call or numba.set_num_threads before `import scoredyn`).  A "
        "process started with fork() from this one (a multiprocessing pool on Linux, joblib, "
        "Dask's nanny) will be terminated.  Import scoredyn first, run with "
        "NUMBA_THREADING_LAYER=tbb, or use the 'spawn' start method.",
        RuntimeWarning, stacklevel=3)


HANDLE = load()
