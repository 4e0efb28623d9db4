"""The pipeline, chained in one place: spec -> graph -> paths -> derivation -> render / numeric.

The public API (``derivator.load``, ``derive``, ``compile``) and the CLI both
call these functions.
"""
from __future__ import annotations

from functools import lru_cache

from .derivation import MAX_PATHS, Derivation, Workspace
from .derivation import derive as _derive
from .errors import UsageError
from .graph import Graph, build_graph
from .numeric import CompiledGradient, compile_graph
from .spec import Definition, load, load_dict, loads  # noqa: F401  (re-exported)


@lru_cache(maxsize=16)
def _graph(definition: Definition) -> Graph:
    return build_graph(definition)


@lru_cache(maxsize=16)
def workspace(definition: Definition) -> Workspace:
    return Workspace(_graph(definition), definition.at_dict or None)


@lru_cache(maxsize=16)
def _stable(definition: Definition):
    """The graph rewritten for floating point, its workspace, and the nodes written into others."""
    from .stable import stabilize
    g, inlined = stabilize(_graph(definition))
    ws = workspace(definition) if g is _graph(definition) else Workspace(g, definition.at_dict or None)
    return g, ws, inlined


def graph(definition: Definition) -> Graph:
    """The computational graph of a definition."""
    return _graph(definition)


def _check_wrt(definition: Definition, names) -> tuple[str, ...]:
    g = _graph(definition)
    known = set(g.names)
    out: dict[str, None] = {}
    for n in names:
        if n not in known:
            import difflib
            close = difflib.get_close_matches(n, list(g.names), n=1)
            raise UsageError(f"{n!r} is not a name in the graph", source=definition.source,
                             hint=f"did you mean {close[0]!r}?" if close else "names: " + ", ".join(g.names[:20]))
        if n == definition.output:
            raise UsageError(f"{n!r} is the output itself", source=definition.source)
        out.setdefault(n, None)
    return tuple(out)


def derive(definition: Definition, wrt: str | None = None, *, max_paths: int = MAX_PATHS) -> Derivation:
    """The checked derivation of ∂output/∂wrt (default: the first ``wrt`` of the definition)."""
    return derive_all(definition, [wrt or definition.wrt[0]], max_paths=max_paths)[0]


def derive_all(definition: Definition, wrt=None, *, max_paths: int = MAX_PATHS, progress=None) -> list[Derivation]:
    """Derivations for several names (default: every ``wrt``), sharing their local partials."""
    names = _check_wrt(definition, list(wrt) if wrt else list(definition.wrt))
    g, ws = _graph(definition), workspace(definition)       # looked up once: a definition hashes in O(size)
    out = []
    for i, n in enumerate(names):
        out.append(_derive(g, n, workspace=ws, max_paths=max_paths, title=definition.title, at=definition.at,
                           lr=definition.lr, display=definition.display, layers=definition.layers))
        if progress:
            progress(i + 1, len(names), n)
    return out


def compile(definition: Definition, wrt=None) -> CompiledGradient:  # noqa: A001 (SPEC's name)
    """The gradient of the output for every ``wrt`` as one compiled NumPy function."""
    names = _check_wrt(definition, list(wrt) if wrt else list(definition.wrt))
    g, ws, inlined = _stable(definition)
    doc = (f"Compiled by derivator from {definition.source}"
           + (f" ({definition.title})" if definition.title else "")
           + f":\nthe values, adjoints and gradient of {definition.output} with respect to "
           + ", ".join(names) + ",\nby reverse accumulation over the checked local partials of its derivation.")
    return compile_graph(g, names, ws.partial, definition, doc=doc, original=_graph(definition),
                         original_partial=workspace(definition).partial, inlined=inlined, layers=definition.layers)


__all__ = ["load", "load_dict", "loads", "derive", "derive_all", "compile", "graph"]
