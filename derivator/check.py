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

Numeric comparisons never call a right derivation wrong (``settle``): two
values that differ at 30 digits are computed again at a precision past the
scale of the point (the magnitudes that cancellation could have eaten, as
``mpeval`` measures them), up to ``MAX_DIGITS`` and ``WORK`` (digits ×
values) per point, and called different only there. A point whose values
leave ``mpeval``'s range, or whose comparison would need more precision than
the budget, is left out and another taken; where no point is left, the
lower-cost check is expand/cancel, and where that cannot decide either the
check is ``unchecked`` (the CLI exits with status 2). The detail of every
check says which points were used, at what precision, and which were left
out and why.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import mpmath
import sympy as sp

from .expr import symbol
from .functions import Max2, Min2, logsumexp, relu, sigmoid, softplus
from .mpeval import MAX_BITS, SCALE, NotReal, OutOfRange, evaluate, needed_digits

DIGITS = 30
POINTS = 3
TOLERANCE = mpmath.mpf(10) ** -(DIGITS - 8)
SYMBOLIC_OPS = 400          # largest expression tried with expand/cancel
COMPOSE_NODES = 40          # graphs up to this many nodes are composed in the leaves …
COMPOSE_TREE = 120          # … when the output written out as a tree has at most this many nodes
_SEED = 20260601


@dataclass(frozen=True)
class Check:
    method: str       # identical | symbolic | numeric | unchecked (no point and no algebra could decide)
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


# Where the first tries find no point (a definition that is only defined for a > 2, say), wider ranges.
_FIRST_TRIES = 20
_WIDER = ((-4.0, 4.0), (1.0, 10.0), (-10.0, -1.0), (0.01, 0.1), (10.0, 100.0), (-100.0, -10.0))
_TRIES = 60

MAX_DIGITS = 1920           # the most digits a comparison raises its precision to …
LADDER = (DIGITS, 60, 120, 240, 480, 960, MAX_DIGITS)
WORK = 2_000_000            # … and digits × values computed at the point at most (bounded work per point)


_RANGE = f"values reach 2^{MAX_BITS} (about 1e4932), beyond the range of the check"
_NOT_REAL = "values that are not finite real numbers"


def _reason(e: Exception) -> str:
    return _RANGE if isinstance(e, OutOfRange) else _NOT_REAL


