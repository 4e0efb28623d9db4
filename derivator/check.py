"""Checks: every claim of a derivation against an independent differentiation.

Takes local partials and results; gives ``Check`` records saying how each
claim was checked and whether it held. The reference is always sympy's own
``diff`` (whose derivatives of the project's functions are written
independently of the rules table), never the rules that the steps cite.

- A local partial is compared with ``sympy.diff`` of the node's expression:
  identical, else equal after ``expand``/``cancel`` (symbolic), else equal
  at random points in mpmath at 30 digits (numeric).
- A result is compared with an independent differentiation of the output:
  for small graphs, ``sympy.diff`` of the output composed in terms of the
  leaves (symbolically where the difference expands to zero, else at random
  points); for large graphs, reverse accumulation of ``sympy.diff``'s local
  partials at random points, once per point for the whole graph, so that
  checking every parameter costs time linear in the graph.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import mpmath
import sympy as sp

from .expr import symbol
from .functions import Max2, Min2, logsumexp, relu, sigmoid, softplus
from .mpeval import NotReal, evaluate

DIGITS = 30
POINTS = 3
TOLERANCE = mpmath.mpf(10) ** -(DIGITS - 8)
SYMBOLIC_OPS = 400          # largest expression tried with expand/cancel
COMPOSE_NODES = 40          # graphs up to this many nodes are composed in the leaves …
COMPOSE_TREE = 120          # … when the output written out as a tree has at most this many nodes
_SEED = 20260601


@dataclass(frozen=True)
class Check:
    method: str       # identical | symbolic | numeric
    detail: str       # one sentence for documents and JSON
    passed: bool

    def as_dict(self) -> dict:
        return {"method": self.method, "detail": self.detail, "passed": self.passed}


_ELEMENTARY = {
    sigmoid: lambda x: 1 / (1 + sp.exp(-x)),
    softplus: lambda x: sp.log(1 + sp.exp(x)),
    logsumexp: lambda *u: sp.log(sp.Add(*[sp.exp(x) for x in u])),
}


def elementary(e: sp.Expr) -> sp.Expr:
    """Rewrite the project's own functions into exp/log where that is exact."""
    for cls, f in _ELEMENTARY.items():
        if e.has(cls):
            e = e.replace(cls, f)
    return e


def _small(e: sp.Expr) -> bool:
    return sp.count_ops(e, visual=False) <= SYMBOLIC_OPS


def symbolic_zero(diff: sp.Expr) -> bool:
    """True when ``diff`` is shown to be 0 by expand or cancel (never simplify)."""
    if diff == 0:
        return True
    if not _small(diff):
        return False
    e = sp.expand(elementary(diff))
    if e == 0:
        return True
    if e.has(sp.Heaviside, Max2, Min2, relu, sp.Abs, sp.sign):
        return False
    try:
        together = sp.together(e)
        if sp.expand(sp.numer(together)) == 0:       # over a common denominator: most differences end here
            return True
        return sp.cancel(together) == 0
    except (sp.PolynomialError, sp.CoercionFailed, NotImplementedError):
        return False


class Points:
    """Random points for numeric checks: values for every name of a graph."""

    def __init__(self, graph, at: dict | None = None, count: int = POINTS):
        self.graph = graph
        self.envs: list[dict] = []
        self._caches: list[dict] = []
        self.has_at = False
        rng = random.Random(_SEED)
        with mpmath.workdps(DIGITS):
            if at and all(name in at for name in graph.leaves):
                env = self._env({n: mpmath.mpf(repr(float(at[n]))) for n in graph.leaves})
                if env is not None:
                    self.envs.append(env)
                    self.has_at = True
            tries = 0
            while len(self.envs) < count + (1 if self.envs else 0) and tries < 60:
                tries += 1
                lo, hi = (-1.5, 1.5) if tries % 2 else (0.1, 0.9)
                env = self._env({n: mpmath.mpf(rng.uniform(lo, hi)) for n in graph.leaves})
                if env is not None:
                    self.envs.append(env)

    def describe(self, used: int) -> str:
        if self.has_at:
            return "the given point" if used == 1 else f"the given point and {used - 1} random point{'s' if used > 2 else ''}"
        return f"{used} random point{'s' if used != 1 else ''}"

    @property
    def caches(self) -> list[dict]:
        """One evaluation cache per point, shared by every check at that point."""
        while len(self._caches) < len(self.envs):
            self._caches.append({})
        return self._caches

    def _env(self, leaves: dict):
        env = {symbol(k): v for k, v in leaves.items()}
        try:
            for n in self.graph.nodes:
                v = evaluate(n.expr, env)
                if not mpmath.isfinite(v):
                    return None
                env[symbol(n.name)] = v
        except (NotReal, ZeroDivisionError, OverflowError, ValueError):
            return None
        return env


def _close(a, b) -> bool:
    return abs(a - b) <= TOLERANCE * max(1, abs(b))


