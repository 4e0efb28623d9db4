"""Layer numeric: a layer workspace -> one compiled NumPy function over a leading batch axis.

Takes a ``LayerWorkspace`` (``layer_derivation.py``: its forward expressions, the checked VJP
contributions and δ accumulations, the lemmas) and the names to differentiate by; gives a
``CompiledLayerGradient``: straight-line Python over NumPy arrays that computes every node's value,
then every δ as the derivation states it (the lemma's form where it states one, e.g. softmax and
cross-entropy δ = p (1ᵀy) − y), then the gradient for every ``wrt`` — one function for all of them.

Batches (SPEC §3): a leaf given with one more leading axis than its shape (``x`` of shape
[N, 784]) is a batch of N samples. The generated code is specialised to which leaves carry that
axis (the *batch leaves*; by default every leaf that is not a parameter of the definition, so
``x`` and ``y`` of a network): every value and δ that depends on a batch leaf has the leading axis,
the rest has none. One printing rule per tensor operation, batch-aware (``_PRINT``):

    W @ x          x batched: ``X @ W.T`` (one matrix product for the batch, BLAS)
    δ xᵀ           per sample: ``δ[:, :, None] * x[:, None, :]``; summed over the batch: ``Δ.T @ X``
    sum, mean      over the non-batch axes (``a.sum(axis=1)``)
    softmax        along the last axis, shifted by its maximum
    f(u, v, …)     elementwise: the scalar printer of ``numeric`` on the operands

``totals`` (``grad.sum``/``grad.mean``) never forms per-sample gradients: the batch sum is pushed
into each gradient expression (``batch_sum``: Σ δ xᵀ = Δᵀ X, Σ Aᵀδ = Aᵀ Σ δ, a map linear in its
batched operands is the map of their sums, the loss's Σ (y − a)² a dot product). When every batch
leaf is a vector or a scalar per sample (a network's x and y), the totals take the batch axis
*last* (``totals_in_columns``): a layer's values are [units, N], so ``W @ X`` is one product and
the reductions over a layer (a bias's sum, a softmax's maximum) run along contiguous rows, which
NumPy does ~10x faster than along a short last axis.

``scalar_totals`` gives the same totals to the scalar view: ``derivator.compile(d)`` of a network
includes them in its module for ``grad.sum``/``grad.mean`` with scalar weights over 1-D batches
(x1…, y1… stacked into x, y; w…, b… gathered into W1, b1, … by the naming map; the totals
scattered back), so there is one matrix code generator for both views.

The forward pass is the definition rewritten for floating point, as ``stable.py`` does for the
scalar view (its ``_log_sigmoid`` is reused): ``log σ(u) = −softplus(−u)``, ``log(1 − σ(u)) =
−softplus(u)``, and the log of a softmax is ``u − logsumexp(u)``; the δ's are the checked claims.
Arrays are reused in place where a value dies (``_iadd``/``_imul`` of ``numeric``'s runtime, ufuncs
with ``out=``), never an input or an array a caller gets back.

``generate(ws, wrt)`` is the entry point, independent of the CLI and the API: it returns the
module source; ``compile_layer`` wraps it in a ``CompiledLayerGradient``. The module (what
``derivator compile --view layer -o grad.py`` writes) needs NumPy only: ``gradient(...)`` and
``totals(...)`` take the leaves positionally, as the scalar view's module does.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp

from .errors import UsageError, VerificationError
from .functions import sigmoid
from .numeric import RUNTIME, CompiledGradient, Evaluation, Totals, _docstring, _join, _Printer, _pull_constant
from .stable import _log_sigmoid
from .tensor import (Index, Map, MatMul, Mean, Outer, Softmax, Sum, T, Transpose, Var, names, ph, shape_text,
                     walk)

LAYER_RUNTIME = '''


def _shift(z, axis):
    """z minus its maximum along ``axis`` (a new array; a non-finite maximum shifts by 0)."""
    m = z.max(axis=axis, keepdims=True)
    if not numpy.isfinite(m).all():
        m = numpy.where(numpy.isfinite(m), m, 0.0)
    return numpy.subtract(z, m)


def _vsoftmax(z, axis=-1):
    """Softmax along ``axis``, shifted by the maximum (finite for any finite z): one exp per entry."""
    e = _shift(z, axis)
    numpy.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _log_softmax(z, axis=-1):
    """log(softmax(z)) = z - logsumexp(z) along ``axis``: finite where softmax underflows to 0."""
    s = _shift(z, axis)
    s -= numpy.log(numpy.exp(s).sum(axis=axis, keepdims=True))
    return s


def _softmax_and_log(z, axis=-1):
    """softmax(z) and log(softmax(z)) along ``axis``, from one exponential per entry."""
    s = _shift(z, axis)
    e = numpy.exp(s)
    total = e.sum(axis=axis, keepdims=True)
    e /= total
    s -= numpy.log(total)
    return e, s


def _vdot(a, b):
    """The sum of the entries of a * b, without the array of products where both are contiguous."""
    if a.flags.c_contiguous and b.flags.c_contiguous and a.shape == b.shape:
        return numpy.vdot(a, b)
    if a.ndim == 2 and a.shape == b.shape and a.shape[0] <= 64:      # rows of a block: a dot per row
        return sum(numpy.dot(x, y) for x, y in zip(a, b))
    return (a * b).sum()


def _isub(t, *rest):
    """t − rest…, in place when t is a new array of the full shape."""
    for x in rest:
        if t.__class__ is numpy.ndarray and getattr(x, "shape", ()) in ((), t.shape):
            t -= x
        else:
            t = t - x
    return t


def _fill(x, shape):
    """A scalar (one per sample: shape [N]) broadcast to a tensor shape (a read-only view)."""
    x = numpy.asarray(x, dtype=float)
    return numpy.broadcast_to(x.reshape(x.shape + (1,) * (len(shape) - x.ndim)), shape)


def _fill_last(x, shape):
    """A scalar (one per sample: shape [N]) broadcast to a tensor shape with the batch axis last."""
    return numpy.broadcast_to(numpy.asarray(x, dtype=float), shape)


def _inputs(args, names, shapes, batch, finite=True):
    """The inputs as float64 arrays, checked; the batch size; and whether no input had a batch axis.

    A leaf of ``batch`` may have one more leading axis than its shape (a batch of samples); a
    batch leaf given without it is the same for every sample (one sample when no leaf has one).
    With ``finite``, an input that holds NaN or ±inf is refused (ValueError naming it)."""
    out = []
    n = first = None
    for x, name, shape, b in zip(args, names, shapes, batch):
        a = numpy.asarray(x)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"input {name} holds {a.dtype} values; give real numbers (float64)")
        a = numpy.asarray(a, dtype=float)
        if a.shape != shape:
            one_more = a.ndim == len(shape) + 1 and a.shape[1:] == shape
            if not (b and one_more):
                want = str(list(shape))
                if b:
                    want += ", or " + str(["N"] + list(shape)).replace("'", "") + " for N samples"
                elif one_more:
                    want += f" (a batch of {name} is not compiled in this module)"
                raise ValueError(f"input {name} has shape {list(a.shape)}; it must be {want}")
            if n is None:
                n, first = a.shape[0], name
            elif a.shape[0] != n:
                raise ValueError(f"input {name} is a batch of {a.shape[0]} samples, but {first} of {n}")
        if finite and a.size and not math.isfinite(a.sum()):
            bad = ~numpy.isfinite(a)
            if bad.any():
                where = "" if a.ndim == 0 else f" (first at index {tuple(int(i) for i in numpy.argwhere(bad)[0])})"
                raise ValueError(f"input {name} holds NaN or an infinite value{where}")
        out.append(a)
    single = n is None
    n = 1 if single else n
    for i, (a, shape, b) in enumerate(zip(out, shapes, batch)):
        if b and a.shape == shape:
            out[i] = a[None] if single else numpy.ascontiguousarray(numpy.broadcast_to(a, (n,) + shape))
    return out, n, single


def _columns(args, batch):
    """The batch leaves with the batch axis moved last (views, no copy), as a COLUMNS _totals takes them."""
    return [numpy.moveaxis(a, 0, -1) if b else a for a, b in zip(args, batch)]


def _blocks(totals, n, args, batch, columns=False):
    """totals(n, *args) summed over blocks of ROWS samples (their temporaries stay in cache); with
    ``columns``, the batch axis of ``args`` is the last one."""
    if n <= ROWS + ROWS // 2:
        return totals(n, *args)
    value, gradient = 0.0, None
    for start in range(0, n, ROWS):
        part = [(a[..., start:start + ROWS] if columns else a[start:start + ROWS]) if b else a
                for a, b in zip(args, batch)]
        v, g = totals(min(ROWS, n - start), *part)
        value = value + v
        gradient = dict(g) if gradient is None else {k: gradient[k] + x for k, x in g.items()}
    return value, gradient


def _finite(value, gradient):
    return math.isfinite(value) and all(numpy.isfinite(g).all() for g in gradient.values())


def _per_sample(x, batched, n, single):
    """A value as the caller gets it: per sample over a batch (a read-only view where it is the same
    for every sample), or for the one sample when no input had a batch axis."""
    if single:
        return x[0] if batched else x
    return x if batched else numpy.broadcast_to(x, (n,) + numpy.shape(x))
'''


# ------------------------------------------------------------ stable forms ---

@dataclass(frozen=True)
class LogSoftmax(T):
    """log(softmax(a)), computed as a − logsumexp(a): the forward pass's stable form (never in a derivation)."""
    a: T
    shape: tuple = field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "shape", self.a.shape)

    @property
    def parts(self):
        return (self.a,)


