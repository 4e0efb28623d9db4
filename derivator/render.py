"""Render: derivations -> Markdown or LaTeX, through jinja2 templates only.

Takes one or more ``Derivation`` objects of the same definition; gives text.
This module turns the derivations into plain data — every formula already
printed as LaTeX by ``printing.py``, every number already formatted — and
hands it to one template; all prose and markup live in ``templates/``.

A document reads like a hand derivation: the definitions as the user wrote
them and the graph drawn once; the forward pass; each local derivative once,
by layer, with the rule that gives it; the deltas δ_n = ∂output/∂n once,
each worked from the deltas above it; then the gradients, parameters of the
same structure in one table (formula in δ, value, updated value) with one of
them worked in full in chain order (∂L/∂o₁ · ∂o₁/∂z₃ · ∂z₃/∂w₅ over their
values); and how each claim was checked. Every number is computed once per
document in 30-digit arithmetic, so rendering is linear in the graph.
Where the point is outside a function's domain the document says so once
and prints no number for what cannot be computed: never nan or ±inf.

The templates run in jinja2's ``SandboxedEnvironment``: a user's template
folder (``--templates``) comes first on the search path and can ``{% extends
"derivator/derivation.md.j2" %}`` to override blocks, but cannot reach
Python objects' internals. The LaTeX environment uses ``<< >>`` and ``<% %>``
as delimiters (no clash with braces); both use ``StrictUndefined``.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring as _quote   # json.dumps's quoting (ensure_ascii=False)
from functools import lru_cache
from importlib import resources

import jinja2
import jinja2.sandbox
import mpmath
import sympy as sp
from sympy.printing.str import StrPrinter

from .check import DIGITS, MAX_DIGITS
from .derivation import Derivation, delta_symbol
from .errors import VerificationError
from .expr import symbol
from .functions import relu
from .mpeval import SCALE, NotReal, evaluate, needed_digits
from .printing import (Names, TexPrinter, TreePrinter, break_lines, escape_md, escape_tex, expr_pieces,
                       format_number, paren, tidy, visible, wrap_negative)
from .rules import RULES

JSON_PATHS = 1000           # paths listed in JSON (path_count is always exact)
PICTURE_NODES = 80          # larger graphs get no picture
LINE_WIDTH = {"md": 72, "tex": 54}   # visible characters per line of a display (tex: an A4 article)
INLINE = 150                # longest inline math span (more would overflow a GitHub page)
PATH_EDGES = 8              # paths up to this many edges are written as a chain of fractions …
PATH_SUM = 9                # … and up to this many paths as a sum over paths
RESULT_TERMS = 64           # results of up to this many path products are printed (if they fit two lines)
LISTED_NAMES = 12           # parameters named in the introduction


def template_dir() -> str:
    return str(resources.files("derivator.templates"))


@lru_cache(maxsize=16)
def _env(kind: str, user_dir: str | None = None) -> jinja2.Environment:
    # a user's folder first; the shipped templates also as "derivator/NAME", so that a user's
    # derivation.md.j2 can {% extends "derivator/derivation.md.j2" %} and override only some blocks
    shipped = jinja2.FileSystemLoader(template_dir())
    loaders = ([jinja2.FileSystemLoader(user_dir)] if user_dir else []) + \
        [jinja2.PrefixLoader({"derivator": shipped}), shipped]
    opts = dict(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    if kind == "tex":
        opts.update(block_start_string="<%", block_end_string="%>", variable_start_string="<<",
                    variable_end_string=">>", comment_start_string="<#", comment_end_string="#>")
    env = jinja2.sandbox.SandboxedEnvironment(**opts)
    env.filters["esc"] = escape_tex if kind == "tex" else escape_md
    env.filters["num"] = format_number
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.filters["groupby_order"] = _groupby_order
    return env


def _groupby_order(items, key):
    """Consecutive runs of items with the same ``key`` (jinja's groupby sorts; this keeps the order)."""
    groups: list[dict] = []
    for it in items:
        k = it[key]
        if groups and groups[-1]["name"] == k:
            groups[-1]["members"].append(it)
        else:
            groups.append({"name": k, "members": [it]})
    return groups


# ------------------------------------------------------------- numbers ---

SHOWN_DIGITS = 12           # worked numbers show 9 digits: the point is computed to keep 12 exact


class _Point(dict):
    """Symbol -> value at the given point, computed at ``dps`` digits (more than 30 where the
    values are large enough for cancellation to eat 30 digits: 1 − σ(100) is 0 at 30 digits)."""

    dps = DIGITS


def point_values(graph, at: dict) -> dict | None:
    """Every leaf and node at the point, in mpmath; None where a leaf has no value or a node none."""
    if not at or any(x not in at for x in graph.leaves):
        return None
    dps = DIGITS
    while True:
        with mpmath.workdps(dps):
            env = _Point({symbol(k): mpmath.mpf(repr(float(at[k]))) for k in graph.leaves})
            env.dps = dps
            scale = 0
            try:
                for n in graph.nodes:
                    cache: dict = {}
                    env[symbol(n.name)] = evaluate(n.expr, env, cache)
                    scale = max(scale, cache[SCALE])
            except (NotReal, ZeroDivisionError, OverflowError, ValueError):
                return None
        need = needed_digits(scale, SHOWN_DIGITS)
        if need <= dps or need > MAX_DIGITS:
            return env
        dps = need


def _finite(v):
    return v if v is not None and mpmath.isfinite(v) and not isinstance(v, mpmath.mpc) else None


class Point:
    """The numbers of one document at the given point, each computed once (mpmath, 30 digits or
    more: as many as ``point_values`` finds the values need).

    ``values`` (every leaf and node), ``partials`` (every local derivative on the
    document's edges) and ``deltas`` (δ_n for every node on them, by reverse
    accumulation: δ_n = Σ_c δ_c ∂c/∂n). A quantity that is not a finite real
    number there is None and listed in ``undefined`` (its origin only); what
    depends on it is None too."""

    def __init__(self, graph, at: dict, edges: dict, order: list[str]):
        self.undefined: list[tuple[str, object]] = []
        self.values: dict[str, object] = {}
        self.partials: dict[tuple[str, str], object] = {}
        self.deltas: dict[str, object] = {}
        exact = point_values(graph, at)
        with mpmath.workdps(exact.dps if exact is not None else DIGITS):
            env = {}
            for x in graph.leaves:
                v = mpmath.mpf(repr(float(at[x])))
                self.values[x] = v
                env[symbol(x)] = v
            cache: dict = {}
            for n in graph.nodes:
                if any(self.values.get(p) is None for p in n.parents):
                    self.values[n.name] = None
                    continue
                v = self._eval(n.expr, env, cache)
                self.values[n.name] = v
                if v is None:
                    self.undefined.append(("value", n.name))
                else:
                    env[n.symbol] = v
            for key, p in edges.items():
                if any(s not in env for s in p.expr.free_symbols):
                    self.partials[key] = None
                    continue
                v = self._eval(p.expr, env, cache)
                self.partials[key] = v
                if v is None:
                    self.undefined.append(("partial", key))
            output = graph.output
            self.deltas[output] = mpmath.mpf(1)
            for name in order:                      # output side first
                if name == output:
                    continue
                total = mpmath.mpf(0)
                for c in graph.children[name]:
                    if (c, name) not in edges:
                        continue
                    dc, pc = self.deltas.get(c), self.partials[(c, name)]
                    if dc is None or pc is None:
                        total = None
                        break
                    total += dc * pc
                self.deltas[name] = _finite(total)

    @staticmethod
    def _eval(expr, env, cache):
        try:
            return _finite(evaluate(expr, env, cache))
        except (NotReal, ZeroDivisionError, OverflowError, ValueError):
            return None


def _num(v) -> str | None:
    return None if v is None else format_number(v)


# ------------------------------------------------------------- context ---

def _levels(g) -> dict[str, int]:
    """Every name that reaches the output: its longest distance from it (0 for the output)."""
    dist = {g.output: 0}
    for n in reversed(g.nodes):
        if n.name != g.output:
            ds = [dist[c] for c in g.children[n.name] if c in dist]
            if ds:
                dist[n.name] = 1 + max(ds)
    for x in g.leaves:
        ds = [dist[c] for c in g.children[x] if c in dist]
        if ds:
            dist[x] = 1 + max(ds)
    return dist


def _layer_keys(layers) -> dict[str, str]:
    """Network form: node -> ``loss``, ``output`` or ``hidden <l>``."""
    out = {}
    n = len(layers)
    for i, names in enumerate(layers):
        key = "loss" if i == n - 1 else ("output" if i == n - 2 else f"hidden {i + 1}")
        for x in names:
            out[x] = key
    return out


_MINOR_RULES = ("sum rule", "identity", "chain rule", "constant multiple rule")


def principal_rule(rules) -> str:
    """The one rule a reader needs for a local derivative: the outermost that is not bookkeeping
    (the sum and constant multiple rules only where nothing else was used)."""
    for r in rules:
        if r not in _MINOR_RULES:
            return r
    for r in ("constant multiple rule", "sum rule", "identity"):
        if r in rules:
            return r
    return rules[0] if rules else "constant"


def _graph_picture(g, names: Names, wrt: set) -> dict | None:
    relevant = g.ancestors(g.output)
    if len(relevant) > PICTURE_NODES:
        return None
    inside = set(relevant)
    level: dict[str, int] = {}
    for x in g.leaves:
        level[x] = 0
    for n in g.nodes:
        level[n.name] = 1 + max((level[p] for p in n.parents), default=-1)
    for x in g.leaves:                 # leaves sit one column before their first user
        kids = [c for c in g.children[x] if c in inside]
        if kids:
            level[x] = max(0, min(level[c] for c in kids) - 1)
    columns: dict[int, list[str]] = {}
    for x in relevant:
        columns.setdefault(level[x], []).append(x)
    columns = _order_columns(g, dict(sorted(columns.items())), relevant)
    ids = {x: f"n{i}" for i, x in enumerate(relevant)}
    nodes = []
    for col, members in columns.items():
        for row, x in enumerate(members):
            nodes.append({"id": ids[x], "name": x, "tex": names.tex(x), "x": col * 2.4,
                          "y": -(row - (len(members) - 1) / 2) * 0.9, "leaf": g.is_leaf(x),
                          "kind": "leaf" if g.is_leaf(x) else "node", "wrt": x in wrt, "output": x == g.output,
                          "column": None})
    edges = []
    for n in g.nodes:
        if n.name in inside:
            for p in n.parents:
                edges.append({"src": ids[p], "dst": ids[n.name], "skip": level[n.name] - level[p] > 1,
                              "label": None, "text": None, "kind": "edge"})
    return {"nodes": nodes, "edges": edges, "labels": [], "columns": None}     # the keys of pictures.py


def _order_columns(g, columns: dict[int, list[str]], names) -> dict[int, list[str]]:
    """Rows within each column by the barycentre heuristic: a few sweeps, each sorting a
    column by the mean row of its neighbours (stable, so ties keep the file's order)."""
    inside = set(names)
    nbrs = {x: [] for x in names}
    for n in g.nodes:
        if n.name in inside:
            for p in n.parents:
                nbrs[n.name].append(p)
                nbrs[p].append(n.name)
    cols = {c: list(m) for c, m in columns.items()}

    def pos():
        return {x: r - (len(m) - 1) / 2 for m in cols.values() for r, x in enumerate(m)}

    keys = list(cols)
    for sweep in range(4):
        for c in (keys if sweep % 2 == 0 else keys[::-1]):
            y = pos()
            cur = {x: r for r, x in enumerate(cols[c])}
            cols[c].sort(key=lambda x: sum(y[v] for v in nbrs[x]) / len(nbrs[x]) if nbrs[x] else cur[x])
    return cols


def chain_rows(sides: list[list[str]], width: int, merge: bool = True, measure=visible) -> list[str]:
    """The right-hand sides of ``lhs = s1 = s2 = …`` as rows of an aligned display.

    Each side is a list of pieces (``break_lines``); with ``merge``, a side that
    fits goes on the row before it; a long one is cut into continued rows.
    ``measure`` gives the width of a text (the layer view's counts a matrix by its widest row)."""
    rows: list[str] = []
    cur = None
    for side in sides:
        lines = break_lines(side, width, measure)
        first = "= " + lines[0]
        if merge and cur is not None and len(lines) == 1 and measure(cur + " " + first) <= width:
            cur = cur + " " + first
            continue
        if cur is not None:
            rows.append(cur)
        cur = first
        for line in lines[1:]:
            rows.append(cur)
            cur = r"\quad " + line
    if cur is not None:
        rows.append(cur)
    return rows


def _factor(expr, s: str) -> str:
    """A printed local derivative as a factor of a product."""
    return paren(s) if isinstance(expr, sp.Add) or s.startswith("-") else s


class _Doc:
    """What every part of one document's context needs: the graph, its names, the printers, the numbers."""

    def __init__(self, derivations: list[Derivation], fmt: str):
        first = derivations[0]
        self.ders = derivations
        self.g = g = first.graph
        self.output = first.output
        self.width = LINE_WIDTH[fmt]
        self.names = Names(g.names, dict(first.display))
        self.printer = TexPrinter(self.names)
        self.at = dict(first.at)
        self.lr = first.lr
        self.edges: dict[tuple[str, str], object] = {}
        self.on: set[str] = set()
        for d in derivations:
            for p in d.partials:
                self.edges.setdefault((p.child, p.parent), p)
            self.on.update(d.cone.nodes)
        self.level = _levels(g)
        self.layer = _layer_keys(first.layers)
        self.pos = {x: i for i, x in enumerate(g.names)}
        self.up = {}                          # node -> its children on the document's edges
        for c, p in self.edges:
            self.up.setdefault(p, []).append(c)
        for p in self.up:
            self.up[p].sort(key=self.pos.__getitem__)
        order = sorted(self.on, key=lambda x: (self.level.get(x, 0), self.pos[x]))
        self.order = order                   # output first
        self.has_numbers = bool(self.at) and all(x in self.at for x in g.leaves)
        self.point = Point(g, self.at, self.edges, order) if self.has_numbers else None
        self._tex: dict = {}

    # -- printed pieces, each once -------------------------------------
    def partial_tex(self, key) -> tuple[object, str]:
        got = self._tex.get(key)
        if got is None:
            e = tidy(self.edges[key].expr)
            got = self._tex[key] = (e, self.printer.doprint(e))
        return got

    def value(self, name):
        return None if self.point is None else self.point.values.get(name)

    def delta(self, name):
        return None if self.point is None else self.point.deltas.get(name)

    def pvalue(self, key):
        return None if self.point is None else self.point.partials.get(key)

    def only_output_above(self, name) -> bool:
        """δ_name is the one local derivative ∂output/∂name."""
        return self.up.get(name) == [self.output]

    def delta_factor(self, name) -> dict:
        """∂output/∂name as the first factor of a chain: the δ of the backward pass."""
        if self.only_output_above(name):
            e, s = self.partial_tex((self.output, name))
            return {"leibniz": self.names.frac(self.output, name), "tex": _factor(e, s),
                    "value": self.pvalue((self.output, name))}
        return {"leibniz": self.names.frac(self.output, name), "tex": self.names.delta(name),
                "value": self.delta(name)}

    def partial_factor(self, child, parent) -> dict:
        e, s = self.partial_tex((child, parent))
        return {"leibniz": self.names.frac(child, parent), "tex": _factor(e, s), "raw": s,
                "value": self.pvalue((child, parent)), "one": e == 1}


def _numbers(terms: list[list]) -> list[str] | None:
    """Products of values as pieces of a sum; None where a value is missing."""
    out = []
    for i, factors in enumerate(terms):
        vals = [f["value"] for f in factors]
        if any(v is None for v in vals):
            return None
        texts = [format_number(v) for v in vals]
        texts = [wrap_negative(t) if (j or i or (len(texts) > 1 and r"\times" in t)) else t
                 for j, t in enumerate(texts)]
        s = r" \cdot ".join(texts)
        if i:
            s = (" - " + s[1:]) if s.startswith("-") else " + " + s
        out.append(s)
    return out


def _symbols(terms: list[list], key="tex", glue=r" \cdot ") -> list[str]:
    out = []
    for i, factors in enumerate(terms):
        s = glue.join(f[key] for f in factors)
        out.append(s if i == 0 else " + " + s)
    return out


def _equations(doc: _Doc) -> list[dict]:
    g, names, width = doc.g, doc.names, doc.width
    relevant = set(g.ancestors(g.output))
    values = None
    if doc.point is not None:
        values = {x: _num(v) for x, v in doc.point.values.items()}
    out = []
    for n in g.nodes:
        if n.name not in relevant:
            continue
        lhs = names.tex(n.name)
        room = width - visible(lhs)
        if n.tree is not None:
            rhs = TreePrinter(names).pieces(n.tree, room)
        else:
            rhs = expr_pieces(doc.printer, n.expr, room)
        e = {"name": n.name, "tex": lhs, "rows": chain_rows([rhs], room), "value": None, "numbers": None}
        if values is not None and values.get(n.name) is not None:
            e["value"] = values[n.name]
            sides = []
            if n.tree is not None and not all(values.get(p) is None for p in n.parents):
                nums = TreePrinter(names, values).pieces(n.tree, room)
                if "".join(nums) != e["value"]:
                    sides.append(nums)
            sides.append([e["value"]])
            e["numbers"] = chain_rows(sides, room)
        out.append(e)
    return out


def _locals(doc: _Doc) -> tuple[list[dict], list[dict]]:
    """One row per local derivative, by layer (output side first); the rules they cite."""
    names = doc.names
    keys = sorted(doc.edges, key=lambda e: (doc.level.get(e[0], 0), doc.pos[e[0]],
                                            doc.g.node(e[0]).parents.index(e[1])))
    rows, rules = [], {}
    formulas = {r.name: r.formula for r in RULES.values()}
    for key in keys:
        p = doc.edges[key]
        e, s = doc.partial_tex(key)
        frac = names.frac(*key)
        rule = principal_rule(p.rules)
        rules.setdefault(rule, formulas.get(rule, ""))
        layer = doc.layer.get(key[0])
        row = {"child": key[0], "parent": key[1], "frac": frac, "tex": s, "rule": rule, "layer": layer,
               "value": _num(doc.pvalue(key)), "method": p.check.method, "lines": None}
        if visible(frac) + visible(s) > INLINE // 2 or len(s) > INLINE:
            row["tex"] = None          # too long for a table cell: printed below the table
            row["lines"] = chain_rows(expr_pieces(doc.printer, e, doc.width), doc.width)
        rows.append(row)
    # a rule whose name is its formula (σ′ = σ(1 − σ)) needs no second statement
    return rows, [{"name": k, "formula": "" if "=" in k else v} for k, v in rules.items()]


def _deltas(doc: _Doc) -> list[dict]:
    """δ_n for every node the document needs, output side first, each from the deltas above it."""
    out = []
    names, width = doc.names, doc.width
    for name in doc.order:
        if name == doc.output or doc.g.is_leaf(name):
            continue
        terms = []
        for c in doc.up.get(name, ()):
            f = doc.partial_factor(c, name)
            terms.append([dict(f, tex=f["raw"]) if len(doc.up[name]) == 1 else f] if c == doc.output
                         else [_delta_of(doc, c), f])
        lhs = names.delta(name)
        room = width - visible(lhs)
        sides = [_symbols(terms)]
        value = _num(doc.delta(name))
        if doc.point is not None:
            nums = _numbers(terms)
            if nums is not None and value is not None:
                if not (len(terms) == 1 and len(terms[0]) == 1):
                    sides.append(nums)
                if "".join(sides[-1]) != value:
                    sides.append([value])
        out.append({"node": name, "delta": lhs, "name": names.tex(name), "frac": names.frac(doc.output, name),
                    "layer": doc.layer.get(name), "rows": chain_rows(sides, room), "value": value})
    return out


def _delta_of(doc: _Doc, name) -> dict:
    return {"leibniz": doc.names.frac(doc.output, name), "tex": doc.names.delta(name), "value": doc.delta(name)}


def _path_tex(names: Names, path) -> str:
    parts = [names.tex(x) for x in path]
    s = r" \to ".join(parts)
    if len(s) > INLINE and len(parts) > 8:
        s = r" \to ".join(parts[:4]) + r" \to \dots \to " + r" \to ".join(parts[-3:])
    return s


def _kids(d: Derivation) -> tuple[str, ...]:
    acc = d.accumulation
    return acc[-1].children if acc and acc[-1].node == d.wrt else ()


def _shape(doc: _Doc, expr) -> str:
    """A local derivative with its names replaced by their kind: the structure a group of parameters shares."""
    g = doc.g
    rep = {s: symbol("_leaf" if g.is_leaf(s.name) else "_node") for s in expr.free_symbols}
    return sp.srepr(expr.xreplace(rep))


def _group_key(doc: _Doc, d: Derivation):
    kids = _kids(d)
    return (doc.g.is_leaf(d.wrt), d.path_count,
            tuple((doc.layer.get(c), c == doc.output, _shape(doc, doc.edges[(c, d.wrt)].expr)) for c in kids))


def _row(doc: _Doc, d: Derivation) -> dict:
    """One parameter's line in its group's table: ∂L/∂w in the deltas (BP3/BP4), its value, the update."""
    names = doc.names
    kids = _kids(d)
    terms = []
    for c in kids:
        f = doc.partial_factor(c, d.wrt)
        if c == doc.output:
            terms.append([f])
        else:
            terms.append([_delta_of(doc, c)] + ([] if f["one"] else [f]))
    value = doc.delta(d.wrt) if d.path_count else mpmath.mpf(0)
    row = {"name": d.wrt, "tex": names.tex(d.wrt), "frac": names.frac(d.output, d.wrt), "path_count": d.path_count,
           "path": None, "via": ", ".join(names.tex(c) for c in kids),
           "formula": "".join(_symbols(terms)) if terms else "0", "numbers": None, "value": _num(value),
           "old": None, "new": None}
    if d.path_count == 1 and d.paths and len(d.paths[0]) <= 6:
        row["path"] = _path_tex(names, d.paths[0])
    if doc.point is not None and terms:
        nums = _numbers(terms)
        if nums is not None and not (len(terms) == 1 and len(terms[0]) == 1):
            row["numbers"] = "".join(nums)
    if visible(row["formula"] + (row["numbers"] or "")) > INLINE // 2 or len(row["formula"] + (row["numbers"] or "")) > INLINE:
        row["numbers"] = None
        if len(row["formula"]) > INLINE:
            row["formula"] = None
    if doc.lr is not None and doc.g.is_leaf(d.wrt) and d.wrt in doc.at:
        row["old"] = _num(mpmath.mpf(repr(float(doc.at[d.wrt]))))
        if value is not None:
            with mpmath.workdps(DIGITS):
                row["new"] = _num(mpmath.mpf(repr(float(doc.at[d.wrt]))) - mpmath.mpf(repr(float(doc.lr))) * value)
    return row


def _worked(doc: _Doc, d: Derivation) -> dict:
    """One parameter worked in full: its paths, the chain rule along them, the chain in δ with its numbers."""
    names, width, out = doc.names, doc.width, doc.output
    lhs = names.frac(out, d.wrt)
    room = width - visible(lhs)
    on = set(d.cone.nodes)
    item = {"paths": [_path_tex(names, p) for p in d.paths], "path_count": d.path_count,
            "all_paths_shown": d.all_paths_shown, "path_rows": None, "rows": None,
            "top": None, "top_delta": None, "uses_deltas": False, "descent": None}
    if d.path_count == 0:
        return item

    def above(n):
        return [c for c in doc.g.children[n] if c in on]

    # the chain below the last node where the paths meet, at most two local derivatives long
    chain = [d.wrt]
    while len(chain) < 3:
        ks = above(chain[-1])
        if len(ks) != 1:
            break
        chain.append(ks[0])
        if ks[0] == out:
            break
    tops = [list(reversed(chain))] if len(chain) > 1 else [[c, d.wrt] for c in above(d.wrt)]
    terms = []
    for t in tops:
        factors = [] if t[0] == out else [doc.delta_factor(t[0])]
        factors += [doc.partial_factor(a, b) for a, b in zip(t, t[1:])]
        terms.append(factors)
    if len(tops) == 1 and tops[0][0] != out and not doc.only_output_above(tops[0][0]):
        item["top"] = names.tex(tops[0][0])
        item["top_delta"] = names.delta(tops[0][0])
    item["uses_deltas"] = any(t[0] != out and not doc.only_output_above(t[0]) for t in tops)
    leibniz = _symbols(terms, "leibniz", " ")
    value = _num(doc.delta(d.wrt))

    # the chain rule along the paths, and its result written out in the graph's quantities
    fracs = [[names.frac(a, b) for a, b in zip(p, p[1:])] for p in d.paths]
    if d.all_paths_shown and len(fracs) <= PATH_SUM and all(len(f) <= PATH_EDGES for f in fracs):
        sums = [(" + " if i else "") + " ".join(f) for i, f in enumerate(fracs)]
        if "".join(sums) != "".join(leibniz):
            sides = [sums]
            if d.path_count == 1:
                prods = [doc.partial_tex((a, b)) for a, b in zip(d.paths[0], d.paths[0][1:])]
                sides.append([_factor(e, s) if i == 0 else r" \cdot " + _factor(e, s) for i, (e, s) in enumerate(prods)])
            elif _short_result(d):
                written = expr_pieces(doc.printer, d.result, room)
                if len(break_lines(written, room)) <= 2:
                    sides.append(written)
            item["path_rows"] = chain_rows(sides, room, merge=False)

    # the chain in δ, factor by factor over its numbers
    sides = [leibniz, _symbols(terms)]
    nums = _numbers(terms) if doc.point is not None else None
    if nums is not None:
        sides.append(nums)
    if value is not None:
        sides.append([value])
    item["rows"] = chain_rows(_distinct(sides, lhs), room, merge=False)
    if doc.lr is not None and doc.g.is_leaf(d.wrt) and value is not None:
        row = _row(doc, d)
        item["descent"] = {"old": row["old"], "lr": format_number(doc.lr), "value": wrap_negative(value),
                           "new": row["new"]}
    return item


def _distinct(sides: list[list[str]], lhs: str) -> list[list[str]]:
    """The sides of a chain of equalities without repeats (∂F/∂a = ∂F/∂a, 0 = 0)."""
    out: list[list[str]] = []
    for s in sides:
        text = "".join(s)
        if text != lhs and (not out or "".join(out[-1]) != text):
            out.append(s)
    return out


def _short_result(d: Derivation) -> bool:
    """A result small enough to be worth writing out (it is printed only if it fits on two lines)."""
    terms = d.accumulation[-1].terms if d.accumulation else 0
    return 0 < terms <= RESULT_TERMS and not any(s.name.startswith("δ_") for s in d.result.free_symbols)


def _groups(doc: _Doc) -> list[dict]:
    """Parameters with the same structure (same layer, path count, local derivative shapes), in order."""
    groups: dict = {}
    for d in doc.ders:
        groups.setdefault(_group_key(doc, d), []).append(d)
    out = []
    near = {key: min((doc.level.get(c, 0) for c in _kids(m[0])), default=10**9) for key, m in groups.items()}
    for key in sorted(groups, key=near.__getitem__):          # stable: the output side first
        members = groups[key]
        d0 = members[0]
        kids = _kids(d0)
        layer = doc.layer.get(kids[0]) if kids else None
        ones = all(doc.edges[(c, d0.wrt)].expr == 1 for c in kids) if kids else False
        rows = [_row(doc, d) for d in members]
        out.append({"layer": layer, "kind": (("bias" if ones else "weight") if doc.g.is_leaf(d0.wrt) else "node") if doc.layer else None,
                    "kinds": (("biases" if ones else "weights") if doc.g.is_leaf(d0.wrt) else "nodes")
                    if doc.layer else None,
                    "names": [d.wrt for d in members], "texs": [r["tex"] for r in rows],
                    "path_count": d0.path_count, "rows": rows, "worked": _worked(doc, d0),
                    "wrt": d0.wrt, "wrt_tex": doc.names.tex(d0.wrt), "frac": doc.names.frac(doc.output, d0.wrt),
                    "via": rows[0]["via"], "leaf": doc.g.is_leaf(d0.wrt)})
    return out


def _inactive(doc: _Doc) -> list[dict]:
    """ReLU units whose argument is ≤ 0 at the point: they output 0 and pass no gradient back.

    For each: the parameters whose gradient is 0 because every path to them runs through
    the unit (``through``), and those that multiply the unit's 0 (``times``)."""
    if doc.point is None:
        return []
    env = {symbol(x): v for x, v in doc.point.values.items() if v is not None}
    out = []
    for n in doc.g.nodes:
        if n.name not in doc.on or not isinstance(n.expr, relu):
            continue
        arg = n.expr.args[0]
        v = Point._eval(arg, env, {}) if arg.free_symbols <= set(env) else None
        if v is None or v > 0:
            continue
        through, times = [], []
        for d in doc.ders:
            if not d.path_count or doc.delta(d.wrt) != 0:
                continue
            if n.name in d.cone.nodes:
                through.append(doc.names.tex(d.wrt))
            elif any(doc.edges[(c, d.wrt)].expr == n.symbol for c in _kids(d)):
                times.append(doc.names.tex(d.wrt))
        out.append({"unit": doc.names.tex(n.name), "arg": doc.printer.doprint(arg), "value": _num(v),
                    "zero": through, "times": times})
    return out


def _undefined(doc: _Doc) -> dict | None:
    """What cannot be computed at the point (outside a function's domain), said once."""
    if doc.point is None or not doc.point.undefined:
        return None
    names = doc.names
    items = []
    for kind, what in doc.point.undefined:
        if kind == "value":
            items.append(names.tex(what))
        else:
            items.append(names.frac(*what))
    missing = [names.frac(d.output, d.wrt) for d in doc.ders if d.path_count and doc.delta(d.wrt) is None]
    return {"items": items, "gradients": missing}


def _checks(doc: _Doc) -> dict:
    methods: dict[str, int] = {}
    for p in doc.edges.values():
        methods[p.check.method] = methods.get(p.check.method, 0) + 1
    by_detail: dict[str, list[str]] = {}
    for d in doc.ders:
        by_detail.setdefault(d.check.detail, []).append(doc.names.frac(d.output, d.wrt))
    return {"locals": len(doc.edges), "methods": methods,
            "results": [{"detail": k, "fracs": v} for k, v in by_detail.items()]}


def context(derivations: list[Derivation], *, fragment: bool = False, fmt: str = "md") -> dict:
    """The template context of one document (see the README's template section for its keys)."""
    doc = _Doc(derivations, fmt)
    first = derivations[0]
    g, names = doc.g, doc.names
    locals_, rules = _locals(doc)
    wrt_texs = [names.tex(d.wrt) for d in derivations]
    iverson = any(p.expr.has(sp.Heaviside) for p in doc.edges.values())
    return {
        "view": "scalar",
        "title": first.title, "output": first.output, "output_tex": names.tex(first.output), "fragment": fragment,
        "wrt": wrt_texs[:LISTED_NAMES], "wrt_more": max(0, len(wrt_texs) - LISTED_NAMES),
        "wrt_count": len(wrt_texs),
        "picture": _graph_picture(g, names, {d.wrt for d in derivations}),
        "equations": _equations(doc),
        "leaves": [{"name": x, "tex": names.tex(x), "value": _num(doc.value(x)) if doc.point else None}
                   for x in g.ancestors(g.output) if g.is_leaf(x)],
        "has_numbers": doc.point is not None, "lr": None if first.lr is None else format_number(first.lr),
        "at_missing": [x for x in g.leaves if x not in doc.at] if doc.at else None,
        "undefined": _undefined(doc),
        "partials": locals_, "rules": rules, "iverson": iverson,
        "network": bool(doc.layer),
        "deltas": _deltas(doc), "inactive": _inactive(doc),
        "groups": _groups(doc),
        "checks": _checks(doc),
    }


def render(derivations: list[Derivation], fmt: str, *, fragment: bool = False, template_path: str | None = None) -> str:
    """Markdown (``md``) or LaTeX (``tex``) for one or more derivations of one definition
    (scalar ``Derivation``s, or the layer view's ``LayerDerivation``s: the same templates)."""
    bad = [f for d in derivations for f in d.failures]
    if bad:
        raise VerificationError("the derivation did not pass its checks, so no document is written: " + "; ".join(bad))
    if getattr(derivations[0], "view", "scalar") == "layer":     # vectors and matrices (render_layer.py)
        from .render_layer import context as layer_context
        ctx = layer_context(derivations, fragment=fragment, fmt=fmt)
    else:
        ctx = context(derivations, fragment=fragment, fmt=fmt)
    env = _env(fmt, template_path)
    name = {"md": "derivation.md.j2", "tex": "fragment.tex.j2" if fragment else "derivation.tex.j2"}[fmt]
    return env.get_template(name).render(**ctx)


# ---------------------------------------------------------------- JSON ---

class _MemoStr(StrPrinter):
    """sympy's ``str()`` printer that remembers the text of every subexpression it prints.

    Its text of an expression depends on the expression alone (a parent adds parentheses
    around a child's text, never changes it), so a δ shared by a thousand results is
    printed once, not once per result. The memory is dropped when it grows past MEMO."""

    MEMO = 200_000

    def __init__(self):
        super().__init__()
        self.memo: dict = {}

    def _print(self, expr, **kwargs):
        if kwargs or not isinstance(expr, sp.Basic):
            return super()._print(expr, **kwargs)
        text = self.memo.get(expr)
        if text is None:
            text = self.memo[expr] = super()._print(expr)
        return text

    def text(self, expr) -> str:
        if len(self.memo) > self.MEMO:
            self.memo.clear()
        return self.doprint(expr)


_PRINTER = _MemoStr()


def _sstr(expr) -> str:
    """sympy's str() of an expression (the same text as ``sympy.sstr``), subexpressions printed once."""
    return _PRINTER.text(expr)


_CLAIMS: dict[int, tuple] = {}


def _claims(graph) -> dict:
    """The text of each node's accumulation claim, δ_n = Σ δ_c ∂c/∂n, per graph (the last few graphs);
    also the first routes to a node and the JSON text of steps that recur in every derivation."""
    found = _CLAIMS.get(id(graph))
    if found is None or found[0] is not graph:
        if len(_CLAIMS) >= 4:
            _CLAIMS.clear()
        found = _CLAIMS[id(graph)] = (graph, {})
    return found[1]


def _json_paths(d: Derivation) -> list[tuple[str, ...]]:
    """The first JSON_PATHS routes to d.wrt. Where wrt has one child c in the cone (a weight), they
    are the first routes to c, each followed by wrt: those are found once per c, for all its weights."""
    from itertools import islice

    from .paths import iter_paths
    if not d.path_count:
        return []
    kids = d.accumulation[-1].children if d.accumulation else ()
    if len(kids) != 1 or kids[0] == d.output:
        return list(islice(iter_paths(d.graph, d.wrt, cone=d.cone), JSON_PATHS))
    return [p + (d.wrt,) for p in _routes_to(d.graph, kids[0])]


def _routes_to(graph, name: str) -> list[tuple[str, ...]]:
    """The first JSON_PATHS routes from the output to ``name``, found once per graph."""
    from itertools import islice

    from .paths import iter_paths
    memo = _claims(graph)
    found = memo.get(("routes", name))
    if found is None:
        found = memo[("routes", name)] = list(islice(iter_paths(graph, name), JSON_PATHS))
    return found


def derivation_json(d: Derivation) -> dict:
    """The JSON object of SPEC §2.2 for one derivation (work linear in its cone and its paths)."""
    paths = [list(p) for p in _json_paths(d)]
    steps: list[dict] = []
    on = set(d.cone.nodes)
    for n in d.graph.nodes:
        if n.name in on:
            steps.append({"kind": "definition", "name": n.name, "expression": _sstr(n.expr)})
    steps.append({"kind": "paths", "count": d.path_count, "shown": [list(p) for p in d.paths]})
    for p in d.partials:
        steps.append({"kind": "local", "of": p.child, "wrt": p.parent, "expression": _sstr(p.expr),
                      "rules": list(p.rules), "check": p.check.as_dict()})
    if d.path_sum is not None:
        steps.append({"kind": "chain", "paths": [list(p) for p in d.paths],
                      "expression": _sstr(d.path_sum)})
    by_edge = {(p.child, p.parent): p for p in d.partials}
    claims = _claims(d.graph)
    for a in d.accumulation:
        text = claims.get(a.node)
        if text is None:          # the same in every derivation whose cone holds the node
            claim = sp.Add(*[delta_symbol(c) * by_edge[(c, a.node)].expr for c in a.children]) \
                if a.children else sp.S.One
            text = claims[a.node] = _sstr(claim)
        steps.append({"kind": "accumulate", "node": a.node, "children": list(a.children), "expression": text})
    result = _sstr(d.result)
    steps.append({"kind": "result", "expression": result, "check": d.check.as_dict()})
    return {"output": d.output, "wrt": d.wrt, "path_count": d.path_count, "paths": paths,
            "result": result, "verified": d.verified, "check": d.check.as_dict(), "steps": steps}


# ------------------------------------------------------- JSON as text ---
#
# ``derive --format json`` prints ``json.dumps(objects, indent=1, ensure_ascii=False)``. The json
# module encodes indented output in Python, one generator step per value: 16-32-32-10's 1,930
# derivations (300,000 local steps, 660,000 paths) took minutes. The writer below produces the
# same text (the tests compare it with json.dumps), with the text of the steps that recur in
# every derivation (a local partial, a node's definition and accumulation, the routes to a
# weight's child) made once per graph.

def _dump(v, level: int) -> str:
    """``json.dumps(v, indent=1, ensure_ascii=False)`` of plain data nested ``level`` deep."""
    if isinstance(v, str):
        return _quote(v)
    if v is True or v is False or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        return json.dumps(v)
    pad = "\n" + " " * (level + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{" + pad + ("," + pad).join(_quote(k) + ": " + _dump(x, level + 1) for k, x in v.items()) \
            + "\n" + " " * level + "}"
    if not v:
        return "[]"
    if all(isinstance(x, str) for x in v):
        return "[" + pad + ("," + pad).join(map(_quote, v)) + "\n" + " " * level + "]"
    return "[" + pad + ("," + pad).join(_dump(x, level + 1) for x in v) + "\n" + " " * level + "]"


def _derivation_text(d: Derivation, level: int) -> str:
    """The text of ``derivation_json(d)`` as ``_dump`` writes it ``level`` deep."""
    memo = _claims(d.graph)
    at = level + 1            # the object's keys
    step = level + 2          # the steps in their list

    def cached(key, make):
        text = memo.get(key)
        if text is None:
            text = memo[key] = make()
        return text

    pieces = []
    on = set(d.cone.nodes)
    for n in d.graph.nodes:
        if n.name in on:
            pieces.append(cached(("def", n.name, step), lambda: _dump(
                {"kind": "definition", "name": n.name, "expression": _sstr(n.expr)}, step)))
    pieces.append(_dump({"kind": "paths", "count": d.path_count, "shown": [list(p) for p in d.paths]}, step))
    for p in d.partials:
        pieces.append(cached(("local", p.child, p.parent, step), lambda: _dump(
            {"kind": "local", "of": p.child, "wrt": p.parent, "expression": _sstr(p.expr),
             "rules": list(p.rules), "check": p.check.as_dict()}, step)))
    if d.path_sum is not None:
        pieces.append(_dump({"kind": "chain", "paths": [list(p) for p in d.paths],
                             "expression": _sstr(d.path_sum)}, step))
    by_edge = {(p.child, p.parent): p for p in d.partials}
    for a in d.accumulation:
        def accumulate():
            text = memo.get(a.node)
            if text is None:
                claim = sp.Add(*[delta_symbol(c) * by_edge[(c, a.node)].expr for c in a.children]) \
                    if a.children else sp.S.One
                text = memo[a.node] = _sstr(claim)
            return _dump({"kind": "accumulate", "node": a.node, "children": list(a.children),
                          "expression": text}, step)
        pieces.append(cached(("acc", a.node, step), accumulate))
    result = _sstr(d.result)
    pieces.append(_dump({"kind": "result", "expression": result, "check": d.check.as_dict()}, step))
    pad, inner = "\n" + " " * at, "\n" + " " * step
    fields = [_quote("output") + ": " + _quote(d.output), _quote("wrt") + ": " + _quote(d.wrt),
              _quote("path_count") + ": " + int.__repr__(d.path_count),
              _quote("paths") + ": " + _paths_text(d, at),
              _quote("result") + ": " + _quote(result),
              _quote("verified") + ": " + ("true" if d.verified else "false"),
              _quote("check") + ": " + _dump(d.check.as_dict(), at),
              _quote("steps") + ": [" + inner + ("," + inner).join(pieces) + pad + "]"]
    return "{" + pad + ("," + pad).join(fields) + "\n" + " " * level + "}"


def _paths_text(d: Derivation, level: int) -> str:
    """The ``paths`` list of ``derivation_json(d)`` as text; the routes to a weight's child are
    written once, and each weight adds its own name."""
    if not d.path_count:
        return "[]"
    kids = d.accumulation[-1].children if d.accumulation else ()
    pad, inner = "\n" + " " * (level + 1), "\n" + " " * (level + 2)
    close = "\n" + " " * (level + 1) + "]"
    if len(kids) != 1 or kids[0] == d.output:
        items = [_dump(list(p), level + 1) for p in _json_paths(d)]
    else:
        memo = _claims(d.graph)
        key = ("routes", kids[0], level)
        heads = memo.get(key)
        if heads is None:         # each route to the child, its closing bracket left off
            heads = memo[key] = ["[" + inner + ("," + inner).join(map(_quote, p)) for p in _routes_to(d.graph, kids[0])]
        tail = "," + inner + _quote(d.wrt) + close
        items = [h + tail for h in heads]
    return "[" + pad + ("," + pad).join(items) + "\n" + " " * level + "]"


def derivations_json_text(derivations, as_list: bool):
    """The text of ``json.dumps(objects, indent=1, ensure_ascii=False)`` for the derivations' JSON
    objects (a list, or the one object), in pieces, one derivation at a time: a derivation of
    every parameter of a large network never holds all its text at once (16-32-32-10's 1,930
    derivations print 200 MB)."""
    if not as_list:
        (d,) = derivations
        yield _derivation_text(d, 0)
        return
    if not derivations:
        yield "[]"
        return
    for i, d in enumerate(derivations):
        yield ("[\n " if i == 0 else ",\n ") + _derivation_text(d, 1)
    yield "\n]"

