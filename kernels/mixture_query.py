"""One query against diagonal Gaussian components, written once for the CPU and the GPU.

For components ``N(mu_k, diag(v_k))`` with weights ``pi_k``, a query ``y`` at signal
scale ``a`` and noise ``sigma`` sees ``p_t = sum_k pi_k N(a mu_k, C_k)``,
``C_k = diag(a^2 v_k + sigma^2)``.  With ``du_kj = y_j - a mu_kj`` one pass over the
components, with an online softmax of their logits, accumulates

* ``logit_k = log pi_k - 1/2 sum_j du_kj^2 / (sigma^2 + a^2 v_kj)
  - 1/2 sum_j log1p(a^2 v_kj / sigma^2)`` (the common ``-(d/2) log(2 pi sigma^2)`` is
  the caller's);
* by ``mode``, one of three responsibility-weighted sums, each formed without
  cancellation (Tweedie's formula for a Gaussian mixture): the residual
  ``sigma^2 grad log p_t(y) = a D - y = sum_k rho_k (-du_kj f_kj)``,
  ``f_kj = sigma^2 / (sigma^2 + a^2 v_kj)`` in [0, 1] (:data:`RESIDUAL`, the ODE's
  right-hand side); the score ``sum_k rho_k (-du_kj / (sigma^2 + a^2 v_kj))``
  (:data:`SCORE`: finite as sigma -> 0 where the variances are positive, where the
  residual underflows); the posterior mean ``D = sum_k rho_k (mu_kj + a v_kj du_kj /
  (sigma^2 + a^2 v_kj))`` (:data:`DENOISE`: exact at small ``a``, where ``(y + res) / a``
  cancels).

Every sigma > 0 is served:

* for ``1e-150 < sigma < 1e150`` (``sigma^2`` a normal number) each term takes one
  division, ``g = 1 / (sigma^2 + a^2 v)``;
* outside, through ``h = hypot(sigma, a sqrt(v))`` (no intermediate over- or
  underflow): ``du^2 / h^2 = (du / h)^2``, ``f = (sigma / h)^2``, and the log-determinant
  term from ``log(a sqrt(v) / sigma)`` once its square overflows;
* when every logit is beyond float64 (``du^2 / h^2`` overflowed for every component:
  sigma far below the query's distance to every component), the softmax takes its exact
  limit: the weight goes to the components with the smallest ``sum_j du_kj^2 f_kj`` (the
  same ordering, computed on scaled differences), ties split by ``pi_k`` and the
  log-determinants; ``lse = -inf`` (the log-density is below the float64 range).  A mixture
  of point masses is then the empirical field at every sigma.

The component table ``P`` is (K, 2 d + 2): means, standard deviations ``sqrt(v_k)``,
``log pi_k`` (``-inf`` for a zero weight) and a flag (1.0 for an isotropic component, whose
log-determinant is formed once instead of per coordinate).  Plain Python bound to a
target by :func:`target.specialise`: ``ndim``/``npoints`` read the table's shape, and
``exp`` (of arguments <= 0), ``log``, ``log1p``, ``hypot`` are the target's.
"""
import math

#: the names these functions call that each target binds
TARGET_NAMES = ("ndim", "npoints", "exp", "log", "log1p", "hypot")
#: what :func:`mixture_query` accumulates: ``a D - y`` (the residual ``sigma^2 grad log p_t``),
#: the score ``grad log p_t`` itself, or the posterior mean ``D``
RESIDUAL, SCORE, DENOISE = 0, 1, 2
#: sigma in (NORMAL_LO, NORMAL_HI): sigma^2 is a normal float64 and the one-division form serves
NORMAL_LO, NORMAL_HI = 1e-150, 1e150


def table_columns(d):
    """Column offsets of the table for dimension ``d``: ``(sd, log_weight, isotropic)``."""
    return d, 2 * d, 2 * d + 1


def element(P, k, j, d, u, xc, a, sigma, s2, normal, mode):
    """``(du, du^2 / (sigma^2 + a^2 v), f, c)`` for coordinate ``j`` of component ``k``,
    ``y = u + xc``; ``c`` is what ``mode`` accumulates (module docstring)."""
    du = u[j] + (xc[j] - a * P[k, j])
    sd = P[k, d + j]
    asd = a * sd
    if normal:
        g = 1.0 / (s2 + asd * asd)
        f = s2 * g
        if mode == RESIDUAL:
            c = -du * f
        elif mode == SCORE:
            c = -du * g
        else:
            c = P[k, j] + asd * sd * g * du
        return du, du * du * g, f, c
    h = hypot(sigma, asd)
    q = du / h
    fr = sigma / h
    if mode == RESIDUAL:
        c = -du * (fr * fr)
    elif mode == SCORE:
        c = -q / h
    else:
        c = P[k, j] + (asd / h) * (sd / h) * du
    return du, q * q, fr * fr, c