def stable_forward(lg, t: T) -> T:
    """``t`` with each log of a sigmoid or a softmax (inline, or a node of ``lg``) in its stable form.

    The same function in exact arithmetic: log σ(u) = −softplus(−u), log(1 − σ(u)) = −softplus(u)
    (``stable._log_sigmoid``), log softmax(u) = u − logsumexp(u)."""
    memo: dict = {}

    def source(a: T):
        """The expression a stands for: a node's (for a Var of a node) or a itself."""
        if isinstance(a, Var) and not a.adjoint and not lg.is_leaf(a.name):
            return lg.node(a.name).expr
        return a

    def go(x: T) -> T:
        if x in memo:
            return memo[x]
        if isinstance(x, Map):
            args = [go(a) for a in x.args]
            f = x.f
            if f.has(sp.log):
                for i in range(len(x.args)):
                    if not f.has(ph(i)):
                        continue
                    s = source(x.args[i])
                    if isinstance(s, Softmax) and f.has(sp.log(ph(i))):
                        f = f.xreplace({sp.log(ph(i)): ph(len(args))})
                        args.append(LogSoftmax(go(s.a)))
                    elif isinstance(s, Map) and len(s.args) == 1 and s.f == sigmoid(ph(0)) and \
                            s.args[0].shape == s.shape:
                        k = len(args)
                        g = _log_sigmoid(f.xreplace({ph(i): sigmoid(ph(k))}))
                        if g.has(sigmoid(ph(k))):
                            g = g.xreplace({sigmoid(ph(k)): ph(i)})
                        if g != f:
                            f = g
                            args.append(go(s.args[0]))
                f = _log_sigmoid(f)
            r = x if f is x.f and all(a is b for a, b in zip(args, x.args)) else _drop_unused(f, args, x.shape)
        elif isinstance(x, Var):
            r = x
        elif isinstance(x, Index):
            r = Index(go(x.a), x.index)
        else:
            parts = [go(p) for p in x.parts]
            r = x if all(a is b for a, b in zip(parts, x.parts)) else type(x)(*parts)
        memo[x] = r
        return r
    return go(t)


def _drop_unused(f: sp.Expr, args, shape) -> Map:
    used = [i for i in range(len(args)) if f.has(ph(i))]
    f = f.xreplace({ph(i): ph(k) for k, i in enumerate(used)})
    return Map(f, tuple(args[i] for i in used), tuple(shape))


# --------------------------------------------------------------- emitting ---

@dataclass(frozen=True)
class _Operand:
    code: str                 # a variable, or a view of one (v_W2.T, _t3[:, None])
    var: str | None           # the variable when ``code`` is exactly one (a candidate for reuse)
    base: str | None          # the variable whose array ``code`` reads (None: an input or a constant)


@dataclass
class _Line:
    name: str
    uses: tuple[str, ...]                     # the variables it reads
    rhs: Callable[[frozenset], str]           # its right-hand side, given the variables that die here
    owned: bool = True                        # it makes a new array (which may be reused once dead)


_INPLACE_UFUNC = {sp.exp: "numpy.exp", sp.log: "numpy.log", sp.tanh: "numpy.tanh", sp.sin: "numpy.sin",
                  sp.cos: "numpy.cos"}


def _batch_axes(rank: int) -> str:
    return "[:" + ", None" * rank + "]"


def _T(code: str) -> str:
    """The transpose of a 2-D array's code (``W.T.T`` is ``W``)."""
    return code[:-2] if code.endswith(".T") else f"{code}.T"


