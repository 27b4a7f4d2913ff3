"""A small trained score network next to the closed-form optimum (issue: trained scores).

An MLP in numpy with hand-written backpropagation (verified by gradient checks
in the tests), trained by denoising score matching on the variance-exploding
process ``x = x_0 + sigma eps``:

    L(theta) = E_{x_0, sigma, eps} [ |n_theta(x, sigma) + eps|^2 + c |n_theta(x, sigma)|^2 / sigma^2 ]

with ``n_theta = sigma s_theta`` (the network predicts sigma times the score).
For fixed x the minimiser is ``n* = -sigma E[eps | x] sigma / (sigma^2 + c)``, i.e.
``s* = sigma^2 / (sigma^2 + c) grad log p_sigma``: the penalty ``c |s|^2`` with the
sigma^2 weighting gives exactly the Tikhonov(c) optimum of the memorization paper
(``c = 0``: the empirical score).  Time enters through a Gaussian Fourier
embedding of ``log sigma``.  As a :class:`ScoreField` it plugs into every
sampler and integrator (VP/DDPM levels through ``z = x/alpha``,
``sigma~ = sigma/alpha``).
"""
import numbers
import zipfile
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .._validation import as_data, as_points, as_positive, as_rng, as_scalar
from .base import ScoreField

ACTIVATIONS = ("relu", "silu")


def _act(name, z):
    if name == "relu":
        return np.maximum(z, 0.0)
    return z * expit(z)                      # SiLU with an overflow-free logistic


def _dact(name, z):
    if name == "relu":
        return (z > 0).astype(z.dtype)
    sig = expit(z)
    return sig * (1.0 + z * (1.0 - sig))


@dataclass
class TrainingLog:
    """Loss history (one value per ``log_every`` steps) and wall time."""

    steps: np.ndarray
    loss: np.ndarray
    seconds: float


