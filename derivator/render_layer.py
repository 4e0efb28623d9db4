"""Render, layer view: layer derivations -> the templates' context, in matrix notation.

Takes one or more ``LayerDerivation`` objects of one definition (``layer_derivation.py``); gives the
dict that ``render.render`` hands to the same templates as the scalar view's (``render.context``):
the same keys, filled with vectors and matrices, and ``view = "layer"`` for the wording. What it holds:

- ``equations``: the forward pass, each node with its space (z⁽¹⁾ = W⁽¹⁾x + b⁽¹⁾ ∈ ℝ⁴), and with
  ``at`` its numbers (the product worked over its matrices where every operand is small);
- ``partials``: one row per edge of the graph, the vector-Jacobian product that sends the δ of a node
  back to its parent (W⁽²⁾ᵀδ⁽²⁾), with the rule that gives it; ``rules``: the rules of ``vjp.py`` used
  (and the scalar rules of the elementwise functions), each with its formula and how it was checked;
- ``deltas``: δ of every node, output side first, each from the δ's above it; where a lemma applies
  (softmax + cross-entropy, sigmoid + binary cross-entropy) its substitution and cancellation, and
  the recursion through a layer (BP2) written out;
- ``groups``: the parameters by the node that uses them (one group per layer of a network), each
  with ∂L/∂W = δ aᵀ, its numbers, the batch form (1/N) Δ Aᵀ, and the gradient-descent step;
- ``checks``: the rules unrolled into scalars, the lemmas, the batch forms and the results;
- ``picture`` (``pictures.py``): neurons in columns, boxes per layer, or the tensor graph.

Numbers come from the derivations' ``numbers`` (float64 at ``at``) and print to ``DIGITS``
significant digits: a vector of up to ``COLUMN`` entries as a column, a longer one as a transposed
row, anything past ``FULL`` rows or columns shortened to its first ``SHOWN`` and last entries with
⋯ and its space beside it. Only the entries shown are formatted, so a 128 × 784 matrix costs as
much as a 4 × 3 one, and the whole document is linear in the number of tensor nodes.
"""
from __future__ import annotations

import re

import numpy as np

from . import pictures
from .layer_derivation import _has_tensor_division
from .printing import Names, _group, break_lines, format_number, visible
from .render import INLINE, LINE_WIDTH, LISTED_NAMES, _levels, _path_tex, chain_rows, principal_rule
from .rules import RULES as SCALAR_RULES
from .tensor import ADJOINT_PREFIX, Index, Var, name_sup, shape_latex, substitute, to_latex, walk

DIGITS = 4          # significant digits of the numbers in vectors and matrices
COLUMN = 4          # vectors of up to this many entries print as columns, longer ones as a transposed row
FULL = 8            # up to this many rows and columns a vector or matrix prints whole …
SHOWN = 3           # … else its first SHOWN rows (columns), ⋯, and its last
WORKED = 5          # an expression is worked over its numbers when no operand has more rows or columns
WIDE = 72           # a matrix wider than this (characters, as ``width`` counts them) is shortened

_IVERSON = re.compile(r"\[[^\[\]]*(>|<|\\ge|\\le)[^\[\]]*\]")
_MINOR_RULES = ("sum rule", "identity", "constant multiple rule", "chain rule")
_ELEMENTWISE = ("map", "hadamard", "broadcast")


# ------------------------------------------------------------- numbers ---

def _finite(v):
    if v is None:
        return None
    v = np.asarray(v, dtype=float)
    return v if np.all(np.isfinite(v)) else None


def _pick(n: int) -> tuple[list, bool]:
    if n <= FULL:
        return list(range(n)), False
    return list(range(SHOWN)) + [None, n - 1], True


def _bmatrix(rows: list[list[str]]) -> str:
    return r"\begin{bmatrix} " + r" \\ ".join(" & ".join(r) for r in rows) + r" \end{bmatrix}"


def number(x) -> str:
    return format_number(float(x), DIGITS)