class _Function:
    """The lines of one generated function: values and δ's on demand, each once."""

    def __init__(self, gen: "_Generator", roots=(), columns: bool = False):
        self.gen = gen
        self.columns = columns                  # the batch axis last ([units, samples]), not first
        self.lines: list[_Line] = []
        self.memo: dict = {}
        self.count = 0
        self.roots: set[str] = set(roots)       # variables the function returns: never reused

    # -- variables
    def temp(self) -> str:
        self.count += 1
        return f"_t{self.count}"

    def add(self, name: str, operands, rhs, owned=True) -> _Operand:
        self.lines.append(_Line(name, tuple(o.base for o in operands if o.base), rhs, owned))
        return _Operand(name, name, name)

    def bind(self, t: T, op: _Operand) -> None:
        self.memo[t] = op

    # -- expressions
    def operand(self, t: T, name: str | None = None) -> _Operand:
        """The code of ``t``'s value; its lines are added on first use (into ``name`` when given)."""
        hit = self.memo.get(t)
        if hit is not None:
            return hit
        if isinstance(t, Var):
            raise KeyError(f"{t} is used before its line")      # values and δ's are bound in order
        op = _PRINT[type(t)](self, t, name)
        self.memo[t] = op
        return op

    def reusable(self, a: T, b: T) -> bool:
        """True when ``a``'s array can hold ``b``'s value: the same shape, an array (not a 0-d value)."""
        return a.shape == b.shape and self.gen.flag(a) == self.gen.flag(b) and bool(a.shape or self.gen.flag(a))

    # -- printing
    def text(self, indent: str) -> list[str]:
        """The lines, each array reused in place only after its last reader (views of it included)."""
        end = len(self.lines)
        last: dict[str, int] = {r: end for r in self.roots}          # returned: read at the end
        for k, line in enumerate(self.lines):
            for u in line.uses:
                last[u] = max(last.get(u, k), k)
        for line in reversed(self.lines):          # a view (v = a.T, a broadcast) keeps its array alive
            if not line.owned and line.name in last:
                for u in line.uses:
                    last[u] = max(last[u], last[line.name])
        owned = {line.name for line in self.lines if line.owned}
        out = []
        for k, line in enumerate(self.lines):
            dead = frozenset(u for u in line.uses if last.get(u) == k and u in owned)
            out.append(f"{indent}{line.name} = {line.rhs(dead)}")
        return out


# one printing rule per operation: (function, expression, variable name or None) -> operand

def _print_map(fn: _Function, t: Map, name):
    gen = fn.gen
    if not t.args:                                   # a constant
        value = repr(float(t.f))
        if not t.shape:
            return _Operand(value, None, None)
        return fn.add(name or fn.temp(), (), lambda dead: f"numpy.full({t.shape!r}, {value})")
    raw = [fn.operand(a) for a in t.args]
    if t.shape and all(not a.shape for a in t.args):        # scalars broadcast to the map's shape
        n = (gen.batch_size,) if gen.flag(t) else ()
        full = t.shape + n if fn.columns else n + t.shape
        fill = "_fill_last" if fn.columns else "_fill"
        code = gen.scalar_code(t.f, [o.code for o in raw])
        return fn.add(name or fn.temp(), raw, lambda dead: f"{fill}({code}, ({', '.join(map(str, full))},))",
                      owned=False)
    if fn.columns:       # a tensor the same in every sample, by tensors with the batch axis last
        ops = [_Operand(o.code + "[..., None]", None, o.base) if a.shape and not gen.flag(a) and gen.flag(t) else o
               for o, a in zip(raw, t.args)]
    else:                # one scalar per sample, by tensors with the batch axis first
        ops = [_Operand(o.code + _batch_axes(len(t.shape)), None, o.base)
               if t.shape and not a.shape and gen.flag(a) else o for o, a in zip(raw, t.args)]

    def rhs(dead):
        dying = {i for i, (o, a) in enumerate(zip(ops, t.args)) if o.var in dead and fn.reusable(a, t)}
        reusable = {i for i in dying if t.f.count(ph(i)) == 1}
        return gen.map_code(t.f, [o.code for o in ops], reusable, dying)
    return fn.add(name or fn.temp(), ops, rhs)


def _print_matmul(fn: _Function, t: MatMul, name):
    gen = fn.gen
    a, b = fn.operand(t.a), fn.operand(t.b)
    fa, fb = gen.flag(t.a), gen.flag(t.b)
    ra, rb = len(t.a.shape), len(t.b.shape)
    A, B = a.code, b.code
    if fn.columns and (fa or fb):          # the batch axis last: W @ X is one matrix product
        if (ra, rb, fa, fb) == (2, 1, False, True):
            code = f"{A} @ {B}"
        elif (ra, rb, fa, fb) == (1, 2, True, False):
            code = f"{_T(B)} @ {A}"
        elif (ra, rb) == (1, 1) and fa != fb:
            code = f"{A} @ {B}" if fb else f"{B} @ {A}"
        else:
            sa = ("ij" if ra == 2 else "j") + ("n" if fa else "")
            sb = ("jk" if rb == 2 else "j") + ("n" if fb else "")
            out = ("i" if ra == 2 else "") + ("k" if rb == 2 else "") + "n"
            code = f"numpy.einsum('{sa},{sb}->{out}', {A}, {B})"
        return fn.add(name or fn.temp(), (a, b), lambda dead: code)
    if (ra, rb) == (2, 1):                 # W @ x
        code = f"{B} @ {_T(A)}" if fb and not fa else \
            f"numpy.matmul({A}, {B}[..., None])[..., 0]" if fa and fb else f"{A} @ {B}"
    elif (ra, rb) == (1, 2):               # a @ B (a row vector times a matrix)
        code = f"numpy.matmul({A}[:, None, :], {B})[:, 0, :]" if fa and fb else f"{A} @ {B}"
    elif (ra, rb) == (1, 1):               # a dot product
        code = f"numpy.einsum('ni,ni->n', {A}, {B})" if fa and fb else f"{B} @ {A}" if fb else f"{A} @ {B}"
    else:                                  # matrix products broadcast over a batch axis
        code = f"{A} @ {B}"
    return fn.add(name or fn.temp(), (a, b), lambda dead: code)


def _print_outer(fn: _Function, t: Outer, name):
    a, b = fn.operand(t.a), fn.operand(t.b)
    if not fn.gen.flag(t):
        return fn.add(name or fn.temp(), (a, b), lambda dead: f"numpy.outer({a.code}, {b.code})")
    if fn.columns:
        A = a.code + ("[:, None, :]" if fn.gen.flag(t.a) else "[:, None, None]")
        B = b.code + ("[None, :, :]" if fn.gen.flag(t.b) else "[None, :, None]")
        return fn.add(name or fn.temp(), (a, b), lambda dead: f"{A} * {B}")
    return fn.add(name or fn.temp(), (a, b), lambda dead: f"{a.code}[..., :, None] * {b.code}[..., None, :]")


def _print_transpose(fn: _Function, t: Transpose, name):
    a = fn.operand(t.a)
    code = (f"{a.code}.transpose(1, 0, 2)" if fn.columns else f"{a.code}.transpose(0, 2, 1)") \
        if fn.gen.flag(t.a) else _T(a.code)
    if name:
        return fn.add(name, (a,), lambda dead: code, owned=False)
    return _Operand(code, None, a.base)


def _reduce(method):
    def rule(fn: _Function, t, name):
        a = fn.operand(t.a)
        if not t.a.shape:
            return a
        if fn.gen.flag(t.a):
            axes = tuple(range(len(t.a.shape))) if fn.columns else tuple(range(1, len(t.a.shape) + 1))
            axis = str(axes[0]) if len(axes) == 1 else repr(axes)
            code = f"{a.code}.{method}(axis={axis})"
        else:
            code = f"numpy.{method}({a.code})"
        return fn.add(name or fn.temp(), (a,), lambda dead: code)
    return rule


