"""Definitions: a YAML file or a dict -> a validated ``Definition``.

Takes a path (or the name of a shipped example) or a dict; gives a frozen
``Definition`` in the equations form. The network form is expanded here into
equations (see ``network.py``), so every later stage sees one form.

YAML is read with PyYAML's safe composer and walked by hand: no object is
ever constructed from a tag, duplicate keys are errors (loaders silently keep
the last one), and every value keeps its line for error messages.
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from .errors import DefinitionError, ExpressionError, InputError
from .expr import NAME_RE, Parsed, parse_expression
from .functions import FUNCTIONS

TOP_KEYS = ("title", "equations", "network", "output", "wrt", "at", "lr")
MAX_EQUATIONS = 20_000
MAX_FILE_BYTES = 5_000_000


@dataclass(frozen=True)
class Equation:
    name: str
    text: str
    expr: Any                    # sympy expression in terms of parent symbols
    parents: tuple[str, ...]     # names used, in order of first use
    line: int | None = None


@dataclass(frozen=True)
class Definition:
    equations: tuple[Equation, ...]
    output: str
    wrt: tuple[str, ...]
    at: tuple[tuple[str, float], ...] = ()
    lr: float | None = None
    title: str | None = None
    source: str = "<definition>"
    form: str = "equations"                              # equations | network
    display: tuple[tuple[str, str], ...] = ()            # name -> LaTeX, where it differs
    layers: tuple[tuple[str, ...], ...] = ()             # network form: node names per layer
    lines: tuple[tuple[str, int], ...] = field(default=(), compare=False)   # key path -> line

    @property
    def at_dict(self) -> dict[str, float]:
        return dict(self.at)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.equations)

    def line_of(self, key: str) -> int | None:
        return dict(self.lines).get(key)


# ---------------------------------------------------------------- YAML ---

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq",
}


class _Node:
    """A YAML value with its line (1-based) and column (1-based)."""

    __slots__ = ("value", "line", "column", "raw", "plain")

    def __init__(self, value, line, column, raw=None, plain=False):
        self.value, self.line, self.column, self.raw, self.plain = value, line, column, raw, plain


def _walk(node, loader, source) -> _Node:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if node.tag not in _PLAIN_TAGS:
        raise DefinitionError(f"YAML tag {node.tag!r} is not allowed", source=source, line=line, column=col,
                              hint="definitions are plain YAML: mappings, lists, strings and numbers")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, tuple[_Node, _Node]] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge" or not isinstance(knode, yaml.ScalarNode):
                raise DefinitionError("keys must be plain names", source=source,
                                      line=knode.start_mark.line + 1, column=knode.start_mark.column + 1)
            key = knode.value
            if key in out:
                raise DefinitionError(f"duplicate key {key!r} (first on line {out[key][0].line})", source=source,
                                      line=knode.start_mark.line + 1, column=knode.start_mark.column + 1,
                                      hint="each key may appear once in a mapping")
            out[key] = (_Node(key, knode.start_mark.line + 1, knode.start_mark.column + 1), _walk(vnode, loader, source))
        return _Node(out, line, col)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_walk(v, loader, source) for v in node.value], line, col)
    value = loader.construct_object(node)
    plain = node.style is None and node.end_mark.line == node.start_mark.line
    return _Node(value, line, col, raw=node.value, plain=plain)


def _read_yaml(text: str, source: str) -> _Node:
    if not text.strip():
        raise DefinitionError("the file is empty", source=source, line=1,
                              hint="a definition needs `equations:` or `network:`")
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise DefinitionError("the file holds no YAML document", source=source, line=1,
                                      hint="a definition needs `equations:` or `network:`")
            return _walk(root, loader, source)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
        raise DefinitionError(f"YAML syntax error: {what}", source=source,
                              line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise DefinitionError(f"YAML error: {e}", source=source) from None
    except RecursionError:
        raise DefinitionError("YAML is nested too deeply", source=source) from None


def _plain(node: _Node):
    """A _Node tree back to plain Python values (for load_dict parity)."""
    v = node.value
    if isinstance(v, dict):
        return {k: _plain(vn) for k, (_, vn) in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _wrap(value, source: str) -> _Node:
    """A plain dict (Python API) as a _Node tree without lines."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise DefinitionError(f"key {k!r} is not a string", source=source)
            out[k] = (_Node(k, None, None), _wrap(v, source))
        return _Node(out, None, None)
    if isinstance(value, (list, tuple)):
        return _Node([_wrap(v, source) for v in value], None, None)
    return _Node(value, None, None, raw=str(value) if isinstance(value, (int, float, str)) else None, plain=True)


