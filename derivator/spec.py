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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from .errors import DefinitionError, ExpressionError, InputError
from .expr import NAME_RE, Parsed, check_constants, parse_expression, short, symbol
from .functions import FUNCTIONS

TOP_KEYS = ("title", "equations", "network", "shapes", "output", "wrt", "at", "lr", "claims")
MAX_EQUATIONS = 20_000
MAX_FILE_BYTES = 2_000_000
MAX_TENSOR_ENTRIES = 1_000_000      # entries of one vector or matrix of a `shapes` definition (leaf or computed)
MAX_LEAF_ENTRIES = 2_000_000        # entries of all the leaves of a `shapes` definition
RESERVED_PREFIX = "delta_"          # the layer view prints the adjoint of z as delta_z


@dataclass(frozen=True)
class Equation:
    name: str
    text: str
    expr: Any                    # sympy expression in terms of parent symbols
    parents: tuple[str, ...]     # names used, in order of first use
    line: int | None = None
    tree: Any = field(default=None, compare=False, repr=False)   # the parse tree: the expression as written


@dataclass(frozen=True)
class Claim:
    """A claimed derivative ∂output/∂wrt (``claims:`` of a file, or ``check --claim``), parsed, never evaluated."""
    wrt: str
    text: str                    # as written
    expr: Any                    # sympy, in the definition's leaf and node names
    names: tuple[str, ...]       # names used, in order of first use
    line: int | None = None
    tree: Any = field(default=None, compare=False, repr=False)


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
    # the layer view (SPEC §1.3-1.4): a `shapes` definition, or a network kept as layers
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # `shapes`: every leaf given a shape, in file order
    tensor_equations: tuple = ()                          # `shapes`: Equation with expr a tensor expression
    network: Any = None                                   # network form: the NetworkSpec
    layer_wrt: tuple[str, ...] = ()                       # the layer view's wrt (network and `shapes` forms)
    claims: tuple[Claim, ...] = field(default=(), compare=False)          # `claims:` (derivator check)

    def __repr__(self) -> str:
        wrt = self.layer_wrt or self.wrt
        shown = ", ".join(wrt[:6]) + (", …" if len(wrt) > 6 else "")
        title = f" {self.title!r}" if self.title else ""
        if self.network is not None:
            net = self.network
            size = "-".join(str(n) for n in net.sizes) + f" network, {net.n_params} parameters"
        elif self.tensor_equations:
            size = f"{len(self.tensor_equations)} equations with shapes"
        else:
            size = f"{len(self.equations)} equations"
        return f"<Definition{title} from {self.source} ({self.form} form): {size}, output {self.output}, wrt {shown}>"

    @property
    def has_layer_view(self) -> bool:
        """True for a network and for a definition with `shapes` (SPEC §1.4)."""
        return self.network is not None or bool(self.tensor_equations)

    @property
    def at_dict(self) -> dict[str, float]:
        return dict(self.at)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.equations)

    def line_of(self, key: str) -> int | None:
        return dict(self.lines).get(key)


class Lazy(Sequence):
    """A tuple computed on first use: the scalar view of a network or a `shapes` definition.

    A 784-128-10 network has 101,770 scalar leaves; the layer view never expands it, so its
    scalar equations, display names and default ``wrt`` are made only when the scalar view asks.
    Equal (and hashed) by what it is made from, so a Definition hashes without expanding.
    """

    __slots__ = ("_make", "_key", "_items")

    def __init__(self, make, key):
        self._make, self._key, self._items = make, key, None

    def _get(self) -> tuple:
        if self._items is None:
            self._items = tuple(self._make(*self._key))
        return self._items

    def __getitem__(self, i):
        return self._get()[i]

    def __len__(self):
        return len(self._get())

    def __iter__(self):
        return iter(self._get())

    def __eq__(self, other):
        if isinstance(other, Lazy):
            return self._make is other._make and self._key == other._key
        return self._get() == other

    def __hash__(self):
        return hash((self._make.__qualname__, self._key))

    def __add__(self, other):
        return self._get() + tuple(other)

    def __repr__(self):
        return repr(self._get()) if self._items is not None else f"<{self._make.__name__}, not expanded yet>"


# ---------------------------------------------------------------- YAML ---

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq",
}


# plain scalars that YAML 1.1 resolves to these (2001-12-14, =, <<) are kept as the text written
_TEXT_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:merge"}


class _Node:
    """A YAML value with its line (1-based) and column (1-based).

    ``col0`` is the file column of the value's first character of text where
    the text is copied from the file unchanged (a one-line plain or quoted
    scalar without escapes), else None: expression errors then name the
    value's own column.
    """

    __slots__ = ("value", "line", "column", "raw", "plain", "col0")

    def __init__(self, value, line, column, raw=None, plain=False, col0=None):
        self.value, self.line, self.column, self.raw, self.plain = value, line, column, raw, plain
        self.col0 = col0


MAX_YAML_NODES = 200_000     # values in one file, aliases counted each time they are used
_SURROGATE = re.compile("[\ud800-\udfff]")   # "\ud800" in a double-quoted YAML string: not a character


