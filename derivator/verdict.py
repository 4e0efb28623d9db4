"""Verdicts: a claimed derivative -> right or wrong, how that was decided, and what is wrong.

Takes a definition and claims (``spec.Claim``: a name and an expression parsed by the
project's parser, never evaluated); gives one frozen ``Verdict`` per claim.

The claim and the derivative are compared at the definition's ``at`` (when it gives every
leaf) and at random points, in 30-digit mpmath arithmetic:

- **right** when they are equal at every point; then a symbolic proof is tried where it is
  cheap (the claim minus derivator's result expands to 0 in the node names, or, for
  graphs without functions, minus sympy's diff of the output written in the leaves;
  never ``simplify()``). ``method`` and ``check`` say which.
- **wrong** otherwise, with a counterexample: a point (every leaf) where the two differ
  visibly, the definition's ``at`` when it shows the difference, else a point of
  one-decimal values, and a diagnosis (``kind``), tried in this order:

  1. ``missing_paths`` for a claim that is 0 (every path is missing);
  2. ``sign``: the claim is −1 times the derivative;
  3. ``factor`` by a constant (the claim times 2 is the derivative);
  4. ``missing_paths`` / ``extra_paths``: the claim is the sum over the paths but for
     some missing paths, or with extra ones. Two searches: one that scales with the
     graph (the paths through one node or one edge are missing or counted twice; the
     paths to another leaf, or through one edge into it, are added: a neighbouring
     weight), by adjoints and tangents at each point, linear in the graph; and, where
     the paths are few, an exact solve for the 0/1/2 coefficients of every path (and
     0/1 of the paths to the nearest other leaves) from per-path products at more
     points than unknowns, verified in 30 digits;
  5. ``factor`` by a product of at most three local partials (with exponents ±1) and a
     constant: a missing σ′(z₃) = o₁(1 − o₁), an extra one, x₂ where x₁ belongs, a
     missing relu′ = [z > 0] (a partial that vanishes at some points); or, where the
     paths are few, the partial of the same step missing or doubled on every path
     (σ′ of each output);
  6. ``incorrect``: none of these.

  Besides the kind: ``equals`` (the claim is exactly the derivative with respect to
  another name), ``agrees_at_given`` (right at the given point only; for a number, to
  the digits written) and ``mixed`` (the paths left out and added, where only both
  explain it).

Every number comes from derivator's own checked derivation (the local partials of its
workspace, by reverse accumulation), and the derivation itself must have passed its
checks. The claim is evaluated in floating point first at each point, so that a claim
such as exp(exp(exp(exp(exp(x1))))) is found non-finite there instead of hanging mpmath.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import islice
from typing import Any

import mpmath
import sympy as sp

from . import api
from .check import DIGITS, TOLERANCE, elementary
from .errors import ExpressionError, UsageError, VerificationError
from .expr import _float_value, symbol
from .derivation import DELTA
from .paths import count_paths, iter_paths
from .spec import Claim, Definition, parse_claim

POINTS = 6                  # random points of the numeric proof (besides the given point)
NICE_POINTS = 40            # one-decimal points tried for a counterexample
SYMBOLIC_TERMS = 300        # largest expansion (estimated terms) tried symbolically
CANCEL_OPS = 400            # largest expanded rational expression given to cancel
PATH_SOLVE = 48             # paths of the wrt in the exact solve …
PATH_EXTRA = 24             # … and paths to the nearest other leaves (a neighbouring weight's)
JSON_PATHS = 1000           # paths listed (the count is always exact)
FACTOR_CANDIDATES = 400     # distinct local partials searched for a factor (pairs)
FACTOR_TRIPLES = 40         # … and for triples
MAX_DENOMINATOR = 1000      # a constant factor is a rational p/q with q at most this
VISIBLE = 1e-6              # relative difference shown by a counterexample
_SEED = 20260611
KINDS = ("correct", "sign", "factor", "missing_paths", "extra_paths", "incorrect")   # the JSON's "kind"


# ----------------------------------------------------------------- data ---

@dataclass(frozen=True)
class Counterexample:
    at: tuple[tuple[str, float], ...]       # every leaf, graph order
    claimed: float | None                   # None where the claim is not a finite real number there
    actual: float
    given: bool                             # the definition's own `at`

    def as_dict(self) -> dict:
        return {"at": dict(self.at), "claimed": self.claimed, "actual": self.actual}


@dataclass(frozen=True)
class FactorPart:
    """One local partial ∂child/∂parent in a factor, to the power ±1."""
    child: str
    parent: str
    expr: Any                   # the partial in node names
    power: int
    function: str | None        # "sigmoid", "tanh", … where child = f(parent): σ′(parent)


@dataclass(frozen=True)
class Verdict:
    definition: Definition
    wrt: str
    claim: str                              # as written
    expr: Any                               # the claim, sympy, in leaf and node names
    correct: bool
    kind: str
    check: str                              # how the verdict (and the diagnosis) was reached
    method: str                             # symbolic | numeric: how the verdict was reached
    derivation: Any                         # derivator's checked Derivation of ∂output/∂wrt
    counterexample: Counterexample | None = None
    paths: tuple[tuple[str, ...], ...] = ()  # the missing or extra paths (at most JSON_PATHS)
    path_count: int = 0                     # their exact number
    factor: Any = None                      # actual / claim (kind factor), sympy
    factor_constant: Any = None             # its rational constant
    factor_parts: tuple[FactorPart, ...] = ()
    counted_twice: tuple[tuple[str, ...], ...] = ()   # extra paths that are paths of wrt (subset of paths)
    equals: str | None = None               # the claim is exactly ∂output/∂equals
    agrees_at_given: bool | None = None     # equal at the definition's `at` (None: no complete `at`)
    given_actual: float | None = None       # the derivative at the definition's `at`
    number: bool = False                    # the claim is a number (no names)
    mixed: tuple = ()                       # (missing, extra) path lists, where only both explain it
    per_path: bool = False                  # factor_parts: one on each path (σ′ of each output), no single factor
    line: int | None = None                 # the claim's line in the file

    @property
    def output(self) -> str:
        return self.derivation.output

    @property
    def message(self) -> str:
        from .feedback import message
        return message(self)

    def to_json(self) -> dict:
        return {"wrt": self.wrt, "claim": self.claim, "correct": self.correct, "kind": self.kind,
                "paths": [list(p) for p in self.paths], "path_count": self.path_count,
                "factor": sp.sstr(self.factor) if self.factor is not None else
                ", ".join(sp.sstr(p.expr if p.power > 0 else 1 / p.expr) for p in self.factor_parts) or None,
                "equals": self.equals,
                "counterexample": self.counterexample.as_dict() if self.counterexample else None,
                "check": self.check, "message": self.message}

    def to_text(self) -> str:
        return Report((self,), self.definition).to_text()

    def to_markdown(self, **options) -> str:
        return Report((self,), self.definition).to_markdown(**options)

    def to_latex(self, **options) -> str:
        return Report((self,), self.definition).to_latex(**options)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        claim = self.claim if len(self.claim) <= 80 else self.claim[:77] + "..."
        if self.correct:
            return f"<Verdict ∂{self.output}/∂{self.wrt} = {claim!r}: right ({self.method})>"
        what = self.kind
        if self.factor is not None:
            what += f": times {sp.sstr(self.factor)} it is right"
        elif self.paths:
            what += f": {self.path_count} path{'s' if self.path_count != 1 else ''}, e.g. {' → '.join(self.paths[0])}"
        cx = self.counterexample
        return (f"<Verdict ∂{self.output}/∂{self.wrt} = {claim!r}: WRONG ({what}); at "
                f"{'the given point' if cx.given else 'a counterexample'} the claim is {cx.claimed!r}, "
                f"the derivative {cx.actual!r}>")


@dataclass(frozen=True)
class Report:
    """The verdicts on the claims of one definition, in order, with the score."""
    verdicts: tuple[Verdict, ...]
    definition: Definition

    def __iter__(self):
        return iter(self.verdicts)

    def __len__(self) -> int:
        return len(self.verdicts)

    def __getitem__(self, i):
        return self.verdicts[i]

    @property
    def score(self) -> tuple[int, int]:
        return sum(v.correct for v in self.verdicts), len(self.verdicts)

    @property
    def all_correct(self) -> bool:
        return all(v.correct for v in self.verdicts)

    def to_json(self):
        objs = [v.to_json() for v in self.verdicts]
        return objs[0] if len(objs) == 1 else objs

    def to_text(self) -> str:
        from .feedback import render_report
        return render_report(self, "text")

    def to_markdown(self, **options) -> str:
        from .feedback import render_report
        return render_report(self, "md", **options)

    def to_latex(self, **options) -> str:
        from .feedback import render_report
        return render_report(self, "tex", **options)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        right, total = self.score
        kinds = ", ".join(f"{v.wrt}: {v.kind}" for v in self.verdicts[:8]) + (", …" if total > 8 else "")
        return f"<Report on {self.definition.source}: {right} of {total} claims right ({kinds})>"


# -------------------------------------------------------------- points ---

class _Point:
    """One point: every leaf, every node's value, and (lazily) partials, adjoints, tangents."""

    __slots__ = ("leaves", "env", "cache", "given", "parts", "delta", "tangent", "claimed", "actual")

    def __init__(self, leaves: dict, env: dict, given: bool):
        self.leaves, self.env, self.given = leaves, env, given
        self.cache: dict = {}
        self.parts: dict = {}
        self.delta: dict | None = None
        self.tangent: dict = {}             # wrt -> {node: ∂node/∂wrt}
        self.claimed = self.actual = None