def tensor_tex(v, column: bool = False, short: bool = False) -> tuple[str, bool]:
    """A value as LaTeX — a number, a column, a transposed row, a bmatrix — and whether it is shortened
    (``column``: a short vector as a column whatever its length, for a product worked over numbers;
    ``short``: its columns shortened even where they would fit, like those of its neighbours)."""
    v = np.asarray(v, dtype=float)
    if v.ndim == 0:
        return number(v), False
    if v.ndim == 1:
        if v.shape[0] <= COLUMN or (column and v.shape[0] <= FULL):
            return _bmatrix([[number(x)] for x in v]), False
        m, short = _grid(v.reshape(1, -1), short)
        return m + r"^{\top}", short
    return _grid(v, short)


def _grid(v: np.ndarray, short: bool = False) -> tuple[str, bool]:
    """A matrix (or a row) whole, or its first and last rows and columns: never wider than ``WIDE``."""
    rows, short_r = _pick(v.shape[0])
    cols, short_c = _pick(v.shape[1])

    def make(cols):
        out = []
        for i in rows:
            if i is None:
                out.append([r"\vdots" if j is not None else r"\ddots" for j in cols])
            else:
                out.append([number(v[i, j]) if j is not None else r"\cdots" for j in cols])
        return _bmatrix(out)
    m = make(cols)
    if not short_c and len(cols) > SHOWN + 2 and (short or width(m) > WIDE):     # long numbers: fewer columns
        m, short_c = make(list(range(SHOWN)) + [None, v.shape[1] - 1]), True
    return m, short_r or short_c


def value_tex(v) -> str | None:
    """A value for the end of a chain of equalities: shortened ones say their space."""
    v = _finite(v)
    if v is None:
        return None
    s, short = tensor_tex(v)
    return s + (r" \in " + shape_latex(v.shape) if short else "")


_BMATRIX = re.compile(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}")


def width(s: str) -> int:
    """About the printed width of LaTeX text, a bmatrix as wide as its widest row."""
    def one(m):
        rows = m.group(1).split(r"\\")
        w = max(sum(visible(c) for c in r.split("&")) + 2 * r.count("&") for r in rows) + 2
        return "x" * w
    return visible(_BMATRIX.sub(one, s))


def _factor(s: str) -> str:
    """A number as a factor: (-0.5), not -0.5."""
    return "(" + s + ")" if s.startswith("-") else s


def chain(sides: list[list[str]], room: int) -> list[str]:
    """The sides of ``lhs = s1 = s2 = …`` as rows (``render.chain_rows``, a matrix as wide as its widest row)."""
    return chain_rows(sides, room, measure=width)


def split_terms(s: str, room: int) -> list[str]:
    """A long formula as pieces at its top-level + and − (each after the first with its sign)."""
    if width(s) <= room:
        return [s]
    out, depth, start, i = [], 0, 0, 0
    while i < len(s):
        ch = s[i]
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif depth == 0 and s.startswith((" + ", " - "), i) and i > start:
            out.append(s[start:i])
            start = i
            i += 3
            continue
        i += 1
    out.append(s[start:])
    return out


# ------------------------------------------------------------- the document ---

