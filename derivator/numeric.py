"""Numeric: the graph and its local partials -> one compiled NumPy function.

Takes a ``Graph`` (with the checked local partials of a ``Workspace``); gives
a ``CompiledGradient``: straight-line Python over NumPy arrays that computes
every node's value (forward, in topological order), then every adjoint
δ_n = Σ_children δ_c · ∂c/∂n (reverse order), then the gradient for every
``wrt`` — one function for all of them, with common subexpressions shared
(``sympy.cse``). The code is generated from sympy's NumPy printer and the
project's own expressions (names are validated identifiers, never user code).

``CompiledGradient.source`` is the module text; ``derivator compile -o`` writes
it as a standalone module that needs NumPy only.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence

from .errors import UsageError, VerificationError
from .functions import logsumexp
from .graph import Graph

RUNTIME = '''\
import numpy


def _sigmoid(x):
    if numpy.ndim(x) == 0:
        return 1.0 / (1.0 + numpy.exp(-x))
    t = numpy.negative(x)
    numpy.exp(t, out=t)
    t += 1.0
    return numpy.reciprocal(t, out=t)


def _sigmoid_(x):
    """σ(x) computed in place in x (an array that nothing reads afterwards)."""
    numpy.negative(x, out=x)
    numpy.exp(x, out=x)
    x += 1.0
    return numpy.reciprocal(x, out=x)


def _softplus(x):
    return numpy.logaddexp(0.0, x)


def _relu(x):
    return numpy.maximum(x, 0.0)


def _logsumexp(*u):
    m = u[0]
    for x in u[1:]:
        m = numpy.maximum(m, x)
    m = numpy.where(numpy.isfinite(m), m, 0.0)
    return m + numpy.log(sum(numpy.exp(x - m) for x in u))


def _softmax(*u):
    """(log Σ exp(u_k), [exp(u_k − log Σ exp(u))]): the log-sum-exp and the softmax from one exp
    per u_k (exp(u_k − m)/Σ exp(u − m), m the largest u); the same function as exp(u_k − lse)."""
    m = u[0]
    for x in u[1:]:
        m = numpy.maximum(m, x)
    if not numpy.isfinite(m).all():
        m = numpy.where(numpy.isfinite(m), m, 0.0)
    e = [numpy.exp(x - m) for x in u]
    s = _add(*e) if len(e) > 1 else e[0].copy()
    if s.__class__ is not numpy.ndarray:          # numbers, not arrays
        return numpy.log(s) + m, [t / s for t in e]
    lse = numpy.log(s)
    lse += m
    numpy.reciprocal(s, out=s)
    for t in e:
        t *= s
    return lse, e


def _batch(x, shape):
    """x as a float array of the batch's shape (no copy where it is one already)."""
    if x.__class__ is numpy.ndarray and x.shape == shape and x.dtype == numpy.float64:
        return x
    return numpy.broadcast_to(numpy.asarray(x, dtype=float), shape)


def _batch_shape(*xs):
    """The broadcast shape of numbers and arrays (a fast path for the usual: one shape, and scalars)."""
    shapes = {x.shape if x.__class__ is numpy.ndarray else numpy.shape(x) for x in xs}
    shapes.discard(())
    if len(shapes) <= 1:
        return shapes.pop() if shapes else ()
    return numpy.broadcast_shapes(*shapes)


def _broadcast(*xs):
    """The broadcast shape of arrays (a fast path for the usual: one shape, and scalars)."""
    shapes = {x.shape for x in xs}
    shapes.discard(())
    if len(shapes) <= 1:
        return shapes.pop() if shapes else ()
    return numpy.broadcast_shapes(*shapes)


def _imul(t, a):
    """t * a, in place when t is a new array of the full shape (fewer allocations)."""
    if t.__class__ is numpy.ndarray and getattr(a, "shape", ()) in ((), t.shape):
        t *= a
        return t
    return t * a


def _iadd(t, *rest):
    """t + rest…, in place when t is a new array of the full shape."""
    for x in rest:
        if t.__class__ is numpy.ndarray and getattr(x, "shape", ()) in ((), t.shape):
            t += x
        else:
            t = t + x
    return t


def _add(*xs):
    """x1 + x2 + …, flat (no deeply nested expression), in place after the first sum."""
    return _iadd(xs[0] + xs[1], *xs[2:])


def _prod(*xs):
    """x1 · x2 · …, flat, in place after the first product."""
    t = xs[0] * xs[1]
    for x in xs[2:]:
        t = _imul(t, x)
    return t


def _step(x, at_zero):
    return numpy.where(x > 0, 1.0, numpy.where(x < 0, 0.0, at_zero))


def _full(x, shape):
    x = numpy.asarray(x, dtype=float)
    return x if x.shape == shape else numpy.broadcast_to(x, shape).copy()


def _total(x, shape):
    if x.__class__ is numpy.ndarray and x.shape == shape:
        return x.sum()
    x = numpy.asarray(x, dtype=float)
    if x.shape == shape:
        return x.sum()
    return x.sum() * (math.prod(shape) / max(x.size, 1)) if x.ndim == 0 else numpy.broadcast_to(x, shape).sum()


