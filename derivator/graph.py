"""The computational graph: a definition -> an immutable DAG.

Takes a ``Definition``; gives a frozen ``Graph`` whose nodes (one per
equation, in a topological order that keeps the file's order wherever the
dependencies allow) hold their sympy expression in terms of their parents'
symbols. Leaves are the names used but never defined, in order of first use.
Every collection is a tuple: nothing on the way to output depends on hashing.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .expr import symbol
from .spec import Definition


@dataclass(frozen=True)
class Node:
    name: str
    expr: Any                   # sympy expression in the parents' symbols
    parents: tuple[str, ...]    # in order of first use in the expression
    text: str                   # the definition's text
    tree: Any = field(default=None, compare=False, repr=False)   # its parse tree (``expr.Ast``), as written

    @property
    def symbol(self):
        return symbol(self.name)


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]                        # topological order
    leaves: tuple[str, ...]
    output: str
    children: Mapping[str, tuple[str, ...]]        # name -> nodes using it, topological order
    index: Mapping[str, int]                       # node name -> position in ``nodes``

    def __repr__(self) -> str:
        return (f"<Graph of {self.output}: {len(self.nodes)} nodes, {len(self.leaves)} leaves, "
                f"{self.edge_count} edges>")

    def node(self, name: str) -> Node:
        return self.nodes[self.index[name]]

    def is_leaf(self, name: str) -> bool:
        return name not in self.index

    @property
    def names(self) -> tuple[str, ...]:
        """Leaves, then nodes."""
        return self.leaves + tuple(n.name for n in self.nodes)

    @property
    def edge_count(self) -> int:
        return sum(len(n.parents) for n in self.nodes)

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Every name ``name`` depends on (itself included), in graph order."""
        seen = {name}
        stack = [name]
        while stack:
            n = stack.pop()
            if n in self.index:
                for p in self.node(n).parents:
                    if p not in seen:
                        seen.add(p)
                        stack.append(p)
        return tuple(x for x in self.names if x in seen)


def build_graph(definition: Definition) -> Graph:
    eqs = definition.equations
    defined = {e.name: i for i, e in enumerate(eqs)}
    # Kahn's algorithm, ties broken by file position: file order where possible.
    indeg = [sum(1 for p in e.parents if p in defined) for e in eqs]
    users: dict[str, list[int]] = {}
    for i, e in enumerate(eqs):
        for p in e.parents:
            if p in defined:
                users.setdefault(p, []).append(i)
    ready = [i for i, d in enumerate(indeg) if d == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users.get(eqs[i].name, ()):
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(eqs):  # spec.py reports cycles first; this is a guard
        raise ValueError("the equations contain a cycle")
    nodes = tuple(Node(eqs[i].name, eqs[i].expr, eqs[i].parents, eqs[i].text, eqs[i].tree) for i in order)
    leaves: dict[str, None] = {}
    for e in eqs:
        for p in e.parents:
            if p not in defined:
                leaves.setdefault(p, None)
    index = {n.name: k for k, n in enumerate(nodes)}
    children: dict[str, list[str]] = {name: [] for name in list(leaves) + [n.name for n in nodes]}
    for n in nodes:
        for p in n.parents:
            children[p].append(n.name)
    return Graph(nodes=nodes, leaves=tuple(leaves), output=definition.output,
                 children=MappingProxyType({k: tuple(v) for k, v in children.items()}),
                 index=MappingProxyType(index))
