"""Vector-Jacobian products: the layer view's rules table, one line per operation.

Takes a tensor operation, the index of one operand and the adjoint ``g`` of the operation's value
(``δ``, the gradient of the output with respect to it); gives the operand's share of the adjoint,
as a tensor expression, and the rule that was used. In the style of ``rules.py`` and of autograd's
``numpy_vjps.py`` (``dot``: ``g @ B.T``, ``A.T @ g``)::

    C = A B        (matrix · matrix)      Ā = C̄ Bᵀ           B̄ = Aᵀ C̄
    c = A b        (matrix · vector)      Ā = c̄ bᵀ (outer)    b̄ = Aᵀ c̄
    c = aᵀ B       (vector · matrix)      ā = B c̄             B̄ = a c̄ᵀ (outer)
    c = aᵀ b       (dot product)          ā = c̄ b             b̄ = c̄ a
    C = a bᵀ       (outer product)        ā = C̄ b             b̄ = C̄ᵀ a
    C = Aᵀ                                Ā = C̄ᵀ
    s = sum(A)                            Ā = s̄ 1  (broadcast)
    s = mean(A)                           Ā = s̄/n 1
    s = softmax(z)                        z̄ = s ⊙ (s̄ − sᵀ s̄)   (Jacobian diag(s) − s sᵀ)
    c = f(u, v, …)  elementwise           ū = c̄ ⊙ ∂f/∂u       (∂f/∂u by the SCALAR rules table)
    c = u ⊙ v       (Hadamard)            ū = c̄ ⊙ v
    c = f(u, s)     s a broadcast scalar  s̄ = sum(c̄ ⊙ ∂f/∂s)

Elementwise operations are maps of a scalar expression (``tensor.Map``): their partials come from
``rules.local_derivative`` and are checked by ``check.check_local`` — the layer view stands on the
scalar engine. Each structural rule is checked by unrolling it into scalars (``layer_check``).

The constructors here (``smap``, ``ssum``, ``smatmul``, …) build results in a tidy form: maps of
maps are fused into one map, repeated operands merged, ``1 ⊙ δ`` is ``δ``. ``simplify`` rebuilds a
substituted expression with them (the lemmas: softmax + cross-entropy, sigmoid + binary
cross-entropy). Nothing here calls ``sympy.simplify``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Callable

import sympy as sp

from .rules import local_derivative
from .tensor import (Index, Map, MatMul, Mean, Outer, Softmax, Sum, T, Transpose, Var, const, is_zero, ph)


@dataclass(frozen=True)
class MatrixRule:
    key: str
    name: str          # cited in derivations
    formula: str       # LaTeX, for documents
    text: str          # the same in the str() notation


# One line per operation (and per shape case of the matrix product).
RULES: dict[str, MatrixRule] = {r.key: r for r in [
    MatrixRule("matmul_mm_left", "matrix product, left factor", r"C = A B \Rightarrow \bar{A} = \bar{C} B^{\top}",
               "C = A @ B: delta_A = delta_C @ transpose(B)"),
    MatrixRule("matmul_mm_right", "matrix product, right factor", r"C = A B \Rightarrow \bar{B} = A^{\top} \bar{C}",
               "C = A @ B: delta_B = transpose(A) @ delta_C"),
    MatrixRule("matmul_mv_left", "matrix-vector product, the matrix (BP4)",
               r"c = A b \Rightarrow \bar{A} = \bar{c}\, b^{\top}", "c = A @ b: delta_A = delta_c @ transpose(b)"),
    MatrixRule("matmul_mv_right", "matrix-vector product, the vector (BP2)",
               r"c = A b \Rightarrow \bar{b} = A^{\top} \bar{c}", "c = A @ b: delta_b = transpose(A) @ delta_c"),
    MatrixRule("matmul_vm_left", "vector-matrix product, the vector",
               r"c = a^{\top} B \Rightarrow \bar{a} = B\, \bar{c}", "c = a @ B: delta_a = B @ delta_c"),
    MatrixRule("matmul_vm_right", "vector-matrix product, the matrix",
               r"c = a^{\top} B \Rightarrow \bar{B} = a\, \bar{c}^{\top}", "c = a @ B: delta_B = a @ transpose(delta_c)"),
    MatrixRule("matmul_vv_left", "dot product", r"c = a^{\top} b \Rightarrow \bar{a} = \bar{c}\, b",
               "c = a @ b: delta_a = delta_c*b"),
    MatrixRule("matmul_vv_right", "dot product", r"c = a^{\top} b \Rightarrow \bar{b} = \bar{c}\, a",
               "c = a @ b: delta_b = delta_c*a"),
    MatrixRule("outer_left", "outer product, left", r"C = a b^{\top} \Rightarrow \bar{a} = \bar{C} b",
               "C = a @ transpose(b): delta_a = delta_C @ b"),
    MatrixRule("outer_right", "outer product, right", r"C = a b^{\top} \Rightarrow \bar{b} = \bar{C}^{\top} a",
               "C = a @ transpose(b): delta_b = transpose(delta_C) @ a"),
    MatrixRule("transpose", "transpose", r"C = A^{\top} \Rightarrow \bar{A} = \bar{C}^{\top}",
               "C = transpose(A): delta_A = transpose(delta_C)"),
    MatrixRule("sum", "sum of the entries", r"s = \textstyle\sum_i a_i \Rightarrow \bar{a} = \bar{s}\,\mathbf{1}",
               "s = sum(a): delta_a = broadcast(delta_s)"),
    MatrixRule("mean", "mean of the entries",
               r"s = \tfrac{1}{n}\textstyle\sum_i a_i \Rightarrow \bar{a} = \tfrac{\bar{s}}{n}\,\mathbf{1}",
               "s = mean(a): delta_a = broadcast(delta_s/n)"),
    MatrixRule("softmax", "softmax (Jacobian diag(s) − s sᵀ)",
               r"s = \operatorname{softmax}(z) \Rightarrow \bar{z} = (\operatorname{diag}(s) - s s^{\top})\,\bar{s}"
               r" = s \odot (\bar{s} - s^{\top} \bar{s})",
               "s = softmax(z): delta_z = s*(delta_s - s @ delta_s)"),
    MatrixRule("map", "elementwise function (δ ⊙ f′)",
               r"c = f(u) \Rightarrow \bar{u} = \bar{c} \odot f'(u)", "c = f(u): delta_u = delta_c*f'(u)"),
    MatrixRule("hadamard", "Hadamard product", r"c = u \odot v \Rightarrow \bar{u} = \bar{c} \odot v",
               "c = u*v: delta_u = delta_c*v"),
    MatrixRule("broadcast", "broadcast scalar (its adjoint is the sum)",
               r"c = f(u, s) \Rightarrow \bar{s} = \textstyle\sum_i \bar{c}_i\, \partial f/\partial s",
               "c = f(u, s), s a scalar: delta_s = sum(delta_c*df/ds)"),
]}


@dataclass(frozen=True)
class RuleUse:
    """One application of a rule: which, for which shapes of the operands, and the scalar rules of a map."""
    key: str
    shapes: tuple                     # the operands' shapes
    f: sp.Expr | None = None          # a map's scalar expression (its partial is checked by the scalar check)
    index: int = 0                    # which operand
    scalar_rules: tuple = ()          # names of the scalar rules of the map's partial

    @property
    def rule(self) -> MatrixRule:
        return RULES[self.key]


# ------------------------------------------------------------ constructors ---

def smap(f: sp.Expr, args, shape) -> T:
    """A map in tidy form: map operands fused in, repeated operands merged, unused ones dropped."""
    shape = tuple(shape)
    slots: dict = {}
    sub = {}
    for i, a in enumerate(args):
        if isinstance(a, Map) and (a.shape == shape or not a.shape):
            inner = {ph(j): _slot(slots, b) for j, b in enumerate(a.args)}
            sub[ph(i)] = a.f.xreplace(inner)
        else:
            sub[ph(i)] = _slot(slots, a)
    g = sp.sympify(f).xreplace(sub)
    used = [(a, d) for a, d in slots.items() if g.has(d)]
    final = g.xreplace({d: ph(k) for k, (_, d) in enumerate(used)})
    operands = tuple(a for a, _ in used)
    if final == ph(0) and len(operands) == 1 and operands[0].shape == shape:
        return operands[0]
    return Map(final, operands, shape)


def _slot(slots: dict, t: T) -> sp.Symbol:
    d = slots.get(t)
    if d is None:
        d = slots[t] = sp.Dummy(f"s{len(slots)}", real=True)
    return d


def sadd(*terms: T) -> T:
    shape = max((t.shape for t in terms), key=len, default=())
    terms = [t for t in terms if not is_zero(t)]
    if not terms:
        return const(0, shape)
    if len(terms) == 1:
        return terms[0]
    shape = max((t.shape for t in terms), key=len)
    return smap(sp.Add(*[ph(i) for i in range(len(terms))]), terms, shape)


def zeros(shape) -> T:
    return const(0, shape)


def ssum(a: T) -> T:
    """sum(a): of a broadcast scalar, n times it; of a map affine in its tensor operands, the sums of those."""
    if not a.shape:
        return a
    n = prod(a.shape)
    if isinstance(a, Map):
        tensor = [ph(i) for i, x in enumerate(a.args) if x.shape]
        if not tensor:
            return smap(n * a.f, a.args, ())
        coeffs = {p: sp.diff(a.f, p) for p in tensor}
        if all(not (c.free_symbols & set(tensor)) for c in coeffs.values()):
            rest = sp.expand(a.f - sum(c * p for p, c in coeffs.items()))
            if not (rest.free_symbols & set(tensor)):
                k = len(a.args)
                args = list(a.args)
                f = n * rest
                for p, c in coeffs.items():
                    if c != 0:
                        args.append(Sum(a.args[tensor_index(p)]))
                        f += c * ph(k)
                        k += 1
                return smap(f, args, ())
    if is_zero(a):
        return const(0)
    return Sum(a)


def tensor_index(p: sp.Symbol) -> int:
    return int(p.name[1:])


def smean(a: T) -> T:
    if not a.shape:
        return a
    return Mean(a)


def stranspose(a: T) -> T:
    if isinstance(a, Transpose):
        return a.a
    if isinstance(a, Outer):
        return Outer(a.b, a.a)
    if is_zero(a):
        return zeros((a.shape[1], a.shape[0]))
    return Transpose(a)


def smatmul(a: T, b: T) -> T:
    """a @ b; a dot product of a vector with a map is the sum of a map (so that maps fuse)."""
    shape = MatMul(a, b).shape
    if is_zero(a) or is_zero(b):
        return zeros(shape)
    if len(a.shape) == 1 and len(b.shape) == 1 and (isinstance(a, Map) or isinstance(b, Map)):
        return ssum(smap(ph(0) * ph(1), (a, b), a.shape))
    return MatMul(a, b, shape)


def souter(a: T, b: T) -> T:
    if is_zero(a) or is_zero(b):
        return zeros((a.shape[0], b.shape[0]))
    return Outer(a, b)


def sindex(a: T, index: tuple) -> T:
    """Entry ``index`` of ``a``, pushed inside outer products, maps and transposes."""
    if isinstance(a, Outer):
        return smap(ph(0) * ph(1), (sindex(a.a, index[:1]), sindex(a.b, index[1:])), ())
    if isinstance(a, Map):
        return smap(a.f, tuple(sindex(x, index) if x.shape else x for x in a.args), ())
    if isinstance(a, Transpose):
        return sindex(a.a, tuple(reversed(index)))
    return Index(a, tuple(index))


def simplify(t: T) -> T:
    """Rebuild ``t`` bottom-up with the tidy constructors (after a substitution)."""
    memo: dict = {}

    def go(x):
        if x in memo:
            return memo[x]
        if isinstance(x, Var):
            r = x
        elif isinstance(x, Map):
            r = tidy(smap(x.f, tuple(go(a) for a in x.args), x.shape))
        elif isinstance(x, MatMul):
            r = smatmul(go(x.a), go(x.b))
        elif isinstance(x, Outer):
            r = souter(go(x.a), go(x.b))
        elif isinstance(x, Transpose):
            r = stranspose(go(x.a))
        elif isinstance(x, Sum):
            r = ssum(go(x.a))
        elif isinstance(x, Mean):
            r = smean(go(x.a))
        elif isinstance(x, Softmax):
            r = Softmax(go(x.a))
        elif isinstance(x, Index):
            r = sindex(go(x.a), x.index)
        else:
            raise TypeError(x)
        memo[x] = r
        return r
    return go(t)


TIDY_OPS = 200


def tidy(t: T) -> T:
    """A map's f in its shortest form among itself, expand, cancel and factor_terms (never simplify)."""
    if not isinstance(t, Map) or not t.args:
        return t
    f = t.f
    if sp.count_ops(f) > TIDY_OPS:
        return t
    best, best_ops = f, sp.count_ops(f)
    for cand in _candidates(f):
        ops = sp.count_ops(cand)
        if ops < best_ops:
            best, best_ops = cand, ops
    return smap(best, t.args, t.shape) if best is not f else t


