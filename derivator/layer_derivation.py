"""Layer derivations: a layer graph and a target -> ordered, checked steps with vectors and matrices.

Takes a ``LayerGraph`` (``layer_graph.py``) and a target — a leaf or node (``W1``, ``z1``) or one
entry of a leaf (``w5``, ``W1_2_3``); gives a frozen ``LayerDerivation``, whose steps are data:

1. the forward pass: each node between the output and the target, with its shape;
2. the paths over tensor nodes (exact count, the first few listed);
3. for each edge child -> parent, the vector-Jacobian product through the child's equation, by the
   rules of ``vjp.py`` (each rule checked by unrolling it into scalars, each elementwise partial by
   the scalar check);
4. reverse accumulation, δ_node = Σ over children of their VJPs, output first;
5. lemmas: where an explicit δ (the loss's) meets the next δ elementwise and the denominators
   cancel — softmax + cross-entropy gives δ = p (1ᵀy) − y, sigmoid + binary cross-entropy
   δ = (a − y)/m — derived by substituting and cancelling, and checked;
6. the recursion written through the layers, δ⁽ˡ⁾ = ((W⁽ˡ⁺¹⁾)ᵀ δ⁽ˡ⁺¹⁾) ⊙ σ′(z⁽ˡ⁾) (BP2);
7. the result, ∂L/∂W⁽ˡ⁾ = δ⁽ˡ⁾ (a⁽ˡ⁻¹⁾)ᵀ, ∂L/∂b⁽ˡ⁾ = δ⁽ˡ⁾ (BP3, BP4), checked against the scalar view
   (small definitions) and against forward-mode tangents at high-precision points (any size);
8. the batch form for N samples, ∂L̄/∂W = (1/N) Δ Aᵀ, and, with ``at``, the numbers.

Contributions and δ's are computed once per graph in a ``LayerWorkspace`` and shared by every
derivation of it. Everything is linear in the number of tensor nodes; nothing is unrolled into
scalars except at the small sizes of the checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from .check import Check
from .derivation import Document
from .errors import UsageError
from .layer_graph import LayerGraph, point
from .paths import Cone, cone, first_paths
from .tensor import ONE, Map, Outer, Softmax, Sum, T, Var, evaluate, names, ph, shape_text, substitute, to_str
from .vjp import RULES, RuleUse, sadd, simplify, sindex, vjp, zeros  # noqa: F401 (RULES re-exported)

MAX_PATHS = 16


@dataclass(frozen=True)
class Forward:
    name: str
    expr: T
    shape: tuple
    text: str


@dataclass(frozen=True)
class Contribution:
    """The VJP through ``child``'s equation to ``parent``: its share of δ_parent, in terms of δ_child."""
    child: str
    parent: str
    expr: T
    uses: tuple[RuleUse, ...]


@dataclass(frozen=True)
class Accumulation:
    """δ_node = Σ over children c of their contributions (the output's δ is 1)."""
    node: str
    children: tuple[str, ...]
    expr: T


@dataclass(frozen=True)
class Lemma:
    """δ_node with an explicit δ_child substituted, then cancelled elementwise."""
    node: str
    child: str
    name: str
    statement: str          # LaTeX of the textbook form
    substituted: T          # δ_node with δ_child's expression in place of the symbol
    result: T               # after fusing and cancelling
    note: str
    check: Check


@dataclass(frozen=True)
class Recursion:
    """δ_node written through the δ's of the next layer (pass-through adjoints substituted): BP2."""
    node: str
    expr: T
    through: tuple[str, ...]


@dataclass(frozen=True)
class Batch:
    """The result's mean over a batch of N samples, as matrix products over the batch."""
    text: str
    latex: str
    check: Check


@dataclass(frozen=True)
class RuleCheck:
    key: str
    name: str
    shapes: tuple
    check: Check

    def as_dict(self) -> dict:
        return {"rule": self.name, "shapes": [list(s) for s in self.shapes], **self.check.as_dict()}


