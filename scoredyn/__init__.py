"""scoredyn — numerical analysis of score dynamics in diffusion models.

Exact closed-form score fields (empirical, regularised, class-conditional,
Gaussian mixture) on streaming compiled kernels, the log-time reverse ODE of
Baptista, Dasgupta, Kovachki, Oberai & Stuart (2025, arXiv:2501.15785) on
engines for the CPU and the GPU, and the memorization toolkit around the same
optimum.  See README.md; the design reasoning is in the docstrings of each
module and of :mod:`scoredyn.kernels`.

The package is grouped by kind: :mod:`scoredyn.fields` (the score fields),
:mod:`scoredyn.dynamics` (schedules, integrators, the solver and its engines,
the samplers), :mod:`scoredyn.geometry` (Voronoi limits, collapse rates),
:mod:`scoredyn.memorization` (metrics and the memorization studies) and
:mod:`scoredyn.apps` (command line, verification, benchmarks, plots); the
compiled kernels are :mod:`scoredyn.kernels`.

Submodules and names load on first use (scientific Python's SPEC 1), so
``import scoredyn`` does not import numba, scipy or matplotlib: the first
call that needs a kernel pays for it.
"""
from . import _tbb  # noqa: F401  (numba's fork-safe threading layer, loaded first)
from ._lazy import attach

__version__ = "0.1.0"

#: public name -> the module that defines it
_NAMES = {
    "ScoreField": "fields.base", "CallableField": "fields.external", "EmpiricalScore": "fields.empirical",
    "GaussianMixture": "fields.mixture", "ScoreMLP": "fields.network",
    "EmpiricalBayes": "fields.regularization", "Regularization": "fields.regularization",
    "Tikhonov": "fields.regularization",
    "METHODS": "dynamics.integrators", "ExplicitRK": "dynamics.integrators",
    "ExponentialRK": "dynamics.integrators", "Integrator": "dynamics.integrators",
    "ddim_sample": "dynamics.sampling", "edm_sample": "dynamics.sampling", "ddpm_sample": "dynamics.sampling",
    "probability_flow": "dynamics.sampling", "reverse_sde": "dynamics.sampling",
    "IntegrationError": "dynamics.sampling",
    "DDPM": "dynamics.schedules", "EDM": "dynamics.schedules", "VE": "dynamics.schedules",
    "VP": "dynamics.schedules", "Schedule": "dynamics.schedules",
    "VEGeometric": "dynamics.schedules",
    "SolveResult": "dynamics.solver", "solve": "dynamics.solver",
    "ENGINES": "dynamics.engines", "BackendUnavailable": "backend",
}
#: ``scoredyn.<name>`` -> the module it stands for, reachable without an import statement
_SUBMODULES = {
    # the kinds
    "fields": "fields", "dynamics": "dynamics", "geometry": "geometry",
    "memorization": "memorization", "apps": "apps",
    # the modules by their short names
    "ambient": "memorization.ambient", "backend": "backend",
    "convergence": "geometry.convergence", "ddpm": "memorization.ddpm",
    "early_stopping": "memorization.early_stopping", "emm": "memorization.emm",
    "engines": "dynamics.engines", "integrators": "dynamics.integrators", "kernels": "kernels",
    "sampling": "dynamics.sampling", "schedules": "dynamics.schedules",
    "smoothness": "memorization.smoothness", "voronoi": "geometry.voronoi",
}

__getattr__, __dir__, __all__ = attach(__name__, _NAMES, _SUBMODULES)
