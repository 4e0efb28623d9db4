"""derivator: step-by-step, machine-checked derivations of backpropagation gradients.

    import derivator
    d = derivator.load("net.yaml")           # or derivator.load_dict({...}), or an example name
    proof = derivator.derive(d, wrt="w5")    # steps, paths, result, verified
    proof.to_markdown(); proof.to_latex()
    grad = derivator.compile(d)              # one NumPy function for every gradient
    out = grad(x1=..., w1=...); out.gradient["w5"]
    tot = grad.mean(**batch)
"""
from .api import compile, derive, derive_all, graph, load, load_dict, loads
from .errors import (DefinitionError, DerivatorError, ExpressionError, InputError, UsageError,
                     VerificationError)
from .spec import examples

__version__ = "0.1.0"

__all__ = ["load", "load_dict", "loads", "derive", "derive_all", "compile", "graph", "examples",
           "DerivatorError", "InputError", "DefinitionError", "ExpressionError", "UsageError",
           "VerificationError"]
