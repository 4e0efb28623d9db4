"""Local derivatives, by named rule: one table, one line per operation.

Takes a node's expression and one parent's symbol; gives the local partial
derivative and the names of the rules used, in the order they were applied.
This differentiator is the derivation's own; ``check.py`` compares every
result with sympy's ``diff``, which knows nothing of this table.

``RULES`` maps a sympy class to ``Rule(name, formula, derivative)``. For a
function of one argument, ``derivative(u, f)`` is f'(u) written with ``u``
and ``f`` (the function's value, so that σ′ reads σ(1 − σ)); the chain rule
multiplies by u′. ``Add``, ``Mul`` and ``Pow`` are handled by the sum,
product/quotient and power rules below the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp

from .functions import Max2, Min2, logsumexp, relu, sigmoid, softplus


@dataclass(frozen=True)
class Rule:
    name: str          # short name, cited in the derivation
    formula: str       # the rule in LaTeX, shown in documents
    derivative: Callable | None = None   # f'(u) from (u, f(u)), for a function of one argument
    partials: Callable | None = None     # (∂f/∂u_1, ∂f/∂u_2, …) from f(u_1, u_2, …), for several


# One line per operation: class -> rule.
RULES: dict[type, Rule] = {
    sigmoid: Rule("σ′ = σ(1 − σ)", r"\sigma'(u) = \sigma(u)\,(1 - \sigma(u))", lambda u, f: f * (1 - f)),
    sp.tanh: Rule("tanh′ = 1 − tanh²", r"\tanh'(u) = 1 - \tanh^2(u)", lambda u, f: 1 - f ** 2),
    sp.exp: Rule("exp′ = exp", r"(e^{u})' = e^{u}", lambda u, f: f),
    sp.log: Rule("log′(u) = 1/u", r"\log'(u) = \frac{1}{u}", lambda u, f: 1 / u),
    softplus: Rule("softplus′ = σ", r"\operatorname{softplus}'(u) = \sigma(u)", lambda u, f: sigmoid(u)),
    relu: Rule("relu′(u) = [u > 0]", r"\operatorname{relu}'(u) = [u > 0]", lambda u, f: sp.Heaviside(u, 0)),
    sp.sin: Rule("sin′ = cos", r"\sin'(u) = \cos(u)", lambda u, f: sp.cos(u)),
    sp.cos: Rule("cos′ = −sin", r"\cos'(u) = -\sin(u)", lambda u, f: -sp.sin(u)),
    sp.Abs: Rule("|u|′ = sign(u)", r"\lvert u \rvert' = \operatorname{sign}(u)", lambda u, f: sp.sign(u)),
    Max2: Rule("max rule", r"\frac{\partial \max(a,b)}{\partial a} = [a \ge b]",
               partials=lambda e: (sp.Heaviside(e.args[0] - e.args[1], 1), sp.Heaviside(e.args[1] - e.args[0], 0))),
    Min2: Rule("min rule", r"\frac{\partial \min(a,b)}{\partial a} = [a \le b]",
               partials=lambda e: (sp.Heaviside(e.args[1] - e.args[0], 1), sp.Heaviside(e.args[0] - e.args[1], 0))),
    logsumexp: Rule("LSE′ = softmax", r"\frac{\partial}{\partial u_k} \log \sum_j e^{u_j} = e^{u_k - \log \sum_j e^{u_j}}",
                    partials=lambda e: tuple(sp.exp(u - e) for u in e.args)),
    sp.Add: Rule("sum rule", r"(u + v)' = u' + v'"),
    sp.Mul: Rule("product rule", r"(u\,v)' = u'\,v + u\,v'"),
    "constant": Rule("constant multiple rule", r"(c\,u)' = c\,u'"),
    "quotient": Rule("quotient rule", r"\left(\frac{u}{v}\right)' = \frac{u'\,v - u\,v'}{v^2}"),
    sp.Pow: Rule("power rule", r"(u^n)' = n\,u^{n-1}\,u'"),
    "exponential": Rule("exponential rule", r"(a^u)' = a^u \ln a \; u'"),
    "general power": Rule("general power rule", r"(u^v)' = u^v\left(v' \ln u + \frac{v\,u'}{u}\right)"),
    "chain": Rule("chain rule", r"\frac{\mathrm{d}}{\mathrm{d}x} f(u) = f'(u)\,\frac{\mathrm{d}u}{\mathrm{d}x}"),
    "identity": Rule("identity", r"\frac{\partial x}{\partial x} = 1"),
}


class _Diff:
    """Differentiates by the table, recording the rules used (in order, once each)."""

    def __init__(self, var: sp.Symbol):
        self.var = var
        self.used: dict[str, None] = {}

    def note(self, key):
        self.used.setdefault(RULES[key].name, None)

    def d(self, e: sp.Expr) -> sp.Expr:
        if not e.has(self.var):
            return sp.S.Zero
        if e == self.var:
            self.note("identity")
            return sp.S.One
        structural = _STRUCTURAL.get(type(e))
        if structural is not None:
            return structural(self, e)
        r = RULES.get(type(e))
        if r is not None and r.partials is not None:          # f(u_1, …, u_n): Σ ∂f/∂u_i · u_i'
            self.note(type(e))
            return sp.Add(*[p * self.d(u) for p, u in zip(r.partials(e), e.args)])
        if r is None or r.derivative is None or len(e.args) != 1:
            raise NotImplementedError(f"no rule for {type(e).__name__}")
        u = e.args[0]
        self.note(type(e))
        du = self.d(u)
        if u != self.var:
            self.note("chain")
        return r.derivative(u, e) * du

    def add(self, e: sp.Add) -> sp.Expr:
        self.note(sp.Add)
        return sp.Add(*[self.d(a) for a in e.args])

    def mul(self, e: sp.Mul) -> sp.Expr:
        dep = [a for a in e.args if a.has(self.var)]
        if len(dep) == 1:
            if len(e.args) > 1:
                self.note("constant")
            rest = sp.Mul(*[a for a in e.args if a is not dep[0]])
            return rest * self.d(dep[0])
        denominators = [a for a in dep if isinstance(a, sp.Pow) and a.exp.is_negative]
        self.note("quotient" if denominators else sp.Mul)
        terms = []
        for i, a in enumerate(e.args):
            if a.has(self.var):
                others = e.args[:i] + e.args[i + 1:]
                terms.append(sp.Mul(*others) * self.d(a))
        return sp.Add(*terms)

    def pow(self, e: sp.Pow) -> sp.Expr:
        base, exp = e.args
        if not exp.has(self.var):
            self.note(sp.Pow)
            db = self.d(base)
            if base != self.var:
                self.note("chain")
            return exp * base ** (exp - 1) * db
        if not base.has(self.var):
            self.note("exponential")
            de = self.d(exp)
            if exp != self.var:
                self.note("chain")
            return e * sp.log(base) * de
        self.note("general power")
        return e * (self.d(exp) * sp.log(base) + exp * self.d(base) / base)


# sums, products and powers: rules on the structure of the expression, not on a function
_STRUCTURAL = {sp.Add: _Diff.add, sp.Mul: _Diff.mul, sp.Pow: _Diff.pow}


def local_derivative(expr: sp.Expr, var: sp.Symbol) -> tuple[sp.Expr, tuple[str, ...]]:
    """∂expr/∂var by the rules table, and the names of the rules used."""
    dd = _Diff(var)
    result = dd.d(expr)
    return result, tuple(dd.used)
