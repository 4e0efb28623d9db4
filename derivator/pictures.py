"""Pictures: the one drawing of a document, as plain data for the templates (TikZ and Mermaid).

Takes a network (``NetworkSpec``) or a layer graph and the document's names; gives a picture::

    {"nodes":   [{id, name, tex, x, y, kind, leaf, wrt, output, column}],  kind: leaf | node | input | neuron
     "edges":   [{src, dst, skip, label, text, kind}],              label: LaTeX on the edge (or None),
                                                                    text: the same for Mermaid; kind:
                                                                    edge, or synapse (a weight, no arrow)
     "labels":  [{x, y, tex}],                                      free LaTeX (TikZ only)
     "columns": [{id, title, members}] or None}                     Mermaid subgraphs, one per layer

``name`` is a node's text for Mermaid (plain Unicode), ``tex`` its LaTeX for TikZ; ``x``, ``y``
are TikZ coordinates in centimetres. The scalar view's graph (``render._graph_picture``) has the
same keys.

What a textbook draws:

- a network with at most ``NEURONS`` units in every layer: its neurons in columns, inputs first,
  the weights as the edges between them (a layer's edges labelled once, W⁽ˡ⁾ and b⁽ˡ⁾), the loss
  after the output layer (``neuron_picture``);
- a larger network: one box per layer with its shape, x ∈ ℝ⁷⁸⁴ → a⁽¹⁾ ∈ ℝ¹²⁸ → …, each arrow
  labelled with the layer's parameters (``layer_boxes``);
- a ``shapes`` definition: its tensor nodes as boxes with their shapes (``tensor_picture``).
"""
from __future__ import annotations

from .tensor import shape_latex

NEURONS = 10            # networks with at most this many units in every layer are drawn neuron by neuron
COLUMN_CM = 3.4         # distance between the columns of a neuron diagram
ROW_CM = 1.1            # between two neurons of a column
BOX_CM = 4.4            # between two boxes of a layer diagram

