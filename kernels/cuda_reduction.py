"""The streaming posterior reduction on NVIDIA GPUs (numba-cuda).

Same outputs as :func:`scoredyn.kernels.reduction.reduce_direct` — posterior
mean, ``(dmin, lsum)`` of the log-normaliser, the two nearest sites — with the
same distance-space online softmax (every exponent ``<= 0``, exact ties and
limits), and squared distances from direct differences at every ``d`` (so the
logit error is ``O(u |y - a x|^2 / sigma^2)``, see "Numerical traps" in :mod:`scoredyn.kernels`: exact near
boundaries, no GEMM expansion).  Two kernels:

* **small d** (``d <= SMALL_MAX_D``, one thread per query): the data stream
  through shared memory in tiles of ``TILE`` points, each thread keeps its
  query and accumulator in registers (kernels are specialised per ``d``).
* **large d** (tiled, flash-attention style): for each block of ``NT`` data
  points, ``dist_tile`` forms the ``Q x NT`` squared distances with
  register-blocked shared-memory tiles (64 x 64 outputs per block, 4 x 4 per
  thread, 16 coordinates per stage), ``softmax_tile`` turns them into
  relative weights and rescales the running state, and ``accumulate_tile``
  adds ``P X`` with the same tiling.  Global memory holds one ``Q x NT`` tile
  (the host picks ``NT`` to fit a budget), never ``Q x N``.  Here
  ``acc + t * t`` may be contracted to an FMA (more accurate, 2 instructions
  instead of 3); the small-d kernel rounds ``t * t`` on its own (see
  ``cuda_device.square``) so that distances are symmetric in the coordinates.

Both are generated for float64 and float32 (``ft``).  In float32 the data
and queries arrive centred on the data mean (the host does it) so that
``y - a x`` loses no more than the data's spread; the softmax bookkeeping
(running minimum, sums, exponent) stays float64 in both.  Work per query
pair, in 4QNd accounting: ``4 d`` flops.
"""
import functools
import math

from numba import cuda, float32, float64

from .cuda_device import SQUARE, query_functions, softmax_exponent, top2_insert

#: data points per shared-memory tile of the small-d kernel
TILE = 64
#: largest d of the one-thread-per-query kernel
SMALL_MAX_D = 32
#: large-d tiling (BM, BK, TM): outputs per block BM x BM, coordinates (or data
#: points) per shared-memory stage BK, outputs per thread TM x TM (16 x 16 threads).
#: The shared tiles have a padded leading dimension BM + 1 (the transposing
#: stores then avoid bank conflicts).
GEOMETRY = (64, 16, 4)

FLOAT_TYPES = {"float64": float64, "float32": float32}


@functools.cache
def small_kernel(D, dtype="float64"):
    """The one-thread-per-query reduction for dimension ``D``.

    ``kernel[blocks, threads](X, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2, d2)``
    with ``X`` (N, D), ``Y`` (Q, D) and ``mean`` (Q, D) of ``dtype``;
    ``alpha``, ``inv2s2``, ``dmin``, ``lsum``, ``d1``, ``d2`` (Q,) float64;
    ``i1``, ``i2`` (Q,) int64.  Outputs as in ``reduction.reduce_direct``.
    """
    return cuda.jit(small_kernel_source(D, dtype))