def _print_softmax(fn: _Function, t: Softmax, name):
    a = fn.operand(t.a)
    axis = ", 0" if fn.columns else ""        # a vector's axis: first with the batch axis last
    log = LogSoftmax(t.a)
    if log not in fn.gen.log_softmax or log in fn.memo:
        return fn.add(name or fn.temp(), (a,), lambda dead: f"_vsoftmax({a.code}{axis})")
    pair = fn.add(fn.temp(), (a,), lambda dead: f"_softmax_and_log({a.code}{axis})")   # the log is used too
    fn.bind(log, fn.add(fn.temp(), (pair,), lambda dead: f"{pair.code}[1]", owned=False))
    return fn.add(name or fn.temp(), (pair,), lambda dead: f"{pair.code}[0]", owned=False)


def _print_log_softmax(fn: _Function, t: LogSoftmax, name):
    a = fn.operand(t.a)
    axis = ", 0" if fn.columns else ""
    return fn.add(name or fn.temp(), (a,), lambda dead: f"_log_softmax({a.code}{axis})")


def _print_index(fn: _Function, t: Index, name):
    a = fn.operand(t.a)
    lead = ":, " if fn.gen.flag(t.a) and not fn.columns else ""
    code = f"{a.code}[{lead}{', '.join(map(str, t.index))}]"
    if name:
        return fn.add(name, (a,), lambda dead: code, owned=False)
    return _Operand(code, None, a.base)


_PRINT: dict[type, Callable] = {
    Map: _print_map, MatMul: _print_matmul, Outer: _print_outer, Transpose: _print_transpose,
    Sum: _reduce("sum"), Mean: _reduce("mean"), Softmax: _print_softmax, LogSoftmax: _print_log_softmax,
    Index: _print_index,
}


# ------------------------------------------------------------- batch sums ---

def _linear_terms(f: sp.Expr, batched: set) -> list | None:
    """f as Σ coefficient · placeholder over the batched placeholders, plus a rest free of them; or None."""
    out = []
    for term in sp.Add.make_args(sp.expand(f)) if f.free_symbols & batched else [f]:
        hit = term.free_symbols & batched
        if not hit:
            out.append((term, None))
            continue
        if len(hit) != 1:
            return None
        p = next(iter(hit))
        c = sp.cancel(term / p)
        if c.free_symbols & batched:
            return None
        out.append((c, p))
    return out


def batch_sum(fn: _Function, t: T) -> _Operand:
    """The sum over the batch of ``t``'s per-sample values, without forming them where a rule applies."""
    key = ("batch_sum", t)
    if key in fn.memo:
        return fn.memo[key]
    gen = fn.gen
    op = _batch_sum(fn, t) if gen.batched else fn.operand(t)
    fn.memo[key] = op
    return op


def _batch_sum(fn: _Function, t: T) -> _Operand:
    gen = fn.gen
    n = gen.batch_size
    if not gen.flag(t):
        a = fn.operand(t)
        return fn.add(fn.temp(), (a,), lambda dead: f"{n} * {a.code}")
    if isinstance(t, Outer):
        fa, fb = gen.flag(t.a), gen.flag(t.b)
        if fa and fb:
            a, b = fn.operand(t.a), fn.operand(t.b)
            code = f"{a.code} @ {_T(b.code)}" if fn.columns else f"{_T(a.code)} @ {b.code}"
            return fn.add(fn.temp(), (a, b), lambda dead: code)
        a = batch_sum(fn, t.a) if fa else fn.operand(t.a)
        b = batch_sum(fn, t.b) if fb else fn.operand(t.b)
        return fn.add(fn.temp(), (a, b), lambda dead: f"numpy.outer({a.code}, {b.code})")
    if isinstance(t, Transpose):
        a = batch_sum(fn, t.a)
        return _Operand(_T(a.code), None, a.base)
    if isinstance(t, MatMul) and gen.flag(t.a) != gen.flag(t.b):      # linear in the batched factor
        a = batch_sum(fn, t.a) if gen.flag(t.a) else fn.operand(t.a)
        b = batch_sum(fn, t.b) if gen.flag(t.b) else fn.operand(t.b)
        return fn.add(fn.temp(), (a, b), lambda dead: f"{a.code} @ {b.code}")
    if isinstance(t, (Sum, Mean)) and t.a.shape:
        scale = "" if isinstance(t, Sum) else f" / {math.prod(t.a.shape)}"
        by_terms = _sum_of_products(fn, t.a)
        if by_terms is not None:             # Σ c·u·v as a dot product: no array of the products
            code, operands = by_terms
            return fn.add(fn.temp(), operands, lambda dead: f"{code}{scale}")
        a = fn.operand(t.a)
        return fn.add(fn.temp(), (a,), lambda dead: f"{a.code}.sum(){scale}")
    if isinstance(t, Map) and t.args:
        terms = _linear_terms(t.f, {ph(i) for i, a in enumerate(t.args) if gen.flag(a)})
        if terms is not None:                # Σ_samples (c · u) = c · Σ_samples u for c the same in every sample
            codes: dict = {sp.Symbol("_n"): n}
            operands = []
            tensor = False
            for i, a in enumerate(t.args):
                if not gen.flag(a) and t.f.has(ph(i)):
                    o = fn.operand(a)
                    codes[ph(i)], tensor = o.code, tensor or bool(a.shape)
                    operands.append(o)
            g = sp.Integer(0)
            for c, p in terms:
                if p is None:
                    g += c * sp.Symbol("_n")
                    continue
                i = int(p.name[1:])
                o = batch_sum(fn, t.args[i])
                q = sp.Symbol(f"_s{i}")
                codes[q], tensor = o.code, tensor or bool(t.args[i].shape)
                operands.append(o)
                g += c * q
            code = gen.scalar_code(g, codes)
            if t.shape and not tensor:
                return fn.add(fn.temp(), operands, lambda dead: f"_fill({code}, {t.shape!r})", owned=False)
            return fn.add(fn.temp(), operands, lambda dead: code)
    a = fn.operand(t)
    axis = -1 if fn.columns else 0
    return fn.add(fn.temp(), (a,), lambda dead: f"{a.code}.sum(axis={axis})")


def _sum_of_products(fn: _Function, t: T):
    """(code, operands) of the sum of every entry of a map c·u·v or c·u² (u, v per sample, of the
    map's shape) as a dot product, or None: the loss's total from its terms, as the scalar view
    sums (y − o)² (``numeric.total_code``)."""
    gen = fn.gen
    if not (isinstance(t, Map) and gen.flag(t) and all(a.shape == t.shape for a in t.args)):
        return None
    c, rest = t.f.as_coeff_Mul()
    if rest.is_Pow and rest.exp == 2:
        base = rest.base
        a = fn.operand(t.args[int(base.name[1:])] if base.is_Symbol else _drop_unused(base, list(t.args), t.shape))
        operands, code = (a,), f"_vdot({a.code}, {a.code})"
    else:
        factors = sp.Mul.make_args(rest)
        if len(factors) != 2 or not all(f.is_Symbol for f in factors):
            return None
        a, b = (fn.operand(t.args[int(f.name[1:])]) for f in factors)
        operands, code = (a, b), f"_vdot({a.code}, {b.code})"
    if c != 1:
        code = f"{float(c)!r} * {code}"
    return code, operands


