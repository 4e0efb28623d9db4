"""The layer graph: a definition -> a DAG of tensor nodes, and the map to its scalar view.

Takes a ``Definition`` with a layer view (a network, or equations with ``shapes``); gives a frozen
``LayerGraph``: a ``graph.Graph`` whose nodes hold tensor expressions (``tensor.T``) in their
parents' names, the shape of every leaf and node, the output, LaTeX names, and the *naming* that
relates the two views — which scalar name stands for which entry of which tensor:

- a network (``layer_network.py``): ``w5`` is an entry of ``W2``, ``h1`` of ``a1``, …;
- a `shapes` definition: entry (i, j) of ``W1`` is ``W1_i_j`` (1-based), of ``x`` is ``x_i``.

Also here: the scalar view of a `shapes` definition (``unroll_equations``: one scalar equation per
entry of every node, by ``tensor.unroll``), and the values of ``at`` gathered into tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType, SimpleNamespace
from typing import Mapping

import numpy as np
import sympy as sp

from .errors import DefinitionError
from .expr import ast_names, symbol
from .graph import Graph, build_graph
from .layer_network import indices
from .spec import MAX_EQUATIONS, Definition, Equation
from .spec import entry_name as shapes_entry_name
from .spec import entry_of as shapes_entry_of
from .tensor import Shape, T, Var, build, parse, unroll

MAX_UNROLLED_TERMS = 400_000     # the scalar view of a `shapes` definition: products in all its sums


class Naming:
    """Scalar names <-> (tensor, 0-based index), for one definition."""

    def __init__(self, definition: Definition, shapes: Mapping[str, Shape]):
        self.net = definition.network
        self.shapes = shapes
        self._tensors = {n: s for n, s in shapes.items() if s}

    def entry_of(self, name: str):
        """The (tensor, index) a scalar name stands for, or None (a layer name is not an entry)."""
        if self.net is not None:
            from .layer_network import entry_of
            e = entry_of(self.net, name)
            return e if e is not None and e[0] in self.shapes else None
        return shapes_entry_of(name, self._tensors)

    def entry_name(self, tensor: str, index: tuple) -> str:
        if self.net is not None:
            from .layer_network import entry_name
            return entry_name(self.net, tensor, index)
        return shapes_entry_name(tensor, index) if index else tensor


@dataclass(frozen=True)
class LayerGraph:
    structure: Graph                          # nodes whose expr is a tensor expression; paths run on it
    shapes: Mapping[str, Shape]               # every leaf and node
    output: str
    display: Mapping[str, str] = field(default_factory=dict)   # LaTeX names (W^{(1)}, δ^{(1)})
    naming: Naming | None = field(default=None, compare=False)
    source: str = "<definition>"

    def __repr__(self) -> str:
        g = self.structure
        return f"<LayerGraph of {self.output}: {len(g.nodes)} tensor nodes, {len(g.leaves)} leaves>"

    @property
    def nodes(self):
        return self.structure.nodes

    @property
    def leaves(self) -> tuple[str, ...]:
        return self.structure.leaves

    def node(self, name: str):
        return self.structure.node(name)

    def is_leaf(self, name: str) -> bool:
        return self.structure.is_leaf(name)

    def var(self, name: str) -> Var:
        return Var(name, self.shapes[name])

    @property
    def names(self) -> tuple[str, ...]:
        return self.structure.names


def _network_equations(net):
    from .layer_network import layer_equations, layer_leaves
    shapes = dict(layer_leaves(net))
    out = []
    for name, text in layer_equations(net):
        tree = parse(text)
        t = build(tree, shapes.__getitem__)
        shapes[name] = t.shape
        out.append(Equation(name, text, t, ast_names(tree), None, tree))
    return tuple(out)


@lru_cache(maxsize=16)
def layer_graph(definition: Definition) -> LayerGraph:
    """The layer graph of a network or of a `shapes` definition."""
    if definition.network is not None:
        from .layer_network import layer_display
        eqs = _network_equations(definition.network)
        display = dict(layer_display(definition.network))
    elif definition.tensor_equations:
        eqs = definition.tensor_equations
        display = {}
    else:
        raise ValueError("no layer view: neither a network nor `shapes`")
    g = build_graph(SimpleNamespace(equations=eqs, output=definition.output))
    shapes = tensor_shapes(eqs, dict(definition.shapes) if definition.network is None else
                           _network_leaf_shapes(definition.network))
    shapes = MappingProxyType(shapes)
    return LayerGraph(structure=g, shapes=shapes, output=definition.output, display=MappingProxyType(display),
                      naming=Naming(definition, shapes), source=definition.source)


def _network_leaf_shapes(net) -> dict:
    from .layer_network import layer_leaves
    return dict(layer_leaves(net))


def tensor_shapes(tensor_equations, leaf_shapes: dict) -> dict[str, Shape]:
    """The shape of every leaf and node (leaves not in ``leaf_shapes`` are scalars)."""
    out: dict[str, Shape] = {}
    defined = {e.name for e in tensor_equations}
    for e in tensor_equations:
        for p in e.parents:
            if p not in defined:
                out.setdefault(p, tuple(leaf_shapes.get(p, ())))
    for e in tensor_equations:
        out[e.name] = e.expr.shape
    return out


def point(lg: LayerGraph, at: dict) -> tuple[dict[str, np.ndarray], list[str]]:
    """The values of ``at`` (scalar names) gathered into the layer leaves, and the leaves without a full value."""
    values: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for leaf in lg.leaves:
        shape = lg.shapes[leaf]
        if not shape:
            name = lg.naming.entry_name(leaf, ())
            if name in at:
                values[leaf] = np.asarray(float(at[name]))
            else:
                missing.append(leaf)
            continue
        arr = np.empty(shape)
        ok = True
        for idx in indices(shape):
            v = at.get(lg.naming.entry_name(leaf, idx))
            if v is None:
                ok = False
                break
            arr[idx] = v
        if ok:
            values[leaf] = arr
        else:
            missing.append(leaf)
    return values, missing


# ------------------------------------------------------ the scalar view ---

def _symbols(name: str, shape: Shape) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for idx in indices(shape):
        arr[idx] = symbol(shapes_entry_name(name, idx) if idx else name)
    return arr


def unroll_equations(tensor_equations, leaf_shapes: dict, output: str, source: str) -> tuple[Equation, ...]:
    """The scalar view of a `shapes` definition: one scalar equation per entry of each node."""
    shapes = tensor_shapes(tensor_equations, leaf_shapes)
    count = sum(max(1, int(np.prod(e.expr.shape))) for e in tensor_equations)
    if count > MAX_EQUATIONS:
        raise DefinitionError(f"the scalar view would have {count} equations (at most {MAX_EQUATIONS})",
                              source=source, hint="use the layer view (--view layer)")
    terms = sum(_terms(e.expr) for e in tensor_equations)
    if terms > MAX_UNROLLED_TERMS:
        raise DefinitionError(f"the scalar view would have {terms} products in its sums "
                              f"(at most {MAX_UNROLLED_TERMS})", source=source,
                              hint="use the layer view (--view layer)")
    env = {name: _symbols(name, shape) for name, shape in shapes.items()}
    defined = {e.name for e in tensor_equations}
    out = []
    seen: set[str] = set()
    for e in tensor_equations:
        values = unroll(e.expr, env)
        first = len(out)
        for idx in indices(e.expr.shape):
            expr = values[idx]
            name = shapes_entry_name(e.name, idx) if idx else e.name
            parents = _parents(expr)
            seen.update(parents)
            out.append(Equation(name, sp.sstr(expr), expr, parents, e.line, None))
        # an entry that the expression lost (w - w is 0) is still used, as a name is in the scalar view
        lost = [s.name for p in e.parents if p not in defined for s in env[p].ravel() if s.name not in seen]
        if lost:
            eq = out[first]
            out[first] = Equation(eq.name, eq.text, eq.expr, eq.parents + tuple(dict.fromkeys(lost)), eq.line, None)
            seen.update(lost)
    return tuple(out)


def _terms(t: T) -> int:
    from .tensor import MatMul, Outer, Softmax, Sum, Mean, walk
    n = 0
    for x in walk(t):
        if isinstance(x, MatMul):
            n += int(np.prod(x.shape or (1,))) * x.a.shape[-1]
        elif isinstance(x, (Sum, Mean)):
            n += int(np.prod(x.a.shape))
        elif isinstance(x, Softmax):
            n += x.shape[0] ** 2
        elif isinstance(x, Outer):
            n += int(np.prod(x.shape))
    return n


def _parents(expr) -> tuple[str, ...]:
    """The names an expression uses, in order of first use in sympy's (canonical) order of arguments."""
    seen: dict[str, None] = {}
    stack = [expr]
    while stack:
        e = stack.pop()
        if e.is_Symbol:
            seen.setdefault(e.name, None)
        else:
            stack.extend(reversed(e.args))
    return tuple(seen)
