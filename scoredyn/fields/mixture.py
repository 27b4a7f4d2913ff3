"""Gaussian-mixture data: the exact (population) score of a generalising model.

For ``p_0 = sum_k pi_k N(mu_k, S_k)`` and ``x_t = alpha x_0 + sigma eps``,
``p_t = sum_k pi_k N(alpha mu_k, C_k)``, ``C_k = alpha^2 S_k + sigma^2 I``, and with
``u_k = x - alpha mu_k``:

* ``log N_k(x) = -1/2 u_k^T C_k^{-1} u_k - 1/2 log det C_k - (d/2) log 2 pi``; the
  responsibilities ``rho_k`` are its softmax (with ``log pi_k``);
* ``sigma^2 grad log p_t = -sum_k rho_k sigma^2 C_k^{-1} u_k = alpha D - x`` (Tweedie).

Four covariance forms, each in memory that scales:

=================  ========================  ============================================
``isotropic``      ``S_k = s_k I``            ``covariances`` (K,)
``diagonal``       ``S_k = diag(v_k)``        ``covariances`` (K, d)
``low-rank``       ``S_k = U_k U_k^T +        ``factors`` (K, d, r) and ``covariances`` (K, d):
                   diag(v_k)``                the probabilistic-PCA form, O(K d r)
``full``           any PSD ``S_k``            ``covariances`` (K, d, d): small d
=================  ========================  ============================================

Isotropic, diagonal and (for queries sharing a few noise levels, as in a denoiser call)
low-rank mixtures run on compiled streaming kernels (:mod:`scoredyn.kernels.mixture`): one
pass over the components per query with an online softmax of their log-densities,
O((Q + K) d) memory.  Isotropic and diagonal mixtures take the per-query loop of
:mod:`scoredyn.kernels.mixture_query` (the same on the CPU, the GPU and inside
``solve``'s compiled time loop; every sigma > 0), a component-major SIMD version of it
for queries sharing a few (sigma, alpha), and above ``GEMM_MIN_D`` dimensions the GEMM path
of :mod:`scoredyn._host.mixture_gemm` (matrix products with a rounding bound per entry and
direct recomputation where it matters).  The full form, and the low-rank form at per-query times, stream over
the components in numpy (the Woodbury identity for the low-rank form:
``C^{-1} = Delta^{-1} - alpha^2 Delta^{-1} U M^{-1} U^T Delta^{-1}``,
``M = I_r + alpha^2 U^T Delta^{-1} U``, ``Delta = alpha^2 diag(v) + sigma^2 I``, and
``log det C = log det Delta + log det M``).  Every quantity is formed with the factor
``sigma^2 / (alpha^2 v + sigma^2) = 1 / (1 + alpha^2 v / sigma^2)`` in (0, 1], so the
residual has no cancellation and zero-variance directions (point masses) are exact: a
mixture of point masses is the empirical field.
"""
import numpy as np

from .._validation import _as_float_array, as_data, as_rng
from ..kernels.mixture_query import DENOISE, RESIDUAL, SCORE
from .base import ScoreField

FORMS = ("isotropic", "diagonal", "low-rank", "full")
#: up to this many distinct (sigma, alpha) pairs per call, the log-determinants are formed once
#: per pair in numpy (vectorised log1p); beyond, the kernel forms them per query
GROUPED_LOGDET = 16
#: below this signal scale alpha, ``denoise`` sums the posterior mean in the kernel instead of
#: forming ``(x + res) / alpha`` (whose rounding error grows like 1 / alpha)
DENOISE_DIRECT_BELOW = 0.5
#: sigma (and |y|, a^2 v / sigma^2) range of the relative logits for queries far from every
#: component (GaussianMixture._far)
FAR_SIGMA = (1e-60, 1e60)
#: above this dimension, queries sharing a few (sigma, alpha) pairs take the GEMM path
#: (:mod:`scoredyn._host.mixture_gemm`), as the empirical field does
GEMM_MIN_D = 24
#: the component-major kernel's per-pair tables, (sigma, alpha) pairs x K x d entries at most
#: (2^23: 128 MiB for its two tables); beyond, the per-query kernel runs
TILED_ENTRIES = 2 ** 23


