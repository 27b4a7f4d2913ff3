"""The scalar kernels: the vectorised exp against mpmath."""
import mpmath
import numpy as np
from numba import njit

from scoredyn.kernels.mathfn import exp_nonpos, relative_weight


@njit
def _apply(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = exp_nonpos(a[i])
    return out


def test_exp_nonpos_within_one_ulp_of_mpmath():
    rng = np.random.default_rng(0)
    a = np.concatenate([-rng.uniform(0, 708, 3000), -rng.uniform(0, 1e-6, 200),
                        [0.0, -0.0, -1e-300, -np.log(2), -707.9999]])
    out = _apply(a)
    for v, o in zip(a, out):
        ex = mpmath.exp(mpmath.mpf(v))
        ulp = np.spacing(float(ex))
        assert abs(mpmath.mpf(o) - ex) <= 1.0 * ulp, v


def test_exp_nonpos_limits():
    out = _apply(np.array([-708.5, -1000.0, -np.inf, np.nan]))
    np.testing.assert_array_equal(out, 0.0)


def test_relative_weight_limits():
    assert relative_weight(2.0, 2.0, np.inf) == 1.0      # tie at sigma -> 0
    assert relative_weight(2.5, 2.0, np.inf) == 0.0
    assert relative_weight(2.5, 2.0, 0.0) == 1.0         # sigma -> inf
