"""derivator: step-by-step, machine-checked derivations of backpropagation gradients.

    import derivator
    d = derivator.load("net.yaml")           # or derivator.load_dict({...}), or an example name
    proof = derivator.derive(d, wrt="w5")    # steps, paths, result, verified
    proof.to_markdown(); proof.to_latex()
    grad = derivator.compile(d)              # one NumPy function for every gradient
    out = grad(x1=..., w1=...); out.gradient["w5"]
    tot = grad.mean(**batch)
    verdict = derivator.check_claim(d, wrt="w1", claim="2*(o1 - y1)*w5*h1*(1 - h1)*x1")
    verdict.correct, verdict.kind, verdict.counterexample; verdict.to_markdown()

Importing the package is cheap: the API (and with it sympy and NumPy) is
imported on first use of one of its names (PEP 562), so that the command
line can import sympy inside its handling of Ctrl-C.
"""
import sys as _sys
import types as _types

from .errors import (DefinitionError, DerivatorError, ExpressionError, InputError, UsageError,
                     VerificationError)

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {"load": "api", "load_dict": "api", "loads": "api", "derive": "api", "derive_all": "api",
         "compile": "api", "graph": "api", "check_claim": "api", "check_claims": "api", "examples": "spec"}

__all__ = ["load", "load_dict", "loads", "derive", "derive_all", "compile", "graph", "examples",
           "check_claim", "check_claims",
           "DerivatorError", "InputError", "DefinitionError", "ExpressionError", "UsageError",
           "VerificationError"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'derivator' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    setattr(_sys.modules[__name__], name, value)
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(_types.ModuleType):
    """The package module. Importing the submodule ``derivator.graph`` makes Python set the package's
    attribute ``graph`` to that module; the public ``derivator.graph`` is the API function, so a
    submodule never replaces a public name (the submodule stays in ``sys.modules``)."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