@dataclass(frozen=True)
class LayerDerivation(Document):
    graph: LayerGraph
    output: str
    wrt: str                         # as asked: a layer name, or a scalar entry name (w5)
    target: str                      # the tensor: W2 for w5
    index: tuple | None              # the entry (0-based) for a scalar entry, else None
    cone: Cone
    paths: tuple
    forward: tuple[Forward, ...]
    contributions: tuple[Contribution, ...]
    accumulation: tuple[Accumulation, ...]
    lemmas: tuple[Lemma, ...]
    recursion: tuple[Recursion, ...]
    result: T                        # ∂output/∂target (δ_target), in δ's and values
    entry: T | None                  # the entry's result, for a scalar entry
    batch: Batch | None
    check: Check
    rule_checks: tuple[RuleCheck, ...]
    value: Any = field(default=None, compare=False)          # the result at `at` (float64), or None
    numbers: Any = field(default=None, compare=False)        # name or delta_name -> value at `at`
    title: str | None = None
    at: tuple = ()
    lr: float | None = None
    max_paths: int = MAX_PATHS

    view = "layer"

    @property
    def shape(self) -> tuple:
        return () if self.index is not None else self.graph.shapes[self.target]

    @property
    def final(self) -> T:
        return self.entry if self.entry is not None else self.result

    @property
    def path_count(self) -> int:
        return self.cone.count

    @property
    def verified(self) -> bool:
        return self.check.passed and all(r.check.passed for r in self.rule_checks) and \
            all(lm.check.passed for lm in self.lemmas) and (self.batch is None or self.batch.check.passed)

    @property
    def failures(self) -> tuple[str, ...]:
        out = [f"rule {r.name} for {', '.join(shape_text(s) for s in r.shapes)}: {r.check.detail}"
               for r in self.rule_checks if not r.check.passed]
        out += [f"lemma for δ_{lm.node}: {lm.check.detail}" for lm in self.lemmas if not lm.check.passed]
        if self.batch is not None and not self.batch.check.passed:
            out.append(f"batch form: {self.batch.check.detail}")
        if not self.check.passed:
            out.append(f"∂{self.output}/∂{self.wrt}: {self.check.detail}")
        return tuple(out)

    def to_json(self) -> dict:
        return derivation_json(self)

    def __repr__(self) -> str:
        status = "verified" if self.verified else "NOT verified"
        return (f"<LayerDerivation ∂{self.output}/∂{self.wrt} {shape_text(self.shape)} = {to_str(self.final)[:200]}; "
                f"{self.path_count} path(s); {status}>")


# ------------------------------------------------------------ workspace ---

class LayerWorkspace:
    """The VJPs, δ's and lemmas of one layer graph, each made and checked once."""

    def __init__(self, lg: LayerGraph, definition=None):
        self.lg = lg
        self.definition = definition
        self.at = definition.at_dict if definition is not None else {}
        self._contrib: dict = {}
        self._delta: dict = {}
        self._lemma: dict = {}
        self._claim: dict = {}
        self._live = set(lg.structure.ancestors(lg.output))
        self._checker = None
        self._point = None

    @property
    def point(self) -> tuple[dict, list]:
        """The definition's `at` gathered into the layer leaves (values, leaves without one), once."""
        if self._point is None:
            self._point = point(self.lg, self.at)
        return self._point

    @property
    def checker(self):
        if self._checker is None:
            from .layer_check import Checker
            self._checker = Checker(self)
        return self._checker

    def g(self, child: str) -> T:
        """The adjoint symbol of a node; the output's adjoint is 1."""
        if child == self.lg.output:
            return ONE
        return Var(child, self.lg.shapes[child], adjoint=True)

    def contribution(self, child: str, parent: str) -> Contribution:
        key = (child, parent)
        c = self._contrib.get(key)
        if c is None:
            node = self.lg.node(child)
            expr, uses = backprop(node.expr, self.g(child), parent, Var(child, self.lg.shapes[child]),
                                  self.lg.shapes[parent])
            c = self._contrib[key] = Contribution(child, parent, expr, uses)
        return c

    def children(self, name: str) -> tuple[str, ...]:
        return tuple(c for c in self.lg.structure.children[name] if c in self._live)

    def accumulation(self, name: str) -> Accumulation:
        a = self._delta.get(name)
        if a is None:
            if name == self.lg.output:
                a = Accumulation(name, (), ONE)
            elif name not in self._live:
                a = Accumulation(name, (), zeros(self.lg.shapes[name]))
            else:
                kids = self.children(name)
                a = Accumulation(name, kids, sadd(*[self.contribution(c, name).expr for c in kids]))
            self._delta[name] = a
        return a

    def lemma(self, name: str) -> Lemma | None:
        if name not in self._lemma:
            self._lemma[name] = _lemma(self, name)
        return self._lemma[name]

    def claim(self, name: str) -> T:
        """δ_name as the derivation states it: the lemma's form where there is one."""
        c = self._claim.get(name)
        if c is None:
            lm = self.lemma(name)
            c = self._claim[name] = lm.result if lm is not None else self.accumulation(name).expr
        return c

    def explicit(self, name: str) -> bool:
        """True when δ_name's claim uses no other δ (the loss's δ, or one made explicit by a lemma)."""
        return not names(self.claim(name), adjoint=True)