def _mp(x: float):
    return mpmath.mpf(repr(float(x)))


def _close(a, b, tol=TOLERANCE) -> bool:
    return abs(a - b) <= tol * max(1, abs(a), abs(b))


def _finite(v) -> bool:
    return v is not None and mpmath.isfinite(v)


class _Judge:
    """The judging machinery of one definition: points, the derivative there, and its parts."""

    def __init__(self, definition: Definition):
        self.d = definition
        self.g = api.graph(definition)
        self.ws = api.workspace(definition)
        self.rng = random.Random(_SEED)
        self.random_points: list[_Point] = []
        self.tries = 0
        self.relevant = set(self.g.ancestors(self.g.output))
        self.given = self._given()

    # -- points ----------------------------------------------------------
    def _point(self, leaves: dict, given=False) -> _Point | None:
        env = {}
        with mpmath.workdps(DIGITS):
            for name, v in leaves.items():
                env[symbol(name)] = _mp(v)
            cache: dict = {}
            try:
                for n in self.g.nodes:
                    v = _mp_value(n.expr, env, cache)
                    if not mpmath.isfinite(v):
                        return None
                    env[n.symbol] = v
            except ArithmeticError:
                return None
            except ValueError:
                return None
        return _Point(dict(leaves), env, given)

    def _given(self) -> _Point | None:
        at = self.d.at_dict
        if not at or any(x not in at for x in self.g.leaves):
            return None
        return self._point({x: at[x] for x in self.g.leaves}, given=True)

    def more_points(self, count: int) -> list[_Point]:
        """At least ``count`` random points (fewer only where the graph is rarely finite)."""
        while len(self.random_points) < count and self.tries < 20 * count + 60:
            self.tries += 1
            lo, hi = (-1.5, 1.5) if self.tries % 2 else (0.1, 0.9)
            p = self._point({x: self.rng.uniform(lo, hi) for x in self.g.leaves})
            if p is not None:
                self.random_points.append(p)
        return self.random_points[:count]

    def nice_points(self):
        """Points of one-decimal values (−1.5 … 1.5 and 0.1 … 0.9, never 0), for counterexamples."""
        rng = random.Random(_SEED + 1)      # the same points for every claim, whatever was judged before
        for k in range(NICE_POINTS):
            vals = {}
            for x in self.g.leaves:
                if k % 2:
                    vals[x] = rng.randint(1, 9) / 10
                else:
                    vals[x] = rng.choice([-1, 1]) * rng.randint(1, 15) / 10
            p = self._point(vals)
            if p is not None:
                yield p

    # -- values at a point -------------------------------------------------
    def partial(self, pt: _Point, child: str, parent: str):
        key = (child, parent)
        v = pt.parts.get(key)
        if v is None:
            with mpmath.workdps(DIGITS):
                v = pt.parts[key] = _mp_value(self.ws.partial(child, parent).expr, pt.env, pt.cache)
        return v

    def adjoints(self, pt: _Point) -> dict:
        """δ_n = ∂output/∂n for every name (leaves: the full gradient), by reverse accumulation."""
        if pt.delta is None:
            delta = {self.g.output: mpmath.mpf(1)}
            with mpmath.workdps(DIGITS):
                for n in reversed(self.g.nodes):
                    dn = delta.get(n.name)
                    if dn is None:
                        continue
                    for p in n.parents:
                        delta[p] = delta.get(p, 0) + dn * self.partial(pt, n.name, p)
            pt.delta = delta
        return pt.delta

    def tangents(self, pt: _Point, wrt: str) -> dict:
        """t_n = ∂n/∂wrt for every node between wrt and the output (forward accumulation)."""
        if wrt not in pt.tangent:
            t = {wrt: mpmath.mpf(1)}
            start = self.g.index.get(wrt, -1) + 1
            with mpmath.workdps(DIGITS):
                for n in self.g.nodes[start:]:
                    if n.name not in self.relevant:
                        continue
                    terms = [self.partial(pt, n.name, p) * t[p] for p in n.parents if p in t]
                    if terms:
                        t[n.name] = mpmath.fsum(terms)
            pt.tangent[wrt] = t
        return pt.tangent[wrt]

    def values(self, pt: _Point, wrt: str, claim: sp.Expr):
        """(claimed, actual) at the point; either is None where not a finite real number."""
        try:
            actual = self.adjoints(pt).get(wrt, mpmath.mpf(0))
        except (ArithmeticError, ValueError):
            actual = None
        return claim_value(claim, pt), actual