def _candidates(f):
    out = []
    try:
        out.append(sp.expand(f))
    except (sp.PolynomialError, TypeError, ValueError):
        pass
    try:
        out.append(sp.cancel(f))
    except (sp.PolynomialError, sp.CoercionFailed, NotImplementedError, TypeError, ValueError):
        pass
    try:
        out.append(sp.factor_terms(sp.expand(f)))
    except (sp.PolynomialError, TypeError, ValueError):
        pass
    return out


# ----------------------------------------------------------------- the VJPs ---

def _matmul_case(a: T, b: T) -> str:
    return {(2, 2): "mm", (2, 1): "mv", (1, 2): "vm", (1, 1): "vv"}[(len(a.shape), len(b.shape))]


def vjp(expr: T, i: int, g: T, value: T | None = None) -> tuple[T, RuleUse]:
    """Operand ``i``'s share of the adjoint of ``expr``, whose adjoint is ``g``.

    ``value`` is ``expr``'s own value where it has a name (the node it defines): σ′ is then
    written a(1 − a), softmax's Jacobian with s, as textbooks do.
    """
    return _VJP[type(expr)](expr, i, g, value)


def _vjp_matmul(e: MatMul, i, g, value):
    a, b = e.a, e.b
    case = _matmul_case(a, b)
    if case == "mm":
        out = smatmul(g, stranspose(b)) if i == 0 else smatmul(stranspose(a), g)
    elif case == "mv":
        out = souter(g, b) if i == 0 else smatmul(stranspose(a), g)
    elif case == "vm":
        out = smatmul(b, g) if i == 0 else souter(a, g)
    else:
        out = smap(ph(0) * ph(1), (g, b if i == 0 else a), (a if i == 0 else b).shape)
    return out, RuleUse(f"matmul_{case}_{'left' if i == 0 else 'right'}", (a.shape, b.shape), index=i)


