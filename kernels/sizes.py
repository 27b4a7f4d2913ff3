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
#: passes are one fused loop: 20 % faster at N = 128, 2 % at 192, 10 % slower at 256)
ONE_PASS_MIN_N = 128
ONE_PASS_MIN_N_PLANE = 256


def one_pass(d, n):
    """Whether the lane integrator's right-hand side takes the one-pass sums (N = ``n``
    points in dimension ``d``)."""
    return n >= (ONE_PASS_MIN_N_PLANE if d == 2 else ONE_PASS_MIN_N)