class _Walker:
    """The composed YAML node tree -> _Node tree, with a budget on its size.

    PyYAML's composer shares the node of an anchor between its aliases, so a
    "billion laughs" file composes cheaply; expanding it here would not. Every
    value visited counts against MAX_YAML_NODES, so alias bombs stop early;
    an alias inside the value it names (a loop) and deep nesting are refused.
    """

    def __init__(self, loader, source, text=None):
        self.loader, self.source, self.count = loader, source, 0
        self.text = text            # the file's text, for columns inside quoted values
        self.open: set[int] = set()     # the collections being walked (an alias to one of them is a loop)

    def error(self, message, node, hint=None) -> DefinitionError:
        return DefinitionError(message, source=self.source, line=node.start_mark.line + 1,
                               column=node.start_mark.column + 1, hint=hint)

    def walk(self, node, path=()) -> _Node:
        self.count += 1
        if self.count > MAX_YAML_NODES:
            raise self.error(f"the YAML holds too many values (more than {MAX_YAML_NODES}, aliases included)",
                             node, hint="a definition needs far fewer; is this an alias bomb?")
        if isinstance(node, yaml.ScalarNode) and node.tag in _TEXT_TAGS:
            node = yaml.ScalarNode("tag:yaml.org,2002:str", node.value, node.start_mark, node.end_mark, node.style)
        if node.tag not in _PLAIN_TAGS:
            raise self.error(f"YAML tag {short(node.tag, 60)!r} is not allowed", node,
                             hint="definitions are plain YAML: mappings, lists, text and numbers")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.open:
            raise self.error("a YAML alias refers to a value that contains it", node,
                             hint="definitions cannot be recursive")
        if len(path) > 40:
            raise self.error("the YAML is nested too deeply", node,
                             hint="a definition needs a few levels of nesting at most")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return _Node([self.walk(v, path + ("[]",)) for v in node.value],
                             node.start_mark.line + 1, node.start_mark.column + 1)
            return self.mapping(node, path)
        finally:
            self.open.discard(id(node))

    def mapping(self, node, path) -> _Node:
        out: dict[str, tuple[_Node, _Node]] = {}
        for knode, vnode in node.value:
            kline, kcol = knode.start_mark.line + 1, knode.start_mark.column + 1
            if knode.tag == "tag:yaml.org,2002:merge":
                raise self.error("YAML merge keys (<<) are not allowed", knode, hint="write the keys out")
            if not isinstance(knode, yaml.ScalarNode):
                raise self.error("keys must be plain names", knode)
            if knode.tag not in _PLAIN_TAGS and knode.tag not in _TEXT_TAGS:
                raise self.error(f"YAML tag {short(knode.tag, 60)!r} is not allowed", knode)
            key = knode.value
            if isinstance(key, str) and _SURROGATE.search(key):
                key = self.pairs(key, knode)
            if key in out:
                first = out[key][0].line
                if path == ("equations",):
                    raise self.error(f"{short(key)} is defined twice (first on line {first})", knode,
                                     hint="each name is defined once; give the new quantity another name")
                raise self.error(f"duplicate key {short(key)!r} (first on line {first})", knode,
                                 hint="each key may appear once in a mapping")
            out[key] = (_Node(key, kline, kcol), self.walk(vnode, path + (key,)))
        return _Node(out, node.start_mark.line + 1, node.start_mark.column + 1)

    def pairs(self, value: str, node) -> str:
        """JSON's "\\ud83d\\ude00" (a pair of escapes) as the one character it means; a lone half is refused."""
        try:
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError as e:
            lone = value.encode("utf-16-le", "surrogatepass")[e.start:e.start + 2].decode("utf-16-le", "surrogatepass")
            raise self.error(f"the text {short(repr(value))} holds a lone surrogate (U+{ord(lone):04X}), "
                             "which is not a character", node,
                             hint="a \\uD800-\\uDFFF escape must be half of a pair; write the character itself") from None

    def scalar(self, node) -> _Node:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        try:
            value = self.loader.construct_object(node)
        except (ValueError, OverflowError):   # e.g. an integer of thousands of digits
            raise self.error(f"the number {short(node.value)} is too long", node,
                             hint="numbers in a definition are limited to about 1.8e308") from None
        text = node.value
        if isinstance(value, str) and _SURROGATE.search(value):
            value = text = self.pairs(value, node)
        one_line = node.end_mark.line == node.start_mark.line
        style = node.style or None          # libyaml gives '' for a plain scalar, PyYAML None
        col0 = None
        if one_line and style is None:
            col0 = col
        elif one_line and style in ("'", '"'):
            buf = getattr(node.start_mark, "buffer", None) or self.text
            if buf is not None and buf[node.start_mark.index:node.end_mark.index] == node.style + node.value + node.style:
                col0 = col + 1
        return _Node(value, line, col, raw=text, plain=style is None and one_line, col0=col0)


def _fast_loader():
    """libyaml's scanner and parser (C, 4-5x faster on large files) under PyYAML's own composer: the
    C composer recurses without a limit and crashes the process on deeply nested input, the Python
    one raises RecursionError. The same nodes and marks; the safe constructor only. None without libyaml."""
    try:
        from yaml.cyaml import CParser
    except ImportError:
        return None
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class FastSafeLoader(CParser, SafeConstructor, Resolver):
        def __init__(self, stream):
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)

    for name in ("get_single_node", "compose_document", "compose_node", "compose_scalar_node",
                 "compose_sequence_node", "compose_mapping_node", "check_node", "get_node"):
        setattr(FastSafeLoader, name, getattr(Composer, name))
    return FastSafeLoader


_LOADER = _fast_loader() or yaml.SafeLoader


def _compose(loader_class, text: str, source: str) -> _Node:
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise DefinitionError("the file holds no YAML document (only comments?)", source=source, line=1,
                                  hint="a definition needs `equations:` or `network:`")
        return _Walker(loader, source, text).walk(root)
    finally:
        loader.dispose()


def _read_yaml(text: str, source: str) -> _Node:
    if not text.strip():
        raise DefinitionError("the file is empty", source=source, line=1,
                              hint="a definition needs `equations:` or `network:`")
    try:
        try:
            return _compose(_LOADER, text, source)
        except yaml.YAMLError:
            if _LOADER is yaml.SafeLoader:
                raise
            return _compose(yaml.SafeLoader, text, source)   # PyYAML's own messages name the character
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        ch = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        raise DefinitionError(f"the file holds a character that YAML does not allow (U+{ch:04X})", source=source,
                              line=line, column=column, hint="control characters are not allowed") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = "; ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
        raise DefinitionError(f"YAML syntax error: {what}", source=source,
                              line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
                              hint=_yaml_hint(what)) from None
    except yaml.YAMLError as e:
        raise DefinitionError(f"YAML error: {e}", source=source) from None
    except RecursionError:
        raise DefinitionError("the YAML is nested too deeply", source=source,
                              hint="a definition needs a few levels of nesting at most") from None


def _yaml_hint(what: str) -> str | None:
    if "'\\t'" in what:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in what:
        return "a value that contains ': ' must be quoted"
    if "found undefined alias" in what:
        return "an alias *name needs an anchor &name before it"
    return None