def backprop(expr: T, g: T, target: str, value: Var, target_shape) -> tuple[T, tuple[RuleUse, ...]]:
    """The VJP of ``g`` through ``expr`` to every occurrence of ``target``, and the rules used."""
    uses: list[RuleUse] = []
    total: list[T] = []

    def go(e, gg, root):
        if isinstance(e, Var):
            if e.name == target and not e.adjoint:
                total.append(gg)
            return
        for i, part in enumerate(e.parts):
            if target in names(part):
                share, use = vjp(e, i, gg, value if root else None)
                uses.append(use)
                go(part, share, False)
    go(expr, g, True)
    return (sadd(*total) if total else zeros(target_shape)), tuple(uses)


# --------------------------------------------------------------- lemmas ---

def _has_tensor_division(t: T) -> bool:
    """True when a map divides by an expression of its tensor operands (y ⊘ p, 1 ⊘ (1 − a))."""
    if not isinstance(t, Map):
        return False
    tensor = {ph(i) for i, a in enumerate(t.args) if a.shape}
    return any(p.is_Pow and p.exp.is_negative and p.base.free_symbols & tensor for p in sp.preorder_traversal(t.f))


def _lemma(ws: LayerWorkspace, name: str) -> Lemma | None:
    """Substitute an explicit δ_child with a tensor division into δ_name; keep it if the division cancels."""
    if name == ws.lg.output or name not in ws._live:
        return None
    acc = ws.accumulation(name)
    if len(acc.children) != 1:
        return None
    child = acc.children[0]
    if child == ws.lg.output or not ws.explicit(child):
        return None
    e_child = ws.claim(child)
    if not _has_tensor_division(e_child):
        return None
    sym = Var(child, ws.lg.shapes[child], adjoint=True)
    substituted = substitute(acc.expr, {sym: e_child})
    fused = simplify(substituted)
    if names(fused, adjoint=True) or _has_tensor_division(fused):
        return None
    kind, statement, note = _name_lemma(ws, name, child, fused)
    from .layer_check import check_identity
    check = check_identity(substituted, fused)
    return Lemma(name, child, kind, statement, substituted, fused, note, check)