@functools.cache
def small_kernel_source(D, dtype="float64"):
    """The Python function behind :func:`small_kernel` (for ``compile_ptx``)."""
    ft = FLOAT_TYPES[dtype]
    absorb = query_functions(D, ft)[0]
    sq = SQUARE[ft]

    def kernel(X, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2, d2):
        sx = cuda.shared.array((TILE, D), ft)
        y = cuda.local.array(D, ft)
        acc = cuda.local.array(D, ft)
        xc = cuda.local.array(D, ft)
        q = cuda.grid(1)
        nq = Y.shape[0]
        n = X.shape[0]
        active = q < nq
        a = ft(1.0)
        inv = 0.0
        for k in range(D):
            xc[k] = 0.0
            acc[k] = 0.0
            y[k] = 0.0
        if active:
            a = ft(alpha[q])
            inv = inv2s2[q]
            for k in range(D):
                y[k] = Y[q, k]
        m = math.inf
        l = 0.0
        j1 = -1
        j2 = -1
        e1 = math.inf
        e2 = math.inf
        for t0 in range(0, n, TILE):
            nt = min(TILE, n - t0)
            cuda.syncthreads()
            for e in range(cuda.threadIdx.x, nt * D, cuda.blockDim.x):
                sx[e // D, e % D] = X[t0 + e // D, e % D]
            cuda.syncthreads()
            if active:
                for j in range(nt):
                    dist = ft(0.0)
                    for k in range(D):
                        dist += sq(y[k] - a * sx[j, k])
                    m, l, j1, e1, j2, e2 = absorb(dist, t0 + j, sx, j, xc, inv, want_top2, acc,
                                                  m, l, j1, e1, j2, e2)
        if active:
            for k in range(D):
                mean[q, k] = acc[k] / l
            dmin[q] = m
            lsum[q] = l
            i1[q] = j1
            d1[q] = e1
            i2[q] = j2
            d2[q] = e2

    return kernel


@functools.cache
def tile_kernels(dtype="float64", geometry=GEOMETRY):
    """``(dist_tile, softmax_tile, accumulate_tile, normalise)`` kernels of the large-d path."""
    return tuple(cuda.jit(f) for f in tile_kernel_sources(dtype, geometry))


@functools.cache
def tile_kernel_sources(dtype="float64", geometry=GEOMETRY):
    """The Python functions behind :func:`tile_kernels` (for ``compile_ptx``).

    ``geometry = (BM, BK, TM)``: square output tiles of BM x BM per block, BK
    per stage, TM x TM per thread (blocks of (BM/TM)^2 threads).  The tests use
    a small geometry to cross every tile boundary quickly in the simulator.
    """
    ft = FLOAT_TYPES[dtype]
    BM, BK, TM = geometry
    BN, TN = BM, TM
    LDS = BM + 1

    def dist_tile(Y, X, alpha, n0, nt, S):
        """``S[q, j] = |Y[q] - alpha[q] X[n0 + j]|^2`` for ``j < nt``; block (16, 16), tile 64 x 64."""
        sy = cuda.shared.array((BK, LDS), ft)
        sx = cuda.shared.array((BK, LDS), ft)
        acc = cuda.local.array((TM, TN), ft)
        av = cuda.local.array(TM, ft)
        yv = cuda.local.array(TM, ft)
        xv = cuda.local.array(TN, ft)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * cuda.blockDim.x + tx
        nthreads = cuda.blockDim.x * cuda.blockDim.y
        qb = cuda.blockIdx.y * BM
        jb = cuda.blockIdx.x * BN
        nq = Y.shape[0]
        d = Y.shape[1]
        for r in range(TM):
            qq = qb + ty + r * (BM // TM)
            av[r] = ft(alpha[qq]) if qq < nq else ft(0.0)
            for c in range(TN):
                acc[r, c] = 0.0
        for k0 in range(0, d, BK):
            cuda.syncthreads()
            for e in range(tid, BM * BK, nthreads):
                r = e // BK
                kk = e % BK
                qq = qb + r
                k = k0 + kk
                sy[kk, r] = Y[qq, k] if (qq < nq and k < d) else ft(0.0)
                jj = jb + r
                sx[kk, r] = X[n0 + jj, k] if (jj < nt and k < d) else ft(0.0)
            cuda.syncthreads()
            for kk in range(BK):
                for r in range(TM):
                    yv[r] = sy[kk, ty + r * (BM // TM)]
                for c in range(TN):
                    xv[c] = sx[kk, tx + c * (BN // TN)]
                for r in range(TM):
                    for c in range(TN):
                        t = yv[r] - av[r] * xv[c]
                        acc[r, c] += t * t      # contracted to an FMA: 2 instructions
        for r in range(TM):
            qq = qb + ty + r * (BM // TM)
            for c in range(TN):
                jj = jb + tx + c * (BN // TN)
                if qq < nq and jj < nt:
                    S[qq, jj] = acc[r, c]

    def softmax_tile(S, nt, n0, inv2s2, want_top2, dmin, lsum, fac, i1, d1, i2, d2):
        """Distances -> relative weights in place; rescale factor of the old state in ``fac``."""
        q = cuda.grid(1)
        if q >= S.shape[0]:
            return
        inv = inv2s2[q]
        m_old = dmin[q]
        m = m_old
        j1 = i1[q]
        e1 = d1[q]
        j2 = i2[q]
        e2 = d2[q]
        for j in range(nt):
            v = float64(S[q, j])
            m = min(m, v)
            if want_top2:
                j1, e1, j2, e2 = top2_insert(v, n0 + j, j1, e1, j2, e2)
        f = 0.0
        if lsum[q] > 0.0:
            f = math.exp(softmax_exponent(m_old, m, inv))
        s = 0.0
        for j in range(nt):
            w = math.exp(ft(softmax_exponent(float64(S[q, j]), m, inv)))
            S[q, j] = w
            s += w
        fac[q] = f
        lsum[q] = lsum[q] * f + s
        dmin[q] = m
        i1[q] = j1
        d1[q] = e1
        i2[q] = j2
        d2[q] = e2

    def accumulate_tile(P, X, n0, nt, fac, M):
        """``M[q, k] = fac[q] M[q, k] + sum_{j < nt} P[q, j] X[n0 + j, k]``; block (16, 16)."""
        sp = cuda.shared.array((BK, LDS), ft)
        sx = cuda.shared.array((BK, LDS), ft)
        acc = cuda.local.array((TM, TN), ft)
        pv = cuda.local.array(TM, ft)
        xv = cuda.local.array(TN, ft)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * cuda.blockDim.x + tx
        nthreads = cuda.blockDim.x * cuda.blockDim.y
        qb = cuda.blockIdx.y * BM
        kb = cuda.blockIdx.x * BN
        nq = M.shape[0]
        d = M.shape[1]
        for r in range(TM):
            for c in range(TN):
                acc[r, c] = 0.0
        for j0 in range(0, nt, BK):
            cuda.syncthreads()
            for e in range(tid, BM * BK, nthreads):
                r = e // BK
                jj = e % BK
                qq = qb + r
                j = j0 + jj
                sp[jj, r] = P[qq, j] if (qq < nq and j < nt) else ft(0.0)
            for e in range(tid, BN * BK, nthreads):
                jj = e // BN
                c = e % BN
                k = kb + c
                j = j0 + jj
                sx[jj, c] = X[n0 + j, k] if (j < nt and k < d) else ft(0.0)
            cuda.syncthreads()
            for jj in range(BK):
                for r in range(TM):
                    pv[r] = sp[jj, ty + r * (BM // TM)]
                for c in range(TN):
                    xv[c] = sx[jj, tx + c * (BN // TN)]
                for r in range(TM):
                    for c in range(TN):
                        acc[r, c] += pv[r] * xv[c]
        for r in range(TM):
            qq = qb + ty + r * (BM // TM)
            if qq < nq:
                f = fac[qq]
                for c in range(TN):
                    k = kb + tx + c * (BN // TN)
                    if k < d:
                        M[qq, k] = M[qq, k] * f + acc[r, c]

    def normalise(M, lsum):
        """``M[q, :] /= lsum[q]``; one thread per entry."""
        q, k = cuda.grid(2)
        if q < M.shape[0] and k < M.shape[1]:
            M[q, k] = M[q, k] / lsum[q]

    return dist_tile, softmax_tile, accumulate_tile, normalise


def reduce_small(X, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2, d2, *,
                 threads=128, stream=0):
    """Launch the small-d kernel (arguments as in :func:`small_kernel`; device arrays)."""
    q, d = Y.shape
    kern = small_kernel(d, _dtype_name(Y))
    blocks = max(1, -(-q // threads))
    kern[blocks, threads, stream](X, Y, alpha, inv2s2, bool(want_top2), mean, dmin, lsum,
                                  i1, d1, i2, d2)


def reduce_tiled(X, Y, alpha, inv2s2, want_top2, mean, dmin, lsum, i1, d1, i2, d2, *,
                 workspace, fac, threads=128, stream=0, geometry=GEOMETRY):
    """Run the large-d path over the data in blocks of ``workspace.shape[1]`` points.

    Parameters
    ----------
    X : (N, d), Y : (Q, d), mean : (Q, d) device arrays of one float dtype
    alpha, inv2s2 : (Q,) float64 device arrays
    mean, dmin, lsum, i1, d1, i2, d2 : outputs, device arrays (overwritten)
    workspace : (Q, NT) device array of X's dtype
        Scratch for one block of distances / weights.
    fac : (Q,) float64 device array, scratch
    geometry : (BM, BK, TM)
        Tiling of :func:`tile_kernel_sources`.
    """
    dist_tile, softmax_tile, accumulate_tile, normalise = tile_kernels(_dtype_name(Y), geometry)
    bm, _, tm = geometry
    tile_threads = (bm // tm, bm // tm)
    n, d = X.shape
    q = Y.shape[0]
    nt_max = workspace.shape[1]
    _fill[max(1, -(-q // threads)), threads, stream](mean, dmin, lsum, i1, d1, i2, d2)
    for n0 in range(0, n, nt_max):
        nt = min(nt_max, n - n0)
        dist_tile[(-(-nt // bm), -(-q // bm)), tile_threads, stream](Y, X, alpha, n0, nt,
                                                                     workspace)
        softmax_tile[max(1, -(-q // threads)), threads, stream](
            workspace, nt, n0, inv2s2, bool(want_top2), dmin, lsum, fac, i1, d1, i2, d2)
        accumulate_tile[(-(-d // bm), -(-q // bm)), tile_threads, stream](
            workspace, X, n0, nt, fac, mean)
    normalise[(-(-q // 16), -(-d // 16)), (16, 16), stream](mean, lsum)


def _fill_source(mean, dmin, lsum, i1, d1, i2, d2):
    """Initial state of the tiled path: empty sums, no nearest site."""
    q = cuda.grid(1)
    if q < dmin.shape[0]:
        for k in range(mean.shape[1]):
            mean[q, k] = 0.0
        dmin[q] = math.inf
        lsum[q] = 0.0
        i1[q] = -1
        i2[q] = -1
        d1[q] = math.inf
        d2[q] = math.inf


_fill = cuda.jit(_fill_source)


def _dtype_name(a):
    name = str(a.dtype)
    if name not in FLOAT_TYPES:
        raise TypeError(f"CUDA reduction kernels take float64 or float32 arrays; got {name}.")
    return name