def _wrap(value, source: str) -> _Node:
    """A plain dict (Python API) as a _Node tree without lines (bounded like YAML)."""
    count = 0

    def wrap(v, depth):
        nonlocal count
        count += 1
        if count > MAX_YAML_NODES:
            raise DefinitionError(f"the definition holds too many values (more than {MAX_YAML_NODES})", source=source)
        if depth > 50:
            raise DefinitionError("the definition is nested too deeply (or refers to itself)", source=source)
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise DefinitionError(f"key {short(repr(k))} is not text", source=source)
                if _SURROGATE.search(k):
                    raise DefinitionError(f"the key {short(repr(k))} holds a lone surrogate, which is not a character",
                                          source=source)
                out[k] = (_Node(k, None, None), wrap(x, depth + 1))
            return _Node(out, None, None)
        if isinstance(v, (list, tuple)):
            return _Node([wrap(x, depth + 1) for x in v], None, None)
        if isinstance(v, str) and _SURROGATE.search(v):
            raise DefinitionError(f"the text {short(repr(v))} holds a lone surrogate, which is not a character",
                                  source=source)
        raw = v if isinstance(v, str) else (repr(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        return _Node(v, None, None, raw=raw, plain=True)

    return wrap(value, 0)


# ------------------------------------------------------------ validation ---

class _Ctx:
    def __init__(self, source: str):
        self.source = source
        self.lines: dict[str, int] = {}
        self.vnodes: dict[str, _Node] = {}     # equation name -> its value's node (for errors found later)

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
        """A number of `at`, `lr` or a network size, read from its text as written (see ``read_number``)."""
        v = node.value
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
            raise self.err(f"{what} must be a number, got {_kind(v)}", node)
        if isinstance(v, str) or (node.line is not None and isinstance(v, (int, float))):
            text = v if isinstance(v, str) else node.raw
            try:
                v = read_number(text, integer=integer, yaml_value=None if isinstance(v, str) else v)
            except NumberError as e:
                raise self.err(f"{what} {e.message}", node, hint=e.hint) from None
        elif not isinstance(v, (int, float)):
            raise self.err(f"{what} must be a number, got {_kind(v)}", node)
        if integer and not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                raise self.err(f"{what} must be a whole number, got {v!r}", node)
            raise self.err(f"{what} must be a whole number, got {short(node.raw or v)}", node)
        if isinstance(v, float) and not math.isfinite(v):
            raise self.err(f"{what} must be a finite number, got {short(node.raw or v)}", node)
        if isinstance(v, int) and not integer:
            if abs(v) > 10 ** 300:
                raise self.err(f"{what} is out of range", node)
            v = float(v)
        return v


# ------------------------------------------------------------- numbers ---
# A number in `at`, `lr` or a network size is read from its text as written, in the syntax of the
# numbers of expressions: ASCII digits, an optional point and exponent, an optional sign. YAML's own
# reading is never used, and where YAML 1.1 would read a plain value as another number (010 is octal
# 8, 1:01 is 61 in base 60, 0x1F, 0b11, 1_000) the value is refused: two readers of one file must not
# see two numbers. Python's float() is never given the text alone: it accepts Unicode digits ('٣',
# '３'), underscores, spaces and 'infinity'.

DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_NOT_FINITE = {"inf", ".inf", "infinity", "nan", ".nan"}


class NumberError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def _yaml_kind(text: str) -> str:
    """How YAML 1.1 reads a plain scalar of this form as a number, in words."""
    t = text.lstrip("+-").lower()
    if ":" in t:
        return "in base 60"
    if t.startswith("0x"):
        return "hexadecimal"
    if t.startswith("0b"):
        return "binary"
    if "_" in t:
        return "ignoring the _"
    if len(t) > 1 and t[0] == "0" and t[1:2].isdigit() and "." not in t:
        return "octal"
    return "a number"


def read_number(text: str, *, integer: bool = False, yaml_value=None):
    """The number written in ``text`` (an int when ``integer``), or ``NumberError`` saying why not.

    ``yaml_value`` is what YAML 1.1 made of a plain scalar (an int or a float), if it made a number:
    a value whose decimal reading differs from it is refused."""
    body = text.strip("+-").lower() if isinstance(text, str) else ""
    if not isinstance(text, str) or not DECIMAL_RE.fullmatch(text):
        shown = short(text)
        if body in _NOT_FINITE or (yaml_value is not None and isinstance(yaml_value, float)
                                   and not math.isfinite(yaml_value)):
            raise NumberError(f"must be a finite number, got {shown}")
        if yaml_value is not None:
            raise NumberError(f"must be a decimal number, got {shown}",
                              hint=f"YAML 1.1 reads {shown} as {yaml_value}, {_yaml_kind(text)}; write {yaml_value}")
        if isinstance(text, str) and any(not ch.isascii() and ch.isdigit() for ch in text):
            raise NumberError(f"must be a number, got {text!r}", hint="numbers are written with the ASCII digits 0-9")
        if isinstance(text, str) and text.strip() != text and DECIMAL_RE.fullmatch(text.strip()):
            raise NumberError(f"must be a number, got {text!r}", hint="no spaces around the digits")
        raise NumberError(f"must be a number, got {short(repr(text))}")
    if integer and not _INTEGER_RE.fullmatch(text):
        raise NumberError(f"must be a whole number, got {short(text)}")
    try:
        value = int(text) if _INTEGER_RE.fullmatch(text) else float(text)
    except ValueError:            # more digits than Python converts
        raise NumberError(f"is out of range: the number {short(text)} is too long") from None
    if yaml_value is not None and not isinstance(yaml_value, bool) and yaml_value != value:
        raise NumberError(f"is written {short(text)}, which YAML 1.1 reads as {yaml_value} ({_yaml_kind(text)}) "
                          f"and YAML 1.2 as {value}", hint=f"write {value}, or {yaml_value}, without the leading zero")
    if integer:
        return value
    return value if isinstance(value, int) else float(value)


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


def _wrt_list(ctx: _Ctx, node: _Node, output: str, check) -> list[str]:
    """`wrt`'s names in order, once each: ``check(name, node)`` raises for a name that is not known;
    the output itself and an empty list are refused."""
    wrt: list[str] = []
    for name, n in _names_list(ctx, node, "`wrt`"):
        check(name, n)
        if name == output:
            raise ctx.err(f"`wrt` {name!r} is the output itself", n)
        if name not in wrt:
            wrt.append(name)
    if not wrt:
        raise ctx.err("`wrt` is empty", node)
    return wrt


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


def _located(ctx: _Ctx, e: ExpressionError, name: str, vnode: _Node) -> ExpressionError:
    """An expression's error, placed at its file column where the text is the file's, and named."""
    e.message = f"in the equation for {name}: {e.message}"
    if vnode.line is not None and e.column is None:
        offset = getattr(e, "offset", None)
        if vnode.col0 is not None and offset is not None:
            e.column = vnode.col0 + offset
        else:
            e.column = vnode.column
        e.offset = None if vnode.col0 is not None else offset
    return e.located(ctx.source, vnode.line)


def _parse_equations(ctx: _Ctx, node: _Node, tensor: bool = False) -> list[tuple[Equation, _Node]]:
    """The equations; with ``tensor`` (a `shapes` definition) as parse trees of the tensor language,
    whose ``expr`` the shape inference fills in (``_build_shapes``)."""
    mapping = ctx.mapping(node, "`equations`")
    if not mapping:
        raise ctx.err("`equations` is empty", node, hint="write one equation per line, e.g. `u: a*b`")
    if len(mapping) > MAX_EQUATIONS:
        raise ctx.err(f"too many equations ({len(mapping)}, at most {MAX_EQUATIONS})", node)
    out = []
    for name, (knode, vnode) in mapping.items():
        check_name(name, ctx, knode)
        v = vnode.value
        if isinstance(v, (dict, list)) or ((isinstance(v, bool) or v is None) and not vnode.raw):
            raise ctx.err(f"the equation for {name} must be an expression, got {_kind(v)}", vnode,
                          hint="write it on the same line, e.g. `u: a*b`")
        if isinstance(v, float) and not math.isfinite(v) and not vnode.line:   # load_dict({"F": float("nan")})
            raise ctx.err(f"the equation for {name} must be an expression, got {v!r}", vnode)
        text = vnode.raw if vnode.raw is not None else str(v)   # the text as written: `on`, `1e5`, `0x1F`
        if vnode.plain and vnode.line is not None and isinstance(v, (int, float)) and not isinstance(v, bool) \
                and DECIMAL_RE.fullmatch(text):
            try:        # `F: 010`: YAML 1.1 reads octal 8, the expression 10
                read_number(text, yaml_value=v)
            except NumberError as e:
                raise ctx.err(f"the equation for {name} {e.message}", vnode, hint=e.hint) from None
        try:
            if tensor:
                from .expr import ast_names
                from .tensor import parse
                tree = parse(text)
                parsed = Parsed(None, ast_names(tree), tree)
            else:
                parsed = parse_expression(text)
        except ExpressionError as e:
            raise _located(ctx, e, name, vnode) from None
        if name in parsed.names:
            raise ctx.err(f"{name} is defined in terms of itself (cycle: {name} -> {name})", vnode,
                          hint="give the new value another name")
        ctx.lines[f"equations.{name}"] = knode.line
        ctx.vnodes[name] = vnode
        out.append((Equation(name, text, parsed.expr, parsed.names, knode.line, parsed.tree), knode))
    return out


def parse_claim(text, known, *, wrt: str) -> Parsed:
    """A claimed ∂output/∂wrt: parsed by the project's parser (never evaluated), in ``known`` names only.

    Raises ExpressionError with ``offset`` (0-based, in ``text``) where the problem is.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"the claim for {wrt} is empty", hint='write it as an expression, e.g. "2*(o1 - y1)*h1"')
    parsed = parse_expression(text)
    _claim_powers(parsed.tree)
    for name in parsed.names:
        if name not in known:
            m = re.search(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", text)
            close = difflib.get_close_matches(name, list(known), n=1)
            raise ExpressionError(f"the claim for {wrt} uses {short(name)!r}, which is not in the graph",
                                  offset=m.start() if m else None,
                                  hint=f"did you mean {close[0]!r}?" if close
                                  else "a claim is written in the definition's leaf and node names")
    return parsed


MAX_CLAIM_POWER = 1000      # |exponent| of a power in a claim (a derivative by hand has small powers)


def _claim_powers(tree) -> None:
    """Refuse a claim's power with a constant exponent beyond ±MAX_CLAIM_POWER (x**(10**18))."""
    from .expr import Call, Neg, Power, Product, Sum, build_scalar
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, Power):
            e = build_scalar(t.exponent).expr
            if e.is_Rational and (abs(e.p) > MAX_CLAIM_POWER or e.q > MAX_CLAIM_POWER):
                raise ExpressionError(f"the power {short(e)} is too large for a claimed derivative", offset=t.pos,
                                      hint=f"powers in a claim are limited to ±{MAX_CLAIM_POWER}")
            stack += [t.base, t.exponent]
        elif isinstance(t, Neg):
            stack.append(t.arg)
        elif isinstance(t, (Sum, Product)):
            stack.extend(a for _, a in (t.terms if isinstance(t, Sum) else t.factors))
        elif isinstance(t, Call):
            stack.extend(t.args)


def _claim_error_at(e: ExpressionError, vnode: _Node, source: str) -> ExpressionError:
    """An expression error inside a claim's value, located at its file column where the text is copied as is."""
    if vnode.line is not None and e.column is None:
        offset = getattr(e, "offset", None)
        e.column = vnode.col0 + offset if (vnode.col0 is not None and offset is not None) else vnode.column
        e.offset = None if vnode.col0 is not None else offset
    return e.located(source, vnode.line)


def _parse_claims(ctx: _Ctx, node: _Node, known: list[str], output: str) -> tuple[Claim, ...]:
    """``claims: {w1: "EXPR", …}``: claimed derivatives of the output, judged by ``derivator check``."""
    known_set = set(known)
    out = []
    for name, (knode, vnode) in ctx.mapping(node, "`claims`").items():
        check_name(name, ctx, knode, "`claims` name")
        if name not in known_set:
            close = difflib.get_close_matches(name, known, n=1)
            raise ctx.err(f"`claims` names {name!r}, which is not in the graph", knode,
                          hint=f"did you mean {close[0]!r}?" if close else "names in the graph: " + ", ".join(known[:20]))
        if name == output:
            raise ctx.err(f"`claims` names {name!r}, the output itself", knode,
                          hint="a claim is a derivative of the output with respect to a leaf or a node")
        v = vnode.value
        if isinstance(v, (dict, list)) or isinstance(v, bool) or v is None:
            raise ctx.err(f"the claim for {name} must be an expression, got {_kind(v)}", vnode,
                          hint='quote it, e.g. w1: "2*(o1 - y1)*h1"')
        text = vnode.raw if vnode.raw is not None else str(v)
        try:
            parsed = parse_claim(text, known_set, wrt=name)
        except ExpressionError as e:
            if not e.message.startswith("the claim for"):
                e.message = f"in the claim for {name}: {e.message}"
            raise _claim_error_at(e, vnode, ctx.source) from None
        ctx.lines[f"claims.{name}"] = knode.line
        out.append(Claim(name, text, parsed.expr, parsed.names, knode.line, parsed.tree))
    if not out:
        raise ctx.err("`claims` is empty", node, hint='write one claim per line, e.g. w5: "2*(o1 - y1)*h1"')
    return tuple(out)


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
                shown = " -> ".join(cyc) if len(cyc) <= 12 else \
                    " -> ".join(cyc[:6]) + f" -> … ({len(cyc) - 9} more) -> " + " -> ".join(cyc[-3:])
                raise ctx.err("the equations form a cycle: " + shown, defined[nxt][1],
                              hint="a quantity cannot depend on itself; rename one of them")
            if state.get(nxt) is None:
                state[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, iter(defined[nxt][0].parents)))
    return tuple(e for e, _ in eqs)


