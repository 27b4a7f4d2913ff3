"""scoredyn — numerical analysis of score dynamics in diffusion models.

Exact closed-form score fields (empirical, regularised, class-conditional,
Gaussian mixture) on streaming compiled kernels.  See README.md and
DESIGN notes in the docstrings of each module.
"""
from .empirical import EmpiricalScore
from .fields import ScoreField
from .mixture import GaussianMixture
from .regularization import EmpiricalBayes, Regularization, Tikhonov

__all__ = ["EmpiricalScore", "GaussianMixture", "ScoreField", "Tikhonov", "EmpiricalBayes",
           "Regularization"]
__version__ = "0.1.0"