def _sumsq(a, shape):
    """The batch total of a², without the array of squares."""
    if a.__class__ is numpy.ndarray and a.shape == shape:
        return numpy.dot(a.ravel(), a.ravel())
    return _dot(a, a, shape)


def _dot(a, b, shape):
    if a.__class__ is numpy.ndarray and b.__class__ is numpy.ndarray and a.shape == shape and b.shape == shape:
        return numpy.dot(a.ravel(), b.ravel())
    a = numpy.asarray(a, dtype=float)
    b = numpy.asarray(b, dtype=float)
    if a.shape == shape and b.shape == shape:
        return numpy.dot(a.ravel(), b.ravel())
    return _total(a * b, shape)
'''


class _Printer(NumPyPrinter):
    """NumPy code for the project's expressions, with variables renamed.

    ``temps`` maps shared subexpressions to the names of the temporaries that hold them:
    printing one of them prints its name. Sums and products of more than ``FLAT`` terms
    are printed as one call with flat arguments (``_add(a, b, …)``): a 3,000-term sum
    printed as ``a + b + …`` nests 3,000 deep and Python's compiler gives up."""

    FLAT = 32

    def __init__(self, names: Mapping[str, str]):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.names = names
        self.temps: dict = {}
        self._defining = None

    def _print(self, expr, **kwargs):
        if self.temps and isinstance(expr, sp.Basic) and expr is not self._defining:
            name = self.temps.get(expr)
            if name is not None:
                return name
        return super()._print(expr, **kwargs)

    def text(self, expr, defining: bool = False) -> str:
        """The code of ``expr`` (with ``defining``, of a temporary's own expression)."""
        self._not_supported = set()
        self._number_symbols = set()
        self._defining = expr if defining else None
        try:
            out = self._print(expr)
        finally:
            self._defining = None
        if self._not_supported:
            raise NotImplementedError(f"no NumPy code for {sorted(map(str, self._not_supported))}")
        return out

    def fresh(self, e) -> bool:
        """True when NumPy evaluates ``e`` into a new array (not a variable, a shared temporary or a
        number): a new array may be updated in place."""
        return not (e.is_Symbol or e.is_Number or e in self.temps)

    def _print_Symbol(self, s):
        return self.names[s.name]

    def _print_Add(self, expr, order=None):
        """As sympy prints it, but starting with a positive term: ``y - o``, not ``-o + y``
        (one array pass fewer: no negation before the sum)."""
        terms = list(self._as_ordered_terms(expr, order=order))
        first = next((i for i, t in enumerate(terms) if not t.could_extract_minus_sign()), 0)
        terms.insert(0, terms.pop(first))
        if len(terms) > self.FLAT:
            return "_add(" + ", ".join(self._print(t) for t in terms) + ")"
        prec = precedence(expr)
        parts = []
        for term in terms:
            t = self._print(term)
            sign = "+"
            if t.startswith("-") and not term.is_Add:
                sign, t = "-", t[1:]
            parts += [sign, f"({t})" if precedence(term) < prec or term.is_Add else t]
        sign = parts.pop(0)
        return ("-" if sign == "-" else "") + " ".join(parts)

    def _print_Mul(self, expr):
        if all(a.is_Symbol for a in expr.args):      # w*x, the most common product: as sympy prints it
            return "*".join(self._print(a) for a in expr.args)
        if len(expr.args) > self.FLAT:
            return "_prod(" + ", ".join(self._print(a) for a in expr.args) + ")"
        return super()._print_Mul(expr)

    def _print_sigmoid(self, e):
        return f"_sigmoid({self._print(e.args[0])})"

    def _print_softplus(self, e):
        return f"_softplus({self._print(e.args[0])})"

    def _print_relu(self, e):
        return f"_relu({self._print(e.args[0])})"

    def _print_logsumexp(self, e):
        return f"_logsumexp({', '.join(self._print(a) for a in e.args)})"

    def _print_Max2(self, e):
        return f"numpy.maximum({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_Min2(self, e):
        return f"numpy.minimum({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_Heaviside(self, e):
        return f"_step({self._print(e.args[0])}, {float(e.args[1])!r})"

    def _print_Abs(self, e):
        return f"numpy.abs({self._print(e.args[0])})"


class _Softmax:
    """The softmax outputs o_k = exp(z_k − _lse) of a log-sum-exp node _lse = logsumexp(z_1, …, z_m)
    (``stable.py`` writes softmax outputs so): where the code needs them, one call of ``_softmax``
    gives the log-sum-exp and every o_k from the same m exponentials."""

    def __init__(self, graph: Graph):
        args = {n.name: {a.name: i for i, a in enumerate(n.expr.args)} for n in graph.nodes
                if isinstance(n.expr, logsumexp) and all(a.is_Symbol for a in n.expr.args)}
        self.outputs: dict[str, dict[str, int]] = {}       # lse node -> {output node: its logit's position}
        self.source: dict[str, tuple[str, int]] = {}       # output node -> (lse node, position)
        for n in graph.nodes:
            e = n.expr
            if not (isinstance(e, sp.exp) and e.args[0].is_Add and len(e.args[0].args) == 2):
                continue
            for z, neg in (e.args[0].args, e.args[0].args[::-1]):
                lse = (-neg).name if (-neg).is_Symbol else None
                if z.is_Symbol and lse in args and z.name in args[lse]:
                    self.outputs.setdefault(lse, {})[n.name] = args[lse][z.name]
                    self.source[n.name] = (lse, args[lse][z.name])
                    break

    def line(self, em, pr: _Printer, n, keep) -> str:
        """The line that computes node ``n`` (with the names of ``pr``)."""
        target = pr.names[n.name]
        outs = self.outputs.get(n.name)
        if outs and any(o in keep for o in outs):
            em.called.add(n.name)
            return f"{target}, _sm{target} = _softmax({', '.join(em.text(a) for a in n.expr.args)})"
        src = self.source.get(n.name)
        if src is not None and src[0] in em.called:
            return f"{target} = _sm{pr.names[src[0]]}[{src[1]}]"
        if n.expr.is_Add and len(n.expr.args) >= 3 and n.expr not in pr.temps:
            value = _sum_code(pr, n.expr, em.text)
        else:
            value = em.text(n.expr)
        if not n.expr.free_symbols:      # a constant node (u = a - a is 0): a float64, never a Python int
            value = f"numpy.float64({value})"
        return f"{target} = {value}"


def total_code(em, pr: _Printer, e, shape: str) -> str:
    """Code of the batch total of ``e`` from its terms, without the per-sample array of ``e``:
    c·a·b sums as a dot product, c·a² as a sum of squares (one pass, no array of products)."""
    parts = []
    for term in sp.Add.make_args(e):
        c, rest = term.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        if rest == 1:
            code = f"_total(1.0, {shape})"
        elif len(factors) == 2 and not rest.is_Pow:
            code = f"_dot({em.text(factors[0])}, {em.text(factors[1])}, {shape})"
        elif rest.is_Pow and rest.exp == 2:
            code = f"_sumsq({em.text(rest.base)}, {shape})"
        else:
            code = f"_total({em.text(rest)}, {shape})"
        parts.append(code if c == 1 else "-" + code if c == -1 else f"{float(c)!r} * {code}")
    if len(parts) > _Printer.FLAT:
        return "_add(" + ", ".join(parts) + ")"
    return parts[0] + "".join(f" - {p[1:]}" if p.startswith("-") else f" + {p}" for p in parts[1:])


def shared_subexpressions(exprs) -> dict:
    """{subexpression: temporary's name} for every compound subexpression met twice or more.

    A linear walk (sympy's ``cse`` also matches common arguments of sums and products, which is
    quadratic in the number of expressions): a subexpression met again is not walked again, so
    what it holds is counted once. Names are given in the order of first appearance."""
    count: dict = {}
    order: list = []
    for e in exprs:
        stack = [e]
        while stack:
            x = stack.pop()
            if x.is_Atom or (x.is_Mul and len(x.args) == 2 and x.args[0] == -1 and x.args[1].is_Atom):
                continue           # a negated name costs nothing: a - b is one pass, like a + (-b)
            c = count.get(x)
            if c:
                count[x] = c + 1
                continue
            count[x] = 1
            order.append(x)
            stack.extend(reversed(x.args))
    shared = [x for x in order if count[x] > 1]
    return {x: f"_t{i}" for i, x in enumerate(shared)}


class _Emitter:
    """Lines of one generated function; a shared subexpression's temporary is defined just before
    the first line that uses it (after the values it reads), and only in functions that use it."""

    def __init__(self, pr: _Printer, indent: str):
        self.pr, self.ind = pr, indent
        self.lines: list[str] = []
        self.done: set = set()
        self.called: set = set()         # the log-sum-exp nodes computed with their softmax outputs

    def text(self, e) -> str:
        self.prepare(e)
        return self.pr.text(e)

    def prepare(self, e) -> None:
        """Define every temporary that ``e`` reads (and those that they read) not yet defined."""
        temps = self.pr.temps
        if not temps:
            return
        stack = [(e, False)]
        while stack:
            x, expanded = stack.pop()
            if x.is_Atom:
                continue
            name = temps.get(x)
            if name is not None and x in self.done:
                continue
            if expanded:                            # its own temporaries are defined: define it
                self.done.add(x)
                self.lines.append(f"{self.ind}{name} = {self.pr.text(x, defining=True)}")
                continue
            if name is not None:
                stack.append((x, True))
            stack.extend((a, False) for a in reversed(x.args))

    def line(self, text: str) -> None:
        self.lines.append(self.ind + text)


@dataclass(frozen=True)
class Evaluation:
    """Everything at one point or batch: per-sample arrays (or floats)."""

    output: str
    value: np.ndarray
    values: dict
    gradient: dict
    adjoints: dict

    def __repr__(self):
        return f"<Evaluation {self.output} = {self.value!r}; gradient over {', '.join(self.gradient)}>"


@dataclass(frozen=True)
class Totals:
    """The batch total (or mean) of the output and of each gradient."""

    output: str
    value: float
    gradient: dict
    count: int

    def __repr__(self):
        return f"<Totals {self.output} = {self.value!r} over {self.count} samples>"


def _join(terms) -> str:
    """Sum of (code, fresh) terms, accumulated in place into the first fresh one."""
    if not terms:
        return "0.0"
    first = next((i for i, (_, fresh) in enumerate(terms) if fresh), None)
    if len(terms) == 1:
        return terms[0][0]
    if first is None:
        return " + ".join(code for code, _ in terms) if len(terms) <= _Printer.FLAT else \
            "_add(" + ", ".join(code for code, _ in terms) + ")"
    rest = [code for i, (code, _) in enumerate(terms) if i != first]
    return f"_iadd({terms[first][0]}, {', '.join(rest)})"


def adjoint_sum(pr: _Printer, contributions, text=None) -> str:
    """Code of δ_n = Σ_c δ_c · ∂c/∂n from (δ_c's code, or None for the output's δ = 1, ∂c/∂n) pairs.

    A partial that NumPy evaluates into a new array is multiplied by δ_c in place (``_imul``), and
    the terms are added in place into the first new array (``_iadd``): never into an input or a
    shared temporary. ``text`` prints an expression (default: the printer's own)."""
    text = text or pr.text
    terms = []                                 # (code, fresh): fresh terms are new arrays, safe to reuse
    for adj_c, e in contributions:
        if e == 0:
            continue
        e = _pull_constant(e)
        if adj_c is None:                      # δ_output = 1: not multiplied in
            terms.append(("1.0", False) if e == 1 else (text(e), pr.fresh(e)))
        elif e == 1:
            terms.append((adj_c, False))
        elif pr.fresh(e):
            terms.append((f"_imul({text(e)}, {adj_c})", True))
        else:
            terms.append((f"{adj_c} * {text(e)}", True))
    return _join(terms)


def _sum_code(pr: _Printer, e, text) -> str:
    """A sum of three or more terms, added in place into its first new array (z = b + w1·x1 + w2·x2)."""
    terms = [(text(t), pr.fresh(t)) for t in sp.Add.make_args(e)]
    return _join(terms)


def _pull_constant(e):
    """2*o - 2*y as 2*(o - y), kept unevaluated (sympy would distribute the 2 again): one pass fewer."""
    if not e.is_Add:
        return e
    c, rest = sp.factor_terms(e).as_coeff_Mul()
    if c in (1, -1) or not rest.is_Add:
        return e
    return sp.Mul(c, rest, evaluate=False)


def _docstring(text: str) -> str:
    """A triple-quoted docstring that no text (a user's title) can close early."""
    clean = "".join(ch if ch == "\n" or (ord(ch) >= 32 and ord(ch) != 127) else " " for ch in text)
    clean = clean.replace("\\", "\\\\").replace('"', '\\"')
    return '"""' + clean + '"""'


def _var(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def generate(graph: Graph, wrt: tuple[str, ...], partial, *, doc: str = "", original: Graph | None = None,
             original_partial=None, inlined=(), matrix=None) -> str:
    """The module source: ``gradient(...)`` per sample and ``totals(...)`` over a batch.

    ``matrix`` is (source, parameters) of the layer view's code for a network's batch totals
    (``layer_numeric.scalar_totals``): it is included, and ``totals`` takes it for scalar weights
    over 1-D batches.

    ``graph`` is the graph the code computes with (``stable.stabilize``'s) and ``partial`` its
    checked local partials; ``original`` is the definition's graph (default: the same) with its
    ``original_partial``. Adjoints are reported as written: those of the ``inlined`` nodes (whose
    definitions a rewrite wrote into another node), and of any node the rewritten graph no
    longer needs, are accumulated from the definition's own partials.

    Every step is linear in the graph: one pass over the edges for the partials, one linear
    search for shared subexpressions (``shared_subexpressions``), and a partial that holds a
    node's own expression reads the node's value instead (∂_lse/∂z_k = exp(z_k − _lse) is the
    softmax output o_k, already computed)."""
    original = original or graph
    original_partial = original_partial or partial
    out = graph.output
    relevant = set(graph.ancestors(out))
    names = {n: _var("v", n) for n in graph.names}
    pr = _Printer(names)
    leaves = graph.leaves
    nodes = graph.nodes
    # adjoints are needed for the nodes the output depends on and for the wrt leaves
    need = {n.name for n in nodes if n.name in relevant} | {w for w in wrt if w in relevant and graph.is_leaf(w)}
    edges = [(n.name, p) for n in reversed(nodes) if n.name in relevant for p in n.parents if p in need]
    used = [partial(c, p) for c, p in edges]
    failed = [f"∂{lp.child}/∂{lp.parent}: {lp.check.detail}" for lp in used if not lp.check.passed]
    if failed:
        raise VerificationError("the local derivatives did not pass their checks, so no gradient is compiled: "
                                + "; ".join(failed))
    own = {n.expr: n.symbol for n in nodes if not n.expr.is_Atom}
    # factor_terms before printing: 2*o - 2*y becomes 2*(o - y), one array pass fewer (never simplify())
    pedge = {edge: _pull_constant(lp.expr.xreplace(own) if own else lp.expr) for edge, lp in zip(edges, used)}
    pr.temps = shared_subexpressions([n.expr for n in nodes] + list(pedge.values()))

    ind = "    "
    args = ", ".join(names[x] for x in leaves)
    head = ["with numpy.errstate(over='ignore', divide='ignore'):"]
    head += [f"{ind}{names[x]} = numpy.asarray({names[x]}, dtype=float)" for x in leaves]
    head.append(f"{ind}_shape = _broadcast({', '.join(names[x] for x in leaves)})")

    softmax = _Softmax(graph)

    def forward(em: _Emitter, keep) -> None:
        em.line("# forward: every node from its parents")
        for n in nodes:
            if n.name in keep:
                em.line(softmax.line(em, pr, n, keep))

    def backward(em: _Emitter, with_leaves: bool) -> dict:
        em.line("# reverse: adjoints, output first")
        adj = {}
        for name in [n.name for n in reversed(nodes)] + (list(leaves) if with_leaves else []):
            if name not in need and name != out:
                continue
            a = adj[name] = _var("a", name)
            if name == out:
                em.line(f"{a} = 1.0")
                continue
            contributions = [(None if c == out else adj[c], pedge[(c, name)])
                             for c in graph.children[name] if (c, name) in pedge]
            em.line(f"{a} = {adjoint_sum(pr, contributions, em.text)}")
        return adj

    def as_written(em: _Emitter, adj: dict, only=None) -> dict:
        """Adjoints as written: the rewritten graph's where they are the same, else accumulated
        from the definition's own partials (may be ±inf or nan at saturation: reported as is)."""
        reach = set(original.ancestors(out))
        rewritten = set(inlined)
        report: dict = {out: None}
        lines = []
        for n in reversed(original.nodes):
            name = n.name
            if name == out or name not in reach:
                continue
            if name not in rewritten and name in adj:
                report[name] = adj[name]
                continue
            terms = []
            for c in original.children[name]:
                if c not in report:
                    continue
                lp = original_partial(c, name)
                if not lp.check.passed:
                    raise VerificationError(f"∂{c}/∂{name} did not pass its check: {lp.check.detail}")
                terms.append((report[c], lp.expr))
            report[name] = _var("r", name)
            lines.append((report[name], terms))
        if only is not None:        # the totals need a few of them only, with what they read
            wanted = set(only)
            for target, terms in reversed(lines):
                if target in wanted:
                    wanted.update(t for t, _ in terms if t)
            lines = [(t, terms) for t, terms in lines if t in wanted]
        if lines:
            codes = [(target, adjoint_sum(pr, terms, em.text)) for target, terms in lines]   # temporaries first
            em.line("with numpy.errstate(all='ignore'):  # may be ±inf or nan at saturation: reported as is")
            for target, code in codes:
                em.line(f"    {target} = {code}  # the adjoint as written")
        return report

    def full(code: str) -> str:
        return f"_full({code}, _shape)"

    def mapping(items, fmt) -> str:
        return "{" + ", ".join(f"{k!r}: {fmt(k)}" for k in items) + "}"

    # gradient(): every value, adjoint and gradient, per sample
    em = _Emitter(pr, ind * 2)
    forward(em, {n.name for n in nodes})
    adj = backward(em, with_leaves=True)
    report = as_written(em, adj)
    shown = [n.name for n in original.nodes]
    em.line(f"_values = {mapping(list(leaves) + shown, lambda k: full(names[k]))}")
    em.line(f"_adjoints = {mapping(shown, lambda k: full(report.get(k) or adj.get(k) or '0.0'))}")
    em.line(f"_gradient = {mapping(wrt, lambda k: full((report.get(k) if k in report else None) or adj.get(k) or '0.0'))}")
    pointwise = [f"def gradient({args}):",
                 f'    """Values, adjoints and the gradient of {out}, elementwise (broadcast)."""']
    pointwise += [ind + line for line in head] + em.lines
    pointwise.append("    return _values, _adjoints, _gradient")

    # totals(): the output and the gradient summed over the batch; only what they need is computed
    em = _Emitter(pr, ind * 2)
    keep = set(relevant)
    for e in pedge.values():
        keep.update(x.name for x in e.free_symbols if x.name in graph.index)
    rewritten = set(inlined)
    as_node = [w for w in wrt if not graph.is_leaf(w) and w in rewritten]
    if as_node:                       # a wrt node whose adjoint as written reads every value
        keep.update(n.name for n in nodes)
    # the output's value only for its total (no partial reads it): its total from its terms
    read = {x.name for e in pedge.values() for x in e.free_symbols} | set(as_node)
    by_terms = out not in read and bool(graph.node(out).expr.free_symbols)
    if by_terms:
        keep.discard(out)
    for n in reversed(nodes):          # and what those read
        if n.name in keep or n.name == out:
            keep.update(p for p in n.parents if p in graph.index)
    forward(em, keep)
    adj = backward(em, with_leaves=False)
    report = as_written(em, adj, only=[_var("r", w) for w in as_node]) if as_node else {}

    def total_of(w):
        if w in report and report[w] != adj.get(w):
            return f"_total({report[w]}, _shape)"
        if w not in adj and not (graph.is_leaf(w) and w in need):
            return "0.0"
        if not graph.is_leaf(w):
            return f"_total({adj[w]}, _shape)"
        parts = []
        for c in graph.children[w]:
            e = pedge.get((c, w))
            if e is None or e == 0:
                continue
            parts.append(f"_total({adj[c]}, _shape)" if e == 1 else f"_dot({adj[c]}, {em.text(e)}, _shape)")
        if len(parts) > _Printer.FLAT:
            return "_add(" + ", ".join(parts) + ")"
        return " + ".join(parts) or "0.0"
    gradient = mapping(wrt, total_of)
    em.line(f"_gradient = {gradient}")
    value = total_code(em, pr, graph.node(out).expr, "_shape") if by_terms else f"_total({names[out]}, _shape)"
    em.line(f"return {value}, _gradient, math.prod(_shape)")
    totals = [f"def totals({args}):",
              f'    """The batch total of {out} and of each gradient, and the batch size."""']
    totals += [ind + line for line in head] + em.lines

    tail = "\n".join(totals) + "\n"
    header = _docstring(doc) + "\n" if doc else ""
    module = header + "import math\n" + RUNTIME + "\n\n" + "\n".join(pointwise) + "\n\n\n" + tail
    return with_matrix(module, matrix, leaves, out) if matrix is not None else module


def with_matrix(module: str, matrix, leaves, out: str) -> str:
    """``module`` (``generate``'s text) with a network's batch totals by the layer view's matrix code:
    ``matrix`` is (source defining ``_layer_flat``, the scalar parameters), from
    ``layer_numeric.scalar_totals``. ``totals`` takes it for scalar weights over 1-D batches, the
    scalar code (``_scalar_totals``) for anything else."""
    source, params = matrix
    names = {x: _var("v", x) for x in leaves}
    args = ", ".join(names[x] for x in leaves)
    param_set = set(params)
    others = ", ".join(names[x] for x in leaves if x not in param_set)
    head = f"def totals({args}):"
    assert module.count(head) == 1
    module = module.replace(head, f"def _scalar_totals({args}):")
    dispatch = [f"def totals({args}):",
                f'    """The batch total of {out} and of each gradient, and the batch size.',
                "",
                "    Scalar weights over a 1-D batch go through the layer view's matrix code (_layer_flat);",
                '    anything else through the scalar code."""',
                f"    if all(numpy.ndim(p) == 0 for p in ({', '.join(names[p] for p in params)},)) and "
                f"all(numpy.ndim(x) <= 1 for x in ({others},)) and any(numpy.ndim(x) == 1 for x in ({others},)):",
                f"        _value, _flat, _n = _layer_flat({args})",
                "        return _value, dict(zip(_LAYER_WRT, _flat.tolist())), _n",
                f"    return _scalar_totals({args})"]
    return module + "\n\n" + source + "\n\n" + "\n".join(dispatch) + "\n"


# Samples per block of the scalar code in ``sum``/``mean``: its temporaries (128 kB each) stay in cache
# and in malloc's free lists. With 32768 (256 kB arrays) glibc's dynamic trim threshold returned
# them to the OS after every block: 24,000 page faults and 1.8x the time per call at 2-2-1, N = 1e6,
# whenever no larger array had been freed before (benchmarks/run.py's round-robin hid it).
CHUNK = 16384


def _number_text(x) -> str:
    text = repr(x)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


class CompiledGradient:
    """``grad(**leaves)`` -> Evaluation; ``grad.sum(**batch)`` / ``grad.mean(**batch)`` -> Totals.

    The work of a call beyond the generated code is linear in the number of leaves: the
    arguments are matched to the leaves by a dict, checked once (a number or an array of real
    numbers, shapes that broadcast together) and handed on."""

    _matrix = None           # a thunk of the matrix code of a network's totals, until it is built
    _layered = None          # the matrix code's _layer_flat, once built

    def __init__(self, graph: Graph, wrt: tuple[str, ...], source: str, definition=None, matrix=None):
        self.graph = graph
        self.output = graph.output
        self.wrt = tuple(wrt)
        self.leaves = graph.leaves
        self.definition = definition
        self._leafset = frozenset(self.leaves)
        self._matrix = matrix          # a network's matrix code for the totals, built on first use (or None)
        self._load(source)

    def _load(self, source: str) -> None:
        self._source = source
        namespace: dict = {"__name__": "derivator_compiled"}
        exec(compile(source, f"<derivator:{self.graph.output}>", "exec"), namespace)  # our generated code only
        self._pointwise = namespace["gradient"]
        self._totals = namespace["totals"]
        self._layered = namespace.get("_layer_flat")
        params = set(namespace.get("_LAYER_PARAMS", ()))
        self._is_param = [x in params for x in self.leaves]

    def _with_matrix(self) -> bool:
        """Build the matrix code of a network's totals (``layer_numeric``: its VJP rules are checked on
        this first use, about 0.3 s), once; True when the totals have it."""
        if self._matrix is not None:
            matrix, self._matrix = self._matrix(), None
            if matrix is not None:
                self._load(with_matrix(self._source, matrix, self.leaves, self.output))
        return self._layered is not None

    @property
    def source(self) -> str:
        """The module text (what ``derivator compile -o`` writes): standalone, NumPy only."""
        self._with_matrix()
        return self._source

    @source.setter
    def source(self, text: str) -> None:
        self._source = text

    def _match(self, kwargs) -> list:
        """The arguments in leaf order; UsageError naming the missing or unknown ones."""
        if kwargs.keys() != self._leafset:
            missing = [x for x in self.leaves if x not in kwargs]
            if missing:
                raise UsageError("no value for " + ", ".join(missing[:12]) + (" …" if len(missing) > 12 else ""),
                                 hint="every leaf needs a value: " + ", ".join(self.leaves[:12])
                                 + (" …" if len(self.leaves) > 12 else ""))
            unknown = [k for k in kwargs if k not in self._leafset]
            raise UsageError("not a leaf of the graph: " + ", ".join(map(str, unknown[:12])),
                             hint="the leaves are " + ", ".join(self.leaves[:12]) + (" …" if len(self.leaves) > 12 else ""))
        return list(map(kwargs.__getitem__, self.leaves))

    def _args(self, kwargs):
        """(arguments in leaf order, their broadcast shape, whether the matrix-product code applies)."""
        args = self._match(kwargs)
        shaped = []                 # (name, shape) of every array argument
        matrix = self._layered is not None or self._matrix is not None
        for i in [i for i, x in enumerate(args) if x.__class__ is not float]:     # arrays, mostly
            x = args[i]
            if x.__class__ is not np.ndarray or x.dtype.kind not in "fiub":
                x = args[i] = self._number(self.leaves[i], x)
                if x.__class__ is float:
                    continue
                if x.dtype.kind not in "fiub":
                    raise self._not_real(self.leaves[i], x)
            if x.ndim:
                shaped.append((self.leaves[i], x.shape))
                if matrix and (self._is_param[i] or x.ndim > 1):
                    matrix = False
        shapes = {sh for _, sh in shaped}
        if len(shapes) <= 1:
            shape = shapes.pop() if shapes else ()
        else:
            try:
                shape = np.broadcast_shapes(*shapes)
            except ValueError:
                first = shaped[0]
                other = next((n, sh) for n, sh in shaped if sh != first[1])
                raise UsageError(f"the inputs do not broadcast together: {first[0]} has shape {first[1]}, "
                                 f"{other[0]} has shape {other[1]}",
                                 hint="give every input one value, or arrays of one shape (a batch)") from None
        return args, shape, matrix and len(shape) <= 1

    @staticmethod
    def _number(name, x):
        """A float or an ndarray from a leaf's value, or UsageError naming the leaf."""
        if isinstance(x, (bool, int, float)) and not isinstance(x, np.ndarray):
            try:
                return float(x)
            except OverflowError:
                raise UsageError(f"input {name} is too large for a float64: {_number_text(x)}",
                                 hint="float64 holds numbers up to about 1.8e308") from None
        if x is None or isinstance(x, (str, bytes, complex, np.complexfloating)):
            raise CompiledGradient._not_real(name, x)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = np.asarray(x)
        except (ValueError, TypeError, OverflowError) as e:
            raise UsageError(f"input {name} is not a number or an array of numbers ({e})") from None
        if a.dtype.kind == "O":           # Python numbers in an array: each a real number, or an error
            bad = [v for v in a.flat if isinstance(v, (complex, np.complexfloating, str, bytes))
                   or not isinstance(v, (int, float, np.integer, np.floating))][:1]
            if bad or a.size == 0:
                raise CompiledGradient._not_real(name, bad[0] if bad and bad[0] is not None else a)
            try:
                return a.astype(float)
            except OverflowError:
                raise UsageError(f"input {name} holds a number too large for a float64",
                                 hint="float64 holds numbers up to about 1.8e308") from None
        return a

    @staticmethod
    def _not_real(name, x) -> UsageError:
        kind = getattr(getattr(x, "dtype", None), "kind", None)
        if isinstance(x, (complex, np.complexfloating)) or kind == "c":
            what = "complex numbers" if kind == "c" else f"a complex number ({_number_text(x)})"
            return UsageError(f"input {name} holds {what}", hint="derivator computes with real numbers")
        if isinstance(x, (str, bytes)) or kind in ("U", "S"):
            return UsageError(f"input {name} is text, not a number: {_number_text(x)}",
                              hint="give a number or a NumPy array of numbers")
        return UsageError(f"input {name} is not a number or an array of real numbers"
                          + (f" (NumPy dtype {x.dtype})" if kind else f": {_number_text(x)}"),
                          hint="give a number or a NumPy array of numbers")

    def _nonfinite_inputs(self, args) -> None:
        """Raise UsageError naming the first input that holds NaN or ±inf."""
        for name, x in zip(self.leaves, args):
            if type(x) is float:
                if not math.isfinite(x):
                    raise UsageError(f"input {name} holds NaN or an infinite value",
                                     hint="derivator refuses non-finite inputs instead of passing them on")
                continue
            a = np.asarray(x, dtype=float)
            bad = ~np.isfinite(a)
            if bad.any():
                where = "" if a.ndim == 0 else f" (first at index {tuple(int(i) for i in np.argwhere(bad)[0])})"
                raise UsageError(f"input {name} holds NaN or an infinite value{where}",
                                 hint="derivator refuses non-finite inputs instead of passing them on")

    def __call__(self, /, **leaves) -> Evaluation:
        """Per-sample values, adjoints and gradient; NaN or infinite inputs raise UsageError."""
        args, _, _ = self._args(leaves)
        self._nonfinite_inputs(args)
        values, adjoints, gradient = self._pointwise(*args)
        if np.ndim(values[self.output]) == 0:        # scalar inputs: numpy scalars, not 0-d arrays
            values, adjoints, gradient = ({k: v[()] for k, v in m.items()} for m in (values, adjoints, gradient))
        return Evaluation(self.output, values[self.output], values, gradient, adjoints)

    def sum(self, /, **batch) -> Totals:
        """Batch totals; a non-finite total is traced to its input (UsageError) when one is to blame."""
        return self._reduce(batch, mean=False)

    def mean(self, /, **batch) -> Totals:
        """Batch means; as ``sum``, each total divided by the batch size."""
        return self._reduce(batch, mean=True)

    def _reduce(self, batch, mean: bool) -> Totals:
        args, shape, matrix = self._args(batch)
        with np.errstate(invalid="ignore"):     # a non-finite total is traced below, not warned about twice
            if matrix and (self._layered is not None or (self._with_matrix() and not any(
                    p and a.__class__ is not float and np.ndim(a) for a, p in zip(args, self._is_param)))):
                # matrix products (scalar weights over a 1-D batch): the gradients as one array
                # (_args checked the weights, unless the matrix code was built in this call); one
                # sample given as numbers is a batch of one (4x faster than the scalar code at 148
                # parameters, benchmarks/scale.py (h))
                if not shape:
                    args = [a if p else np.full(1, a) for a, p in zip(args, self._is_param)]
                value, flat, n = self._layered(*args)
                if mean:
                    flat = flat / max(n, 1)
                finite = bool(np.isfinite(flat).all())
                gradient = dict(zip(self.wrt, flat.tolist()))
            else:
                value, gradient, n = self._chunked_totals(args, shape)
                gradient = {k: float(v) / max(n, 1) if mean else float(v) for k, v in gradient.items()}
                finite = all(math.isfinite(v) for v in gradient.values())
        value = float(value) / max(n, 1) if mean else float(value)
        if not (finite and math.isfinite(value)):
            self._nonfinite_inputs(args)
            warnings.warn(f"the batch total of {self.output} or of a gradient is not finite", RuntimeWarning,
                          stacklevel=3)
        return Totals(self.output, value, gradient, int(n))

    def _chunked_totals(self, args, shape):
        """Totals over a 1-D batch in blocks of CHUNK samples, so the temporaries stay in cache."""
        if len(shape) != 1 or shape[0] < 2 * CHUNK:
            return self._totals(*args)
        n = shape[0]
        value, gradient = 0.0, None
        for start in range(0, n, CHUNK):
            part = [a[start:start + CHUNK] if np.shape(a) == shape else a for a in args]
            v, g, _ = self._totals(*part)
            value += v
            if gradient is None:
                gradient = dict(g)
            else:
                for k in gradient:
                    gradient[k] += g[k]
        return value, gradient, n

    def __repr__(self):
        return (f"<CompiledGradient ∂{self.output}/∂({', '.join(self.wrt[:6])}{', …' if len(self.wrt) > 6 else ''})"
                f" of {len(self.leaves)} leaves>")


def compile_graph(graph: Graph, wrt, partial, definition=None, doc: str = "", original: Graph | None = None,
                  original_partial=None, inlined=(), matrix=None) -> CompiledGradient:
    """Compile the code of ``graph`` (the stabilised graph); the function reports ``original``'s
    names (default: the same graph)."""
    source = generate(graph, tuple(wrt), partial, doc=doc, original=original, original_partial=original_partial,
                      inlined=inlined, matrix=None if callable(matrix) else matrix)
    return CompiledGradient(original or graph, tuple(wrt), source, definition, matrix if callable(matrix) else None)