# -------------------------------------------------------------- generator ---

class _Generator:
    """The code of one layer workspace for one choice of batch leaves."""

    def __init__(self, ws, wrt: tuple[str, ...], batch: frozenset):
        from .layer_derivation import resolve
        self.ws = ws
        self.lg = lg = ws.lg
        self.wrt = wrt
        self.targets = [resolve(lg, w) for w in wrt]
        self.batch = frozenset(batch)
        self.batched = bool(self.batch)
        self.batch_size = "_n"
        self.names = {n: f"v_{n}" for n in lg.names}
        self.forward = {n.name: stable_forward(lg, n.expr) for n in lg.nodes}
        self.log_softmax = {x for e in self.forward.values() for x in walk(e) if isinstance(x, LogSoftmax)}
        self._flags: dict = {}
        self._node_flag: dict[str, bool] = {}
        self._delta_flag: dict[str, bool] = {}
        for n in lg.nodes:
            self._node_flag[n.name] = self.flag(self.forward[n.name])
        for n in reversed(lg.nodes):
            self._delta_flag[n.name] = self.flag(self.claim(n.name))
        self.printer = _Printer({})

    # -- what the code computes
    def claim(self, name: str) -> T:
        """δ_name as the derivation states it (the lemma's form where it states one)."""
        return self.ws.claim(name)

    def gradient_expr(self, target: str) -> T:
        """∂output/∂target: the derivation's result for a leaf (its δ for a node)."""
        lg = self.lg
        return self.ws.accumulation(target).expr if lg.is_leaf(target) else self.claim(target)

    def flag(self, t: T) -> bool:
        """True when ``t`` has a value per sample (it depends on a batch leaf)."""
        hit = self._flags.get(t)
        if hit is not None:
            return hit
        if isinstance(t, Var):
            if t.adjoint:
                r = self._delta_flag[t.name]
            elif self.lg.is_leaf(t.name):
                r = t.name in self.batch
            else:
                r = self._node_flag[t.name]
        else:
            r = any(self.flag(p) for p in t.parts)
        self._flags[t] = r
        return r

    # -- scalar code of a map
    def scalar_code(self, f: sp.Expr, codes) -> str:
        """f printed by ``numeric``'s NumPy printer, placeholders (or symbols of ``codes``) as their code."""
        if isinstance(codes, dict):
            self.printer.names = {s.name: c for s, c in codes.items()}
        else:
            self.printer.names = {ph(i).name: c for i, c in enumerate(codes)}
        return self.printer.doprint(f)

    def map_code(self, f: sp.Expr, codes: list[str], reusable: set[int], dying=frozenset()) -> str:
        """A map's right-hand side, overwriting the operands in ``reusable`` (arrays that die here and
        are read once by ``f``); of ``dying`` (arrays that die here), δ·a·(1 − a) writes 1 − a over a."""
        pr = lambda e: self.scalar_code(e, codes)       # noqa: E731
        f = _pull_constant(f)            # (1/2)·a − (1/2)·y as (1/2)·(a − y): one pass fewer
        if f.is_Mul:
            parts = list(sp.Mul.make_args(f))
            for k in sorted(dying - reusable):
                p = ph(k)
                if f.count(p) == 2 and 1 - p in parts and p in parts and len(parts) >= 3:
                    parts.remove(1 - p)          # the rest first (it reads a), then a overwritten by 1 − a
                    rest = self.map_code(sp.Mul(*parts), codes, reusable)
                    return f"_imul({rest}, numpy.subtract(1.0, {codes[k]}, out={codes[k]}))"
        if reusable:
            if f.is_Function and len(f.args) == 1 and f.args[0].is_Symbol and \
                    int(f.args[0].name[1:]) in reusable:
                x = codes[int(f.args[0].name[1:])]
                if type(f) in _INPLACE_UFUNC:
                    return f"{_INPLACE_UFUNC[type(f)]}({x}, out={x})"
                if isinstance(f, sigmoid):
                    return f"_sigmoid_({x})"
        if f.is_Add or f.is_Mul:
            parts = sp.Add.make_args(f) if f.is_Add else sp.Mul.make_args(f)

            def fresh(e) -> bool:
                if e.is_Mul and len(e.args) == 2 and e.args[0] == -1 and e.args[1].is_Symbol:
                    return False          # −u: y − u is one pass, −u then += y two
                return (e.is_Symbol and int(e.name[1:]) in reusable) or not (e.is_Symbol or e.is_Number)
            if f.is_Add:
                terms = [(pr(e), fresh(e)) for e in parts]
                if any(fr for _, fr in terms) and len(terms) > 1:
                    minus = [e for e in parts if e.is_Mul and len(e.args) == 2 and e.args[0] == -1
                             and e.args[1].is_Symbol]
                    if minus:             # t + … − u: subtracted in place, not added as a new array −u
                        code = self.map_code(sp.Add(*[e for e in parts if e not in minus]), codes, reusable)
                        return f"_isub({code}, {', '.join(pr(-e) for e in minus)})"
                    return _join(terms)
            else:
                order = sorted(range(len(parts)), key=lambda i: not fresh(parts[i]))
                if fresh(parts[order[0]]) and len(parts) > 1:
                    code = pr(parts[order[0]])
                    for i in order[1:]:
                        code = f"_imul({code}, {pr(parts[i])})"
                    return code
        return pr(f)


def data_leaves(ws, definition=None, wrt=()) -> frozenset:
    """The leaves that carry the batch axis by default: every leaf that is not a parameter.

    Parameters are the definition's layer-view ``wrt`` (W1, b1, W2, b2, …), else the ``wrt`` asked."""
    from .layer_derivation import resolve
    lg = ws.lg
    params = definition.layer_wrt if definition is not None and definition.layer_wrt else wrt
    targets = {resolve(lg, p)[0] for p in params}
    return frozenset(x for x in lg.leaves if x not in targets)


def _verify(ws) -> None:
    """The VJP rules and lemmas the code uses passed their checks, or VerificationError."""
    lg = ws.lg
    live = set(lg.structure.ancestors(lg.output))
    uses = [u for n in lg.nodes if n.name in live for p in dict.fromkeys(n.parents)
            for u in ws.contribution(n.name, p).uses]
    bad = [f"rule {r.name}: {r.check.detail}" for r in ws.checker.rules(uses) if not r.check.passed]
    for n in lg.nodes:
        lm = ws.lemma(n.name)
        if lm is not None and not lm.check.passed:
            bad.append(f"lemma for δ_{n.name}: {lm.check.detail}")
    if bad:
        raise VerificationError("the rules of the layer view did not pass their checks, so no gradient is "
                                "compiled: " + "; ".join(bad))


