"""Paths: every route from the output down to one name.

Takes a ``Graph``, the output and a target name; gives the exact number of
routes (by dynamic programming over the DAG, never by enumerating), a lazy
generator of the routes in a fixed order (parents in order of first use),
and the *cone*: the nodes and edges that lie on at least one route.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Iterator

from .graph import Graph


@dataclass(frozen=True)
class Cone:
    """The part of the graph between the output and a target."""

    output: str
    target: str
    count: int                                   # exact number of routes
    nodes: tuple[str, ...]                       # on some route, topological order (target first if a node)
    edges: tuple[tuple[str, str], ...]           # (child, parent) on some route, child in reverse topological order
    ways: tuple[tuple[str, int], ...]            # name -> number of routes from it down to the target


def routes_down(graph: Graph, target: str) -> dict[str, int]:
    """For every name, the number of routes from it down to ``target``."""
    ways = {name: 0 for name in graph.leaves}
    ways[target] = 1
    for n in graph.nodes:
        if n.name == target:
            continue
        ways[n.name] = sum(ways.get(p, 0) for p in n.parents)
    return ways


_ABOVE: dict[tuple[int, str], tuple[Graph, frozenset]] = {}


def _reaching(graph: Graph, output: str) -> frozenset:
    """The names from which ``output`` can be reached (itself included), once per graph."""
    key = (id(graph), output)
    found = _ABOVE.get(key)
    if found is None or found[0] is not graph:
        if len(_ABOVE) >= 8:
            _ABOVE.clear()
        found = _ABOVE[key] = (graph, frozenset(graph.ancestors(output)))
    return found[1]


def cone(graph: Graph, target: str, output: str | None = None) -> Cone:
    """The cone of ``target``, in time linear in the cone (the rest of the graph is never visited):
    the target's descendants that reach the output, found by walking down the children."""
    output = output or graph.output
    up = _reaching(graph, output)
    below = {target}
    todo = [target]
    if target in up:
        while todo:
            for c in graph.children[todo.pop()]:
                if c in up and c not in below:
                    below.add(c)
                    todo.append(c)
    if output not in below:
        return Cone(output, target, 0, (), (), ())
    index = graph.index
    order = [target] + sorted((x for x in below if x != target), key=index.__getitem__)
    ways = {target: 1}
    for name in order[1:]:
        ways[name] = sum(ways.get(p, 0) for p in graph.nodes[index[name]].parents)
    edges = []
    for name in reversed(order[1:]):
        for p in graph.nodes[index[name]].parents:
            if p in below:
                edges.append((name, p))
    return Cone(output, target, ways[output], tuple(order), tuple(edges), tuple((x, ways[x]) for x in order))


def count_paths(graph: Graph, target: str, output: str | None = None) -> int:
    return routes_down(graph, target).get(output or graph.output, 0)


def iter_paths(graph: Graph, target: str, output: str | None = None,
               cone: Cone | None = None) -> Iterator[tuple[str, ...]]:
    """Routes from the output to ``target`` as tuples of names, lazily, in a fixed order.

    A depth-first walk with one stack of names: each route costs its own length, however
    long the routes (a chain of 5,000 nodes is one route, built once). With the ``cone``
    of the target (already computed), the walk follows its edges only."""
    output = output or graph.output
    if cone is not None and cone.output == output and cone.target == target:
        if not cone.count:
            return
        down: dict[str, list[str]] = {}
        for child, parent in cone.edges:
            down.setdefault(child, []).append(parent)
    else:
        ways = routes_down(graph, target)
        if not ways.get(output):
            return
        down = _Down(graph, ways)
    path = [output]
    stack = [iter(down[output])]     # per name on the path: its parents still to visit
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            path.pop()
            continue
        path.append(nxt)
        if nxt == target:
            yield tuple(path)
            path.pop()
        else:
            stack.append(iter(down[nxt]))


class _Down(dict):
    """name -> its parents that lead down to the target, computed when first asked."""

    def __init__(self, graph: Graph, ways: dict):
        super().__init__()
        self.graph, self.ways = graph, ways

    def __missing__(self, name: str) -> list[str]:
        found = self[name] = [p for p in self.graph.node(name).parents if self.ways.get(p, 0)]
        return found


def first_paths(graph: Graph, target: str, limit: int, output: str | None = None,
                cone: Cone | None = None) -> tuple[tuple[str, ...], ...]:
    return tuple(islice(iter_paths(graph, target, output, cone), limit))
