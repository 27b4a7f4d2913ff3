"""Compile-time settings shared by the kernels, and their threading layer (Intel TBB).

Developers: numba's on-disk cache (``cache=True``) is keyed on each kernel's
own source file, not on this one — after changing a flag here, delete the
``*.nbi``/``*.nbc`` files under ``kernels/__pycache__``.
"""
import ctypes
import os
import site
import sys


def _load_tbb():
    """Make Intel TBB (the ``tbb`` wheel) visible to numba before its first parallel loop.

    numba picks its threading layer at the first parallel launch, TBB first when it
    can load ``libtbb``.  The wheel puts the library in ``<prefix>/lib``, which is not
    on the loader's path of a virtual environment, so numba would fall back to GNU
    OpenMP — whose process cannot ``fork`` afterwards (a ``multiprocessing`` pool with
    the fork start method, joblib, Dask's nanny: "fork() called from a process already
    using GNU OpenMP").  TBB is fork-safe and thread-safe.  Nothing happens when the
    user chose a layer (``NUMBA_THREADING_LAYER``) or TBB is not installed (then use
    the "spawn" or "forkserver" start method).
    """
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return None
    names = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")
    folders = [os.path.join(sys.prefix, "lib"), os.path.join(site.getuserbase(), "lib")]
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                try:
                    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    continue
    return None


_TBB = _load_tbb()


#: fastmath flags for reductions: keep NaN/inf semantics (no ``nnan``/``ninf``)
#: and allow reassociation so that sums over the data vectorise.  No
#: ``contract``: a fused multiply-add makes |y - x|^2 depend on the order of the
#: coordinates (round(t1^2 + round(t0^2)) != round(t0^2 + round(t1^2))), which
#: breaks the exact reflection symmetry that keeps a trajectory on a Voronoi
#: bisector (a repelling set: rounding asymmetries grow like e^{2s}).
FASTMATH = {"nsz", "arcp", "afn", "reassoc"}

#: fastmath flags for code whose rounding order is part of its accuracy
#: argument (Cody-Waite range reduction in :func:`mathfn.exp_nonpos`):
#: no ``reassoc``.
FASTMATH_STRICT = {"nsz", "arcp", "contract", "afn"}

#: data points per tile of the direct kernel (the tile's distances live in L1/L2).
TILE_N = 512