def generate(ws, wrt, *, batch=None, doc: str = "", definition=None) -> str:
    """The module source of ∂output/∂wrt in the layer view: ``gradient(...)`` and ``totals(...)``.

    ``ws`` is a ``LayerWorkspace``; ``wrt`` layer names (``W1``) or scalar entries (``w5``);
    ``batch`` the leaves that may carry a leading batch axis (default ``data_leaves``). Raises
    VerificationError when a rule or lemma that the code uses did not pass its check."""
    wrt = tuple(wrt)
    _verify(ws)
    if batch is None:
        batch = data_leaves(ws, definition, wrt)
    gen = _Generator(ws, wrt, frozenset(batch))
    lg = gen.lg
    leaves = lg.leaves
    args = ", ".join(gen.names[x] for x in leaves)
    ind = "        "
    lead = "_n, _single, " if gen.batched else ""

    def var(name: str, adjoint: bool = False) -> Var:
        return Var(name, lg.shapes[name], adjoint=adjoint)

    def bind_leaves(fn: _Function):
        for x in leaves:
            fn.bind(var(x), _Operand(gen.names[x], None, None))

    def value_line(fn: _Function, node: str):
        fn.bind(var(node), fn.operand(gen.forward[node], gen.names[node]))

    def delta_line(fn: _Function, node: str):
        op = _Operand("1.0", None, None) if node == lg.output else fn.operand(gen.claim(node), f"d_{node}")
        fn.bind(var(node, True), op)

    def entry(code: str, index, flag: bool) -> str:
        return code if index is None else f"{code}[{':, ' if flag else ''}{', '.join(map(str, index))}]"

    # per sample: every value, every δ, every gradient
    per = _Function(gen)
    bind_leaves(per)
    for node in lg.nodes:
        value_line(per, node.name)
    k_delta = len(per.lines)
    for node in reversed(lg.nodes):
        delta_line(per, node.name)
    grads = []
    for w, (target, index) in zip(wrt, gen.targets):
        e = gen.gradient_expr(target)
        grads.append((w, per.operand(e), index, gen.flag(e)))
    returned = [per.memo[var(x)] for x in lg.names] + [per.memo[var(m.name, True)] for m in lg.nodes] + \
        [g for _, g, _, _ in grads]
    per.roots = {o.base for o in returned if o.base}

    def out(code, flag):
        return f"_per_sample({code}, {flag}, _n, _single)" if gen.batched else code

    lines = per.text(ind)
    body = [f"def _gradient({lead}{args}):",
            '    """Per sample: every value, every δ (adjoint) and the gradient, from the inputs as _inputs gives them."""',
            "    with numpy.errstate(all='ignore'):   # may be ±inf or nan at saturation: reported as is",
            f"{ind}# forward: every node from its parents (log σ and log softmax in their stable forms)"]
    body += lines[:k_delta] + [f"{ind}# reverse: the δ of every node, output first, as the derivation states it"]
    body += lines[k_delta:]
    body.append(f"{ind}_values = {{" + ", ".join(
        f"{x!r}: {out(per.memo[var(x)].code, gen.flag(var(x)))}" for x in lg.names) + "}")
    body.append(f"{ind}_adjoints = {{" + ", ".join(
        f"{m.name!r}: {out(per.memo[var(m.name, True)].code, gen.flag(var(m.name, True)))}" for m in lg.nodes) + "}")
    body.append(f"{ind}_gradient = {{" + ", ".join(f"{w!r}: {out(entry(g.code, index, flag), flag)}"
                                                   for w, g, index, flag in grads) + "}")
    body.append("    return _values, _adjoints, _gradient")

    # batch totals: only what the gradients need, the batch sum pushed into each gradient
    columns = totals_in_columns(gen)
    tbody = totals_function(gen, "_totals", columns)

    shapes = tuple(lg.shapes[x] for x in leaves)
    flags = tuple(x in gen.batch for x in leaves)
    pack = f"({args}{',' if len(leaves) == 1 else ''})"
    head = [f"ROWS = {block_rows(gen)}   # samples per block of the batch totals (block_rows)",
            f"OUTPUT = {lg.output!r}", f"WRT = {wrt!r}", f"LEAVES = {tuple(leaves)!r}", f"SHAPES = {shapes!r}",
            f"BATCH = {flags!r}   # which leaves may carry a leading batch axis (N samples)",
            f"COLUMNS = {columns!r}   # _totals takes the batch axis last (a layer's values as [units, samples])"]
    public = [
        f"def gradient({args}):",
        f'    """Values, adjoints and the gradient of {lg.output}: for one sample, or per sample over a batch',
        '    (a leading axis on the leaves of BATCH). Returns three dicts of arrays."""',
        f"    _args, _n, _single = _inputs({pack}, LEAVES, SHAPES, BATCH)",
        f"    return _gradient({lead}*_args)",
        "", "",
        f"def totals({args}):",
        f'    """The batch total of {lg.output} and of each gradient (arrays of the leaves\' shapes), and the',
        '    number of samples; nothing per sample is kept."""',
        f"    _args, _n, _single = _inputs({pack}, LEAVES, SHAPES, BATCH, finite=False)",
        ("    _total, _grad = _blocks(_totals, _n, _columns(_args, BATCH) if COLUMNS else _args, BATCH, COLUMNS)"
         if gen.batched else
         "    _total, _grad = _totals(*_args)"),
        "    if not _finite(_total, _grad):   # an input to blame? (checked here: the fast path reads each once)",
        f"        _inputs({pack}, LEAVES, SHAPES, BATCH)",
        "    return _total, _grad, _n",
    ]
    header = _docstring(doc) + "\n" if doc else ""
    return (header + "import math\n" + RUNTIME + LAYER_RUNTIME + "\n\n" + "\n".join(head) + "\n\n\n"
            + "\n".join(body) + "\n\n\n" + "\n".join(tbody) + "\n\n\n" + "\n".join(public) + "\n")


def block_rows(gen: "_Generator") -> int:
    """Samples per block of the batch totals, so that a block's arrays stay in cache: 8,192 for
    layers of up to 32 units (4-8-8-4: 0.98x torch vs 1.07x with 2,048), 2,048 for wider ones
    (784-128-10; measured with benchmarks/run.py, scale.py and layer.py)."""
    widest = max((math.prod(gen.lg.shapes[n.name]) for n in gen.lg.nodes), default=1)
    return 8192 if widest <= 32 else 2048


def totals_in_columns(gen: "_Generator") -> bool:
    """True when the totals take the batch axis last: every batch leaf is a scalar or a vector per
    sample (a network's x and y). A layer's values are then [units, samples], so a bias's sum, a
    softmax's maximum and sum run along contiguous rows (NumPy reduces a short last axis slowly)."""
    return gen.batched and all(len(gen.lg.shapes[x]) <= 1 for x in gen.batch)