class _LayerDoc:
    """What every part of one layer document needs: the graph, names, numbers, edges, δ's."""

    def __init__(self, derivations, fmt: str):
        first = derivations[0]
        self.ders = derivations
        self.lg = lg = first.graph
        self.g = lg.structure
        self.output = first.output
        self.width = LINE_WIDTH[fmt]
        self.net = lg.naming.net if lg.naming is not None else None
        self.names = Names(lg.names, dict(lg.display))
        self.disp: dict[str, str] = {}
        for n in lg.names:
            self.disp[n] = self.names.tex(n)
            self.disp[ADJOINT_PREFIX + n] = lg.display.get(ADJOINT_PREFIX + n) or r"\delta_{" + self.names.tex(n) + "}"
        self.at = dict(first.at)
        self.lr = first.lr
        self.numbers: dict = {}
        for d in derivations:
            if d.numbers is not None:
                self.numbers.update(d.numbers)
        self.has_numbers = bool(self.numbers) and all(d.numbers is not None or not d.path_count for d in derivations)
        self.contrib: dict = {}
        self.acc: dict = {}
        self.lemmas: dict = {}
        self.recursions: dict = {}
        self.on: set[str] = set()
        for d in derivations:
            for c in d.contributions:
                self.contrib.setdefault((c.child, c.parent), c)
            for a in d.accumulation:
                self.acc.setdefault(a.node, a)
            for lm in d.lemmas:
                self.lemmas.setdefault(lm.node, lm)
            for r in d.recursion:
                self.recursions.setdefault(r.node, r)
            self.on.update(d.cone.nodes)
        self.level = _levels(self.g)
        self.pos = {x: i for i, x in enumerate(lg.names)}
        self.depth = len(self.net.layers) if self.net is not None else 0
        self._tex: dict = {}

    # -- names and formulas ----------------------------------------------
    def tex(self, t) -> str:
        got = self._tex.get(t)
        if got is None:
            got = self._tex[t] = to_latex(t, self.disp)
        return got

    def delta(self, name: str) -> str:
        return self.disp[ADJOINT_PREFIX + name]

    def frac(self, name: str) -> str:
        return r"\frac{\partial " + self.names.tex(self.output) + r"}{\partial " + self.names.tex(name) + "}"

    def layer(self, name: str) -> str | None:
        """Network: a node's layer, ``output``, ``hidden <l>`` or ``loss``; else None."""
        if self.net is None:
            return None
        if name == self.output:
            return "loss"
        m = re.fullmatch(r"[za]([0-9]+)", name)
        if not m:
            return None
        n = int(m.group(1))
        return "output" if n == self.depth else f"hidden {n}"

    # -- numbers -----------------------------------------------------------
    def value(self, key: str):
        """The value of a name (or ``delta_NAME``) at the point, or None (no point, or not finite)."""
        if not self.has_numbers:
            return None
        return _finite(self.numbers.get(key))

    def worked(self, t) -> str | None:
        """``t`` with its names replaced by their numbers, where every operand is small and known."""
        if not self.has_numbers:
            return None
        disp = {}
        entries = {x: Var(f"entry{i}", ()) for i, x in enumerate(y for y in walk(t)
                                                                 if isinstance(y, Index) and isinstance(y.a, Var))}
        for x, v in entries.items():               # δ⁽²⁾₁ a⁽¹⁾₁ over the entries' numbers, not the vectors'
            value = self.value(ADJOINT_PREFIX + x.a.name if x.a.adjoint else x.a.name)
            if value is None:
                return None
            s = number(value[x.index])
            disp[v.name] = "(" + s + ")" if s.startswith("-") else s
        t = substitute(t, entries) if entries else t
        for x in walk(t):
            if not isinstance(x, Var) or x.name in disp:
                continue
            if any(n > WORKED for n in x.shape):
                return None
            key = ADJOINT_PREFIX + x.name if x.adjoint else x.name
            v = self.value(key)
            if v is None:
                return None
            s, _ = tensor_tex(v, column=True)
            disp[key] = ("(" + s + ")") if not v.shape and s.startswith("-") else s
        if not disp or any(_has_tensor_division(x) for x in walk(t)):
            return None                 # y ⊘ p over matrices reads worse than its value
        out = to_latex(t, disp)
        return None if _matrix_fraction(out) else out

    def sides(self, formulas: list[str], numbers_of=None, value=None) -> list[list[str]]:
        """The sides of a chain of equalities: formulas, then the last one over its numbers, then the value."""
        room = self.width
        sides = []
        for f in formulas:
            if not sides or "".join(sides[-1]) != f:
                sides.append(split_terms(f, room))
        if numbers_of is not None:
            w = self.worked(numbers_of)
            if w is not None and w != value:
                sides.append([w])
        if value is not None and (not sides or "".join(sides[-1]) != value):
            sides.append([value])
        return sides


# ------------------------------------------------------------- the parts ---