def _name_lemma(ws: LayerWorkspace, name: str, child: str, fused: T) -> tuple[str, str, str]:
    """The textbook name of a cancellation, where it is one of the two every course states."""
    node = ws.lg.node(child)
    own = Var(child, ws.lg.shapes[child])
    from .tensor import walk
    maps = [m for m in walk(fused) if isinstance(m, Map) and own in m.args]
    if len(maps) != 1:
        return ("elementwise cancellation", "", "The denominators of the explicit δ cancel elementwise.")
    fused = maps[0]
    P, S, Y = sp.symbols("P S Y")
    if isinstance(node.expr, Softmax) and len(fused.args) == 3:
        sums = [a for a in fused.args if isinstance(a, Sum) and isinstance(a.a, Var)]
        if len(sums) == 1 and sums[0].a in fused.args:
            y = sums[0].a
            f = fused.f.xreplace({ph(fused.args.index(own)): P, ph(fused.args.index(sums[0])): S,
                                  ph(fused.args.index(y)): Y})
            if sp.expand(f - (P * S - Y)) == 0:
                note = (f"1ᵀ{y.name} = sum({y.name}) is the total of the targets: when they sum to 1 "
                        f"(one-hot labels, or probabilities), δ = {child} − {y.name}.")
                return ("softmax and cross-entropy", r"\delta = p\,(\mathbf{1}^{\top} y) - y", note)
    if isinstance(node.expr, Map) and type(node.expr.f).__name__ == "sigmoid" and len(fused.args) == 2:
        y = fused.args[1 - fused.args.index(own)]
        f = fused.f.xreplace({ph(fused.args.index(own)): P, ph(fused.args.index(y)): Y})
        ratio = sp.cancel(f / (P - Y))
        if ratio.is_number and ratio.is_positive:
            note = (f"σ′ = a(1 − a) cancels the denominators a and 1 − a of the loss's derivative; "
                    f"here m = {sp.sstr(1 / ratio)}.")
            return ("sigmoid and binary cross-entropy", r"\delta = \frac{a - y}{m}", note)
    return ("elementwise cancellation", "", "The denominators of the explicit δ cancel elementwise.")


# ------------------------------------------------------------ recursion ---

def _recursion(ws: LayerWorkspace, name: str) -> Recursion | None:
    """δ_name with the δ's of pass-through nodes (one child, a structural δ such as Wᵀδ) substituted."""
    expr = ws.claim(name)
    through = []
    for _ in range(len(ws.lg.nodes)):
        sub = {}
        for n in names(expr, adjoint=True):
            if n == ws.lg.output or ws.lemma(n) is not None:
                continue
            claim = ws.claim(n)
            if len(ws.children(n)) == 1 and not isinstance(claim, Map) and names(claim, adjoint=True):
                sub[Var(n, ws.lg.shapes[n], adjoint=True)] = claim
                through.append(n)
        if not sub:
            break
        expr = substitute(expr, sub)
    if not through:
        return None
    return Recursion(name, expr, tuple(through))


# ----------------------------------------------------------------- batch ---

def _batch(ws: LayerWorkspace, result: T, target: str) -> tuple[str, str] | None:
    """The mean over N samples of a per-sample gradient, as matrix products over the batch."""
    lg = ws.lg
    if not lg.is_leaf(target) or ws.definition is None or ws.definition.network is None:
        return None       # a network's samples are (x, y); a `shapes` definition does not say which leaves are data
    up = lambda n: n[0].upper() + n[1:]   # noqa: E731  the batch matrix of a vector: columns are samples
    disp = lg.display

    def tex(v: Var, batch: bool) -> str:
        from .tensor import to_latex
        s = to_latex(v, disp)
        if not batch:
            return s
        if v.adjoint:
            return r"\Delta" + (s[len(r"\delta"):] if s.startswith(r"\delta") else "_{" + s + "}")
        return s[0].upper() + s[1:] if s[:1].isalpha() else s

    if isinstance(result, Outer) and isinstance(result.a, Var) and isinstance(result.b, Var):
        a, b = result.a, result.b
        text = f"1/N * {'D_' + a.name if a.adjoint else up(a.name)} @ transpose({'D_' + b.name if b.adjoint else up(b.name)})"
        from .tensor import name_sup
        return text, r"\frac{1}{N}\, " + tex(a, True) + " " + name_sup(tex(b, True))
    if isinstance(result, Var) and result.adjoint and len(result.shape) == 1:
        return f"1/N * D_{result.name} @ ones(N)", r"\frac{1}{N}\, " + tex(result, True) + r"\,\mathbf{1}_N"
    if isinstance(result, Sum) and isinstance(result.a, Var) and result.a.adjoint:
        return (f"1/N * sum(D_{result.a.name})",
                r"\frac{1}{N}\, \mathbf{1}^{\top} " + tex(result.a, True) + r"\,\mathbf{1}_N")
    return None


# ------------------------------------------------------------ derivation ---

