"""The fused time loop on NVIDIA GPUs: :func:`trajectory.advance`, one thread per trajectory.

The loop is the CPU's (:mod:`trajectory`), bound here to the device's
functions (:mod:`cuda_device`) and specialised per dimension ``D``
(``D <= MAX_D``): state vectors and the ``MAX_STAGES`` stage values are
``cuda.local.array`` of compile-time size (registers / local memory).

The data are read from global memory as (N, D): every thread of a warp reads
the same data point at the same time (a broadcast served from L1), so no
shared-memory staging is needed; the threads of a warp take different numbers
of steps but the same loop body.  float64 throughout: the collapse
``|y - x_i| ~ e^{-s}`` is tracked to ``s = 60`` by recentring, which float32
would cut near ``s = 16``.
"""
import functools
import math

from numba import cuda, float64

from . import cuda_device as dev
from . import cuda_mixture
from .mixture_query import RESIDUAL
from . import trajectory
from .sizes import MAX_STAGES
from .target import specialise
from .trajectory import N_PER_STAGE, N_VEC



_config = dev._device(trajectory.config)


@functools.cache
def integrate_kernel(D, mixture=False):
    """The fused integrator for dimension ``D`` (arguments of :func:`integrate_source`)."""
    return cuda.jit(integrate_source(D, mixture))


@functools.cache
def integrate_source(D, mixture=False):
    """The Python function of the fused integrator for dimension ``D``.

    ``kernel(X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout, Uout,
    outi, outf)`` — the arguments of ``odeint.integrate`` with the data ``X`` as
    (N, D) instead of transposed, or (``mixture``) a diagonal Gaussian mixture's component
    table (K, 2 D + 2) of :mod:`mixture_query`, whose means are the sites.
    """
    _, posterior, cell_margins = dev.query_functions(D)
    if mixture:
        query = cuda_mixture.query_function(D)

        @dev._device
        def posterior_(P, u, xc, inv, want_nearest, mean, rk):
            _, i1, d1 = query(P, u, xc, 1.0, math.sqrt(0.5 / inv), P, -1, want_nearest, mean,
                              rk, RESIDUAL)
            for k in range(D):
                mean[k] += u[k]
            return 0.0, 1.0, i1, d1
    else:
        @dev._device
        def posterior_(X, u, xc, inv, want_nearest, mean, dist):
            return posterior(X, u, xc, inv, want_nearest, mean)
    scratch = D if mixture else 1

    bindings = dict(dev.data_layout(D), config=_config, posterior=posterior_,
                    cell_margins=cell_margins, exp=math.exp, log=dev.log_nonneg,
                    tikhonov_shrink=dev.tikhonov_shrink,
                    empirical_bayes_exponent=dev.empirical_bayes_exponent,
                    error_ratio=dev.error_ratio, accept_step_exponent=dev.accept_step_exponent,
                    next_log_errold=dev.next_log_errold,
                    reject_step_exponent=dev.reject_step_exponent, dense_weight=dev.dense_weight,
                    lawson_growth=dev.lawson_growth, row_weights=dev.row_weights)
    tag = f"{D}_mixture" if mixture else str(D)
    bindings["rhs"] = dev._device(specialise(trajectory.rhs, bindings, f"rhs_cuda{tag}",
                                             trajectory.TARGET_NAMES))
    # inlined (numba IR), so that compile_ptx needs no device to pick a compute capability
    advance = dev._device(specialise(trajectory.advance, bindings, f"advance_cuda{tag}",
                                     trajectory.TARGET_NAMES + ("rhs",)))

    def kernel(X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
               Uout, outi, outf):
        q = cuda.grid(1)
        if q >= Y0.shape[0]:
            return
        advance(q, X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
                Uout, outi, outf, cuda.local.array((N_VEC, D), float64),
                cuda.local.array((MAX_STAGES, D), float64),
                cuda.local.array((N_PER_STAGE, MAX_STAGES), float64),
                cuda.local.array(scratch, float64))

    return kernel
