"""The integrator suite: methods as data, in a registry that accepts user subclasses.

Every method is an explicit scheme for the semilinear log-time ODE
``y' = -y + N(y, s)`` (exponential integrators: Hochbruck & Ostermann 2010,
Acta Numerica 19, 209-286), written in one form

    Y_i   = E_i y + h sum_{j<i} a_ij G_j,    G_j = f(Y_j, s + c_j h) + ell Y_j
    y_new = E_f y + h sum_i b_i G_i

* classical Runge-Kutta (``ell = 0``, ``E = 1``): constant tableau ``A, b, c``;
* exponential Runge-Kutta for the split ``L = -1`` (``ell = 1``, so ``G = N``):
  ``E_i = e^{-c_i h}``, ``E_f = e^{-h}`` and ``a_ij(h), b_i(h)`` built from the
  phi functions ``phi_k(z)``, exact for ``N`` constant;
* generalized Lawson methods (``ell = 1``): a classical tableau applied to
  ``w(tau) = e^{tau} (y(s_n + tau) - N_n)``, also exact for ``N`` constant
  and keeping the classical pair's error estimate and dense output
  (:class:`GeneralizedLawson`).

Subclassing :class:`ExplicitRK` or :class:`ExponentialRK` with a ``name``
registers the method in :data:`METHODS`; the tableau is checked when the class
is defined (row sums equal ``c``, weights sum to 1; for exponential methods
the same conditions with phi functions, at several ``h``).
"""
import numpy as np

from ..kernels.scalar import LAWSON_MAX_STEP

#: name -> integrator class (aliases included)
METHODS = {}


def _register(cls):
    for name in (cls.name, *cls.aliases):
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"an integrator named {name!r} is already registered")
        METHODS[name] = cls


def phi(k, z):
    """phi_k(z) = sum_{n>=0} z^n / (n + k)!  (phi_0 = e^z), stable for small |z|.

    Parameters
    ----------
    k : int, 0 <= k <= 4
    z : float or ndarray
    """
    z = np.asarray(z, dtype=np.float64)
    if k == 0:
        return np.exp(z)
    small = np.abs(z) < 0.5
    out = np.empty_like(z)
    zs = z[small]
    # series to 20 terms: truncation < 0.5^20 / 20! ~ 4e-25
    term = np.full_like(zs, 1.0 / np.prod(np.arange(1, k + 1)))
    acc = term.copy()
    for n in range(1, 20):
        term = term * zs / (n + k)
        acc = acc + term
    out[small] = acc
    zb = z[~small]
    # phi_k(z) = (phi_{k-1}(z) - 1/(k-1)!) / z
    val = np.exp(zb)
    for j in range(1, k + 1):
        val = (val - 1.0 / np.prod(np.arange(1, j))) / zb
    out[~small] = val
    return out


class Integrator:
    """Base class: a named explicit scheme of a declared order."""

    name = None
    aliases = ()
    order = None
    adaptive = False
    exponential = False
    #: multistep methods need their own engine (not the one-step form above)
    multistep = False
    #: generalized Lawson form of the classical tableau (see GeneralizedLawson)
    lawson = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name") is None:
            return  # an abstract intermediate class
        if not isinstance(cls.order, int) or cls.order < 1:
            raise TypeError(f"integrator {cls.name!r} must declare an integer `order` >= 1")
        cls._check_tableau()
        _register(cls)

    @classmethod
    def _check_tableau(cls):
        pass

    @classmethod
    def coefficients(cls, h):
        """``(A (S, S), b (S,), c (S,), E (S,), E_f, ell)`` for step ``h``."""
        raise NotImplementedError