def log_det_term(asd, sigma):
    """``log1p((asd / sigma)^2)`` for ``asd = a sqrt(v) >= 0``, without overflow."""
    r = asd / sigma
    if r < 1e150:
        return log1p(r * r)
    if r < math.inf:
        return 2.0 * log(r)
    return 2.0 * (log(asd) - log(sigma))


def log_det(P, k, d, a, sigma):
    """``sum_j log1p(a^2 v_kj / sigma^2)`` (once for an isotropic component)."""
    if P[k, 2 * d + 1] != 0.0:
        return d * log_det_term(a * P[k, d], sigma)
    ld = 0.0
    for j in range(d):
        ld += log_det_term(a * P[k, d + j], sigma)
    return ld


def raise_max(acc, d, l, m, new_max):
    """The online softmax's rescale: ``l`` and ``acc[:d]`` (relative to the running maximum
    ``m``) brought to ``new_max > m``; returns ``(l, new_max)``."""
    if l > 0.0:
        scale = exp(m - new_max)
        l *= scale
        for j in range(d):
            acc[j] *= scale
    return l, new_max


def absorb(acc, rk, d, l, m, logit):
    """Fold one component (finite ``logit``, contribution ``rk[:d]``) into the online
    softmax: returns the new ``(l, m)``; ``acc`` is updated in place."""
    if logit > m:
        l, m = raise_max(acc, d, l, m, logit)
    w = exp(logit - m)
    l += w
    for j in range(d):
        acc[j] += w * rk[j]
    return l, m


def mixture_query(P, u, xc, a, sigma, ld_table, g, want_nearest, acc, rk, mode):
    """The residual and log-normaliser of one query.

    Parameters
    ----------
    P : (K, 2 d + 2) float64
        The component table (module docstring).
    u, xc : (d,) float64
        The query ``y = u + xc`` (``xc`` a centre the caller chose, or zeros).
    a, sigma : float
        Signal scale (> 0) and noise level (> 0).
    ld_table : (G, K) float64
        Log-determinants per (a, sigma) group, row ``g``.
    g : int
        The query's row of ``ld_table``; -1: formed here (``ld_table`` is not read).
    want_nearest : bool
        Also find the component mean nearest to ``y`` (squared distance to ``a mu_k``).
    acc : (d,) float64, out
        By ``mode``: ``a D - y``, ``grad log p_t(y)`` or ``D``.
    rk : (d,) float64, scratch
    mode : {RESIDUAL, SCORE, DENOISE}

    Returns
    -------
    lse : float
        ``logsumexp_k logit_k`` (``-inf`` in the limit described above).
    i1, d1 : int, float
        Nearest mean and its squared distance (``-1, inf`` unless ``want_nearest``).
    """
    d = ndim(P)
    n = npoints(P)
    normal = NORMAL_LO < sigma < NORMAL_HI
    s2 = sigma * sigma if normal else 0.0
    inline = g < 0
    for j in range(d):
        acc[j] = 0.0
    m = -math.inf
    l = 0.0
    i1 = -1
    d1 = math.inf
    for k in range(n):
        lp = P[k, 2 * d]
        if lp == -math.inf:
            continue
        z = 0.0
        dn = 0.0
        for j in range(d):
            du, q2, f, c = element(P, k, j, d, u, xc, a, sigma, s2, normal, mode)
            z += q2
            dn += du * du
            rk[j] = c
        if want_nearest and dn < d1:
            i1 = k
            d1 = dn
        ld = log_det(P, k, d, a, sigma) if inline else ld_table[g, k]
        logit = lp - 0.5 * z - 0.5 * ld
        if logit == -math.inf:            # z overflowed: no weight beside a finite logit
            continue
        l, m = absorb(acc, rk, d, l, m, logit)
    if l > 0.0:
        inv_l = 1.0 / l
        for j in range(d):
            acc[j] *= inv_l
        return m + log(l), i1, d1
    # every logit beyond float64: the limit sigma -> 0 relative to the distances
    big = 0.0
    for k in range(n):
        if P[k, 2 * d] > -math.inf:
            for j in range(d):
                big = max(big, abs(u[j] + (xc[j] - a * P[k, j])))
    scale = 1.0 / big if 0.0 < big < math.inf else 1.0
    # one pass keeps the components at the smallest scaled distance so far (each distance
    # formed once: a recomputed one may round differently)
    zmin = math.inf
    for k in range(n):
        lp = P[k, 2 * d]
        if lp == -math.inf:
            continue
        zs = 0.0
        for j in range(d):
            du, q2, f, c = element(P, k, j, d, u, xc, a, sigma, s2, normal, mode)
            v = du * scale
            zs += v * v * f
            rk[j] = c
        if zs > zmin:
            continue
        if zs < zmin:
            zmin = zs
            l = 0.0
            m = -math.inf
            for j in range(d):
                acc[j] = 0.0
        l, m = absorb(acc, rk, d, l, m,
                      lp - 0.5 * (log_det(P, k, d, a, sigma) if inline else ld_table[g, k]))
    inv_l = 1.0 / l
    for j in range(d):
        acc[j] *= inv_l
    return -math.inf, i1, d1
