"""Expressions: text of a definition -> sympy expression, without evaluating text.

Takes one expression string; gives a sympy expression and the names it uses,
in order of first use. The text is tokenized and parsed here by recursive
descent and built into sympy objects directly: ``sympify``, ``parse_expr``,
``eval`` and ``exec`` never see user text, so a definition cannot run code.

Grammar (Python's precedence; ``^`` is a synonym of ``**``)::

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/') unary)*
    unary  := ('+' | '-') unary | power
    power  := atom (('**' | '^') unary)?          right-associative
    atom   := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'

Limits instead of hangs: the length of the text, the nesting depth, the
length of a number literal and the size of any number that constant folding
would produce (``2**(10**10**10)`` is refused, not computed).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .errors import ExpressionError
from .functions import FUNCTIONS

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
MAX_TEXT = 20_000          # characters in one expression
MAX_DEPTH = 60             # nesting of parentheses, calls and operators
MAX_LITERAL = 60           # characters in one number literal
MAX_LITERAL_EXPONENT = 400  # |e| in 1.5e-7
MAX_NUMBER_BITS = 4096     # size of a numerator or denominator after folding

_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^(),])
""", re.VERBOSE)

_HINTS = {
    ".": "attribute access and method calls are not allowed",
    "[": "subscripts are not allowed; write x_1 or x1 for an index",
    "]": "subscripts are not allowed",
    "'": "strings are not allowed in expressions",
    '"': "strings are not allowed in expressions",
    ":": "lambdas, slices and annotations are not allowed",
    "=": "an equation's right-hand side is an expression; comparisons and assignments are not allowed",
    "<": "comparisons are not allowed; use max(a, b) or min(a, b)",
    ">": "comparisons are not allowed; use max(a, b) or min(a, b)",
    "@": "matrix products and decorators are not allowed; write the sum out",
    "%": "the modulo operator is not allowed",
    "!": "factorials and negations are not allowed",
    "{": "sets and dictionaries are not allowed",
    "}": "sets and dictionaries are not allowed",
    "\\": "LaTeX is not allowed in expressions; write sigmoid(z), w_1, alpha",
}


@lru_cache(maxsize=None)
def symbol(name: str) -> sp.Symbol:
    """The one sympy symbol for a definition name (every name is real)."""
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Parsed:
    expr: sp.Expr
    names: tuple[str, ...]      # in order of first use


@dataclass(frozen=True)
class _Tok:
    kind: str   # number | name | op | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        if not m:
            ch = text[i]
            raise ExpressionError(f"unexpected character {ch!r} in {text!r}", column=i,
                                  hint=_HINTS.get(ch, "allowed: names, numbers, + - * / ** ^, parentheses and the functions "
                                                      + ", ".join(FUNCTIONS)))
        kind = m.lastgroup
        if kind != "space":
            toks.append(_Tok(kind, m.group(), i))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


def _number(tok: _Tok) -> sp.Rational:
    text = tok.text
    if len(text) > MAX_LITERAL:
        raise ExpressionError(f"number literal {text[:20]}... is too long ({len(text)} characters, at most {MAX_LITERAL})",
                              column=tok.pos)
    mant, _, exp = text.lower().partition("e")
    if exp and abs(int(exp)) > MAX_LITERAL_EXPONENT:
        raise ExpressionError(f"number {text} is out of range (exponent at most {MAX_LITERAL_EXPONENT})", column=tok.pos)
    if exp or "." in mant:
        return sp.Rational(text)       # exact: 0.1 is 1/10
    return sp.Integer(int(text))


def _too_big(value: sp.Expr) -> bool:
    if value.is_Rational:
        return max(abs(value.p).bit_length(), abs(value.q).bit_length()) > MAX_NUMBER_BITS
    return False