class GaussianMixture(ScoreField):
    """Score field of Gaussian-mixture data.

    Parameters
    ----------
    means : (K, d) array_like
        Component means ``mu_k``.
    covariances : float, (K,), (K, d) or (K, d, d) array_like
        Variances (isotropic ``s_k I``; a float: one variance for every component),
        diagonals ``v_k``, or full symmetric positive semi-definite matrices; with
        ``factors``, the diagonal part (K, d) (or (K,), or a float).
    weights : (K,) array_like, optional
        Mixing proportions, non-negative and summing to 1 (default uniform).
    factors : (K, d, r) array_like, optional
        Low-rank factors ``U_k``: ``S_k = U_k U_k^T + diag(v_k)``, ``r <= d``.
    backend : {None, "auto", "numba", "cuda", "numpy"}
        The compiled CPU kernels ("numba", the default and what "auto" means: isotropic,
        diagonal and low-rank), the GPU kernel ("cuda": isotropic and diagonal, one thread
        per query; the other forms run as on "numba") or the numpy stream (the full form
        always streams in numpy).

    Notes
    -----
    Isotropic and diagonal mixtures on the compiled kernels (the default backend) serve
    every ``sigma > 0``: the terms are formed through ``hypot`` where ``sigma^2`` is not a
    normal number, and when sigma is so small that every component's logit leaves the
    float64 range the weights take their exact limit (the nearest components in the
    covariance metric), so a mixture of point masses is the empirical field at every sigma.
    The other paths (``backend="numpy"``, the full form, the low-rank form outside
    ``1e-150 < sigma < 1e150``, :meth:`weights` and :meth:`jacobian`) stream over the
    components in numpy in ratio form — ``hypot(sigma, alpha s_j)`` and ``sigma / h`` along
    each direction of the covariance's eigenbasis, never ``sigma^2`` — so they too serve every
    sigma > 0; where every logit overflows (a query far from every component, or a tiny sigma
    with directions of zero variance) the weights take the same limit.  One case is refused
    with a ``ValueError``: a low-rank factor that reaches a direction of zero diagonal
    variance, at a sigma so small that the Woodbury form would need ``1 / sigma^2`` beyond
    float64.  Means and standard deviations are limited to :data:`MAGNITUDE` in absolute
    value (their squares stay finite).
    """

    #: the range of sigma where sigma^2 is a normal float64 number: the low-rank and tiled
    #: kernels form sigma^2 and serve it; outside, the ratio-form stream does (see Notes)
    SIGMA_RANGE = (1e-150, 1e150)
    #: largest |mean| and standard deviation (squared distances stay below the float64 maximum)
    MAGNITUDE = 1e150

    def __init__(self, means, covariances, weights=None, *, factors=None, backend=None):
        mu, self._dtype = as_data(means, "means")
        k, d = mu.shape
        cov = _as_float_array(covariances, "covariances").astype(np.float64)
        if not np.all(np.isfinite(cov)):
            raise ValueError("All entries of `covariances` must be finite.")
        if cov.ndim == 0:                       # one variance shared by every component
            cov = np.full(k, float(cov))
        self.factors = None
        self.eigenvalues = self.eigenvectors = None
        if factors is not None:
            U = _as_float_array(factors, "factors").astype(np.float64)
            if U.ndim != 3 or U.shape[:2] != (k, d):
                raise ValueError(f"`factors` must have shape ({k}, {d}, r) for {k} components in "
                                 f"dimension {d}; got shape {U.shape}.")
            if U.shape[2] > d:
                raise ValueError(f"`factors` has rank r = {U.shape[2]} larger than the "
                                 f"dimension d = {d}; give r <= d (or a full covariance).")
            if not np.all(np.isfinite(U)):
                raise ValueError("All entries of `factors` must be finite.")
            if cov.shape not in ((k,), (k, d)):
                raise ValueError(f"With `factors`, `covariances` is the diagonal part: shape "
                                 f"({k},) or ({k}, {d}); got shape {cov.shape}.")
            self.factors = np.ascontiguousarray(U)
            self.variances = _nonnegative(np.broadcast_to(cov.reshape(k, -1), (k, d)).copy())
            self.covariance_type = "low-rank"
        elif cov.shape == (k,):
            self.variances = _nonnegative(np.repeat(cov[:, None], d, axis=1))
            self.covariance_type = "isotropic"
        elif cov.shape == (k, d):
            self.variances = _nonnegative(cov.copy())
            self.covariance_type = "diagonal"
        elif cov.shape == (k, d, d):
            asym = np.max(np.abs(cov - np.swapaxes(cov, 1, 2)), axis=(1, 2))
            scale = np.max(np.abs(cov), axis=(1, 2))
            bad = np.flatnonzero(asym > 1e-12 * np.maximum(scale, 1e-300))
            if bad.size:
                raise ValueError(f"`covariances[{bad[0]}]` must be symmetric.")
            evals, evecs = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, 1, 2)))
            tol = 64 * d * np.finfo(float).eps * np.maximum(np.max(np.abs(evals), axis=1), 1e-300)
            bad = np.flatnonzero(np.min(evals, axis=1) < -tol)
            if bad.size:
                raise ValueError(f"`covariances[{bad[0]}]` must be positive semi-definite; its "
                                 f"smallest eigenvalue is {np.min(evals[bad[0]]):.3g}.")
            self.eigenvalues, self.eigenvectors = np.maximum(evals, 0.0), evecs
            self.variances = None
            self.covariance_type = "full"
        else:
            raise ValueError(f"`covariances` must have shape ({k},), ({k}, {d}) or ({k}, {d}, {d}) "
                             f"for {k} components in dimension {d} (or ({k}, {d}) with "
                             f"`factors`); got shape {cov.shape}.")
        for name, v in (("means", mu), ("covariances", np.sqrt(np.abs(cov))),
                        ("factors", self.factors)):
            if v is not None and v.size and np.max(np.abs(v)) > self.MAGNITUDE:
                what = "standard deviations (square roots)" if name == "covariances" else "entries"
                raise ValueError(f"The {what} of `{name}` must not exceed {self.MAGNITUDE:g} in "
                                 f"magnitude (their squares overflow float64); got "
                                 f"{np.max(np.abs(v)):.3g}.  Rescale the data (the score is "
                                 f"equivariant under scaling x, sigma -> c x, c sigma).")
        if weights is None:
            pi = np.full(k, 1.0 / k)
        else:
            pi = _as_float_array(weights, "weights").astype(np.float64)
            if pi.shape != (k,):
                raise ValueError(f"`weights` must have shape ({k},); got shape {pi.shape}.")
            if not np.all(np.isfinite(pi)) or np.any(pi < 0):
                raise ValueError("`weights` must be finite and non-negative.")
            if abs(pi.sum() - 1.0) > 1e-10 * k:
                raise ValueError(f"`weights` must sum to 1; got {pi.sum():.17g}.")
        from ..backend import resolve
        self.backend = resolve(backend, auto=("numba",))
        self.means, self.mixing = mu, pi
        self.n_components, self.dim = k, d
        with np.errstate(divide="ignore"):
            self._logpi = np.log(pi)
        self._table = None
        self._mean_absmax = float(np.max(np.abs(mu), initial=0.0))
        self._mean_norm_max = float(np.sqrt(np.max(np.einsum("kj,kj->k", mu, mu), initial=0.0)))
        self._variance_min = (float(np.min(self.variances, initial=np.inf))
                              if self.variances is not None else 0.0)
        self._variance_max = (float(np.max(self.variances, initial=0.0))
                              if self.variances is not None else 0.0)

    def _component_table(self):
        """The (K, 2 d + 2) table of :mod:`scoredyn.kernels.mixture_query` (isotropic and
        diagonal forms): means, standard deviations, log weights, isotropic flags."""
        if self._table is None:
            k, d = self.variances.shape
            P = np.empty((k, 2 * d + 2))
            P[:, :d] = self.means
            P[:, d:2 * d] = np.sqrt(self.variances)
            P[:, 2 * d] = self._logpi
            P[:, 2 * d + 1] = np.all(self.variances == self.variances[:, :1], axis=1)
            self._table = P
        return self._table

    @property
    def _exact_at_every_sigma(self):
        """Whether every sigma > 0 is served (see Notes)."""
        return (self.covariance_type in ("isotropic", "diagonal")
                and self.backend in ("numba", "cuda"))

    @classmethod
    def from_sklearn(cls, model, **kwargs):
        """The mixture fitted by ``sklearn.mixture.GaussianMixture`` (any covariance type).

        ``"spherical"`` is isotropic, ``"diag"`` diagonal, ``"full"`` full and ``"tied"``
        one full matrix shared by every component.  ``kwargs`` go to the constructor.
        """
        for attr in ("means_", "weights_", "covariances_", "covariance_type"):
            if not hasattr(model, attr):
                raise ValueError(f"`model` must be a fitted sklearn.mixture.GaussianMixture "
                                 f"(it has no `{attr}`; call its fit() first).")
        means = np.asarray(model.means_, dtype=float)
        cov = np.asarray(model.covariances_, dtype=float)
        kind = model.covariance_type
        if kind == "tied":
            cov = np.broadcast_to(cov, (means.shape[0],) + cov.shape).copy()
        elif kind not in ("spherical", "diag", "full"):
            raise ValueError(f"Unknown sklearn covariance_type {kind!r}.")
        w = np.asarray(model.weights_, dtype=float)
        return cls(means, cov, w / w.sum(), **kwargs)

    def __repr__(self):
        rank = f", r={self.factors.shape[2]}" if self.factors is not None else ""
        return f"GaussianMixture(K={self.n_components}, d={self.dim}, {self.covariance_type}{rank})"

    # -- validation ----------------------------------------------------------------------------

    # -- the reduction -------------------------------------------------------------------------

    def _reduce(self, x, sigma, alpha):
        """``(residual (Q, d), lse (Q,))``: ``alpha D - x`` and ``logsumexp_k logit_k``, where
        the logits omit the common ``-(d/2) log(2 pi sigma^2)``."""
        split = self._far_split(x, sigma, alpha, "residual", self._reduce)
        if split is not None:   # beyond what direct differences resolve: relative logits
            return split
        groups = _groups(sigma, alpha)
        if self.covariance_type in ("isotropic", "diagonal") and self.backend != "numpy":
            return self._reduce_kernel(x, sigma, alpha, groups)
        lo, hi = self.SIGMA_RANGE
        if (self.covariance_type == "low-rank" and self.backend != "numpy"
                and all(lo < s < hi for s, _ in groups[1])):
            # the low-rank kernels form sigma^2; elsewhere the stream's ratio forms serve
            pairs = groups[1]
            if len(pairs) <= GROUPED_LOGDET and self._gemm_serves(x, pairs):
                # large d: the three sums over d as matrix products (bounded logit error)
                from .._host.mixture_gemm import mixture_lowrank_gemm
                return self._by_group(
                    x, groups, RESIDUAL, lambda y, s, a, res: mixture_lowrank_gemm(
                        y, self.means, self.variances, self.factors, self._logpi, s, a, res))
            if len(pairs) <= GROUPED_LOGDET and len(pairs) * self.variances.size <= TILED_ENTRIES:
                return self._reduce_lowrank(x, *groups)
        return self._stream(x, sigma, alpha, groups)

    def _gemm_serves(self, x, pairs):
        """Whether the GEMM path takes queries ``x`` at these (sigma, alpha) pairs: above
        ``GEMM_MIN_D`` dimensions, with the expanded squares of queries and means finite."""
        if self.dim <= GEMM_MIN_D or x.size == 0:
            return False
        return (max(np.max(x), -np.min(x)) < 1e100
                and self._mean_absmax * max(a for _, a in pairs) < 1e100)

    def _grouped(self, pairs):
        """Whether the tiled and GEMM kernels of the isotropic and diagonal forms take these
        (sigma, alpha) pairs: few of them, each with ``sigma^2`` normal and ``a^2 v / sigma^2``
        finite, on the CPU."""
        lo, hi = self.SIGMA_RANGE
        vmax = self._variance_max
        return (self.backend == "numba" and len(pairs) <= GROUPED_LOGDET
                and all(lo < s < hi and a * a * vmax / s / s < 1e300 for s, a in pairs))

    @staticmethod
    def _by_group(x, groups, mode, reduce):
        """``(out, lse)`` from ``reduce(y, sigma, alpha, residual) -> (out, lse)`` per
        (sigma, alpha) group; ``out`` is D (``mode`` DENOISE) or the residual ``alpha D - x``."""
        group, pairs = groups
        if len(pairs) == 1:
            return reduce(x, *pairs[0], mode != DENOISE)
        out = np.empty_like(x)
        lse = np.empty(x.shape[0])
        for g, (s, a) in enumerate(pairs):
            rows = np.flatnonzero(group == g)
            out[rows], lse[rows] = reduce(x[rows], s, a, mode != DENOISE)
        return out, lse

    def _far(self, x, sigma, alpha):
        """Rows too far from the components for direct differences to resolve their
        responsibilities (isotropic and diagonal forms, ``sigma^2`` normal).

        Every path forms ``sum_j (y_j - a mu_kj)^2 / c_kj`` (``c = sigma^2 + a^2 v``) from
        differences, within ``gamma_{d+3}`` of itself; far out (``|y| >> |a mu|``) the forms
        of components with (nearly) equal variances differ by ``~2 |y| |a (mu_k - mu_l)| /
        c``, far below that error when ``|y| ~ 1e16 |mu|`` (a point-mass mixture then gave the
        mean of its means, not the nearest one).  The rule of the empirical field
        (:func:`scoredyn._host.reduce.far_rows`) with the smallest ``c``: the bound
        ``gamma_{d+3} (|y| + A)^2 / (2 c_min)`` above ``FAR_LOGIT_TOL`` and ``(|y| - A)^2 >
        16 A (|y| + A)``, ``A = a max_k |mu_k|``; within :data:`FAR_SIGMA` (sigma, |y| and
        ``a^2 v / sigma^2``), where the products of the relative form stay normal numbers."""
        from .._host.reduce import FAR_LOGIT_TOL, _gamma, far_geometry
        if (self.covariance_type not in ("isotropic", "diagonal") or self.n_components < 2
                or x.shape[0] == 0):
            return np.empty(0, np.int64)
        A = alpha * self._mean_norm_max
        ny = np.sqrt(np.einsum("qk,qk->q", x, x))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            cmin = sigma * sigma + alpha * alpha * self._variance_min
            bound = _gamma(self.dim + 3) * (ny + A) ** 2 / (2.0 * cmin)
            far = ((bound > FAR_LOGIT_TOL) & far_geometry(ny, A, (ny - A) ** 2)
                   & (sigma > FAR_SIGMA[0]) & (sigma < FAR_SIGMA[1]) & (ny < FAR_SIGMA[1])
                   & (alpha * alpha * self._variance_max < FAR_SIGMA[1] * sigma * sigma))
        return np.flatnonzero(far)

    def _far_split(self, x, sigma, alpha, what, near):
        """The rows :meth:`_far` names through :meth:`_far_reduce` (``what``), the others
        through ``near(x, sigma, alpha)``, which returns ``(out, lse)`` for "residual" and
        ``out`` otherwise, as this does; None when no row is far."""
        far = self._far(x, sigma, alpha)
        if far.size == 0:
            return None
        keep = np.setdiff1d(np.arange(x.shape[0]), far)
        got = near(x[keep], sigma[keep], alpha[keep])
        far_parts = self._far_reduce(x[far], sigma[far], alpha[far], what)
        parts = []
        for p_near, p_far in zip(got if what == "residual" else (got,), far_parts):
            full = np.empty((x.shape[0],) + p_near.shape[1:])
            full[keep], full[far] = p_near, p_far
            parts.append(full)
        return tuple(parts) if what == "residual" else parts[0]

    def _far_reduce(self, x, sigma, alpha, what):
        """``(out, lse)`` of far rows (:meth:`_far`) from logits relative to component 0.

        ``q_k - q_0 = sum_j y_j^2 (1/c_kj - 1/c_0j) - 2 y_j (m_kj/c_kj - m_0j/c_0j) + (m_kj^2
        / c_kj - m_0j^2 / c_0j)`` with ``m = a mu``, each coefficient formed from the
        differences of the variances and means themselves (``1/c_k - 1/c_0 = a^2 (v_0 - v_k)
        / (c_k c_0)``), so the error scales with the components' separation, not with
        ``|y|^2``.  ``out`` by ``what``: "residual" ``a D - y``, "mean" ``D = sum_k rho_k
        (mu_k sigma^2 / c_k + (a v_k / c_k) y)`` (Tweedie's formula per component, no
        cancellation) or "weights" ``rho``.
        """
        q, d = x.shape
        out = np.empty((q, self.n_components) if what == "weights" else (q, d))
        lse = np.empty(q)
        group, pairs = _groups(sigma, alpha)
        V, mu = self.variances, self.means
        for g, (s, a) in enumerate(pairs):
            rows = np.flatnonzero(group == g)
            y = x[rows]
            s2 = s * s
            c = s2 + (a * a) * V
            dinv = (a * a) * (V[0] - V) / c / c[0]
            dlin = (a * s2 * (mu - mu[0]) + a ** 3 * (mu * V[0] - mu[0] * V)) / c / c[0]
            m = a * mu
            dconst = np.sum(m * m / c, axis=1)
            dconst = dconst - dconst[0]
            dq = (y * y) @ dinv.T - 2.0 * (y @ dlin.T) + dconst
            logit = (self._logpi - 0.5 * _log1p_ratio2(a * np.sqrt(V), s).sum(axis=1)
                     - 0.5 * dq)
            top = np.max(logit, axis=1, keepdims=True)
            e = np.exp(logit - top)
            tot = e.sum(axis=1, keepdims=True)
            rho = e / tot
            u0 = y - m[0]
            lse[rows] = (top[:, 0] + np.log(tot[:, 0])
                         - 0.5 * (u0 * u0) @ (1.0 / c[0]))
            if what == "weights":
                out[rows] = rho
                continue
            D = rho @ (mu * (s2 / c)) + y * (rho @ (a * V / c))
            out[rows] = D if what == "mean" else a * D - y
        return out, lse

    def _reduce_kernel(self, x, sigma, alpha, groups, tiled=True, mode=RESIDUAL):
        """The isotropic and diagonal forms on the kernels: ``(out (Q, d), lse (Q,))``, ``out``
        by ``mode`` (:mod:`scoredyn.kernels.mixture_query`): the residual, the score or the
        posterior mean."""
        from ..coldstart import compiling
        from ..kernels.mixture import mixture_diag, mixture_diag_tiled
        group, pairs = groups
        k, d = self.variances.shape
        x = np.ascontiguousarray(x)
        grouped = tiled and self._grouped(pairs)
        if grouped and mode != SCORE and self._gemm_serves(x, pairs):
            # large d: the quadratic forms through BLAS, with a bounded logit error
            from .._host.mixture_gemm import mixture_gemm
            iso = self.covariance_type == "isotropic"
            return self._by_group(x, groups, mode, lambda y, s, a, res: mixture_gemm(
                y, self.means, self.variances, self._logpi, s, a, iso, res))
        res = np.empty_like(x)
        lse = np.empty(x.shape[0])
        if grouped and mode == RESIDUAL and len(pairs) * k * d <= TILED_ENTRIES:
            # few (sigma, alpha) pairs (a denoiser call), sigma^2 normal: component-major tiles
            AMt = np.empty((len(pairs), d, k))
            Ft = np.empty((len(pairs), d, k))
            base = np.empty((len(pairs), k))
            for g, (s, a) in enumerate(pairs):
                t = (a * a / s / s) * self.variances
                AMt[g] = (a * self.means).T
                Ft[g] = (1.0 / (1.0 + t)).T
                base[g] = self._logpi - 0.5 * np.log1p(t).sum(axis=1)
            inv = np.array([1.0 / (s * s) for s, _ in pairs])
            with compiling("Gaussian mixture", mixture_diag_tiled):
                mixture_diag_tiled(x, group, AMt, Ft, base, inv, res, lse)
            far = np.flatnonzero(lse == -np.inf)
            if far.size == 0:
                return res, lse
            # queries beyond float64's range from every component: the per-query kernel's limit
            sub = self._reduce_kernel(x[far], sigma[far], alpha[far],
                                      _groups(sigma[far], alpha[far]), tiled=False, mode=mode)
            res[far], lse[far] = sub
            return res, lse
        if len(pairs) <= GROUPED_LOGDET:
            P = self._component_table()
            logdet = np.stack([_log_det(P, s, a) for s, a in pairs])
        else:                                    # every query at its own time: in the kernel
            logdet = np.empty((0, self.n_components))
            group = np.full(x.shape[0], -1, np.int64)
        if self.backend == "cuda":
            from .._host.cuda import mixture_reduce
            return mixture_reduce(self._component_table(), x, alpha, sigma, group, logdet, mode)
        with compiling("Gaussian mixture", mixture_diag):
            mixture_diag(x, alpha, sigma, group, self._component_table(), logdet, res, lse,
                         mode)
        return res, lse

    def _reduce_lowrank(self, x, group, pairs):
        """Low-rank components on :func:`scoredyn.kernels.mixture.mixture_lowrank`."""
        from ..coldstart import compiling
        from ..kernels.mixture import mixture_lowrank
        k, d = self.variances.shape
        U = self.factors
        r = U.shape[2]
        G = len(pairs)
        AM, F = np.empty((G, k, d)), np.empty((G, k, d))
        Minv, base = np.empty((G, k, r, r)), np.empty((G, k))
        for g, (s, a) in enumerate(pairs):
            t = (a * a / s / s) * self.variances
            F[g] = 1.0 / (1.0 + t)
            AM[g] = a * self.means
            # M = I + a^2 U^T Delta^{-1} U, Delta^{-1} = f / sigma^2
            M = np.eye(r) + (a * a / s / s) * np.einsum("kjp,kj,kjq->kpq", U, F[g], U)
            L = np.linalg.cholesky(M)
            Linv = np.linalg.inv(L)
            Minv[g] = np.swapaxes(Linv, 1, 2) @ Linv
            base[g] = self._logpi - 0.5 * (np.log1p(t).sum(axis=1)
                                           + 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1))
        inv = np.array([1.0 / (s * s) for s, _ in pairs])
        a2 = np.array([a * a for _, a in pairs])
        res = np.empty_like(x)
        lse = np.empty(x.shape[0])
        with compiling("Gaussian mixture (low rank)", mixture_lowrank):
            mixture_lowrank(np.ascontiguousarray(x), group, AM, F, U, Minv, base, inv, a2,
                            res, lse)
        return res, lse

    def _component(self, k, x, sigma, alpha, groups, power=0, scale=None):
        """``(base (Q,), z (Q,), v (Q, d), g (Q,))`` of one component: its logit is
        ``base - z / 2``.

        ``base = log pi_k - (1/2) log det(I + alpha^2 S_k / sigma^2)``; ``z`` the quadratic
        form ``u^T sigma^2 C_k^{-1} u / sigma^2`` of ``u = scale (x - alpha mu_k)`` (``scale``
        (Q,), default 1: :meth:`_far_limit` scales by powers of two); ``v = -sigma^{2 -
        power} C_k^{-1} (x - alpha mu_k)`` (``power`` 0: the residual ``r_k``; 1: ``r_k /
        sigma``; 2: the component's score), ``C_k = alpha^2 S_k + sigma^2 I``; ``g`` the
        largest whitened coordinate of the unscaled ``u`` (the scale of ``z``).

        Every quantity is formed from ``h_j = hypot(sigma, alpha s_j)`` (``s_j`` the
        standard deviations: the eigenvalues' roots of the full form, the diagonal part's of
        the low-rank form) and ratios ``sigma / h_j`` in (0, 1], never from ``sigma^2``, so
        nothing over- or underflows on the way at any sigma > 0 (``z`` itself may overflow,
        for a query far from the component): ``z = sum_j (w_j / h_j)^2`` (``w = V^T u``; the
        low-rank form subtracts the Woodbury term of ``M = I + Ut^T Ut``, ``Ut = alpha U /
        h``), the log determinant ``sum_j log1p((alpha s_j / sigma)^2)`` (+ ``log det M``),
        and ``sigma^{2-p} C^{-1} u`` carries the factor ``(sigma / h)^{2-p} / h^p``.
        ``groups`` is :func:`_groups` of (sigma, alpha).
        """
        a = alpha[:, None]
        u = x - a * self.means[k]
        sig = sigma[:, None]
        if self.covariance_type == "full":
            V = self.eigenvectors[k]
            asd = a * np.sqrt(self.eigenvalues[k])
            h = _hypot(sig, asd)
            w = u @ V
            z, g = _form(w / h, scale)
            return (self._logpi[k] - 0.5 * _log1p_ratio2(asd, sig).sum(axis=1), z,
                    -_rotate_back(_scaled_coordinates(w, sig, h, power), V), g)
        sd = np.sqrt(self.variances[k])
        group, pairs = groups
        if self.factors is None and len(pairs) > GROUPED_LOGDET:
            # every query at its own (sigma, alpha): (Q, d) factors
            asd = a * sd
            h = _hypot(sig, asd)
            z, g = _form(u / h, scale)
            return (self._logpi[k] - 0.5 * _log1p_ratio2(asd, sig).sum(axis=1), z,
                    -_scaled_coordinates(u, sig, h, power), g)
        if self.factors is None:
            # a few (sigma, alpha) pairs: (d,) factors per pair
            base, z = np.empty(x.shape[0]), np.empty(x.shape[0])
            gmax = None if scale is None else np.empty(x.shape[0])
            v = np.empty_like(x)
            for gi, (s, a_g) in enumerate(pairs):
                rows = slice(None) if len(pairs) == 1 else group == gi
                h = _hypot(s, a_g * sd)
                ug = u[rows]
                z[rows], g = _form(ug / h, None if scale is None else scale[rows])
                base[rows] = self._logpi[k] - 0.5 * _log1p_ratio2(a_g * sd, s).sum()
                v[rows] = -_scaled_coordinates(ug, s, h, power)
                if gmax is not None:
                    gmax[rows] = g
            return base, z, v, gmax
        U = self.factors[k]
        base, z, gmax = (np.empty(x.shape[0]) for _ in range(3))
        v = np.empty_like(x)
        for gi, (s, a_g) in enumerate(pairs):
            rows = slice(None) if len(pairs) == 1 else group == gi
            h = _hypot(s, a_g * sd)                                   # (d,)
            Ut = (a_g * U) / h[:, None]                                 # (d, r)
            with np.errstate(over="ignore"):
                M = np.eye(U.shape[1]) + Ut.T @ Ut
            if not np.all(np.isfinite(M)):
                raise ValueError(
                    f"`sigma` = {s:g}: the low-rank factors of component {k} reach a direction "
                    f"of zero diagonal variance, where the Woodbury form needs sigma^2 as a "
                    f"normal float64 (sigma > 1e-150); give a larger sigma or a positive "
                    f"diagonal part.")
            L = np.linalg.cholesky(M)
            gq = u[rows] / h
            tq = gq @ Ut                                                # (Q_g, r)
            sol = np.linalg.solve(L.T, np.linalg.solve(L, tq.T)).T
            cg = 1.0 if scale is None else scale[rows, None]
            with np.errstate(over="ignore"):
                z[rows] = np.maximum(np.sum((cg * gq) ** 2, axis=1)
                                     - np.sum((cg * tq) * (cg * sol), axis=1), 0.0)
            base[rows] = self._logpi[k] - 0.5 * (_log1p_ratio2(a_g * sd, s).sum()
                                                  + 2.0 * np.sum(np.log(np.diag(L))))
            # sigma^{2-p} C^{-1} u = (sigma / h)^{2-p} / h^p (u - alpha U M^{-1} Ut^T u / h)
            v[rows] = -_scaled_coordinates(u[rows] - a_g * (sol @ U.T), s, h, power)
            gmax[rows] = np.max(np.abs(gq), axis=1, initial=0.0)
        return base, z, v, None if scale is None else gmax

    def _stream(self, x, sigma, alpha, groups, power=0):
        """``(v (Q, d), lse (Q,))`` over the components in numpy (:meth:`_component`), with
        the exact limit (:meth:`_far_limit`) where every logit leaves the float64 range."""
        state = _Softmax(x.shape, guard=power > 0)
        for k in range(self.n_components):
            if self._logpi[k] > -np.inf:
                base, z, v, _ = self._component(k, x, sigma, alpha, groups, power)
                state.add(base - 0.5 * z, v)
        with np.errstate(invalid="ignore", divide="ignore"):
            out, lse = state.result()
        dead = np.flatnonzero(state.l == 0.0)
        if dead.size:
            w = self._far_limit(x[dead], sigma[dead], alpha[dead])
            out[dead] = 0.0
            for k, wk in w.items():
                v = self._component(k, x[dead], sigma[dead], alpha[dead],
                                    _groups(sigma[dead], alpha[dead]), power)[2]
                with np.errstate(invalid="ignore"):
                    out[dead] += np.where(wk[:, None] > 0.0, wk[:, None] * v, 0.0)
            lse[dead] = -np.inf
        return out, lse

    def _far_limit(self, x, sigma, alpha):
        """The responsibilities ``{k: (Q,)}`` (non-zero ones) of queries at which every
        component's logit overflowed: a query far from every component, or sigma so small
        that directions of zero variance dominate.

        The logits are ``base_k - z_k / 2`` with ``z_k`` beyond the float64 range and
        ``base_k`` negligible beside it, so the weight goes to the smallest ``z_k``:
        compared after scaling ``u`` by a power of two per query (``scale * g_max`` in
        [0.5, 1): exact), split among exact ties by ``base_k``.  The isotropic and diagonal
        kernels take the same limit (the nearest component in the covariance metric).
        """
        groups = _groups(sigma, alpha)
        live = [k for k in range(self.n_components) if self._logpi[k] > -np.inf]
        one = np.ones(x.shape[0])
        gmax = np.max(np.stack([self._component(k, x, sigma, alpha, groups, 0, one)[3]
                                for k in live]), axis=0)
        scale = np.ldexp(1.0, -np.frexp(np.where(gmax > 0.0, gmax, 1.0))[1])
        parts = {k: self._component(k, x, sigma, alpha, groups, 0, scale)[:2] for k in live}
        zmin = np.min(np.stack([parts[k][1] for k in live]), axis=0)
        top = np.max(np.stack([np.where(parts[k][1] == zmin, parts[k][0], -np.inf)
                               for k in live]), axis=0)
        w = {k: np.where(parts[k][1] == zmin, np.exp(parts[k][0] - top), 0.0) for k in live}
        total = sum(w.values())
        return {k: wk / total for k, wk in w.items() if np.any(wk > 0.0)}

    # -- the field -----------------------------------------------------------------------------

    def residual(self, x, sigma, alpha, label=None):
        if label is not None:
            raise ValueError("`label` is not supported by GaussianMixture.")
        return self._reduce(x, sigma, alpha)[0], None

    def _denoised(self, x, sigma, alpha, label):
        if label is not None:
            raise ValueError("`label` is not supported by GaussianMixture.")
        split = self._far_split(x, sigma, alpha, "mean",
                                lambda *args: self._denoised(*args, None))
        if split is not None:           # D from relative logits, not (x + res) / alpha
            return split
        if self._exact_at_every_sigma:
            groups = _groups(sigma, alpha)
            if (np.min(alpha, initial=np.inf) < DENOISE_DIRECT_BELOW
                    or (self._grouped(groups[1]) and self._gemm_serves(x, groups[1]))):
                # the kernel sums the posterior mean itself: (x + res) / alpha would cancel
                # at small alpha, and the GEMM path forms D first
                return self._reduce_kernel(x, sigma, alpha, groups, mode=DENOISE)[0]
        return super()._denoised(x, sigma, alpha, label)

    def _residual_over_sigma(self, x, sigma, alpha, label, power):
        if label is not None:
            raise ValueError("`label` is not supported by GaussianMixture.")
        lo, hi = self.SIGMA_RANGE
        if not self._exact_at_every_sigma and np.any((sigma <= lo) | (sigma >= hi)):
            # sigma^{2 - power} C^{-1} u straight from the stream's ratio forms: dividing the
            # residual by sigma would lose it where it underflows
            return self._stream(x, sigma, alpha, _groups(sigma, alpha), power)[0]
        if not (self._exact_at_every_sigma and np.any(sigma <= lo)):
            return super()._residual_over_sigma(x, sigma, alpha, None, power)
        # the residual sigma^2 grad log p underflows where the score does not: the kernel sums
        # the score itself
        score = self._reduce_kernel(x, sigma, alpha, _groups(sigma, alpha), mode=SCORE)[0]
        if power == 2:
            return score
        with np.errstate(under="ignore", over="ignore"):
            out = sigma[:, None] * score
        bad = np.flatnonzero(~np.all(np.isfinite(out), axis=1))
        if bad.size:             # the score overflowed (zero variances): residual / sigma there
            via_res = super()._residual_over_sigma(x[bad], sigma[bad], alpha[bad], None, 1)
            out[bad] = np.where(np.isfinite(out[bad]), out[bad], via_res)
        return out

    def log_density(self, x, sigma, alpha=1.0):
        """Normalised ``log p_t(x)``, shape (Q,)."""
        x64, sigma, alpha, _ = self._prepare(x, sigma, alpha)
        lse = self._reduce(x64, sigma, alpha)[1]
        return lse - 0.5 * self.dim * (np.log(2.0 * np.pi) + 2.0 * np.log(sigma))

    def weights(self, x, sigma, alpha=1.0):
        """Responsibilities ``rho_k(x)`` of the components at time t, shape (Q, K) (dense)."""
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        return self._responsibilities(x64, sigma, alpha, _groups(sigma, alpha)).astype(dt)

    def _responsibilities(self, x, sigma, alpha, groups):
        split = self._far_split(x, sigma, alpha, "weights", lambda y, s, a: (
            self._responsibilities(y, s, a, _groups(s, a))))
        if split is not None:
            return split
        parts = [self._component(k, x, sigma, alpha, groups)
                 for k in range(self.n_components)]
        logits = np.stack([base - 0.5 * z for base, z, _, _ in parts], axis=1)
        m = np.max(logits, axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            e = np.exp(logits - m)
            rho = e / e.sum(axis=1, keepdims=True)
        dead = np.flatnonzero(m[:, 0] == -np.inf)
        if dead.size:                 # every logit overflowed: the limit (_far_limit)
            rho[dead] = 0.0
            for k, wk in self._far_limit(x[dead], sigma[dead], alpha[dead]).items():
                rho[dead, k] = wk
        # rows whose quadratic forms z are so large that their rounding (gamma_{d+3} z)
        # exceeds FAR_LOGIT_TOL in a logit: beyond _far's range (and for the full and
        # low-rank forms, which it does not serve) the differences between components were
        # lost (two unit components at 0 and 3 weighed 1/2 each at x = 1e60)
        # (within FAR_SIGMA, where the matrices sigma^2 C_k^{-1} the relative form uses are
        # normal numbers; outside it the ratio forms of _component stand)
        from .._host.reduce import FAR_LOGIT_TOL, _gamma
        zmax = np.max(np.stack([z for _, z, _, _ in parts], axis=1), axis=1)
        with np.errstate(over="ignore"):
            coarse = np.flatnonzero(
                (_gamma(self.dim + 3) * zmax > FAR_LOGIT_TOL) & np.isfinite(zmax)
                & (self.n_components > 1) & (sigma > FAR_SIGMA[0]) & (sigma < FAR_SIGMA[1])
                & (alpha * alpha * self._largest_variance < FAR_SIGMA[1] * sigma * sigma))
        if coarse.size:
            rho[coarse] = self._relative_responsibilities(
                x[coarse], sigma[coarse], alpha[coarse],
                np.stack([base for base, _, _, _ in parts], axis=1)[coarse],
                np.argmax(logits[coarse], axis=1), rho[coarse])
        return rho

    @property
    def _largest_variance(self):
        """An upper bound on every component's variance along any direction."""
        if self.covariance_type == "full":
            return float(np.max(self.eigenvalues, initial=0.0))
        v = self._variance_max
        if self.factors is not None:
            v += float(np.max(np.einsum("kjr,kjr->k", self.factors, self.factors), initial=0.0))
        return v

    def _about(self, m, x, sigma, alpha):
        """The frame of component ``m`` (Q,) per query, in which :meth:`jacobian` and
        :meth:`_relative_responsibilities` difference the components: ``(S, u_m, S_m)``,
        ``S`` (K, Q, d, d) every ``sigma^2 C_k^{-1}`` (:meth:`_sigma2_precision`), ``u_m =
        x - alpha mu_m`` (Q, d) and ``S_m`` (Q, d, d)."""
        s2p = np.stack([self._sigma2_precision(k, sigma, alpha)
                        for k in range(self.n_components)])
        return s2p, x - alpha[:, None] * self.means[m], s2p[m, np.arange(x.shape[0])]

    def _relative_responsibilities(self, x, sigma, alpha, base, m, rho):
        """Responsibilities from logits relative to component ``m`` (per row), rows whose
        quadratic forms are too large for their differences to survive rounding.

        With ``S_k = sigma^2 C_k^{-1}`` (:meth:`_sigma2_precision`), ``u_m = x - alpha mu_m``
        and ``delta_k = alpha (mu_m - mu_k)`` (so ``u_k = u_m + delta_k``),
        ``sigma^2 (z_k - z_m) = u_m^T (S_k - S_m) u_m + 2 delta_k^T S_k u_m + delta_k^T S_k
        delta_k``: each term is formed directly, exactly 0 where component k has m's
        covariance, so the error scales with the components' differences, not with
        ``|u|^2``.  A row whose relative logits do not come out finite keeps ``rho``."""
        q = x.shape[0]
        rows = np.arange(q)
        s2p, u_m, s2p_m = self._about(m, x, sigma, alpha)
        rel = np.empty((q, self.n_components))
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            for k in range(self.n_components):
                delta = alpha[:, None] * (self.means[m] - self.means[k])
                Su = np.einsum("qij,qj->qi", s2p[k], u_m)
                dz = (np.einsum("qi,qij,qj->q", u_m, s2p[k] - s2p_m, u_m)
                      + 2.0 * np.einsum("qi,qi->q", delta, Su)
                      + np.einsum("qi,qij,qj->q", delta, s2p[k], delta))
                rel[:, k] = base[:, k] - base[rows, m] - 0.5 * (dz / sigma) / sigma
            top = np.max(rel, axis=1, keepdims=True)
            e = np.exp(rel - top)
            out = e / e.sum(axis=1, keepdims=True)
        good = np.all(np.isfinite(out), axis=1)
        return np.where(good[:, None], out, rho)

    def jacobian(self, x, sigma, alpha=1.0):
        """Jacobian of the denoiser ``(x + sigma^2 grad log p_t) / alpha``, shape (Q, d, d)
        (small d: O(Q d^2) memory).

        ``(I + sigma^2 H) / alpha`` with the Hessian ``H = sum_k rho_k (g_k g_k^T - P_k) -
        g g^T``, ``g_k = -P_k u_k``, ``P_k = C_k^{-1}`` (``sigma^2 P_k`` formed from the
        factors in (0, 1] as above).
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        q, d = x64.shape
        rho = self._responsibilities(x64, sigma, alpha, _groups(sigma, alpha))     # (Q, K)
        m = np.argmax(rho, axis=1)
        s2p, u_m, s2p_m = self._about(m, x64, sigma, alpha)                 # sigma^2 P_k, ...
        J = np.eye(d) - np.einsum("qk,kqij->qij", rho, s2p)
        # sigma^2 H adds the covariance, under rho, of sigma g_k = -sigma P_k u_k.  Formed
        # as sum_k rho_k r_k r_k^T - rbar rbar^T, its terms grow like (|x| / sigma)^2: past
        # |x| / sigma ~ 1e8 they swamped I - sigma^2 P (the Jacobian of a far query came out
        # 0 instead of 1/2), past ~1e154 they overflowed.  Covariance is shift-invariant:
        # about the most responsible component m, with u_m = x - alpha mu_m,
        #   Delta_k = sigma (g_k - g_m)
        #           = -[(s2p_k - s2p_m) u_m + alpha s2p_k (mu_m - mu_k)] / sigma,
        # exactly 0 for a component equal to m and moderate wherever rho_k is not 0 (far out
        # only components whose precisions agree along x keep any weight).
        drift = np.zeros((q, d))                    # sum_k rho_k Delta_k = rbar - r_m
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(self.n_components):
                live = rho[:, k] > 0
                if not np.any(live):
                    continue
                dmu = alpha[live, None] * (self.means[m[live]] - self.means[k])
                delta = np.zeros((q, d))
                delta[live] = -(np.einsum("qij,qj->qi", s2p[k][live] - s2p_m[live], u_m[live])
                                + np.einsum("qij,qj->qi", s2p[k][live], dmu)) / sigma[live, None]
                w = np.sqrt(rho[:, k])[:, None] * delta
                J += w[:, :, None] * w[:, None, :]
                drift += rho[:, k, None] * delta
            J -= drift[:, :, None] * drift[:, None, :]
        bad = ~np.all(np.isfinite(J), axis=(1, 2))
        if np.any(bad):
            # a component with weight left although its g differs from m's beyond float64
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"jacobian: {int(bad.sum())} of {q} queries are too far from the components "
                f"for the covariance of sigma g_k (~ |x| / sigma) to stay in float64's range "
                f"(query {i}: largest coordinate {np.max(np.abs(x64[i])):.3g}, sigma = "
                f"{sigma[i]:.3g}); not supported.")
        return (J / alpha[:, None, None]).astype(dt)

    def _sigma2_precision(self, k, sigma, alpha):
        """``sigma^2 C_k^{-1}``, shape (Q, d, d), from the ratios ``sigma / h`` of
        :meth:`_component` (no ``sigma^2`` formed)."""
        d = self.dim
        sig, a = sigma[:, None], alpha[:, None]
        if self.covariance_type == "full":
            V = self.eigenvectors[k]
            f = (sig / _hypot(sig, a * np.sqrt(self.eigenvalues[k]))) ** 2
            return np.einsum("ij,qj,kj->qik", V, f, V)
        h = _hypot(sig, a * np.sqrt(self.variances[k]))                # (Q, d)
        f = sig / h
        P = (f * f)[:, :, None] * np.eye(d)
        if self.factors is not None:
            # sigma^2 C^{-1} = F^2 - (F Ut) M^{-1} (F Ut)^T, Ut = alpha U / h, F = sigma / h
            Ut = a[:, :, None] * self.factors[k][None] / h[:, :, None]   # (Q, d, r)
            M = np.eye(Ut.shape[2])[None] + np.einsum("qjp,qjr->qpr", Ut, Ut)
            FU = f[:, :, None] * Ut
            P -= np.einsum("qjp,qpr,qir->qji", FU, np.linalg.inv(M), FU)
        return P

    def sample(self, n, rng=None):
        """Draw ``n`` samples of ``p_0``, shape (n, d).

        Parameters
        ----------
        n : int
            Number of samples, ``n >= 0``.
        rng : None, int or numpy.random.Generator
            Passed to :func:`numpy.random.default_rng`.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"`n` must be a non-negative integer; got {n!r}.")
        rng = as_rng(rng)
        comp = rng.choice(self.n_components, size=n, p=self.mixing)
        z = rng.standard_normal((n, self.dim))
        if self.covariance_type == "full":
            z = z * np.sqrt(self.eigenvalues[comp])
            out = self.means[comp] + np.einsum("nij,nj->ni", self.eigenvectors[comp], z)
        else:
            out = self.means[comp] + z * np.sqrt(self.variances[comp])
            if self.factors is not None:
                zr = rng.standard_normal((n, self.factors.shape[2]))
                out += np.einsum("nij,nj->ni", self.factors[comp], zr)
        return out.astype(self._dtype if self._dtype == np.float32 else np.float64)