class Points:
    """Points for numeric checks: values for every name of a graph, at 30 digits and more.

    The first point is the definition's own (its ``at``, where it gives every
    leaf and every node is finite there and within the range of ``mpeval``);
    the others are random. Each point keeps its leaves exactly, so a
    comparison can recompute it at a higher precision (``env_at``).
    ``at_note`` says why the given point is not used, when it is not.
    """

    def __init__(self, graph, at: dict | None = None, count: int = POINTS):
        self.graph = graph
        self.size = len(graph.nodes)
        self.leaves: list[dict] = []      # per point: symbol -> exact value (a float, or the text of `at`)
        self.envs: list[dict] = []
        self._caches: list[dict] = []
        self._raised: dict[tuple[int, int], tuple[dict, dict]] = {}
        self.has_at = False
        self.at_note: str | None = None
        self.missed: dict[str, int] = {}   # why random tries were left out -> how many
        rng = random.Random(_SEED)
        if at and all(name in at for name in graph.leaves):
            try:
                self._add({symbol(n): repr(float(at[n])) for n in graph.leaves})
                self.has_at = True
            except _UNUSABLE as e:
                self.at_note = _reason(e)
        tries = 0
        while len(self.envs) < count + (1 if self.envs else 0) and tries < _TRIES:
            tries += 1
            if tries <= _FIRST_TRIES:
                lo, hi = (-1.5, 1.5) if tries % 2 else (0.1, 0.9)
            else:
                lo, hi = _WIDER[tries % len(_WIDER)]
            try:
                self._add({symbol(n): rng.uniform(lo, hi) for n in graph.leaves})
            except _UNUSABLE as e:
                self.missed[_reason(e)] = self.missed.get(_reason(e), 0) + 1

    def _add(self, leaves: dict) -> None:
        env, cache = self._build(leaves, DIGITS)
        self.leaves.append(leaves)
        self.envs.append(env)
        self._caches.append(cache)

    def _build(self, leaves: dict, dps: int) -> tuple[dict, dict]:
        """The point's values at ``dps`` digits, and a cache that holds (only) their scale."""
        scale = 0
        with mpmath.workdps(dps):
            env = {s: mpmath.mpf(v) for s, v in leaves.items()}
            for n in self.graph.nodes:
                cache: dict = {}
                v = evaluate(n.expr, env, cache)
                if not mpmath.isfinite(v):
                    raise NotReal(n.name)
                env[symbol(n.name)] = v
                scale = max(scale, cache[SCALE])
        return env, {SCALE: scale}

    def env_at(self, k: int, dps: int) -> tuple[dict, dict]:
        """Point ``k`` at ``dps`` digits: its values and its evaluation cache."""
        if dps == DIGITS:
            return self.envs[k], self.caches[k]
        key = (k, dps)
        if key not in self._raised:
            self._raised[key] = self._build(self.leaves[k], dps)
        return self._raised[key]

    def describe(self, used) -> str:
        """The points ``used`` (their indices, or how many of the first ones), in words."""
        idx = list(range(used)) if isinstance(used, int) else list(used)
        given = self.has_at and 0 in idx
        rand = len(idx) - (1 if given else 0)
        words = f"{rand} random point{'s' if rand != 1 else ''}"
        if given:
            return "the given point" if not rand else f"the given point and {words}"
        return words

    def name(self, k: int) -> str:
        return "the given point" if self.has_at and k == 0 else "a random point"

    @property
    def caches(self) -> list[dict]:
        """One evaluation cache per point, shared by every check at that point."""
        while len(self._caches) < len(self.envs):
            self._caches.append({})
        return self._caches


_UNUSABLE = (NotReal, ZeroDivisionError, OverflowError, ValueError)


def _close(a, b) -> bool:
    return abs(a - b) <= TOLERANCE * max(1, abs(b))