def _mp_value(expr, env, cache):
    """mpeval's value of ``expr``; every way of not being a real number is an ArithmeticError."""
    from .mpeval import NotReal, evaluate
    try:
        return evaluate(expr, env, cache)
    except (NotReal, ZeroDivisionError, OverflowError) as e:
        raise ArithmeticError(str(e)) from None


def claim_value(expr: sp.Expr, pt: _Point):
    """The claim at a point: in float64 first (an overflow there is not finite, and never hangs
    mpmath), then in 30 digits. None where it is not a finite real number."""
    if not expr.free_symbols:
        memo: dict = {}
    else:
        memo = {s: float(pt.env[s]) for s in expr.free_symbols}
    try:
        _float_value(expr, memo)     # None for a form it does not know: then mpmath alone
    except ArithmeticError:
        return None
    with mpmath.workdps(DIGITS):
        try:
            v = _mp_value(expr, pt.env, {})
        except (ArithmeticError, ValueError):
            return None
    return v if mpmath.isfinite(v) else None


# ------------------------------------------------------------ symbolic ---

def expansion_terms(e: sp.Expr, limit: int = SYMBOLIC_TERMS) -> int:
    """An upper bound on the terms ``expand`` makes of ``e`` (more than ``limit``: limit + 1)."""
    memo: dict = {}

    def terms(x) -> int:
        if x in memo:
            return memo[x]
        if x.is_Atom:
            n = 1
        elif x.is_Add:
            n = sum(terms(a) for a in x.args)
        elif x.is_Mul:
            n = 1
            for a in x.args:
                n = min(n * terms(a), limit + 1)
        elif x.is_Pow and x.exp.is_Integer and x.exp > 0:
            k = int(x.exp)
            b = terms(x.base)
            n = 1 if b == 1 else (limit + 1 if k > 64 else min(math.comb(b + k - 1, k), limit + 1))
        else:   # a function, a negative or symbolic power: expand works inside it
            n = 1 + sum(terms(a) for a in x.args)
        n = min(n, limit + 1)
        memo[x] = n
        return n

    return terms(e)


def symbolic_equal(a: sp.Expr, b: sp.Expr) -> bool:
    """a − b expands to 0 (or, without functions, cancels to 0); False where not shown or too costly.

    Never ``simplify()``; an expansion estimated above SYMBOLIC_TERMS terms, or with a power
    beyond 64, is not tried, and ``cancel`` only runs on rational functions (over exp and
    log it is slow and rarely decides)."""
    diff = a - b
    if diff == 0:
        return True
    e = elementary(diff)
    if expansion_terms(e) > SYMBOLIC_TERMS:
        return False
    for p in e.atoms(sp.Pow):
        if p.exp.is_Rational and (abs(p.exp.p) > 64 or p.exp.q > 64):
            return False
    e = sp.expand(e)
    if e == 0:
        return True
    if e.atoms(sp.Function) or not any(p.exp.is_negative for p in e.atoms(sp.Pow)):
        return False        # a polynomial that expands to non-zero is non-zero
    if sp.count_ops(e) > CANCEL_OPS:
        return False
    try:
        return sp.cancel(sp.together(e)) == 0
    except (sp.PolynomialError, sp.CoercionFailed, NotImplementedError):
        return False


def _pure(*exprs) -> bool:
    return not any(e.atoms(sp.Function) for e in exprs)


# ---------------------------------------------------------------- judge ---

def _combine(ups, downs, limit: int) -> tuple:
    """Paths output → … → v followed by paths v → … → wrt (v listed once), at most ``limit``."""
    downs = list(islice(downs, limit))
    out = []
    for up in ups:
        for down in downs:
            out.append(up + down[1:])
            if len(out) >= limit:
                return tuple(out)
    return tuple(out)