def _vjp_outer(e: Outer, i, g, value):
    out = smatmul(g, e.b) if i == 0 else smatmul(stranspose(g), e.a)
    return out, RuleUse("outer_left" if i == 0 else "outer_right", (e.a.shape, e.b.shape), index=i)


def _vjp_transpose(e: Transpose, i, g, value):
    return stranspose(g), RuleUse("transpose", (e.a.shape,))


def _vjp_sum(e: Sum, i, g, value):
    return smap(ph(0), (g,), e.a.shape), RuleUse("sum", (e.a.shape,))


def _vjp_mean(e: Mean, i, g, value):
    return smap(ph(0) / prod(e.a.shape), (g,), e.a.shape), RuleUse("mean", (e.a.shape,))


def _vjp_softmax(e: Softmax, i, g, value):
    s = value if value is not None else e
    return smap(ph(0) * (ph(1) - ph(2)), (s, g, smatmul(s, g)), e.shape), RuleUse("softmax", (e.a.shape,))


@lru_cache(maxsize=4096)
def map_partial(f: sp.Expr, i: int, named: bool) -> tuple[sp.Expr, tuple[str, ...]]:
    """∂f/∂_i by the scalar rules table; with ``named``, f's own value is the placeholder ``_k`` (k = len(args))."""
    raw, rules = local_derivative(f, ph(i))
    if named and not f.is_Symbol:
        k = _arity(f)
        raw = raw.xreplace({f: ph(k)}) if raw.has(f) else raw
    return raw, rules


