"""Compile-time settings shared by the kernels (their threading layer: :mod:`scoredyn._tbb`).

Developers: numba's on-disk cache (``cache=True``) is keyed on each kernel's
own source file, not on this one — after changing a flag here, delete the
``*.nbi``/``*.nbc`` files under ``kernels/__pycache__``.
"""
from .._tbb import check_layer

# numba's threading layer (TBB, fork-safe) is loaded by ``import scoredyn`` (scoredyn/_tbb.py);
# if numba took GNU OpenMP before that, say so once, here, where the kernels start
check_layer()


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


from numba import types  # noqa: E402
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
