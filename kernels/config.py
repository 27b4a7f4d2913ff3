"""Compile-time settings shared by the kernels.

Developers: numba's on-disk cache (``cache=True``) is keyed on each kernel's
own source file, not on this one — after changing a flag here, delete the
``*.nbi``/``*.nbc`` files under ``kernels/__pycache__``.
"""

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
