"""The fused time loop on the CPU: :func:`trajectory.advance` over chunks of trajectories.

One trajectory at a time per thread (:mod:`launch`), every step compiled (no Python per
step), with the streaming posterior reduction (:func:`reduction.posterior_one`,
tiles of ``TILE_N`` data points) inside and online diagnostics instead of
stored paths.  The loop itself lives in :mod:`trajectory`; this module binds
it to the CPU's functions and allocates each iteration's work arrays.
"""
import math

import numpy as np
from numba import njit

from . import trajectory
from .config import FASTMATH, TILE_N
from .launch import chunk_size, run_chunks
from .mathfn import exp_any, log_pos
from .mixture import mixture_query, table_cell_margins, table_ndim, table_site
from .mixture_query import RESIDUAL
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


@njit(fastmath=FASTMATH, cache=True, inline="always", error_model="numpy")
def _mixture_posterior(P, u, xc, inv, want_nearest, mean, rk):
    """The posterior mean of ``y = u + xc`` under diagonal Gaussian components, relative to
    ``xc`` (``mean = u + (D - y)``), at ``sigma = sqrt(1 / (2 inv)) = e^{-s}``; the
    reduction's ``(dmin, lsum)`` are not defined (no regularization of a mixture)."""
    _, i1, d1 = mixture_query(P, u, xc, 1.0, math.sqrt(0.5 / inv), P, -1, want_nearest, mean,
                              rk, RESIDUAL)
    for k in range(u.shape[0]):
        mean[k] += u[k]
    return 0.0, 1.0, i1, d1


CPU = dict(config=njit(inline="always")(trajectory.config), ndim=ndim, site=site,
           posterior=_posterior, cell_margins=cell_margins, exp=exp_any,
           log=log_pos, tikhonov_shrink=tikhonov_shrink_cpu,
           empirical_bayes_exponent=empirical_bayes_exponent_cpu, error_ratio=error_ratio_cpu,
           accept_step_exponent=accept_step_exponent_cpu, next_log_errold=next_log_errold_cpu,
           reject_step_exponent=reject_step_exponent_cpu, dense_weight=dense_weight_cpu,
           lawson_growth=lawson_growth_cpu, row_weights=row_weights_cpu)
#: the same loop over a mixture's component table (K, 2 d + 2): sites are the means
MIXTURE_CPU = dict(CPU, ndim=table_ndim, site=table_site, posterior=_mixture_posterior,
                   cell_margins=table_cell_margins)


def _bind(bindings, suffix):
    """``advance`` compiled for one field's bindings (their ``rhs`` added to them)."""
    bindings["rhs"] = njit(fastmath=FASTMATH, cache=True, error_model="numpy",
                           inline="always")(
        specialise(trajectory.rhs, bindings, f"rhs_{suffix}", trajectory.TARGET_NAMES))
    return njit(cache=True, inline="always")(
        specialise(trajectory.advance, bindings, f"advance_{suffix}",
                   trajectory.TARGET_NAMES + ("rhs",)))


def _integrate_chunk(lo, hi, X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg,
                     Ysave, Yout, Uout, outi, outf):
    """Trajectories ``lo <= q < hi``; arguments as in :func:`trajectory.advance`."""
    d = ndim(X)
    S = C.shape[0]
    vec = np.empty((trajectory.N_VEC, d))
    G = np.empty((S, d))
    per_stage = np.empty((trajectory.N_PER_STAGE, S))
    dist = np.empty(max(TILE_N, d))
    for q in range(lo, hi):
        advance(q, X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
                Uout, outi, outf, vec, G, per_stage, dist)


#: an empirical field's trajectories (data transposed, (d, N))
integrate_chunk = njit(nogil=True, cache=True, error_model="numpy")(
    specialise(_integrate_chunk, dict(advance=_bind(CPU, "cpu"), ndim=ndim), "integrate_chunk"))
#: a diagonal Gaussian mixture's trajectories (its component table)
integrate_mixture_chunk = njit(nogil=True, cache=True, error_model="numpy")(
    specialise(_integrate_chunk, dict(advance=_bind(MIXTURE_CPU, "mixture_cpu"),
                                      ndim=table_ndim), "integrate_mixture_chunk"))


def integrate(X, *args, chunk=integrate_chunk):
    """Integrate every trajectory on all cores: ``chunk`` over the rows of ``Y0``.

    ``integrate(X, Y0, grid, save_slot, seg_steps, A, B, E, Ef, C, Berr, P, cfg, Ysave, Yout,
    Uout, outi, outf)``: ``X`` the data transposed (:data:`integrate_chunk`) or a mixture's
    component table (``chunk=integrate_mixture_chunk``).
    """
    q = args[0].shape[0]
    run_chunks(chunk, q, chunk_size(q), X, *args)
