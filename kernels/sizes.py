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
