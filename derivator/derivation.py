"""Derivations: graph + paths -> ordered, checked steps ending in the result.

Takes a ``Graph`` and a target name; gives a frozen ``Derivation``:

1. definitions of the nodes between the output and the target;
2. the paths (the exact count, and the first ``max_paths`` of them);
3. each local partial on those paths, by named rule, checked against sympy;
4. the chain rule as a sum over paths of products of local partials, and its
   assembly (when the paths fit on a page);
5. the same sum factored by reverse accumulation,
   δ_n = Σ over children c of δ_c · ∂c/∂n, which touches each edge once;
6. the result in node symbols, checked against an independent differentiation.

Local partials are computed once per edge in a ``Workspace`` and shared by
every derivation of the same graph. ``simplify()`` is never called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp

from . import check as checks
from .check import Check, Points
from .expr import symbol
from .functions import logsumexp
from .graph import Graph
from .mpeval import evaluate
from .paths import Cone, cone, first_paths
from .rules import RULES, local_derivative

MAX_PATHS = 16              # paths listed in full; above this only the first few are shown
RESULT_TERMS = 256          # largest result (in path products) written out in node symbols
RESULT_DEPTH = 100          # … with no path product longer than this many partials (a chain of 5,000
                            # sigmoids written out would cost time and memory quadratic in its length)
FACTOR_OPS = 60             # results up to this many operations, in small graphs, get sympy's factor_terms


DELTA = "δ_"   # adjoint names: δ_z1 = ∂output/∂z1 (no definition name can start with δ)


def delta_symbol(name: str) -> sp.Symbol:
    """The symbol that stands for the adjoint δ_name in results too large to write out."""
    return symbol(DELTA + name)


@dataclass(frozen=True)
class LocalPartial:
    child: str
    parent: str
    expr: Any                   # in node symbols: ∂h1/∂z1 = h1(1 − h1)
    rules: tuple[str, ...]
    check: Check


@dataclass(frozen=True)
class Accumulation:
    """δ_node = Σ over children c of δ_c · ∂c/∂node."""
    node: str
    children: tuple[str, ...]
    expr: Any | None            # δ_node in node symbols (None where too large to write out)
    terms: int = 1              # path products in δ_node written out


class Document:
    """A derivation's documents (either view), through the render stage; shown rendered in Jupyter."""

    def to_markdown(self, **options) -> str:
        from .render import render
        return render([self], "md", **options)

    def to_latex(self, **options) -> str:
        from .render import render
        return render([self], "tex", **options)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


@dataclass(frozen=True)
class Derivation(Document):
    graph: Graph
    output: str
    wrt: str
    cone: Cone
    paths: tuple[tuple[str, ...], ...]     # the first ``max_paths`` paths
    partials: tuple[LocalPartial, ...]     # one per cone edge, output side first
    accumulation: tuple[Accumulation, ...]  # output first, target last
    path_sum: Any | None                   # Σ_paths Π partials, when the paths are listed in full
    result: Any
    check: Check
    max_paths: int = MAX_PATHS
    title: str | None = None
    at: tuple = ()
    lr: float | None = None
    display: tuple = ()
    layers: tuple = ()

    @property
    def path_count(self) -> int:
        return self.cone.count

    @property
    def all_paths_shown(self) -> bool:
        return len(self.paths) == self.path_count

    @property
    def verified(self) -> bool:
        return self.check.passed and all(p.check.passed for p in self.partials)

    @property
    def failures(self) -> tuple[str, ...]:
        out = [f"∂{p.child}/∂{p.parent}: {p.check.detail}" for p in self.partials if not p.check.passed]
        if not self.check.passed:
            out.append(f"∂{self.output}/∂{self.wrt}: {self.check.detail}")
        return tuple(out)

    def partial(self, child: str, parent: str) -> LocalPartial:
        for p in self.partials:
            if p.child == child and p.parent == parent:
                return p
        raise KeyError((child, parent))

    def to_json(self) -> dict:
        from .render import derivation_json
        return derivation_json(self)

    def __repr__(self) -> str:
        status = "verified" if self.verified else "NOT verified"
        return (f"<Derivation ∂{self.output}/∂{self.wrt} = {sp.sstr(self.result)[:200]}; "
                f"{self.path_count} path(s); {status}>")


def _canon(i: int) -> sp.Symbol:
    return symbol(f"_p{i}")


class _Shape:
    """One local-derivative shape: a node's expression with its parents renamed _p0, _p1, …

    ``named`` is ``raw`` with the whole (renamed) node expression written as the symbol
    ``_self`` where it appears (σ′ = σ(1 − σ) reads h(1 − h)), or None for a part of a sum."""

    __slots__ = ("raw", "rules", "check", "ref", "named")

    def __init__(self, raw, rules, check, ref, named=None):
        self.raw, self.rules, self.check, self.ref, self.named = raw, rules, check, ref, named