class ExplicitRK(Integrator):
    """Classical explicit Runge-Kutta method given by its Butcher tableau.

    Subclasses set ``A`` (S, S, strictly lower), ``b`` (S,), ``c`` (S,) and for
    an embedded pair ``b_err = b - b_hat`` (S,), ``error_order`` and optionally
    a dense-output matrix ``P`` (S, 4).
    """

    A = b = c = None
    b_err = None
    error_order = None
    P = None

    @classmethod
    def _check_tableau(cls):
        A, b, c = (np.asarray(v, float) for v in (cls.A, cls.b, cls.c))
        s = c.shape[0]
        if A.shape != (s, s) or b.shape != (s,):
            raise ValueError(f"{cls.name}: tableau shapes A {A.shape}, b {b.shape}, c {c.shape} disagree")
        if np.any(np.triu(A) != 0):
            raise ValueError(f"{cls.name}: A must be strictly lower triangular (explicit method)")
        if not np.allclose(A.sum(1), c, rtol=0, atol=1e-14):
            raise ValueError(f"{cls.name}: row sums of A must equal c")
        if abs(b.sum() - 1) > 1e-14:
            raise ValueError(f"{cls.name}: the weights b must sum to 1")
        if cls.adaptive:
            if cls.b_err is None or abs(np.sum(cls.b_err)) > 1e-14:
                raise ValueError(f"{cls.name}: an adaptive pair needs b_err = b - b_hat summing to 0")
        cls.A, cls.b, cls.c = A, b, c

    @classmethod
    def coefficients(cls, h):
        s = cls.c.shape[0]
        return cls.A, cls.b, cls.c, np.ones(s), 1.0, 0.0


class ExponentialRK(Integrator):
    """Exponential Runge-Kutta method for ``y' = -y + N(y, s)``.

    Subclasses set ``c`` and implement ``phi_tableau(h) -> (A, b)``.
    """

    exponential = True
    c = None

    @classmethod
    def phi_tableau(cls, h):
        raise NotImplementedError

    @classmethod
    def _check_tableau(cls):
        c = np.asarray(cls.c, float)
        for h in (1e-3, 0.1, 1.0, 7.0):
            A, b = cls.phi_tableau(h)
            if not np.allclose(A.sum(1), c * phi(1, -c * h), rtol=1e-12, atol=1e-14):
                raise ValueError(f"{cls.name}: row sums of A(h) must equal c phi_1(-c h)")
            if not np.isclose(b.sum(), phi(1, -h), rtol=1e-12):
                raise ValueError(f"{cls.name}: the weights b(h) must sum to phi_1(-h)")
        cls.c = c

    @classmethod
    def coefficients(cls, h):
        A, b = cls.phi_tableau(h)
        return A, b, cls.c, np.exp(-cls.c * h), float(np.exp(-h)), 1.0


# ---------------------------------------------------------------- classical
class Euler(ExplicitRK):
    """Forward Euler, order 1."""
    name, order = "euler", 1
    A, b, c = [[0.0]], [1.0], [0.0]


class Heun(ExplicitRK):
    """Heun's method (explicit trapezoid, the EDM sampler's corrector), order 2."""
    name, order = "heun", 2
    A = [[0.0, 0.0], [1.0, 0.0]]
    b, c = [0.5, 0.5], [0.0, 1.0]


class RK4(ExplicitRK):
    """The classical fourth-order Runge-Kutta method."""
    name, order = "rk4", 4
    A = [[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]]
    b, c = [1 / 6, 1 / 3, 1 / 3, 1 / 6], [0, 0.5, 0.5, 1.0]