def _arity(f: sp.Expr) -> int:
    return 1 + max((int(s.name[1:]) for s in f.free_symbols if s.name.startswith("_")), default=-1)


def _is_hadamard(f: sp.Expr, args) -> bool:
    return f.is_Mul and len(f.args) >= 2 and all(x.is_Symbol for x in f.args) and \
        sum(1 for x in f.args if args[tensor_index(x)].shape) >= 2


def _vjp_map(e: Map, i, g, value):
    k = len(e.args)
    named = value is not None
    partial, scalar_rules = map_partial(e.f, i, named)
    # g first (δ ⊙ f′, as textbooks write it): the map's operands move up one place, its value is _{k+1}
    shifted = partial.xreplace({ph(j): ph(j + 1) for j in range(k + 1)})
    args = [g] + list(e.args) + [value if named else const(0)]
    out = smap(ph(0) * shifted, args, e.shape)
    shapes = tuple(a.shape for a in e.args)
    if e.shape and not e.args[i].shape:
        return ssum(out), RuleUse("broadcast", shapes, e.f, i, scalar_rules)
    key = "hadamard" if _is_hadamard(e.f, e.args) else "map"
    return out, RuleUse(key, shapes, e.f, i, scalar_rules)


_VJP: dict[type, Callable] = {
    MatMul: _vjp_matmul, Outer: _vjp_outer, Transpose: _vjp_transpose, Sum: _vjp_sum, Mean: _vjp_mean,
    Softmax: _vjp_softmax, Map: _vjp_map,
}
