"""Memorization: the metrics, and the studies around the empirical optimum.

The metrics (:mod:`~scoredyn.memorization.metrics`) are re-exported here, so
``scoredyn.memorization.memorization_ratio`` is the ratio test.  The studies:

* :mod:`~scoredyn.memorization.emm` — the effective model memorization;
* :mod:`~scoredyn.memorization.ddpm` — the DDPM optimum and mixed sampling;
* :mod:`~scoredyn.memorization.smoothness` — the smoothness of a score field;
* :mod:`~scoredyn.memorization.early_stopping` — early-stopped sampling;
* :mod:`~scoredyn.memorization.ambient` — ambient diffusion.
"""
from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    name: "metrics" for name in (
        "MetricResult", "BOOTSTRAP_ENTRIES", "bootstrap_ci", "nearest_training_points",
        "memorization_ratio", "carlini_memorization", "knn_distance", "fraction_within")
}, ("ambient", "ddpm", "early_stopping", "emm", "metrics", "smoothness"))
