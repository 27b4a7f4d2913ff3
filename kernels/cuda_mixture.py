"""Gaussian-mixture reductions on NVIDIA GPUs: :func:`mixture_query.mixture_query` on the device.

The per-query loop is the CPU's (:mod:`mixture_query`), compiled with
``cuda.jit(device=True)``: one thread per query walks over the components, all threads
of a warp reading the same component at the same time (a broadcast from L1).

* :func:`query_function` — the loop for a compile-time dimension ``D`` (the fused time
  loop, :mod:`cuda_odeint`, with its vectors in registers) or any dimension (``D =
  None``: read from the table's shape);
* :func:`field_kernel` — ``denoise``/``score``/``log_density`` of a mixture: one thread per
  query, its accumulator and scratch rows in global memory (any d).
"""
import functools
import math

from numba import cuda

from . import cuda_device as dev
from . import mixture_query as mq
from .target import specialise


@functools.cache
def query_function(D=None):
    """:func:`mixture_query.mixture_query` as a device function for dimension ``D`` (None:
    the table's)."""
    if D is None:
        layout = dict(ndim=dev._device(lambda P: (P.shape[1] - 2) // 2),
                      npoints=dev._device(lambda P: P.shape[0]))
        tag = "any"
    else:
        layout = {k: v for k, v in dev.data_layout(D).items() if k in ("ndim", "npoints")}
        tag = str(D)
    bindings = dict(layout, exp=math.exp, log=math.log, log1p=math.log1p, hypot=math.hypot)
    for name in ("element", "log_det_term", "log_det", "raise_max", "absorb"):
        bindings[name] = dev._device(specialise(getattr(mq, name), bindings,
                                                f"{name}_cuda{tag}", mq.TARGET_NAMES))
    return dev._device(specialise(mq.mixture_query, bindings, f"mixture_query_cuda{tag}",
                                  mq.TARGET_NAMES))


@functools.cache
def field_kernel():
    """``kernel(Y, alpha, sigma, group, P, logdet, xc, res, lse, scratch, mode)``: the
    arguments of :func:`scoredyn.kernels.mixture.mixture_diag`, plus ``xc`` (d,) zeros and
    ``scratch`` (Q, d)."""
    query = query_function(None)

    def kernel(Y, alpha, sigma, group, P, logdet, xc, res, lse, scratch, mode):
        q = cuda.grid(1)
        if q < Y.shape[0]:
            lse[q], _, _ = query(P, Y[q], xc, alpha[q], sigma[q], logdet, group[q], False,
                                 res[q], scratch[q], mode)

    return cuda.jit(kernel)