class ScoreMLP(ScoreField):
    """MLP score model ``n_theta(x, sigma) = sigma s_theta(x, sigma)``.

    Parameters
    ----------
    dim : int
        Data dimension d.
    width : int
        Hidden width (the authors: 256).
    depth : int
        Number of hidden layers (the authors: 2).
    n_fourier : int
        Frequencies of the Fourier embedding of ``log sigma`` (the authors: 8).
    activation : {"relu", "silu"}
    fourier_scale : float
        Standard deviation of the random embedding frequencies.
    rng : seed or Generator
        Initialisation (He-scaled normal weights, zero biases) and frequencies.
    """

    def __init__(self, dim, *, width=256, depth=2, n_fourier=8, activation="silu",
                 fourier_scale=1.0, rng=None):
        self.dim = _positive_int(dim, "dim")
        self.width = _positive_int(width, "width")
        self.depth = _positive_int(depth, "depth")
        self.n_fourier = _positive_int(n_fourier, "n_fourier")
        if activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {ACTIVATIONS}; got {activation!r}.")
        self.activation = activation
        fourier_scale = as_scalar(fourier_scale, "fourier_scale", low=0.0, low_inclusive=False)
        rng = as_rng(rng)
        self.freqs = rng.standard_normal(self.n_fourier) * fourier_scale
        sizes = [self.dim + 2 * self.n_fourier] + [self.width] * self.depth + [self.dim]
        self.params = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            self.params.append(rng.standard_normal((a, b)) * np.sqrt(2.0 / a))
            self.params.append(np.zeros(b))
        self._dtype = np.float64
        self._adam = None

    # ------------------------------------------------------------------ model
    def _features(self, x, sigma):
        tau = np.log(sigma)[:, None] * self.freqs[None, :] * 2 * np.pi
        return np.hstack([x, np.sin(tau), np.cos(tau)])

    def _forward(self, x, sigma, keep=False):
        h = self._features(x, sigma)
        cache = [h]
        nl = len(self.params) // 2
        for layer in range(nl):
            W, b = self.params[2 * layer], self.params[2 * layer + 1]
            z = h @ W + b
            if layer < nl - 1:
                if keep:
                    cache.append(z)
                h = _act(self.activation, z)
                if keep:
                    cache.append(h)
            else:
                h = z
        return (h, cache) if keep else h

    def predict(self, x, sigma):
        """``n_theta(x, sigma) = sigma s_theta(x, sigma)``, shape (Q, d) (VE).

        ``x`` (Q, d); ``sigma`` positive, a scalar or (Q,).
        """
        x, _ = as_points(x, self.dim, "x")
        return self._forward(x, as_positive(sigma, x.shape[0], "sigma"))

    def loss_and_grad(self, x0, sigma, eps, c=0.0):
        """Mean DSM loss over a batch and its gradient with respect to every parameter.

        Parameters
        ----------
        x0 : (B, d)  sigma : (B,)  eps : (B, d)
        c : float
            Tikhonov penalty (the loss's ``c |s|^2`` term).

        Returns
        -------
        loss : float
        grads : list of arrays, one per parameter
        """
        x = x0 + sigma[:, None] * eps
        n, cache = self._forward(x, sigma, keep=True)
        B = x.shape[0]
        pen = c / sigma**2
        r = n + eps
        loss = float(np.mean(np.sum(r * r, 1) + pen * np.sum(n * n, 1)))
        g = (2.0 * r + 2.0 * pen[:, None] * n) / B            # dL/dn
        grads = [None] * len(self.params)
        nl = len(self.params) // 2
        for layer in range(nl - 1, -1, -1):
            grads[2 * layer] = cache[2 * layer].T @ g      # cache: h0, z1, h1, z2, h2, ...
            grads[2 * layer + 1] = g.sum(0)
            if layer > 0:
                g = (g @ self.params[2 * layer].T) * _dact(self.activation, cache[2 * layer - 1])
        return loss, grads

    # ------------------------------------------------------------------ field
    def residual(self, x, sigma, alpha, label=None):
        if label is not None:
            raise ValueError("`label` is not supported by ScoreMLP.")
        st = sigma / alpha
        z = x / alpha[:, None]
        # alpha D - x = sigma^2 s(x) = alpha st n(z, st)
        return (alpha * st)[:, None] * self.predict(z, st), None

    # ------------------------------------------------------------------ training
    def fit(self, data, *, steps=10_000, batch=256, lr=1e-3, c=0.0, sigma_min=0.01,
            sigma_max=10.0, betas=(0.9, 0.999), log_every=100, rng=None):
        """Train by denoising score matching with Adam; returns a :class:`TrainingLog`.

        Successive calls continue training (Adam's moments and step count persist).
        A step whose loss or gradient is not finite stops the training with a
        ``FloatingPointError`` (the parameters are left at the last finite step).
        Each step draws a minibatch of training points (all of them when
        ``batch >= N``: full batch), ``log sigma`` uniform on
        ``[log sigma_min, log sigma_max]`` and fresh noise.
        """
        import time
        X, _ = as_data(data)
        if X.shape[1] != self.dim:
            raise ValueError(f"`data` has dimension {X.shape[1]} but the network has dimension "
                             f"{self.dim}.")
        steps = _positive_int(steps, "steps")
        batch = _positive_int(batch, "batch")
        lr = as_scalar(lr, "lr", low=0.0, low_inclusive=False)
        c = as_scalar(c, "c", low=0.0)
        sigma_min = as_scalar(sigma_min, "sigma_min", low=0.0, low_inclusive=False)
        sigma_max = as_scalar(sigma_max, "sigma_max", low=sigma_min, low_inclusive=False)
        log_every = _positive_int(log_every, "log_every")
        rng = as_rng(rng)
        b1, b2 = _betas(betas)
        if self._adam is None:                       # Adam's moments persist across fit calls
            self._adam = ([np.zeros_like(p) for p in self.params],
                          [np.zeros_like(p) for p in self.params], 0)
        m, v, done = self._adam
        lo, hi = np.log(sigma_min), np.log(sigma_max)
        hist_s, hist_l, acc = [], [], 0.0
        t0 = time.perf_counter()
        for step in range(done + 1, done + steps + 1):
            if batch >= X.shape[0]:
                x0 = X
            else:
                x0 = X[rng.integers(0, X.shape[0], batch)]
            sig = np.exp(rng.uniform(lo, hi, x0.shape[0]))
            eps = rng.standard_normal(x0.shape)
            with np.errstate(over="ignore", invalid="ignore"):    # reported just below
                loss, grads = self.loss_and_grad(x0, sig, eps, c)
            if not (np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)):
                self._adam = (m, v, step - 1)
                raise FloatingPointError(
                    f"Training diverged at step {step}: the loss or its gradient is not finite "
                    f"(loss {loss:.3g}). The parameters are those after step {step - 1}; "
                    f"lower `lr` (got {lr:g}) or rescale the data.")
            acc += loss
            for k, (p, gk) in enumerate(zip(self.params, grads)):
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                mh = m[k] / (1 - b1**step)
                vh = v[k] / (1 - b2**step)
                p -= lr * mh / (np.sqrt(vh) + 1e-8)
            if step % log_every == 0:
                hist_s.append(step)
                hist_l.append(acc / log_every)
                acc = 0.0
        self._adam = (m, v, done + steps)
        return TrainingLog(np.array(hist_s), np.array(hist_l), time.perf_counter() - t0)

    @property
    def steps_trained(self):
        """Optimizer steps taken so far (fit calls continue from here)."""
        return 0 if self._adam is None else self._adam[2]

    # ------------------------------------------------------------------ checkpoints
    def save(self, path):
        """Write the architecture and parameters to a plain ``.npz`` file."""
        arrays = {f"p{k}": p for k, p in enumerate(self.params)}
        np.savez(path, freqs=self.freqs, dim=self.dim, width=self.width, depth=self.depth,
                 n_fourier=self.n_fourier, activation=self.activation, **arrays)

    @classmethod
    def load(cls, path):
        """Read a network written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is not a readable ``.npz`` archive, or a key is missing, or an
            array has the wrong shape or dtype or non-finite entries (the message
            names the file and the key).
        """
        with open(path, "rb") as fh:                    # a missing file: FileNotFoundError
            return cls._read_checkpoint(fh, path)

    @classmethod
    def _read_checkpoint(cls, fh, path):
        try:
            archive = np.load(fh, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise ValueError(f"{path}: not a ScoreMLP checkpoint (.npz written by "
                             f"ScoreMLP.save): {exc}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not a ScoreMLP checkpoint (a single array, not an "
                             f".npz archive).")
        with archive as f:
            def read(key, shape=None, kind="f"):
                if key not in f.files:
                    raise ValueError(f"{path}: not a ScoreMLP checkpoint: the key {key!r} is "
                                     f"missing.")
                try:
                    a = f[key]
                except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
                    raise ValueError(f"{path}: the key {key!r} cannot be read ({exc}).") from None
                if kind == "U":
                    if a.dtype.kind != "U" or a.ndim != 0:
                        raise ValueError(f"{path}: {key!r} must be a string; got {a.dtype} "
                                         f"of shape {a.shape}.")
                    return str(a)
                if kind == "i":
                    if a.ndim != 0 or a.dtype.kind not in "iu":
                        raise ValueError(f"{path}: {key!r} must be an integer; got {a.dtype} "
                                         f"of shape {a.shape}.")
                    return int(a)
                if a.dtype.kind != "f" or (shape is not None and a.shape != shape):
                    raise ValueError(f"{path}: {key!r} must be a float array of shape "
                                     f"{shape}; got {a.dtype} of shape {a.shape}.")
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"{path}: {key!r} has non-finite entries.")
                return a.astype(np.float64)
            try:
                net = cls(read("dim", kind="i"), width=read("width", kind="i"),
                          depth=read("depth", kind="i"), n_fourier=read("n_fourier", kind="i"),
                          activation=read("activation", kind="U"), rng=0)
            except ValueError as exc:
                if str(exc).startswith(str(path)):
                    raise
                raise ValueError(f"{path}: not a valid ScoreMLP architecture: {exc}") from None
            net.freqs = read("freqs", (net.n_fourier,))
            net.params = [read(f"p{k}", p.shape) for k, p in enumerate(net.params)]
        return net

    def __repr__(self):
        return (f"ScoreMLP(dim={self.dim}, width={self.width}, depth={self.depth}, "
                f"n_fourier={self.n_fourier}, activation={self.activation!r})")


def _betas(betas):
    """Adam's ``(beta1, beta2)``, each in [0, 1) (1 divides by 1 - beta^t = 0)."""
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise ValueError(f"`betas` must be two numbers (beta1, beta2); got {betas!r}.") from None
    for name, b in (("betas[0]", b1), ("betas[1]", b2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1); got {b}.")
    return b1, b2


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return int(value)
