"""Voronoi geometry of the data on NVIDIA GPUs: the GPU twin of ``voronoi.voronoi_pass``.

One thread per query, any ``d``: the data stream through shared memory in
tiles of ``TV`` points by ``KC`` coordinates, and each thread accumulates the
partial sums of the tile's points in registers.  Three passes over the data:
the two nearest sites, then ``min_l h_l`` and the distance gap from
``(y - m).Delta`` (no difference of squared distances, the
formula of :func:`scalar.bisector_margins`), then the count of bisectors tied
with the minimum.  float64 only: boundary distances at the scales the theorem
needs are below float32's resolution.
"""
import math

from numba import cuda, float64

from .cuda_device import bisector_margins, square, top2_insert

#: points and coordinates per shared-memory tile
TV = 32
KC = 32


def _load_tile(sx, X, t0, nt, k0, kc):
    """Cooperatively copy ``X[t0:t0+nt, k0:k0+kc]`` into ``sx`` (whole block)."""
    cuda.syncthreads()
    for e in range(cuda.threadIdx.x, nt * kc, cuda.blockDim.x):
        sx[e // kc, e % kc] = X[t0 + e // kc, k0 + e % kc]
    cuda.syncthreads()


_load_tile_dev = cuda.jit(device=True, inline="always")(_load_tile)


def voronoi_kernel(X, Y, tol, i1, r1, i2, r2, bdist, gap, ntied):
    """For every query: two nearest sites, boundary distance, gap, tied count.

    ``X`` (N, d), ``Y`` (Q, d) float64; outputs (Q,) as in ``voronoi.voronoi_pass``
    (``r1``, ``r2`` distances, not squared).
    """
    sx = cuda.shared.array((TV, KC), float64)
    part = cuda.local.array(TV, float64)
    pnrm = cuda.local.array(TV, float64)
    q = cuda.grid(1)
    n, d = X.shape
    active = q < Y.shape[0]
    qq = q if active else 0
    j1 = -1
    j2 = -1
    e1 = math.inf
    e2 = math.inf
    # pass 1: the two nearest sites
    for t0 in range(0, n, TV):
        nt = min(TV, n - t0)
        for j in range(TV):
            part[j] = 0.0
        for k0 in range(0, d, KC):
            kc = min(KC, d - k0)
            _load_tile_dev(sx, X, t0, nt, k0, kc)
            if active:
                for j in range(nt):
                    acc = part[j]
                    for kk in range(kc):
                        acc += square(Y[qq, k0 + kk] - sx[j, kk])
                    part[j] = acc
        if active:
            for j in range(nt):
                j1, e1, j2, e2 = top2_insert(part[j], t0 + j, j1, e1, j2, e2)
    # passes 2 and 3: margins of the nearest cell, then the tied count
    i = j1 if active else 0
    bd = math.inf
    gp = math.inf
    nti = 0
    for sweep in range(2):
        for t0 in range(0, n, TV):
            nt = min(TV, n - t0)
            for j in range(TV):
                part[j] = 0.0
                pnrm[j] = 0.0
            for k0 in range(0, d, KC):
                kc = min(KC, d - k0)
                _load_tile_dev(sx, X, t0, nt, k0, kc)
                if active:
                    for j in range(nt):
                        num = part[j]
                        nrm = pnrm[j]
                        for kk in range(kc):
                            xi = X[i, k0 + kk]
                            dl = sx[j, kk] - xi
                            p = Y[qq, k0 + kk] - (0.5 * dl + xi)
                            num += p * dl
                            nrm += dl * dl
                        part[j] = num
                        pnrm[j] = nrm
            if active:
                for j in range(nt):
                    if t0 + j == i or pnrm[j] == 0.0:
                        continue
                    if sweep == 0:
                        h, g = bisector_margins(part[j], pnrm[j], e1)
                        bd = min(bd, h)
                        gp = min(gp, g)
                    elif -part[j] / math.sqrt(pnrm[j]) <= bd + tol:
                        nti += 1
    if not math.isfinite(bd):   # no other distinct site (every thread runs every sweep:
        nti = 0                 # the tile loads are block-wide)
    if active:
        i1[q] = j1
        i2[q] = j2
        r1[q] = math.sqrt(e1)
        r2[q] = math.sqrt(e2)
        bdist[q] = bd
        gap[q] = gp
        ntied[q] = nti


voronoi = cuda.jit(voronoi_kernel)


def voronoi_pass(X, Y, tol, i1, r1, i2, r2, bdist, gap, ntied, *, threads=128, stream=0):
    """Launch :func:`voronoi_kernel` on device arrays."""
    blocks = max(1, -(-Y.shape[0] // threads))
    voronoi[blocks, threads, stream](X, Y, float(tol), i1, r1, i2, r2, bdist, gap, ntied)
