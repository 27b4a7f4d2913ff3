"""Hand-written compiled kernels behind :mod:`scoredyn` (installed as ``scoredyn.kernels``).

Kernels never validate, warn or draw random numbers: the public API in
:mod:`scoredyn` does that and hands them C-ordered float64 arrays.

Modules
-------
config      the fastmath flag sets and tile sizes.
sizes       sizes the dispatch reads without compiling anything (lanes, GPU limits).
mathfn      a vectorisable, <= 1 ulp ``exp`` for the CPU kernels.
scalar      per-element formulas shared by the CPU and CUDA kernels (compiled for both).
target      binds a loop written once in plain Python to one target's functions.
trajectory  the per-trajectory time loop of the log-time ODE, written once.
cell        the margins of one query's Voronoi cell, written once.
softmax     the online softmax over data points (a tile at a time), written once.
reduction   the streaming posterior-mean / log-normaliser / two-nearest pass
            with direct differences (small d): :mod:`softmax` over vectorised tiles.
gemm_tile   the per-tile update of the GEMM path (large d) with exact
            recomputation of the entries whose rounding error matters.
moments     dense weights and the weighted covariance (Jacobian of D).
stages      the Runge-Kutta stage combinations of the numpy engine, in one pass.
odeint      :mod:`trajectory` on the CPU (one trajectory per parallel iteration).
odeint_lanes  the same scheme with trajectories as SIMD lanes (many trajectories,
            no recentring / V^delta tracking).
simd        its loops in the plane with explicit vector registers (LLVM IR).
voronoi     two nearest sites and :mod:`cell` on the CPU.
knn         exact streaming k nearest neighbours.
launch      launching a compiled loop over trajectories on the CPU's cores.
mixture_query  one query against diagonal Gaussian components (an online softmax of
            their log-densities), written once.
mixture     :mod:`mixture_query` on the CPU, and the GEMM-path tiles of mixtures.

CUDA (numba-cuda; imported only by ``backend="cuda"`` and the tests):

cuda_device     the scalar formulas compiled for the device; per-query loops
                (:mod:`softmax` one point at a time, :mod:`cell`).
cuda_reduction  the posterior reduction: small-d and tiled large-d kernels.
cuda_voronoi    the Voronoi pass.
cuda_odeint     :mod:`trajectory` on the device.
cuda_mixture    :mod:`mixture_query` on the device.

Numerical traps
---------------
Each of these is a way a fast kernel gives a plausible, wrong answer; each has
a test.

* **Cancellation near Voronoi boundaries.**  Forming squared distances as
  ``|y|^2 - 2 y.x + |x|^2`` (a GEMM) leaves an absolute error of about
  ``u |x|^2`` (``u = 1.1e-16``) in each, so the softmax logits
  ``-|y - x|^2 / (2 sigma^2)`` err by ``u |x|^2 / sigma^2`` instead of
  ``u |y - x|^2 / sigma^2``.  At small sigma near a bisector this moves weight
  between the two nearest sites: with x ~ N(0, I_3072), sigma = 1e-6 and two
  sites whose distances to y differ by 1e-7 relative, the expansion's weight
  errs by up to 0.34 (a 60-digit reference decides), while direct differences
  err by <= 4e-10; torch's ``cdist``/SDPA put such points on the wrong side in
  a fifth to a third of trials, and float32 fails in every method.  The
  kernels form distances from direct differences (``reduction``, the CUDA
  kernels), or use the GEMM for speed and recompute by direct differences
  every entry whose rounding could matter (``gemm_tile``).
* **Queries far from the data.**  Direct differences give each ``|y - x_i|^2``
  to ``u |y - x_i|^2``; where ``|y| >> |x|`` the distances differ only by
  ``2 |y| |x_i - x_k|``, and at ``|y| ~ 1e16 |x|`` they all round to the same
  number (the mean of every point came out where the nearest one is the
  answer).  The fields detect such queries from the bound itself and recompute
  them from relative distances ``(x_i - x_0).(x_i + x_0 - 2 y)``, whose error
  scales with the points' separation (``scoredyn._host.reduce.far_rows``; the
  isotropic and diagonal mixtures likewise, ``GaussianMixture._far``).
  The fused ODE kernels form direct differences only, so their engines refuse
  such starts and ``solve`` takes the numpy or batched engine (along the flow
  ``|y - D|`` and sigma shrink alike, so the start decides).
* **Overflow of the softmax.**  ``1 / (2 sigma^2) = e^{2s} / 2`` overflows
  float64 near s = 354 (sigma ~ 1e-154) and underflows near sigma ~ 1e154.
  The online softmax works relative to the running minimum distance, so every
  exponent is ``<= 0``; an exact tie gives exponent exactly 0 even when the
  factor is infinite, so ties split evenly and nothing is NaN at any sigma.
* **The float64 floor of the collapse.**  ``|y(s) - x_i| <= K e^{-s}``
  (Baptista et al. 2025, arXiv:2501.15785) reaches the resolution of ``y``
  near s = 35 (float32: s = 16).  Recentring integrates the deviation
  ``u = y - x_c`` from the nearest site, which keeps full relative precision
  to any s; collapse rates at large s need it.
* **Fused multiply-adds.**  A contracted ``acc + t * t`` makes ``|y - x|^2``
  depend on the order of the coordinates, which breaks the exact reflection
  symmetry that keeps a trajectory on a bisector (a repelling set, where
  rounding asymmetries grow like ``e^{2s}``).  The CPU flag sets exclude
  ``contract``; the GPU squares with ``__dmul_rn``, which is never fused.
* **Stiffness at boundaries.**  Near a face the Jacobian of the right-hand
  side has an eigenvalue growing like ``e^{2s} |x_i - x_j|^2 / 4``; adaptive
  steps resolve crossings, fixed steps can put near-boundary starts in the
  wrong cell.
"""
