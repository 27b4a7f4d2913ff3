"""The fused time loop on the CPU: :func:`trajectory.advance` over chunks of trajectories.

One trajectory at a time per thread (:mod:`launch`), every step compiled (no Python per
step), with the streaming posterior reduction (:func:`reduction.posterior_one`,
tiles of ``TILE_N`` data points) inside and online diagnostics instead of
stored paths.  The loop itself lives in :mod:`trajectory`; this module binds
it to the CPU's functions and allocates each iteration's work arrays.
"""
import numpy as np
from numba import njit

from . import trajectory
from .config import FASTMATH, TILE_N
from .launch import chunk_size, run_chunks
from .mathfn import exp_any, log_pos
from .reduction import posterior_one
from .target import specialise
from .scalar import (accept_step_exponent_cpu, dense_weight_cpu, empirical_bayes_exponent_cpu,
                     error_ratio_cpu, lawson_growth_cpu, next_log_errold_cpu,
                     reject_step_exponent_cpu, row_weights_cpu, tikhonov_shrink_cpu)
from .voronoi import cell_margins, ndim, site


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _posterior(XT, u, xc, inv, want_nearest, mean, dist):
    dmin, lsum, i1, d1, _, _ = posterior_one(XT, u, 1.0, xc, inv, want_nearest, mean, dist)
    return dmin, lsum, i1, d1


CPU = dict(config=njit(inline="always")(trajectory.config), ndim=ndim, site=site,
           posterior=_posterior, cell_margins=cell_margins, exp=exp_any,
           log=log_pos, tikhonov_shrink=tikhonov_shrink_cpu,
           empirical_bayes_exponent=empirical_bayes_exponent_cpu, error_ratio=error_ratio_cpu,
           accept_step_exponent=accept_step_exponent_cpu, next_log_errold=next_log_errold_cpu,
           reject_step_exponent=reject_step_exponent_cpu, dense_weight=dense_weight_cpu,
           lawson_growth=lawson_growth_cpu, row_weights=row_weights_cpu)
CPU["rhs"] = njit(fastmath=FASTMATH, cache=True, error_model="numpy", inline="always")(
    specialise(trajectory.rhs, CPU, "rhs_cpu", trajectory.TARGET_NAMES))
advance = njit(cache=True, inline="always")(
    specialise(trajectory.advance, CPU, "advance_cpu", trajectory.TARGET_NAMES + ("rhs",)))


@njit(nogil=True, cache=True, error_model="numpy")
def integrate_chunk(lo, hi, XT, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg,
                    Ysave, Yout, Uout, outi, outf):
    """Trajectories ``lo <= q < hi``; arguments as in :func:`trajectory.advance` (``X = XT``)."""
    d = XT.shape[0]
    S = C.shape[0]
    vec = np.empty((trajectory.N_VEC, d))
    G = np.empty((S, d))
    per_stage = np.empty((trajectory.N_PER_STAGE, S))
    dist = np.empty(TILE_N)
    for q in range(lo, hi):
        advance(q, XT, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
                Uout, outi, outf, vec, G, per_stage, dist)


def integrate(XT, *args):
    """Integrate every trajectory on all cores: :func:`integrate_chunk` over the rows of ``Y0``.

    ``integrate(XT, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
    Uout, outi, outf)``.
    """
    q = args[0].shape[0]
    run_chunks(integrate_chunk, q, chunk_size(q), XT, *args)
