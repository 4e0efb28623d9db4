"""Stable: a graph -> the same function, rewritten for floating point.

Takes a ``Graph``; gives a ``Graph`` whose nodes compute the same values in
exact arithmetic but stay finite in float64, and, for each node that a
rewrite stopped some child from using, the children it had (so that its
adjoint can still be reported). Used by ``numeric`` only: documents show the
definition as written.

Rewrites (each an identity of real analysis):

- ``log(σ(u)) = −softplus(−u)`` and ``log(1 − σ(u)) = −softplus(u)``, inside
  one expression or across nodes (``L = y·log(o) + …`` with ``o = σ(z)``
  becomes ``L = −y·softplus(−z) + …``): binary cross-entropy on sigmoid
  outputs at |z| = 1000 stays finite, and its gradient σ(z) − y too.
- ``log(exp(u)/s) = u − log(s)`` for a softmax output ``o = exp(z)/s``.
"""
from __future__ import annotations

from types import MappingProxyType

import sympy as sp

from .expr import symbol
from .functions import logsumexp, sigmoid, softplus
from .graph import Graph, Node


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


def _lse(graph: Graph, s: sp.Symbol):
    """logsumexp(u…) when node ``s`` is a sum of exponentials exp(u_1) + … + exp(u_m)."""
    if graph.is_leaf(s.name):
        return None
    se = graph.node(s.name).expr
    terms = sp.Add.make_args(se)
    if len(terms) >= 1 and all(isinstance(t, sp.exp) for t in terms):
        return logsumexp(*[t.args[0] for t in terms])
    return None


def _softmax(graph: Graph, pe):
    """For a softmax output exp(u)/s with s = Σ exp(·): log of it, u − logsumexp(·)."""
    if not (pe.is_Mul and len(pe.args) == 2):
        return None
    num = [f for f in pe.args if isinstance(f, sp.exp)]
    den = [f for f in pe.args if f.is_Pow and f.exp == -1 and f.base.is_Symbol]
    if len(num) != 1 or len(den) != 1:
        return None
    lse = _lse(graph, den[0].base)
    return None if lse is None else num[0].args[0] - lse


def stabilize(graph: Graph) -> tuple[Graph, dict[str, tuple[str, ...]]]:
    nodes = []
    bypassed: dict[str, list[str]] = {}
    for n in graph.nodes:
        expr = n.expr
        if expr.has(sp.log):
            mapping = {}
            for p in n.parents:
                if graph.is_leaf(p):
                    continue
                pe = graph.node(p).expr
                P = symbol(p)
                if isinstance(pe, sigmoid):
                    mapping[sp.log(P)] = -softplus(-pe.args[0])
                    mapping[sp.log(1 - P)] = -softplus(pe.args[0])
                else:
                    soft = _softmax(graph, pe)
                    if soft is not None:
                        mapping[sp.log(P)] = soft
            if mapping:
                expr = expr.xreplace(mapping)
            expr = _log_sigmoid(expr)
        soft = _softmax(graph, expr) if not expr.has(sp.log) else None
        if soft is not None:
            expr = sp.exp(soft)
        if expr is n.expr or expr == n.expr:
            nodes.append(n)
            continue
        used = {s.name for s in expr.free_symbols}
        order = {name: i for i, name in enumerate(graph.names)}
        parents = tuple(sorted(used, key=lambda x: order[x]))
        for p in n.parents:
            if p not in used:
                bypassed.setdefault(p, []).append(n.name)
        nodes.append(Node(n.name, expr, parents, n.text))
    if not bypassed and all(a is b for a, b in zip(nodes, graph.nodes)):
        return graph, {}
    index = {n.name: k for k, n in enumerate(nodes)}
    children: dict[str, list[str]] = {name: [] for name in graph.names}
    for n in nodes:
        for p in n.parents:
            children[p].append(n.name)
    g = Graph(nodes=tuple(nodes), leaves=graph.leaves, output=graph.output,
              children=MappingProxyType({k: tuple(v) for k, v in children.items()}),
              index=MappingProxyType(index))
    return g, {k: tuple(v) for k, v in bypassed.items()}
