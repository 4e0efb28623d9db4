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

import sympy as sp

from . import check as checks
from .check import Check, Points
from .expr import symbol
from .graph import Graph
from .paths import Cone, cone, first_paths
from .rules import local_derivative

MAX_PATHS = 16              # paths listed in full; above this only the first few are shown
RESULT_TERMS = 256          # largest result (in path products) written out in node symbols
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


@dataclass(frozen=True)
class Derivation:
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

    def to_markdown(self, **options) -> str:
        from .render import render
        return render([self], "md", **options)

    def to_latex(self, **options) -> str:
        from .render import render
        return render([self], "tex", **options)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        status = "verified" if self.verified else "NOT verified"
        return (f"<Derivation ∂{self.output}/∂{self.wrt} = {sp.sstr(self.result)[:200]}; "
                f"{self.path_count} path(s); {status}>")


def _canon(i: int) -> sp.Symbol:
    return symbol(f"_p{i}")


class _Shape:
    """One local-derivative shape: a node's expression with its parents renamed _p0, _p1, …"""

    __slots__ = ("raw", "rules", "check", "ref")

    def __init__(self, raw, rules, check, ref):
        self.raw, self.rules, self.check, self.ref = raw, rules, check, ref


class Workspace:
    """Local partials of one graph, each computed and checked once.

    Partials are derived and checked once per *shape* (the node's expression
    with its parents renamed in order), then renamed back: the 56 sigmoid
    nodes of a deep network share one derivation and one check of σ′.
    Differentiation commutes with renaming variables, so this is exact.
    """

    def __init__(self, graph: Graph, at: dict | None = None):
        self.graph = graph
        self._partials: dict[tuple[str, str], LocalPartial] = {}
        self._ref: dict[tuple[str, str], Any] = {}
        self._shapes: dict[tuple, _Shape] = {}
        self._points: Points | None = None
        self._refvals: dict = {}
        self._tree: int | None = None
        self.at = at

    @property
    def points(self) -> Points:
        if self._points is None:
            self._points = Points(self.graph, self.at)
        return self._points

    def _shape(self, child: str, parent: str) -> tuple[_Shape, dict]:
        node = self.graph.node(child)
        canon = {symbol(p): _canon(i) for i, p in enumerate(node.parents)}
        index = node.parents.index(parent)
        cexpr = node.expr.xreplace(canon)
        key = (cexpr, index)
        shape = self._shapes.get(key)
        if shape is None:
            var = _canon(index)
            raw, rules = local_derivative(cexpr, var)
            ref = sp.diff(cexpr, var)
            if raw == ref:
                result = Check("identical", "identical to sympy's diff of the definition", True)
            else:
                result = checks.check_local(cexpr, var, raw, ref)
            shape = self._shapes[key] = _Shape(raw, rules, result, ref)
        return shape, {v: k for k, v in canon.items()}

    def reference_partial(self, child: str, parent: str):
        key = (child, parent)
        if key not in self._ref:
            shape, back = self._shape(child, parent)
            self._ref[key] = shape.ref.xreplace(back)
        return self._ref[key]

    def reference_value(self, child: str, parent: str, k: int, dps: int | None = None):
        """sympy's ∂child/∂parent at check point ``k`` (mpmath), computed once (at ``dps`` digits: again)."""
        if dps is not None and dps != checks.DIGITS:
            from .mpeval import evaluate
            return evaluate(self.reference_partial(child, parent), self.points.env_at(k, dps)[0])
        key = (child, parent, k)
        v = self._refvals.get(key)
        if v is None:
            from .mpeval import evaluate
            v = self._refvals[key] = evaluate(self.reference_partial(child, parent), self.points.envs[k])
        return v

    def partial(self, child: str, parent: str) -> LocalPartial:
        key = (child, parent)
        if key not in self._partials:
            node = self.graph.node(child)
            shape, back = self._shape(child, parent)
            raw = shape.raw.xreplace(back)
            named = raw.xreplace({node.expr: node.symbol}) if raw.has(node.expr) else raw
            self._partials[key] = LocalPartial(child, parent, named, shape.rules, shape.check)
        return self._partials[key]

    def composed(self, keep: str) -> dict | None:
        """The output written in the leaves, where that tree is small (else None: check forward)."""
        g = self.graph
        if len(g.nodes) > checks.COMPOSE_NODES or self.tree_size() > checks.COMPOSE_TREE:
            return None
        return checks.composed(g, keep)

    def tree_size(self) -> int:
        """Size of the output written out as a tree: the number of routes from it to every name."""
        if self._tree is None:
            g = self.graph
            routes = {g.output: 1}
            for n in reversed(g.nodes):
                r = routes.get(n.name, 0)
                if r:
                    for p in n.parents:
                        routes[p] = routes.get(p, 0) + r
            self._tree = sum(routes.values())
        return self._tree