def _constant_nodes(ctx: _Ctx, equations: tuple[Equation, ...]) -> None:
    """Refuse an equation that is undefined at every point because a node it uses is a constant.

    ``u: a - a`` makes u identically 0 (sympy folds it), and ``F: log(u)`` is then log(0) at every
    point: no point exists where the definition can be evaluated. Constants are put into the
    equations that use them, in dependency order (linear: only those equations are touched)."""
    by_name = {e.name: e for e in equations}
    const: dict[str, Any] = {}
    state: dict[str, int] = {}
    for start in equations:              # iterative depth-first order: parents before children
        if start.name in state:
            continue
        stack = [(start, iter(start.parents))]
        state[start.name] = 1
        while stack:
            e, it = stack[-1]
            nxt = next((p for p in it if p in by_name and p not in state), None)
            if nxt is not None:
                state[nxt] = 1
                stack.append((by_name[nxt], iter(by_name[nxt].parents)))
                continue
            stack.pop()
            used = [p for p in e.parents if p in const]
            expr = e.expr
            if used:
                expr = expr.xreplace({symbol(p): const[p] for p in used})
                try:
                    check_constants(expr)
                except ExpressionError as err:
                    why = ", ".join(f"{p} is identically {const[p]} ({p}: {short(by_name[p].text, 40)})" for p in used)
                    raise ctx.err(f"in the equation for {e.name}: {short(e.text, 40)} is undefined at every point: "
                                  f"{why}", None, hint=err.hint or err.message).located(line=e.line) from None
            if not expr.free_symbols:
                const[e.name] = expr


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

    if "shapes" in top and has_net:
        raise ctx.err("`shapes` belongs to the equations form; a network's layers have their shapes already",
                      top["shapes"][0])
    if has_net:
        definition = _build_network(ctx, top, root, title)
    elif "shapes" in top:
        definition = _build_shapes(ctx, top, root, title)
    else:
        definition = _build_equations(ctx, top, root, title)
    if "claims" in top and top["claims"][1].value is not None:
        # claims are in the scalar view's names (for a network: w1, h1, …; built here only when claims are given)
        known = list(dict.fromkeys([e.name for e in definition.equations]
                                   + [p for e in definition.equations for p in e.parents]))
        claims = _parse_claims(ctx, top["claims"][1], known, definition.output)
        definition = replace(definition, claims=claims, lines=_lines(ctx, top))
    return definition


