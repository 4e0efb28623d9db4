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


def cone(graph: Graph, target: str, output: str | None = None) -> Cone:
    output = output or graph.output
    ways = routes_down(graph, target)
    # nodes reachable from the output (walking to parents) that reach the target
    on = {output} if ways.get(output, 0) else set()
    for n in reversed(graph.nodes):
        if n.name in on and n.name != target:
            for p in n.parents:
                if ways.get(p, 0):
                    on.add(p)
    order = [x for x in graph.names if x in on]
    edges = []
    for name in reversed(order):
        if name in graph.index and name != target:
            for p in graph.node(name).parents:
                if p in on:
                    edges.append((name, p))
    return Cone(output, target, ways.get(output, 0), tuple(order), tuple(edges),
                tuple((x, ways[x]) for x in order))


def count_paths(graph: Graph, target: str, output: str | None = None) -> int:
    return routes_down(graph, target).get(output or graph.output, 0)


def iter_paths(graph: Graph, target: str, output: str | None = None) -> Iterator[tuple[str, ...]]:
    """Routes from the output to ``target`` as tuples of names, lazily, in a fixed order."""
    output = output or graph.output
    ways = routes_down(graph, target)
    if not ways.get(output):
        return
    stack: list[tuple[str, ...]] = [(output,)]
    while stack:
        path = stack.pop()
        last = path[-1]
        if last == target:
            yield path
            continue
        parents = [p for p in graph.node(last).parents if ways.get(p, 0)]
        for p in reversed(parents):
            stack.append(path + (p,))


def first_paths(graph: Graph, target: str, limit: int, output: str | None = None) -> tuple[tuple[str, ...], ...]:
    return tuple(islice(iter_paths(graph, target, output), limit))
