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
length of a number literal and the size of any number that sympy's automatic
simplification would build. Powers are checked *before* sympy sees them:
``2**(10**10**10)``, ``(2*a)**(10**18)`` (sympy distributes the power over the
factor 2) and ``exp(10**18*log(2))`` (sympy rewrites it as ``2**(10**18)``)
are refused, not computed. Every constant (``exp(1000)``, ``log(0)``,
``sqrt(-1)``, ``1/0``) is evaluated in floating point by a small evaluator
of our own, never by sympy's ``evalf``, and must be a finite real number.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp
import sympy.tensor.tensor  # noqa: F401  sympy imports it on the first sum it builds (0.14 s, through exec): at start-up, not in a definition's work

from .errors import ExpressionError
from .functions import FUNCTIONS

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
MAX_TEXT = 20_000          # characters in one expression
MAX_DEPTH = 60             # nesting of parentheses, calls and operators
MAX_LITERAL = 60           # characters in one number literal
MAX_LITERAL_EXPONENT = 400  # |e| in 1.5e-7
MAX_NUMBER_BITS = 4096     # size of a numerator or denominator after folding
MAX_FLOAT_BITS = 1024      # |constant| < 2**1024 (about 1.8e308): floating point must hold it

_TOKEN_RE = re.compile(r"""
    (?P<space>[ \t\n\r\f\v]+)
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^(),@])
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
    tree: object = None         # the parse tree (``Ast``): the expression as written


@dataclass(frozen=True)
class _Tok:
    kind: str   # number | name | op | end
    text: str
    pos: int


def short(value, limit: int = 24) -> str:
    """``value`` as text, cut for an error message (numbers keep their digit count)."""
    if isinstance(value, (int, sp.Integer)) and not isinstance(value, bool):
        n = int(value)
        if n.bit_length() > 14_000:
            return f"a number of {n.bit_length()} bits"
        digits = str(abs(n))
        if len(digits) > limit:
            return f"{'-' if n < 0 else ''}{digits[0]}.{digits[1:4]}e{len(digits) - 1}"
        return str(n)
    try:
        text = str(value)
    except ValueError:   # an integer too long to print
        return "a very large number"
    if len(text) <= limit:
        return text
    return f"{text[:limit - 8]}…({len(text)} characters)"


def _tokenize(text: str, grammar=None) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    matmul = grammar is not None and grammar.matmul
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        if not m or (m.group() == "@" and not matmul):
            ch = text[i]
            if ch == "_" or (ch.isalpha() and not ch.isascii()):
                hint = "names start with an ASCII letter and contain letters, digits and _; write alpha for α"
            elif not ch.isascii() and (ch.isdigit() or ch.isnumeric()):
                hint = "numbers are written with the ASCII digits 0-9"
            elif ch == "@":
                hint = "'@' multiplies vectors and matrices: declare them under `shapes:` (for scalars write *)"
            else:
                hint = _HINTS.get(ch, "allowed: names, numbers, + - * / ** ^, parentheses and the functions "
                                      + ", ".join(FUNCTIONS))
            raise ExpressionError(f"unexpected character {ch!r}", offset=i, hint=hint)
        kind = m.lastgroup
        if kind != "space":
            toks.append(_Tok(kind, m.group(), i))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


def _number(tok: _Tok) -> sp.Rational:
    text = tok.text
    if len(text) > MAX_LITERAL:
        raise ExpressionError(f"the number {short(text)} is too long (at most {MAX_LITERAL} characters)",
                              offset=tok.pos)
    mant, _, exp = text.lower().partition("e")
    if exp and abs(int(exp)) > MAX_LITERAL_EXPONENT:
        raise ExpressionError(f"the number {short(text)} is out of range (exponent at most {MAX_LITERAL_EXPONENT})",
                              offset=tok.pos)
    if exp or "." in mant:
        value = sp.Rational(text)       # exact: 0.1 is 1/10
    else:
        value = sp.Integer(int(text))
    if _magnitude_bits(value) > MAX_FLOAT_BITS:
        raise ExpressionError(f"the number {short(text)} is too large (at most about 1.8e308)", offset=tok.pos)
    return value


def _bits(value: sp.Rational) -> int:
    """The size of a rational in bits: its larger part (0 for 0 and ±1)."""
    p, q = abs(int(value.p)), int(value.q)
    if q == 1 and p <= 1:
        return 0
    return max(p.bit_length(), q.bit_length())


def _magnitude_bits(value: sp.Rational) -> int:
    """About log2 |value| (a rational), for the range of floating-point numbers."""
    p = abs(int(value.p))
    return p.bit_length() - int(value.q).bit_length() if p else 0


def _size(value: sp.Expr) -> int:
    """The size in bits of the largest rational inside a constant."""
    if value.is_Rational:
        return _bits(value)
    return max((_bits(a) for a in value.atoms(sp.Rational)), default=1) or 1


def _too_big(value: sp.Expr) -> bool:
    if value.is_Rational:
        return _bits(value) > MAX_NUMBER_BITS or _magnitude_bits(value) > MAX_FLOAT_BITS
    return False


def _check_pow(base: sp.Expr, exponent: sp.Expr, pos: int) -> None:
    """Refuse base**exponent where sympy would build a huge number while simplifying it.

    Number bases are raised by sympy at once; other bases hand their
    constant factors to the power ((2*a)**n is 2**n * a**n), so those factors
    count too. Powers with a symbolic exponent stay unevaluated.
    """
    if base.is_number and not exponent.is_number:
        try:
            value = _float_value(base, {})
        except ArithmeticError:
            value = None
        if value is not None and value <= 0:
            raise ExpressionError(f"{short(base)} to a variable power is not a real function",
                                  offset=pos, hint="the base of a variable power must be a positive constant")
        return
    if not (exponent.is_Number and exponent.is_Rational):
        return
    p, q = abs(int(exponent.p)), int(exponent.q)
    # sympy may raise the base to the numerator p before it takes the q-th root: count p, not p/q
    if base.is_number:
        if base.is_Rational and _bits(base) == 0:
            return   # 0, 1, -1 to any power: instant
        if q > 1000 or p > 100_000 or _size(base) * p > MAX_NUMBER_BITS:
            shown = short(exponent) if exponent.is_Integer else f"({short(exponent)})"
            raise ExpressionError(f"the constant power {short(base)}**{shown} is too large to compute",
                                  offset=pos, hint="numbers in a definition are limited to about 1.8e308")
        return
    if max(p.bit_length(), q.bit_length()) > 64:
        raise ExpressionError(f"the exponent {short(exponent)} is too large", offset=pos,
                              hint="exponents are limited to 64-bit integers and fractions")
    factors = [f for f in sp.Mul.make_args(base) if f.is_number]
    if factors and max(_size(f) for f in factors) * p > MAX_NUMBER_BITS:
        raise ExpressionError(f"the power {short(exponent)} of a constant factor is too large to compute",
                              offset=pos, hint="numbers in a definition are limited to about 1.8e308")


def _check_exp(arg: sp.Expr, pos: int) -> None:
    """exp(n*log(x)) is x**n to sympy: check that power before sympy computes it."""
    for term in sp.Add.make_args(arg):
        factors = sp.Mul.make_args(term)
        logs = [f for f in factors if isinstance(f, sp.log)]
        if len(logs) == 1:
            coeff = sp.Mul(*[f for f in factors if f is not logs[0]])
            if coeff.is_number:
                _check_pow(logs[0].args[0], coeff, pos)


class _NotFinite(ArithmeticError):
    pass


class _NotRealConstant(ArithmeticError):
    pass


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _log(x: float) -> float:
    if x < 0:
        raise _NotRealConstant
    if x == 0:
        raise _NotFinite
    return math.log(x)


_FLOAT_FUNCS = {
    "exp": math.exp, "log": _log, "tanh": math.tanh, "sin": math.sin, "cos": math.cos, "Abs": abs,
    "sigmoid": _sigmoid, "softplus": _softplus, "relu": lambda x: max(x, 0.0),
    "Max2": lambda a, b: a if a >= b else b, "Min2": lambda a, b: a if a <= b else b,
}


def _float_value(e: sp.Expr, memo: dict) -> float | None:
    """A constant's value in floating point, computed without sympy's evalf.

    Raises _NotFinite or _NotRealConstant; None where the form is not known
    (then nothing is claimed about it).
    """
    try:
        return memo[e]
    except KeyError:
        pass
    try:
        if e.is_Rational:
            if _magnitude_bits(e) > MAX_FLOAT_BITS:
                raise _NotFinite
            v = int(e.p) / int(e.q)
        elif e is sp.S.ImaginaryUnit:
            raise _NotRealConstant
        elif e.is_NumberSymbol or e.is_Float:
            v = float(e)
        elif e.is_Add or e.is_Mul:
            parts = [_float_value(a, memo) for a in e.args]
            if any(x is None for x in parts):
                return None
            v = math.fsum(parts) if e.is_Add else math.prod(parts)
        elif e.is_Pow:
            b, x = (_float_value(a, memo) for a in e.args)
            if b is None or x is None:
                return None
            if b == 0 and x < 0:
                raise _NotFinite
            if b < 0 and not (e.exp.is_Integer):
                raise _NotRealConstant
            v = math.pow(b, x)
        else:
            f = _FLOAT_FUNCS.get(type(e).__name__)
            if f is None:
                return None
            args = [_float_value(a, memo) for a in e.args]
            if any(x is None for x in args):
                return None
            v = f(*args)
    except (OverflowError, ZeroDivisionError):
        raise _NotFinite from None
    except ValueError:
        raise _NotRealConstant from None
    if isinstance(v, complex):
        raise _NotRealConstant
    if not math.isfinite(v):
        raise _NotFinite
    memo[e] = v
    return v


# ----------------------------------------------------------------- the parse tree ---
#
# The parser gives a tree that keeps the expression as written: the order of the terms of a
# sum and of the factors of a product, the operators used, each number's text. Builders turn
# it into what a stage needs: ``build_scalar`` into sympy (the scalar view), the layer view's
# builder into tensor expressions, the document printer into LaTeX as the user wrote it.
# Sums and products are flat (n-ary), so that no walk over a long sum needs deep recursion.

@dataclass(frozen=True)
class Num:
    text: str                   # as written: "0.5", "1e-3"
    value: sp.Rational          # exact
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Neg:
    """Unary minus (a unary plus is dropped)."""
    arg: "Ast"
    pos: int


@dataclass(frozen=True)
class Sum:
    """t0 ± t1 ± …: ``terms`` is ((+1, t0), (±1, t1), …), in the order written."""
    terms: tuple
    pos: int                    # position of the last operator (where a sympy-level error is reported)


@dataclass(frozen=True)
class Product:
    """f0 op f1 op …: ``factors`` is (("*", f0), (op, f1), …) with op in * / @, in the order written."""
    factors: tuple
    pos: int                    # position of the last operator
    op_pos: tuple = ()          # position of each factor's operator (the first factor's is its own)


@dataclass(frozen=True)
class Power:
    base: "Ast"
    exponent: "Ast"
    op: str                     # "**" or "^", as written
    pos: int                    # position of the operator


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    pos: int                    # position of the function's name


Ast = Num | Name | Neg | Sum | Product | Power | Call


@dataclass(frozen=True)
class Grammar:
    """What an expression may use: functions (name -> (min, max) arguments) and ``@``."""
    functions: tuple            # ((name, (lo, hi)), …)
    matmul: bool = False

    @property
    def table(self) -> dict:
        return dict(self.functions)


SCALAR = Grammar(tuple((name, arity) for name, (_, arity) in FUNCTIONS.items()))


def ast_names(tree: Ast) -> tuple[str, ...]:
    """The names a tree uses, in order of first use (iterative: any length of sum)."""
    seen: dict[str, None] = {}
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, Name):
            seen.setdefault(t.name, None)
        elif isinstance(t, Neg):
            stack.append(t.arg)
        elif isinstance(t, Sum):
            stack.extend(a for _, a in reversed(t.terms))
        elif isinstance(t, Product):
            stack.extend(a for _, a in reversed(t.factors))
        elif isinstance(t, Power):
            stack += [t.exponent, t.base]
        elif isinstance(t, Call):
            stack.extend(reversed(t.args))
    return tuple(seen)


class _Parser:
    """Recursive descent over the tokens -> a parse tree (no sympy here)."""

    def __init__(self, text: str, grammar: Grammar):
        self.text = text
        self.grammar = grammar
        self.functions = grammar.table
        self.toks = _tokenize(text, grammar)
        self.i = 0
        self.depth = -1         # the whole expression is level 0; each (…), call, sign or power one more

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
        return ExpressionError(message, offset=tok.pos, hint=hint)

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)",
                             hint="split it into several named equations")

    # -- grammar -------------------------------------------------------
    def parse(self) -> Ast:
        if not self.text.strip():
            raise ExpressionError("the expression is empty", offset=0)
        tree = self.expr()
        if self.tok.kind != "end":
            t = self.tok
            if t.text == ")":
                raise self.error("unmatched ')'")
            if t.text == "(":
                raise self.error("'(' after a value: write * for a product", hint="e.g. 2*(a + b)")
            raise self.error(f"expected an operator before {short(t.text)!r}", hint="write * for a product, e.g. 2*a")
        return tree

    def expr(self) -> Ast:
        self.enter()
        first = self.term()
        if self.tok.text not in ("+", "-"):
            self.depth -= 1
            return first
        terms, op = [(1, first)], None
        while self.tok.text in ("+", "-"):
            op = self.take()
            terms.append((1 if op.text == "+" else -1, self.term()))
        self.depth -= 1
        return Sum(tuple(terms), op.pos)

    def term(self) -> Ast:
        first = self.unary()
        if self.tok.text not in ("*", "/", "@"):
            return first
        factors, op, where = [("*", first)], None, [self.tok.pos]
        while self.tok.text in ("*", "/", "@"):
            op = self.take()
            where.append(op.pos)
            factors.append((op.text, self.unary()))
        return Product(tuple(factors), op.pos, tuple(where))

    def unary(self) -> Ast:
        if self.tok.text in ("+", "-"):
            op = self.take()
            self.enter()
            value = self.unary()
            self.depth -= 1
            return Neg(value, op.pos) if op.text == "-" else value
        return self.power()

    def power(self) -> Ast:
        base = self.atom()
        if self.tok.text in ("**", "^"):
            op = self.take()
            self.enter()
            exponent = self.unary()
            self.depth -= 1
            return Power(base, exponent, op.text, op.pos)
        return base

    def atom(self) -> Ast:
        t = self.tok
        if t.kind == "number":
            self.take()
            return Num(t.text, _number(t), t.pos)
        if t.kind == "name":
            self.take()
            if self.tok.text == "(":
                return self.call(t)
            return self.name(t)
        if t.text == "(":
            self.take()
            value = self.expr()
            if self.tok.text != ")":
                raise self.error("missing ')'", hint=f"the '(' at character {t.pos + 1} is not closed")
            self.take()
            return value
        if t.kind == "end":
            raise self.error("the expression ends too early: an operand is missing")
        raise self.error(f"unexpected {t.text!r}: an operand is missing")

    def name(self, t: _Tok) -> Ast:
        if not NAME_RE.match(t.text):
            raise self.error(f"{short(t.text)!r} is not an allowed name", t,
                             hint="names start with a letter and contain letters, digits and _")
        if t.text in self.functions:
            raise self.error(f"{t.text!r} is a function: call it, e.g. {t.text}(x)", t)
        return Name(t.text, t.pos)

    def call(self, t: _Tok) -> Ast:
        if t.text not in self.functions:
            close = difflib.get_close_matches(t.text, list(self.functions), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "the functions are " + ", ".join(self.functions)
            if t.text in TENSOR_FUNCTIONS and not self.grammar.matmul:
                hint = f"{t.text} works on vectors and matrices: declare them under `shapes:`"
            raise self.error(f"unknown function {short(t.text)!r}", t, hint=hint)
        lo, hi = self.functions[t.text]
        self.take()  # (   one level: each argument's expr() counts it, as for parentheses
        args = [self.expr()]
        while self.tok.text == ",":
            self.take()
            args.append(self.expr())
        if self.tok.text != ")":
            raise self.error(f"missing ')' after the arguments of {t.text}")
        self.take()
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"at least {lo}"
            raise self.error(f"{t.text} takes {want} argument{'s' if lo != 1 else ''}, got {len(args)}", t)
        return Call(t.text, tuple(args), t.pos)


# functions of vectors and matrices (the layer view, with `shapes`): name -> (min, max) arguments
TENSOR_FUNCTIONS = {"transpose": (1, 1), "sum": (1, 1), "mean": (1, 1), "softmax": (1, 1)}


class _Builder:
    """Parse tree -> sympy, refusing what sympy would choke on (see the module docstring)."""

    def __init__(self):
        self.memo: dict = {}

    def constant(self, value: sp.Expr, pos: int) -> None:
        """Refuse a constant that is undefined, complex, or beyond floating point."""
        if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise ExpressionError("this constant is undefined or infinite (division by zero, or log(0)?)",
                                  offset=pos)
        if _too_big(value):
            raise ExpressionError(f"the constant {short(value)} is too large", offset=pos,
                                  hint="numbers in a definition are limited to about 1.8e308")
        try:
            _float_value(value, self.memo)
        except _NotRealConstant:
            raise ExpressionError(f"the constant {short(value)} is not a real number", offset=pos,
                                  hint="sqrt and log need non-negative (positive) arguments") from None
        except _NotFinite:
            raise ExpressionError(f"the constant {short(value)} is infinite or too large for floating point",
                                  offset=pos, hint="numbers in a definition are limited to about 1.8e308") from None

    def check(self, value: sp.Expr, pos: int) -> sp.Expr:
        if value.is_number:
            self.constant(value, pos)
        return value

    def final_check(self, value: sp.Expr) -> None:
        """Constants that sympy made while combining terms (exp(a)*exp(b) is exp(a + b))."""
        stack = [value]
        while stack:
            e = stack.pop()
            if e.is_number:
                self.constant(e, 0)
            else:
                stack.extend(e.args)

    def build(self, t: Ast) -> sp.Expr:
        if isinstance(t, Num):
            return t.value
        if isinstance(t, Name):
            return symbol(t.name)
        if isinstance(t, Neg):
            return -self.build(t.arg)
        if isinstance(t, Sum):
            terms = [self.build(a) if s > 0 else -self.build(a) for s, a in t.terms]
            return self.check(sp.Add(*terms), t.pos)     # one Add: linear in the number of terms
        if isinstance(t, Product):
            factors = []
            for (op, a), where in zip(t.factors, t.op_pos):
                if op == "@":
                    raise ExpressionError("'@' multiplies vectors and matrices: declare them under `shapes:`",
                                          offset=where, hint="for scalars write * (or write the sum out)")
                value = self.build(a)
                if op == "/":
                    if value.is_Number and value.is_zero:
                        raise ExpressionError("division by zero", offset=where)
                    value = sp.Pow(value, -1)
                factors.append(value)
            return self.check(sp.Mul(*factors), t.pos)
        if isinstance(t, Power):
            base, exponent = self.build(t.base), self.build(t.exponent)
            _check_pow(base, exponent, t.pos)
            return self.check(sp.Pow(base, exponent), t.pos)
        if isinstance(t, Call):
            if t.func not in FUNCTIONS:
                raise ExpressionError(f"{t.func} works on vectors and matrices", offset=t.pos,
                                      hint="declare them under `shapes:`")
            args = [self.build(a) for a in t.args]
            if t.func == "exp":
                _check_exp(args[0], t.pos)
            return self.check(FUNCTIONS[t.func][0](*args), t.pos)
        raise TypeError(f"not a parse tree: {t!r}")


def parse_tree(text: str, *, grammar: Grammar = SCALAR, max_length: int | None = MAX_TEXT) -> Ast:
    """The parse tree of one expression. Raises ExpressionError."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression, got {type(text).__name__}")
    if max_length is not None and len(text) > max_length:
        raise ExpressionError(f"the expression is too long ({len(text)} characters, at most {MAX_TEXT})",
                              hint="split it into several named equations")
    return _Parser(text, grammar).parse()


