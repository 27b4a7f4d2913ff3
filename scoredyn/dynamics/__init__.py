"""The reverse dynamics: schedules, integrators, the log-time solver and its engines, samplers.

* :mod:`~scoredyn.dynamics.schedules` — VE, VP, DDPM and EDM noise schedules;
* :mod:`~scoredyn.dynamics.integrators` — explicit and exponential (Lawson)
  Runge-Kutta methods;
* :mod:`~scoredyn.dynamics.solver` — :func:`solve`, the log-time reverse ODE
  ``dy/ds = -(y - D(y, s))`` of Baptista et al. (2025, arXiv:2501.15785, eq. 3.4);
* :mod:`~scoredyn.dynamics.engines` — the engines that run it (numpy, numba,
  numba-lanes, batched, cuda);
* :mod:`~scoredyn.dynamics.sampling` — the original-time samplers
  (probability flow, reverse SDE, DDPM and DDIM).
"""
from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "solve": "solver", "SolveResult": "solver", "ENGINES": "engines",
    "probability_flow": "sampling", "reverse_sde": "sampling", "ddpm_sample": "sampling",
    "ddim_sample": "sampling", "edm_sample": "sampling", "IntegrationError": "sampling",
}, ("engines", "integrators", "sampling", "schedules", "solver"))