# ------------------------------------------------------------ validation ---

class _Ctx:
    def __init__(self, source: str):
        self.source = source
        self.lines: dict[str, int] = {}

    def err(self, message, node: _Node | None = None, hint=None, cls=DefinitionError) -> DefinitionError:
        return cls(message, source=self.source, line=node.line if node else None,
                   column=node.column if node else None, hint=hint)

    def mapping(self, node: _Node, what: str) -> dict[str, tuple[_Node, _Node]]:
        if not isinstance(node.value, dict):
            raise self.err(f"{what} must be a mapping (name: value), got {_kind(node.value)}", node)
        return node.value

    def keys(self, mapping, allowed, what):
        for key, (knode, _) in mapping.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
                raise self.err(f"unknown key {key!r} in {what}", knode, hint=hint)

    def number(self, node: _Node, what: str, *, integer=False) -> float:
        v = node.value
        if isinstance(v, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                v = float(v.strip()) if not integer else int(v.strip())
            except ValueError:
                raise self.err(f"{what} must be a number, got {node.value!r}", node) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(f"{what} must be a number, got {_kind(v)}", node)
        if integer and not isinstance(v, int):
            raise self.err(f"{what} must be a whole number, got {v!r}", node)
        if isinstance(v, float) and not math.isfinite(v):
            raise self.err(f"{what} must be a finite number, got {v!r}", node)
        if isinstance(v, int) and not integer:
            if abs(v) > 10 ** 300:
                raise self.err(f"{what} is out of range", node)
            v = float(v)
        return v


def _kind(v) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(type(v), type(v).__name__)


def check_name(name: str, ctx: _Ctx, node: _Node, what="name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.err(f"{what} {name!r} is not a valid name", node,
                      hint="names start with a letter and contain letters, digits and _")
    if name in FUNCTIONS:
        raise ctx.err(f"{what} {name!r} is a function name", node, hint="choose another name")
    return name


def _parse_at(ctx: _Ctx, node: _Node) -> list[tuple[str, float, _Node]]:
    out = []
    for key, (knode, vnode) in ctx.mapping(node, "`at`").items():
        check_name(key, ctx, knode, "`at` name")
        out.append((key, ctx.number(vnode, f"the value of {key} in `at`"), knode))
    return out


def _names_list(ctx: _Ctx, node: _Node, what: str) -> list[tuple[str, _Node]]:
    if isinstance(node.value, str):
        items = [node]
    elif isinstance(node.value, list):
        items = node.value
    else:
        raise ctx.err(f"{what} must be a name or a list of names, got {_kind(node.value)}", node)
    out = []
    for n in items:
        name = n.value if isinstance(n.value, str) else n.raw
        check_name(name, ctx, n, f"{what} entry")
        out.append((name, n))
    return out


def _parse_equations(ctx: _Ctx, node: _Node) -> list[tuple[Equation, _Node]]:
    mapping = ctx.mapping(node, "`equations`")
    if not mapping:
        raise ctx.err("`equations` is empty", node, hint="write one equation per line, e.g. `u: a*b`")
    if len(mapping) > MAX_EQUATIONS:
        raise ctx.err(f"too many equations ({len(mapping)}, at most {MAX_EQUATIONS})", node)
    out = []
    for name, (knode, vnode) in mapping.items():
        check_name(name, ctx, knode)
        v = vnode.value
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
            raise ctx.err(f"the equation for {name} must be an expression, got {_kind(v)}", vnode)
        text = vnode.raw if vnode.raw is not None else str(v)
        try:
            parsed: Parsed = parse_expression(text)
        except ExpressionError as e:
            col = None
            if vnode.plain and vnode.column is not None and e.column is not None:
                col = vnode.column + e.column
            e.message = f"in the equation for {name}: {e.message}"
            raise e.located(ctx.source, vnode.line, col) from None
        if name in parsed.names:
            raise ctx.err(f"{name} is defined in terms of itself (cycle: {name} -> {name})", vnode,
                          hint="give the new value another name")
        ctx.lines[f"equations.{name}"] = knode.line
        out.append((Equation(name, text, parsed.expr, parsed.names, knode.line), knode))
    return out


def _order(ctx: _Ctx, eqs: list[tuple[Equation, _Node]]) -> tuple[Equation, ...]:
    """Equations in file order, checked to form a DAG (forward references allowed)."""
    defined = {e.name: (e, k) for e, k in eqs}
    state: dict[str, int] = {}
    for start, _ in eqs:
        if start.name in state:
            continue
        stack = [(start.name, iter(start.parents))]
        state[start.name] = 1
        trail = [start.name]
        while stack:
            name, it = stack[-1]
            nxt = next((p for p in it if p in defined), None)
            if nxt is None:
                stack.pop()
                trail.pop()
                state[name] = 2
                continue
            if state.get(nxt) == 1:
                cyc = trail[trail.index(nxt):] + [nxt]
                raise ctx.err("the equations form a cycle: " + " -> ".join(cyc), defined[nxt][1],
                              hint="a quantity cannot depend on itself; rename one of them")
            if state.get(nxt) is None:
                state[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, iter(defined[nxt][0].parents)))
    return tuple(e for e, _ in eqs)


