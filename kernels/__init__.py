"""Hand-written compiled kernels behind :mod:`scoredyn` (installed as ``scoredyn.kernels``).

Kernels never validate, warn or draw random numbers: the public API in
:mod:`scoredyn` does that and hands them C-ordered float64 arrays.

Modules
-------
config      the fastmath flag sets and tile sizes.
mathfn      a vectorisable, <= 1 ulp ``exp`` for the CPU kernels.
scalar      per-element formulas shared by the CPU and CUDA kernels (compiled for both).
reduction   the streaming posterior-mean / log-normaliser / two-nearest pass
            with direct differences (small d).
gemm_tile   the per-tile update of the GEMM path (large d) with exact
            recomputation of the entries whose rounding error matters.
moments     dense weights and the weighted covariance (Jacobian of D).
"""