def totals_function(gen: "_Generator", name: str, columns: bool) -> list[str]:
    """The lines of ``def name(_n, leaves…)``: the batch total of the output and of each gradient
    (a dict of arrays, the entries of scalar ``wrt`` as numbers), nothing per sample kept.

    Each gradient's batch sum is written right after the δ it reads, so a layer's activations die
    before the δ below it (which then overwrites them: ``1 − a`` in place); the output's total is
    summed from its terms where nothing reads its value (Σ (y − a)² as a dot product)."""
    lg = gen.lg
    ind = "        "
    fn = _Function(gen, columns=columns)
    for x in lg.leaves:
        fn.bind(Var(x, lg.shapes[x]), _Operand(gen.names[x], None, None))
    need_values, need_deltas, output_read = _needed(gen)
    for node in lg.nodes:
        if node.name in need_values:
            fn.bind(Var(node.name, lg.shapes[node.name]), fn.operand(gen.forward[node.name], gen.names[node.name]))
    total = batch_sum(fn, Var(lg.output, lg.shapes[lg.output]) if output_read else gen.forward[lg.output])
    exprs = [gen.gradient_expr(target) for target, _ in gen.targets]
    waiting = {i: set(names(e, adjoint=True)) - {lg.output} for i, e in enumerate(exprs)}
    sums: dict[int, _Operand] = {}

    def ready():
        for i in [i for i, w in waiting.items() if not w]:
            del waiting[i]
            sums[i] = batch_sum(fn, exprs[i])
    ready()
    for node in reversed(lg.nodes):
        if node.name not in need_deltas:
            continue
        fn.bind(Var(node.name, lg.shapes[node.name], adjoint=True),
                fn.operand(gen.claim(node.name), f"d_{node.name}"))
        for w in waiting.values():
            w.discard(node.name)
        ready()
    assert not waiting, "a gradient reads a δ that the totals do not compute"
    fn.roots = {o.base for o in [total, *sums.values()] if o.base}

    def entry(code: str, index) -> str:
        return code if index is None else f"{code}[{', '.join(map(str, index))}]"
    lines = [f"def {name}({'_n, ' if gen.batched else ''}{', '.join(gen.names[x] for x in lg.leaves)}):",
             '    """The batch total of the output and of each gradient, from the inputs as _inputs gives them'
             + (" (the batch axis last)." if columns else ".") + '"""',
             "    with numpy.errstate(all='ignore'):   # a non-finite total is reported by the caller"]
    lines += fn.text(ind)
    lines.append(f"{ind}_gradient = {{" + ", ".join(f"{w!r}: {entry(sums[i].code, index)}"
                                                    for i, (w, (_, index)) in enumerate(zip(gen.wrt, gen.targets))) + "}")
    lines.append(f"{ind}return {total.code}, _gradient")
    return lines


def _needed(gen: _Generator) -> tuple[set[str], set[str], bool]:
    """The nodes whose values, and those whose δ's, the totals need (for the output's total and each
    gradient), and whether a δ or a gradient reads the output's own value."""
    lg = gen.lg
    exprs = [gen.gradient_expr(t) for t, _ in gen.targets]
    deltas: set[str] = set()
    stack = [n for e in exprs for n in names(e, adjoint=True)]
    while stack:
        d = stack.pop()
        if d in deltas or d == lg.output:
            continue
        deltas.add(d)
        stack.extend(names(gen.claim(d), adjoint=True))
    values: set[str] = set()
    stack = [n for e in exprs for n in names(e)] + [n for d in deltas for n in names(gen.claim(d))]
    output_read = lg.output in stack
    stack += names(gen.forward[lg.output])
    while stack:
        v = stack.pop()
        if v in values or lg.is_leaf(v):
            continue
        values.add(v)
        stack.extend(names(gen.forward[v]))
    return values, deltas, output_read


# ----------------------------------------------------------------- object ---

class CompiledLayerGradient(CompiledGradient):
    """``grad(**leaves)`` -> Evaluation; ``grad.sum(**batch)`` / ``grad.mean(**batch)`` -> Totals.

    The protocol of the scalar view's ``CompiledGradient`` (its leaf checks and ``mean`` are
    shared). Leaves by their layer names, as arrays of their shapes; the leaves of ``batch`` may
    carry one more leading axis (N samples). A batch of any other leaf (a batch of weights)
    compiles the code for that choice on first use."""

    view = "layer"

    def __init__(self, ws, wrt, source: str, definition=None, batch: frozenset = frozenset(), doc: str = ""):
        self.ws = ws
        self.graph = ws.lg
        self.output = ws.lg.output
        self.wrt = tuple(wrt)
        self.leaves = ws.lg.leaves
        self._leafset = frozenset(self.leaves)
        self.shapes = {x: ws.lg.shapes[x] for x in self.leaves}
        self.batch = tuple(x for x in self.leaves if x in batch)
        self.source = source
        self.definition = definition
        self._doc = doc
        self._modules = {frozenset(batch): self._load(source)}

    @staticmethod
    def _load(source: str) -> dict:
        namespace: dict = {"__name__": "derivator_compiled_layer"}
        exec(compile(source, "<derivator:layer>", "exec"), namespace)   # our generated code only
        return namespace

    def _module(self, batch: frozenset) -> dict:
        m = self._modules.get(batch)
        if m is None:
            src = generate(self.ws, self.wrt, batch=batch, doc=self._doc)
            m = self._modules[batch] = self._load(src)
        return m

    def _inputs(self, kwargs, finite: bool = True):
        """The module for the leaves given with a batch axis, the inputs as its code takes them, the
        batch size, whether no leaf had a batch axis, and the inputs as given."""
        args = self._match(kwargs)
        batch = set(self.batch)
        for x, a in zip(self.leaves, args):
            if x not in batch and np.ndim(a) == len(self.shapes[x]) + 1 and np.shape(a)[1:] == self.shapes[x]:
                batch.add(x)                      # a batch of a parameter: its own code
        m = self._module(frozenset(batch))
        try:
            values, n, single = m["_inputs"](args, m["LEAVES"], m["SHAPES"], m["BATCH"], finite)
        except ValueError as e:
            raise UsageError(str(e), hint=_hint(str(e), self.shapes)) from None
        return m, values, n, single, args

    def __call__(self, /, **leaves) -> Evaluation:
        """Per-sample values, adjoints and gradient (arrays with a leading batch axis for a batch)."""
        m, args, n, single, _ = self._inputs(leaves)
        lead = (n, single) if any(m["BATCH"]) else ()
        values, adjoints, gradient = m["_gradient"](*lead, *args)
        return Evaluation(self.output, values[self.output], values, gradient, adjoints)

    def sum(self, /, **batch) -> Totals:
        """The batch total of the output and of each gradient (arrays of the leaves' shapes).

        Inputs are checked for NaN and ±inf when a total comes out non-finite (UsageError naming
        the input), so the fast path reads each input once."""
        m, args, count, _, raw = self._inputs(batch, finite=False)
        if any(m["BATCH"]):
            columns = m["COLUMNS"]
            value, gradient = m["_blocks"](m["_totals"], count, m["_columns"](args, m["BATCH"]) if columns else args,
                                           m["BATCH"], columns)
        else:
            value, gradient = m["_totals"](*args)
        gradient = {k: np.asarray(v, dtype=float) for k, v in gradient.items()}
        if not m["_finite"](value, gradient):
            try:
                m["_inputs"](raw, m["LEAVES"], m["SHAPES"], m["BATCH"])
            except ValueError as e:
                raise UsageError(str(e), hint=_hint(str(e), self.shapes)) from None
            warnings.warn(f"the batch total of {self.output} or of a gradient is not finite", RuntimeWarning,
                          stacklevel=2)
        return Totals(self.output, float(value), gradient, int(count))

    def mean(self, /, **batch) -> Totals:
        """The batch means: ``sum``'s totals divided by the batch size."""
        t = self.sum(**batch)
        n = max(t.count, 1)
        return Totals(self.output, t.value / n, {k: v / n for k, v in t.gradient.items()}, t.count)

    def __repr__(self):
        shapes = ", ".join(f"{w}" for w in self.wrt[:6]) + (", …" if len(self.wrt) > 6 else "")
        batch = f"; a batch over {', '.join(self.batch)}" if self.batch else ""
        return (f"<CompiledLayerGradient ∂{self.output}/∂({shapes}) of {len(self.leaves)} leaves "
                f"({', '.join(f'{x} {shape_text(s)}' for x, s in list(self.shapes.items())[:8])}){batch}>")


