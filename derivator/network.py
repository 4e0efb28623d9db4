"""The network form: a fully connected network -> equations.

Takes the ``network:`` mapping of a definition; gives the equations (name,
expression text) in order, the default ``wrt`` (every weight, then every
bias), LaTeX names where they differ from the identifiers, and the node
names of each layer.

Names (see the README):

=========  ==========================  =================================
quantity   ``naming: flat``            ``naming: layered``
=========  ==========================  =================================
input k    ``xk``                      ``xk``
target j   ``yj``                      ``yj``
weight     ``w1, w2, …``               ``w_l_j_k`` → w^{(l)}_{jk}
bias       ``b1, b2, …``               ``b_l_j`` → b^{(l)}_{j} (shared: ``b_l``)
pre-act.   ``z1, z2, …`` (all layers)  ``z_l_j`` → z^{(l)}_{j}
hidden     ``h1, h2, …``               ``a_l_j`` → a^{(l)}_{j}
output j   ``oj``                      ``a_L_j`` → a^{(L)}_{j}
softmax    ``s`` = Σ exp(z)            ``s_L`` → s^{(L)}
loss       ``L``                       ``L``
=========  ==========================  =================================

Flat numbering follows worked examples: weights layer by layer, within a
layer by destination neuron, then source neuron.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

from .expr import short

ACTIVATIONS = ("sigmoid", "tanh", "relu", "softplus", "identity")
OUTPUT_ACTIVATIONS = ACTIVATIONS + ("softmax",)
LOSSES = ("mse", "half_sse", "bce", "cross_entropy")
BIASES = ("per_neuron", "shared", "none")
NAMINGS = ("flat", "layered")
NETWORK_KEYS = ("inputs", "layers", "bias", "loss", "naming")
LAYER_KEYS = ("units", "activation")
MAX_UNITS = 4096
MAX_WEIGHTS = 100_000            # the scalar view: one node per weight
MAX_LAYER_WEIGHTS = 1_000_000    # the layer view: one node per matrix
MAX_LAYERS = 1000


def _choice(ctx, node, allowed, what):
    v = node.value
    if not isinstance(v, str) or v not in allowed:
        close = difflib.get_close_matches(str(v), allowed, n=1) if isinstance(v, str) else []
        hint = (f"did you mean {close[0]!r}? " if close else "") + "supported: " + ", ".join(allowed)
        if v == "softmax":
            hint = "softmax is for the output layer only; hidden layers: " + ", ".join(allowed)
        raise ctx.err(f"unknown {what} {short(repr(v), 40)}", node, hint=hint)
    return v


def _units(ctx, node, what):
    n = ctx.number(node, what, integer=True)
    if n < 1:
        raise ctx.err(f"{what} must be at least 1, got {n}", node)
    if n > MAX_UNITS:
        raise ctx.err(f"{what} is too large ({n}, at most {MAX_UNITS})", node)
    return n


@dataclass(frozen=True)
class NetworkSpec:
    """A validated ``network:`` mapping, before any expansion (the layer view never expands it)."""
    inputs: int
    layers: tuple            # ((units, activation), …): hidden layers, then the output layer
    bias: str
    loss: str
    naming: str

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.inputs,) + tuple(u for u, _ in self.layers)

    @property
    def n_weights(self) -> int:
        s = self.sizes
        return sum(a * b for a, b in zip(s, s[1:]))

    @property
    def n_biases(self) -> int:
        if self.bias == "none":
            return 0
        return len(self.layers) if self.bias == "shared" else sum(u for u, _ in self.layers)

    @property
    def n_params(self) -> int:
        return self.n_weights + self.n_biases


def network_spec(ctx, node) -> NetworkSpec:
    """The ``network:`` mapping, validated (sizes up to the layer view's limit)."""
    net = ctx.mapping(node, "`network`")
    ctx.keys(net, NETWORK_KEYS, "`network`")
    if "inputs" not in net:
        raise ctx.err("`network` needs `inputs` (the number of inputs)", node)
    if "layers" not in net:
        raise ctx.err("`network` needs `layers` (hidden layers, then the output layer)", node)
    n_in = _units(ctx, net["inputs"][1], "`inputs`")
    lnode = net["layers"][1]
    if not isinstance(lnode.value, list) or not lnode.value:
        raise ctx.err("`layers` must be a non-empty list of {units, activation}", lnode)
    if len(lnode.value) > MAX_LAYERS:
        raise ctx.err(f"too many layers ({len(lnode.value)}, at most {MAX_LAYERS})", lnode)
    layers = []
    for i, item in enumerate(lnode.value):
        m = ctx.mapping(item, f"layer {i + 1}")
        ctx.keys(m, LAYER_KEYS, f"layer {i + 1}")
        if "units" not in m:
            raise ctx.err(f"layer {i + 1} needs `units`", item)
        units = _units(ctx, m["units"][1], f"`units` of layer {i + 1}")
        last = i == len(lnode.value) - 1
        act = "sigmoid"
        if "activation" in m:
            act = _choice(ctx, m["activation"][1], OUTPUT_ACTIVATIONS if last else ACTIVATIONS,
                          "activation" if last else "hidden-layer activation")
        layers.append((units, act))
    bias = _choice(ctx, net["bias"][1], BIASES, "bias") if "bias" in net else "per_neuron"
    loss = _choice(ctx, net["loss"][1], LOSSES, "loss") if "loss" in net else "mse"
    naming = _choice(ctx, net["naming"][1], NAMINGS, "naming") if "naming" in net else "flat"
    spec = NetworkSpec(n_in, tuple(layers), bias, loss, naming)
    if spec.n_weights > MAX_LAYER_WEIGHTS:
        raise ctx.err(f"the network has more than {MAX_LAYER_WEIGHTS} weights ({spec.n_weights})", node,
                      hint="use fewer or narrower layers")
    return spec


def scalar_limit_error(spec: NetworkSpec) -> str | None:
    """Why the scalar view cannot expand this network (one number per node), or None."""
    if spec.n_weights > MAX_WEIGHTS:
        return (f"the network has more than {MAX_WEIGHTS} weights ({spec.n_weights}) for the scalar view, "
                "one node per number")
    return None


def expand_network(ctx, node):
    return _expand(*dataclasses.astuple(network_spec(ctx, node)))


def _expand(n_in, layers, bias, loss, naming):
    flat = naming == "flat"
    eqs: list[tuple[str, str]] = []
    display: list[tuple[str, str]] = []
    weights: list[str] = []
    biases: list[str] = []
    layer_nodes: list[tuple[str, ...]] = []
    prev = [f"x{k}" for k in range(1, n_in + 1)]
    counters = {"w": 0, "b": 0, "z": 0, "h": 0}
    n_layers = len(layers)

    def fresh(kind):
        counters[kind] += 1
        return f"{kind}{counters[kind]}"

    for li, (units, act) in enumerate(layers, start=1):
        last = li == n_layers
        nodes: list[str] = []
        shared_b = None
        if bias == "shared":
            shared_b = fresh("b") if flat else f"b_{li}"
            if not flat:
                display.append((shared_b, f"b^{{({li})}}"))
            biases.append(shared_b)
        zs, outs = [], []
        for j in range(1, units + 1):
            terms = []
            for k, src in enumerate(prev, start=1):
                w = fresh("w") if flat else f"w_{li}_{j}_{k}"
                if not flat:
                    sep = "," if max(j, k) > 9 else ""
                    display.append((w, f"w^{{({li})}}_{{{j}{sep}{k}}}"))
                weights.append(w)
                terms.append(f"{w}*{src}")
            if bias == "per_neuron":
                b = fresh("b") if flat else f"b_{li}_{j}"
                if not flat:
                    display.append((b, f"b^{{({li})}}_{{{j}}}"))
                biases.append(b)
                terms.append(b)
            elif shared_b:
                terms.append(shared_b)
            z = fresh("z") if flat else f"z_{li}_{j}"
            if not flat:
                display.append((z, f"z^{{({li})}}_{{{j}}}"))
            a = (f"o{j}" if last else fresh("h")) if flat else f"a_{li}_{j}"
            if not flat:
                display.append((a, f"a^{{({li})}}_{{{j}}}"))
            zs.append((z, " + ".join(terms)))
            outs.append(a)
        if act == "softmax":
            s = "s" if flat else f"s_{li}"
            if not flat:
                display.append((s, f"s^{{({li})}}"))
            for z, text in zs:
                eqs.append((z, text))
                nodes.append(z)
            eqs.append((s, " + ".join(f"exp({z})" for z, _ in zs)))
            nodes.append(s)
            for (z, _), a in zip(zs, outs):
                eqs.append((a, f"exp({z})/{s}"))
                nodes.append(a)
        else:
            for (z, text), a in zip(zs, outs):
                eqs.append((z, text))
                eqs.append((a, z if act == "identity" else f"{act}({z})"))
                nodes += [z, a]
        layer_nodes.append(tuple(nodes))
        prev = outs

    m = len(prev)
    ys = [f"y{j}" for j in range(1, m + 1)]
    mean = "" if m == 1 else f"1/{m}*"
    if loss == "mse":
        body = " + ".join(f"({y} - {o})**2" for y, o in zip(ys, prev))
        text = f"{mean}({body})" if m > 1 else body
    elif loss == "half_sse":
        text = " + ".join(f"1/2*({y} - {o})**2" for y, o in zip(ys, prev))
    elif loss == "bce":
        body = " + ".join(f"{y}*log({o}) + (1 - {y})*log(1 - {o})" for y, o in zip(ys, prev))
        text = f"-{mean}({body})"
    else:  # cross_entropy
        text = "-(" + " + ".join(f"{y}*log({o})" for y, o in zip(ys, prev)) + ")"
    eqs.append(("L", text))
    layer_nodes.append(("L",))
    return eqs, weights + biases, display, layer_nodes