def _paths_through(g, wrt: str, node: str, limit: int) -> tuple:
    return _combine(iter_paths(g, node), iter_paths(g, wrt, output=node), limit)


def _paths_through_edge(g, wrt: str, child: str, parent: str, limit: int) -> tuple:
    downs = [(child, parent)] if parent == wrt else ((child,) + d for d in iter_paths(g, wrt, output=parent))
    return _combine(iter_paths(g, child), downs, limit)


def _function_of(g, child: str, parent: str) -> str | None:
    """The name of f where child = f(parent) (σ′(parent) reads better than ∂child/∂parent)."""
    if child not in g.index:
        return None
    e = g.node(child).expr
    if len(e.args) == 1 and e.args[0] == symbol(parent) and isinstance(e, sp.Function):
        return type(e).__name__
    return None


@dataclass
class _Facts:
    """What the judge found; becomes a Verdict."""
    kind: str = "incorrect"
    detail: str = ""
    paths: tuple = ()
    path_count: int = 0
    factor: Any = None
    factor_constant: Any = None
    factor_parts: tuple = ()
    counted_twice: tuple = ()
    equals: str | None = None
    mixed: tuple = ()
    per_path: bool = False
    extra: dict = field(default_factory=dict)


class _Diagnosis:
    """The diagnosis of a wrong claim at a set of points where both sides are finite."""

    def __init__(self, judge: _Judge, wrt: str, claim: sp.Expr, points: list[_Point]):
        self.j, self.g, self.wrt, self.claim = judge, judge.g, wrt, claim
        self.points = points
        self.D = [p.claimed for p in points]
        self.A = [p.actual for p in points]

    def same(self, xs, ys, tol=TOLERANCE) -> bool:
        return all(_close(x, y, tol) for x, y in zip(xs, ys))

    def run(self) -> _Facts:
        f = _Facts()
        with mpmath.workdps(DIGITS):
            zero_actual = all(a == 0 for a in self.A)
            zero_claim = self.claim == 0 or all(c == 0 for c in self.D)
            if zero_claim and not zero_actual:
                n = count_paths(self.g, self.wrt)
                return _Facts("missing_paths", "the claim is 0 at every point: every path is missing",
                              tuple(islice(iter_paths(self.g, self.wrt), JSON_PATHS)), n)
            self.equals(f)
            if not zero_actual:
                if self.same(self.D, [-a for a in self.A]):
                    f.kind, f.detail = "sign", "−1 times the derivative"
                    return f
                if self.constant_factor(f):
                    return f
            if self.structured(f) or (not zero_actual and self.solve(f)):
                return f
            if not zero_actual and (self.partial_factor(f) or self.per_path_factor(f)):
                return f
        return f

    # -- the claim is exactly another derivative ---------------------------
    def equals(self, f: _Facts) -> None:
        deltas = [self.j.adjoints(p) for p in self.points]
        for name in self.g.names:
            if name in (self.wrt, self.g.output) or name not in deltas[0]:
                continue
            if self.same(self.D, [d.get(name, 0) for d in deltas]):
                f.equals = name
                return

    # -- sign and constant factors -------------------------------------------
    def constant_factor(self, f: _Facts) -> bool:
        if any(c == 0 for c in self.D):
            return False
        ratios = [a / c for a, c in zip(self.A, self.D)]
        r = ratios[0]
        if not self.same(ratios, [r] * len(ratios), TOLERANCE * 100):
            return False
        frac = _rational(r)
        c = sp.Rational(frac.numerator, frac.denominator) if frac is not None else sp.Float(mpmath.nstr(r, 15), 15)
        f.kind, f.factor, f.factor_constant = "factor", c, c
        f.detail = f"the claim times {sp.sstr(c)} is the derivative"
        return True

    # -- paths: the search that scales with the graph ---------------------------
    def structured(self, f: _Facts) -> bool:
        g, wrt, pts = self.g, self.wrt, self.points
        deltas = [self.j.adjoints(p) for p in pts]
        tans = [self.j.tangents(p, wrt) for p in pts]
        diff = [c - a for c, a in zip(self.D, self.A)]
        if all(abs(x) <= TOLERANCE for x in diff):
            return False
        relevant = self.j.relevant
        # through a node v (other than the output and wrt): δ_v · t_v; through an edge (c, n): δ_c · ∂c/∂n · t_n
        for n in g.nodes:
            v = n.name
            if v in (g.output, wrt) or v not in tans[0] or v not in relevant:
                continue
            m = [d.get(v, 0) * t[v] for d, t in zip(deltas, tans)]
            if self.match(f, diff, m, "node", v):
                return True
        for n in reversed(g.nodes):
            if n.name not in relevant:
                continue
            for p in n.parents:
                if p not in tans[0]:
                    continue
                m = [d.get(n.name, 0) * self.j.partial(pt, n.name, p) * t[p] for d, pt, t in zip(deltas, pts, tans)]
                if self.match(f, diff, m, "edge", (n.name, p)):
                    return True
        # another leaf's whole gradient, or one edge into it: a neighbouring weight's paths
        for u in g.leaves:
            if u == wrt or u not in relevant:
                continue
            if self.same(diff, [d.get(u, 0) for d in deltas]) and not all(d.get(u, 0) == 0 for d in deltas):
                f.kind, f.detail = "extra_paths", f"the claim adds ∂{g.output}/∂{u}: the paths to {u}"
                f.paths = tuple(islice(iter_paths(g, u), JSON_PATHS))
                f.path_count = count_paths(g, u)
                return True
            for c in g.children.get(u, ()):
                if c not in relevant:
                    continue
                x = [d.get(c, 0) * self.j.partial(pt, c, u) for d, pt in zip(deltas, pts)]
                if all(v == 0 for v in x) or not self.same(diff, x):
                    continue
                f.kind, f.detail = "extra_paths", f"the claim adds the paths to {u} through {c}"
                f.paths = tuple(p + (u,) for p in islice(iter_paths(g, c), JSON_PATHS))
                f.path_count = count_paths(g, c)
                return True
        return False

    def match(self, f: _Facts, diff, m, what, where) -> bool:
        if all(abs(x) <= TOLERANCE for x in m):
            return False
        g, wrt = self.g, self.wrt
        if what == "node":
            paths = lambda: _paths_through(g, wrt, where, JSON_PATHS)  # noqa: E731
            count = lambda: count_paths(g, where) * count_paths(g, wrt, output=where)  # noqa: E731
            via = f"through {where}"
        else:
            c, p = where
            paths = lambda: _paths_through_edge(g, wrt, c, p, JSON_PATHS)  # noqa: E731
            count = lambda: count_paths(g, c) * (1 if p == wrt else count_paths(g, wrt, output=p))  # noqa: E731
            via = f"through the edge {p} → {c}"
        if self.same(diff, [-x for x in m]):
            f.kind, f.detail = "missing_paths", f"the claim misses the paths {via}"
        elif self.same(diff, m):
            f.kind, f.detail = "extra_paths", f"the claim counts the paths {via} twice"
        else:
            return False
        f.paths, f.path_count = paths(), count()
        if f.kind == "extra_paths":
            f.counted_twice = f.paths
        return True

    # -- paths: the exact solve where they are few ---------------------------------
    def solve(self, f: _Facts) -> bool:
        g, wrt = self.g, self.wrt
        n = count_paths(g, wrt)
        if n == 0 or n > PATH_SOLVE:
            return False
        own = list(iter_paths(g, wrt))
        if self.solve_with(f, own, []):
            return True
        extra = []
        for u in self.neighbours():
            k = count_paths(g, u)
            if len(extra) + k > PATH_EXTRA:
                break
            extra.extend(iter_paths(g, u))
        return bool(extra) and self.solve_with(f, own, extra)

    def neighbours(self) -> list[str]:
        """Other leaves by distance from wrt in the undirected graph (the nearest first)."""
        g = self.g
        adj: dict[str, list[str]] = {}
        for nd in g.nodes:
            if nd.name not in self.j.relevant:
                continue
            for p in nd.parents:
                adj.setdefault(nd.name, []).append(p)
                adj.setdefault(p, []).append(nd.name)
        seen, frontier, out = {self.wrt}, [self.wrt], []
        while frontier:
            nxt = []
            for x in frontier:
                for y in adj.get(x, ()):
                    if y not in seen:
                        seen.add(y)
                        nxt.append(y)
                        if g.is_leaf(y):
                            out.append(y)
            frontier = nxt
        return out

    def solve_with(self, f: _Facts, own: list, extra: list) -> bool:
        import numpy as np
        cols = own + extra
        need = len(cols) + 4
        pts = [p for p in self.points]
        if len(pts) < need:       # more points: the claim there (the derivative is not needed)
            for p in self.j.more_points(need + POINTS):
                if p not in pts and len(pts) < need:
                    c = claim_value(self.claim, p)
                    if c is not None and self.paths_finite(p, cols):
                        p.claimed = c
                        pts.append(p)
        if len(pts) < need:
            return False
        with mpmath.workdps(DIGITS):
            P = [[self.path_value(pt, path) for pt in pts] for path in cols]
        D = [pt.claimed for pt in pts]
        # a path whose product is 0 everywhere says nothing: it keeps coefficient 1 (own) or 0 (extra)
        live = [i for i, col in enumerate(P) if any(abs(v) > TOLERANCE for v in col)]
        groups: list[list[int]] = []
        for i in live:
            for grp in groups:
                if self.same(P[grp[0]], P[i]):
                    grp.append(i)
                    break
            else:
                groups.append([i])
        M = np.array([[float(P[grp[0]][k]) for grp in groups] for k in range(len(pts))])
        scale = np.abs(M).max(axis=0)
        scale[scale == 0] = 1
        rhs = np.array([float(x) for x in D])
        try:
            x, *_ = np.linalg.lstsq(M / scale, rhs, rcond=None)
        except np.linalg.LinAlgError:
            return False
        x = x / scale
        coef = [0] * len(cols)
        for i in range(len(cols)):
            if i < len(own) and i not in live:
                coef[i] = 1
        for grp, xi in zip(groups, x):
            k = round(float(xi))
            if abs(xi - k) > 1e-6 or k < 0:
                return False
            top = 2 if grp[0] < len(own) else 1
            for i in grp:           # identical paths: fill them in order
                coef[i] = min(top, k)
                k -= coef[i]
            if k:
                return False
        with mpmath.workdps(DIGITS):
            for kk in range(len(pts)):
                s = mpmath.fsum(coef[i] * P[i][kk] for i in range(len(cols)) if coef[i])
                if not _close(s, D[kk]):
                    return False
        missing = tuple(own[i] for i in range(len(own)) if coef[i] == 0)
        twice = tuple(own[i] for i in range(len(own)) if coef[i] == 2)
        added = tuple(extra[i - len(own)] for i in range(len(own), len(cols)) if coef[i])
        if missing and (twice or added):
            f.mixed = (missing, twice + added)
            return False
        if missing:
            f.kind, f.detail = "missing_paths", f"the claim is the sum over {len(own) - len(missing)} of the {len(own)} paths"
            f.paths, f.path_count = missing, len(missing)
        elif twice or added:
            f.kind, f.detail = "extra_paths", "the claim is the sum over the paths and more"
            f.paths, f.path_count, f.counted_twice = twice + added, len(twice) + len(added), twice
        else:
            return False
        f.extra["solved"] = (len(cols), len(pts))
        return True

    def per_path_factor(self, f: _Facts) -> bool:
        """The local partial at the same place of every path missing (or doubled): σ′ of each output.

        With paths p and q_p the partial of p's k-th edge (from the output, or from wrt):
        claim = Σ_p P_p / q_p (missing) or Σ_p P_p · q_p (extra), where the paths are few."""
        g, wrt = self.g, self.wrt
        if count_paths(g, wrt) > PATH_SOLVE:
            return False
        own = list(iter_paths(g, wrt))
        if len(own) < 2:
            return False
        shortest = min(len(p) for p in own) - 1
        with mpmath.workdps(DIGITS):
            prods = [[self.path_value(pt, p) for pt in self.points] for p in own]
            for k in [i for i in range(shortest)] + [-i for i in range(1, shortest + 1)]:
                edges = [(p[k], p[k + 1]) if k >= 0 else (p[k - 1], p[k]) for p in own]
                try:
                    qs = [[self.j.partial(pt, c, q) for pt in self.points] for c, q in edges]
                except (ArithmeticError, ValueError):
                    continue
                if any(v == 0 for row in qs for v in row):
                    continue
                for power in (1, -1):
                    total = [mpmath.fsum(pr[i] * (q[i] ** -power) for pr, q in zip(prods, qs))
                             for i in range(len(self.points))]
                    if not self.same(self.D, total):
                        continue
                    parts, seen = [], set()
                    for c, q in edges:
                        if (c, q) not in seen:
                            seen.add((c, q))
                            e = self.j.ws.partial(c, q).expr
                            parts.append(FactorPart(c, q, e, power, _function_of(g, c, q)))
                    f.kind, f.factor_parts, f.per_path = "factor", tuple(parts), True
                    f.extra["target"] = sp.Add(*[
                        sp.Mul(*[self.j.ws.partial(a, b).expr for a, b in zip(p, p[1:])])
                        * self.j.ws.partial(*e).expr ** -power for p, e in zip(own, edges)])
                    f.detail = ("the claim " + ("misses" if power > 0 else "doubles") + " the local derivative "
                                + ", ".join(f"∂{c}/∂{q}" for c, q in seen_order(edges)) + " on its path"
                                + ("s" if len(own) > 1 else ""))
                    return True
        return False

    def path_value(self, pt: _Point, path) -> Any:
        with mpmath.workdps(DIGITS):
            return mpmath.fprod(self.j.partial(pt, a, b) for a, b in zip(path, path[1:]))

    def paths_finite(self, pt: _Point, paths) -> bool:
        try:
            return all(_finite(self.path_value(pt, p)) for p in paths)
        except (ArithmeticError, ValueError):
            return False

    # -- factors of local partials --------------------------------------------------
    def partial_factor(self, f: _Facts) -> bool:
        """actual / claim = c · Π q_i^(±1) for at most three local partials q_i and a rational c."""
        g, pts = self.g, self.points
        if len(pts) < 4 or any(c == 0 and a != 0 for c, a in zip(self.D, self.A)):
            return False
        cone = set()
        for nd in g.nodes:
            if nd.name in self.j.tangents(pts[0], self.wrt):
                cone.update((nd.name, p) for p in nd.parents)
        edges = [(nd.name, p) for nd in reversed(g.nodes) if nd.name in self.j.relevant for p in nd.parents]
        edges.sort(key=lambda e: e not in cone)          # the paths' own partials first (stable)
        every: list[tuple] = []
        seen: set = set()
        for c, p in edges:
            lp = self.j.ws.partial(c, p)
            if lp.expr.is_number or lp.expr in seen:
                continue
            seen.add(lp.expr)
            every.append(((c, p), lp.expr, [self.j.partial(pt, c, p) for pt in pts]))
            if len(every) >= FACTOR_CANDIDATES:
                break
        # one missing partial that vanishes at some points (relu′ = [z > 0]): claim · c · q = actual
        for i, ((c, p), e, vals) in enumerate(every):
            prod = [d * v for d, v in zip(self.D, vals)]
            live = [k for k, x in enumerate(prod) if x != 0]
            if len(live) < 3 or len(live) == len(prod):
                continue
            const = _rational(self.A[live[0]] / prod[live[0]])
            if const is not None and self.same(self.A, [const * x for x in prod]):
                f.kind, f.factor_constant = "factor", sp.Rational(const.numerator, const.denominator)
                f.factor = f.factor_constant * e
                f.factor_parts = (FactorPart(c, p, e, 1, _function_of(g, c, p)),)
                f.detail = "the claim times " + sp.sstr(f.factor) + " is the derivative"
                return True
        if any(c == 0 for c in self.D) or any(a == 0 for a in self.A):
            return False
        ratio = [a / c for a, c in zip(self.A, self.D)]
        cands = [x for x in every if all(v != 0 for v in x[2])]
        if not cands:
            return False

        def logv(vals):
            return [float(mpmath.log(abs(v)) - mpmath.log(abs(vals[0]))) for v in vals[1:]]

        target = logv(ratio)
        vecs = [logv(v) for _, _, v in cands]

        def key(vec):
            return round(vec[0], 6)

        index: dict = {}
        for i, vec in enumerate(vecs):
            for s in (1, -1):
                index.setdefault(key([s * x for x in vec]), []).append((i, s))

        def near(vec):
            k = key(vec)
            for kk in (k - 1e-6, k, k + 1e-6):
                yield from index.get(round(kk, 6), ())

        def fits(combo) -> bool:
            prod = [mpmath.mpf(1)] * len(pts)
            for i, s in combo:
                prod = [x * (v if s > 0 else 1 / v) for x, v in zip(prod, cands[i][2])]
            rest = [r / q for r, q in zip(ratio, prod)]
            c0 = rest[0]
            if not self.same(rest, [c0] * len(rest), TOLERANCE * 100):
                return False
            frac = _rational(c0)
            if frac is None:
                return False
            const = sp.Rational(frac.numerator, frac.denominator)
            parts = []
            expr = const
            for i, s in combo:
                (c, p), e, _ = cands[i]
                parts.append(FactorPart(c, p, e, s, _function_of(g, c, p)))
                expr = expr * (e if s > 0 else 1 / e)
            f.kind, f.factor, f.factor_constant, f.factor_parts = "factor", expr, const, tuple(parts)
            f.detail = "the claim times " + sp.sstr(expr) + " is the derivative"
            return True

        def close_vec(a, b):
            return all(abs(x - y) <= 1e-7 * max(1.0, abs(y)) for x, y in zip(a, b))

        # one partial
        for i, s in ((i, s) for i in range(len(cands)) for s in (1, -1)):
            if close_vec([s * x for x in vecs[i]], target) and fits(((i, s),)):
                return True
        # two: target − s·v_i looked up among the others
        for i in range(len(cands)):
            for s in (1, -1):
                rest = [t - s * x for t, x in zip(target, vecs[i])]
                for j, sj in near(rest):
                    if j > i and close_vec([sj * x for x in vecs[j]], rest) and fits(((i, s), (j, sj))):
                        return True
        # three, among the first few
        m = min(len(cands), FACTOR_TRIPLES)
        for i in range(m):
            for j in range(i + 1, m):
                for s in (1, -1):
                    for sj in (1, -1):
                        rest = [t - s * x - sj * y for t, x, y in zip(target, vecs[i], vecs[j])]
                        for k, sk in near(rest):
                            if k > j and close_vec([sk * x for x in vecs[k]], rest) \
                                    and fits(((i, s), (j, sj), (k, sk))):
                                return True
        return False


