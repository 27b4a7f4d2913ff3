"""scoredyn — numerical analysis of score dynamics in diffusion models.

Exact closed-form score fields (empirical, regularised, class-conditional,
Gaussian mixture) on streaming compiled kernels.  See README.md and
DESIGN notes in the docstrings of each module.
"""
from .empirical import EmpiricalScore
from .fields import ScoreField
from .mixture import GaussianMixture
from .network import ScoreMLP
from . import (ambient, convergence, ddpm, early_stopping, emm, memorization, smoothness,
               voronoi)
from .integrators import METHODS, ExplicitRK, ExponentialRK, Integrator
from .regularization import EmpiricalBayes, Regularization, Tikhonov
from .sampling import ddim_sample, ddpm_sample, probability_flow, reverse_sde
from .schedules import DDPM, EDM, VE, VP, Schedule, VEGeometric
from .solve import SolveResult, solve

__all__ = ["EmpiricalScore", "GaussianMixture", "ScoreMLP", "ScoreField", "Tikhonov", "EmpiricalBayes",
           "Regularization", "solve", "SolveResult", "METHODS", "Integrator", "ExplicitRK",
           "ExponentialRK", "Schedule", "VE", "VEGeometric", "VP", "DDPM", "EDM",
           "probability_flow", "voronoi", "convergence", "memorization", "ddpm", "emm",
           "early_stopping", "ambient", "smoothness", "reverse_sde", "ddim_sample", "ddpm_sample"]
__version__ = "0.1.0"
