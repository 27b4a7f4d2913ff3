"""A training set split over the workers of a Dask cluster.

Each shard of the data lives on a worker (loaded there by a function the user
gives, so the data need never pass through the client) and answers a block of
queries with its partial streaming state; the client merges the states in
shard order.  Nothing is ever Q x N: a shard returns O(Q d) (posterior mean)
or O(Q k) (nearest neighbours).

The merge of the posterior mean.  A shard returns, for each query, its minimum
squared distance ``m_j``, its sum of relative weights ``l_j = sum_i exp(-(d_i -
m_j) / (2 sigma^2))`` and its normalised mean ``D_j``.  With ``m = min_j m_j``
and ``f_j = exp(-(m_j - m) / (2 sigma^2))`` (exactly 1 for the shard holding
the minimum, whatever sigma):

    l = sum_j l_j f_j,    D = sum_j (l_j f_j / l) D_j,

the same online-softmax step the kernels take between tiles, so exact ties and
the sigma extremes behave as on one machine.  Rounding: every relative weight
of the single pass and of the merged one carries an error of a few units in
the last place times ``1 + z_i`` (``z_i`` its exponent, where ``z e^{-z} <= 1/e``
keeps it bounded) and the sums are accumulated in different orders, so

    |D_sharded - D_single| <= eps R (2 (T + N / T + S) + 8 (log N + 4)),

``R`` the largest ``|x_i - D|``, ``T`` the kernels' tile length, ``S`` the
number of shards, ``eps`` the unit roundoff (for d beyond the direct-difference
range the logit error of the GEMM path adds ``2 max |delta l_i| R``).  The nearest
neighbours merge exactly: every candidate's squared distance is formed by direct
differences, so the sharded answer equals the single-process one bit for bit.
"""
import numpy as np

from .._host.knn import k_nearest_squared, merge_nearest
from .._host.reduce import PreparedData, Reduction, posterior_reduce, relative_weight
from .._validation import as_data, kernel_array, length_scale
from ..fields.base import ScoreField, array_io
from .cluster import connect, data_in_graph, gather_in_order

#: queries per round of shard tasks (a shard returns O(block * d) floats)
QUERY_BLOCK = 8192


class _Shard:
    """One shard on a worker: its data in the kernels' layouts, and rescaled copies."""

    def __init__(self, data):
        X, _ = as_data(data, "shard")
        self.prep = PreparedData(X)
        self._scaled = {}

    def at_scale(self, c):
        if c == 1.0:
            return self.prep
        if c not in self._scaled:
            self._scaled[c] = PreparedData(self.prep.X * c)
        return self._scaled[c]


def _load_shard(loader):
    return _Shard(loader() if callable(loader) else loader)


def _describe(shard):
    return shard.prep.n, shard.prep.d, shard.prep.magnitude


def _reduce_shard(shard, Y, alpha, sigma, c):
    # arrays arrive read-only from the network: the kernels take writeable copies (same bits)
    Y, alpha, sigma = kernel_array(Y), kernel_array(alpha), kernel_array(sigma)
    red = posterior_reduce(shard.at_scale(c), Y, alpha, sigma)
    return red.mean, red.dmin, red.lsum


def _nearest_shard(shard, Y, k, c, offset):
    ki, kd = k_nearest_squared(shard.at_scale(c), kernel_array(Y), min(k, shard.prep.n))
    return np.where(ki < 0, ki, ki + offset), kd


def merge_reductions(states, inv2s2):
    """Merge per-shard ``(mean, dmin, lsum)`` states, in the given order.

    Returns ``(mean, dmin, lsum)`` of the whole data (see the module docstring).
    """
    mean, m, l = (np.array(a, dtype=float) for a in states[0])
    acc = mean * l[:, None]
    for mean_j, m_j, l_j in states[1:]:
        m_new = np.minimum(m, m_j)
        f, f_j = relative_weight(m, m_new, inv2s2), relative_weight(m_j, m_new, inv2s2)
        acc = acc * f[:, None] + mean_j * (l_j * f_j)[:, None]
        l = l * f + l_j * f_j
        m = m_new
    return acc / l[:, None], m, l