def _limit(ops: int) -> int:
    """The most digits a comparison at a point with ``ops`` values may use."""
    return min(MAX_DIGITS, max(2 * DIGITS, WORK // max(ops, 1)))


def settle(values, ops: int = 1):
    """Compare two values, raising the precision until rounding cannot explain a difference.

    ``values(dps)`` gives ``(a, b, scale)`` computed at ``dps`` digits, where
    ``scale`` (bits, from ``mpeval``) bounds what cancellation can lose. Two
    values are called different only at a precision that exceeds the scale
    by the 30 digits of the check, and never before they were computed at
    two precisions. Returns ``(verdict, digits, info)``: ``equal`` (info: the
    relative error), ``differ`` (info: the two values), ``range`` (a value
    beyond the range of ``mpeval``), ``skip`` (not a finite real number) or
    ``unsettled`` (the precision it would take is past the budget).
    """
    limit = _limit(ops)
    dps = DIGITS
    while True:
        try:
            with mpmath.workdps(dps):
                a, b, scale = values(dps)
                if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
                    return "skip", dps, None
                if _close(a, b):
                    return "equal", dps, abs(a - b) / max(1, abs(b))
        except OutOfRange:
            return "range", dps, None
        except _UNUSABLE:
            return "skip", dps, None
        need = needed_digits(scale, DIGITS)
        if dps >= need:
            return "differ", dps, (a, b)
        dps = next((d for d in LADDER if d >= need), need)
        if dps > limit:
            return "unsettled", limit, None


class Tally:
    """The outcome of one comparison at every point: which agreed, at what precision, which were left out."""

    def __init__(self, points):
        self.points = points
        self.used: list[int] = []
        self.raised: dict[int, int] = {}
        self.left_out: list[tuple[int, str]] = []
        self.differ: str | None = None
        self.worst = mpmath.mpf(0)

    @property
    def ok(self) -> bool:
        return self.differ is None and bool(self.used)

    def add(self, k: int, verdict: str, digits: int, info) -> None:
        if verdict == "equal":
            self.used.append(k)
            self.worst = max(self.worst, info)
            if digits > DIGITS:
                self.raised[k] = digits
        elif verdict == "differ":
            a, b = info
            self.differ = f"differs at a test point: {mpmath.nstr(a, 12)} vs {mpmath.nstr(b, 12)}" + \
                (f" (at {digits} digits)" if digits > DIGITS else "")
        elif verdict == "range":
            self.left_out.append((k, _RANGE))
        elif verdict == "unsettled":
            self.left_out.append((k, f"rounding there would take more than {digits} digits to rule out"))
        elif self.points.has_at and k == 0:
            self.left_out.append((k, _NOT_REAL))

    @property
    def info(self) -> str:
        if self.differ:
            return self.differ
        if not self.used:
            return "no test point where both sides are finite real numbers" + self.note()
        return mpmath.nstr(self.worst, 3)

    def precision(self) -> str:
        """``mpmath, 30 digits`` and, where a point needed more, how many and where."""
        text = f"mpmath, {DIGITS} digits"
        if self.raised:
            top = max(self.raised.values())
            where = self.points.name(next(iter(self.raised))) if len(self.raised) == 1 else f"{len(self.raised)} points"
            text += f", raised to {top} at {where}, where {DIGITS} digits lost the comparison to rounding"
        return text

    def note(self) -> str:
        """Why points were left out, for the check's detail (empty when none was)."""
        parts = []
        if self.points.at_note:
            parts.append(f"the given point was left out: {self.points.at_note}")
        given = [why for k, why in self.left_out if self.points.has_at and k == 0]
        if given:
            parts.append(f"the given point was left out: {given[0]}")
        others = [why for k, why in self.left_out if not (self.points.has_at and k == 0)]
        if others:
            parts.append(f"{len(others)} random point{'s were' if len(others) > 1 else ' was'} left out: {others[0]}")
        missed = getattr(self.points, "missed", None)
        if not self.used and missed:
            why = max(missed, key=missed.get)
            parts.append(f"{sum(missed.values())} random points were tried: {why}"
                         + (f" at {missed[why]} of them" if len(missed) > 1 else ""))
        return "; " + "; ".join(parts) if parts else ""

    def where(self) -> str:
        """``at the given point and 3 random points (mpmath, 30 digits…)``: for a passed check's detail."""
        return f"at {self.points.describe(self.used)} ({self.precision()}{self.note()})"


def compare(points, values) -> Tally:
    """``values(k, dps) -> (a, b, scale)`` compared at every point of ``points`` (stops at a difference)."""
    t = Tally(points)
    for k in range(len(points.envs)):
        ops = len(points.caches[k]) + points.size        # values computed at the point: its cost per digit
        verdict, digits, info = settle(lambda dps, k=k: values(k, dps), ops)
        t.add(k, verdict, digits, info)
        if t.differ:
            break
    return t


def _scale(cache: dict, *values) -> int:
    return max([cache.get(SCALE, 0)] + [abs(int(mpmath.mag(v))) for v in values if v and mpmath.isfinite(v)])


def compare_exprs(mine: sp.Expr, ref: sp.Expr, points, ref_env=None) -> Tally:
    """Two expressions compared at the points; ``ref_env`` maps an env to the reference's env."""
    def values(k, dps):
        env, cache = points.env_at(k, dps)
        a = evaluate(mine, env, cache)
        b = evaluate(ref, ref_env(env) if ref_env else env, cache if ref_env is None else None)
        return a, b, _scale(cache, a, b)
    return compare(points, values)


def numeric_equal(mine: sp.Expr, ref: sp.Expr, points: Points, ref_env=None,
                  cached: bool = True) -> tuple[bool, int, str]:
    """Compare two expressions at the points; ``ref_env`` maps an env to the reference's env (the
    points' caches of values are shared by both sides where they share the env: ``cached`` is kept
    for the callers that say so).

    Returns ``(equal, points used, info)``: info is the worst relative error
    when equal, else what differs (or that no point could be used)."""
    t = compare_exprs(mine, ref, points, ref_env)
    return t.ok, len(t.used), t.info


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
    """Points that are leaf values only (exact floats): the same values at every precision."""

    has_at = False
    at_note = None
    size = 0

    def __init__(self, envs):
        self.envs = envs
        self.caches = [{} for _ in envs]
        self._fresh: dict = {}

    def env_at(self, k: int, dps: int):
        if dps == DIGITS:
            return self.envs[k], self.caches[k]
        return self.envs[k], self._fresh.setdefault((k, dps), {})

    def describe(self, used) -> str:
        n = used if isinstance(used, int) else len(used)
        return f"{n} random point{'s' if n != 1 else ''}"

    def name(self, k: int) -> str:
        return "a random point"


def check_local(expr: sp.Expr, var: sp.Symbol, mine: sp.Expr, ref: sp.Expr) -> Check:
    """∂expr/∂var by the rules against sympy.diff's ``ref``."""
    if mine == ref:
        return Check("identical", "identical to sympy's diff of the definition", True)
    if symbolic_zero(mine - ref):
        return Check("symbolic", "equal to sympy's diff of the definition (the difference expands to 0)", True)
    t = compare_exprs(mine, ref, _Envs(random_envs(expr.free_symbols | {var})))
    if t.ok:
        return Check("numeric", f"equal to sympy's diff of the definition at {len(t.used)} random points "
                                f"({t.precision()}{t.note()})", True)
    if t.differ:
        return Check("numeric", f"NOT equal to sympy's diff of the definition ({t.info})", False)
    return _unchecked("sympy's diff of the definition", t)


def _unchecked(what: str, t: Tally) -> Check:
    """No point could decide, and expand/cancel could not either: the check could not be made."""
    return Check("unchecked", f"could not be checked against {what}: no usable test point{t.note()}", False)


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
    symbolic = ("symbolic", "equal to sympy's diff of the output written in the leaves (the difference expands to 0)")
    if pure and symbolic_zero(mine - ref):
        return Check(*symbolic, True)
    t = compare_exprs(result, ref, points)
    if t.ok:
        return Check("numeric", f"equal to sympy's diff of the output written in the leaves {t.where()}", True)
    if t.differ:
        return Check("numeric", f"NOT equal to sympy's diff of the output written in the leaves ({t.info})", False)
    # no point could decide: the lower-cost check (expand / cancel) where the numbers could not
    if not pure and symbolic_zero(mine - ref):
        return Check(symbolic[0], symbolic[1] + f"; no test point could be used{t.note()}", True)
    return _unchecked("sympy's diff of the output written in the leaves", t)


def check_result_reverse(wrt: str, result: sp.Expr, points: Points, reference, extend, cached: bool) -> Check:
    """The result against ∂output/∂wrt by reverse accumulation of sympy's local derivatives.

    ``reference(k, dps)`` gives every name's ∂output/∂name at point ``k`` (computed once per point
    for the whole graph, so checking every parameter stays linear in the graph; again at a raised
    precision ``dps`` where rounding must be ruled out); ``extend(k, env, dps)`` adds what the result
    needs beyond the point (the δ of wrt's children, where it is stated through them); ``cached``:
    the result holds node and leaf symbols only, so the point's cache of values may be shared."""
    def values(k, dps):
        env, cache = points.env_at(k, dps)
        b = reference(k, dps).get(wrt, mpmath.mpf(0))
        a = evaluate(result, env, cache) if cached else evaluate(result, extend(k, env, dps))
        return a, b, _scale(cache, a, b)

    t = compare(points, values)
    if t.ok:
        return Check("numeric", "equal to reverse accumulation of sympy's diff of each node " + t.where(), True)
    if t.differ:
        a_b = t.differ.split(": ", 1)[1]
        return Check("numeric", f"NOT equal to reverse accumulation of sympy's local derivatives ({a_b})", False)
    return _unchecked("reverse accumulation of sympy's local derivatives", t)