class DormandPrince(ExplicitRK):
    """Dormand-Prince 5(4) (DOPRI5): adaptive, FSAL, 4th-order dense output.

    Coefficients from Dormand & Prince (1980); dense output from Shampine (1986).
    """
    name, aliases, order = "dopri5", ("rk45",), 5
    adaptive = True
    error_order = 4
    c = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]
    A = [[0, 0, 0, 0, 0, 0, 0],
         [1 / 5, 0, 0, 0, 0, 0, 0],
         [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
         [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
         [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
         [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
         [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]]
    b = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]
    b_err = [71 / 57600, 0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]
    P = np.array([
        [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
        [0, 0, 0, 0],
        [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
        [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
        [0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
        [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
        [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423]])


# ---------------------------------------------------------------- generalized Lawson
class GeneralizedLawson(ExplicitRK):
    """Generalized Lawson form of a classical tableau for ``y' = -y + N(y, s)``.

    Within a step from ``(s_n, y_n)`` the classical method is applied to
    ``w(tau) = e^{tau} (y(s_n + tau) - N_n)``, ``N_n = N(y_n, s_n)``, which obeys
    ``w' = e^{tau} (N(y, s_n + tau) - N_n)`` (Krogstad 2005, "Generalized
    integrating factor methods"; Hochbruck & Ostermann 2010, §2.5).  Back in
    ``y``, with ``Delta_j = N_j - N_n``::

        Y_i   = e^{-c_i h} y_n + (1 - e^{-c_i h}) N_n
                + h sum_{1<=j<i} a_ij e^{-(c_i - c_j) h} Delta_j
        y_n+1 = e^{-h} y_n + (1 - e^{-h}) N_n + h sum_{j>=1} b_j e^{-(1 - c_j) h} Delta_j
        err   = h sum_{j>=1} berr_j e^{-(1 - c_j) h} Delta_j

    and the dense output is the classical one for ``w`` mapped back the same
    way (node ``theta`` in place of 1).  The linear part is scalar (``-1``), so
    the classical order is kept; and the scheme is exact whenever ``N`` is
    constant along the step — inside a Voronoi cell once ``sigma`` is small,
    ``D = x_i`` — where a classical pair would keep resolving ``e^{-s}``
    decay: there the error estimate vanishes and the step grows
    geometrically (up to :data:`MAX_STEP`, which keeps ``e^{c_j h}`` finite).

    ``coefficients(h)`` gives the transformed tableau in the common form
    (``ell = 1``; ``G_0`` enters with ``1 - e^{-c_i h} - sum_j`` so that
    ``sum_j A_ij = c_i phi_1(-c_i h)``); ``coefficients(None)`` gives the
    classical tableau, which the engines transform at every step.
    """

    exponential = True
    lawson = True
    #: largest step of an adaptive generalized Lawson method (``e^{c_j h}`` stays finite)
    MAX_STEP = LAWSON_MAX_STEP

    @classmethod
    def _check_tableau(cls):
        super()._check_tableau()
        for h in (1e-3, 0.1, 1.0, 7.0):
            A, b, c, E, Ef, _ = cls.coefficients(h)
            if not np.allclose(A.sum(1), c * phi(1, -c * h), rtol=1e-12, atol=1e-14):
                raise ValueError(f"{cls.name}: generalized Lawson row sums must equal "
                                 f"c phi_1(-c h)")
            if not np.isclose(b.sum(), phi(1, -h), rtol=1e-12):
                raise ValueError(f"{cls.name}: generalized Lawson weights must sum to phi_1(-h)")

    @classmethod
    def row_weights(cls, a, c_row, h):
        """Weights ``w`` (..., S) and ``E`` (...) of a row: ``E y_n + sum_j w_j G_j``.

        Parameters
        ----------
        a : (S,) float
            Classical row (a stage's ``a_i.``, ``b``, or dense ``b(theta)``).
        c_row : float
            Its node (``c_i``, 1, or ``theta``).
        h : float or ndarray (...)
            Step(s); the weights include the factor ``h``.
        """
        h = np.asarray(h, float)[..., None]
        e = np.exp(-c_row * h)
        w = h * np.asarray(a, float) * e * np.exp(cls.c * h)
        w[..., 0] = 0.0
        w[..., 0] = (1.0 - e[..., 0]) - w.sum(-1)
        return w, e[..., 0]

    @classmethod
    def coefficients(cls, h):
        S = cls.c.shape[0]
        if h is None:
            return cls.A, cls.b, cls.c, np.ones(S), 1.0, 1.0
        A = np.zeros((S, S))
        E = np.ones(S)
        for i in range(1, S):
            w, E[i] = cls.row_weights(np.where(np.arange(S) < i, cls.A[i], 0.0), cls.c[i], h)
            A[i] = w / h
        w, Ef = cls.row_weights(cls.b, 1.0, h)
        return A, w / h, cls.c, E, float(Ef), 1.0


class LawsonDormandPrince(GeneralizedLawson, DormandPrince):
    """Dormand-Prince 5(4) in generalized Lawson form: adaptive, FSAL, dense output.

    Same stages, error estimate and PI control as ``dopri5``, but exact for
    ``D`` constant, so a trajectory settled in its Voronoi cell takes a few
    long steps instead of resolving the ``e^{-s}`` collapse (about 3x fewer
    steps than ``dopri5`` at the paper's setting for the same final error).
    """
    name, aliases, order = "gl-dopri5", ("lawson-dopri5",), 5


# ---------------------------------------------------------------- exponential
class ETD1(ExponentialRK):
    """Exponential Euler: ``y+ = e^{-h} y + (1 - e^{-h}) N(y)``.

    With ``N = D`` this is DDIM and DPM-Solver++(1); it keeps
    ``y`` in the convex hull of ``{y_0} U X`` at every step (a convex combination)
    and is exact inside a Voronoi cell where ``D`` is constant.
    """
    name, aliases, order = "etd1", ("ddim", "dpmsolver++1"), 1
    c = [0.0]

    @classmethod
    def phi_tableau(cls, h):
        return np.zeros((1, 1)), np.array([phi(1, -h)])


class ETDRK2(ExponentialRK):
    """Cox-Matthews ETD2RK: predictor by exponential Euler, phi_2 correction."""
    name, order = "etdrk2", 2
    c = [0.0, 1.0]

    @classmethod
    def phi_tableau(cls, h):
        p1, p2 = phi(1, -h), phi(2, -h)
        return np.array([[0.0, 0.0], [p1, 0.0]]), np.array([p1 - p2, p2])


class ETDRK4(ExponentialRK):
    """Krogstad's ETDRK4 (Hochbruck & Ostermann 2005, Table 5.3), order 4."""
    name, aliases, order = "etdrk4", ("krogstad",), 4
    c = [0.0, 0.5, 0.5, 1.0]

    @classmethod
    def phi_tableau(cls, h):
        p1h, p2h = phi(1, -h / 2), phi(2, -h / 2)
        p1, p2, p3 = phi(1, -h), phi(2, -h), phi(3, -h)
        A = np.zeros((4, 4))
        A[1, 0] = 0.5 * p1h
        A[2, 0], A[2, 1] = 0.5 * p1h - p2h, p2h
        A[3, 0], A[3, 2] = p1 - 2 * p2, 2 * p2
        b = np.array([p1 - 3 * p2 + 4 * p3, 2 * p2 - 4 * p3, 2 * p2 - 4 * p3, -p2 + 4 * p3])
        return A, b


class ETD2Multistep(Integrator):
    """Second-order exponential multistep = DPM-Solver++(2M) (data prediction).

    ``y_{n+1} = e^{-h} y_n + (1 - e^{-h}) [(1 + 1/(2 r)) N_n - N_{n-1} / (2 r)]``,
    ``r = h_{n-1} / h_n``; the first step is exponential Euler.
    """
    name, aliases, order = "etd2m", ("dpmsolver++2m",), 2
    exponential = True
    multistep = True


def get_method(method):
    """Resolve a name or an Integrator subclass; unknown names list the valid ones."""
    if isinstance(method, type) and issubclass(method, Integrator):
        return method
    if isinstance(method, str) and method.lower() in METHODS:
        return METHODS[method.lower()]
    raise ValueError(f"`method` must be one of {sorted(METHODS)} or an Integrator subclass; "
                     f"got {method!r}.")
