"""A user's data set for ``scoredyn verify --data``: loading, checking, and what the theorem needs.

* :func:`load` — ``.npy``, ``.npz`` (``key=`` names the array), ``.csv`` / ``.txt``
  (comma- or whitespace-separated, one optional header line), or ``"digits"``
  (scikit-learn's 8x8 digits, 1797 images in d = 64, pixels / 16: shipped inside
  scikit-learn's wheel, nothing downloaded; the ``data`` extra);
* :func:`prepare` — the distinct points, the data's radius R, minimum separation,
  duplicates and near-duplicates, and a power-of-two length scale that brings the
  data to unit size (the dynamics are scale-equivariant: scaling the data by c
  shifts log-time by log c, and a power of two changes no digit).
"""
import os
import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import as_data, length_scale

#: points closer than this fraction of the data's radius are one point for the ODE: the
#: dynamics resolve |y - x_i| only to ~1e-16 |x_i| in float64
NEAR_DUPLICATE = 1e-12


def load(spec, key=None):
    """The (N, d) float64 array named by ``spec`` (a path, or ``"digits"``).

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, an unknown format, a ``key`` not in the archive, or content
        that is not a 2-D numeric array (each message names the file and the rule).
    """
    if spec == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError("`--data digits` needs scikit-learn: pip install "
                              "\"scoredyn[data]\".") from None
        return load_digits().data.astype(np.float64) / 16.0
    path = os.fspath(spec)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--data: no such file {path!r}.")
    ext = os.path.splitext(path)[1].lower()
    if key is not None and ext != ".npz":
        raise ValueError(f"--key applies to .npz archives; {path!r} is not one.")
    if ext == ".npy":
        arr = _read(path, ext, lambda: np.load(path, allow_pickle=False))
    elif ext == ".npz":
        arr = _read(path, ext, lambda: _from_archive(path, key))
    elif ext in (".csv", ".txt"):
        arr = _load_text(path, "," if ext == ".csv" else None)
    else:
        raise ValueError(f"--data {path!r}: unknown format {ext!r}; give .npy, .npz, "
                         f".csv or .txt.")
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        shape = getattr(arr, "shape", None)
        raise ValueError(f"--data {path!r} must hold a 2-D numeric array (N points x d "
                         f"coordinates); got {'shape ' + str(shape) if shape is not None else type(arr).__name__}"
                         f"{'' if shape is None else ', dtype ' + str(arr.dtype)}.")
    return as_data(arr, "--data")[0]


class _KeyError(ValueError):
    """A --key problem (reported as it is, not as an unreadable file)."""


def _read(path, ext, reader):
    try:
        return reader()
    except _KeyError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"--data {path!r} could not be read as {ext} ({exc}).") from None


def _from_archive(path, key):
    with np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        if key is None:
            if len(names) != 1:
                raise _KeyError(f"--data {path!r} holds {len(names)} arrays "
                                f"({', '.join(names)}); name one with --key.")
            key = names[0]
        if key not in names:
            raise _KeyError(f"--key {key!r} is not in {path!r}; it holds "
                            f"{', '.join(names) or 'no arrays'}.")
        return z[key]


def _load_text(path, delimiter):
    """A table of numbers, one point per line; a first line that is not all numbers is a
    header.  (Retrying any failure without the first line had read a ragged file's second
    line alone as the data.)"""
    with open(path, errors="replace") as fh:
        fields = fh.readline().split(delimiter)
    try:
        [float(x) for x in fields]
        header = 0
    except ValueError:
        header = 1
    try:
        with warnings.catch_warnings():      # an empty file: the caller says so, once
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=header)
    except ValueError as e:
        raise ValueError(f"--data {path!r} is not a table of numbers (one point per line, "
                         f"{'commas' if delimiter else 'spaces'} between coordinates, at most "
                         f"one header line): {str(e).split(';')[0]}") from None


@dataclass
class DataReport:
    """What ``verify --data`` reports about the data before the claims.

    Attributes
    ----------
    n, d : int
        Points as given, and their dimension.
    distinct : int
        Points the claims use (duplicates and near-duplicates merged).
    duplicates, near_duplicates : int
        Exact repeats removed; points within ``NEAR_DUPLICATE * R`` of another removed.
    radius, separation : float
        ``R = max_i |x_i|`` and the smallest distance between distinct points (data units).
    scale : float
        The power of two the claims multiply the data by (unit size).
    """

    n: int
    d: int
    distinct: int
    duplicates: int
    near_duplicates: int
    radius: float
    separation: float
    scale: float

    def lines(self):
        out = [f"data: N = {self.n}, d = {self.d}, R = max|x_i| = {self.radius:.4g}, "
               f"minimum separation {self.separation:.4g}"]
        if self.duplicates or self.near_duplicates:
            out.append(f"data: {self.duplicates} duplicate and {self.near_duplicates} "
                       f"near-duplicate points (closer than {NEAR_DUPLICATE:g} R: one point for "
                       f"float64) merged; the claims use {self.distinct} distinct points")
        if self.scale != 1.0:
            out.append(f"data: claims run on the data times 2^{int(np.log2(self.scale))} "
                       f"(unit size; log-time shifts by log of that)")
        return out


def prepare(X):
    """``(Xd, report)``: the distinct points at unit size, and the :class:`DataReport`."""
    from ..memorization.metrics import nearest_training_points
    n, d = X.shape
    # outside the ordinary range, first to unit magnitude by a power of two (exact): squared
    # distances of points near 1e200 overflowed, every pair then counted as a near duplicate
    pre = length_scale(X)
    X = X * pre
    U = np.unique(X, axis=0)
    duplicates = n - len(U)
    radius = float(np.max(np.linalg.norm(X, axis=1)))
    near = 0
    separation = float("inf")
    while len(U) > 1:
        idx, dist = nearest_training_points(U, U, k=2)
        close = dist[:, 1] <= NEAR_DUPLICATE * max(radius, np.finfo(float).tiny)
        if not np.any(close):
            separation = float(dist[:, 1].min())
            break
        # of each close pair keep the point with the lower index (repeat for chains)
        drop = close & (idx[:, 1] < np.arange(len(U)))
        near += int(drop.sum())
        U = U[~drop]
    if len(U) < 2:
        raise ValueError(f"--data holds {len(U)} distinct point(s) after merging duplicates "
                         f"and points closer than {NEAR_DUPLICATE:g} R; the claims need at "
                         f"least 2.")
    spread = float(np.sqrt(np.mean(np.sum((U - U.mean(0)) ** 2, axis=1))))
    scale = 1.0 if spread == 0 else float(2.0 ** -np.round(np.log2(spread)))
    report = DataReport(n, d, len(U), duplicates, near, radius / pre, separation / pre,
                        scale * pre)
    return U * scale, report