def _build_equations(ctx: _Ctx, top, root: _Node, title) -> Definition:
    source = ctx.source
    display: tuple = ()
    layers: tuple = ()
    default_wrt: list[str] | None = None
    eqs = _parse_equations(ctx, top["equations"][1])
    form = "equations"
    equations = _order(ctx, eqs)
    _constant_nodes(ctx, equations)
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
        def known_name(name, n):
            if name not in known_set:
                raise unknown(name, n, "`wrt`")
        wrt = _wrt_list(ctx, top["wrt"][1], output, known_name)
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
                              hint="give values for leaves only: inputs, weights, targets")
            at.append((name, value))
            ctx.lines[f"at.{name}"] = knode.line
    return Definition(equations=equations, output=output, wrt=tuple(wrt), at=tuple(at), lr=_lr(ctx, top),
                      title=title, source=source, form=form, display=tuple(display), layers=tuple(layers),
                      lines=_lines(ctx, top))


def _lr(ctx: _Ctx, top) -> float | None:
    if "lr" in top and top["lr"][1].value is not None:
        return ctx.number(top["lr"][1], "`lr`")
    return None


def _lines(ctx: _Ctx, top) -> tuple:
    for key, (knode, _) in top.items():
        ctx.lines.setdefault(key, knode.line)
    return tuple(sorted((k, v) for k, v in ctx.lines.items() if v is not None))


def _unknown(ctx: _Ctx, name: str, node: _Node, what: str, known) -> DefinitionError:
    close = difflib.get_close_matches(name, list(known), n=1)
    return ctx.err(f"{what} {name!r} is not in the graph", node,
                   hint=f"did you mean {close[0]!r}?" if close else "names in the graph: " + ", ".join(list(known)[:20]))


def _output_name(ctx: _Ctx, top) -> tuple[str, _Node] | None:
    if "output" not in top:
        return None
    onode = top["output"][1]
    output = onode.value if isinstance(onode.value, str) else onode.raw
    check_name(output, ctx, onode, "`output`")
    return output, onode