def _nonnegative(v):
    if np.any(v < 0):
        k = int(np.flatnonzero(np.any(v < 0, axis=1))[0])
        raise ValueError(f"`covariances[{k}]` must be positive semi-definite (non-negative "
                         f"variances); got {v[k][v[k] < 0][0]:.3g}.")
    return np.ascontiguousarray(v)


def _log1p_ratio2(asd, sigma):
    """``log1p((asd / sigma)^2)`` elementwise at every sigma > 0: ``log1p`` of the squared
    ratio, or twice the log of the ratio where its square overflows."""
    with np.errstate(over="ignore", divide="ignore"):
        r = asd / sigma
        return np.where(r < 1e150, np.log1p(np.minimum(r, 1e150) ** 2),
                        2.0 * np.where(np.isfinite(r), np.log(np.where(r > 0, r, 1.0)),
                                       np.log(np.where(asd > 0, asd, 1.0)) - np.log(sigma)))


def _hypot(sigma, asd):
    """``sqrt(sigma^2 + asd^2)`` elementwise: from the squares where they are normal numbers
    (2.5x faster than ``np.hypot``), else ``np.hypot`` (no over- or underflow)."""
    sigma, asd = np.asarray(sigma), np.asarray(asd)
    if (1e-150 < np.min(sigma, initial=np.inf) and np.max(sigma, initial=0.0) < 1e150
            and np.max(asd, initial=0.0) < 1e150):
        with np.errstate(under="ignore"):
            return np.sqrt(sigma * sigma + asd * asd)
    return np.hypot(sigma, asd)


