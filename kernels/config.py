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


from numba import types  # noqa: E402  (after the TBB set-up above)
from numba.extending import intrinsic  # noqa: E402

#: the string attribute :func:`wide_vectors` gives its caller
WIDE_VECTOR_ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorise the calling kernel with 512-bit registers where the CPU has them.

    LLVM's x86 tuning prefers 256-bit vectors on AVX-512 server cores (Skylake-SP and
    later), to spare their clock; for loops made of exps (a degree-11 polynomial each) the
    full width pays: 1.17 against 0.69 G exps per second per core on an Emerald Rapids
    machine (:func:`mathfn.exp_sum`), 10-25 % on the lane solver.  A kernel opts in by
    calling ``wide_vectors()`` first: the attribute is per function, so numba code
    elsewhere in the user's process is left as it is, and a CPU without AVX-512 is not
    affected.  Each element's arithmetic is the same at either width; only a reduction whose
    order the compiler may choose (``reassoc``) rounds differently.
    """
    def codegen(context, builder, signature, args):
        # llvmlite checks attribute names against a fixed list of keywords; a string
        # attribute is written verbatim into the function's definition
        set.add(builder.function.attributes, WIDE_VECTOR_ATTRIBUTE)
        return context.get_dummy_value()

    return types.none(), codegen