def _hint(message: str, shapes: dict) -> str | None:
    if "NaN" in message:
        return "derivator refuses non-finite inputs instead of passing them on"
    if "shape" in message:
        return "shapes: " + ", ".join(f"{x} {shape_text(s)}" for x, s in shapes.items())
    return None


def compile_layer(ws, wrt, definition=None, doc: str = "", batch=None) -> CompiledLayerGradient:
    """The compiled gradient of a layer workspace for ``wrt`` (layer names or scalar entries)."""
    wrt = tuple(wrt)
    batch = data_leaves(ws, definition, wrt) if batch is None else frozenset(batch)
    source = generate(ws, wrt, batch=batch, doc=doc)
    return CompiledLayerGradient(ws, wrt, source, definition, batch, doc)


# ------------------------------------------------- the scalar view's totals ---

def scalar_totals(ws, leaves, wrt, names) -> tuple[str, tuple[str, ...]] | None:
    """The layer code of the scalar view's batch totals of a network, or None where it does not apply.

    ``leaves`` are the scalar graph's leaves (``x1``, ``y1``, ``w5``, ``b3``, …), ``wrt`` the scalar
    names to differentiate by, ``names`` the scalar module's variable of each leaf (``v_w5``). Gives
    (source, parameters): the source defines ``_layer_flat(<leaves>)`` — the inputs and targets
    stacked into x, y [units, N], the scalar weights gathered into W1, b1, … by the naming map, the
    layer view's totals (``totals_function``, the batch axis last), and the totals scattered back
    to the scalar names as one array in the order of ``wrt`` — with the layer runtime it needs;
    ``parameters`` are the scalar leaves that must be numbers for it to apply (the weights).

    None unless every scalar leaf is an entry of a layer leaf and every entry is a scalar leaf,
    the batch leaves are vectors (x, y), and every ``wrt`` is an entry of a parameter."""
    lg = ws.lg
    naming = lg.naming
    if naming is None or naming.net is None:
        return None
    where: dict[str, tuple[str, tuple]] = {}
    by_tensor: dict[str, dict[tuple, str]] = {}
    for x in leaves:
        e = naming.entry_of(x)
        if e is None or not lg.is_leaf(e[0]):
            return None
        where[x] = e
        by_tensor.setdefault(e[0], {})[e[1]] = x
    if any(len(by_tensor.get(t, ())) != math.prod(lg.shapes[t]) for t in lg.leaves):
        return None
    batch = data_leaves(ws, ws.definition)
    if any(len(lg.shapes[t]) != 1 for t in batch) or not batch:
        return None
    if any(w not in where or where[w][0] in batch for w in wrt):
        return None
    tensors = tuple(t for t in lg.leaves if t not in batch and any(where[w][0] == t for w in wrt))
    _verify(ws)
    gen = _Generator(ws, tensors, frozenset(batch))
    body = totals_function(gen, "_layer_totals", columns=True)
    offsets, offset = {}, 0
    for t in tensors:
        offsets[t] = offset
        offset += math.prod(lg.shapes[t])

    def flat_index(w: str) -> int:
        t, idx = where[w]
        shape = lg.shapes[t]
        k = 0
        for i, n in zip(idx, shape):
            k = k * n + i
        return offsets[t] + k

    def gathered(t: str) -> str:
        shape = lg.shapes[t]
        cell = {idx: names[x] for idx, x in by_tensor[t].items()}
        if not shape:
            return f"float({cell[()]})"
        if len(shape) == 1:
            return "numpy.array([" + ", ".join(cell[(i,)] for i in range(shape[0])) + "], dtype=float)"
        rows = ("[" + ", ".join(cell[(i, j)] for j in range(shape[1])) + "]" for i in range(shape[0]))
        return "numpy.array([" + ", ".join(rows) + "], dtype=float)"

    data = [x for x in leaves if where[x][0] in batch]
    params = tuple(x for x in leaves if where[x][0] not in batch)
    ind = "    "
    lines = [f"ROWS = {block_rows(gen)}   # samples per block of the layer code's totals",
             f"_LAYER_WRT = {tuple(wrt)!r}",
             f"_LAYER_PICK = numpy.array({[flat_index(w) for w in wrt]!r}, dtype=numpy.intp)",
             f"_LAYER_PARAMS = {params!r}", "", "",
             *body, "", "",
             f"def _layer_flat({', '.join(names[x] for x in leaves)}):",
             '    """The batch totals of a network by the layer view\'s code: scalar weights over 1-D batches',
             "    stacked into matrices [units, N]; the output's total, the gradients as one array in the order",
             '    of _LAYER_WRT, and the batch size."""',
             f"{ind}_shape = _batch_shape({', '.join(names[x] for x in data)})",
             f"{ind}_n = _shape[0]"]
    for x in data:
        lines.append(f"{ind}{names[x]} = _batch({names[x]}, _shape)")
    for t in lg.leaves:
        if t not in batch:
            lines.append(f"{ind}{gen.names[t]} = {gathered(t)}")
    args = ", ".join(gen.names[t] for t in lg.leaves)
    parts = ", ".join(f"numpy.ravel(_g[{t!r}])" for t in tensors)
    i2, i3 = ind * 2, ind * 3
    lines += [f"{ind}_value, _flat = 0.0, 0.0",
              f"{ind}with numpy.errstate(all='ignore'):",
              f"{i2}for _s in range(0, max(_n, 1), ROWS):     # stacked a block at a time: it stays in cache",
              f"{i3}_e = min(_s + ROWS, _n)"]
    for t in lg.leaves:
        if t in batch:
            entries = ", ".join(f"{names[by_tensor[t][(i,)]]}[_s:_e]" for i in range(lg.shapes[t][0]))
            lines.append(f"{i3}{gen.names[t]} = numpy.stack(({entries},))")
    lines += [f"{i3}_v, _g = _layer_totals(_e - _s, {args})",
              f"{i3}_value += _v",
              f"{i3}_flat = _flat + numpy.concatenate(({parts},))",
              f"{ind}return _value, _flat[_LAYER_PICK], _n"]
    return LAYER_RUNTIME + "\n\n" + "\n".join(lines) + "\n", params