def _form(g, scale):
    """``(z, g_max)``: the quadratic form ``sum_j (scale g_j)^2`` per row (without ``scale``:
    of ``g`` itself, and ``g_max`` None) and, with ``scale``, the largest ``|g_j|``."""
    with np.errstate(over="ignore"):
        if scale is None:
            return np.einsum("ij,ij->i", g, g), None
        return (np.sum((scale[:, None] * g) ** 2, axis=1),
                np.max(np.abs(g), axis=1, initial=0.0))


def _scaled_coordinates(w, sigma, h, power):
    """``w (sigma / h)^{2 - power} / h^power`` (``h = hypot(sigma, alpha s) >= sigma``: the
    factor of ``sigma^{2 - power} C^{-1}`` along a direction of ``C``'s eigenbasis), dividing
    ``w`` itself by ``h`` so that a zero coordinate stays 0 where the factor overflows (the
    score along a direction of zero variance at tiny sigma is 0 on the component's support,
    infinite only off it)."""
    f = sigma / h
    if power == 0:
        return (w * f) * f
    with np.errstate(over="ignore"):
        return (w * f) / h if power == 1 else (w / h) / h


def _rotate_back(coef, V):
    """``coef @ V.T`` with ``0 * inf = 0``: a coordinate that overflowed contributes only
    along the eigenvector entries that are not zero."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = coef @ V.T
        bad = np.flatnonzero(~np.all(np.isfinite(coef), axis=1))
        if bad.size:
            terms = coef[bad][:, None, :] * V[None]
            out[bad] = np.sum(np.where(V[None] == 0.0, 0.0, terms), axis=2)
    return out


def _log_det(P, sigma, alpha):
    """``sum_j log1p(alpha^2 v_kj / sigma^2)`` per component of the table ``P`` (K,), every
    sigma > 0: ``log1p`` of the squared ratio, or twice the log of the ratio where its
    square overflows (:func:`scoredyn.kernels.mixture_query.log_det_term`)."""
    d = (P.shape[1] - 2) // 2
    return _log1p_ratio2(alpha * P[:, d:2 * d], sigma).sum(axis=1)


def _groups(sigma, alpha):
    """``(group (Q,), pairs)``: each query's index into the distinct (sigma, alpha) pairs."""
    sigma, alpha = np.ravel(sigma), np.ravel(alpha)
    if sigma.size == 0:
        return np.zeros(0, np.int64), []
    if np.all(sigma == sigma[0]) and np.all(alpha == alpha[0]):   # one level: the sampler's case
        return np.zeros(sigma.size, np.int64), [(float(sigma[0]), float(alpha[0]))]
    # a sort on two float keys (np.unique(axis=0) sorts a void view, ~100x slower)
    order = np.lexsort((alpha, sigma))
    s, a = sigma[order], alpha[order]
    new = np.ones(s.size, bool)
    new[1:] = (s[1:] != s[:-1]) | (a[1:] != a[:-1])
    group = np.empty(s.size, np.int64)
    group[order] = np.cumsum(new) - 1
    return group, list(zip(s[new].tolist(), a[new].tolist()))


