"""Lazy attributes for a package (scientific Python's SPEC 1, as in ``lazy_loader.attach``).

A package lists which of its public names live in which submodule; the submodule
is imported the first time one of its names is used, so importing the package
costs nothing beyond the package itself.
"""
import importlib


def attach(package, names, submodules=()):
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        Public name -> the module (relative to ``package``) that defines it.
    submodules : dict of str to str or iterable of str
        Attribute name -> module path relative to ``package``, reachable as
        ``package.<name>`` without an import statement (an iterable means each
        name is its own path).
    """
    if not isinstance(submodules, dict):
        submodules = {name: name for name in submodules}
    public = sorted(set(names) | set(submodules))

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
        elif name in submodules:
            value = importlib.import_module(f".{submodules[name]}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(public))

    return __getattr__, __dir__, public
