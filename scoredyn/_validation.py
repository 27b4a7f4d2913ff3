"""Input checks at the public boundary: each message names the parameter and the rule."""
import numbers

import numpy as np


def _as_float_array(value, name):
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == bool):
        raise TypeError(f"`{name}` must be a real numeric array; got dtype {arr.dtype}.")
    return arr


def result_dtype(*arrays):
    """float32 when every input is float32, float64 otherwise."""
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


def kernel_array(arr):
    """``arr`` as a C-ordered, writeable float64 array (a copy only when needed).

    The compiled kernels are specialised on these properties: a read-only array (one
    unpickled from a Dask worker's network buffer, or a user's ``flags.writeable = False``)
    would select another compiled specialisation, whose vectorised sums may round
    differently in the last bit.  Every array reaches the kernels through here, so the same
    inputs give the same bits in every process.
    """
    return np.require(arr, dtype=np.float64, requirements=["C", "W"])


def as_data(data, name="data"):
    """Validate a data set: a finite (N, d) array, N >= 1, d >= 1.

    Returns the array as C-ordered float64 and its original dtype.
    """
    arr = _as_float_array(data, name)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array of shape (N, d); got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` must contain at least one point; got shape {arr.shape}.")
    if arr.shape[1] == 0:
        raise ValueError(f"`{name}` must have dimension d >= 1; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"All entries of `{name}` must be finite.")
    return kernel_array(arr), arr.dtype


def as_points(x, d, name="x"):
    """Validate query points: a finite (Q, d) array matching the data dimension."""
    arr = _as_float_array(x, name)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array of shape (Q, d); got shape {arr.shape}.")
    if arr.shape[1] != d:
        raise ValueError(f"`{name}` has dimension {arr.shape[1]} but the data have dimension {d}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"All entries of `{name}` must be finite.")
    return kernel_array(arr), arr.dtype


def as_positive(value, q, name):
    """A positive finite scalar or (Q,) array, broadcast to shape (Q,) float64."""
    arr = _as_float_array(value, name).astype(np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != q):
        raise ValueError(f"`{name}` must be a scalar or an array of shape ({q},); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; got {_show(arr)}.")
    if not np.all(arr > 0):
        raise ValueError(f"`{name}` must be positive; got {_show(arr[arr <= 0])}.")
    return np.ascontiguousarray(np.broadcast_to(arr, (q,)))


def as_rng(rng, name="rng"):
    """A numpy Generator from ``rng`` (None, a seed, a SeedSequence, a BitGenerator or a
    Generator), with a message that names the parameter when ``rng`` is none of these."""
    if isinstance(rng, bool):
        raise TypeError(f"`{name}` must be None, a non-negative integer seed or a "
                        f"numpy.random.Generator; got {rng!r}.")
    try:
        return np.random.default_rng(rng)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"`{name}` must be None, a non-negative integer seed or a "
                        f"numpy.random.Generator; got {rng!r} ({exc}).") from None


def as_count(value, name, low=1):
    """An integer ``>= low`` (bools and floats such as 2.7 are refused, not truncated)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < low:
        rule = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"`{name}` must be {rule}; got {value!r}.")
    return int(value)


def as_steps(t, T, name="t"):
    """Integer steps ``0 <= t <= T`` (scalar or array), as an int64 array."""
    arr = np.asarray(t)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                and np.all(arr == np.round(arr))):
            raise ValueError(f"`{name}` must be integer steps in [0, {T}]; got {_show(arr)}.")
    arr = arr.astype(np.int64)
    if np.any((arr < 0) | (arr > T)):
        raise ValueError(f"`{name}` must be integer steps in [0, {T}]; got "
                         f"{_show(arr[(arr < 0) | (arr > T)])}.")
    return arr


#: coordinates whose largest magnitude lies in [2^-SCALE_EXP, 2^SCALE_EXP] are used as they
#: are; beyond, squared distances would overflow (~1e154) or lose digits to underflow (~1e-154)
SCALE_EXP = 100


def length_scale(*arrays):
    """A power of two ``c`` that brings the largest magnitude in ``arrays`` near 1.

    Each item is an array or its largest magnitude already computed (a float: the
    fields keep their data's, so a call pays only for its queries).

    The answers of the fields and of the Voronoi geometry are scale-equivariant (lengths,
    sigma and the data scale together), and multiplying by a power of two is exact, so
    computing at ``c x`` and dividing lengths by ``c`` changes no digit; it keeps squared
    distances inside float64's range.  ``1.0`` in the ordinary range (no change at all).
    """
    # max(max, -min): two reductions without the temporary |a| (called per stage by solvers)
    m = max((a if isinstance(a, float) else float(max(np.max(a), -np.min(a)))
             for a in arrays if isinstance(a, float) or a.size), default=0.0)
    if m == 0.0 or 2.0 ** -SCALE_EXP <= m <= 2.0 ** SCALE_EXP:
        return 1.0
    # within float64's exponent range even for subnormal magnitudes
    return float(np.ldexp(1.0, int(np.clip(-np.frexp(m)[1], -1000, 1000))))


def as_scalar(value, name, *, low=None, low_inclusive=True):
    """A finite real scalar, optionally bounded below."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__}.")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"`{name}` must be finite; got {v}.")
    if low is not None:
        if low_inclusive and v < low:
            raise ValueError(f"`{name}` must be >= {low}; got {v}.")
        if not low_inclusive and v <= low:
            rule = "positive" if low == 0 else f"> {low}"
            raise ValueError(f"`{name}` must be {rule}; got {v}.")
    return v


def _show(arr):
    arr = np.ravel(arr)
    return repr(arr[0].item()) if arr.size else "an empty array"