_SELF = symbol("_self")
SYMMETRIC = (logsumexp,)    # functions whose value does not depend on the order of their arguments
_SUM = RULES[sp.Add].name


class _Terms:
    """A node's expression split for its partials: for a sum, the terms that hold each parent.

    ∂(t_1 + … + t_n)/∂p is the sum of ∂t_i/∂p over the terms that hold p (the others are
    constant in p: their derivative is exactly 0, by the same sum rule that sympy's ``diff``
    applies), so each partial of a sum looks only at the terms of its parent. A weighted
    sum of 512 inputs then costs one small shape per edge, not a 512-term expression per
    edge (which made wide layers cubic)."""

    __slots__ = ("is_sum", "terms", "order", "symmetric")

    def __init__(self, node):
        e = node.expr
        self.is_sum = e.is_Add
        self.order = {p: i for i, p in enumerate(node.parents)}
        self.terms: dict[str, list] = {}
        # a function symmetric in its arguments, all distinct names (the log-sum-exp of a softmax):
        # its partial by any argument is one shape, with that argument written first
        self.symmetric = type(e) in SYMMETRIC and all(a.is_Symbol for a in e.args) and len(set(e.args)) == len(e.args)
        if self.is_sum:
            for t in e.args:
                for s in t.free_symbols:
                    self.terms.setdefault(s.name, []).append(t)

    def part(self, node, parent: str):
        """(the sub-expression that holds ``parent``, its parents in order, whether it is the whole)."""
        if self.symmetric:
            names = (parent,) + tuple(a.name for a in node.expr.args if a.name != parent)
            return type(node.expr)(*[symbol(n) for n in names]), names, True
        terms = self.terms.get(parent) if self.is_sum else None
        if not terms:           # not a sum (or a parent that sympy cancelled: a - a + b)
            return node.expr, node.parents, True
        if len(terms) == len(node.expr.args):
            return node.expr, node.parents, True
        names = sorted({s.name for t in terms for s in t.free_symbols}, key=self.order.__getitem__)
        return sp.Add(*terms), tuple(names), False


