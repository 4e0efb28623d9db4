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
"""
from .api import check_claim, check_claims, compile, derive, derive_all, graph, load, load_dict, loads
from .errors import (DefinitionError, DerivatorError, ExpressionError, InputError, UsageError,
                     VerificationError)
from .spec import examples

__version__ = "0.1.0"

__all__ = ["load", "load_dict", "loads", "derive", "derive_all", "compile", "graph", "examples",
           "check_claim", "check_claims",
           "DerivatorError", "InputError", "DefinitionError", "ExpressionError", "UsageError",
           "VerificationError"]
