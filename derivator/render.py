"""Render: derivations -> Markdown or LaTeX, through jinja2 templates only.

Takes one or more ``Derivation`` objects of the same definition; gives text.
This module turns the derivations into plain data (math already printed by
``printing.py``) and hands it to one template; all prose and markup live in
``templates/``. The LaTeX environment uses ``<< >>`` and ``<% %>`` as
delimiters (no clash with braces), both use ``StrictUndefined``, and a
user's template folder, when given, comes first on the search path.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring as _quote   # json.dumps's quoting (ensure_ascii=False)
from importlib import resources

import jinja2
import mpmath
import sympy as sp
from sympy.printing.str import StrPrinter

from .check import DIGITS
from .derivation import DELTA, Derivation, delta_symbol
from .errors import VerificationError
from .expr import symbol
from .mpeval import NotReal, evaluate
from .printing import escape_md, escape_tex, format_number, tex, tex_lines, tex_name

JSON_PATHS = 1000           # paths listed in JSON (path_count is always exact)
PICTURE_NODES = 80          # larger graphs get no picture
LINE_WIDTH = {"md": 72, "tex": 48}   # characters per line of a long equation (tex: fits a default article)


def template_dir() -> str:
    return str(resources.files("derivator.templates"))


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
    env = jinja2.Environment(**opts)
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

def point_values(graph, at: dict) -> dict | None:
    """Every leaf and node at the point, in mpmath; None where a leaf has no value."""
    if not at or any(x not in at for x in graph.leaves):
        return None
    with mpmath.workdps(DIGITS):
        env = {symbol(k): mpmath.mpf(repr(float(at[k]))) for k in graph.leaves}
        try:
            for n in graph.nodes:
                env[symbol(n.name)] = evaluate(n.expr, env)
        except (NotReal, ZeroDivisionError, OverflowError, ValueError):
            return None
    return env


def _val(expr, env) -> float:
    with mpmath.workdps(DIGITS):
        try:
            return float(evaluate(expr, env))
        except (NotReal, ZeroDivisionError, OverflowError, ValueError):
            return float("nan")


# ------------------------------------------------------------- context ---

def _frac(top: str, bottom: str, display) -> str:
    return r"\frac{\partial " + tex_name(top, display) + r"}{\partial " + tex_name(bottom, display) + "}"


def _graph_picture(d: Derivation, display) -> dict | None:
    g = d.graph
    names = g.ancestors(g.output)
    if len(names) > PICTURE_NODES:
        return None
    on_nodes = set(d.cone.nodes)
    on_edges = set(d.cone.edges)
    level: dict[str, int] = {}
    for x in g.leaves:
        level[x] = 0
    for n in g.nodes:
        level[n.name] = 1 + max((level[p] for p in n.parents), default=-1)
    # leaves sit one column before their first user
    for x in g.leaves:
        kids = [c for c in g.children[x] if c in names]
        if kids:
            level[x] = max(0, min(level[c] for c in kids) - 1)
    columns: dict[int, list[str]] = {}
    for x in names:
        columns.setdefault(level[x], []).append(x)
    columns = _order_columns(g, dict(sorted(columns.items())), names)
    ids = {x: f"n{i}" for i, x in enumerate(names)}
    nodes = []
    for col, members in columns.items():
        for row, x in enumerate(members):
            nodes.append({"id": ids[x], "name": x, "tex": tex_name(x, display), "x": col * 2.4,
                          "y": -(row - (len(members) - 1) / 2) * 0.9, "leaf": g.is_leaf(x),
                          "on": x in on_nodes, "target": x == d.wrt, "output": x == g.output})
    edges = []
    for n in g.nodes:
        if n.name not in names:
            continue
        for p in n.parents:
            edges.append({"src": ids[p], "dst": ids[n.name], "on": (n.name, p) in on_edges,
                          "skip": level[n.name] - level[p] > 1})
    return {"nodes": nodes, "edges": edges,
            "highlight": [i for i, e in enumerate(edges) if e["on"]]}


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


def _partial_ctx(p, display, env, width=LINE_WIDTH["md"]):
    out = {"child": p.child, "parent": p.parent, "frac": _frac(p.child, p.parent, display),
           "tex": tex(p.expr, display), "lines": tex_lines(p.expr, display, width=width), "rules": list(p.rules),
           "check": p.check.as_dict()}
    if env is not None:
        vals = {s.name: float(v) for s, v in env.items()}
        out["numbers"] = tex(p.expr, display, values=vals) if p.expr.free_symbols else None
        out["value"] = _val(p.expr, env)
    return out


def context(derivations: list[Derivation], *, fragment: bool = False, width: int = LINE_WIDTH["md"]) -> dict:
    first = derivations[0]
    g = first.graph
    display = dict(first.display)
    at = dict(first.at)
    env = point_values(g, at)
    vals = {s.name: float(v) for s, v in env.items()} if env is not None else None
    relevant = g.ancestors(g.output)
    equations = []
    for n in g.nodes:
        if n.name not in relevant:
            continue
        e = {"name": n.name, "tex": tex_name(n.name, display), "rhs": tex(n.expr, display),
             "lines": tex_lines(n.expr, display, width=width)}
        if vals is not None:
            e["numbers"] = tex(n.expr, display, values=vals)
            e["numbers_lines"] = tex_lines(n.expr, display, values=vals, width=width)
            e["value"] = vals[n.name]
        equations.append(e)

    # local partials shared by every derivation of the document, output side first
    seen: dict = {}
    for d in derivations:
        for p in d.partials:
            seen.setdefault((p.child, p.parent), p)
    partials = [_partial_ctx(p, display, env, width) for p in seen.values()]
    rules_used: dict[str, str] = {}
    from .rules import RULES
    by_name = {r.name: r.formula for r in RULES.values()}
    for p in seen.values():
        for r in p.rules:
            rules_used.setdefault(r, by_name.get(r, ""))

    ders = []
    for d in derivations:
        by_edge = {(p.child, p.parent): p for p in d.partials}
        paths = []
        for p in d.paths:
            product = sp.Mul(*[by_edge[(a, b)].expr for a, b in zip(p, p[1:])])
            fracs = [_frac(a, b, display) for a, b in zip(p, p[1:])]
            paths.append({"names": list(p), "tex": r" \to ".join(tex_name(x, display) for x in p),
                          "leibniz": " ".join(fracs), "fracs": fracs,
                          "product": tex(product, display), "product_lines": tex_lines(product, display, width=width)})
        kids = d.accumulation[-1].children if d.accumulation else ()
        final = [{"delta": tex_name(DELTA + c, display), "partial": tex(by_edge[(c, d.wrt)].expr, display),
                  "one": by_edge[(c, d.wrt)].expr == 1} for c in kids]
        item = {
            "wrt": d.wrt, "wrt_tex": tex_name(d.wrt, display), "frac": _frac(d.output, d.wrt, display),
            "path_count": d.path_count, "paths": paths, "all_paths_shown": d.all_paths_shown,
            "final": final, "result_terms": d.accumulation[-1].terms if d.accumulation else 0,
            "result_short": _short(d.accumulation[-1].terms if d.accumulation else 0),
            "result": tex(d.result, display), "result_lines": tex_lines(d.result, display, width=width),
            "check": d.check.as_dict(), "picture": _graph_picture(d, display),
            "value": None, "descent": None,
        }
        if env is not None:
            item["value"] = _delta_value(d, d.wrt, env)
            spell = bool(d.result.free_symbols) and not d.result.is_Symbol and _short(item["result_terms"])
            item["result_numbers"] = tex(d.result, display, values=vals) if spell else None
            item["result_numbers_lines"] = tex_lines(d.result, display, values=vals, width=width) if spell else None
            if d.lr is not None and g.is_leaf(d.wrt):
                old = float(at[d.wrt])
                item["descent"] = {"lr": d.lr, "old": old, "new": old - d.lr * item["value"]}
        ders.append(item)
    return {
        "accumulation": _accumulation(derivations, display, env, width),
        "title": first.title, "output": first.output,
        "output_tex": tex_name(first.output, display), "fragment": fragment,
        "equations": equations, "leaves": [{"name": x, "tex": tex_name(x, display),
                                           "value": vals.get(x) if vals else None} for x in g.leaves if x in relevant],
        "partials": partials, "rules": [{"name": k, "formula": v} for k, v in rules_used.items()],
        "derivations": ders, "has_numbers": env is not None, "lr": first.lr,
        "at_missing": [x for x in g.leaves if x not in at] if at else None,
    }


SHORT_TERMS = 8   # a δ (or result) with at most this many path products is written out in documents


def _short(terms: int) -> bool:
    return 0 < terms <= SHORT_TERMS


def _layer_names(layers) -> dict[str, str]:
    """node -> its layer as a key the templates name: ``loss``, ``output`` or ``hidden-<l>``."""
    out = {}
    n = len(layers)
    for i, names in enumerate(layers):
        key = "loss" if i == n - 1 else ("output" if i == n - 2 else f"hidden-{i + 1}")
        for x in names:
            out[x] = key
    return out


def _accumulation(derivations: list[Derivation], display, env, width) -> list[dict]:
    """δ for every node the document needs, once, output first (grouped by layer for networks).

    δ_n is the same in every derivation (its children that reach the output are on every
    route through n), so a document for several weights computes each once."""
    first = derivations[0]
    g = first.graph
    items: dict[str, tuple] = {}
    for d in derivations:
        by_edge = {(p.child, p.parent): p for p in d.partials}
        for a in d.accumulation:
            if a.node == d.output or (a.node == d.wrt and g.is_leaf(a.node)) or a.node in items:
                continue
            items[a.node] = (a, by_edge, d)
    layer = _layer_names(first.layers)
    # by distance from the output, then graph order: δ_o1, δ_o2, then δ_z4, δ_z5, … (children come first)
    dist: dict[str, int] = {g.output: 0}
    for n in reversed(g.nodes):
        if n.name != g.output:
            dist[n.name] = 1 + max((dist[c] for c in g.children[n.name] if c in dist), default=-10**9)
    pos = {n.name: i for i, n in enumerate(g.nodes)}
    order = sorted(items, key=lambda x: (dist[x], pos[x]))
    out = []
    for name in order:
        a, by_edge, d = items[name]
        item = {"node": name, "delta": tex_name(DELTA + name, display), "name": tex_name(name, display),
                "frac": _frac(d.output, name, display), "layer": layer.get(name),
                "terms": [{"delta": tex_name(DELTA + c, display), "partial": tex(by_edge[(c, name)].expr, display),
                           "one": by_edge[(c, name)].expr == 1} for c in a.children],
                "lines": tex_lines(a.expr, display, width=width) if a.expr is not None and _short(a.terms) else None}
        if env is not None:
            item["value"] = _delta_value(d, name, env)
        out.append(item)
    return out


def _delta_value(d: Derivation, name: str, env) -> float:
    """δ_name at the point, by this derivation's own partials (reverse accumulation)."""
    by_edge = {(p.child, p.parent): p for p in d.partials}
    on = set(d.cone.nodes)
    delta = {d.output: mpmath.mpf(1)}
    with mpmath.workdps(DIGITS):
        for a in d.accumulation:
            if a.node == d.output:
                continue
            try:
                delta[a.node] = mpmath.fsum(delta[c] * evaluate(by_edge[(c, a.node)].expr, env) for c in a.children if c in on)
            except (NotReal, ZeroDivisionError, OverflowError, ValueError):
                return float("nan")
    return float(delta.get(name, 0))


def render(derivations: list[Derivation], fmt: str, *, fragment: bool = False, template_path: str | None = None) -> str:
    """Markdown (``md``) or LaTeX (``tex``) for one or more derivations of one definition."""
    bad = [f for d in derivations for f in d.failures]
    if bad:
        raise VerificationError("the derivation did not pass its checks, so no document is written: " + "; ".join(bad))
    ctx = context(derivations, fragment=fragment, width=LINE_WIDTH[fmt])
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