def numeric_equal(mine: sp.Expr, ref: sp.Expr, points: Points, ref_env=None,
                  cached: bool = False) -> tuple[bool, int, str]:
    """Compare two expressions at the points; ``ref_env`` maps an env to the reference's env;
    ``cached``: both are in the graph's names, so the points' caches of values may be shared."""
    used = 0
    worst = mpmath.mpf(0)
    with mpmath.workdps(DIGITS):
        for k, env in enumerate(points.envs):
            cache = points.caches[k] if cached else None
            try:
                a = evaluate(mine, env, cache)
                b = evaluate(ref, ref_env(env) if ref_env else env, cache)
            except (NotReal, ZeroDivisionError, OverflowError, ValueError):
                continue
            if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
                continue
            used += 1
            if not _close(a, b):
                return False, used, f"differs at a test point: {mpmath.nstr(a, 12)} vs {mpmath.nstr(b, 12)}"
            worst = max(worst, abs(a - b) / max(1, abs(b)))
    if used == 0:
        return False, 0, "no test point where both sides are finite real numbers"
    return True, used, mpmath.nstr(worst, 3)


def random_envs(symbols, count: int = POINTS) -> list[dict]:
    """Random values for free symbols: half in (−1.5, 1.5), half in (0.1, 0.9)."""
    rng = random.Random(_SEED)
    syms = sorted(symbols, key=lambda s: s.name)
    out = []
    with mpmath.workdps(DIGITS):
        for k in range(2 * count):
            lo, hi = (-1.5, 1.5) if k % 2 == 0 else (0.1, 0.9)
            out.append({s: mpmath.mpf(rng.uniform(lo, hi)) for s in syms})
    return out


class _Envs:
    def __init__(self, envs):
        self.envs = envs


def check_local(expr: sp.Expr, var: sp.Symbol, mine: sp.Expr, ref: sp.Expr) -> Check:
    """∂expr/∂var by the rules against sympy.diff's ``ref``."""
    if mine == ref:
        return Check("identical", "identical to sympy's diff of the definition", True)
    if symbolic_zero(mine - ref):
        return Check("symbolic", "equal to sympy's diff of the definition (the difference expands to 0)", True)
    ok, used, info = numeric_equal(mine, ref, _Envs(random_envs(expr.free_symbols | {var})))
    if ok:
        return Check("numeric", f"equal to sympy's diff of the definition at {used} random points "
                                f"(mpmath, {DIGITS} digits)", True)
    return Check("numeric", f"NOT equal to sympy's diff of the definition ({info})", False)


def composed(graph, keep: str):
    """The output in terms of the leaves (``keep`` held as a variable)."""
    sub = {}
    for n in graph.nodes:
        if n.name == keep:
            continue
        sub[symbol(n.name)] = n.expr.xreplace(sub)
    return sub


def check_result_composed(graph, wrt: str, result: sp.Expr, points: Points, subs: dict) -> Check:
    out = subs[symbol(graph.output)] if symbol(graph.output) in subs else symbol(graph.output)
    ref = sp.diff(out, symbol(wrt))
    mine = result.xreplace(subs) if result.free_symbols else result
    pure = not mine.atoms(sp.Function) and not ref.atoms(sp.Function)
    if pure and symbolic_zero(mine - ref):
        return Check("symbolic", "equal to sympy's diff of the output written in the leaves "
                                 "(the difference expands to 0)", True)
    ok, used, info = numeric_equal(result, ref, points)
    if ok:
        return Check("numeric", f"equal to sympy's diff of the output written in the leaves at {points.describe(used)} "
                                f"(mpmath, {DIGITS} digits)", True)
    return Check("numeric", f"NOT equal to sympy's diff of the output written in the leaves ({info})", False)


def check_result_reverse(wrt: str, result: sp.Expr, points: Points, reference, extend, cached: bool) -> Check:
    """The result against ∂output/∂wrt by reverse accumulation of sympy's local derivatives.

    ``reference(k)`` gives every name's ∂output/∂name at point ``k`` (computed once per point for
    the whole graph, so checking every parameter stays linear in the graph); ``extend(k, env)``
    adds what the result needs beyond the point (the δ of wrt's children, where it is stated
    through them); ``cached``: the result holds node and leaf symbols only, so the point's
    cache of subexpression values may be shared."""
    used = 0
    with mpmath.workdps(DIGITS):
        for k, env in enumerate(points.envs):
            try:
                b = reference(k).get(wrt, mpmath.mpf(0))
                a = evaluate(result, env, points.caches[k]) if cached else evaluate(result, extend(k, env))
            except (NotReal, ZeroDivisionError, OverflowError, ValueError):
                continue
            if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
                continue
            used += 1
            if not _close(a, b):
                return Check("numeric", "NOT equal to reverse accumulation of sympy's local derivatives "
                                        f"({mpmath.nstr(a, 12)} vs {mpmath.nstr(b, 12)})", False)
    if not used:
        return Check("numeric", "could not be checked: no test point where the gradient is finite", False)
    return Check("numeric", f"equal to reverse accumulation of sympy's diff of each node at {points.describe(used)} "
                            f"(mpmath, {DIGITS} digits)", True)