class Workspace:
    """Local partials of one graph, each computed and checked once.

    Partials are derived and checked once per *shape* (the node's expression
    with its parents renamed in order), then renamed back: the 56 sigmoid
    nodes of a deep network share one derivation and one check of σ′.
    Differentiation commutes with renaming variables, so this is exact. The
    partial of a sum by one parent is the derivative of the terms that hold
    that parent (``_Terms``): the cost of a partial does not grow with the
    fan-in of its node.
    """

    def __init__(self, graph: Graph, at: dict | None = None):
        self.graph = graph
        self._partials: dict[tuple[str, str], LocalPartial] = {}
        self._ref: dict[tuple[str, str], Any] = {}
        self._shapes: dict[tuple, _Shape] = {}
        self._terms: dict[str, _Terms] = {}
        self._edges: dict[tuple[str, str], tuple[_Shape, dict]] = {}
        self._points: Points | None = None
        self._refvals: dict = {}
        self._tree: int | None = None
        self._routes: dict[str, int] = {}
        self._longest: dict[str, int] = {}
        self._delta: dict[str, Any] = {}
        self._adjvals: dict[int, dict] = {}
        self._refadj: dict[int, dict] = {}
        self.at = at

    @property
    def points(self) -> Points:
        if self._points is None:
            self._points = Points(self.graph, self.at)
        return self._points

    def _shape(self, child: str, parent: str) -> tuple[_Shape, dict]:
        """The shape of ∂child/∂parent and the renaming back to the node's names (once per edge)."""
        edge = (child, parent)
        found = self._edges.get(edge)
        if found is not None:
            return found
        node = self.graph.node(child)
        terms = self._terms.get(child)
        if terms is None:
            terms = self._terms[child] = _Terms(node)
        expr, names, whole = terms.part(node, parent)
        canon = {symbol(p): _canon(i) for i, p in enumerate(names)}
        index = names.index(parent)
        cexpr = expr.xreplace(canon)
        key = (cexpr, index, terms.is_sum, whole)
        shape = self._shapes.get(key)
        if shape is None:
            var = _canon(index)
            raw, rules = local_derivative(cexpr, var)
            if terms.is_sum:          # the sum rule first, as for the whole sum
                rules = (_SUM,) + tuple(r for r in rules if r != _SUM)
            ref = sp.diff(cexpr, var)
            if raw == ref:
                result = Check("identical", "identical to sympy's diff of the definition", True)
            else:
                result = checks.check_local(cexpr, var, raw, ref)
            named = None
            if whole:
                named = raw.xreplace({cexpr: _SELF}) if raw.has(cexpr) else raw
            shape = self._shapes[key] = _Shape(raw, rules, result, ref, named)
        found = self._edges[edge] = (shape, {v: k for k, v in canon.items()})
        return found

    def reference_partial(self, child: str, parent: str):
        key = (child, parent)
        if key not in self._ref:
            shape, back = self._shape(child, parent)
            self._ref[key] = shape.ref.xreplace(back)
        return self._ref[key]

    def reference_value(self, child: str, parent: str, k: int, dps: int | None = None):
        """sympy's ∂child/∂parent at check point ``k`` (mpmath), computed once (at ``dps`` digits: again).

        The shape's canonical derivative is evaluated with its variables bound to the
        parents' values: no renamed copy of the expression is built."""
        if dps is not None and dps != checks.DIGITS:
            shape, back = self._shape(child, parent)
            env = self.points.env_at(k, dps)[0]
            return evaluate(shape.ref, {c: env[s] for c, s in back.items()})
        key = (child, parent, k)
        v = self._refvals.get(key)
        if v is None:
            shape, back = self._shape(child, parent)
            env = self.points.envs[k]
            v = self._refvals[key] = evaluate(shape.ref, {c: env[s] for c, s in back.items()})
        return v

    def partial(self, child: str, parent: str) -> LocalPartial:
        key = (child, parent)
        if key not in self._partials:
            node = self.graph.node(child)
            shape, back = self._shape(child, parent)
            if shape.named is not None:          # the node's own expression already written as _self
                named = shape.named.xreplace({**back, _SELF: node.symbol}) if shape.named.free_symbols else shape.named
            else:                                # a part of a sum: it cannot hold the whole sum
                named = shape.raw.xreplace(back)
            self._partials[key] = LocalPartial(child, parent, named, shape.rules, shape.check)
        return self._partials[key]

    def composed(self, keep: str) -> dict | None:
        """The output written in the leaves, where that tree is small (else None: check numerically)."""
        g = self.graph
        if len(g.nodes) > checks.COMPOSE_NODES or self.tree_size() > checks.COMPOSE_TREE:
            return None
        return checks.composed(g, keep)

    def _route_counts(self) -> None:
        """Per name: the routes from the output to it, and the longest of them (edges), by DP."""
        g = self.graph
        routes = {g.output: 1}
        longest = {g.output: 0}
        for n in reversed(g.nodes):
            r = routes.get(n.name, 0)
            if r:
                depth = longest[n.name] + 1
                for p in n.parents:
                    routes[p] = routes.get(p, 0) + r
                    if longest.get(p, -1) < depth:
                        longest[p] = depth
        self._routes, self._longest = routes, longest
        self._tree = sum(routes.values())

    def tree_size(self) -> int:
        """Size of the output written out as a tree: the number of routes from it to every name."""
        if self._tree is None:
            self._route_counts()
        return self._tree

    def routes(self, name: str) -> int:
        """The number of routes from the output down to ``name`` (path products in δ_name)."""
        if self._tree is None:
            self._route_counts()
        return self._routes.get(name, 0)

    def writable(self, name: str) -> bool:
        """Whether δ_name is written out in node symbols: at most RESULT_TERMS path products, none
        longer than RESULT_DEPTH partials. Both only grow towards the leaves, so every δ that
        a written-out δ_name is built from is written out too."""
        if self._tree is None:
            self._route_counts()
        return self._routes.get(name, 0) <= RESULT_TERMS and self._longest.get(name, 0) <= RESULT_DEPTH

    def _kids(self, name: str) -> tuple[str, ...]:
        """The children of ``name`` that reach the output (in a derivation's cone, its cone children)."""
        if self._tree is None:
            self._route_counts()
        return tuple(c for c in self.graph.children[name] if c in self._routes)

    def delta(self, name: str):
        """δ_name = Σ_children δ_c · ∂c/∂name written out in node symbols, built once per node
        (every derivation whose cone holds the node has the same δ). Only for ``writable`` names."""
        found = self._delta.get(name)
        if found is None:
            g = self.graph
            order = [name]              # the nodes still to build, children before parents
            todo = [name]
            while todo:
                n = todo.pop()
                for c in self._kids(n):
                    if c not in self._delta and c != g.output and c not in order:
                        order.append(c)
                        todo.append(c)
            order.sort(key=lambda n: g.index.get(n, -1), reverse=True)
            self._delta.setdefault(g.output, sp.S.One)
            for n in order:
                if n not in self._delta:
                    self._delta[n] = sp.Add(*[self._delta[c] * self.partial(c, n).expr for c in self._kids(n)])
            found = self._delta[name]
        return found

    def adjoint_values(self, k: int, dps: int | None = None) -> dict[str, Any]:
        """δ of every name at check point ``k`` by the derivation's own partials (mpmath), once per point
        (and per raised precision ``dps``)."""
        key = (k, dps or checks.DIGITS)
        vals = self._adjvals.get(key)
        if vals is None:
            env = self.points.env_at(k, key[1])[0]
            vals = self._adjvals[key] = self._reverse(lambda c, n: evaluate(self.partial(c, n).expr, env), key[1])
        return vals

    def reference_adjoints(self, k: int, dps: int | None = None) -> dict[str, Any]:
        """∂output/∂name at check point ``k`` for every name, by reverse accumulation of sympy's
        ``diff`` of each node (never the rules table), over the whole graph, once per point (and per
        raised precision ``dps``)."""
        key = (k, dps or checks.DIGITS)
        vals = self._refadj.get(key)
        if vals is None:
            vals = self._refadj[key] = self._reverse(lambda c, n: self.reference_value(c, n, k, key[1]), key[1])
        return vals

    def _reverse(self, local, dps: int = checks.DIGITS) -> dict[str, Any]:
        g = self.graph
        with mpmath.workdps(dps):
            d = {g.output: mpmath.mpf(1)}
            for n in reversed(g.names):
                if n == g.output or n not in self._routes:
                    continue
                d[n] = mpmath.fsum(d[c] * local(c, n) for c in self._kids(n))
        return d