def _build(root: _Node, source: str) -> Definition:
    ctx = _Ctx(source)
    top = ctx.mapping(root, "a definition")
    ctx.keys(top, TOP_KEYS, "the definition")
    has_eq, has_net = "equations" in top, "network" in top
    if has_eq and has_net:
        raise ctx.err("a definition has either `equations` or `network`, not both", top["network"][0])
    if not (has_eq or has_net):
        raise ctx.err("a definition needs `equations:` or `network:`", root,
                      hint="see the README for both forms")
    title = None
    if "title" in top:
        tnode = top["title"][1]
        if tnode.value is not None and not isinstance(tnode.value, (str, int, float)):
            raise ctx.err("`title` must be text", tnode)
        title = None if tnode.value is None else str(tnode.value if isinstance(tnode.value, str) else tnode.raw)
        if title is not None and len(title) > 2000:
            raise ctx.err("`title` is too long (at most 2000 characters)", tnode)

    display: tuple = ()
    layers: tuple = ()
    default_wrt: list[str] | None = None
    if has_net:
        from .network import expand_network
        texts, default_wrt, display, layers = expand_network(ctx, top["network"][1])
        eqs = []
        for name, text in texts:
            parsed = parse_expression(text)
            eqs.append((Equation(name, text, parsed.expr, parsed.names, None), top["network"][0]))
        form = "network"
    else:
        eqs = _parse_equations(ctx, top["equations"][1])
        form = "equations"
    equations = _order(ctx, eqs)
    defined = [e.name for e in equations]
    defined_set = set(defined)
    leaves: dict[str, None] = {}
    for e in equations:
        for p in e.parents:
            if p not in defined_set:
                leaves.setdefault(p, None)
    known = defined + list(leaves)
    known_set = set(known)

    def unknown(name, node, what):
        close = difflib.get_close_matches(name, known, n=1)
        return ctx.err(f"{what} {name!r} is not in the graph", node,
                       hint=f"did you mean {close[0]!r}?" if close else "names in the graph: " + ", ".join(known[:20]))

    if "output" in top:
        onode = top["output"][1]
        output = onode.value if isinstance(onode.value, str) else onode.raw
        check_name(output, ctx, onode, "`output`")
        if output not in defined_set:
            if output in leaves:
                raise ctx.err(f"`output` {output!r} is a leaf, not a defined quantity", onode,
                              hint="the output must be the name of an equation")
            raise unknown(output, onode, "`output`")
    else:
        output = defined[-1]

    if "wrt" in top:
        wrt = []
        for name, n in _names_list(ctx, top["wrt"][1], "`wrt`"):
            if name not in known_set:
                raise unknown(name, n, "`wrt`")
            if name == output:
                raise ctx.err(f"`wrt` {name!r} is the output itself", n)
            if name not in wrt:
                wrt.append(name)
        if not wrt:
            raise ctx.err("`wrt` is empty", top["wrt"][1])
    else:
        wrt = list(default_wrt) if default_wrt is not None else list(leaves)
        if not wrt:
            raise ctx.err("the graph has no leaves to differentiate with respect to", root)

    at: list[tuple[str, float]] = []
    if "at" in top and top["at"][1].value is not None:
        for name, value, knode in _parse_at(ctx, top["at"][1]):
            if name not in known_set:
                raise unknown(name, knode, "`at`")
            if name in defined_set:
                raise ctx.err(f"`at` gives a value for {name!r}, which is computed by an equation", knode,
                              hint="give values for leaves only (inputs, weights, targets)")
            at.append((name, value))
            ctx.lines[f"at.{name}"] = knode.line
    lr = None
    if "lr" in top and top["lr"][1].value is not None:
        lr = ctx.number(top["lr"][1], "`lr`")
    for key, (knode, _) in top.items():
        ctx.lines.setdefault(key, knode.line)
    return Definition(equations=equations, output=output, wrt=tuple(wrt), at=tuple(at), lr=lr, title=title,
                      source=source, form=form, display=tuple(display), layers=tuple(layers),
                      lines=tuple(sorted((k, v) for k, v in ctx.lines.items() if v is not None)))


