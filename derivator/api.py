"""The pipeline, chained in one place: spec -> graph -> paths -> derivation -> render / numeric.

The public API (``derivator.load``, ``derive``, ``compile``) and the CLI both
call these functions. Two views (SPEC §1.4): the scalar view (spec -> graph ->
derivation) and the layer view (spec -> layer_graph -> layer_derivation);
``view=None`` picks the default of ``default_view``.
"""
from __future__ import annotations

from functools import lru_cache

from .derivation import MAX_PATHS, Derivation, Workspace
from .derivation import derive as _derive
from .errors import UsageError
from .graph import Graph, build_graph
from .numeric import CompiledGradient, compile_graph
from .spec import Definition, load, load_dict, loads  # noqa: F401  (re-exported)

LAYER_VIEW_PARAMS = 40      # networks with more parameters than this are derived in the layer view by default
VIEWS = ("scalar", "layer")


def default_view(definition: Definition) -> str:
    """The view a reader would want: `shapes` definitions and networks of more than 40 parameters in
    layers; the seed's small networks (and every scalar definition) in scalars."""
    if definition.tensor_equations:
        return "layer"
    if definition.network is not None and definition.network.n_params > LAYER_VIEW_PARAMS \
            and definition.output == "L":
        return "layer"
    return "scalar"


def view_of(definition: Definition, view: str | None) -> str:
    """``view``, checked against the definition (None: the default)."""
    if view is None:
        return default_view(definition)
    if view not in VIEWS:
        raise UsageError(f"unknown view {view!r}", hint="the views are scalar and layer")
    if view == "layer" and not definition.has_layer_view:
        raise UsageError("the layer view needs vectors and matrices: a `network:`, or equations with `shapes:`",
                         source=definition.source, hint="this definition has only the scalar view")
    if view == "layer" and definition.network is not None and definition.output != "L":
        raise UsageError(f"the layer view of a network derives its loss L, not {definition.output}",
                         source=definition.source, hint="use the scalar view, or drop `output`")
    return view


@lru_cache(maxsize=16)
def layer_workspace(definition: Definition):
    """The layer view's workspace: VJPs, δ's and checks shared by every derivation of the definition."""
    from .layer_derivation import LayerWorkspace
    from .layer_graph import layer_graph
    return LayerWorkspace(layer_graph(definition), definition)


def layer_names(definition: Definition, names) -> tuple[str, ...]:
    """Names for the layer view, checked (a layer name, or one scalar entry of a leaf)."""
    from .layer_derivation import resolve
    ws = layer_workspace(definition)
    out = []
    for n in names:
        target, _ = resolve(ws.lg, n)
        if target == definition.output or n == definition.output:
            raise UsageError(f"{n!r} is the output itself", source=definition.source)
        if n not in out:
            out.append(n)
    return tuple(out)


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
            entries = [m for m in g.names if m.startswith(n + "_") and m[len(n) + 1:].replace("_", "").isdigit()]
            if entries and getattr(definition, "has_layer_view", False):
                raise UsageError(f"{n!r} is a vector or matrix of the layer view, not a node of the scalar view",
                                 source=definition.source,
                                 hint="its entries are " + ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
                                 + "; derive and eval take --view layer")
            close = difflib.get_close_matches(n, list(g.names), n=1)
            raise UsageError(f"{n!r} is not a name in the graph", source=definition.source,
                             hint=f"did you mean {close[0]!r}?" if close else "names: " + ", ".join(g.names[:20]))
        if n == definition.output:
            raise UsageError(f"{n!r} is the output itself", source=definition.source)
        out.setdefault(n, None)
    return tuple(out)


def derive(definition: Definition, wrt: str | None = None, *, max_paths: int = MAX_PATHS,
           view: str | None = None) -> "Derivation | LayerDerivation":  # noqa: F821
    """The checked derivation of ∂output/∂wrt (default: the first ``wrt`` of the definition).

    ``view="layer"`` gives a ``LayerDerivation`` (vectors and matrices: ``wrt="W1"``)."""
    if view_of(definition, view) == "layer":
        from .layer_derivation import derive as layer_derive
        name = layer_names(definition, [wrt or definition.layer_wrt[0]])[0]
        return layer_derive(layer_workspace(definition), name, max_paths=max_paths, title=definition.title,
                            lr=definition.lr)
    return derive_all(definition, [wrt or definition.wrt[0]], max_paths=max_paths, view="scalar")[0]