def resolve(lg: LayerGraph, wrt: str) -> tuple[str, tuple | None]:
    """(tensor, entry index or None) for a name of the layer view: a layer name wins over a scalar entry."""
    if wrt in lg.shapes:
        return wrt, None
    e = lg.naming.entry_of(wrt) if lg.naming else None
    if e is not None:
        return e[0], tuple(e[1]) if e[1] else None
    import difflib
    close = difflib.get_close_matches(wrt, list(lg.shapes), n=1)
    raise UsageError(f"{wrt!r} is not a name in the layer view", source=lg.source,
                     hint=f"did you mean {close[0]!r}?" if close else "names: " + ", ".join(list(lg.shapes)[:20]))


def derive(ws: LayerWorkspace, wrt: str, *, max_paths: int = MAX_PATHS, title=None, lr=None) -> LayerDerivation:
    lg = ws.lg
    target, index = resolve(lg, wrt)
    if target == lg.output:
        raise UsageError(f"{wrt!r} is the output itself", source=lg.source)
    cn = cone(lg.structure, target)
    shown = first_paths(lg.structure, target, max_paths + 1) if cn.count else ()
    on = set(cn.nodes)
    forward = tuple(Forward(n.name, n.expr, lg.shapes[n.name], n.text) for n in lg.nodes if n.name in on)
    contributions = tuple(ws.contribution(c, p) for c, p in cn.edges)
    accumulation = tuple(ws.accumulation(n) for n in reversed(cn.nodes))
    lemmas = tuple(lm for n in cn.nodes[::-1] if (lm := ws.lemma(n)) is not None)
    recursion = tuple(r for n in cn.nodes[::-1] if n not in (lg.output, target) and not lg.is_leaf(n)
                      and (r := _recursion(ws, n)) is not None)
    result = ws.accumulation(target).expr if cn.count else zeros(lg.shapes[target])
    entry = sindex(result, index) if index is not None else None
    uses = [u for c in contributions for u in c.uses]
    checker = ws.checker
    rule_checks = checker.rules(uses)
    final = entry if entry is not None else result
    result_check = checker.result(target, index, final)
    batch = None
    b = _batch(ws, result, target) if index is None else None
    if b is not None:
        batch = Batch(b[0], b[1], checker.batch(target, result))
    value, numbers = None, None
    values, missing = ws.point
    if not missing and cn.count:
        numbers = evaluate_claims(ws, values, [n for n in cn.nodes])
        value = evaluate(final, numbers_env(numbers, lg))
    elif not missing:
        value = np.zeros(lg.shapes[target] if index is None else ())
    return LayerDerivation(graph=lg, output=lg.output, wrt=wrt, target=target, index=index, cone=cn,
                           paths=tuple(shown[:max_paths]), forward=forward, contributions=contributions,
                           accumulation=accumulation, lemmas=lemmas, recursion=recursion, result=result,
                           entry=entry, batch=batch, check=result_check, rule_checks=rule_checks, value=value,
                           numbers=numbers, title=title, at=tuple(ws.at.items()), lr=lr, max_paths=max_paths)


def forward_values(lg: LayerGraph, leaves: dict) -> dict:
    """Every leaf and node in float64 (NumPy), by name."""
    values = dict(leaves)
    cache: dict = {}
    for n in lg.nodes:
        values[n.name] = evaluate(n.expr, values, cache)
    return values


def evaluate_claims(ws: LayerWorkspace, leaves: dict, nodes) -> dict:
    """Forward values by name and the claimed δ's as ``delta_NAME`` for ``nodes`` (and what they use)."""
    lg = ws.lg
    out = forward_values(lg, leaves)
    env = numbers_env(out, lg)
    wanted = set(nodes)
    order = [n.name for n in lg.nodes if n.name in wanted]
    for n in reversed(order):
        key = "delta_" + n
        if key not in out:
            out[key] = np.asarray(evaluate(ws.claim(n), env, {}), dtype=float)
            env[Var(n, lg.shapes[n], adjoint=True)] = out[key]
    return out


def numbers_env(numbers: dict, lg: LayerGraph) -> dict:
    env = {}
    for k, v in numbers.items():
        if k.startswith("delta_"):
            n = k[len("delta_"):]
            env[Var(n, lg.shapes[n], adjoint=True)] = v
        else:
            env[k] = v
    return env


