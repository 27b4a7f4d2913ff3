"""The exact score of the empirical distribution smeared by Gaussian noise.

For ``p_0 = (1/N) sum_i delta_{x_i}`` and ``x_t = alpha x_0 + sigma eps``,
``p_t = (1/N) sum_i N(alpha x_i, sigma^2 I)`` and (Baptista et al. 2025, arXiv:2501.15785,
"Optimal empirical score"; Gu et al., TMLR 2025, arXiv:2310.02664, eq. (2)):

* ``w_i(x) = softmax_i(l_i)``, ``l_i = -|x - alpha x_i|^2 / (2 sigma^2)``
* ``D(x) = sum_i w_i x_i``, score ``(alpha D - x) / sigma^2``
* ``log p_t(x) = logsumexp_i(l_i) - log N - (d/2) log(2 pi sigma^2)``
* ``grad D = (alpha / sigma^2) Cov_w(x)``.
"""
import numpy as np

from .._host.reduce import (PreparedData, far_rows, posterior_reduce, posterior_reduce_numpy,
                             relative_reduction, relative_weights)
from .._validation import as_data, length_scale
from ..backend import resolve
from .base import ScoreField, array_io
from ..kernels.moments import dense_weights, weighted_covariance
from .regularization import Regularization


class EmpiricalScore(ScoreField):
    """Exact score field of N training points, optionally regularised or class-conditional.

    Parameters
    ----------
    data : (N, d) array_like
        Training points ``x_1..x_N`` (finite; duplicates allowed: a duplicated
        point simply carries twice the weight).
    regularization : Tikhonov, EmpiricalBayes or None
        Exact regularised optimum (see :mod:`scoredyn.fields.regularization`).
    labels : (N,) array_like, optional
        Class labels; methods then accept ``label=`` and use only that class's
        points (Gu et al., TMLR 2025, arXiv:2310.02664, Appendix A.3: the
        class-conditional optimum).
    method : {"auto", "direct", "gemm"}
        CPU kernels: how squared distances are formed: direct differences
        (``d <= 24`` under "auto") or BLAS with exact recomputation where
        rounding matters.  Both are exact in the sense of the "Numerical traps" of
        :mod:`scoredyn.kernels`; the choice is speed only.  "direct" gives the same
        bits for any thread count (each query's pass runs in one fixed order);
        "gemm" splits the data over threads and BLAS blocks its products by the
        thread count, so its results may differ in the last bits between thread
        settings (``NUMBA_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``), within the
        documented error bound either way.  (The GPU forms every distance by direct differences.)
    backend : {"auto", "numba", "cuda", "numpy"} or None
        Where the O(Q N d) reduction runs (:mod:`scoredyn.backend`; None reads
        ``SCOREDYN_BACKEND``, default "auto": the GPU when usable).  cupy
        arrays in give cupy arrays out.
    gpu_dtype : {"float64", "float32"}
        Arithmetic of the GPU's distance and accumulation loops.  "float32"
        works in coordinates centred on the data mean and keeps the softmax
        bookkeeping in float64; its logits err by ``~ d 6e-8 |y - a x|^2 /
        (2 sigma^2)``, so results that resolve Voronoi boundaries, log-densities
        at small sigma or collapse rates need "float64".

    Notes
    -----
    Memory is O((Q + N) d): the data are streamed in tiles with an online
    softmax.  Valid for every ``sigma`` in float64's range: weights sum to 1,
    exact ties split evenly, and nothing overflows (a score is infinite only
    when its true value exceeds float64's range).
    """

    def __init__(self, data, *, regularization=None, labels=None, method="auto", backend=None,
                 gpu_dtype="float64"):
        X, self._dtype = as_data(data)
        self.data = X
        self.n, self.dim = X.shape
        if regularization is not None and not isinstance(regularization, Regularization):
            raise TypeError("`regularization` must be None, Tikhonov(c) or EmpiricalBayes(tau); "
                            f"got {type(regularization).__name__}.")
        self.regularization = regularization
        if method not in ("auto", "direct", "gemm"):
            raise ValueError(f"`method` must be one of 'auto', 'direct', 'gemm'; got {method!r}.")
        self.method = method
        self.backend = resolve(backend)
        if gpu_dtype not in ("float64", "float32"):
            raise ValueError(f"`gpu_dtype` must be 'float64' or 'float32'; got {gpu_dtype!r}.")
        self.gpu_dtype = gpu_dtype
        self._device = {}
        self._prep = {None: PreparedData(X)}
        self._rescaled = {}
        self.labels = None
        if labels is not None:
            labels = np.asarray(labels)
            if labels.dtype == object or labels.dtype.kind not in "biufUS":
                raise TypeError(f"`labels` must be an array of integers, floats or strings; got "
                                f"dtype {labels.dtype}.")
            if labels.dtype.kind in "fc" and not np.all(np.isfinite(labels)):
                raise ValueError("`labels` must be finite (NaN is not a class: NaN != NaN).")
            if labels.shape != (self.n,):
                raise ValueError(f"`labels` must have shape ({self.n},), one per data point; "
                                 f"got shape {labels.shape}.")
            self.labels = labels
            for lab in np.unique(labels):
                self._prep[lab.item()] = PreparedData(np.ascontiguousarray(X[labels == lab]))

    @property
    def classes(self):
        """The distinct labels (empty tuple if the field is unconditional)."""
        return tuple(k for k in self._prep if k is not None)

    def _prepared(self, label):
        if label is None:
            return self._prep[None]
        if self.labels is None:
            raise ValueError("`label` was given but the field has no `labels`.")
        key = label.item() if isinstance(label, np.generic) else label
        try:
            return self._prep[key]
        except (KeyError, TypeError):
            raise ValueError(f"`label` {label!r} is not the label of any data point; "
                             f"labels are {list(self.classes)}.") from None

    def _reduce(self, x64, sigma, alpha, label, want_top2=False):
        """``(prep, red)``: the data and the reduction at the working scale.

        Outside the ordinary range of magnitudes the data, ``x`` and ``sigma`` are scaled
        by a power of two (:func:`length_scale`); ``red.scale`` is that factor and
        ``red.x``, ``red.sigma`` the scaled queries, so lengths from ``red`` are divided by
        it (``red.mean / red.scale`` is D).
        """
        prep = self._prepared(label)
        c = length_scale(prep.magnitude, x64)
        if c != 1.0:
            key = (label.item() if isinstance(label, np.generic) else label, c)
            if key not in self._rescaled:
                self._rescaled[key] = PreparedData(prep.X * c)
            prep, x64, sigma = self._rescaled[key], x64 * c, sigma * c
        prep, red = self._reduce_at(prep, x64, sigma, alpha, want_top2)
        far = far_rows(prep, x64, alpha, red.inv2s2, red.dmin)
        if far.size:            # beyond what direct differences resolve: relative distances
            relative_reduction(prep, x64, alpha, red, far)
        red.scale, red.x, red.sigma, red.far = c, x64, sigma, far
        return prep, red

    def _reduce_at(self, prep, x64, sigma, alpha, want_top2):
        if self.backend == "cuda":
            from .._host import cuda as _cuda
            dev = self._device.get(id(prep))
            if dev is None:
                dev = self._device[id(prep)] = _cuda.DeviceData(prep.X)
            return prep, _cuda.posterior_reduce(dev, x64, alpha, sigma, want_top2=want_top2,
                                                dtype=self.gpu_dtype)
        if self.backend == "numpy":
            return prep, posterior_reduce_numpy(prep, x64, alpha, sigma, want_top2=want_top2)
        return prep, posterior_reduce(prep, x64, alpha, sigma, want_top2=want_top2,
                                      method=self.method)

    def residual(self, x, sigma, alpha, label=None):
        return self._residual_reduction(x, sigma, alpha, label)[:2]

    def _residual_reduction(self, x, sigma, alpha, label=None):
        """``(residual, log-normaliser, reduction)``: :meth:`residual` and the
        :class:`~scoredyn._host.reduce.Reduction` it came from (the batched engine reads its
        sums of relative weights)."""
        _, red = self._reduce(x, sigma, alpha, label)
        return (alpha[:, None] * red.mean - red.x) / red.scale, red.log_normalizer(), red

    def _denoised(self, x, sigma, alpha, label):
        if self.regularization is None:
            red = self._reduce(x, sigma, alpha, label)[1]
            return red.mean / red.scale      # D itself, not x + (D - x)
        return super()._denoised(x, sigma, alpha, label)

    @array_io
    def log_normalizer(self, x, sigma, alpha=1.0, *, label=None):
        """``logsumexp_i(-|x - alpha x_i|^2 / (2 sigma^2))``, shape (Q,).

        The unnormalised quantity the Empirical-Bayes regularization thresholds.
        """
        x64, sigma, alpha, _ = self._prepare(x, sigma, alpha)
        return self._reduce(x64, sigma, alpha, label)[1].log_normalizer()

    @array_io
    def log_density(self, x, sigma, alpha=1.0, *, label=None):
        """Normalised ``log p_t(x)`` of ``(1/N) sum_i N(alpha x_i, sigma^2 I)``, shape (Q,).

        ``logsumexp_i(l_i) - log N - (d/2) log(2 pi sigma^2)``; ``-inf`` where that is
        below the float64 range (``|x - alpha x_i|^2 / (2 sigma^2)`` above ~1.8e308 for
        every i).  Defined only
        without regularization: a regularised score is not the score of a
        density with a closed-form normaliser (Tikhonov's is the gradient of
        ``sigma^2 / (sigma^2 + c) log p_t``).
        """
        if self.regularization is not None:
            raise ValueError("`log_density` is defined only for regularization=None; the "
                             f"{type(self.regularization).__name__} score has no closed-form "
                             "normalised density.")
        x64, sigma, alpha, _ = self._prepare(x, sigma, alpha)
        prep, red = self._reduce(x64, sigma, alpha, label)
        return (red.log_normalizer() - np.log(prep.n)
                - 0.5 * self.dim * (np.log(2.0 * np.pi) + 2.0 * np.log(sigma)))

    @array_io
    def weights(self, x, sigma, alpha=1.0, *, label=None):
        """Dense softmax weights ``w_i(x)``, shape (Q, N_label) — for small problems.

        Columns follow the order of the (class's) data points.
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        prep, red = self._reduce(x64, sigma, alpha, label)
        W = np.empty((x64.shape[0], prep.n))
        dense_weights(prep.XT, red.x, alpha, red.inv2s2, W)
        if red.far.size:
            relative_weights(prep, red.x, alpha, red.inv2s2, red.far, W)
        return W.astype(dt, copy=False)

    @array_io
    def nearest(self, x, sigma=1.0, alpha=1.0, *, label=None):
        """Indices and distances of the two sites nearest to ``x / alpha``.

        Returns
        -------
        i1, i2 : (Q,) int64
            Nearest and second-nearest data index (``i2 = -1`` if N = 1);
            ties go to the lower index.
        r1, r2 : (Q,) float64
            ``|x - alpha x_i|`` for those sites (``inf`` when absent).
        """
        x64, sigma, alpha, _ = self._prepare(x, sigma, alpha)
        _, red = self._reduce(x64, sigma, alpha, label, want_top2=True)
        return red.i1, red.i2, np.sqrt(red.d1) / red.scale, np.sqrt(red.d2) / red.scale

    @array_io
    def jacobian(self, x, sigma, alpha=1.0, *, label=None):
        """Jacobian of the denoiser, ``d denoise / dx``, shape (Q, d, d) — for small d.

        Unregularised: ``grad D = (alpha / sigma^2) Cov_w(x)`` with the
        w-weighted covariance of the data (two-pass, no cancellation).
        Regularised: the derivative of ``(x + r (alpha D - x)) / alpha``,
        including ``grad r`` for Empirical Bayes.
        """
        x64, sigma, alpha, dt = self._prepare(x, sigma, alpha)
        prep, red = self._reduce(x64, sigma, alpha, label)
        q, d = x64.shape
        C = np.empty((q, d, d))
        # at the working scale (red.scale): C and sigma^2 scale alike, J is dimensionless
        weighted_covariance(prep.XT, red.x, alpha, red.inv2s2, C)
        if red.far.size:                # the weights of far queries from relative distances
            W = np.empty((red.far.size, prep.n))
            relative_weights(prep, red.x[red.far], alpha[red.far], red.inv2s2[red.far],
                             np.arange(red.far.size), W)
            diff = prep.X[None] - (W @ prep.X)[:, None]
            C[red.far] = np.einsum("qn,qnk,qnm->qkm", W, diff, diff)
        s2 = red.sigma[:, None, None]
        with np.errstate(over="ignore", invalid="ignore"):
            J = np.where(C == 0.0, 0.0, alpha[:, None, None] * C / s2 / s2)
        if self.regularization is not None:
            lse = red.log_normalizer()
            r = self.regularization.ratio(sigma, lse)
            res = (alpha[:, None] * red.mean - red.x) / red.scale
            eye = np.eye(d)[None]
            J_reg = (1.0 - r)[:, None, None] * eye + (r * alpha)[:, None, None] * J
            # d lse / dx = (alpha D - x) / sigma^2 ; d r / dx = r * dlogr/dlse * d lse/dx
            g = self.regularization.dlog_ratio_dlse(sigma, lse)
            if np.any(g):
                dr = (r * g)[:, None] * res / sigma[:, None] / sigma[:, None]
                J_reg = J_reg + res[:, :, None] * dr[:, None, :]
            J = J_reg / alpha[:, None, None]
        return J.astype(dt, copy=False)

    def __repr__(self):
        reg = "" if self.regularization is None else f", regularization={self.regularization!r}"
        return f"EmpiricalScore(N={self.n}, d={self.dim}{reg}, backend={self.backend!r})"
