"""The functions a definition may call, as sympy objects.

Takes nothing; gives ``FUNCTIONS`` (definition name -> builder) and the sympy
classes the project adds: ``sigmoid``, ``relu``, ``softplus``, ``Max2`` and
``Min2``. The others (``tanh``, ``exp``, ``log``, ``sqrt``, ``sin``, ``cos``,
``abs``) are sympy's own.

Each added class carries its derivative (``fdiff``) written in elementary
functions, independently of the rules table in ``rules.py``: sympy's ``diff``
of an expression is the independent differentiation that the derivations are
checked against, so it must not share code with the rules that the steps cite.

Derivative conventions at kinks (documented in the README):
``relu'(0) = 0``, ``abs'(0) = 0`` (sympy's ``sign(0) = 0``), and
``max(a, b)`` sends the gradient to ``a`` when ``a >= b`` (``min`` to ``a``
when ``a <= b``).
"""
from __future__ import annotations

import sympy as sp
from sympy import Function, Heaviside, S, exp, log


class sigmoid(Function):
    """The logistic function σ(x) = 1 / (1 + e^(−x))."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return S.Half
        return None

    def fdiff(self, argindex=1):
        x = self.args[0]
        return exp(-x) / (1 + exp(-x)) ** 2

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + exp(-x))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real


class softplus(Function):
    """softplus(x) = log(1 + e^x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return 1 / (1 + exp(-x))

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return log(1 + exp(x))

    def _eval_is_real(self):
        return self.args[0].is_real


class relu(Function):
    """relu(x) = max(0, x), with relu'(0) = 0."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return x if x > 0 else S.Zero
        return None

    def fdiff(self, argindex=1):
        return Heaviside(self.args[0], 0)

    def _eval_is_real(self):
        return self.args[0].is_real


class Max2(Function):
    """max(a, b); the gradient goes to a when a >= b."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a >= b else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return Heaviside(a - b, 1) if argindex == 1 else Heaviside(b - a, 0)

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real


class Min2(Function):
    """min(a, b); the gradient goes to a when a <= b."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return a if a <= b else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return Heaviside(b - a, 1) if argindex == 1 else Heaviside(a - b, 0)

    def _eval_is_real(self):
        return self.args[0].is_real and self.args[1].is_real


class logsumexp(Function):
    """log(Σ exp(u_k)): not a definition function; ``stable.py`` writes softmax losses with it."""

    @classmethod
    def eval(cls, *args):
        if not args:
            raise TypeError("logsumexp needs at least one argument")
        return None

    def fdiff(self, argindex=1):
        return exp(self.args[argindex - 1]) / sp.Add(*[exp(a) for a in self.args])

    def _eval_is_real(self):
        return all(a.is_real for a in self.args)


def _fold(cls):
    """max/min of two or more arguments, folded into binary calls: the first half, then the second
    half (max(a, b, c) is max(max(a, b), c)). The tree is as shallow as it can be (300 arguments
    nest 9 deep, not 300), and the gradient still goes to the first of the arguments that tie:
    every binary call sends it to its first argument on a tie."""
    def build(*args):
        if len(args) == 1:
            return args[0]
        half = (len(args) + 1) // 2
        return cls(build(*args[:half]), build(*args[half:]))
    return build


# name in a definition -> (builder, allowed argument counts as (min, max))
FUNCTIONS = {
    "sigmoid": (sigmoid, (1, 1)),
    "tanh": (sp.tanh, (1, 1)),
    "relu": (relu, (1, 1)),
    "softplus": (softplus, (1, 1)),
    "exp": (sp.exp, (1, 1)),
    "log": (sp.log, (1, 1)),
    "sqrt": (sp.sqrt, (1, 1)),
    "sin": (sp.sin, (1, 1)),
    "cos": (sp.cos, (1, 1)),
    "abs": (sp.Abs, (1, 1)),
    "max": (_fold(Max2), (2, None)),
    "min": (_fold(Min2), (2, None)),
}
