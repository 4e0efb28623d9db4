"""High-precision evaluation of the project's sympy expressions with mpmath.

Takes an expression and values for its symbols (mpmath numbers); gives its
value. Dispatch is by class through one table, so every function the
definitions allow, and every function their derivatives produce, is listed
here once. Used by the checks (``check.py``) and the worked numbers.

A budget keeps every evaluation cheap: no value may reach 2**MAX_BITS in
magnitude (about 1e4932, the range of an 80-bit long double), and the
functions whose cost grows with their argument (``exp``, a power with a
non-integer exponent, an integer power) are refused *before* mpmath computes
them when their result would pass that bound. Past it, ``evaluate`` raises
``OutOfRange`` (a ``NotReal``): the checks then take another point.
Without the bound, ``exp(exp(exp(exp(3))))`` asks mpmath for an exponential
of 5e8, whose result has an exponent of 10**8.6 digits, and never returns.

``evaluate`` also records, in the cache it is given, the *scale* of the
computation: the largest binary magnitude (|log2|) of any value, and of the
exponentials hidden inside σ, softplus and tanh. At a working precision of
p bits, cancellation can lose about that many bits; the checks raise their
precision until it exceeds the scale before they call two values different.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from .functions import Max2, Min2, logsumexp, relu, sigmoid, softplus

MAX_BITS = 16384                  # |value| < 2**MAX_BITS
SCALE = "__scale__"               # the cache entry that holds the scale (bits)
_LOG2E = 1.4426950408889634


class NotReal(ArithmeticError):
    """The expression is not a finite real number at this point."""


class OutOfRange(NotReal):
    """A value at this point would reach 2**MAX_BITS in magnitude: refused before it is computed."""


def needed_digits(scale: int, digits: int) -> int:
    """The working precision at which cancellation of ``scale`` bits still leaves ``digits`` digits."""
    return digits + int(scale * 0.30103) + 1


def _mag(x) -> int:
    """About log2 |x| (0 for 0)."""
    return 0 if not x else int(mpmath.mag(x))


def _finite_mag(x):
    """About log2 |x| for a finite, non-zero mpf (its exponent + bit count), else None: fast, no mpmath call."""
    m = getattr(x, "_mpf_", None)
    if m is None or not m[1]:          # not an mpf, or 0, ±inf, nan (their mantissa is 0)
        return None
    return m[2] + m[3]


_EXP_LIMIT = MAX_BITS / _LOG2E


def _exp(x):
    m = _finite_mag(x)
    if m is not None and m > 13 and x > _EXP_LIMIT:      # |x| < 2**13 is always within the range
        raise OutOfRange(f"exp({mpmath.nstr(x, 6)})")
    return mpmath.exp(x)


def _heaviside(x, h0=None):
    if x > 0:
        return mpmath.mpf(1)
    if x < 0:
        return mpmath.mpf(0)
    return h0 if h0 is not None else mpmath.mpf("0.5")


def _mp_sigmoid(x):
    if x >= 0:
        return 1 / (1 + _exp(-x))
    e = _exp(x)
    return e / (1 + e)


def _mp_softplus(x):
    return mpmath.log1p(_exp(x)) if x < 0 else x + mpmath.log1p(_exp(-x))


def _logsumexp(*u):
    top = max(u)
    return top + mpmath.log(mpmath.fsum(_exp(x - top) for x in u))


def _power(b, x):
    """b ** x for a non-integer exponent value x: refused when the result would leave the range."""
    if b > 0 and b != 1 and x * mpmath.log(b, 2) > MAX_BITS:
        raise OutOfRange("a power")
    return b ** x


def _int_power(b, n: int):
    if b and n * (_mag(b) - (1 if n > 0 else 0)) > MAX_BITS:
        raise OutOfRange("an integer power")
    return b ** n


FUNCS = {
    sp.exp: _exp, sp.log: mpmath.log, sp.tanh: mpmath.tanh, sp.sin: mpmath.sin, sp.cos: mpmath.cos,
    sp.Abs: abs, sp.sign: lambda x: mpmath.sign(x), sigmoid: _mp_sigmoid, softplus: _mp_softplus,
    relu: lambda x: x if x > 0 else mpmath.mpf(0),
    Max2: lambda a, b: a if a >= b else b, Min2: lambda a, b: a if a <= b else b,
    # sympy's own derivatives of |u| for a u it cannot prove real hold these (values here are real)
    sp.re: lambda x: x, sp.im: lambda x: mpmath.mpf(0), sp.atan2: mpmath.atan2,
    sp.arg: lambda x: mpmath.pi if x < 0 else mpmath.mpf(0),
    logsumexp: _logsumexp,
    sp.Heaviside: _heaviside, sp.DiracDelta: lambda x, *k: mpmath.mpf(0) if x != 0 else mpmath.inf,
}

# functions that compute e**|x| inside: their argument counts towards the scale
_EXPONENTIAL = (sp.exp, sigmoid, softplus, sp.tanh)


def evaluate(expr: sp.Expr, env: dict, cache: dict | None = None):
    """The value of ``expr`` with symbols from ``env`` (symbol -> mpf), within the budget.

    Raises ``NotReal`` where the value is not a finite real number, and
    ``OutOfRange`` (a ``NotReal``) where a value would leave the range.
    ``cache[SCALE]`` gets the scale of everything evaluated into ``cache``.
    """
    cache = {} if cache is None else cache
    scale = cache.get(SCALE, 0)

    def ev(e):
        nonlocal scale
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
                v = _int_power(bv, int(x))
            elif x == sp.S.Half:
                v = mpmath.sqrt(bv)
            else:
                v = _power(bv, ev(x))
        else:
            f = FUNCS.get(type(e))
            if f is None:
                raise NotImplementedError(f"cannot evaluate {type(e).__name__}")
            args = [ev(a) for a in e.args]
            if isinstance(e, _EXPONENTIAL):
                m = _finite_mag(args[0])
                if m is not None:       # e**|x| has about 1.44|x| bits (below 2**5, an upper bound: 46)
                    bits = 46 if m < 5 else int(abs(float(args[0])) * _LOG2E) if m < 64 else 1 << 62
                    if bits > scale:
                        scale = bits
            v = f(*args)
        if isinstance(v, mpmath.mpc):
            if v.imag != 0:
                raise NotReal(str(e))
            v = v.real
        m = _finite_mag(v)
        if m is not None:
            if m > MAX_BITS:
                raise OutOfRange(str(e)[:80])
            if m > scale or -m > scale:
                scale = abs(m)
        cache[e] = v
        return v

    try:
        return ev(expr)
    except ZeroDivisionError:
        raise NotReal(str(expr)) from None
    finally:
        cache[SCALE] = scale