def seen_order(items):
    """The distinct items, in order of first appearance."""
    return list(dict.fromkeys(items))


def _rational(x):
    """x as a Fraction p/q with q ≤ MAX_DENOMINATOR where that is exact to 28 digits, else None."""
    frac = Fraction(mpmath.nstr(x, 25, min_fixed=-30, max_fixed=30)).limit_denominator(MAX_DENOMINATOR)
    return frac if _close(mpmath.mpf(frac.numerator) / frac.denominator, x, TOLERANCE * 100) else None


def _visible(claimed, actual) -> bool:
    """The difference shows in the first six significant digits (however small both are)."""
    if claimed is None:
        return True
    return abs(claimed - actual) > VISIBLE * max(abs(claimed), abs(actual))


def _counterexample(judge: _Judge, wrt: str, expr: sp.Expr, shown: list[_Point]) -> Counterexample:
    """The given point when it shows the difference, else a one-decimal point, else the worst point."""
    g = judge.g

    def make(pt: _Point) -> Counterexample:
        return Counterexample(tuple((x, float(pt.leaves[x])) for x in g.leaves),
                              None if pt.claimed is None else float(pt.claimed), float(pt.actual), pt.given)

    for pt in shown:
        if pt.given and _finite(pt.actual) and _visible(pt.claimed, pt.actual):
            return make(pt)
    for pt in judge.nice_points():
        c, a = judge.values(pt, wrt, expr)
        if _finite(a) and c is not None and _visible(c, a):
            pt.claimed, pt.actual = c, a
            return make(pt)
    worst = max((p for p in shown if _finite(p.actual)), default=None,
                key=lambda p: float("inf") if p.claimed is None else
                float(abs(p.claimed - p.actual) / max(1, abs(p.actual))))
    return make(worst)


