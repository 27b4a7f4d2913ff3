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
odeint      the fused time loop of the log-time ODE (one trajectory per thread).
odeint_lanes  the same loop with trajectories as SIMD lanes (many trajectories,
            no recentring / V^delta tracking).
voronoi     two nearest sites, boundary distance, gap, tied bisectors.
knn         exact streaming k nearest neighbours.

CUDA (numba-cuda; imported only by ``backend="cuda"`` and the tests):

cuda_device     the scalar formulas compiled for the device; per-query loops.
cuda_reduction  the posterior reduction: small-d and tiled large-d kernels.
cuda_voronoi    the Voronoi pass.
cuda_odeint     the fused integrator.
"""
