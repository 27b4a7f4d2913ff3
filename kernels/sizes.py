"""Kernel sizes the dispatch reads without importing (compiling) the kernels.

``MAX_D`` and ``MAX_STAGES`` bound the fused GPU integrator
(:mod:`cuda_odeint`: state and stage values in registers / local memory of
compile-time size); ``LANES`` is the width of the CPU's SIMD-lane integrator
(:mod:`odeint_lanes`).
"""
#: largest dimension and number of stages of the fused GPU integrator
MAX_D = 16
MAX_STAGES = 7
#: trajectories advanced together by one thread of the lane integrator
LANES = 64
#: its right-hand side forms each lane's sums along the data from this many data points on
#: (``odeint_lanes._one_pass_sums``; d = 3 and 8 at N = 128: 1.5x and 1.9x faster than the
#: two passes across the lanes), in the plane from ONE_PASS_MIN_N_PLANE on (there the two
#: passes hold the lanes in registers, ``simd``: at N = 256, 10^4 trajectories, they take
#: 0.21 s against 0.26 s for gl-dopri5, 0.32 s against 0.32 s for dopri5, 0.96 s against
#: 0.72 s for etd1; at N = 500 0.40 / 0.59 / 1.77 s against 0.38 / 0.43 / 0.97 s)
ONE_PASS_MIN_N = 128
ONE_PASS_MIN_N_PLANE = 256


def one_pass(d, n):
    """Whether the lane integrator's right-hand side takes the one-pass sums (N = ``n``
    points in dimension ``d``)."""
    return n >= (ONE_PASS_MIN_N_PLANE if d == 2 else ONE_PASS_MIN_N)