# ----------------------------------------------------------------- JSON ---

def _nested(v):
    """A value as JSON: nested lists, an entry that is not finite (outside a function's domain) null."""
    v = np.asarray(v, dtype=float)
    if not np.isfinite(v).all():
        return np.where(np.isfinite(v), v, None).tolist() if v.shape else None
    return v.tolist() if v.shape else float(v)


def derivation_json(d: LayerDerivation) -> dict:
    from itertools import islice

    from .paths import iter_paths
    from .tensor import shape_latex, to_latex
    lg = d.graph
    disp = lg.display
    paths = [list(p) + ([d.wrt] if d.index is not None else []) for p in
             islice(iter_paths(lg.structure, d.target), 1000)] if d.path_count else []
    small = lambda name: d.numbers is not None and name in d.numbers and np.size(d.numbers[name]) <= 64  # noqa: E731
    steps: list[dict] = []
    for f in d.forward:
        s = {"kind": "forward", "name": f.name, "expression": to_str(f.expr), "shape": list(f.shape),
             "latex": to_latex(f.expr, disp), "space": shape_latex(f.shape)}
        if small(f.name):
            s["value"] = _nested(d.numbers[f.name])
        steps.append(s)
    steps.append({"kind": "paths", "count": d.path_count,
                  "shown": [list(p) + ([d.wrt] if d.index is not None else []) for p in d.paths]})
    for c in d.contributions:
        steps.append({"kind": "vjp", "of": c.child, "wrt": c.parent, "expression": to_str(c.expr),
                      "latex": to_latex(c.expr, disp),
                      "rules": [{"name": u.rule.name, "formula": u.rule.formula,
                                 **({"scalar_rules": list(u.scalar_rules)} if u.scalar_rules else {})}
                                for u in c.uses]})
    for a in d.accumulation:
        s = {"kind": "accumulate", "node": a.node, "children": list(a.children), "shape": list(lg.shapes[a.node]),
             "expression": to_str(a.expr), "latex": to_latex(a.expr, disp)}
        if small("delta_" + a.node):
            s["value"] = _nested(d.numbers["delta_" + a.node])
        steps.append(s)
    for lm in d.lemmas:
        steps.append({"kind": "lemma", "node": lm.node, "of": lm.child, "name": lm.name, "statement": lm.statement,
                      "substituted": to_str(lm.substituted), "expression": to_str(lm.result),
                      "latex": to_latex(lm.result, disp), "note": lm.note, "check": lm.check.as_dict()})
    for r in d.recursion:
        steps.append({"kind": "recursion", "node": r.node, "through": list(r.through), "expression": to_str(r.expr),
                      "latex": to_latex(r.expr, disp)})
    if d.batch is not None:
        steps.append({"kind": "batch", "expression": d.batch.text, "latex": d.batch.latex,
                      "check": d.batch.check.as_dict()})
    if d.entry is not None:      # ∂L/∂W2 first, then its entry w5: the last step states the result
        steps.append({"kind": "tensor", "of": d.target, "expression": to_str(d.result),
                      "latex": to_latex(d.result, disp), "shape": list(lg.shapes[d.target])})
        steps.append({"kind": "result", "of": d.target, "index": list(d.index), "expression": to_str(d.entry),
                      "latex": to_latex(d.entry, disp), "shape": [], "check": d.check.as_dict()})
    else:
        steps.append({"kind": "result", "expression": to_str(d.result), "latex": to_latex(d.result, disp),
                      "shape": list(lg.shapes[d.target]), "check": d.check.as_dict()})
    out = {"output": d.output, "wrt": d.wrt, "view": "layer", "shape": list(d.shape), "path_count": d.path_count,
           "paths": paths, "result": to_str(d.final), "verified": d.verified, "check": d.check.as_dict()}
    if d.value is not None:
        out["value"] = _nested(d.value)
    out["rule_checks"] = [r.as_dict() for r in d.rule_checks]
    out["steps"] = steps
    return out


__all__ = ["LayerDerivation", "LayerWorkspace", "derive", "RULES"]