def derive(graph: Graph, wrt: str, *, workspace: Workspace | None = None, max_paths: int = MAX_PATHS,
           title=None, at=(), lr=None, display=(), layers=()) -> Derivation:
    ws = workspace or Workspace(graph, dict(at) or None)
    cn = cone(graph, wrt)
    shown = first_paths(graph, wrt, max_paths + 1, cone=cn) if cn.count else ()
    listed = shown[:max_paths]
    partials = tuple(ws.partial(c, p) for c, p in cn.edges)
    by_edge = {(p.child, p.parent): p for p in partials}

    # reverse accumulation over the cone, output first; the δs are the workspace's, built once per node
    write_out = bool(cn.count) and ws.writable(wrt)
    acc = []
    for name in reversed(cn.nodes):
        kids = ws._kids(name) if name != cn.output else ()
        acc.append(Accumulation(name, kids, ws.delta(name) if write_out else None, ws.routes(name)))
    if cn.count == 0:
        result = sp.S.Zero
    elif write_out:
        result = ws.delta(wrt)
        if ws.tree_size() <= checks.COMPOSE_TREE and sp.count_ops(result) <= FACTOR_OPS:
            result = sp.factor_terms(result)   # (α + β + γ)(δ + ε + ζ); never simplify()
    else:
        # too large to write out: the result in terms of the adjoints of wrt's children
        kids = acc[-1].children
        result = sp.Add(*[delta_symbol(c) * by_edge[(c, wrt)].expr for c in kids])

    path_sum = None
    if cn.count and len(shown) <= max_paths and write_out:
        path_sum = sp.Add(*[sp.Mul(*[by_edge[(a, b)].expr for a, b in zip(p, p[1:])]) for p in shown])

    result_check = _check_result(graph, wrt, result, path_sum, ws, cn, write_out)
    return Derivation(graph=graph, output=cn.output, wrt=wrt, cone=cn, paths=listed, partials=partials,
                      accumulation=tuple(acc), path_sum=path_sum, result=result, check=result_check,
                      max_paths=max_paths, title=title, at=tuple(at), lr=lr, display=tuple(display),
                      layers=tuple(layers))


def _check_result(graph, wrt, result, path_sum, ws: Workspace, cn: Cone, written: bool) -> Check:
    if path_sum is not None and path_sum != result:
        t = checks.compare_exprs(path_sum, result, ws.points)
        if t.differ:
            return Check("numeric", f"the sum over paths and its factored form differ ({t.info})", False)
        if not t.ok and not checks.symbolic_zero(path_sum - result):    # no usable point: the algebra
            return Check("unchecked", "could not check the sum over paths against its factored form: no test point "
                                      f"where both are finite real numbers within the range of the check{t.note()}",
                         False)
    subs = ws.composed(wrt) if written else None
    if subs is not None:
        return checks.check_result_composed(graph, wrt, result, ws.points, subs)
    kids = () if written else ws._kids(wrt)

    def extend(k: int, env: dict, dps: int | None = None) -> dict:
        """The point, plus the δ of wrt's children where the result is stated through them."""
        if written:
            return env
        vals = ws.adjoint_values(k, dps)
        return {**env, **{delta_symbol(c): vals[c] for c in kids}}
    return checks.check_result_reverse(wrt, result, ws.points, ws.reference_adjoints, extend, cached=written)
