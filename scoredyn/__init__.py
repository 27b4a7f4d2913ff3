"""scoredyn — numerical analysis of score dynamics in diffusion models.

Exact closed-form score fields (empirical, regularised, class-conditional,
Gaussian mixture) on streaming compiled kernels, the log-time reverse ODE of
Baptista, Dasgupta, Kovachki, Oberai & Stuart (2025, arXiv:2501.15785) on
engines for the CPU and the GPU, and the memorization toolkit around the same
optimum.  See README.md; the design reasoning is in the docstrings of each
module and of :mod:`scoredyn.kernels`.

Submodules and names load on first use (scientific Python's SPEC 1), so
``import scoredyn`` does not import numba, scipy or matplotlib: the first
call that needs a kernel pays for it.
"""
import importlib

__version__ = "0.1.0"

#: public name -> the submodule that defines it
_NAMES = {
    "EmpiricalScore": "empirical", "ScoreField": "fields", "GaussianMixture": "mixture",
    "ScoreMLP": "network", "METHODS": "integrators", "ExplicitRK": "integrators",
    "ExponentialRK": "integrators", "Integrator": "integrators",
    "EmpiricalBayes": "regularization", "Regularization": "regularization",
    "Tikhonov": "regularization", "ddim_sample": "sampling", "ddpm_sample": "sampling",
    "probability_flow": "sampling", "reverse_sde": "sampling", "IntegrationError": "sampling",
    "DDPM": "schedules", "EDM": "schedules", "VE": "schedules", "VP": "schedules",
    "Schedule": "schedules", "VEGeometric": "schedules", "SolveResult": "solver",
    "solve": "solver", "ENGINES": "engines", "BackendUnavailable": "backend",
}
#: submodules reachable as ``scoredyn.<name>`` without an import statement
_SUBMODULES = ("ambient", "backend", "convergence", "ddpm", "early_stopping", "emm", "engines",
               "integrators", "kernels", "memorization", "sampling", "schedules", "smoothness",
               "voronoi")

__all__ = sorted(set(_NAMES) | set(_SUBMODULES))


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'scoredyn' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
