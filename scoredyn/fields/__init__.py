"""Score fields: the denoiser ``D(y, sigma)`` and everything derived from it.

* :mod:`~scoredyn.fields.base` — :class:`ScoreField`, the interface a field
  implements (its :meth:`~ScoreField.residual`) and the quantities every field
  derives from it (score, noise prediction, log-time velocity);
* :mod:`~scoredyn.fields.empirical` — the exact score of N training points
  smeared by Gaussian noise, on the streaming kernels;
* :mod:`~scoredyn.fields.regularization` — Tikhonov and Empirical-Bayes
  regularised empirical scores;
* :mod:`~scoredyn.fields.mixture` — Gaussian-mixture scores;
* :mod:`~scoredyn.fields.network` — a small trained score network;
* :mod:`~scoredyn.fields.external` — :class:`CallableField`, any trained
  denoiser (numpy, torch or JAX; eps, x0, score or v; VE or VP; EDM's
  preconditioning) as a field.
"""
from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "ScoreField": "base", "CallableField": "external", "EmpiricalScore": "empirical", "GaussianMixture": "mixture",
    "ScoreMLP": "network", "EmpiricalBayes": "regularization",
    "Regularization": "regularization", "Tikhonov": "regularization",
}, ("base", "empirical", "external", "mixture", "network", "regularization"))
