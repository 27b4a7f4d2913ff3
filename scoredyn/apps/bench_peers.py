"""ODE peers for ``scoredyn bench ode``: diffrax (JAX) and torchdiffeq, where installed.

Neither is a dependency; each is timed only when it imports.  Both integrate the same
log-time ODE ``dy/ds = D(y, e^{-s}) - y`` in float64 with the softmax written as a user of
that library would write it:

* **diffrax** — ``diffeqsolve`` with a ``PIDController`` (rtol, atol = rtol / 100), one
  trajectory per call, ``vmap`` over chunks of :data:`DIFFRAX_CHUNK` trajectories (per
  trajectory step sizes, as in scoredyn), the chunks ``lax.map``-ped on each host device and
  the devices ``pmap``-ped: as many host devices as numba has threads (``XLA_FLAGS``, set
  here when JAX is not yet imported).  Dopri5, Tsit5 and Dopri8.
* **torchdiffeq** — ``odeint`` on the batched state (Q, d): one step size for the whole
  batch, which is how its API integrates many trajectories.

Compilation (JAX's tracing and XLA, once: the tolerance is an argument) happens before the
timed runs.
"""
import os
import sys

import numpy as np

#: trajectories per vmapped diffrax call
DIFFRAX_CHUNK = 64
#: the diffrax solvers timed
DIFFRAX_SOLVERS = ("Dopri5", "Tsit5", "Dopri8")


def ode_peers(data, y0, s1):
    """``(label, "rtol", run)`` for every installed peer; ``run(rtol)`` returns the final
    states (Q, d)."""
    out = []
    if _importable("diffrax") and _importable("jax"):
        for name in DIFFRAX_SOLVERS:
            out.append((f"diffrax {name} (JAX, vmap {DIFFRAX_CHUNK})", "rtol",
                        _diffrax_runner(data, y0, s1, name)))
    if _importable("torchdiffeq") and _importable("torch"):
        out.append(("torchdiffeq dopri5 (batched)", "rtol", _torchdiffeq_runner(data, y0, s1)))
    return out


def _importable(name):
    import importlib.util
    return name in sys.modules or importlib.util.find_spec(name) is not None


def _diffrax_runner(data, y0, s1, solver_name, chunk=DIFFRAX_CHUNK):
    if "jax" not in sys.modules:
        import numba
        os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count="
                              f"{numba.get_num_threads()}")
    import diffrax
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    X = jnp.asarray(data)

    def vf(s, y, args):
        d2 = jnp.sum((y[None, :] - X) ** 2, axis=1)
        return jax.nn.softmax(-0.5 * d2 * jnp.exp(2.0 * s)) @ X - y

    term = diffrax.ODETerm(vf)
    solver = getattr(diffrax, solver_name)()
    ndev = jax.local_device_count()
    q, d = y0.shape
    per_dev = -(-q // (ndev * chunk))
    padded = np.repeat(y0[:1], ndev * per_dev * chunk, axis=0)
    padded[:q] = y0
    blocks = padded.reshape(ndev, per_dev, chunk, d)

    def solve_block(block, rtol):
        ctrl = diffrax.PIDController(rtol=rtol, atol=rtol * 1e-2)

        def one(y):
            return diffrax.diffeqsolve(term, solver, 0.0, s1, None, y, stepsize_controller=ctrl,
                                       max_steps=1_000_000).ys[-1]
        return jax.lax.map(jax.vmap(one), block)

    compiled = jax.pmap(solve_block, in_axes=(0, None))      # the tolerance is traced: one
                                                              # compilation for every rtol

    def run(rtol):
        out = compiled(blocks, jnp.float64(rtol))
        return np.asarray(jax.block_until_ready(out)).reshape(-1, d)[:q]
    return run


def _torchdiffeq_runner(data, y0, s1):
    import numba
    import torch
    import torchdiffeq
    torch.set_num_threads(numba.get_num_threads())
    X = torch.tensor(data, dtype=torch.float64)
    Y0 = torch.tensor(y0, dtype=torch.float64)
    span = torch.tensor([0.0, s1], dtype=torch.float64)

    def f(s, y):
        d2 = ((y[:, None, :] - X[None]) ** 2).sum(-1)
        return torch.softmax(-0.5 * d2 * torch.exp(2.0 * s), dim=1) @ X - y

    def run(rtol):
        with torch.no_grad():
            out = torchdiffeq.odeint(f, Y0, span, method="dopri5", rtol=rtol, atol=rtol * 1e-2)
        return out[-1].numpy()
    return run
