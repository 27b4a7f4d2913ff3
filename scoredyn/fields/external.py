"""A trained network as a score field: :class:`CallableField` wraps any callable denoiser.

Networks are trained in one of two conventions for the forward process
``x_t = alpha x_0 + sigma eps`` and predict one of four targets.  The field maps
every query ``(x, sigma, alpha)`` of the package into the network's convention,
calls it in batches, and turns its output into the posterior mean ``D``; the
package then derives ``alpha D - x`` (:meth:`ScoreField.residual`) and from it
the score, the noise prediction, the ODE and every analysis.

Conventions (what the network is called with):

* ``"ve"``: ``fn(z, s)`` with ``z = x / alpha`` and ``s = sigma / alpha``
  (``z = x_0 + s eps``; EDM's convention);
* ``"vp"``: ``fn(z, s)`` with ``z = x / sqrt(alpha^2 + sigma^2)`` and
  ``s = sigma / sqrt(alpha^2 + sigma^2)`` (``z = a x_0 + s eps``, ``a^2 + s^2 = 1``;
  DDPM's convention, ``s = sqrt(1 - abar_t)``: a network conditioned on the step
  ``t`` is wrapped as ``lambda z, s: net(z, t_of(s))``).

Both are exact changes of variables: ``E[x_0 | x_t = x]`` is unchanged.  With
``a`` the signal scale of the convention (1 for VE), the targets give ``D`` as

* ``"x0"``:    ``D = out``;
* ``"eps"``:   ``D = (z - s out) / a``;
* ``"score"``: ``D = (z + s^2 out) / a``                (Tweedie);
* ``"v"``:     ``D = (a z - s out) / (a^2 + s^2)``       (``v = a eps - s x_0``).

``preconditioning="edm"`` (VE only) applies EDM's network preconditioning
(Karras et al. 2022, NeurIPS, "Elucidating the design space of diffusion-based
generative models", Table 1): ``D = c_skip z + c_out F(c_in z, c_noise)`` with
``c_skip = sigma_data^2 / (s^2 + sigma_data^2)``, ``c_out = s sigma_data /
sqrt(s^2 + sigma_data^2)``, ``c_in = 1 / sqrt(s^2 + sigma_data^2)``,
``c_noise = log(s) / 4``; ``fn`` is then the raw network ``F``.
"""
import numpy as np

from .base import ScoreField

PARAMETERIZATIONS = ("x0", "eps", "score", "v")
CONVENTIONS = ("ve", "vp")
FRAMEWORKS = ("numpy", "torch", "jax")


