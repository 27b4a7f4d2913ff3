"""Compile-time settings shared by the kernels."""

#: fastmath flags for reductions: keep NaN/inf semantics (no ``nnan``/``ninf``)
#: and allow reassociation so that sums over the data vectorise.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: fastmath flags for code whose rounding order is part of its accuracy
#: argument (Cody-Waite range reduction in :func:`mathfn.exp_nonpos`):
#: no ``reassoc``.
FASTMATH_STRICT = {"nsz", "arcp", "contract", "afn"}

#: data points per tile of the direct kernel (the tile's distances live in L1/L2).
TILE_N = 512