def _tensor_value(ctx: _Ctx, node: _Node, shape: tuple, name: str):
    """A value of `at` for a leaf of this shape: a number, a list, or a list of rows (nested tuples)."""
    if not shape:
        if isinstance(node.value, list):
            raise ctx.err(f"{name} is a scalar: give a number, not a list", node)
        return ctx.number(node, f"the value of {name} in `at`")
    what = "a vector of " + str(shape[0]) if len(shape) == 1 else f"a {shape[0]}×{shape[1]} matrix"
    if not isinstance(node.value, list):
        got = "a number" if isinstance(node.value, (int, float)) and not isinstance(node.value, bool) \
            else _kind(node.value)
        raise ctx.err(f"{name} is {what}: give {'a list' if len(shape) == 1 else 'a list of rows'} in `at`, "
                      f"not {got}", node)
    if len(node.value) != shape[0]:
        raise ctx.err(f"{name} is {what}: `at` gives {len(node.value)} {'entries' if len(shape) == 1 else 'rows'}",
                      node)
    if len(shape) == 1:
        return tuple(_tensor_value(ctx, v, (), f"{name}[{i + 1}]") for i, v in enumerate(node.value))
    rows = []
    for i, row in enumerate(node.value):
        if not isinstance(row.value, list) or len(row.value) != shape[1]:
            got = f"{len(row.value)} entries" if isinstance(row.value, list) else _kind(row.value)
            raise ctx.err(f"row {i + 1} of {name} must be a list of {shape[1]} numbers, got {got}", row)
        rows.append(tuple(_tensor_value(ctx, v, (), f"{name}[{i + 1}, {j + 1}]") for j, v in enumerate(row.value)))
    return tuple(rows)


def _flat_entries(value, shape):
    """(index, number) of a nested value, row by row."""
    if not shape:
        yield (), value
    elif len(shape) == 1:
        for i, v in enumerate(value):
            yield (i,), v
    else:
        for i, row in enumerate(value):
            for j, v in enumerate(row):
                yield (i, j), v


def _put_at(ctx: _Ctx, at: dict, items, name: str, knode: _Node) -> None:
    """Scalar values of `at` (a layer's list already spread into its entries), each name once."""
    for k, v in items:
        if k in at:
            raise ctx.err(f"`at` gives {k} twice" + (f" (in {name})" if k != name else ""), knode,
                          hint="give each value once: as a number, or inside its vector or matrix")
        at[k] = v
    ctx.lines[f"at.{name}"] = knode.line


# ------------------------------------------------------- the network form ---

@lru_cache(maxsize=8)
def _network_scalar(net, source: str):
    """The scalar view of a network: (equations, default wrt, display, layers), made on first use."""
    from .network import _expand, scalar_limit_error
    problem = scalar_limit_error(net)
    if problem:
        raise DefinitionError(problem, source=source, hint="use the layer view (--view layer)")
    texts, default_wrt, display, layers = _expand(net.inputs, net.layers, net.bias, net.loss, net.naming)
    if len(texts) > MAX_EQUATIONS:
        raise DefinitionError(f"the network expands to too many equations ({len(texts)}, at most {MAX_EQUATIONS})"
                              " for the scalar view", source=source, hint="use the layer view (--view layer)")
    eqs = []
    for name, text in texts:
        parsed = parse_expression(text, max_length=None)
        eqs.append(Equation(name, text, parsed.expr, parsed.names, None, parsed.tree))
    return tuple(eqs), tuple(default_wrt), tuple(display), tuple(layers)


def _network_part(net, source: str, part: int):
    return _network_scalar(net, source)[part]


def _network_wrt(net, source: str, names: tuple):
    from .layer_network import scalar_wrt
    return scalar_wrt(net, names)


def _build_network(ctx: _Ctx, top, root: _Node, title) -> Definition:
    from .layer_network import entry_name, entry_names, entry_of, layer_equations, layer_leaves, layer_params
    from .network import network_spec
    net = network_spec(ctx, top["network"][1])
    source = ctx.source
    n_layers = len(net.layers)
    leaf_shapes = dict(layer_leaves(net))
    layer_nodes = [name for name, _ in layer_equations(net)]
    softmax_s = ("s" if net.naming == "flat" else f"s_{n_layers}") if net.layers[-1][1] == "softmax" else None

    def scalar_kind(name):
        """leaf | node | None, for a name of the scalar view."""
        if name == "L" or name == softmax_s:
            return "node"
        e = entry_of(net, name)
        if e is None:
            return None
        return "leaf" if e[0] in leaf_shapes else "node"

    def known():
        return list(leaf_shapes) + layer_nodes + ["x1", "y1", entry_name(net, "W1", (0, 0))]

    found = _output_name(ctx, top)
    output = "L"
    if found:
        output, onode = found
        kind = scalar_kind(output)
        if kind == "leaf" or output in leaf_shapes:
            raise ctx.err(f"`output` {output!r} is a leaf, not a defined quantity", onode,
                          hint="the output must be the name of an equation")
        if kind is None:
            raise _unknown(ctx, output, onode, "`output`", known())

    if "wrt" in top:
        given = []
        for name, n in _names_list(ctx, top["wrt"][1], "`wrt`"):
            if scalar_kind(name) is None and name not in leaf_shapes and name not in layer_nodes:
                raise _unknown(ctx, name, n, "`wrt`", known())
            if name == output:
                raise ctx.err(f"`wrt` {name!r} is the output itself", n)
            if name not in given:
                given.append(name)
        if not given:
            raise ctx.err("`wrt` is empty", top["wrt"][1])
        layer_wrt = tuple(given)
        wrt = Lazy(_network_wrt, (net, source, layer_wrt))
    else:
        layer_wrt = layer_params(net)
        wrt = Lazy(_network_part, (net, source, 1))

    at: dict[str, float] = {}
    if "at" in top and top["at"][1].value is not None:
        for name, (knode, vnode) in ctx.mapping(top["at"][1], "`at`").items():
            check_name(name, ctx, knode, "`at` name")
            kind = scalar_kind(name)
            listed = isinstance(vnode.value, list)
            if kind == "leaf" and not (listed and name in leaf_shapes):
                items = [(name, ctx.number(vnode, f"the value of {name} in `at`"))]
            elif name in leaf_shapes:
                shape = leaf_shapes[name]
                value = _tensor_value(ctx, vnode, shape, name)
                items = list(zip(entry_names(net, name, shape), (v for _, v in _flat_entries(value, shape))))
            elif kind == "node" or name in layer_nodes:
                raise ctx.err(f"`at` gives a value for {name!r}, which is computed by an equation", knode,
                              hint="give values for leaves only: inputs, weights, targets")
            else:
                raise _unknown(ctx, name, knode, "`at`", known())
            _put_at(ctx, at, items, name, knode)
    return Definition(equations=Lazy(_network_part, (net, source, 0)), output=output, wrt=wrt,
                      at=tuple(at.items()), lr=_lr(ctx, top), title=title, source=source, form="network",
                      display=Lazy(_network_part, (net, source, 2)), layers=Lazy(_network_part, (net, source, 3)),
                      lines=_lines(ctx, top), network=net, layer_wrt=layer_wrt)


