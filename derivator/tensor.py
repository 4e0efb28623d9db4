"""Tensors: the layer view's intermediate representation, its shapes, printers and NumPy semantics.

Takes the parse tree of an expression (``expr.parse_tree`` with the tensor grammar) and the shapes
of the names it uses; gives a tensor expression (``T``): a tree of frozen dataclasses, each with its
shape — ``()`` a scalar, ``(n,)`` a vector (a column), ``(rows, cols)`` a matrix.

The operations (one class each)::

    Var(name, shape)          a leaf or a node of the graph; adjoint=True: δ_name = ∂output/∂name
    Map(f, args, shape)       elementwise: f is a SCALAR sympy expression in the placeholders _0, _1, …,
                              one per argument; arguments have the map's shape or are scalars
                              (broadcast). ``W1 @ x + b1``, ``tanh(z1)``, ``(y - a)**2`` are maps.
    MatMul(a, b)              matrix·matrix, matrix·vector, vector·matrix, vector·vector (a dot product)
    Outer(a, b)               a bᵀ of two vectors (written ``a @ transpose(b)``)
    Transpose(a)              of a matrix
    Sum(a), Mean(a)           of every entry, to a scalar
    Softmax(a)                of a vector
    Index(a, index)           one entry (0-based), to a scalar

Because every elementwise operation is a ``Map`` of a scalar expression, the local derivatives
of the layer view are those of the scalar view (``rules.local_derivative``), checked the same way.

Printers: ``to_str`` (the JSON's ``result``: ``delta_z1 @ transpose(x)``; an adjoint prints as
``delta_NAME``, an entry as ``NAME[i, j]`` with 0-based indices), ``to_latex`` (matrix notation:
Wᵀ, ⊙ between tensors in a map, 1-based subscripts for entries).

Numeric semantics, in one place: ``NUMPY`` maps each operation to a NumPy function and the code a
generator prints for it (one line per operation, single sample; maps print their scalar ``f``
with the elementwise functions of ``ELEMENTWISE``). ``evaluate`` interprets a tensor expression.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from math import prod
from typing import Callable

import numpy as np
import sympy as sp

from .errors import ExpressionError
from .expr import (TENSOR_FUNCTIONS, Ast, Call, Grammar, Name, Neg, Num, Power, Product, Sum as SumAst,
                   _Builder, ast_names, parse_tree, symbol)
from .functions import FUNCTIONS, Max2, Min2, relu, sigmoid, softplus

Shape = tuple

TENSOR_GRAMMAR = Grammar(tuple((name, arity) for name, (_, arity) in FUNCTIONS.items())
                         + tuple(TENSOR_FUNCTIONS.items()), matmul=True)
ADJOINT_PREFIX = "delta_"     # δ_z1 prints as delta_z1 in str(), \delta_{z_1} in LaTeX


@lru_cache(maxsize=None)
def ph(i: int) -> sp.Symbol:
    """The placeholder for argument i of a map (not a definition name: names start with a letter)."""
    return symbol(f"_{i}")


def shape_text(shape: Shape) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def shape_latex(shape: Shape) -> str:
    r"""The space of a shape: \mathbb{R}, \mathbb{R}^{4}, \mathbb{R}^{4 \times 3}."""
    return r"\mathbb{R}" + ("^{" + r" \times ".join(str(n) for n in shape) + "}" if shape else "")


def size(shape: Shape) -> int:
    return prod(shape)


class ShapeError(ValueError):
    """Shapes that do not fit an operation (the front end turns it into an ExpressionError)."""


# ------------------------------------------------------------------ the IR ---

class T:
    """A tensor expression. Subclasses are frozen dataclasses with a ``shape``; ``parts`` are the operands."""

    __slots__ = ()
    parts: tuple = ()

    def __str__(self) -> str:
        return to_str(self)


class _Unary(T):
    __slots__ = ()

    @property
    def parts(self):
        return (self.a,)


class _Binary(T):
    __slots__ = ()

    @property
    def parts(self):
        return (self.a, self.b)


def _cached_hash(cls):
    """Frozen dataclasses hash their fields on every call; trees are hashed often: keep it."""
    fields_hash = cls.__hash__

    def __hash__(self):
        try:
            return self._h
        except AttributeError:
            h = fields_hash(self)
            object.__setattr__(self, "_h", h)
            return h
    cls.__hash__ = __hash__
    return cls


@_cached_hash
@dataclass(frozen=True)
class Var(T):
    name: str
    shape: Shape
    adjoint: bool = False

    @property
    def parts(self):
        return ()


@_cached_hash
@dataclass(frozen=True)
class Map(T):
    f: sp.Expr
    args: tuple
    shape: Shape

    @property
    def parts(self):
        return self.args


@_cached_hash
@dataclass(frozen=True)
class MatMul(_Binary):
    a: T
    b: T
    shape: Shape = field(default=None, compare=False)

    def __post_init__(self):
        if self.shape is None:
            object.__setattr__(self, "shape", matmul_shape(self.a.shape, self.b.shape))


@_cached_hash
@dataclass(frozen=True)
class Outer(_Binary):
    a: T
    b: T
    shape: Shape = field(default=None, compare=False)

    def __post_init__(self):
        if len(self.a.shape) != 1 or len(self.b.shape) != 1:
            raise ShapeError(f"an outer product needs two vectors, not {shape_text(self.a.shape)} and "
                             f"{shape_text(self.b.shape)}")
        object.__setattr__(self, "shape", (self.a.shape[0], self.b.shape[0]))


@_cached_hash
@dataclass(frozen=True)
class Transpose(_Unary):
    a: T
    shape: Shape = field(default=None, compare=False)

    def __post_init__(self):
        if len(self.a.shape) != 2:
            raise ShapeError(f"transpose needs a matrix, not a {_kind(self.a.shape)}")
        object.__setattr__(self, "shape", (self.a.shape[1], self.a.shape[0]))


@_cached_hash
@dataclass(frozen=True)
class Sum(_Unary):
    a: T
    shape: Shape = field(default=(), compare=False)


@_cached_hash
@dataclass(frozen=True)
class Mean(_Unary):
    a: T
    shape: Shape = field(default=(), compare=False)


@_cached_hash
@dataclass(frozen=True)
class Softmax(_Unary):
    a: T
    shape: Shape = field(default=None, compare=False)

    def __post_init__(self):
        if len(self.a.shape) != 1:
            raise ShapeError(f"softmax needs a vector, not a {_kind(self.a.shape)}")
        object.__setattr__(self, "shape", self.a.shape)


@_cached_hash
@dataclass(frozen=True)
class Index(_Unary):
    a: T
    index: tuple
    shape: Shape = field(default=(), compare=False)

    def __post_init__(self):
        if len(self.index) != len(self.a.shape) or any(not 0 <= i < n for i, n in zip(self.index, self.a.shape)):
            raise ShapeError(f"no entry {list(self.index)} in a tensor of shape {shape_text(self.a.shape)}")


def _kind(shape: Shape) -> str:
    return {0: "scalar", 1: f"vector {shape_text(shape)}", 2: f"matrix {shape_text(shape)}"}[len(shape)]


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """The shape of a @ b (NumPy's rules for 1-D and 2-D operands), or ShapeError."""
    if not a or not b:
        raise ShapeError("'@' multiplies vectors and matrices; for a scalar factor write *")
    inner_a = a[-1]
    inner_b = b[0]
    if inner_a != inner_b:
        what_a = f"{inner_a} columns" if len(a) == 2 else f"{inner_a} entries"
        what_b = f"{inner_b} rows" if len(b) == 2 else f"{inner_b} entries"
        raise ShapeError(f"the shapes {shape_text(a)} and {shape_text(b)} do not fit ({what_a}, {what_b})")
    return a[:-1] + b[1:]


def const(value, shape: Shape = ()) -> Map:
    """A constant (broadcast to ``shape``)."""
    return Map(sp.sympify(value), (), tuple(shape))


ONE = const(1)
ZERO = const(0)


def is_zero(t: T) -> bool:
    return isinstance(t, Map) and not t.args and t.f == 0


def walk(t: T):
    """Every sub-expression, operands before the expression, each once."""
    seen: set = set()
    out = []
    stack = [(t, False)]
    while stack:
        x, done = stack.pop()
        if done:
            out.append(x)
            continue
        if x in seen:
            continue
        seen.add(x)
        stack.append((x, True))
        stack.extend((p, False) for p in reversed(x.parts))
    return out


def names(t: T, adjoint: bool | None = False) -> tuple[str, ...]:
    """The Var names in ``t`` in order of first use (values, adjoints, or both with ``None``)."""
    out: dict[str, None] = {}
    for x in walk(t):
        if isinstance(x, Var) and (adjoint is None or x.adjoint == adjoint):
            out.setdefault(x.name, None)
    return tuple(out)


def substitute(t: T, mapping: dict) -> T:
    """``t`` with sub-expressions replaced (keys are T; maps are rebuilt, not simplified)."""
    memo: dict = {}

    def sub(x):
        if x in mapping:
            return mapping[x]
        if x in memo:
            return memo[x]
        if isinstance(x, Var):
            r = x
        elif isinstance(x, Map):
            r = Map(x.f, tuple(sub(a) for a in x.args), x.shape)
        elif isinstance(x, Index):
            r = Index(sub(x.a), x.index)
        else:
            r = type(x)(*[sub(p) for p in x.parts])
        memo[x] = r
        return r
    return sub(t)


# --------------------------------------------------------- the front end ---

@dataclass(frozen=True)
class _MatMulAst:
    """``left @ right`` in a lowered parse tree (the parser keeps * / @ chains flat)."""
    left: object
    right: object
    pos: int


def _lower(t):
    """The parse tree with every ``… @ …`` chain made into left-nested _MatMulAst (elementwise runs kept)."""
    if isinstance(t, Product):
        if not any(op == "@" for op, _ in t.factors):
            return Product(tuple((op, _lower(a)) for op, a in t.factors), t.pos, t.op_pos)
        acc = [("*", _lower(t.factors[0][1]))]
        acc_pos = [t.op_pos[0] if t.op_pos else t.pos]
        for (op, a), where in zip(t.factors[1:], t.op_pos[1:]):
            if op == "@":
                left = acc[0][1] if len(acc) == 1 else Product(tuple(acc), acc_pos[-1], tuple(acc_pos))
                acc, acc_pos = [("*", _MatMulAst(left, _lower(a), where))], [where]
            else:
                acc.append((op, _lower(a)))
                acc_pos.append(where)
        return acc[0][1] if len(acc) == 1 else Product(tuple(acc), acc_pos[-1], tuple(acc_pos))
    if isinstance(t, SumAst):
        return SumAst(tuple((s, _lower(a)) for s, a in t.terms), t.pos)
    if isinstance(t, Neg):
        return Neg(_lower(t.arg), t.pos)
    if isinstance(t, Power):
        return Power(_lower(t.base), _lower(t.exponent), t.op, t.pos)
    if isinstance(t, Call):
        return Call(t.func, tuple(_lower(a) for a in t.args), t.pos)
    return t


def ast_text(t, limit: int = 40) -> str:
    """A short text of a (lowered) parse tree, for error messages."""
    def go(x, top=False):
        if isinstance(x, Num):
            return x.text
        if isinstance(x, Name):
            return x.name
        if isinstance(x, Neg):
            return "-" + go(x.arg)
        if isinstance(x, Call):
            return f"{x.func}(" + ", ".join(go(a, True) for a in x.args) + ")"
        if isinstance(x, _MatMulAst):
            s = f"{go(x.left)} @ {go(x.right)}"
        elif isinstance(x, SumAst):
            s = go(x.terms[0][1]) + "".join((" + " if sg > 0 else " - ") + go(a) for sg, a in x.terms[1:])
        elif isinstance(x, Product):
            s = go(x.factors[0][1]) + "".join(f" {op} " + go(a) for op, a in x.factors[1:])
        elif isinstance(x, Power):
            s = f"{go(x.base)}**{go(x.exponent)}"
        else:
            s = "…"
        return s if top else f"({s})"
    text = go(t, True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _is_vector_transpose(t, shape_of_tree) -> object | None:
    """The argument of ``transpose(v)`` for a vector v (a row in a product), else None."""
    if isinstance(t, Call) and t.func == "transpose":
        arg = t.args[0]
        if len(shape_of_tree(arg)) == 1:
            return arg
    return None


class _TensorBuilder:
    """Lowered parse tree -> tensor expression, with a shape for every operation (ShapeError at a position)."""

    def __init__(self, shape_of: Callable[[str], Shape]):
        self.shape_of = shape_of
        self.memo: dict = {}

    def error(self, message: str, pos: int, hint: str | None = None):
        return ExpressionError(message, offset=pos, hint=hint)

    def build(self, t) -> T:
        key = id(t)
        hit = self.memo.get(key)
        if hit is not None and hit[0] is t:
            return hit[1]
        out = self._build(t)
        self.memo[key] = (t, out)
        return out

    def shape(self, t) -> Shape:
        return self.build(t).shape

    def _build(self, t) -> T:
        if isinstance(t, Name):
            return Var(t.name, tuple(self.shape_of(t.name)))
        if isinstance(t, _MatMulAst):
            return self.matmul(t)
        if isinstance(t, Call) and t.func in TENSOR_FUNCTIONS:
            return self.tensor_call(t)
        return self.region(t)

    def matmul(self, t: _MatMulAst) -> T:
        row_left = _is_vector_transpose(t.left, self.shape)
        row_right = _is_vector_transpose(t.right, self.shape)
        if row_right is not None and row_left is None and len(self.shape(t.left)) == 1:
            return Outer(self.build(t.left), self.build(row_right))       # u @ transpose(v): u vᵀ
        left = self.build(row_left) if row_left is not None else self.build(t.left)
        if row_right is not None:
            raise self.error(f"{ast_text(t)}: a row vector (transpose of a vector) on the right of '@' needs a "
                             "column vector on its left", t.pos,
                             hint="u @ transpose(v) is the outer product of two vectors u, v")
        right = self.build(t.right)
        if row_left is not None and len(right.shape) == 0:
            raise self.error(f"{ast_text(t)}: '@' multiplies vectors and matrices", t.pos)
        try:
            return MatMul(left, right)
        except ShapeError as e:
            hint = None if not left.shape or not right.shape else \
                "@ needs the columns of its left side to match the rows of its right side"
            raise self.error(f"{ast_text(t)}: {e}", t.pos, hint=hint)

    def tensor_call(self, t: Call) -> T:
        arg = t.args[0]
        a = self.build(arg)
        if t.func == "transpose":
            if len(a.shape) == 1:
                raise self.error(f"transpose({ast_text(arg)}): the transpose of a vector is a row, which is "
                                 "only allowed in a product", t.pos,
                                 hint="write u @ transpose(v) for an outer product, transpose(u) @ v (or u @ v) "
                                      "for a dot product")
            if len(a.shape) != 2:
                raise self.error(f"transpose({ast_text(arg)}): transpose needs a matrix, not a scalar", t.pos)
            return Transpose(a)
        if t.func in ("sum", "mean"):
            if not a.shape:
                return a
            return Sum(a) if t.func == "sum" else Mean(a)
        if len(a.shape) != 1:   # softmax
            raise self.error(f"softmax({ast_text(arg)}): softmax needs a vector, not a {_kind(a.shape)}", t.pos)
        return Softmax(a)

    def region(self, t) -> T:
        """A maximal elementwise part: built into one scalar expression by the scalar builder."""
        opaque: list[T] = []
        opaque_index: dict = {}

        def rewrite(x):
            if isinstance(x, Num):
                return x, ()
            if isinstance(x, Name):
                return x, tuple(self.shape_of(x.name))
            if isinstance(x, (_MatMulAst,)) or (isinstance(x, Call) and x.func in TENSOR_FUNCTIONS):
                built = self.build(x)
                k = opaque_index.get(built)
                if k is None:
                    k = opaque_index[built] = len(opaque)
                    opaque.append(built)
                return Name(f"_t{k}", getattr(x, "pos", 0)), built.shape
            if isinstance(x, Neg):
                a, s = rewrite(x.arg)
                return Neg(a, x.pos), s
            if isinstance(x, SumAst):
                parts = [(sg, *rewrite(a)) for sg, a in x.terms]
                shape = self.combine([p[2] for p in parts], [a for _, a in x.terms], "+" if
                                     all(sg > 0 for sg, _ in x.terms) else "-", x.pos)
                return SumAst(tuple((sg, a) for sg, a, _ in parts), x.pos), shape
            if isinstance(x, Product):
                parts = [(op, *rewrite(a)) for op, a in x.factors]
                ops = {op for op, _ in x.factors[1:]}
                shape = self.combine([p[2] for p in parts], [a for _, a in x.factors],
                                     "/" if ops == {"/"} else "*", x.pos)
                return Product(tuple((op, a) for op, a, _ in parts), x.pos, x.op_pos), shape
            if isinstance(x, Power):
                b, sb = rewrite(x.base)
                e, se = rewrite(x.exponent)
                shape = self.combine([sb, se], [x.base, x.exponent], "**", x.pos)
                return Power(b, e, x.op, x.pos), shape
            if isinstance(x, Call):
                parts = [rewrite(a) for a in x.args]
                shape = self.combine([s for _, s in parts], list(x.args), x.func, x.pos)
                return Call(x.func, tuple(a for a, _ in parts), x.pos), shape
            raise TypeError(f"not a parse tree: {x!r}")

        tree, shape = rewrite(t)
        if isinstance(tree, Name) and not tree.name.startswith("_t"):
            return Var(tree.name, shape)
        expr = _scalar(tree)
        args: list[T] = []
        sub = {}
        for name in ast_names(tree):          # operands in the order written: W @ x + b is _0 + _1
            s = symbol(name)
            if s in sub or not expr.has(s):
                continue
            sub[s] = ph(len(args))
            args.append(opaque[int(name[2:])] if name.startswith("_t") else Var(name, tuple(self.shape_of(name))))
        f = expr.xreplace(sub)
        if f == ph(0) and len(args) == 1 and args[0].shape == shape:
            return args[0]
        return Map(f, tuple(args), tuple(shape))

    def combine(self, shapes, trees, op: str, pos: int) -> Shape:
        """The shape of an elementwise operation: equal shapes, or scalars with anything."""
        out: Shape = ()
        first = None
        for s, tr in zip(shapes, trees):
            if not s:
                continue
            if not out:
                out, first = s, tr
            elif s != out:
                what = f"'{op}'" if op in ("+", "-", "*", "/", "**") else f"{op}(…)"
                raise self.error(f"{what} between {ast_text(first)} and {ast_text(tr)}: the shapes {shape_text(out)} "
                                 f"and {shape_text(s)} differ", pos,
                                 hint="elementwise operations need equal shapes, or a scalar; "
                                      "@ is the matrix product")
        return out


def _scalar(tree) -> sp.Expr:
    """The scalar builder of ``expr`` on an elementwise tree (constants and powers checked as in the scalar view)."""
    b = _Builder()
    try:
        e = b.build(tree)
        b.final_check(e)
    except RecursionError:
        raise ExpressionError("the expression is too complex", hint="split it into several named equations") from None
    except (ArithmeticError, ValueError) as err:
        raise ExpressionError(f"the expression cannot be computed ({type(err).__name__})",
                              hint="simplify its constants") from None
    return e


def parse(text: str, max_length: int | None = None):
    """The parse tree of a tensor expression (the scalar language plus @, transpose, sum, mean, softmax)."""
    from .expr import MAX_TEXT
    return parse_tree(text, grammar=TENSOR_GRAMMAR, max_length=MAX_TEXT if max_length is None else max_length)


def build(tree, shape_of: Callable[[str], Shape]) -> T:
    """A parse tree as a tensor expression; ``shape_of(name)`` gives the shape of each name used.

    Raises ExpressionError (with the offset of the operation) where shapes do not fit.
    """
    return _TensorBuilder(shape_of).build(_lower(tree))


# ------------------------------------------------------------- printing ---

def _atomic(t: T) -> bool:
    """Printed without parentheses as an operand: names, calls, and broadcast(…)."""
    if isinstance(t, (Var, Transpose, Sum, Mean, Softmax, Index)):
        return True
    return isinstance(t, Map) and (t.f.is_Atom and not t.args or bool(t.shape) and all(not a.shape for a in t.args))


@lru_cache(maxsize=4096)
def to_str(t: T) -> str:
    """The text of a tensor expression: ``delta_z1 @ transpose(x)``, ``(1 - a1**2)*(transpose(W2) @ delta_z2)``."""
    if isinstance(t, Var):
        return ADJOINT_PREFIX + t.name if t.adjoint else t.name
    if isinstance(t, Map):
        return _map_str(t)
    if isinstance(t, MatMul):
        left = to_str(t.a) if _atomic(t.a) or isinstance(t.a, MatMul) else f"({to_str(t.a)})"
        right = to_str(t.b) if _atomic(t.b) else f"({to_str(t.b)})"
        return f"{left} @ {right}"
    if isinstance(t, Outer):
        left = to_str(t.a) if _atomic(t.a) else f"({to_str(t.a)})"
        return f"{left} @ transpose({to_str(t.b)})"
    if isinstance(t, Index):
        inner = to_str(t.a) if isinstance(t.a, Var) else f"({to_str(t.a)})"
        return f"{inner}[{', '.join(str(i) for i in t.index)}]"
    name = {Transpose: "transpose", Sum: "sum", Mean: "mean", Softmax: "softmax"}[type(t)]
    return f"{name}({to_str(t.a)})"


def _map_str(t: Map) -> str:
    bare = {t.f} if t.f.is_Symbol else set(t.f.args) if t.f.is_Add else set()
    bare |= {-b for b in bare}
    sub = {}
    for i, a in enumerate(t.args):
        s = to_str(a)
        sub[ph(i)] = sp.Symbol(s if _atomic(a) or ph(i) in bare else f"({s})")
    text = sp.sstr(t.f.xreplace(sub))
    if t.shape and all(not a.shape for a in t.args):
        return f"broadcast({text}, {shape_text(t.shape)})"
    return text


TOP = r"\top"


@lru_cache(maxsize=1)
def _map_printer():
    from sympy.printing.precedence import PRECEDENCE

    from .printing import TexPrinter

    class MapPrinter(TexPrinter):
        """sympy's LaTeX with placeholders printed as their tensors and ⊙ between tensor factors."""

        def __init__(self, args_tex, tensor_syms, display):
            from .printing import _names
            super().__init__(_names(display))
            self.args_tex = args_tex
            self.tensor_syms = tensor_syms

        def _print_Symbol(self, expr, style="plain"):
            if expr in self.args_tex:
                return self.args_tex[expr]
            return super()._print_Symbol(expr, style)

        def _is_tensor(self, e):
            return bool(e.free_symbols & self.tensor_syms)

        def _print_Mul(self, expr):
            tensors = [f for f in expr.args if self._is_tensor(f)]
            has_den = any(f.is_Pow and f.exp.is_negative for f in expr.args)
            if len(tensors) < 2 and not (tensors and has_den):
                return super()._print_Mul(expr)
            coeff, factors = expr.as_coeff_mul()
            num, den = [], []
            for f in factors:
                if f.is_Pow and f.exp.is_number and f.exp.is_negative:
                    den.append(f.base ** -f.exp)
                else:
                    num.append(f)

            def join(fs):
                if len(fs) == 1 and den:            # alone over (or under) a fraction bar: no parentheses
                    return self._print(fs[0])
                scal = [self.parenthesize(f, PRECEDENCE["Mul"]) for f in fs if not self._is_tensor(f)]
                tens = [self.parenthesize(f, PRECEDENCE["Mul"]) for f in fs if self._is_tensor(f)]
                body = " \\odot ".join(tens)
                return " ".join(scal + ([body] if body else [])) or "1"
            sign = ""
            if coeff.is_negative:
                sign, coeff = "-", -coeff
            head = "" if coeff == 1 else self._print(coeff) + " "
            if den:
                return sign + head + r"\frac{" + join(num) + "}{" + join(den) + "}"
            return sign + head + join(num)

    return MapPrinter


def to_latex(t: T, display: dict | None = None) -> str:
    r"""LaTeX in matrix notation: W^{(1)} x + b^{(1)}, δ ⊙ σ′, W^{(2)\top} δ^{(2)}, δ x^⊤, 1ᵀ(y ⊙ log p).

    ``display`` maps names (and ``delta_NAME`` for adjoints) to their LaTeX where it differs (a
    document also maps them to numbers: a bmatrix for a vector or matrix). A transpose joins a
    name's own superscript (W^{(2)\top}, as Goodfellow et al. write it); the sum of a vector's
    entries is 1ᵀv (of a matrix's, 1ᵀA1), a mean (1/n) 1ᵀv; operands are parenthesised only
    where a product or a power needs it, never twice (printing.paren).
    """
    display = display or {}
    if isinstance(t, Var):
        return _tex_name(ADJOINT_PREFIX + t.name if t.adjoint else t.name, display)
    if isinstance(t, Map):
        from .printing import paren
        from .printing import tidy
        plain = {ph(i): to_latex(a, display) for i, a in enumerate(t.args)}
        f = tidy(t.f)                           # common factors out: 2 (a - y), not 2 a - 2 y
        grouped, scaled = _grouped_operands(f)
        args_tex = {k: paren(v) if (k in grouped and not _tex_atomic(a)) or (k in scaled and isinstance(a, Map)
                                                                             and not _tex_atomic(a)) else v
                    for (k, v), a in zip(plain.items(), t.args)}
        p = _map_printer()(args_tex, {ph(i) for i, a in enumerate(t.args) if a.shape}, display)
        body = p.doprint(f)
        if t.shape and all(not a.shape for a in t.args):
            return body + r"\,\mathbf{1}"
        return body
    if isinstance(t, MatMul):
        b = _tex_factor(t.b, display)
        if len(t.a.shape) == 1:
            return f"{_tex_sup(t.a, display, TOP)} {b}"
        return f"{_tex_factor(t.a, display)} {b}"
    if isinstance(t, Outer):
        return f"{_tex_factor(t.a, display)} {_tex_sup(t.b, display, TOP)}"
    if isinstance(t, Transpose):
        return _tex_sup(t.a, display, TOP)
    if isinstance(t, Index):
        inner = to_latex(t.a, display)
        sub = ",".join(str(i + 1) for i in t.index)
        if isinstance(t.a, Var):
            return "{" + inner + "}_{" + sub + "}"
        from .printing import paren
        return paren(inner) + "_{" + sub + "}"
    if isinstance(t, (Sum, Mean)):
        inner = _tex_factor(t.a, display)
        ones = r"\mathbf{1}^{\top} " + inner + (r" \mathbf{1}" if len(t.a.shape) == 2 else "")
        n = size(t.a.shape)
        return ones if isinstance(t, Sum) or n == 1 else r"\frac{1}{" + str(n) + r"} \, " + ones
    from .printing import call
    return call(r"\operatorname{softmax}", to_latex(t.a, display))


def _tex_atomic(t: T) -> bool:
    """Printed as one symbol (or a call) in LaTeX: never parenthesised as an operand."""
    if isinstance(t, (Var, Softmax)):
        return True
    if isinstance(t, (Transpose, Index)):
        return isinstance(t.a, Var)
    return isinstance(t, Map) and not t.args and (t.f.is_Symbol or (t.f.is_Number and t.f >= 0))


@lru_cache(maxsize=4096)
def _grouped_operands(f: sp.Expr) -> tuple[frozenset, frozenset]:
    """The placeholders of a map's f that stand as a factor of a product or the base of a power
    (there a sum or a matrix product needs parentheses; as a term or a function's argument, not),
    and those only multiplied by a number (−W x, 2 W x: only a sum needs them there)."""
    grouped, scaled = set(), set()
    for e in sp.preorder_traversal(f):
        if e.is_Mul:
            coeff, rest = e.as_coeff_mul()
            if len(rest) == 1 and rest[0].is_Symbol:
                scaled.add(rest[0])
                continue
            grouped.update(a for a in e.args if a.is_Symbol)
            grouped.update(a.base for a in e.args if a.is_Pow and a.base.is_Symbol)
        elif e.is_Pow and e.base.is_Symbol:
            grouped.add(e.base)
    return frozenset(grouped), frozenset(scaled - grouped)


def _tex_name(name: str, display: dict) -> str:
    if name in display:
        return display[name]
    from .printing import tex_name
    if name.startswith(ADJOINT_PREFIX):
        return r"\delta_{" + _tex_name(name[len(ADJOINT_PREFIX):], display) + "}"
    return tex_name(name, display)


def _tex_factor(t: T, display) -> str:
    s = to_latex(t, display)
    if _tex_atomic(t) or isinstance(t, (MatMul, Outer)):
        return s
    if isinstance(t, Map) and t.args and (t.f.is_Pow or t.f.is_Function or s.startswith(r"\frac")):
        return s                                # 1ᵀ (y − a)², not 1ᵀ [(y − a)²]; a fraction is one factor
    from .printing import paren
    return paren(s)


_TRAILING_SUP = re.compile(r"\^\{(\([^{}()]*\))\}\Z")      # a label such as ^{(2)}, not a power


def _tex_sup(t: T, display, sup: str) -> str:
    s = to_latex(t, display)
    if isinstance(t, Var):
        return name_sup(s, sup)
    from .printing import paren
    return paren(s) + "^{" + sup + "}"


def name_sup(s: str, sup: str = TOP) -> str:
    r"""A printed name with a superscript added: W^{(2)} -> W^{(2)\top}, x -> x^{\top}, {x^2} -> {x^2}^{\top}."""
    m = _TRAILING_SUP.search(s)
    if m:
        return s[:m.start()] + "^{" + m.group(1) + sup + "}"
    if "^" not in s:
        return f"{s}^{{{sup}}}"
    return "{" + s + "}^{" + sup + "}"


# ------------------------------------------------------- NumPy semantics ---

def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def _np_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _np_step(x, at_zero):
    return np.where(x > 0, 1.0, np.where(x < 0, 0.0, float(at_zero)))


# elementwise functions of a map's f: sympy class -> NumPy function (code: the same name, numpy.NAME)
ELEMENTWISE: dict = {
    sp.exp: np.exp, sp.log: np.log, sp.tanh: np.tanh, sp.sin: np.sin, sp.cos: np.cos, sp.Abs: np.abs,
    sp.sign: np.sign, sigmoid: _np_sigmoid, softplus: lambda x: np.logaddexp(0.0, x),
    relu: lambda x: np.maximum(x, 0.0), Max2: lambda a, b: np.where(a >= b, a, b),
    Min2: lambda a, b: np.where(a <= b, a, b), sp.Heaviside: _np_step,
}


@dataclass(frozen=True)
class Semantics:
    run: Callable          # the NumPy function (one sample)
    code: str              # what a code generator prints: {0}, {1} are the operands' code


# one line per operation
NUMPY: dict = {
    MatMul: Semantics(lambda a, b: a @ b, "{0} @ {1}"),
    Outer: Semantics(np.outer, "numpy.outer({0}, {1})"),
    Transpose: Semantics(lambda a: a.T, "{0}.T"),
    Sum: Semantics(np.sum, "numpy.sum({0})"),
    Mean: Semantics(np.mean, "numpy.mean({0})"),
    Softmax: Semantics(_softmax, "_softmax({0})"),
    Index: Semantics(lambda a, index: a[index], "{0}[{index}]"),
    Map: Semantics(None, "f printed by the NumPy printer over the operands, broadcast to the shape"),
}


def map_value(f: sp.Expr, values: list, shape: Shape):
    """A map's f at NumPy values of its arguments (broadcast to ``shape``)."""
    env = {ph(i): v for i, v in enumerate(values)}
    out = _np_eval(f, env)
    out = np.asarray(out, dtype=float)
    return out if out.shape == tuple(shape) else np.broadcast_to(out, shape).copy()


def _np_eval(e, env):
    if e.is_Symbol:
        return env[e]
    if e.is_Number or e.is_NumberSymbol:
        return float(e)
    if e.is_Add:
        out = _np_eval(e.args[0], env)
        for a in e.args[1:]:
            out = out + _np_eval(a, env)
        return out
    if e.is_Mul:
        out = _np_eval(e.args[0], env)
        for a in e.args[1:]:
            out = out * _np_eval(a, env)
        return out
    if e.is_Pow:
        b = _np_eval(e.base, env)
        if e.exp == -1:
            return 1.0 / b
        if e.exp == sp.S.Half:
            return np.sqrt(b)
        if e.exp.is_Integer:
            return b ** int(e.exp)
        return b ** _np_eval(e.exp, env)
    f = ELEMENTWISE.get(type(e))
    if f is None:
        raise NotImplementedError(f"no NumPy function for {type(e).__name__}")
    return f(*[_np_eval(a, env) for a in e.args])


def evaluate(t: T, env: dict, cache: dict | None = None):
    """The value of ``t`` in float64: ``env`` maps a Var (or its name, for values) to an array."""
    cache = {} if cache is None else cache

    def ev(x):
        try:
            return cache[x]
        except KeyError:
            pass
        if isinstance(x, Var):
            v = env[x] if x in env else env[x.name] if not x.adjoint else env[x]
            v = np.asarray(v, dtype=float)
        elif isinstance(x, Map):
            v = map_value(x.f, [ev(a) for a in x.args], x.shape)
        elif isinstance(x, Index):
            v = np.asarray(ev(x.a)[x.index], dtype=float)
        else:
            v = np.asarray(NUMPY[type(x)].run(*[ev(p) for p in x.parts]), dtype=float)
        cache[x] = v
        return v
    with np.errstate(all="ignore"):      # outside a function's domain: nan/inf, which callers report
        return ev(t)


# ------------------------------------------------------ scalar semantics ---

def unroll(t: T, env: dict) -> np.ndarray:
    """``t`` entry by entry as sympy expressions: an object array of its shape.

    ``env`` maps a Var (or, for values, its name) to an object array of sympy expressions. This is
    the scalar meaning of every operation, written independently of the rules: the checks compare
    the layer view with it, and the scalar view of a `shapes` definition is made by it.
    """
    memo: dict = {}

    def go(x):
        if x in memo:
            return memo[x]
        if isinstance(x, Var):
            v = env[x] if x in env else env[x.name]
        elif isinstance(x, Map):
            args = [go(a) for a in x.args]
            v = np.empty(x.shape, dtype=object)
            for idx in np.ndindex(*x.shape):
                v[idx] = x.f.xreplace({ph(i): (a[idx] if a.shape else a[()]) for i, a in enumerate(args)})
        elif isinstance(x, MatMul):
            a, b = go(x.a), go(x.b)
            A = a if a.ndim == 2 else a.reshape(1, -1)
            B = b if b.ndim == 2 else b.reshape(-1, 1)
            v = np.empty((A.shape[0], B.shape[1]), dtype=object)
            for i in range(A.shape[0]):
                for j in range(B.shape[1]):
                    v[i, j] = sp.Add(*[A[i, k] * B[k, j] for k in range(A.shape[1])])
            v = v.reshape(x.shape)
        elif isinstance(x, Outer):
            a, b = go(x.a), go(x.b)
            v = np.empty(x.shape, dtype=object)
            for i in range(x.shape[0]):
                for j in range(x.shape[1]):
                    v[i, j] = a[i] * b[j]
        elif isinstance(x, Transpose):
            v = go(x.a).T.copy()
        elif isinstance(x, (Sum, Mean)):
            a = go(x.a)
            total = sp.Add(*a.ravel())
            v = np.empty((), dtype=object)
            v[()] = total if isinstance(x, Sum) else total / a.size
        elif isinstance(x, Softmax):
            a = go(x.a)
            e = [sp.exp(z) for z in a]
            s = sp.Add(*e)
            v = np.empty(x.shape, dtype=object)
            for i in range(x.shape[0]):
                v[i] = e[i] / s
        elif isinstance(x, Index):
            v = np.empty((), dtype=object)
            v[()] = go(x.a)[x.index]
        else:
            raise TypeError(f"not a tensor expression: {x!r}")
        memo[x] = v
        return v
    return go(t)
