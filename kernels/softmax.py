"""The online softmax over data points, written once for the CPU and the GPU.

One query ``y`` against data ``x_1..x_N``: the posterior mean ``D = sum_i w_i x_i`` with
``w_i ∝ exp(-|y - a x_i|^2 inv)`` (``inv = 1 / (2 sigma^2)``), the log-normaliser and the two
nearest sites, in one pass that never holds more than a tile of distances.  The state after
the points seen so far is

* ``m``: the smallest squared distance (the reference of every weight, so each exponent is
  ``<= 0`` and nothing overflows at any sigma);
* ``l = sum_i exp(-(dist_i - m) inv)`` (``>= 1`` once a point is in);
* ``acc = sum_i exp(-(dist_i - m) inv) (x_i - xc)`` (``xc``: the centre the caller measures
  from; the zero vector for plain coordinates);
* the two nearest ``(i1, d1)``, ``(i2, d2)``.

:func:`fold` absorbs a tile of ``nt`` points whose squared distances are in ``dist``: when
the tile lowers the minimum, ``l`` and ``acc`` are rescaled by ``exp(-(m_old - m_new) inv)``
once (the online softmax of Milakov & Gimelshein, 2018, "Online normalizer calculation for
softmax", arXiv:1805.02867), then the tile's weights are added.  The CPU kernels call it with
tiles of ``TILE_N`` distances formed with vectorised direct differences
(:mod:`reduction`); the GPU kernels with one point at a time (``nt = 1``), each thread
folding in the points of the shared-memory tile.  The function is plain Python: it calls
``top2_insert``, ``rescale``, ``weight``, ``weighted_sum`` and ``ndim``, which
:func:`target.specialise` binds to each target's compiled versions (the CPU's vectorisable
``exp``; the GPU's ``math.exp``, in float32 for float32 kernels).
"""

#: the names :func:`fold` expects its target to bind
TARGET_NAMES = ("top2_insert", "rescale", "weight", "weighted_sum", "ndim")


def fold(dist, nt, j0, src, r0, xc, inv, want_top2, acc, m, l, i1, d1, i2, d2):
    """Absorb ``nt`` data points into the online-softmax state; returns ``(m, l, i1, d1, i2, d2)``.

    Parameters
    ----------
    dist : (>= nt,) array
        Squared distances ``|y - a x_j|^2`` of the tile's points (overwritten with their
        relative weights).
    nt : int
        Points in the tile.
    j0 : int
        Data index of the tile's first point (for the two nearest).
    src, r0 : data array, int
        Where the tile's points are: ``weighted_sum(w, nt, src, r0, k, c)`` is
        ``sum_j w[j] (x_{r0 + j, k} - c)`` over the tile (the layout is the target's: a
        contiguous row of the CPU's transposed data, a row of the GPU's shared tile).
    xc : (d,) array
        The centre coordinates are measured from.
    inv : float
        ``1 / (2 sigma^2)`` (0 and +inf allowed: the limits are exact).
    want_top2 : bool
    acc : (d,) array, in/out
    m, l, i1, d1, i2, d2 : the state before the tile.
    """
    tmin = dist[0]
    for j in range(nt):
        tmin = min(tmin, dist[j])
    if want_top2 and tmin < d2:
        for j in range(nt):
            i1, d1, i2, d2 = top2_insert(dist[j], j0 + j, i1, d1, i2, d2)
    d = ndim(src)
    if tmin < m:
        if l > 0.0:
            f = rescale(m, tmin, inv)
            l *= f
            for k in range(d):
                acc[k] *= f
        m = tmin
    s = 0.0
    for j in range(nt):
        e = weight(dist[j], m, inv)
        dist[j] = e
        s += e
    l += s
    for k in range(d):
        acc[k] += weighted_sum(dist, nt, src, r0, k, xc[k])
    return m, l, i1, d1, i2, d2