class ShardedData:
    """A training set held in shards by the workers of a Dask cluster.

    Build one with :meth:`from_array` (the data are on the client) or
    :meth:`from_loaders` (each worker loads its shard itself: the data never pass
    through the client, e.g. ``np.load(path, mmap_mode="r")`` per file).  Shard
    order is the order of the training points: index ``i`` of the whole set is
    point ``i - offset_j`` of shard ``j``.

    A shard is a task's result: if its worker dies, Dask loads it again.

    Attributes
    ----------
    shape : (N, d)
    offsets : (S + 1,) int ndarray
        Shard ``j`` holds points ``offsets[j]:offsets[j + 1]``.
    magnitude : float
        Largest coordinate magnitude of the data.
    """

    def __init__(self, futures, client):
        self.client = client
        self._futures = list(futures)
        if not self._futures:
            raise ValueError("A ShardedData needs at least one shard.")
        info = gather_in_order(client, [client.submit(_describe, f, pure=False)
                                        for f in self._futures], what="load shards",
                               progress=False)
        dims = {d for _, d, _ in info}
        if len(dims) != 1:
            raise ValueError(f"All shards must have the same dimension; got {sorted(dims)}.")
        self.d = dims.pop()
        self.offsets = np.concatenate([[0], np.cumsum([n for n, _, _ in info])])
        self.n = int(self.offsets[-1])
        self.shape = (self.n, self.d)
        self.magnitude = max(m for _, _, m in info)

    @classmethod
    def from_array(cls, data, *, client=None, shard_size):
        """Split an (N, d) array into shards of ``shard_size`` points."""
        from .cluster import as_chunk_size
        X, _ = as_data(data, "data")
        shard_size = as_chunk_size(shard_size, "shard_size")
        pieces = [X[i:i + shard_size] for i in range(0, len(X), shard_size)]
        return cls.from_loaders(pieces, client=client)

    @classmethod
    def from_loaders(cls, loaders, *, client=None):
        """Shards from ``loaders``: each a function of no argument, run on a worker,
        returning that shard's (n_j, d) array (or the array itself)."""
        c, _ = connect(client)
        with data_in_graph():
            futures = [c.submit(_load_shard, ld, pure=False) for ld in loaders]
        return cls(futures, c)

    def __len__(self):
        return self.n

    def _scale(self, Y):
        return length_scale(self.magnitude, Y)

    def posterior(self, Y, alpha, sigma, *, progress=False):
        """The merged streaming state for validated queries.

        Returns ``(mean, dmin, lsum, inv2s2, c)`` at the working scale ``c`` (a power
        of two; ``mean / c`` is D).
        """
        c = self._scale(Y)
        out_mean = np.empty_like(Y)
        out_m = np.empty(len(Y))
        out_l = np.empty(len(Y))
        inv = np.empty(len(Y))
        for q0 in range(0, len(Y), QUERY_BLOCK):
            q1 = min(q0 + QUERY_BLOCK, len(Y))
            Yb, ab, sb = Y[q0:q1] * c, alpha[q0:q1], sigma[q0:q1] * c
            with data_in_graph():
                futures = [self.client.submit(_reduce_shard, f, Yb, ab, sb, c, pure=False)
                           for f in self._futures]
            states = gather_in_order(self.client, futures, what="posterior (shards)",
                                     chunk_rows=QUERY_BLOCK, progress=progress)
            with np.errstate(over="ignore"):
                inv[q0:q1] = 0.5 / sb / sb
            out_mean[q0:q1], out_m[q0:q1], out_l[q0:q1] = merge_reductions(states, inv[q0:q1])
        return out_mean, out_m, out_l, inv, c

    def k_nearest(self, Y, k):
        """Exact ``(index, distance)`` (Q, k) of the k nearest training points (ties by
        lower index), merged from every shard's k nearest."""
        c = self._scale(Y)
        index = np.empty((len(Y), k), np.int64)
        dist = np.empty((len(Y), k))
        for q0 in range(0, len(Y), QUERY_BLOCK):
            q1 = min(q0 + QUERY_BLOCK, len(Y))
            with data_in_graph():
                futures = [self.client.submit(_nearest_shard, f, Y[q0:q1] * c, k, c, int(off),
                                              pure=False)
                           for f, off in zip(self._futures, self.offsets[:-1])]
            parts = gather_in_order(self.client, futures, what="nearest (shards)",
                                    chunk_rows=QUERY_BLOCK, progress=False)
            index[q0:q1], d2 = merge_nearest(parts, k)
            dist[q0:q1] = np.sqrt(d2) / c
        return index, dist

    def __repr__(self):
        return f"ShardedData(N={self.n}, d={self.d}, {len(self._futures)} shards)"


class ShardedEmpiricalScore(ScoreField):
    """The exact empirical score of a :class:`ShardedData` training set.

    The same field as :class:`scoredyn.EmpiricalScore` on the whole data (see the
    module docstring for the merge and its rounding bound): ``denoise``,
    ``score``, ``noise``, ``log_density`` and everything built on
    :meth:`residual` (the numpy engine of :func:`scoredyn.solve`, the samplers)
    run on the cluster.  Unregularised and unconditional.
    """

    def __init__(self, data):
        if not isinstance(data, ShardedData):
            raise TypeError(f"`data` must be a ShardedData; got {type(data).__name__}.")
        self.data = data
        self.dim = data.d

    def _state(self, x, sigma, alpha, label):
        if label is not None:
            raise ValueError("ShardedEmpiricalScore is unconditional: `label` must be None.")
        return self.data.posterior(np.ascontiguousarray(x), alpha, sigma)

    def residual(self, x, sigma, alpha, label=None):
        mean, m, l, inv, c = self._state(x, sigma, alpha, label)
        return (alpha[:, None] * mean - x * c) / c, Reduction(mean, m, l, inv).log_normalizer()

    def _denoised(self, x, sigma, alpha, label):
        mean, _, _, _, c = self._state(x, sigma, alpha, label)
        return mean / c

    @array_io
    def log_density(self, x, sigma, alpha=1.0, *, label=None):
        """Normalised ``log p_t(x)`` of ``(1/N) sum_i N(alpha x_i, sigma^2 I)``, shape (Q,)."""
        x64, sigma, alpha, _ = self._prepare(x, sigma, alpha)
        mean, m, l, inv, _ = self._state(x64, sigma, alpha, label)
        return (Reduction(mean, m, l, inv).log_normalizer() - np.log(self.data.n)
                - 0.5 * self.dim * (np.log(2.0 * np.pi) + 2.0 * np.log(sigma)))

