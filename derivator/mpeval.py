"""High-precision evaluation of the project's sympy expressions with mpmath.

Takes an expression and values for its symbols (mpmath numbers); gives its
value. Dispatch is by class through one table, so every function the
definitions allow, and every function their derivatives produce, is listed
here once. Used by the checks (``check.py``) and the worked numbers.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from .functions import Max2, Min2, logsumexp, relu, sigmoid, softplus


def _heaviside(x, h0=None):
    if x > 0:
        return mpmath.mpf(1)
    if x < 0:
        return mpmath.mpf(0)
    return h0 if h0 is not None else mpmath.mpf("0.5")


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def _mp_softplus(x):
    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


FUNCS = {
    sp.exp: mpmath.exp, sp.log: mpmath.log, sp.tanh: mpmath.tanh, sp.sin: mpmath.sin, sp.cos: mpmath.cos,
    sp.Abs: abs, sp.sign: lambda x: mpmath.sign(x), sigmoid: _mp_sigmoid, softplus: _mp_softplus,
    relu: lambda x: x if x > 0 else mpmath.mpf(0),
    Max2: lambda a, b: a if a >= b else b, Min2: lambda a, b: a if a <= b else b,
    # sympy's own derivatives of |u| for a u it cannot prove real hold these (values here are real)
    sp.re: lambda x: x, sp.im: lambda x: mpmath.mpf(0), sp.atan2: mpmath.atan2,
    sp.arg: lambda x: mpmath.pi if x < 0 else mpmath.mpf(0),
    logsumexp: lambda *u: max(u) + mpmath.log(mpmath.fsum(mpmath.exp(x - max(u)) for x in u)),
    sp.Heaviside: _heaviside, sp.DiracDelta: lambda x, *k: mpmath.mpf(0) if x != 0 else mpmath.inf,
}


class NotReal(ArithmeticError):
    """The expression is not a finite real number at this point."""


def evaluate(expr: sp.Expr, env: dict, cache: dict | None = None):
    """The value of ``expr`` with symbols from ``env`` (symbol -> mpf)."""
    cache = {} if cache is None else cache

    def ev(e):
        try:
            return cache[e]
        except KeyError:
            pass
        if e.is_Symbol:
            v = env[e]
        elif e.is_Integer:
            v = mpmath.mpf(int(e))
        elif e.is_Rational:
            v = mpmath.mpf(int(e.p)) / int(e.q)
        elif e.is_Number or e.is_NumberSymbol:
            v = mpmath.mpf(sp.Float(e, mpmath.mp.dps + 5))
        elif e.is_Add:
            v = mpmath.fsum(ev(a) for a in e.args)
        elif e.is_Mul:
            v = mpmath.fprod(ev(a) for a in e.args)
        elif e.is_Pow:
            b, x = e.args
            bv = ev(b)
            if x.is_Integer:
                v = bv ** int(x)
            elif x == sp.S.Half:
                v = mpmath.sqrt(bv)
            else:
                v = bv ** ev(x)
        else:
            f = FUNCS.get(type(e))
            if f is None:
                raise NotImplementedError(f"cannot evaluate {type(e).__name__}")
            v = f(*[ev(a) for a in e.args])
        if isinstance(v, mpmath.mpc):
            if v.imag != 0:
                raise NotReal(str(e))
            v = v.real
        cache[e] = v
        return v

    try:
        return ev(expr)
    except ZeroDivisionError:
        raise NotReal(str(expr)) from None