# --------------------------------------------------- the `shapes` key (§1.3) ---

_SUFFIX = re.compile(r"_([1-9][0-9]*)\Z")


def entry_name(name: str, index: tuple) -> str:
    """The scalar view's name of an entry of a `shapes` tensor: x_2, W1_3_1 (1-based)."""
    return name + "".join(f"_{i + 1}" for i in index)


def entry_of(name: str, shapes: dict):
    """(tensor, 0-based index) for a scalar entry name of a `shapes` definition, or None."""
    base, idx = name, []
    for _ in range(2):
        m = _SUFFIX.search(base)
        if not m:
            break
        idx.insert(0, int(m.group(1)) - 1)
        base = base[:m.start()]
        shape = shapes.get(base)
        if shape is not None and len(shape) == len(idx) and all(i < n for i, n in zip(idx, shape)):
            return base, tuple(idx)
    return None


def _unroll(tensor_equations, shapes, output, source):
    from .layer_graph import unroll_equations
    return unroll_equations(tensor_equations, dict(shapes), output, source)


def _shapes_wrt(tensor_equations, shapes, output, source, names):
    from .layer_graph import tensor_shapes
    all_shapes = tensor_shapes(tensor_equations, dict(shapes))
    from .layer_network import indices
    out = []
    for n in names:
        shape = all_shapes.get(n, ())
        out += [entry_name(n, idx) for idx in indices(shape)] if shape else [n]
    return out


def _shapes_display(tensor_equations, shapes, output, source):
    """LaTeX of the scalar view's entry names: x_2 -> x_{2}, W1_3_1 -> {W_{1}}_{3,1}."""
    from .layer_graph import tensor_shapes
    from .layer_network import indices
    from .printing import tex_name
    out = []
    for name, shape in tensor_shapes(tensor_equations, dict(shapes)).items():
        if not shape:
            continue
        base = tex_name(name)
        base = "{" + base + "}" if "_" in base or "^" in base else base
        for idx in indices(shape):
            out.append((entry_name(name, idx), base + "_{" + ",".join(str(i + 1) for i in idx) + "}"))
    return out