def derive_all(definition: Definition, wrt=None, *, max_paths: int = MAX_PATHS, progress=None,
               view: str | None = None) -> list:
    """Derivations for several names (default: every ``wrt``), sharing their local partials."""
    view = view_of(definition, view)
    out = []
    if view == "layer":
        names = layer_names(definition, list(wrt) if wrt else list(definition.layer_wrt))
        step = (lambda n: derive(definition, n, max_paths=max_paths, view=view))
    else:
        names = _check_wrt(definition, list(wrt) if wrt else list(definition.wrt))
        g, ws = _graph(definition), workspace(definition)       # looked up once: a definition hashes in O(size)
        step = (lambda n: _derive(g, n, workspace=ws, max_paths=max_paths, title=definition.title, at=definition.at,
                                  lr=definition.lr, display=definition.display, layers=definition.layers))
    for i, n in enumerate(names):
        out.append(step(n))
        if progress:
            progress(i + 1, len(names), n)
    return out


def compile(definition: Definition, wrt=None, *, view: str | None = None):  # noqa: A001
    """The gradient of the output for every ``wrt`` as one compiled NumPy function.

    The default view of ``compile`` is the scalar one (leaves by their scalar names, elementwise
    over broadcast arrays). ``view="layer"`` gives a ``CompiledLayerGradient``: leaves by their
    layer names (``x``, ``W1``, …), matrix products over a leading batch axis (``layer_numeric``)."""
    if view is not None and view_of(definition, view) == "layer":
        from .layer_numeric import compile_layer
        names = layer_names(definition, list(wrt) if wrt else list(definition.layer_wrt))
        doc = (f"Compiled by derivator from {definition.source}"
               + (f" ({definition.title})" if definition.title else "")
               + f":\nthe values, adjoints and gradient of {definition.output} with respect to "
               + ", ".join(names) + ",\nin the layer view: matrix products over a leading batch axis, by reverse "
               "accumulation\nover the checked VJP rules and lemmas of its derivation.")
        return compile_layer(layer_workspace(definition), names, definition, doc=doc)
    names = _check_wrt(definition, list(wrt) if wrt else list(definition.wrt))
    g, ws, inlined = _stable(definition)
    doc = (f"Compiled by derivator from {definition.source}"
           + (f" ({definition.title})" if definition.title else "")
           + f":\nthe values, adjoints and gradient of {definition.output} with respect to "
           + ", ".join(names) + ",\nby reverse accumulation over the checked local partials of its derivation.")
    return compile_graph(g, names, ws.partial, definition, doc=doc, original=_graph(definition),
                         original_partial=workspace(definition).partial, inlined=inlined,
                         matrix=lambda: _matrix_totals(definition, g.leaves, names))


MATRIX_MIN_UNITS = 4   # a network with a layer this wide gets the layer view's totals (2-2-1 is faster as scalar code)


def _matrix_totals(definition: Definition, leaves, wrt):
    """The layer view's code for the scalar view's batch totals of a network
    (``layer_numeric.scalar_totals``), built on the first batch total or when the module's source is
    read; or None: not a network, its output is not the loss L, every layer narrower than
    MATRIX_MIN_UNITS, or a ``wrt`` the layer code does not give (a node, an input)."""
    net = definition.network
    if net is None or definition.output != "L" or not definition.has_layer_view or \
            max(net.sizes[1:]) < MATRIX_MIN_UNITS:
        return None
    from .errors import VerificationError
    from .layer_numeric import scalar_totals
    try:
        return scalar_totals(layer_workspace(definition), leaves, wrt, {x: f"v_{x}" for x in leaves})
    except VerificationError:       # a rule of the layer view failed its check: the scalar code only
        return None


def check_claim(definition: Definition, wrt: str, claim: str):
    """The verdict on a claimed ∂output/∂wrt (an expression in the definition's names): a ``Verdict``."""
    from .verdict import judge, make_claim
    return judge(definition, [make_claim(definition, wrt, claim)])[0]


def check_claims(definition: Definition, claims=None):
    """Verdicts on several claims ({wrt: expression} or (wrt, expression) pairs; default: the file's
    ``claims:``): a ``Report`` with the score, which renders like a single verdict."""
    from .verdict import judge
    if isinstance(claims, dict):
        claims = list(claims.items())
    return judge(definition, claims)


__all__ = ["load", "load_dict", "loads", "derive", "derive_all", "compile", "graph", "check_claim", "check_claims",
           "default_view"]