def _equations(doc: _LayerDoc) -> list[dict]:
    lg = doc.lg
    relevant = set(doc.g.ancestors(doc.output))
    out = []
    for n in lg.nodes:
        if n.name not in relevant:
            continue
        lhs = doc.names.tex(n.name)
        room = doc.width - visible(lhs)
        rhs = doc.tex(n.expr)
        rows = chain([split_terms(rhs, room)], room)
        rows[-1] += r" \quad \in " + shape_latex(lg.shapes[n.name])
        e = {"name": n.name, "tex": lhs, "rows": rows, "value": None, "numbers": None,
             "space": shape_latex(lg.shapes[n.name])}
        value = value_tex(doc.value(n.name))
        if value is not None:
            e["value"] = value
            e["numbers"] = chain(doc.sides([rhs], n.expr, value), room)
        out.append(e)
    return out


def _leaves(doc: _LayerDoc) -> list[dict]:
    lg = doc.lg
    out = []
    names = [x for x in doc.g.ancestors(doc.output) if lg.is_leaf(x)]
    if doc.net is not None:                 # a network's input first, its targets last
        names = [x for x in names if x == "x"] + [x for x in names if x not in ("x", "y")] + \
            [x for x in names if x == "y"]
    for x in names:
        if lg.is_leaf(x):
            out.append({"name": x, "tex": doc.names.tex(x), "value": value_tex(doc.value(x)),
                        "space": shape_latex(lg.shapes[x])})
    return out


def _leaf_rows(doc: _LayerDoc, leaves: list[dict]) -> list[list[dict]]:
    """The point's leaves side by side, as many to a row as fit."""
    rows: list[list[dict]] = []
    used = 0
    for x in leaves:
        if x["value"] is None:
            continue
        w = width(x["tex"] + " = " + x["value"]) + 4
        if rows and used + w <= doc.width:
            rows[-1].append(x)
            used += w
        else:
            rows.append([x])
            used = w
    return rows


def _rule_names(uses) -> list[str]:
    """The rules one VJP cites: its matrix rules and the scalar rules of its elementwise functions."""
    out: list[str] = []
    structural = any(u.key not in _ELEMENTWISE for u in uses)
    for u in uses:
        if u.key in _ELEMENTWISE:
            r = principal_rule(list(u.scalar_rules))
            if r in _MINOR_RULES and (structural or len(uses) > 1):
                continue
            name = r if u.key != "broadcast" else f"{u.rule.name}, {r}"
        else:
            name = u.rule.name
        if name not in out:
            out.append(name)
    if not out:
        out.append(principal_rule([s for u in uses for s in u.scalar_rules]))
    return out


def _locals(doc: _LayerDoc) -> tuple[list[dict], list[dict]]:
    """One row per edge (output side first): the VJP it sends back, by the rules named; the rules."""
    keys = sorted(doc.contrib, key=lambda e: (doc.level.get(e[0], 0), doc.pos[e[0]],
                                              doc.g.node(e[0]).parents.index(e[1])))
    checks: dict[str, list] = {}
    for d in doc.ders:
        for r in d.rule_checks:
            checks.setdefault(r.name, [])
            if r not in checks[r.name]:
                checks[r.name].append(r)
    rows, rules = [], {}
    scalar_formulas = {r.name: r.formula for r in SCALAR_RULES.values()}
    for key in keys:
        c = doc.contrib[key]
        s = doc.tex(c.expr)
        names = _rule_names(c.uses)
        for u in c.uses:
            rules.setdefault(u.rule.name, {"name": u.rule.name, "formula": u.rule.formula, "matrix": True,
                                           "checks": len(checks.get(u.rule.name, ()))})
            if u.key in _ELEMENTWISE:
                for sr in u.scalar_rules:
                    if sr not in _MINOR_RULES or sr in names:
                        rules.setdefault(sr, {"name": sr, "formula": "" if "=" in sr else scalar_formulas.get(sr, ""),
                                              "matrix": False, "checks": 0})
        edge = doc.names.tex(key[0]) + r" \to " + doc.names.tex(key[1])
        row = {"child": key[0], "parent": key[1], "frac": edge, "tex": s, "rule": "; ".join(names),
               "layer": doc.layer(key[0]), "value": None, "method": None, "lines": None}
        if width(s) + width(edge) > INLINE // 2 or len(s) > INLINE:
            row["tex"] = None          # too long for a table cell: printed below the table
            row["lines"] = chain([split_terms(s, doc.width)], doc.width)
            row["lines"][0] = row["lines"][0][2:]           # no "= ": the row is the VJP itself
        rows.append(row)
    return rows, list(rules.values())