def _written(expr) -> bool:
    """An expression in leaf and node names only (not the δ names of a result too large to write out)."""
    return not any(str(x).startswith(DELTA) for x in expr.free_symbols)


def prove(expr: sp.Expr, target: sp.Expr, subs: dict | None) -> str | None:
    """How ``expr`` was shown equal to ``target`` (both in node names), or None.

    First in the node names, as independent symbols (then they are equal wherever the
    nodes hold their values); else both written in the leaves, where that is small."""
    if _written(target) and symbolic_equal(expr, target):
        return "nodes"
    if subs is not None and _written(target):
        mine, ref = expr.xreplace(subs), target.xreplace(subs)
        if _pure(mine, ref) and symbolic_equal(mine, ref):
            return "leaves"
    return None


def judge_claim(definition: Definition, claim: Claim) -> Verdict:
    """The verdict on one claim (see the module docstring)."""
    wrt = api._check_wrt(definition, [claim.wrt])[0]
    der = api.derive(definition, wrt, view="scalar")
    if der.failures:
        raise VerificationError("the derivation of the true derivative did not pass its checks: "
                                + "; ".join(der.failures))
    j = _judge(definition)
    expr = claim.expr
    out_sym, wrt_sym = symbol(definition.output), symbol(wrt)
    base = dict(definition=definition, wrt=wrt, claim=claim.text, expr=expr, derivation=der,
                number=not expr.free_symbols, line=claim.line)
    # 1. numeric: the given point and random points, in 30 digits
    points = ([j.given] if j.given is not None else []) + j.more_points(POINTS)
    used, differs = [], []
    for pt in points:
        c, a = j.values(pt, wrt, expr)
        pt.claimed, pt.actual = c, a
        if not _finite(a):
            continue
        used.append(pt)
        if c is None or not _close(c, a):
            differs.append(pt)
    if len(used) < 2:
        raise VerificationError(f"the claim for {wrt} could not be judged: the derivative is not finite "
                                "at the test points")
    agrees = given_actual = None
    if j.given is not None and j.given in used:
        given_actual = float(j.given.actual)
        unit = _last_digit(claim.tree)
        agrees = (j.given not in differs) if unit is None else \
            (j.given.claimed is not None and abs(j.given.claimed - j.given.actual) <= unit)
    base["given_actual"] = given_actual
    subs = j.ws.composed(wrt)
    if not differs:
        # 2. equal at every point: a symbolic proof where it is cheap, against derivator's result in the
        #    node names, else against sympy's diff of the output, both written in the leaves
        if _written(der.result) and symbolic_equal(expr, der.result):
            return Verdict(**base, correct=True, kind="correct", method="symbolic", agrees_at_given=agrees,
                           check=f"proved equal symbolically to derivator's result {sp.sstr(der.result)} (the "
                                 f"difference expands to 0 in the node names); that result is {der.check.detail}")
        if subs is not None:
            ref = sp.diff(subs.get(out_sym, out_sym), wrt_sym)
            mine = expr.xreplace(subs)
            if _pure(mine, ref) and symbolic_equal(mine, ref):
                return Verdict(**base, correct=True, kind="correct", method="symbolic", agrees_at_given=agrees,
                               check="proved equal symbolically: the claim minus sympy's diff of the output, both "
                                     "written in the leaves, expands to 0")
        return Verdict(**base, correct=True, kind="correct", method="numeric", agrees_at_given=agrees,
                       check=f"equal to the derivative at {_describe(used)} (mpmath, {DIGITS} digits); not proved "
                             "symbolically (the difference did not expand to 0 within the size limits)")
    # 3. wrong: the diagnosis, at the points where both sides are finite
    finite = [p for p in used if p.claimed is not None]
    first = differs[0]
    how = (f"differs from the derivative at {'the given point' if first.given else 'a random point'}: "
           f"claimed {_num(first.claimed)}, actual {_num(first.actual)} (mpmath, {DIGITS} digits)")
    facts = _Diagnosis(j, wrt, expr, finite).run() if len(finite) >= 3 else _Facts()
    how += "; " + _diagnosis_check(facts, len(finite), expr, der, subs, j)
    return Verdict(**base, correct=False, kind=facts.kind, method="numeric", check=how,
                   counterexample=_counterexample(j, wrt, expr, used),
                   paths=tuple(facts.paths), path_count=facts.path_count, factor=facts.factor,
                   factor_constant=facts.factor_constant, factor_parts=facts.factor_parts,
                   counted_twice=tuple(facts.counted_twice), equals=facts.equals, agrees_at_given=agrees,
                   mixed=facts.mixed, per_path=facts.per_path)


