"""Layer-level code for network definitions: batch totals through matrix products.

Takes the graph of a network-form definition (``Definition.layers`` names the
nodes of each layer), the checked local partials and the printer of
``numeric``; gives the source of ``_layered_totals(...)``, or None when the
graph is not a plain fully connected network this back-end understands.

It computes the same thing as the scalar code, in the factored form, a layer
at a time: Z_l = W_l A_{l−1} + b_l, A_l = f(Z_l) forward; the output layer
and the loss node by the scalar code of the (stabilised) graph; then
D_l = (W_{l+1}ᵀ D_{l+1}) ⊙ f′(Z_l) backward, with ∂L/∂W_l = D_l A_{l−1}ᵀ and
∂L/∂b_l = Σ D_l — Nielsen's BP1–BP4 as matrix products over the batch.
f′ is the activation's checked local partial, printed once for the layer
(every neuron of a layer has the same shape of partial, or this back-end
declines).
"""
from __future__ import annotations

import sympy as sp

from .expr import symbol
from .functions import sigmoid
from .numeric import _Emitter, _Softmax, adjoint_into, adjoint_sum, total_code

_H, _Z = sp.Symbol("_H_layer", real=True), sp.Symbol("_Z_layer", real=True)
_IN_PLACE = {sigmoid: "_sigmoid_({})", sp.tanh: "numpy.tanh({0}, out={0})"}    # activations computed in place


def _linear(expr, sources: set[str]):
    """({source: weight}, bias) of Σ w·src + b, or None."""
    weights: dict[str, str] = {}
    bias = None
    for term in sp.Add.make_args(expr):
        if term.is_Symbol:
            if bias is not None or term.name in sources:
                return None
            bias = term.name
            continue
        if not (term.is_Mul and len(term.args) == 2 and all(a.is_Symbol for a in term.args)):
            return None
        a, b = (x.name for x in term.args)
        if a in sources and b not in sources:
            a, b = b, a
        elif not (b in sources and a not in sources):
            return None
        if b in weights:
            return None
        weights[b] = a
    return weights, bias