def _lemma(doc: _LayerDoc, lm) -> dict:
    child = lm.child
    targets = [n for n in _var_names(lm.result) if n != child]
    kind = {"softmax and cross-entropy": "softmax", "sigmoid and binary cross-entropy": "sigmoid"}.get(lm.name, "other")
    return {"name": lm.name, "kind": kind, "statement": lm.statement, "node": doc.names.tex(lm.node),
            "delta": doc.delta(lm.node), "child": doc.names.tex(child), "child_t": name_sup(doc.names.tex(child)),
            "child_delta": doc.delta(child),
            "child_expr": doc.tex(doc.acc[child].expr) if child in doc.acc else None,
            "targets": doc.names.tex(targets[0]) if targets else None, "result": doc.tex(lm.result),
            "detail": lm.check.detail}


def _matrix_fraction(s: str) -> bool:
    """A fraction with a matrix in it (E/6 over a 4 × 3 matrix): its value reads better."""
    i = s.find(r"\frac")
    while i >= 0:
        top, j = _group(s, i + len(r"\frac"))
        bottom, _ = _group(s, j)
        if "bmatrix" in top or "bmatrix" in bottom:
            return True
        i = s.find(r"\frac", i + 1)
    return False


def _var_names(t) -> list[str]:
    out = []
    for x in walk(t):
        if isinstance(x, Var) and not x.adjoint and x.name not in out:
            out.append(x.name)
    return out


def _deltas(doc: _LayerDoc) -> list[dict]:
    """δ of every node the document needs, output side first, each from the δ's above it."""
    order = sorted((n for n in doc.on if n != doc.output and not doc.lg.is_leaf(n)),
                   key=lambda x: (doc.level.get(x, 0), doc.pos[x]))
    out = []
    for name in order:
        acc = doc.acc.get(name)
        if acc is None:
            continue
        lm = doc.lemmas.get(name)
        rec = doc.recursions.get(name)
        formulas = [doc.tex(acc.expr)]
        if lm is not None:
            formulas += [doc.tex(lm.substituted), doc.tex(lm.result)]
        if rec is not None:
            formulas.append(doc.tex(rec.expr))
        claim = lm.result if lm is not None else acc.expr
        value = value_tex(doc.value(ADJOINT_PREFIX + name))
        lhs = doc.delta(name)
        sides = doc.sides(formulas, claim, value)
        out.append({"node": name, "delta": lhs, "name": doc.names.tex(name), "frac": doc.frac(name),
                    "layer": doc.layer(name), "rows": chain(sides, doc.width - visible(lhs)), "value": value,
                    "lemma": _lemma(doc, lm) if lm is not None else None,
                    "space": shape_latex(doc.lg.shapes[name])})
    return out


def _kids(d) -> tuple[str, ...]:
    acc = d.accumulation
    return acc[-1].children if acc and acc[-1].node == d.target else ()


