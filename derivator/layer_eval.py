"""`eval` in the layer view: values, gradient, adjoints and the update at one point, as nested lists.

Takes a definition with a layer view, its layer workspace, a point (``at`` in scalar names, layer
names given as lists) and a learning rate; gives the dictionary that ``eval --format json`` prints
(SPEC §2.1-2.2): ``values`` of every leaf and node, ``gradient`` for every ``wrt``, ``adjoints`` of
every node and, with a rate, ``updated``, vectors and matrices as nested lists.

The numbers come from the layer view's compiled code (``layer_numeric``): the forward pass (with
log σ and log softmax in their stable forms, so a softmax or sigmoid output at z = ±1000 stays
finite), then each δ as the layer derivation states it (by the checked VJP rules, lemmas included).
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError, VerificationError
from .layer_derivation import resolve
from .layer_graph import point


def _nested(v):
    """Nested lists of floats (JSON numbers); a value that is not finite is None (null)."""
    v = np.asarray(v, dtype=float)
    if np.all(np.isfinite(v)):
        return v.tolist()
    if v.shape:
        return [_nested(x) for x in v]
    return None


def evaluate_point(definition, ws, at: dict, lr: float | None, wrt=None) -> dict:
    lg = ws.lg
    leaves, missing = point(lg, at)
    if missing:
        shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        raise UsageError(f"no value for {shown}", source=definition.source,
                         hint="add them to `at:` in the file (a list for a vector, a list of rows for a matrix), "
                              "or pass --at NAME=VALUE")
    names = list(wrt) if wrt else list(definition.layer_wrt)
    targets = [resolve(lg, n) for n in names]
    uses = [u for n in lg.nodes if n.name in ws._live for p in dict.fromkeys(n.parents)
            for u in ws.contribution(n.name, p).uses]
    bad = [r for r in ws.checker.rules(uses) if not r.check.passed]
    if bad:
        raise VerificationError("a rule of the layer view did not pass its check: " + "; ".join(
            f"{r.name}: {r.check.detail}" for r in bad))
    from .layer_numeric import compile_layer
    grad = compile_layer(ws, [n for n, (target, _) in zip(names, targets) if target != lg.output], definition)
    out = grad(**leaves)          # the compiled code: log σ and log softmax in their stable forms
    gradient = {k: np.asarray(v, dtype=float) for k, v in out.gradient.items()}
    value = float(out.value)
    bad = [n for n, v in [(lg.output, np.asarray(value))] + list(gradient.items()) if not np.all(np.isfinite(v))]
    if bad:
        raise UsageError("the output or its gradient is not finite at this point: " + ", ".join(bad[:8]),
                         source=definition.source,
                         hint="check the inputs: the log of a number <= 0? a division by zero?")
    values = {n: _nested(out.values[n]) for n in list(lg.leaves) + [x.name for x in lg.nodes]}
    adjoints = {x.name: _nested(out.adjoints[x.name]) for x in lg.nodes}
    result = {"output": lg.output, "value": value, "values": values,
              "gradient": {k: _nested(v) for k, v in gradient.items()}, "adjoints": adjoints, "view": "layer"}
    rate = lr if lr is not None else definition.lr
    if rate is not None:
        updated = {}
        for name, (target, index) in zip(names, targets):
            if name not in gradient or not lg.is_leaf(target):
                continue
            old = leaves[target] if index is None else leaves[target][index]
            updated[name] = _nested(old - rate * gradient[name])
        result["updated"] = updated
    return result