class _Softmax:
    """Online softmax over components: running max logit, sum of exponentials, and the
    responsibility-weighted residual (the rescaling of the kernels, in numpy)."""

    def __init__(self, shape, guard=False):
        #: guard: ``r`` may hold infinities (scores along zero variances at tiny sigma)
        self.guard = guard
        self.m = np.full(shape[0], -np.inf)
        self.l = np.zeros(shape[0])
        self.acc = np.zeros(shape)

    def add(self, logit, r):
        live = logit > -np.inf                    # a logit beyond float64: weight 0
        m_new = np.where(live, np.maximum(self.m, logit), self.m)
        with np.errstate(invalid="ignore"):
            scale = np.where(self.m == m_new, 1.0, np.exp(self.m - m_new))
            w = np.where(live, np.exp(logit - m_new), 0.0)
        self.l = self.l * scale + w
        if self.guard:
            # a component of weight 0 adds nothing, even where its r is infinite (its score
            # along a zero variance at tiny sigma)
            with np.errstate(invalid="ignore"):
                contrib = np.where(w[:, None] > 0.0, w[:, None] * r, 0.0)
        else:
            contrib = w[:, None] * r
        self.acc = self.acc * scale[:, None] + contrib
        self.m = m_new

    def result(self):
        return self.acc / self.l[:, None], self.m + np.log(self.l)