# ------------------------------------------------------------ entry points ---

def examples() -> list[str]:
    """The names of the examples that ship inside the package."""
    files = resources.files("derivator.example_definitions")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def example_text(name: str) -> str:
    return (resources.files("derivator.example_definitions") / f"{name}.yaml").read_text(encoding="utf-8")


def load(path: str | os.PathLike) -> Definition:
    """Load a definition file, or a shipped example by name."""
    path_s = os.fspath(path)
    if not os.path.exists(path_s):
        stem = path_s[:-5] if path_s.endswith(".yaml") else path_s
        if os.sep not in stem and "/" not in stem and stem in examples():
            return loads(example_text(stem), source=f"{stem}.yaml")
        hint = "`derivator examples` lists the examples that ship with derivator"
        close = difflib.get_close_matches(stem, examples(), n=1)
        if close:
            hint = f"did you mean the example {close[0]!r}?"
        raise DefinitionError("no such file or example", source=path_s, hint=hint)
    if os.path.isdir(path_s):
        raise DefinitionError("is a folder, not a definition file", source=path_s)
    try:
        with open(path_s, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise DefinitionError(f"cannot read the file: {e.strerror}", source=path_s) from None
    if len(data) > MAX_FILE_BYTES:
        raise DefinitionError(f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB", source=path_s)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DefinitionError(f"the file is not UTF-8 text (byte {e.start})", source=path_s) from None
    return loads(text, source=path_s)


def loads(text: str, source: str = "<string>") -> Definition:
    """Load a definition from YAML (or JSON) text."""
    root = _read_yaml(text, source)
    try:
        return _build(root, source)
    except InputError as e:
        raise e.located(source) from None


def load_dict(data: dict, source: str = "<dict>") -> Definition:
    """Load a definition from a Python dict of the same shape as the YAML."""
    if not isinstance(data, dict):
        raise DefinitionError(f"a definition must be a mapping, got {_kind(data)}", source=source)
    try:
        return _build(_wrap(data, source), source)
    except InputError as e:
        raise e.located(source) from None
