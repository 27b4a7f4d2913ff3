"""Device memory and launches behind ``backend="cuda"`` (imported only when it is used).

Host arrays go to the device with ``numba.cuda.to_device`` and come back with
``copy_to_host``; under numba's simulator (tests) the same calls work on host
memory, so the whole glue is exercised without a GPU.
"""
import contextlib
import warnings

import numpy as np
from numba import cuda
from numba.core.errors import NumbaPerformanceWarning

from .reduce import Reduction
from ..kernels import cuda_odeint, cuda_reduction, cuda_voronoi

#: threads per block of the one-thread-per-query kernels (tests lower it to
#: cross block boundaries on tiny inputs)
THREADS = 128
#: device memory for one tile of the large-d path's distances (Q x NT)
WORKSPACE_BYTES = 256 * 2 ** 20
#: tiling of the large-d path (tests use a small one)
TILE_GEOMETRY = cuda_reduction.GEOMETRY
GPU_DTYPES = ("float64", "float32")


@contextlib.contextmanager
def _launches():
    """Silence numba's low-occupancy warnings: a small batch is a legitimate request."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        yield


class DeviceData:
    """A data set's copies on the device, made on first use and kept.

    Parameters
    ----------
    X : (N, d) float64 ndarray
    """

    def __init__(self, X):
        self.X = X
        self._f64 = None
        self._f32 = None

    def float64(self):
        """(N, d) float64 device array."""
        if self._f64 is None:
            self._f64 = cuda.to_device(np.ascontiguousarray(self.X))
        return self._f64

    def float32(self):
        """``(X - c)`` as a float32 device array and the centre ``c`` (the data mean)."""
        if self._f32 is None:
            c = self.X.mean(axis=0)
            self._f32 = cuda.to_device(np.ascontiguousarray(self.X - c, dtype=np.float32)), c
        return self._f32


def posterior_reduce(data, Y, alpha, sigma, *, want_top2=False, dtype="float64"):
    """The posterior reduction on the device; same result as ``_reduce.posterior_reduce``.

    Parameters
    ----------
    data : DeviceData
    Y : (Q, d) float64 ndarray
    alpha, sigma : (Q,) float64 ndarrays
    want_top2 : bool
    dtype : {"float64", "float32"}
        Arithmetic of the O(Q N d) part.  float32 works in coordinates centred
        on the data mean; the softmax bookkeeping stays float64.

    Returns
    -------
    Reduction
        Host arrays (float64).
    """
    q, d = Y.shape
    with np.errstate(over="ignore"):
        inv2s2 = 0.5 / sigma / sigma
    if dtype == "float64":
        Xd = data.float64()
        Yd = cuda.to_device(Y)
        shift = None
    else:
        Xd, c = data.float32()
        Yd = cuda.to_device(np.ascontiguousarray(Y - alpha[:, None] * c, dtype=np.float32))
        shift = c
    ad = cuda.to_device(alpha)
    invd = cuda.to_device(inv2s2)
    mean = cuda.device_array((q, d), dtype=np.dtype(dtype))
    dmin, lsum, d1, d2 = (cuda.device_array(q) for _ in range(4))
    i1, i2 = (cuda.device_array(q, dtype=np.int64) for _ in range(2))
    with _launches():
        if d <= cuda_reduction.SMALL_MAX_D:
            cuda_reduction.reduce_small(Xd, Yd, ad, invd, want_top2, mean, dmin, lsum, i1, d1,
                                        i2, d2, threads=THREADS)
        else:
            nt = _tile_width(q, data.X.shape[0], np.dtype(dtype).itemsize, TILE_GEOMETRY[0])
            workspace = cuda.device_array((q, nt), dtype=np.dtype(dtype))
            fac = cuda.device_array(q)
            cuda_reduction.reduce_tiled(Xd, Yd, ad, invd, want_top2, mean, dmin, lsum, i1, d1,
                                        i2, d2, workspace=workspace, fac=fac, threads=THREADS,
                                        geometry=TILE_GEOMETRY)
    m = mean.copy_to_host().astype(np.float64)
    if shift is not None:
        m += shift
    red = Reduction(m, dmin.copy_to_host(), lsum.copy_to_host(), inv2s2)
    if want_top2:
        red.i1, red.d1 = i1.copy_to_host(), d1.copy_to_host()
        red.i2, red.d2 = i2.copy_to_host(), d2.copy_to_host()
    return red


def _tile_width(q, n, itemsize, bn):
    """Data points per block of the large-d path: the workspace within budget, >= one tile."""
    nt = WORKSPACE_BYTES // max(1, q * itemsize)
    nt = max(bn, (nt // bn) * bn)
    return int(min(nt, -(-n // bn) * bn))


def voronoi_pass(X, Y, tol):
    """``(i1, r1, i2, r2, bdist, gap, ntied)`` host arrays, as ``kernels.voronoi.voronoi_pass``."""
    q = Y.shape[0]
    outs = [cuda.device_array(q, dtype=dt) for dt in
            (np.int64, np.float64, np.int64, np.float64, np.float64, np.float64, np.int64)]
    with _launches():
        cuda_voronoi.voronoi_pass(cuda.to_device(X), cuda.to_device(Y), tol, *outs,
                                  threads=THREADS)
    return tuple(o.copy_to_host() for o in outs)


def integrate(X, kp, out, mixture=False):
    """Run the fused integrator on the device.

    Parameters
    ----------
    X : (N, d) float64 ndarray
        The data, or (``mixture``) a Gaussian mixture's component table (K, 2 d + 2).
    kp : engines.fused.KernelProblem
    out : engines.fused.KernelOutputs
        Host arrays, filled in place (they go to the device and come back).
    mixture : bool
    """
    d = kp.y0.shape[1]           # within MAX_D and MAX_STAGES: CudaEngine.unavailable checks
    dev_in = tuple(cuda.to_device(a) for a in kp.arrays())
    dev_out = tuple(cuda.to_device(a) for a in out.arrays())
    kernel = cuda_odeint.integrate_kernel(d, mixture)
    blocks = max(1, -(-kp.y0.shape[0] // THREADS))
    with _launches():
        kernel[blocks, THREADS](cuda.to_device(X), *dev_in, *dev_out)
    for host, dev in zip(out.arrays(), dev_out):
        dev.copy_to_host(host)


def mixture_reduce(P, Y, alpha, sigma, group, logdet, mode=0):
    """:func:`scoredyn.kernels.mixture.mixture_diag` on the device (same arguments, host
    arrays; ``group`` -1 forms the log-determinants per query).

    Returns
    -------
    res : (Q, d) float64 ndarray
    lse : (Q,) float64 ndarray
    """
    from ..kernels import cuda_mixture
    q, d = Y.shape
    res = cuda.device_array((q, d))
    lse = cuda.device_array(q)
    scratch = cuda.device_array((q, d))
    blocks = max(1, -(-q // THREADS))
    args = [cuda.to_device(np.ascontiguousarray(a)) for a in
            (Y, alpha, sigma, group, P, logdet if logdet.size else np.zeros((1, 1)))]
    with _launches():
        cuda_mixture.field_kernel()[blocks, THREADS](*args, cuda.to_device(np.zeros(d)), res,
                                                     lse, scratch, mode)
    return res.copy_to_host(), lse.copy_to_host()