def layered_source(graph, layers, wrt, partial, pr, names: dict, pedge: dict, relevant):
    """(source of ``_layered_totals``, its parameter names), or None where this back-end does not apply.

    ``pedge`` holds the scalar code's partials (node expressions read from the nodes' values),
    ``relevant`` the nodes the output depends on: the output layer and the loss are computed
    from those only, with no term for a node the loss does not read."""
    if len(layers) < 2 or layers[-1] != (graph.output,):
        return None
    leaves = set(graph.leaves)
    inputs = sorted((x for x in graph.leaves if x.startswith("x") and x[1:].isdigit()), key=lambda x: int(x[1:]))
    if not inputs:
        return None
    prev = inputs
    plan = []                     # per layer: (zs, acts, W names, bias names, activation partial)
    for li, layer in enumerate(layers[:-1]):
        last = li == len(layers) - 2
        node_set = set(layer)
        sources = set(prev)
        zs, W, B = [], [], []
        for name in layer:
            parsed = _linear(graph.node(name).expr, sources)
            if parsed is None or set(parsed[0]) != sources or not set(parsed[0].values()) <= leaves:
                continue
            zs.append(name)
            W.append([parsed[0][src] for src in prev])
            B.append(parsed[1])
        if not zs or (B[0] is not None and B[0] not in leaves):
            return None
        acts, dact = [], None
        if not last:
            for z in zs:
                users = [c for c in graph.children[z] if c in node_set]
                if len(users) != 1:
                    return None
                a = users[0]
                lp = partial(a, z)
                canon = lp.expr.xreplace({symbol(a): _H, symbol(z): _Z})
                if canon.free_symbols - {_H, _Z}:
                    return None
                if dact is None:
                    dact = canon
                elif canon != dact:
                    return None
                acts.append(a)
            if len(acts) != len(set(acts)):
                return None
        plan.append((zs, acts, W, B, dact, list(prev)))
        prev = acts
    # every wrt must be a weight or a bias of the plan: its place in the flat vector of the gradients
    weights = {w for _, _, W, _, _, _ in plan for row in W for w in row}
    biases = {b for _, _, _, B, _, _ in plan for b in B if b}
    where, parts, offset = {}, [], 0
    for li, (zs, acts, W, B, dact, src) in enumerate(plan, start=1):
        parts.append(f"_gW{li}.ravel()")
        for j, row in enumerate(W):
            for k, w in enumerate(row):
                where.setdefault(w, offset + j * len(row) + k)
        offset += len(W) * len(W[0])
        per_neuron = all(b is not None for b in B) and len(set(B)) == len(B)
        shared = all(b is not None for b in B) and len(set(B)) == 1
        if per_neuron:
            parts.append(f"_gB{li}")
            for j, b in enumerate(B):
                where.setdefault(b, offset + j)
            offset += len(B)
        elif shared:
            parts.append(f"_gB{li}.sum(keepdims=True)")
            where.setdefault(B[0], offset)
            offset += 1
        elif any(b is not None for b in B):
            return None
    if any(where.get(w) is None for w in wrt):
        return None
    covered = {x for zs, acts, *_ in plan for x in zs + acts}
    out_zs = plan[-1][0]
    # the nodes after the last matrix product that the totals need: those the output depends on,
    # and those whose values the partials read (a softmax output o_k in ∂_lse/∂z_k)
    keep = {n.name for n in graph.nodes if n.name not in covered and n.name in relevant}
    for (c, p), e in pedge.items():
        if c in keep or p in keep or p in out_zs:
            keep.update(x.name for x in e.free_symbols if x.name in graph.index and x.name not in covered)
    for n in reversed(graph.nodes):
        if n.name in keep:
            keep.update(p for p in n.parents if p in graph.index and p not in covered)
    tail = [n for n in graph.nodes if n.name in keep]

    args = ", ".join(names[x] for x in graph.leaves)
    batch = [x for x in graph.leaves if x not in weights and x not in biases]
    nl = len(plan)
    i1, i2 = "        ", "            "
    lines = [f"def _layered_flat({args}):",
             '    """Batch totals by matrix products a layer at a time (scalar weights, 1-D batches),',
             '    in blocks of CHUNK samples so that the temporaries stay in cache; the gradients as',
             '    one array, in the order of _LAYERED_WRT."""',
             "    with numpy.errstate(over='ignore', divide='ignore'):"]
    lines.append(f"{i1}_shape = _batch_shape({', '.join(names[x] for x in batch)})")
    lines.append(f"{i1}_n = _shape[0]")
    for x in batch:
        lines.append(f"{i1}{names[x]} = _batch({names[x]}, _shape)")
    for li, (zs, acts, W, B, dact, src) in enumerate(plan, start=1):
        rows = ", ".join("[" + ", ".join(names[w] for w in row) + "]" for row in W)
        lines.append(f"{i1}_W{li} = numpy.array([{rows}], dtype=float)")
        lines.append(f"{i1}_gW{li} = numpy.zeros_like(_W{li})")
        lines.append(f"{i1}_gB{li} = numpy.zeros(_W{li}.shape[0])")
        if any(b is not None for b in B):
            bias = ", ".join(names[b] if b else "0.0" for b in B)
            lines.append(f"{i1}_B{li} = numpy.array([{bias}], dtype=float)[:, None]")
    lines.append(f"{i1}_value = 0.0")
    lines.append(f"{i1}for _s in range(0, _n, CHUNK):")
    lines.append(f"{i2}_e = min(_s + CHUNK, _n)")
    lines.append(f"{i2}_A0 = numpy.stack([{', '.join(names[x] + '[_s:_e]' for x in inputs)}])")
    for li, (zs, acts, W, B, dact, src) in enumerate(plan, start=1):
        lines.append(f"{i2}_Z{li} = _W{li} @ _A{li - 1}")
        if any(b is not None for b in B):
            lines.append(f"{i2}_Z{li} += _B{li}")
        if acts:
            act = graph.node(acts[0]).expr.xreplace({symbol(zs[0]): _Z})
            if _Z not in dact.free_symbols and type(act) in _IN_PLACE and act.args[0] == _Z:
                # the pre-activation is read by nothing else: the activation overwrites it
                lines.append(f"{i2}_A{li} = {_IN_PLACE[type(act)].format(f'_Z{li}')}")
            else:
                lines.append(f"{i2}_A{li} = {_print(pr, names, act, li)}")
    lines.append(f"{i2}# the output layer's activations and the loss, as in the scalar code")
    out_rows = {z: j for j, z in enumerate(out_zs)}
    saved = dict(names)
    for x in batch:
        if x not in inputs:
            names[x] = f"{names[x]}[_s:_e]"
    for z in out_zs:
        names[z] = f"_Z{nl}[{out_rows[z]}]"
    em = _Emitter(pr, i2)           # this function's own temporaries, in its own names
    softmax = _Softmax(graph)
    # the loss only for its total (no partial reads it): summed from its terms, no array of it
    read = {x.name for e in pedge.values() for x in e.free_symbols}
    by_terms = graph.output not in read and bool(graph.node(graph.output).expr.free_symbols)
    rows = [names[z] for z in out_zs]
    try:
        for n in tail:
            if n.name == graph.output and by_terms:
                continue
            logits = [names[a.name] if a.is_Symbol else None for a in n.expr.args]
            if n.name in softmax.outputs and logits == rows and any(o in keep for o in softmax.outputs[n.name]):
                em.called.add(n.name)            # the softmax of the whole output layer: matrix operations
                em.line(f"{names[n.name]}, _sm{names[n.name]} = _softmax_rows(_Z{nl})")
            else:
                em.line(softmax.line(em, pr, n, keep))
        if by_terms:
            em.line(f"_value += {total_code(em, pr, graph.node(graph.output).expr, '(_e - _s,)')}")
        adj = {graph.output: None}          # δ_output = 1: not multiplied in
        em.line(f"_D{nl} = numpy.empty_like(_Z{nl})")
        for name in [n.name for n in reversed(tail)] + list(reversed(out_zs)):
            if name == graph.output or name not in relevant:
                continue
            contributions = [(adj[c], pedge[(c, name)]) for c in graph.children[name] if (c, name) in pedge]
            target = f"_D{nl}[{out_rows[name]}]" if name in out_rows else "_a_" + name
            adj[name] = target
            if name in out_rows:
                for line in adjoint_into(pr, contributions, target, em.text):
                    em.line(line)
            else:
                em.line(f"{target} = {adjoint_sum(pr, contributions, em.text)}")
    finally:
        names.clear()
        names.update(saved)
    lines += em.lines
    if not by_terms:
        lines.append(f"{i2}_value += _total({names[graph.output]}, (_e - _s,))")
    for li in range(nl, 0, -1):
        lines.append(f"{i2}_gW{li} += _D{li} @ _A{li - 1}.T")
        lines.append(f"{i2}_gB{li} += _D{li}.sum(axis=1)")
        if li > 1:
            dact = plan[li - 2][4]
            lines.append(f"{i2}_D{li - 1} = _W{li}.T @ _D{li}")
            factors = [f for f in sp.Mul.make_args(dact) if f != 1]
            # 1 − σ last, written over the activations (read by nothing after this): no new array
            last = next((f for f in factors if f == 1 - _H), None)
            if last is not None:
                factors.remove(last)
            for factor in factors:
                lines.append(f"{i2}_D{li - 1} *= {_print(pr, names, factor, li - 1)}")
            if last is not None:
                lines.append(f"{i2}_D{li - 1} *= numpy.subtract(1.0, _A{li - 1}, out=_A{li - 1})")
    lines.append(f"{i1}return _value, numpy.concatenate(({', '.join(parts)},))[_LAYERED_PICK], _n")
    lines = "\n".join(lines) + "\n"
    lines += (f"\n\n_LAYERED_WRT = {tuple(wrt)!r}\n_LAYERED_PICK = numpy.array({[where[w] for w in wrt]!r}, dtype=numpy.intp)"
              f"\n\n\ndef _layered_totals({args}):\n"
              '    """The batch total of the output and of each gradient (a dict), and the batch size."""\n'
              f"    _value, _flat, _n = _layered_flat({args})\n"
              "    return _value, dict(zip(_LAYERED_WRT, _flat.tolist())), _n\n")
    params = sorted(weights | biases)
    return lines, params


def _print(pr, names, expr, layer: int) -> str:
    """Print an expression in _H/_Z with the layer's arrays."""
    saved = dict(names)
    names[_H.name] = f"_A{layer}"
    names[_Z.name] = f"_Z{layer}"
    temps, pr.temps = pr.temps, {}
    try:
        text = pr.text(expr)
    finally:
        pr.temps = temps
        names.clear()
        names.update(saved)
    return text