def _last_digit(tree):
    """For a claim that is one number as written (0.0822, -8.2e-2), the value of its last digit."""
    from .expr import Neg, Num
    if isinstance(tree, Neg):
        tree = tree.arg
    if not isinstance(tree, Num):
        return None
    mant, _, exp = tree.text.lower().partition("e")
    if "." not in mant or tree.value == 0:      # an integer, or 0.0, is meant exactly
        return None
    decimals = len(mant.partition(".")[2])
    return mpmath.mpf(10) ** (int(exp or 0) - decimals)


def _num(v) -> str:
    return "not a finite real number" if v is None else mpmath.nstr(v, 12)


def _describe(used: list[_Point]) -> str:
    given = any(p.given for p in used)
    k = len(used) - given
    rand = f"{k} random point{'s' if k != 1 else ''}"
    return f"the given point and {rand}" if given else rand


def _path_sum(j: _Judge, paths) -> sp.Expr:
    return sp.Add(*[sp.Mul(*[j.ws.partial(a, b).expr for a, b in zip(p, p[1:])]) for p in paths])


def _diagnosis_check(f: _Facts, points: int, expr, der, subs, j: _Judge) -> str:
    """How the diagnosis was reached: symbolically where cheap, else numerically."""
    if f.kind == "missing_paths" and expr == 0:
        return "the claim is 0: every path is missing"
    if f.kind == "incorrect":
        return ("not −1 times it, nor a multiple by a constant or by local partials, nor a sum over some of its "
                f"paths, at {points} points")
    result = der.result
    target = None
    if f.kind == "sign":
        target = -result
    elif f.kind == "factor" and f.per_path:
        target = f.extra["target"]
    elif f.kind == "factor":
        target = result / f.factor
    elif f.path_count == len(f.paths) <= PATH_SOLVE:
        delta = _path_sum(j, f.paths)
        target = result - delta if f.kind == "missing_paths" else result + delta
    what = {"sign": "the claim is −1 times the derivative",
            "factor": f.detail if f.per_path else f"the claim times {sp.sstr(f.factor)} is the derivative",
            "missing_paths": f.detail, "extra_paths": f.detail}[f.kind]
    how = prove(expr, target, subs) if target is not None else None
    if how == "nodes":
        return what + ": proved symbolically (the difference expands to 0 in the node names)"
    if how == "leaves":
        return what + ": proved symbolically (the difference, written in the leaves, expands to 0)"
    solved = f.extra.get("solved")
    if solved:
        return what + (f": found by an exact 0/1 solve over {solved[0]} path products at {solved[1]} points, "
                       f"verified in {DIGITS} digits")
    return what + f": at {points} points ({DIGITS} digits)"


