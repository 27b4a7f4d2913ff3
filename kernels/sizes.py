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
#: its right-hand side passes along the data per lane from this many data points on
#: (``odeint_lanes._one_pass_sums``); below, the two passes across the lanes are as fast
#: (d = 2: equal at N = 128, 25 % slower at N = 400)
ONE_PASS_MIN_N = 128


def one_pass(n):
    """Whether the lane integrator's right-hand side takes the one-pass sums (N = ``n``)."""
    return n >= ONE_PASS_MIN_N
