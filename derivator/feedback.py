"""Feedback: verdicts -> a message for the student, and a report as text, Markdown or LaTeX.

Takes ``verdict.Verdict`` objects (a ``verdict.Report``); gives text. As in ``render.py``,
this module only turns verdicts into plain data (math printed by ``printing.py``) and
hands it to one template: all prose and markup live in ``templates/check.*.j2`` and
``templates/check_message.txt.j2``.

The correct derivation shown for comparison, and its graph picture, come from
``render.py``'s context of the derivation; ``_derivation_view`` is the one place that
depends on render.py (its ``context``, ``LINE_WIDTH`` and jinja environment).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp
from sympy.printing.str import StrPrinter

from .printing import tex, tex_lines, tex_name

POINT_LEAVES = 16           # leaves named in a message's point (the JSON and documents give them all)
DOC_PATHS = 16              # missing or extra paths listed in documents
LINE_WIDTHS = {"md": 72, "tex": 48}   # characters per line of a long claim
LOCAL_EDGES = 8             # local partials listed in a message about a sign

FUNCTION_TEXT = {"sigmoid": "σ′", "tanh": "tanh′", "relu": "relu′", "softplus": "softplus′", "exp": "exp′",
                 "log": "log′", "sin": "sin′", "cos": "cos′", "Abs": "abs′"}
FUNCTION_TEX = {"sigmoid": r"\sigma'", "tanh": r"\tanh'", "relu": r"\operatorname{relu}'",
                "softplus": r"\operatorname{softplus}'", "exp": r"\exp'", "log": r"\log'", "sin": r"\sin'",
                "cos": r"\cos'", "Abs": r"\operatorname{abs}'"}


# ------------------------------------------------------- render.py, in one place ---

def _environment(fmt: str, template_path: str | None = None):
    from .render import _env
    env = _env("tex" if fmt == "tex" else "md", template_path)
    env.filters["g"] = _g
    env.filters["brk"] = _breakable
    return env


def _breakable(escaped: str) -> str:
    """Escaped LaTeX text with break points after * and / (a long product has no spaces to break at)."""
    return escaped.replace("*", "*\\allowbreak{}").replace("/", "/\\allowbreak{}")


def _derivation_view(der, fmt: str) -> dict | None:
    """The correct derivation for comparison (paths, their products, result, picture), printed as the
    derivation documents print it (render.py's picture layout, printing.py's names and LaTeX)."""
    from .printing import Names, TexPrinter, break_lines, expr_pieces, tidy
    from .render import LINE_WIDTH, _graph_picture, _short_result
    g = der.graph
    names = Names(g.names, dict(der.display))
    printer = TexPrinter(names)
    width = LINE_WIDTH["tex" if fmt == "tex" else "md"]
    pic = _graph_picture(g, names, {der.wrt})
    if pic is not None:
        on_nodes, on_edges = set(der.cone.nodes), set(der.cone.edges)
        ids = {n["id"]: n["name"] for n in pic["nodes"]}
        pic = dict(pic, nodes=[n | {"on": n["name"] in on_nodes, "target": n["name"] == der.wrt}
                               for n in pic["nodes"]],
                   edges=[e | {"on": (ids[e["dst"]], ids[e["src"]]) in on_edges} for e in pic["edges"]])
    by_edge = {(p.child, p.parent): p for p in der.partials}
    paths = []
    for p in der.paths:
        product = sp.Mul(*[tidy(by_edge[(a, b)].expr) for a, b in zip(p, p[1:])])
        fracs = [names.frac(a, b) for a, b in zip(p, p[1:])]
        paths.append({"names": list(p), "tex": r" \to ".join(names.tex(x) for x in p),
                      "leibniz": " ".join(fracs), "fracs": fracs, "product": printer.doprint(product),
                      "product_lines": break_lines(expr_pieces(printer, product, width), width)})
    short = _short_result(der)
    return {"picture": pic, "paths": paths, "path_count": der.path_count, "all_paths_shown": der.all_paths_shown,
            "result_short": short,
            "result_lines": break_lines(expr_pieces(printer, tidy(der.result), width), width) if short else None}


# ------------------------------------------------------------------- context ---

class _TextPrinter(StrPrinter):
    """SymPy's str() but for the step function of relu′, max and min: [z1 > 0], [a - b >= 0]."""

    def _print_Heaviside(self, expr):
        arg, h0 = expr.args
        return f"[{self._print(arg)} {'>=' if h0 == 1 else '>'} 0]"


def _text(expr) -> str:
    return _TextPrinter().doprint(expr)


def _g(v, digits: int = 9) -> str:
    """A number as plain text: 9 significant digits, a minus sign, no exponent below 1e-4."""
    if v is None:
        return "not a finite number"
    s = f"{float(v):.{digits}g}"
    return s.replace("-", "−")