def _build_shapes(ctx: _Ctx, top, root: _Node, title) -> Definition:
    from .tensor import build, shape_text
    snode = top["shapes"][1]
    given: dict[str, tuple] = {}
    snodes: dict[str, _Node] = {}
    for name, (knode, vnode) in ctx.mapping(snode, "`shapes`").items():
        check_name(name, ctx, knode, "`shapes` name")
        v = vnode.value
        if not isinstance(v, list) or len(v) > 2:
            raise ctx.err(f"the shape of {name} must be [n] (a vector) or [rows, cols] (a matrix), got "
                          f"{_kind(v) if not isinstance(v, list) else f'{len(v)} sizes'}", vnode)
        dims = []
        for d in v:
            n = ctx.number(d, f"a size in the shape of {name}", integer=True)
            if n < 1:
                raise ctx.err(f"the sizes in the shape of {name} must be at least 1, got {n}", d)
            dims.append(n)
        if math.prod(dims) > MAX_TENSOR_ENTRIES:
            raise ctx.err(f"{name} is too large ({math.prod(dims)} entries, at most {MAX_TENSOR_ENTRIES})", vnode)
        given[name] = tuple(dims)
        snodes[name] = knode
        ctx.lines[f"shapes.{name}"] = knode.line
    eqs = _parse_equations(ctx, top["equations"][1], tensor=True)
    equations = _order(ctx, eqs)
    defined = {e.name: e for e in equations}
    leaves: dict[str, None] = {}
    for e in equations:
        for p in e.parents:
            if p not in defined:
                leaves.setdefault(p, None)
    known = list(defined) + list(leaves)
    total = sum(math.prod(given[n]) for n in given)
    if total > MAX_LEAF_ENTRIES:
        raise ctx.err(f"the shapes hold {total} entries in all (at most {MAX_LEAF_ENTRIES})", snode,
                      hint="vectors and matrices are limited in size")
    for name, knode in snodes.items():
        if name in defined:
            raise ctx.err(f"`shapes` gives a shape for {name!r}, which is computed by an equation", knode,
                          hint="give shapes for leaves only; the shapes of equations are inferred")
        if name not in leaves:
            raise _unknown(ctx, name, knode, "`shapes` name", known)
    for name in known:
        if name.startswith(RESERVED_PREFIX):
            line = ctx.lines.get(f"equations.{name}") or (snodes[name].line if name in snodes else None)
            raise DefinitionError(f"the name {name!r} starts with {RESERVED_PREFIX!r}, which the layer view keeps "
                                  "for adjoints (delta_z is ∂output/∂z)", source=ctx.source, line=line,
                                  hint="rename it")

    # shape inference, parents first
    shapes: dict[str, tuple] = {n: given.get(n, ()) for n in leaves}
    typed: dict[str, Equation] = {}
    for start in equations:
        stack = [start.name]
        while stack:
            name = stack[-1]
            if name in typed:
                stack.pop()
                continue
            e = defined[name]
            todo = [p for p in e.parents if p in defined and p not in typed]
            if todo:
                stack.extend(reversed(todo))
                continue
            stack.pop()
            try:
                t = build(e.tree, shapes.__getitem__)
            except ExpressionError as err:
                raise _located(ctx, err, name, ctx.vnodes[name]) from None
            from .tensor import to_str, walk
            big = next((x for x in walk(t) if math.prod(x.shape) > MAX_TENSOR_ENTRIES), None)
            if big is not None:
                raise ctx.err(f"in the equation for {name}: {to_str(big)[:60]} has shape {shape_text(big.shape)}, "
                              f"more than {MAX_TENSOR_ENTRIES} entries", ctx.vnodes[name],
                              hint="vectors and matrices are limited in size")
            shapes[name] = t.shape
            typed[name] = Equation(name, e.text, t, e.parents, e.line, e.tree)
    tensor_equations = tuple(typed[e.name] for e in equations)

    found = _output_name(ctx, top)
    if found:
        output, onode = found
        if output not in defined:
            if output in leaves:
                raise ctx.err(f"`output` {output!r} is a leaf, not a defined quantity", onode,
                              hint="the output must be the name of an equation")
            raise _unknown(ctx, output, onode, "`output`", known)
    else:
        output, onode = equations[-1].name, ctx.vnodes[equations[-1].name]
    if shapes[output]:
        raise ctx.err(f"the output {output} has shape {shape_text(shapes[output])}; the output must be a scalar",
                      onode, hint="sum or mean it, e.g. L: sum(...)")
    tensors = {n: s for n, s in shapes.items() if s}
    for name in known:
        e = entry_of(name, tensors)
        if e is not None:
            line = ctx.lines.get(f"equations.{name}")
            raise DefinitionError(f"the name {name!r} is how the scalar view names an entry of {e[0]} "
                                  f"{shape_text(tensors[e[0]])}", source=ctx.source, line=line,
                                  hint="rename it")

    def resolve(name, node, what):
        if name in shapes:
            return name
        e = entry_of(name, {n: s for n, s in tensors.items() if n in leaves})
        if e is None:
            raise _unknown(ctx, name, node, what, known)
        return name

    if "wrt" in top:
        layer_wrt = _wrt_list(ctx, top["wrt"][1], output, lambda name, n: resolve(name, n, "`wrt`"))
    else:
        layer_wrt = list(leaves)
    key = (tensor_equations, tuple(given.items()), output, ctx.source)

    at: dict[str, float] = {}
    if "at" in top and top["at"][1].value is not None:
        for name, (knode, vnode) in ctx.mapping(top["at"][1], "`at`").items():
            check_name(name, ctx, knode, "`at` name")
            if name in defined:
                raise ctx.err(f"`at` gives a value for {name!r}, which is computed by an equation", knode,
                              hint="give values for leaves only: inputs, weights, targets")
            if name in leaves:
                value = _tensor_value(ctx, vnode, shapes[name], name)
                items = [(entry_name(name, idx), v) for idx, v in _flat_entries(value, shapes[name])]
            else:
                resolve(name, knode, "`at`")
                items = [(name, ctx.number(vnode, f"the value of {name} in `at`"))]
            _put_at(ctx, at, items, name, knode)
    return Definition(equations=Lazy(_unroll, key), output=output,
                      wrt=Lazy(_shapes_wrt, key + (tuple(layer_wrt),)), at=tuple(at.items()), lr=_lr(ctx, top),
                      title=title, source=ctx.source, form="equations", lines=_lines(ctx, top),
                      display=Lazy(_shapes_display, key), shapes=tuple(given.items()),
                      tensor_equations=tensor_equations, layer_wrt=tuple(layer_wrt))


# ------------------------------------------------------------ entry points ---

def examples() -> list[str]:
    """The names of the examples that ship inside the package."""
    files = resources.files("derivator.example_definitions")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def example_text(name: str) -> str:
    return (resources.files("derivator.example_definitions") / f"{name}.yaml").read_text(encoding="utf-8")


def display_path(path: str) -> str:
    """A path as messages and documents show it: bytes that are not UTF-8 as \\xNN escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def _regular(mode: int, shown: str) -> None:
    import stat
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise DefinitionError(f"is {kind}, not a regular file", source=shown,
                              hint="derivator reads definitions from files; save it to a file first")


def load(path: str | os.PathLike) -> Definition:
    """Load a definition file, or a shipped example by name.

    Only regular files are read: a FIFO, a socket or a device (``/dev/stdin``
    when it is a pipe or a terminal) is refused at once instead of waiting
    for data; ``/dev/stdin`` redirected from a file (``< net.yaml``) is that
    file and is read. ``-`` is a path like any other (no standard input)."""
    path_s = os.fspath(path)
    if isinstance(path_s, bytes):
        path_s = os.fsdecode(path_s)
    shown = display_path(path_s)
    if not os.path.exists(path_s):
        stem = path_s[:-5] if path_s.endswith(".yaml") else path_s
        if os.sep not in stem and "/" not in stem and stem in examples():
            return loads(example_text(stem), source=f"{stem}.yaml")
        hint = "`derivator examples` lists the examples that ship with derivator"
        close = difflib.get_close_matches(stem, examples(), n=1)
        if close:
            hint = f"did you mean the example {close[0]!r}?"
        elif path_s == "-":
            hint = "reading a definition from standard input is not supported: give a file"
        raise DefinitionError("no such file or example", source=shown, hint=hint)
    if os.path.isdir(path_s):
        raise DefinitionError("is a folder, not a definition file", source=shown)
    try:
        _regular(os.stat(path_s).st_mode, shown)
        # O_NONBLOCK: should a FIFO be put in its place meanwhile, opening it returns at once (refused below)
        fd = os.open(path_s, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise DefinitionError(f"cannot read the file: {e.strerror}", source=shown) from None
    try:
        _regular(os.fstat(fd).st_mode, shown)
        with os.fdopen(fd, "rb") as f:
            fd = None
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise DefinitionError(f"cannot read the file: {e.strerror}", source=shown) from None
    finally:
        if fd is not None:
            os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise DefinitionError(f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB", source=shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DefinitionError(f"the file is not UTF-8 text (byte {e.start})", source=shown) from None
    return loads(text, source=shown)


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