def build_scalar(tree: Ast) -> Parsed:
    """A parse tree as a sympy expression (the scalar view). Raises ExpressionError."""
    b = _Builder()
    try:
        expr = b.build(tree)
        b.final_check(expr)
    except RecursionError:   # sympy's own recursion on a pathological expression
        raise ExpressionError("the expression is too complex", hint="split it into several named equations") from None
    except (ArithmeticError, ValueError) as e:   # a backstop: sympy's arithmetic on a case the checks missed
        raise ExpressionError(f"the expression cannot be computed ({type(e).__name__})",
                              hint="simplify its constants") from None
    return Parsed(expr, ast_names(tree), tree)


def check_constants(value: sp.Expr) -> None:
    """Refuse the constants in ``value`` that are undefined, infinite, complex or beyond floating point
    (``log(0)`` once a node known to be 0 is put in). Raises ExpressionError."""
    try:
        _Builder().final_check(value)
    except (ArithmeticError, ValueError):
        raise ExpressionError("the expression cannot be computed") from None


def parse_expression(text: str, *, max_length: int | None = MAX_TEXT) -> Parsed:
    """Parse one expression of a definition into sympy. Raises ExpressionError.

    ``max_length=None`` lifts the length limit, for the expressions that the
    network form writes itself (a neuron with thousands of inputs).
    """
    return build_scalar(parse_tree(text, max_length=max_length))