def _row(doc: _LayerDoc, d) -> dict:
    """One parameter: ∂L/∂W by the δ's (BP3, BP4), its numbers, the batch form, the update."""
    lg = doc.lg
    target_tex = doc.names.tex(d.target) if d.index is None else to_latex(Index(lg.var(d.target), d.index), doc.disp)
    frac = r"\frac{\partial " + doc.names.tex(doc.output) + r"}{\partial " + target_tex + "}"
    kids = _kids(d)
    formula = doc.tex(d.final)
    value = value_tex(d.value) if doc.has_numbers else None
    sides = doc.sides([formula], d.final if d.path_count else None, value)
    rules = []
    for k in kids:
        c = doc.contrib.get((k, d.target))
        if c is not None:
            rules += [r for r in _rule_names(c.uses) if r not in rules]
    row = {"name": d.wrt, "tex": target_tex, "frac": frac, "path_count": d.path_count,
           "path": _path_tex(doc.names, d.paths[0]) if d.path_count == 1 and d.paths else None,
           "via": ", ".join(doc.names.tex(k) for k in kids), "formula": formula if len(formula) <= INLINE else None,
           "numbers": None, "value": value, "old": None, "new": None, "space": shape_latex(d.shape),
           "rows": chain(sides, doc.width - visible(frac)), "rule": "; ".join(rules),
           "batch": d.batch.latex if d.batch is not None else None, "descent": None}
    old = _finite(doc.numbers.get(d.target)) if doc.has_numbers and lg.is_leaf(d.target) else None
    grad = _finite(d.value) if doc.has_numbers else None
    if doc.lr is not None and old is not None and grad is not None:
        if d.index is not None:
            old = old[d.index]
        new = old - float(doc.lr) * grad
        row["old"], row["new"] = value_tex(old), value_tex(new)
        if row["new"] is not None:
            # the three matrices of the step shortened alike; the space is said once, at the end
            short = any(tensor_tex(v)[1] for v in (old, grad, new))
            (o, _), (g, _), (n, _) = (tensor_tex(v, short=short) for v in (old, grad, new))
            row["new"] = n + (r" \in " + shape_latex(new.shape) if short else "")
            lr, times = format_number(doc.lr), r" \cdot " if not grad.shape else " "
            step = [r"\leftarrow " + o, " - " + lr + times + _factor(g)]
            rows = break_lines(step, doc.width, width)
            rows[1:] = [r"\quad " + r for r in rows[1:]]
            if width(rows[-1] + " = " + row["new"]) <= doc.width:
                rows[-1] += " = " + row["new"]
            else:
                rows.append("= " + row["new"])
            row["descent"] = {"old": row["old"], "lr": lr, "value": g, "new": row["new"], "rows": rows}
    return row


def _groups(doc: _LayerDoc) -> list[dict]:
    """The parameters by the node(s) that use them: a network's W⁽ˡ⁾ and b⁽ˡ⁾ in one group per layer."""
    groups: dict = {}
    for d in doc.ders:
        groups.setdefault(_kids(d), []).append(d)
    near = {k: min((doc.level.get(c, 0) for c in k), default=10**9) for k in groups}
    out = []
    for key in sorted(groups, key=near.__getitem__):          # stable: the output side first
        members = groups[key]
        d0 = members[0]
        rows = [_row(doc, d) for d in members]
        entry = [rows[0]["tex"]] if d0.index is not None else []
        worked = {"paths": [_path_tex(doc.names, p) + "".join(r" \to " + e for e in entry) for p in d0.paths],
                  "path_count": d0.path_count,
                  "all_paths_shown": len(d0.paths) == d0.path_count, "path_rows": None, "rows": None,
                  "top": None, "top_delta": None, "uses_deltas": True, "descent": None}
        out.append({"layer": doc.layer(key[0]) if key else None, "kind": None, "kinds": None,
                    "names": [d.wrt for d in members], "texs": [r["tex"] for r in rows],
                    "path_count": d0.path_count, "rows": rows, "worked": worked, "wrt": d0.wrt,
                    "wrt_tex": rows[0]["tex"], "frac": rows[0]["frac"], "via": rows[0]["via"],
                    "leaf": doc.lg.is_leaf(d0.target),
                    "equation": _use(doc, key[0]) if len(key) == 1 else None})
    return out


def _use(doc: _LayerDoc, node: str) -> str:
    """The equation of the node that uses a group's parameters: z⁽¹⁾ = W⁽¹⁾ x + b⁽¹⁾."""
    return doc.names.tex(node) + " = " + doc.tex(doc.g.node(node).expr)