def _command(v, file_only: bool = False) -> str:
    """The command that writes the whole derivation of the claim's derivative (or just its FILE)."""
    import shlex
    source = shlex.quote("".join(ch for ch in v.definition.source if ch.isprintable() and ch != "`"))
    return source if file_only else f"derivator derive {source} --wrt {v.wrt}"


def _frac_text(top: str, bottom: str) -> str:
    return f"∂{top}/∂{bottom}"


def _frac_tex(top: str, bottom: str, display) -> str:
    return r"\frac{\partial " + tex_name(top, display) + r"}{\partial " + tex_name(bottom, display) + "}"


def _path(p, display) -> dict:
    return {"names": list(p), "text": " → ".join(p), "tex": r" \to ".join(tex_name(x, display) for x in p)}


def _part(fp, display, der) -> dict:
    fn = fp.function
    arg = fp.parent
    on_every = False
    if der.path_count:
        from .paths import count_paths
        g = der.graph
        through = count_paths(g, fp.child) * (1 if fp.parent == der.wrt else count_paths(g, der.wrt, output=fp.parent))
        on_every = through == der.path_count
    return {"child": fp.child, "parent": fp.parent, "power": fp.power,
            "frac_text": _frac_text(fp.child, fp.parent), "frac": _frac_tex(fp.child, fp.parent, display),
            "text": _text(fp.expr), "tex": tex(fp.expr, display),
            "fn_text": f"{FUNCTION_TEXT[fn]}({arg})" if fn in FUNCTION_TEXT else None,
            "fn_tex": f"{FUNCTION_TEX[fn]}\\left({tex_name(arg, display)}\\right)" if fn in FUNCTION_TEX else None,
            "on_every_path": on_every}


def verdict_context(v, fmt: str = "text", index: int = 1) -> dict:
    """A verdict as plain data for the templates (math as LaTeX strings, text as text)."""
    der = v.derivation
    display = dict(v.definition.display)
    out = v.output
    ctx = {
        "index": index, "wrt": v.wrt, "wrt_tex": tex_name(v.wrt, display), "output": out,
        "output_tex": tex_name(out, display), "frac": _frac_tex(out, v.wrt, display),
        "slash": r"\partial " + tex_name(out, display) + r" / \partial " + tex_name(v.wrt, display),
        "frac_text": _frac_text(out, v.wrt), "claim": v.claim, "claim_tex": tex(v.expr, display),
        "claim_lines": tex_lines(v.expr, display, width=LINE_WIDTHS.get(fmt, 72)),
        "command": _command(v), "command_file": _command(v, file_only=True), "correct": v.correct, "kind": v.kind, "check": v.check, "method": v.method, "number": v.number,
        "agrees_at_given": v.agrees_at_given, "given_actual": v.given_actual, "line": v.line, "path_total": der.path_count,
        "result_text": _text(der.result), "result_tex": tex(der.result, display),
        "paths": [_path(p, display) | {"twice": p in v.counted_twice, "own": p[-1] == v.wrt}
                  for p in v.paths[:DOC_PATHS if fmt in ("md", "tex") else len(v.paths)]],
        "path_count": v.path_count, "counterexample": None, "factor": None, "equals": None, "mixed": None,
        "local": [], "derivation": None,
    }
    ctx["paths_own"] = all(p["own"] for p in ctx["paths"])
    ctx["all_twice"] = bool(v.counted_twice) and len(v.counted_twice) == len(v.paths)
    cx = v.counterexample
    if cx is not None:
        rows = [{"name": k, "tex": tex_name(k, display), "value": x} for k, x in cx.at]
        shown = ", ".join(f"{k} = {_g(x)}" for k, x in cx.at[:POINT_LEAVES])
        if len(cx.at) > POINT_LEAVES:
            shown += f" and {len(cx.at) - POINT_LEAVES} more"
        ctx["counterexample"] = {"rows": rows, "claimed": cx.claimed, "actual": cx.actual, "given": cx.given,
                                 "point_text": shown}
    if v.per_path:
        parts = [_part(fp, display, der) for fp in v.factor_parts]
        ctx["factor"] = {"per_path": True, "power": v.factor_parts[0].power, "parts": parts, "constant": None,
                         "text": ", ".join(p["text"] for p in parts), "up": [], "down": []}
    elif v.factor is not None:
        const = v.factor_constant
        ctx["factor"] = {"per_path": False, "text": _text(v.factor), "tex": tex(v.factor, display),
                         "constant": None if const is None or const == 1 else {"text": _text(const), "tex": tex(const)},
                         "parts": [_part(fp, display, der) for fp in v.factor_parts]}
        ctx["factor"]["up"] = [p for p in ctx["factor"]["parts"] if p["power"] > 0]
        ctx["factor"]["down"] = [p for p in ctx["factor"]["parts"] if p["power"] < 0]
    if v.equals:
        ctx["equals"] = {"name": v.equals, "frac_text": _frac_text(out, v.equals),
                         "frac": _frac_tex(out, v.equals, display), "tex": tex_name(v.equals, display)}
    if v.mixed:
        missing, extra = v.mixed
        ctx["mixed"] = {"missing": [_path(p, display) for p in missing], "extra": [_path(p, display) for p in extra]}
    if len(der.partials) <= LOCAL_EDGES:
        ctx["local"] = [{"frac_text": _frac_text(p.child, p.parent), "frac": _frac_tex(p.child, p.parent, display),
                         "text": _text(p.expr), "tex": tex(p.expr, display)} for p in der.partials]
    if fmt in ("md", "tex") and not v.correct:
        ctx["derivation"] = _annotated(_derivation_view(der, fmt), v)
    return ctx