class CallableField(ScoreField):
    """A score field from a callable denoiser (a trained network, or any function).

    Parameters
    ----------
    fn : callable
        ``fn(z, s) -> out``: ``z`` (B, d) and ``s`` (B,) in the network's convention
        (module docstring), ``out`` (B, d).  Arrays of ``framework``.
    dim : int
        The data dimension d.
    parameterization : {"x0", "eps", "score", "v"}
        What ``fn`` predicts.
    convention : {"ve", "vp"}
        How ``fn`` expects the noisy state and its noise level.
    preconditioning : {None, "edm"}
        EDM's preconditioning around a raw network (``convention="ve"``, and
        ``parameterization="x0"``: the preconditioned output is the denoiser).
    sigma_data : float
        EDM's data standard deviation (0.5 in EDM).
    batch_size : int
        Rows per call of ``fn``.
    framework : {"numpy", "torch", "jax"}
        The arrays ``fn`` takes and returns; torch and JAX tensors are exchanged
        through DLPack (no copy on the CPU).  Only the named framework is imported.
    dtype : {"float32", "float64"}
        The dtype ``fn`` is called with and must return (networks are usually float32).
    device : str, optional
        torch: the device of the inputs (e.g. ``"cuda"``); outputs come back to the host.

    Notes
    -----
    The output is checked on every call: a wrong shape, a different dtype or a
    non-finite value raises ``ValueError`` naming the field and the shapes.
    """

    def __init__(self, fn, dim, *, parameterization="x0", convention="ve", preconditioning=None,
                 sigma_data=0.5, batch_size=4096, framework="numpy", dtype="float32",
                 device=None):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"`dim` must be a positive integer; got {dim!r}.")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"`parameterization` must be one of {PARAMETERIZATIONS}; got "
                             f"{parameterization!r}.")
        if convention not in CONVENTIONS:
            raise ValueError(f"`convention` must be one of {CONVENTIONS}; got {convention!r}.")
        if preconditioning not in (None, "edm"):
            raise ValueError(f"`preconditioning` must be None or 'edm'; got {preconditioning!r}.")
        if preconditioning == "edm" and (convention != "ve" or parameterization != "x0"):
            raise ValueError("`preconditioning='edm'` needs convention='ve' and "
                             "parameterization='x0' (EDM's preconditioned network is a denoiser).")
        sigma_data = float(sigma_data)
        if not (np.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"`sigma_data` must be positive and finite; got {sigma_data!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        if framework not in FRAMEWORKS:
            raise ValueError(f"`framework` must be one of {FRAMEWORKS}; got {framework!r}.")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"`dtype` must be 'float32' or 'float64'; got {dtype!r}.")
        self.fn = fn
        self.dim = int(dim)
        self.parameterization = parameterization
        self.convention = convention
        self.preconditioning = preconditioning
        self.sigma_data = sigma_data
        self.batch_size = int(batch_size)
        self.framework = framework
        self.dtype = np.dtype(dtype)
        self.device = device

    def __repr__(self):
        return (f"CallableField({getattr(self.fn, '__name__', type(self.fn).__name__)}, "
                f"dim={self.dim}, parameterization={self.parameterization!r}, "
                f"convention={self.convention!r}, preconditioning={self.preconditioning!r})")

    # -- the change of variables ------------------------------------------------------------

    def _to_network(self, x, sigma, alpha):
        """``(z, s, a)``: the state, noise level and signal scale in the network's convention."""
        if self.convention == "ve":
            with np.errstate(over="ignore"):
                s = sigma / alpha
            return x / alpha[:, None], s, np.ones_like(s)
        norm = np.hypot(alpha, sigma)
        return x / norm[:, None], sigma / norm, alpha / norm

    def _denoiser(self, z, s, a):
        """``D`` from the network's output (module docstring)."""
        if self.preconditioning == "edm":
            sd2 = self.sigma_data ** 2
            root = np.sqrt(s * s + sd2)
            out = self._call(z / root[:, None], np.log(s) / 4)
            return (sd2 / (s * s + sd2))[:, None] * z + (s * self.sigma_data / root)[:, None] * out
        out = self._call(z, s)
        p = self.parameterization
        if p == "x0":
            return out
        if p == "eps":
            return (z - s[:, None] * out) / a[:, None]
        if p == "score":                 # s (s out): s^2 alone overflows past s ~ 1e154
            return (z + s[:, None] * (s[:, None] * out)) / a[:, None]
        return (a[:, None] * z - s[:, None] * out) / (a * a + s * s)[:, None]

    def residual(self, x, sigma, alpha, label=None):
        if label is not None:
            raise ValueError("CallableField is unconditional: `label` must be None.")
        z, s, a = self._to_network(x, sigma, alpha)
        return alpha[:, None] * self._denoiser(z, s, a) - x, None

    def _denoised(self, x, sigma, alpha, label):
        if label is not None:
            raise ValueError("CallableField is unconditional: `label` must be None.")
        z, s, a = self._to_network(x, sigma, alpha)
        return self._denoiser(z, s, a)

    # -- calling the network in batches ------------------------------------------------------

    def _call(self, z, s):
        out = np.empty_like(z)
        for b0 in range(0, len(z), self.batch_size):
            b1 = min(b0 + self.batch_size, len(z))
            zb = self._cast(z[b0:b1], "the state")
            sb = self._cast(s[b0:b1], "the noise level")
            out[b0:b1] = self._check(self._to_host(self.fn(*self._from_host(zb, sb))), b1 - b0)
        return out

    def _cast(self, a, what):
        """``a`` in the network's dtype, or a ValueError where it does not fit (a float32
        network cannot be called at sigma = 1e300, nor at 1e-300, where it would see 0)."""
        if self.dtype == np.float64:
            return np.ascontiguousarray(a)
        info = np.finfo(self.dtype)
        mag = np.abs(a)
        if np.any(mag > info.max) or np.any((mag < info.tiny) & (mag > 0)):
            raise ValueError(f"{self._name()}: {what} the network is called with reaches "
                             f"{mag[(mag > info.max) | (mag < info.tiny)].flat[0]:.3g}, outside "
                             f"the range of its dtype {self.dtype} [{info.tiny:.3g}, "
                             f"{info.max:.3g}]; keep sigma (and x) within it, or pass "
                             f"dtype='float64'.")
        return np.ascontiguousarray(a, dtype=self.dtype)

    def _name(self):
        return f"CallableField({getattr(self.fn, '__name__', type(self.fn).__name__)})"

    def _from_host(self, *arrays):
        if self.framework == "numpy":
            return arrays
        if self.framework == "torch":
            import torch
            return tuple(torch.from_dlpack(a).to(self.device) if self.device is not None
                         else torch.from_dlpack(a) for a in arrays)
        import jax.numpy as jnp
        return tuple(jnp.from_dlpack(a) for a in arrays)

    def _to_host(self, out):
        if self.framework == "torch":
            import torch
            if isinstance(out, torch.Tensor):
                out = out.detach().to("cpu").contiguous()
        if self.framework != "numpy" and hasattr(out, "__dlpack__"):
            return np.from_dlpack(out)
        return out

    def _check(self, out, rows):
        name = self._name()
        if not isinstance(out, np.ndarray):
            raise ValueError(f"{name}: the callable must return an array of shape "
                             f"({rows}, {self.dim}); got {type(out).__name__}.")
        if out.shape != (rows, self.dim):
            raise ValueError(f"{name}: the callable returned shape {out.shape} for a batch of "
                             f"shape ({rows}, {self.dim}); it must return ({rows}, {self.dim}).")
        if out.dtype != self.dtype:
            raise ValueError(f"{name}: the callable returned dtype {out.dtype} for inputs of "
                             f"dtype {self.dtype} (shape {out.shape}); return the input dtype, "
                             f"or set `dtype=`.")
        if not np.all(np.isfinite(out)):
            bad = int(np.count_nonzero(~np.all(np.isfinite(out), axis=1)))
            raise ValueError(f"{name}: the callable returned non-finite values in {bad} of "
                             f"{rows} rows (shape {out.shape}).")
        return out
