"""A network definition in the layer view: layer equations and the map between the two namings.

Takes a ``NetworkSpec`` (``network.py``); gives

- the network as equations over vectors and matrices (``layer_equations``)::

      z1: W1 @ x + b1          one pair per layer; Wl has shape [units of l, units of l-1]
      a1: sigmoid(z1)          (softmax(zL) for a softmax output, zL itself for identity)
      …
      L:  mean((y - a2)**2)    the loss as a vector expression: the same function as the scalar form

  with the shapes of its leaves ``x, y, W1, b1, W2, b2, …`` (a shared bias ``bl`` is a scalar);
- the map between the scalar names of the network's ``naming`` and the layer names: a scalar
  leaf (``w5``, ``w_2_1_3``, ``b3``, ``x2``, ``y1``) is an entry ``(tensor, index)`` of a layer leaf, a
  scalar node (``z3``, ``h2``, ``o1``, ``a_1_2``) an entry of a layer node. The map is computed by
  arithmetic on the numbering, never by listing the names (a 784-128-10 network has 101,770).

Flat numbering (SPEC §1.2): weights layer by layer, by destination neuron, then source neuron;
per-neuron biases the same way, a shared bias once per layer; ``z`` over all layers, ``h`` over the
hidden layers, ``o`` the outputs.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .network import NetworkSpec

LOSS_TEXT = {
    "mse": "mean((y - {a})**2)",
    "half_sse": "sum(1/2*(y - {a})**2)",
    "bce": "-mean(y*log({a}) + (1 - y)*log(1 - {a}))",
    "cross_entropy": "-sum(y*log({a}))",
}

_FLAT = re.compile(r"([wbzhoxy])([1-9][0-9]*)\Z")
_LAYERED = re.compile(r"([wbza])((?:_[1-9][0-9]*)+)\Z")
_LAYER_NAME = re.compile(r"([Wbza])([1-9][0-9]*)\Z")


def layer_leaves(spec: NetworkSpec) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The layer view's leaves and their shapes: x, y, then W1, b1, W2, b2, …"""
    sizes = spec.sizes
    out = [("x", (sizes[0],)), ("y", (sizes[-1],))]
    for l in range(1, len(sizes)):
        out.append((f"W{l}", (sizes[l], sizes[l - 1])))
        if spec.bias == "per_neuron":
            out.append((f"b{l}", (sizes[l],)))
        elif spec.bias == "shared":
            out.append((f"b{l}", ()))
    return tuple(out)


def layer_params(spec: NetworkSpec) -> tuple[str, ...]:
    """The layer view's default ``wrt``: W1, b1, W2, b2, … (no biases with ``bias: none``)."""
    return tuple(n for n, _ in layer_leaves(spec) if n not in ("x", "y"))


def layer_equations(spec: NetworkSpec) -> tuple[tuple[str, str], ...]:
    """(name, expression text) of the network in the layer view, in order."""
    eqs = []
    prev = "x"
    n = len(spec.layers)
    for l, (_, act) in enumerate(spec.layers, start=1):
        bias = f" + b{l}" if spec.bias != "none" else ""
        eqs.append((f"z{l}", f"W{l} @ {prev}{bias}"))
        eqs.append((f"a{l}", f"z{l}" if act == "identity" else f"{act}(z{l})"))
        prev = f"a{l}"
    eqs.append(("L", LOSS_TEXT[spec.loss].format(a=f"a{n}")))
    return tuple(eqs)


def layer_display(spec: NetworkSpec) -> tuple[tuple[str, str], ...]:
    """LaTeX of the layer names: W^{(l)}, b^{(l)}, z^{(l)}, a^{(l)} and δ^{(l)} for the adjoint of z^{(l)}."""
    out = []
    for l in range(1, len(spec.layers) + 1):
        out += [(f"W{l}", f"W^{{({l})}}"), (f"b{l}", f"b^{{({l})}}"), (f"z{l}", f"z^{{({l})}}"),
                (f"a{l}", f"a^{{({l})}}"), (f"delta_z{l}", f"\\delta^{{({l})}}")]
    return tuple(out)


@lru_cache(maxsize=32)
def _offsets(spec: NetworkSpec):
    """Where each layer's numbering starts: weights, per-neuron biases, z, h (all flat, 0-based)."""
    sizes = spec.sizes
    w, b, z, h = [0], [0], [0], [0]
    for l in range(1, len(sizes)):
        w.append(w[-1] + sizes[l] * sizes[l - 1])
        b.append(b[-1] + sizes[l])
        z.append(z[-1] + sizes[l])
        h.append(h[-1] + (sizes[l] if l < len(sizes) - 1 else 0))
    return tuple(w), tuple(b), tuple(z), tuple(h)


def _find(offsets, k: int) -> int:
    """The layer l (1-based) whose block holds the 0-based number k."""
    for l in range(1, len(offsets)):
        if k < offsets[l]:
            return l
    return 0