def _only_on(paths, der, complete: bool):
    """The edges and nodes of ``paths`` that no other path from the output to wrt uses (all of
    theirs where the list is not complete), as sets of (child, parent) and of names."""
    from collections import Counter

    from .paths import routes_down
    g = der.graph
    edges = Counter((a, b) for p in paths for a, b in zip(p, p[1:]))
    nodes = Counter(x for p in paths for x in p)
    if not complete:
        return set(edges), set(nodes)
    down = routes_down(g, der.wrt)
    up: dict[str, int] = {der.output: 1}          # routes from the output down to each name
    for n in reversed(g.nodes):
        for parent in n.parents:
            up[parent] = up.get(parent, 0) + up.get(n.name, 0)
    only_e = {e for e, k in edges.items() if up.get(e[0], 0) * down.get(e[1], 0) == k}
    only_n = {x for x, k in nodes.items() if up.get(x, 0) * down.get(x, 0) == k}
    return only_e, only_n


def _annotated(view: dict | None, v) -> dict | None:
    """The derivation's picture with the claim's missing, extra and factor edges marked."""
    if view is None:
        return None
    pic = view.get("picture")
    if pic:
        names = {n["id"]: n["name"] for n in pic["nodes"]}
        none: tuple = (set(), set())
        complete = len(v.paths) == v.path_count
        missing_e, missing_n = _only_on(v.paths, v.derivation, complete) if v.kind == "missing_paths" else none
        extra_e, extra_n = ({(a, b) for p in v.paths for a, b in zip(p, p[1:])}, {x for p in v.paths for x in p}) \
            if v.kind == "extra_paths" else none
        factor = {(fp.child, fp.parent) for fp in v.factor_parts}
        pic = dict(pic)
        pic["edges"] = [e | {"missing": (names[e["dst"]], names[e["src"]]) in missing_e,
                             "extra": (names[e["dst"]], names[e["src"]]) in extra_e and not e["on"],
                             "factor": (names[e["dst"]], names[e["src"]]) in factor} for e in pic["edges"]]
        pic["nodes"] = [n | {"missing": n["name"] in missing_n, "extra": n["name"] in extra_n and not n["on"]}
                        for n in pic["nodes"]]
        for mark in ("missing", "extra", "factor"):
            pic[mark] = [i for i, e in enumerate(pic["edges"]) if e[mark]]
        pic["plain_on"] = [i for i, e in enumerate(pic["edges"])
                           if e["on"] and not (e["missing"] or e["extra"] or e["factor"])]
        view = dict(view, picture=pic)
    marked = set(v.paths) if v.kind in ("missing_paths", "extra_paths") else set()
    tag = "missing" if v.kind == "missing_paths" else "twice"
    view = dict(view, paths=[p | {"mark": tag if tuple(p["names"]) in marked else None} for p in view["paths"]])
    return view


def message(v) -> str:
    """The paragraph for the student (plain text)."""
    return _paragraph(verdict_context(v, "text"))


def _paragraph(ctx: dict) -> str:
    return " ".join(str(_message_template().module.message(ctx)).split())


@lru_cache(maxsize=1)
def _message_template():
    return _environment("text").get_template("check_message.txt.j2")


def report_context(report, fmt: str) -> dict:
    d = report.definition
    display = dict(d.display)
    right, total = report.score
    verdicts = []
    for i, v in enumerate(report.verdicts, 1):
        c = verdict_context(v, fmt, i)
        c["message"] = _paragraph(c) if fmt == "text" else None
        verdicts.append(c)
    return {"title": d.title, "source": d.source, "output": d.output, "output_tex": tex_name(d.output, display),
            "verdicts": verdicts, "right": right, "total": total}


def render_report(report, fmt: str, *, template_path: str | None = None) -> str:
    """The report as ``text``, ``md`` or ``tex`` (a whole LaTeX article)."""
    name = {"text": "check.txt.j2", "md": "check.md.j2", "tex": "check.tex.j2"}[fmt]
    return _environment(fmt, template_path).get_template(name).render(**report_context(report, fmt))
