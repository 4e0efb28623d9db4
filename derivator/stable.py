"""Stable: a graph -> the same function, rewritten for floating point.

Takes a ``Graph``; gives a ``Graph`` whose nodes compute the same values in
exact arithmetic but stay finite in float64, and the nodes whose definitions
a rewrite wrote into another node (their adjoints *as written* differ from
the rewritten graph's and are computed from the definition's own partials).
Used by ``numeric`` only: documents show the definition as written.

Rewrites (each an identity of real analysis):

- ``log(σ(u)) = −softplus(−u)`` and ``log(1 − σ(u)) = −softplus(u)``, inside
  one expression or across nodes (``L = y·log(o) + …`` with ``o = σ(z)``
  becomes ``L = −y·softplus(−z) + …``): binary cross-entropy on sigmoid
  outputs at |z| = 1000 stays finite, and its gradient σ(z) − y too.
- a softmax normaliser ``s = exp(z_1) + … + exp(z_m)`` gets a node
  ``_lse_s = logsumexp(z_1, …, z_m)`` (= log s), computed once; a softmax
  output ``o = exp(z)/s`` becomes ``exp(z − _lse_s)`` and ``log(o)`` becomes
  ``z − _lse_s``. Its adjoints then come out as ``o_k·Σ_j y_j − y_k`` for
  cross-entropy: one log-sum-exp per sample, no term per pair of classes.

The new nodes' names start with ``_``, which no definition's name can.
"""
from __future__ import annotations

from types import MappingProxyType

import sympy as sp

from .expr import symbol
from .functions import logsumexp, sigmoid, softplus
from .graph import Graph, Node

LSE = "_lse_"      # the log-sum-exp node of a softmax normaliser s is named _lse_s


def _log_sigmoid(e):
    """Rewrite log(σ(u)) and log(1 − σ(u)) inside one expression."""
    def is_target(x):
        if not isinstance(x, sp.log):
            return False
        a = x.args[0]
        return isinstance(a, sigmoid) or (a.is_Add and len(a.args) == 2 and sp.S.One in a.args
                                          and any(isinstance(-t, sigmoid) for t in a.args))

    def rewrite(x):
        a = x.args[0]
        if isinstance(a, sigmoid):
            return -softplus(-a.args[0])
        t = next(t for t in a.args if isinstance(-t, sigmoid))
        return -softplus((-t).args[0])
    return e.replace(is_target, rewrite) if e.has(sp.log) else e


def _normaliser(graph: Graph, name: str):
    """The arguments u of node ``name`` when it is a sum of exponentials exp(u_1) + … + exp(u_m)."""
    if graph.is_leaf(name):
        return None
    terms = sp.Add.make_args(graph.node(name).expr)
    if terms and all(isinstance(t, sp.exp) for t in terms):
        return tuple(t.args[0] for t in terms)
    return None


def _softmax(graph: Graph, pe):
    """(u, s) when ``pe`` is a softmax output exp(u)/s with s a node that sums exponentials."""
    if not (pe.is_Mul and len(pe.args) == 2):
        return None
    num = [f for f in pe.args if isinstance(f, sp.exp)]
    den = [f for f in pe.args if f.is_Pow and f.exp == -1 and f.base.is_Symbol]
    if len(num) != 1 or len(den) != 1 or _normaliser(graph, den[0].base.name) is None:
        return None
    return num[0].args[0], den[0].base.name


def stabilize(graph: Graph) -> tuple[Graph, tuple[str, ...]]:
    """(the rewritten graph, the nodes whose definitions were written into another node)."""
    normalisers = {}             # s -> the name of its log-sum-exp node
    for n in graph.nodes:
        soft = _softmax(graph, n.expr)
        if soft is not None:
            normalisers.setdefault(soft[1], LSE + soft[1])
    nodes: list[tuple[Node, bool]] = []      # (node, whether its parents are to be found)
    inlined: set[str] = set()
    changed = False
    for n in graph.nodes:
        expr = n.expr
        if expr.has(sp.log):
            logs = expr.atoms(sp.log)
            mapping = {}
            for p in n.parents:
                if graph.is_leaf(p):
                    continue
                pe = graph.node(p).expr
                P = symbol(p)
                if isinstance(pe, sigmoid):
                    found = {sp.log(P): -softplus(-pe.args[0]), sp.log(1 - P): -softplus(pe.args[0])}
                else:
                    soft = _softmax(graph, pe)
                    found = {} if soft is None else {sp.log(P): soft[0] - symbol(normalisers[soft[1]])}
                found = {k: v for k, v in found.items() if k in logs}
                if found:
                    mapping.update(found)
                    inlined.add(p)
            if mapping:
                expr = expr.xreplace(mapping)
            expr = _log_sigmoid(expr)
        soft = _softmax(graph, expr) if not expr.has(sp.log) else None
        if soft is not None:
            expr = sp.exp(soft[0] - symbol(normalisers[soft[1]]))
            inlined.add(soft[1])
        if expr is n.expr or expr == n.expr:
            nodes.append((n, False))
        else:
            changed = True
            nodes.append((Node(n.name, expr, (), n.text), True))
        if n.name in normalisers:
            nodes.append((Node(normalisers[n.name], logsumexp(*_normaliser(graph, n.name)), (), ""), True))
    if not changed:
        return graph, ()
    order = {name: i for i, name in enumerate(graph.leaves + tuple(n.name for n, _ in nodes))}
    out = []
    for n, new in nodes:
        if new:
            used = {s.name for s in n.expr.free_symbols}
            n = Node(n.name, n.expr, tuple(sorted(used, key=order.__getitem__)), n.text)
        out.append(n)
    index = {n.name: k for k, n in enumerate(out)}
    children: dict[str, list[str]] = {name: [] for name in order}
    for n in out:
        for p in n.parents:
            children[p].append(n.name)
    g = Graph(nodes=tuple(out), leaves=graph.leaves, output=graph.output,
              children=MappingProxyType({k: tuple(v) for k, v in children.items()}),
              index=MappingProxyType(index))
    return g, tuple(x for x in graph.names if x in inlined)
