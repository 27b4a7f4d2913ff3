"""Binding a loop written once in plain Python to one compilation target.

The per-trajectory time loop (:mod:`trajectory`) and the Voronoi-cell margins
(:mod:`cell`) are plain Python that call a few names they do not define: the
data accessors (``ndim``, ``npoints``, ``site``), ``exp``/``log``, a rounded
``square`` and the formulas of :mod:`scalar`.  :func:`specialise` makes a copy
of such a function whose global names resolve to one target's compiled
functions; the target's decorator (``numba.njit`` or
``numba.cuda.jit(device=True)``) then compiles the copy.  numba resolves
globals when it compiles, so each copy is a separate function for each target
with the same source.
"""
import types


def specialise(fn, bindings, name, needs=()):
    """A copy of ``fn`` whose globals are overridden by ``bindings``.

    Parameters
    ----------
    fn : function
        Plain Python (a loop of :mod:`trajectory` or :mod:`cell`).
    bindings : dict
        Name -> the target's function (or constant).
    name : str
        The copy's ``__name__`` and ``__qualname__`` (numba's on-disk cache
        is keyed on them and on ``fn``'s source file, so every copy needs its
        own name).
    needs : iterable of str
        Names the copy must find in ``bindings`` (a ``KeyError`` otherwise).

    Returns
    -------
    function
    """
    missing = sorted(set(needs) - set(bindings))
    if missing:
        raise KeyError(f"{name}: the target does not bind {missing}")
    namespace = dict(fn.__globals__)
    namespace.update(bindings)
    out = types.FunctionType(fn.__code__, namespace, name, fn.__defaults__, fn.__closure__)
    out.__qualname__ = name
    out.__doc__ = fn.__doc__
    return out