@lru_cache(maxsize=8)
def _judge(definition: Definition) -> _Judge:
    """One judge per definition: its points and partials are shared by its claims."""
    return _Judge(definition)


# ---------------------------------------------------------------- entry points ---

def make_claim(definition: Definition, wrt: str, text: str) -> Claim:
    """A claim given outside the file (the command line, the Python API), parsed and located."""
    if not isinstance(text, str):
        text = repr(text) if isinstance(text, (int, float)) and not isinstance(text, bool) else text
    g = api.graph(definition)
    name = api._check_wrt(definition, [wrt])[0]
    try:
        parsed = parse_claim(text, set(g.names), wrt=name)
    except ExpressionError as e:
        if not e.message.startswith("the claim for"):
            e.message = f"in the claim for {name}: {e.message}"
        raise e.located(definition.source) from None
    return Claim(name, text, parsed.expr, parsed.names, None, parsed.tree)


def judge(definition: Definition, claims=None) -> Report:
    """Verdicts on ``claims`` (Claim objects or (wrt, text) pairs; default: the file's ``claims:``)."""
    if claims is None:
        claims = definition.claims
        if not claims:
            raise UsageError("no claims to check", source=definition.source,
                             hint='give --wrt NAME --claim "EXPR", or add `claims: {NAME: "EXPR"}` to the file')
    items = [c if isinstance(c, Claim) else make_claim(definition, c[0], c[1]) for c in claims]
    return Report(tuple(judge_claim(definition, c) for c in items), definition)