def _sizes(cn: Cone, graph: Graph) -> dict[str, int]:
    """For each cone node, the number of path products in δ_node written out (by DP, never enumerating)."""
    size: dict[str, int] = {cn.output: 1}
    on = set(cn.nodes)
    for name in reversed(cn.nodes):
        if name != cn.output:
            size[name] = sum(size[c] for c in graph.children[name] if c in on)
    return size


def derive(graph: Graph, wrt: str, *, workspace: Workspace | None = None, max_paths: int = MAX_PATHS,
           title=None, at=(), lr=None, display=(), layers=()) -> Derivation:
    ws = workspace or Workspace(graph, dict(at) or None)
    cn = cone(graph, wrt)
    shown = first_paths(graph, wrt, max_paths + 1) if cn.count else ()
    listed = shown[:max_paths]
    partials = tuple(ws.partial(c, p) for c, p in cn.edges)
    by_edge = {(p.child, p.parent): p for p in partials}

    # reverse accumulation over the cone: output first
    on = set(cn.nodes)
    sizes = _sizes(cn, graph)
    write_out = sizes.get(wrt, 0) <= RESULT_TERMS
    delta: dict[str, Any] = {}
    acc = []
    for name in reversed(cn.nodes):
        if name == cn.output:
            kids: tuple[str, ...] = ()
            delta[name] = sp.S.One
        else:
            kids = tuple(c for c in graph.children[name] if c in on)
            if write_out:
                delta[name] = sp.Add(*[delta[c] * by_edge[(c, name)].expr for c in kids])
        acc.append(Accumulation(name, kids, delta.get(name), sizes[name]))
    if cn.count == 0:
        result = sp.S.Zero
    elif write_out:
        result = delta[wrt]
        if ws.tree_size() <= checks.COMPOSE_TREE and sp.count_ops(result) <= FACTOR_OPS:
            result = sp.factor_terms(result)   # (α + β + γ)(δ + ε + ζ); never simplify()
    else:
        # too large to write out: the result in terms of the adjoints of wrt's children
        kids = acc[-1].children
        result = sp.Add(*[delta_symbol(c) * by_edge[(c, wrt)].expr for c in kids])

    path_sum = None
    if cn.count and len(shown) <= max_paths:
        path_sum = sp.Add(*[sp.Mul(*[by_edge[(a, b)].expr for a, b in zip(p, p[1:])]) for p in shown])

    result_check = _check_result(graph, wrt, result, path_sum, ws, cn, write_out)
    return Derivation(graph=graph, output=cn.output, wrt=wrt, cone=cn, paths=listed, partials=partials,
                      accumulation=tuple(acc), path_sum=path_sum, result=result, check=result_check,
                      max_paths=max_paths, title=title, at=tuple(at), lr=lr, display=tuple(display),
                      layers=tuple(layers))


def _adjoint_env(ws: Workspace, cn: Cone, env: dict) -> dict:
    """env plus the numeric δ of every cone node, by this derivation's own partials."""
    from .mpeval import evaluate
    graph = ws.graph
    on = set(cn.nodes)
    d = {cn.output: 1}
    out = dict(env)
    out[delta_symbol(cn.output)] = 1
    for name in reversed(cn.nodes):
        if name == cn.output:
            continue
        d[name] = sum(d[c] * evaluate(ws.partial(c, name).expr, env) for c in graph.children[name] if c in on)
        out[delta_symbol(name)] = d[name]
    return out


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
    extend = None if written else (lambda env: _adjoint_env(ws, cn, env))
    return checks.check_result_forward(graph, wrt, result, ws.points, ws.reference_value, extend)