_SUPERSCRIPT = str.maketrans("0123456789()x", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾ˣ")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
ACTIVATION_TEX = {"sigmoid": r"\sigma", "tanh": r"\tanh", "relu": r"\operatorname{relu}",
                  "softplus": r"\operatorname{softplus}", "softmax": r"\operatorname{softmax}"}
ACTIVATION_TEXT = {"sigmoid": "σ", "tanh": "tanh", "relu": "relu", "softplus": "softplus", "softmax": "softmax"}


def space_text(shape) -> str:
    """ℝ, ℝ⁴, ℝ⁴ˣ³ in plain Unicode (Mermaid labels)."""
    return "ℝ" + "x".join(str(n) for n in shape).translate(_SUPERSCRIPT)


def _layer_text(l: int) -> str:
    return f"({l})".translate(_SUPERSCRIPT)


def network_picture(net, names) -> dict:
    """The picture of a network in the layer view: neurons in columns, or one box per layer."""
    if max(net.sizes) <= NEURONS:
        return neuron_picture(net, names)
    return layer_boxes(net, names)


def _params(net, l: int, names, text: bool = False) -> str:
    ws = [f"W{l}"] + ([f"b{l}"] if net.bias != "none" else [])
    if text:
        return ", ".join(w[0] + _layer_text(l) for w in ws)
    return ", ".join(names.tex(w) for w in ws)


def _activation(net, l: int, names, text: bool = False) -> str:
    act = net.layers[l - 1][1]
    if text:        # Mermaid has no edge labels here: its column titles say the weights too
        prev = "x" if l == 1 else "a" + _layer_text(l - 1)
        z = "W" + _layer_text(l) + prev + (" + b" + _layer_text(l) if net.bias != "none" else "")
        a = "a" + _layer_text(l)
        return f"{a} = {z}" if act == "identity" else f"{a} = {ACTIVATION_TEXT[act]}({z})"
    a, z = names.tex(f"a{l}"), names.tex(f"z{l}")
    return f"{a} = {z}" if act == "identity" else f"{a} = {ACTIVATION_TEX[act]}({z})"


def neuron_picture(net, names) -> dict:
    """Neurons in columns; a layer's weights are the edges into it, labelled once above them."""
    sizes = net.sizes
    depth = len(sizes) - 1
    top = (max(sizes) - 1) / 2 * ROW_CM
    nodes, edges, labels, columns = [], [], [], []

    def y(j, n):
        return -(j - (n - 1) / 2) * ROW_CM

    ids = []
    for c, n in enumerate(sizes):
        col = []
        for j in range(n):
            nid = f"n{c}_{j}"
            if c == 0:
                tex, text, kind = f"x_{{{j + 1}}}", "x" + str(j + 1).translate(_SUBSCRIPT), "input"
            else:
                tex = names.tex(f"a{c}") + f"_{{{j + 1}}}"
                text, kind = "a" + _layer_text(c) + str(j + 1).translate(_SUBSCRIPT), "neuron"
            nodes.append({"id": nid, "name": text, "tex": tex, "x": c * COLUMN_CM, "y": y(j, n), "kind": kind,
                          "leaf": c == 0, "wrt": False, "output": False, "column": f"c{c}"})
            col.append(nid)
        ids.append(col)
        if c:
            for dst in col:
                for src in ids[c - 1]:
                    edges.append({"src": src, "dst": dst, "skip": False, "label": None, "text": None,
                                  "kind": "synapse"})
            labels.append({"x": (c - 0.5) * COLUMN_CM, "y": top + 0.75 * ROW_CM, "tex": _params(net, c, names)})
        title = (names.tex("x") + r" \in " + shape_latex((n,))) if c == 0 else _activation(net, c, names)
        labels.append({"x": c * COLUMN_CM, "y": -top - 0.8 * ROW_CM, "tex": title})
        columns.append({"id": f"c{c}", "title": ("x " + "∈ " + space_text((n,))) if c == 0
                        else _activation(net, c, names, text=True), "members": col})
    loss_x = (depth + 1) * COLUMN_CM
    nodes.append({"id": "loss", "name": "L", "tex": names.tex("L"), "x": loss_x, "y": 0.0, "kind": "node",
                  "leaf": False, "wrt": False, "output": True, "column": None})
    nodes.append({"id": "target", "name": "y", "tex": names.tex("y"), "x": loss_x, "y": -1.4 * ROW_CM,
                  "kind": "leaf", "leaf": True, "wrt": False, "output": False, "column": None})
    for src in ids[-1]:
        edges.append({"src": src, "dst": "loss", "skip": False, "label": None, "text": None, "kind": "edge"})
    edges.append({"src": "target", "dst": "loss", "skip": False, "label": None, "text": None, "kind": "edge"})
    return {"nodes": nodes, "edges": edges, "labels": labels, "columns": columns}


def layer_boxes(net, names) -> dict:
    """One box per layer with its shape; each arrow carries the layer's parameters."""
    sizes = net.sizes
    depth = len(sizes) - 1
    nodes = [{"id": "n0", "name": "x ∈ " + space_text((sizes[0],)),
              "tex": names.tex("x") + r" \in " + shape_latex((sizes[0],)), "x": 0.0, "y": 0.0, "kind": "leaf",
              "leaf": True, "wrt": False, "output": False, "column": None}]
    edges, labels = [], []
    for l in range(1, depth + 1):
        nodes.append({"id": f"n{l}", "name": "a" + _layer_text(l) + " ∈ " + space_text((sizes[l],)),
                      "tex": names.tex(f"a{l}") + r" \in " + shape_latex((sizes[l],)), "x": l * BOX_CM, "y": 0.0,
                      "kind": "node", "leaf": False, "wrt": False, "output": False, "column": None})
        edges.append({"src": f"n{l - 1}", "dst": f"n{l}", "skip": False, "label": _params(net, l, names),
                      "text": _params(net, l, names, text=True), "kind": "edge"})
        labels.append({"x": l * BOX_CM, "y": -0.8, "tex": _activation(net, l, names)})
    nodes.append({"id": "loss", "name": "L", "tex": names.tex("L"), "x": (depth + 0.75) * BOX_CM, "y": 0.0,
                  "kind": "node", "leaf": False, "wrt": False, "output": True, "column": None})
    nodes.append({"id": "target", "name": "y ∈ " + space_text((sizes[-1],)),
                  "tex": names.tex("y") + r" \in " + shape_latex((sizes[-1],)), "x": (depth + 0.75) * BOX_CM,
                  "y": -1.6, "kind": "leaf", "leaf": True, "wrt": False, "output": False, "column": None})
    edges.append({"src": f"n{depth}", "dst": "loss", "skip": False, "label": None, "text": None, "kind": "edge"})
    edges.append({"src": "target", "dst": "loss", "skip": False, "label": None, "text": None, "kind": "edge"})
    return {"nodes": nodes, "edges": edges, "labels": labels, "columns": None}


def tensor_picture(lg, names, wrt) -> dict | None:
    """The graph of a `shapes` definition: its leaves and nodes as boxes with their shapes."""
    from .render import _graph_picture

    class Shaped:
        def tex(self, name):
            shape = lg.shapes[name]
            return names.tex(name) + (r" \in " + shape_latex(shape) if shape else "")

    pic = _graph_picture(lg.structure, Shaped(), set(wrt))
    if pic is None:
        return None
    for n in pic["nodes"]:
        shape = lg.shapes[n["name"]]
        n["x"] = round(n["x"] * 1.4, 3)
        n["y"] = round(n["y"] * 1.1, 3)
        n["name"] = n["name"] + (" ∈ " + space_text(shape) if shape else "")
    return pic