def _checks(doc: _LayerDoc) -> dict:
    rules: dict = {}
    seen = set()
    methods: dict[str, int] = {}
    for d in doc.ders:
        for r in d.rule_checks:
            key = (r.name, r.shapes)
            if key in seen:
                continue
            seen.add(key)
            methods[r.check.method] = methods.get(r.check.method, 0) + 1
            detail = _OPERANDS.sub("", r.check.detail)       # one line per rule and way of checking it
            item = rules.setdefault((r.name, detail), {"name": r.name, "shapes": [], "method": r.check.method,
                                                       "detail": detail})
            item["shapes"].append(" and ".join(_shape_words(s) for s in r.shapes))
    rules = [dict(v, shapes="; ".join(v["shapes"])) for v in rules.values()]
    by_detail: dict[str, list[str]] = {}
    batch: dict[str, list[str]] = {}
    for d in doc.ders:
        frac = _row_frac(doc, d)
        by_detail.setdefault(d.check.detail, []).append(frac)
        if d.batch is not None:
            batch.setdefault(d.batch.check.detail, []).append(frac)
    lemmas = [{"name": lm.name, "delta": doc.delta(lm.node), "detail": lm.check.detail}
              for lm in doc.lemmas.values()]
    return {"locals": len(doc.contrib), "methods": methods, "rules": rules, "lemmas": lemmas,
            "results": [{"detail": k, "fracs": v} for k, v in by_detail.items()],
            "batch": [{"detail": k, "fracs": v} for k, v in batch.items()]}


_OPERANDS = re.compile(r" \(operands [^()]*\)")


def _shape_words(shape) -> str:
    if len(shape) == 2:
        return f"a {shape[0]}×{shape[1]} matrix"
    return f"a {shape[0]}-vector" if shape else "a scalar"


def _row_frac(doc: _LayerDoc, d) -> str:
    if d.index is None:
        return doc.frac(d.target)
    t = to_latex(Index(doc.lg.var(d.target), d.index), doc.disp)
    return r"\frac{\partial " + doc.names.tex(doc.output) + r"}{\partial " + t + "}"


def _undefined(doc: _LayerDoc) -> dict | None:
    """Values that are not finite at the point (outside a function's domain, or beyond float64), said once."""
    if not doc.has_numbers:
        return None
    items = [doc.names.tex(n.name) for n in doc.lg.nodes
             if n.name in doc.numbers and _finite(doc.numbers[n.name]) is None]
    if not items:
        return None
    missing = [_row_frac(doc, d) for d in doc.ders if d.path_count and _finite(d.value) is None]
    return {"items": items, "gradients": missing}


def _at_missing(doc: _LayerDoc) -> list[str] | None:
    if not doc.at or doc.has_numbers:
        return None
    from .layer_graph import point
    return point(doc.lg, doc.at)[1]


def _picture(doc: _LayerDoc) -> dict | None:
    if doc.net is not None:
        return pictures.network_picture(doc.net, doc.names)
    return pictures.tensor_picture(doc.lg, doc.names, [d.target for d in doc.ders])


def context(derivations, *, fragment: bool = False, fmt: str = "md") -> dict:
    """The template context of one layer document: the keys of ``render.context``, in matrix notation."""
    doc = _LayerDoc(derivations, fmt)
    first = derivations[0]
    partials, rules = _locals(doc)
    wrt_texs = []
    for d in derivations:
        t = doc.names.tex(d.target) if d.index is None else to_latex(Index(doc.lg.var(d.target), d.index), doc.disp)
        wrt_texs.append(t)
    deltas = _deltas(doc)
    leaves = _leaves(doc)
    return {
        "view": "layer",
        "title": first.title, "output": first.output, "output_tex": doc.names.tex(first.output), "fragment": fragment,
        "wrt": wrt_texs[:LISTED_NAMES], "wrt_more": max(0, len(wrt_texs) - LISTED_NAMES),
        "wrt_count": len(wrt_texs),
        "picture": _picture(doc),
        "equations": _equations(doc),
        "leaves": leaves, "leaf_rows": _leaf_rows(doc, leaves),
        "has_numbers": doc.has_numbers, "lr": None if first.lr is None else format_number(first.lr),
        "at_missing": _at_missing(doc),
        "undefined": _undefined(doc),
        "partials": partials, "rules": rules,
        "iverson": any(_IVERSON.search(p["tex"] or "\n".join(p["lines"])) for p in partials),
        "network": doc.net is not None, "shared_bias": doc.net is not None and doc.net.bias == "shared",
        "deltas": deltas, "inactive": [],
        "recursion": any(x["layer"] and x["layer"].startswith("hidden") for x in deltas),
        "groups": _groups(doc),
        "batch": any(d.batch is not None for d in derivations),
        "checks": _checks(doc),
    }
