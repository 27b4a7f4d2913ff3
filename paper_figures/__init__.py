"""Figures of the memorization paper (Baptista et al., 1-9) and of the memorization toolkit
(10-13: mixed sampling, EMM, early stopping, ambient diffusion), of the trained network
(14-15) and of real data (16: scikit-learn's digits; 17: the authors' images of squares with
EDM's sampler), one module per figure.

Each module exposes ``main(out_dir, *, rng=None, quick=False) -> dict`` that
writes ``NAME.png``, ``NAME.pdf`` and ``NAME.json`` (the numbers behind the
figure) and returns the headline numbers.  ``scoredyn figures`` runs them.
"""
FIGURES = [
    "fig01_trajectories",
    "fig02_weights",
    "fig03_distance",
    "fig04_hyperplanes",
    "fig05_tikhonov",
    "fig06_empirical_bayes",
    "fig07_score_time",
    "fig08_rates_at_scale",
    "fig09_boundary_fraction",
    "fig10_mixed_sampling",
    "fig11_emm",
    "fig12_early_stopping",
    "fig13_ambient",
    "fig14_network_memorization",
    "fig15_trained_vs_optimal",
    "fig16_digits",
    "fig17_squares",
]
