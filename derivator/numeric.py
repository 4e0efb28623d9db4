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
from .graph import Graph

RUNTIME = '''\
import numpy

CHUNK = 16384


def _sigmoid(x):
    if numpy.ndim(x) == 0:
        return 1.0 / (1.0 + numpy.exp(-x))
    t = numpy.negative(x)
    numpy.exp(t, out=t)
    t += 1.0
    return numpy.reciprocal(t, out=t)


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
    """NumPy code for the project's expressions, with variables renamed."""

    def __init__(self, names: Mapping[str, str]):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.names = names

    def _print_Symbol(self, s):
        return self.names[s.name]

    def _print_Add(self, expr, order=None):
        """As sympy prints it, but starting with a positive term: ``y - o``, not ``-o + y``
        (one array pass fewer: no negation before the sum)."""
        terms = list(self._as_ordered_terms(expr, order=order))
        first = next((i for i, t in enumerate(terms) if not t.could_extract_minus_sign()), 0)
        terms.insert(0, terms.pop(first))
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


def _compound(e) -> bool:
    """True when NumPy evaluates ``e`` into a new array (not a variable, a cse temporary or a number)."""
    return not (e.is_Symbol or e.is_Number)


def _join(terms) -> str:
    """Sum of (code, fresh) terms, accumulated in place into the first fresh one."""
    if not terms:
        return "0.0"
    first = next((i for i, (_, fresh) in enumerate(terms) if fresh), None)
    if len(terms) == 1 or first is None:
        return " + ".join(code for code, _ in terms)
    rest = [code for i, (code, _) in enumerate(terms) if i != first]
    return f"_iadd({terms[first][0]}, {', '.join(rest)})"


def adjoint_sum(pr, contributions) -> str:
    """Code of δ_n = Σ_c δ_c · ∂c/∂n from (δ_c's code, or None for the output's δ = 1, ∂c/∂n) pairs.

    A partial that NumPy evaluates into a new array is multiplied by δ_c in place (``_imul``), and
    the terms are added in place into the first new array (``_iadd``): never into an input."""
    terms = []                                 # (code, fresh): fresh terms are new arrays, safe to reuse
    for adj_c, e in contributions:
        if e == 0:
            continue
        e = _pull_constant(e)
        if adj_c is None:                      # δ_output = 1: not multiplied in
            terms.append(("1.0", False) if e == 1 else (pr.doprint(e), _compound(e)))
        elif e == 1:
            terms.append((adj_c, False))
        elif _compound(e):
            terms.append((f"_imul({pr.doprint(e)}, {adj_c})", True))
        else:
            terms.append((f"{adj_c} * {pr.doprint(e)}", True))
    return _join(terms)


def _sum_code(pr, e) -> str:
    """A sum of three or more terms, added in place into its first new array (z = b + w1·x1 + w2·x2)."""
    terms = [(pr.doprint(t), _compound(t)) for t in sp.Add.make_args(e)]
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


def generate(graph: Graph, wrt: tuple[str, ...], partial, *, doc: str = "", bypassed=None, original_partial=None,
             layers=()) -> str:
    """The module source: ``gradient(...)`` per sample and ``totals(...)`` over a batch.

    ``graph`` is the graph the code computes with (``stable.stabilize``'s);
    ``bypassed`` maps a node to the children that a rewrite stopped using it,
    whose ``original_partial`` still counts in the adjoint that is reported."""
    bypassed = bypassed or {}
    relevant = set(graph.ancestors(graph.output))
    names = {n: _var("v", n) for n in graph.names}
    pr = _Printer(names)
    leaves = graph.leaves
    nodes = [n for n in graph.nodes]
    # edges needed for adjoints of relevant nodes and wrt leaves
    need = [n.name for n in nodes if n.name in relevant] + [w for w in wrt if w in relevant and graph.is_leaf(w)]
    need_set = set(need)
    edges = []
    for n in reversed(nodes):
        if n.name not in relevant:
            continue
        for p in n.parents:
            if p in need_set:
                edges.append((n.name, p))
    used = [partial(c, p) for c, p in edges]
    failed = [f"∂{lp.child}/∂{lp.parent}: {lp.check.detail}" for lp in used if not lp.check.passed]
    if failed:
        raise VerificationError("the local derivatives did not pass their checks, so no gradient is compiled: "
                                + "; ".join(failed))
    # factor_terms before printing: 2*o - 2*y becomes 2*(o - y), one array pass fewer (never simplify())
    exprs = [lp.expr for lp in used]
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"), optimizations=None, order="none")
    reps = [(t, _pull_constant(e)) for t, e in reps]
    reduced = [_pull_constant(e) for e in reduced]
    for s, _ in reps:
        names[s.name] = s.name
    pedge = dict(zip(edges, reduced))

    args = ", ".join(names[x] for x in leaves)
    body: list[str] = []
    body.append("with numpy.errstate(over='ignore', divide='ignore'):")
    ind = "    "
    for x in leaves:
        body.append(f"{ind}{names[x]} = numpy.asarray({names[x]}, dtype=float)")
    body.append(f"{ind}_shape = _broadcast({', '.join(names[x] for x in leaves)})")
    body.append(f"{ind}# forward: every node from its parents")
    for n in nodes:
        value = _sum_code(pr, n.expr) if n.expr.is_Add and len(n.expr.args) >= 3 else pr.doprint(n.expr)
        if not n.expr.free_symbols:          # a constant node (u = a - a is 0): a float64, never a Python int
            value = f"numpy.float64({value})"
        body.append(f"{ind}{names[n.name]} = {value}")
    body.append(f"{ind}# shared subexpressions of the local partials")
    for s, e in reps:
        body.append(f"{ind}{s.name} = {pr.doprint(e)}")
    body.append(f"{ind}# reverse: adjoints, output first")
    adj = {}
    for name in [n.name for n in reversed(nodes)] + list(leaves):
        if name not in need_set and name != graph.output:
            continue
        a = _var("a", name)
        adj[name] = a
        if name == graph.output:
            body.append(f"{ind}{a} = 1.0")
            continue
        contributions = [(None if c == graph.output else adj[c], pedge[(c, name)])
                         for c in graph.children[name] if (c, name) in pedge]
        body.append(f"{ind}{a} = {adjoint_sum(pr, contributions)}")
    report = dict(adj)
    for name in [n.name for n in reversed(nodes)]:      # children's reports first
        kids = bypassed.get(name, ())
        extra = []
        for c in kids:
            if c in report:
                lp = original_partial(c, name)
                if not lp.check.passed:
                    raise VerificationError(f"∂{c}/∂{name} did not pass its check: {lp.check.detail}")
                e = lp.expr
                if e != 0:
                    extra.append(report[c] if e == 1 else f"{report[c]} * ({pr.doprint(e)})")
        if extra:
            report[name] = _var("r", name)
            own = [adj[name]] if name in adj else []
            if not any(line.startswith(f"{ind}with numpy.errstate(all='ignore')") for line in body[-1:]) \
                    and not body[-1].startswith(f"{ind}    r_"):
                body.append(f"{ind}with numpy.errstate(all='ignore'):  # may be ±inf or nan at saturation: reported as is")
            body.append(f"{ind}    {report[name]} = {' + '.join(own + extra)}  # the adjoint as written")
    head = body

    def names_tuple(items, fmt):
        return "{" + ", ".join(f"{k!r}: {fmt(k)}" for k in items) + "}"

    node_names = [n.name for n in nodes]
    zero = "0.0"
    pointwise = [f"def gradient({args}):",
                 f'    """Values, adjoints and the gradient of {graph.output}, elementwise (broadcast)."""']
    pointwise += ["    " + line for line in head]
    pointwise.append(f"        _values = {names_tuple(list(leaves) + node_names, lambda k: '_full(' + names[k] + ', _shape)')}")
    pointwise.append(f"        _adjoints = {names_tuple(node_names, lambda k: '_full(' + report.get(k, zero) + ', _shape)')}")
    pointwise.append(f"        _gradient = {names_tuple(wrt, lambda k: '_full(' + adj.get(k, zero) + ', _shape)')}")
    pointwise.append("    return _values, _adjoints, _gradient")

    def total_of(w):
        if w not in adj:
            return "0.0"
        if graph.is_leaf(w):
            parts = []
            for c in graph.children[w]:
                if (c, w) in pedge:
                    e = pedge[(c, w)]
                    if e == 0:
                        continue
                    parts.append(f"_total({adj[c]}, _shape)" if e == 1 else f"_dot({adj[c]}, {pr.doprint(e)}, _shape)")
            return " + ".join(parts) or "0.0"
        return f"_total({adj[w]}, _shape)"

    totals = [f"def totals({args}):",
              f'    """The batch total of {graph.output} and of each gradient, and the batch size."""']
    # the totals function needs adjoints of nodes only; wrt leaves are reduced by dot products
    for line in head:
        if any(line.strip().startswith(_var("a", w) + " =") for w in wrt if graph.is_leaf(w)):
            continue
        if line.strip().startswith("r_") or "reported as is" in line:
            continue
        totals.append("    " + line)
    totals.append(f"        _gradient = {names_tuple(wrt, total_of)}")
    totals.append(f"        return _total({names[graph.output]}, _shape), _gradient, math.prod(_shape)")

    layered = None
    if layers and max(len(layer) for layer in layers) >= 2 * LAYERED_MIN_WIDTH:
        from .layers import layered_source
        layered = layered_source(graph, layers, wrt, partial, pr, names)
    if layered is not None:
        source, params = layered
        others = [x for x in leaves if x not in params]
        totals[0] = totals[0].replace("def totals(", "def _scalar_totals(", 1)
        dispatch = [f"def totals({args}):",
                    f'    """The batch total of {graph.output} and of each gradient, and the batch size.',
                    "",
                    "    Scalar weights over a 1-D batch go through matrix products, a layer at a time;",
                    '    anything else through the scalar code."""',
                    f"    if all(numpy.ndim(p) == 0 for p in ({', '.join(names[p] for p in params)},)) and "
                    f"all(numpy.ndim(x) <= 1 for x in ({', '.join(names[x] for x in others)},)) and "
                    f"any(numpy.ndim(x) == 1 for x in ({', '.join(names[x] for x in others)},)):",
                    f"        return _layered_totals({args})",
                    f"    return _scalar_totals({args})"]
        tail = "\n".join(totals) + "\n\n\n" + source + "\n\n" + "\n".join(dispatch) + "\n"
    else:
        tail = "\n".join(totals) + "\n"
    header = _docstring(doc) + "\n" if doc else ""
    return header + "import math\n" + RUNTIME + "\n\n" + "\n".join(pointwise) + "\n\n\n" + tail


LAYERED_MIN_WIDTH = 4   # narrower networks run faster as scalar code (2-2-1: 0.8x vs 0.9x of hand NumPy)
CHUNK = 32768   # samples per block of the scalar code in ``sum``/``mean`` (measured with benchmarks/run.py)


class CompiledGradient:
    """``grad(**leaves)`` -> Evaluation; ``grad.sum(**batch)`` / ``grad.mean(**batch)`` -> Totals."""

    def __init__(self, graph: Graph, wrt: tuple[str, ...], source: str, definition=None):
        self.graph = graph
        self.output = graph.output
        self.wrt = tuple(wrt)
        self.leaves = graph.leaves
        self.source = source
        self.definition = definition
        namespace: dict = {"__name__": "derivator_compiled"}
        exec(compile(source, f"<derivator:{graph.output}>", "exec"), namespace)  # our generated code only
        self._pointwise = namespace["gradient"]
        self._totals = namespace["totals"]
        self._layered = "_layered_totals" in namespace

    def _args(self, kwargs):
        missing = [x for x in self.leaves if x not in kwargs]
        if missing:
            raise UsageError("no value for " + ", ".join(missing),
                             hint="every leaf needs a value: " + ", ".join(self.leaves))
        unknown = [k for k in kwargs if k not in self.leaves]
        if unknown:
            raise UsageError("not a leaf of the graph: " + ", ".join(unknown),
                             hint="the leaves are " + ", ".join(self.leaves))
        return [kwargs[x] for x in self.leaves]

    def _nonfinite_inputs(self, args) -> None:
        """Raise UsageError naming the first input that holds NaN or ±inf."""
        for name, x in zip(self.leaves, args):
            a = np.asarray(x, dtype=float)
            bad = ~np.isfinite(a)
            if bad.any():
                where = "" if a.ndim == 0 else f" (first at index {tuple(int(i) for i in np.argwhere(bad)[0])})"
                raise UsageError(f"input {name} holds NaN or an infinite value{where}",
                                 hint="derivator refuses non-finite inputs instead of passing them on")

    def __call__(self, /, **leaves) -> Evaluation:
        """Per-sample values, adjoints and gradient; NaN or infinite inputs raise UsageError."""
        args = self._args(leaves)
        self._nonfinite_inputs(args)
        values, adjoints, gradient = self._pointwise(*args)
        if np.ndim(values[self.output]) == 0:        # scalar inputs: numpy scalars, not 0-d arrays
            values, adjoints, gradient = ({k: v[()] for k, v in m.items()} for m in (values, adjoints, gradient))
        return Evaluation(self.output, values[self.output], values, gradient, adjoints)

    def sum(self, /, **batch) -> Totals:
        """Batch totals; a non-finite total is traced to its input (UsageError) when one is to blame."""
        args = self._args(batch)
        with np.errstate(invalid="ignore"):     # a non-finite total is traced below, not warned about twice
            value, gradient, n = self._chunked_totals(args)
        if not (math.isfinite(value) and all(math.isfinite(v) for v in gradient.values())):
            self._nonfinite_inputs(args)
            warnings.warn(f"the batch total of {self.output} or of a gradient is not finite", RuntimeWarning,
                          stacklevel=2)
        return Totals(self.output, float(value), {k: float(v) for k, v in gradient.items()}, int(n))

    def _chunked_totals(self, args):
        """Totals over a 1-D batch in blocks of CHUNK samples, so the temporaries stay in cache."""
        shapes = [np.shape(a) for a in args]
        shape = np.broadcast_shapes(*shapes) if shapes else ()
        if len(shape) != 1 or shape[0] < 2 * CHUNK or self._layered:   # the layered code blocks by itself
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

    def mean(self, /, **batch) -> Totals:
        t = self.sum(**batch)
        n = max(t.count, 1)
        return Totals(self.output, t.value / n, {k: v / n for k, v in t.gradient.items()}, t.count)

    def __repr__(self):
        return (f"<CompiledGradient ∂{self.output}/∂({', '.join(self.wrt[:6])}{', …' if len(self.wrt) > 6 else ''})"
                f" of {len(self.leaves)} leaves>")


def compile_graph(graph: Graph, wrt, partial, definition=None, doc: str = "", bypassed=None,
                  original_partial=None, layers=()) -> CompiledGradient:
    source = generate(graph, tuple(wrt), partial, doc=doc, bypassed=bypassed, original_partial=original_partial,
                      layers=layers)
    return CompiledGradient(graph, tuple(wrt), source, definition)