def entry_of(spec: NetworkSpec, name: str) -> tuple[str, tuple[int, ...]] | None:
    """The layer tensor and 0-based index that the scalar name stands for, or None.

    Leaves: ``w5`` -> (W2, (0, 0)) in a 2-2-1 net; nodes: ``h2`` -> (a1, (1,)), ``o1`` -> (a2, (0,)).
    The softmax normaliser ``s`` and the loss ``L`` are not entries.
    """
    sizes = spec.sizes
    n_layers = len(sizes) - 1
    if spec.naming == "flat":
        m = _FLAT.match(name)
        if not m:
            return None
        kind, k = m.group(1), int(m.group(2))
        if kind == "x":
            return ("x", (k - 1,)) if k <= sizes[0] else None
        if kind in ("y", "o"):
            return (("y" if kind == "y" else f"a{n_layers}"), (k - 1,)) if k <= sizes[-1] else None
        w_off, b_off, z_off, h_off = _offsets(spec)
        if kind == "w":
            l = _find(w_off, k - 1)
            if not l:
                return None
            r = k - 1 - w_off[l - 1]
            return f"W{l}", (r // sizes[l - 1], r % sizes[l - 1])
        if kind == "b":
            if spec.bias == "shared":
                return (f"b{k}", ()) if k <= n_layers else None
            if spec.bias == "none":
                return None
            l = _find(b_off, k - 1)
            return (f"b{l}", (k - 1 - b_off[l - 1],)) if l else None
        off = z_off if kind == "z" else h_off
        l = _find(off, k - 1)
        if not l or (kind == "h" and l == n_layers):
            return None
        return f"{kind if kind == 'z' else 'a'}{l}", (k - 1 - off[l - 1],)
    if name[:1] in "xy":
        m = _FLAT.match(name)
        if not m:
            return None
        k = int(m.group(2))
        size = sizes[0] if name[0] == "x" else sizes[-1]
        return (name[0], (k - 1,)) if k <= size else None
    m = _LAYERED.match(name)
    if not m:
        return None
    kind, idx = m.group(1), tuple(int(t) for t in m.group(2)[1:].split("_"))
    l = idx[0]
    if not 1 <= l <= n_layers:
        return None
    if kind == "w" and len(idx) == 3 and idx[1] <= sizes[l] and idx[2] <= sizes[l - 1]:
        return f"W{l}", (idx[1] - 1, idx[2] - 1)
    if kind == "b" and spec.bias == "shared" and len(idx) == 1:
        return f"b{l}", ()
    if kind == "b" and spec.bias == "per_neuron" and len(idx) == 2 and idx[1] <= sizes[l]:
        return f"b{l}", (idx[1] - 1,)
    if kind in "za" and len(idx) == 2 and idx[1] <= sizes[l]:
        return f"{kind}{l}", (idx[1] - 1,)
    return None


def entry_name(spec: NetworkSpec, tensor: str, index: tuple[int, ...]) -> str:
    """The scalar name of entry ``index`` (0-based) of a layer leaf or node."""
    sizes = spec.sizes
    n_layers = len(sizes) - 1
    if tensor in ("x", "y"):
        return f"{tensor}{index[0] + 1}"
    m = _LAYER_NAME.match(tensor)
    if not m:
        raise KeyError(tensor)
    kind, l = m.group(1), int(m.group(2))
    if spec.naming == "layered":
        if kind == "W":
            return f"w_{l}_{index[0] + 1}_{index[1] + 1}"
        if kind == "b" and not index:
            return f"b_{l}"
        return f"{kind}_{l}_{index[0] + 1}"
    w_off, b_off, z_off, h_off = _offsets(spec)
    if kind == "W":
        return f"w{w_off[l - 1] + index[0] * sizes[l - 1] + index[1] + 1}"
    if kind == "b":
        return f"b{l}" if not index else f"b{b_off[l - 1] + index[0] + 1}"
    if kind == "z":
        return f"z{z_off[l - 1] + index[0] + 1}"
    return f"o{index[0] + 1}" if l == n_layers else f"h{h_off[l - 1] + index[0] + 1}"


def entry_names(spec: NetworkSpec, tensor: str, shape: tuple) -> list[str]:
    """The scalar names of every entry of a layer leaf or node, row by row (fast: one f-string each)."""
    if not shape:
        return [entry_name(spec, tensor, ())]
    if spec.naming == "flat" and tensor[0] in "Wb" and tensor[1:].isdigit() and (tensor[0] == "W" or shape):
        l = int(tensor[1:])
        w_off, b_off, _, _ = _offsets(spec)
        start = w_off[l - 1] if tensor[0] == "W" else b_off[l - 1]
        n = shape[0] * (shape[1] if len(shape) == 2 else 1)
        return [f"{tensor[0].lower()}{start + i + 1}" for i in range(n)]
    if spec.naming == "layered" and tensor[0] == "W" and tensor[1:].isdigit():
        return [f"w_{tensor[1:]}_{j + 1}_{k + 1}" for j in range(shape[0]) for k in range(shape[1])]
    return [entry_name(spec, tensor, idx) for idx in indices(shape)]


def scalar_wrt(spec: NetworkSpec, names) -> list[str]:
    """Layer names expanded into the scalar names of their entries (scalar names kept)."""
    shapes = dict(layer_leaves(spec))
    out: list[str] = []
    for name in names:
        shape = shapes.get(name) if entry_of(spec, name) is None else None
        if shape is None:
            out.append(name)
            continue
        out += entry_names(spec, name, shape)
    return out


def indices(shape: tuple[int, ...]):
    """Every index of a shape, row by row."""
    if not shape:
        yield ()
    elif len(shape) == 1:
        for i in range(shape[0]):
            yield (i,)
    else:
        for i in range(shape[0]):
            for j in range(shape[1]):
                yield (i, j)
