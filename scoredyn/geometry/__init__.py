"""Where trajectories end: the Voronoi limit analysis and the collapse rates.

* :mod:`~scoredyn.geometry.voronoi` — nearest sites, distances to the cell
  boundaries, and the classification of limit points as training points or
  boundary points (Baptista et al. 2025, arXiv:2501.15785, Theorem 3.6);
* :mod:`~scoredyn.geometry.convergence` — the collapse rate
  ``|y(s) - x_i| <= K e^{-s}``, integrator orders, and the invariance time s*.
"""
from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "classify": "voronoi", "nearest": "voronoi", "fit_collapse": "convergence",
}, ("convergence", "voronoi"))