def _safe_pow(base: sp.Expr, exponent: sp.Expr, pos: int) -> sp.Expr:
    """base**exponent, refusing constant powers that would build huge numbers."""
    if base.is_Number and exponent.is_Number:
        if exponent.is_Integer:
            bits = max(abs(base.p).bit_length(), abs(base.q).bit_length(), 1) if base.is_Rational else 64
            if abs(int(exponent)) > 100_000 or bits * abs(int(exponent)) > MAX_NUMBER_BITS:
                raise ExpressionError(f"the constant power {base}**{exponent} is too large to compute", column=pos,
                                      hint="numbers in a definition are limited to about 1200 digits")
        elif exponent.is_Rational and base.is_Rational:
            if abs(exponent.p) > 1000 or exponent.q > 1000:
                raise ExpressionError(f"the constant power {base}**{exponent} is too large to compute", column=pos)
    elif exponent.is_Number and exponent.is_Rational:
        if max(abs(exponent.p).bit_length(), abs(exponent.q).bit_length()) > 64:
            raise ExpressionError(f"the exponent {exponent} is too large", column=pos,
                                  hint="exponents are limited to 64-bit integers and fractions")
    return sp.Pow(base, exponent)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.names: dict[str, None] = {}

    # -- helpers -------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, message: str, tok: _Tok | None = None, hint: str | None = None) -> ExpressionError:
        tok = tok or self.tok
        return ExpressionError(message, column=tok.pos, hint=hint)

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                             hint="split it into several named equations")

    def check(self, value: sp.Expr, tok: _Tok) -> sp.Expr:
        if value.is_number:
            if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                raise self.error("this constant is undefined or infinite (division by zero?)", tok)
            if value.is_real is False:
                raise self.error("this constant is not a real number", tok)
            if _too_big(value):
                raise self.error("a constant in this expression is too large", tok,
                                 hint="numbers in a definition are limited to about 1200 digits")
        return value

    # -- grammar -------------------------------------------------------
    def parse(self) -> Parsed:
        if not self.text.strip():
            raise ExpressionError("empty expression", column=0)
        expr = self.expr()
        if self.tok.kind != "end":
            t = self.tok
            if t.text == ")":
                raise self.error("unmatched ')'")
            if t.text == "(":
                raise self.error("'(' after a value: write * for a product", hint="e.g. 2*(a + b)")
            raise self.error(f"expected an operator before {t.text!r}", hint="write * for a product, e.g. 2*a")
        return Parsed(expr, tuple(self.names))

    def expr(self) -> sp.Expr:
        self.enter()
        value = self.term()
        while self.tok.text in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = self.check(value + rhs if op.text == "+" else value - rhs, op)
        self.depth -= 1
        return value

    def term(self) -> sp.Expr:
        value = self.unary()
        while self.tok.text in ("*", "/"):
            op = self.take()
            rhs = self.unary()
            value = self.check(value * rhs if op.text == "*" else value / rhs, op)
        return value

    def unary(self) -> sp.Expr:
        if self.tok.text in ("+", "-"):
            op = self.take()
            self.enter()
            value = self.unary()
            self.depth -= 1
            return -value if op.text == "-" else value
        return self.power()

    def power(self) -> sp.Expr:
        base = self.atom()
        if self.tok.text in ("**", "^"):
            op = self.take()
            self.enter()
            exponent = self.unary()
            self.depth -= 1
            return self.check(_safe_pow(base, exponent, op.pos), op)
        return base

    def atom(self) -> sp.Expr:
        t = self.tok
        if t.kind == "number":
            self.take()
            return _number(t)
        if t.kind == "name":
            self.take()
            if self.tok.text == "(":
                return self.call(t)
            return self.name(t)
        if t.text == "(":
            self.take()
            value = self.expr()
            if self.tok.text != ")":
                raise self.error("missing ')'", hint=f"the '(' at column {t.pos + 1} is not closed")
            self.take()
            return value
        if t.kind == "end":
            raise self.error("the expression ends too early: an operand is missing")
        raise self.error(f"unexpected {t.text!r}: an operand is missing")

    def name(self, t: _Tok) -> sp.Expr:
        if not NAME_RE.match(t.text):
            raise self.error(f"{t.text!r} is not an allowed name", t,
                             hint="names start with a letter and contain letters, digits and _")
        if t.text in FUNCTIONS:
            raise self.error(f"{t.text!r} is a function: call it, e.g. {t.text}(x)", t)
        self.names.setdefault(t.text, None)
        return symbol(t.text)

    def call(self, t: _Tok) -> sp.Expr:
        if t.text not in FUNCTIONS:
            close = difflib.get_close_matches(t.text, list(FUNCTIONS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "the functions are " + ", ".join(FUNCTIONS)
            raise self.error(f"unknown function {t.text!r}", t, hint=hint)
        build, (lo, hi) = FUNCTIONS[t.text]
        self.take()  # (
        self.enter()
        args = [self.expr()]
        while self.tok.text == ",":
            self.take()
            args.append(self.expr())
        if self.tok.text != ")":
            raise self.error(f"missing ')' after the arguments of {t.text}")
        self.take()
        self.depth -= 1
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"at least {lo}"
            raise self.error(f"{t.text} takes {want} argument{'s' if lo != 1 else ''}, got {len(args)}", t)
        return self.check(build(*args), t)


def parse_expression(text: str) -> Parsed:
    """Parse one expression of a definition. Raises ExpressionError."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"expression is too long ({len(text)} characters, at most {MAX_TEXT})",
                              hint="split it into several named equations")
    return _Parser(text).parse()
