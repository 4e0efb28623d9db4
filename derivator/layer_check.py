"""Checks of the layer view: every matrix rule, lemma and result against an independent differentiation.

Takes a layer workspace and the claims of a derivation; gives ``check.Check`` records. Three kinds:

- **Rules**, once per rule, shape case and elementwise function: the rule is applied to operands
  of a small size (at most 3 per dimension), unrolled into scalars (``tensor.unroll``) and compared,
  entry by entry, with Σ_o ḡ_o ∂out_o/∂in_j by ``sympy.diff`` of the unrolled operation —
  symbolically where the difference expands to 0, else at random points in 30-digit arithmetic.
  An elementwise rule's scalar partial is also checked by the scalar view's ``check.check_local``.
- **Lemmas**: the substituted and the cancelled forms unrolled at a small size, the same way.
- **Results**: for small definitions, every entry against the *scalar view* (its own graph, whose
  local partials are the scalar engine's, reverse-accumulated at the scalar check points); at any
  size, at high-precision points (fixed point, 2⁻¹²⁸; functions in mpmath), the derivation's
  claims — forward values, δ's, the result — against forward-mode tangents that use sympy's
  ``diff`` of each map and the quotient rule for softmax (no code shared with the VJP rules): a
  random direction through every entry at once, and single entries.

A failed check makes the derivation unverified, and the command fail (exit 1).
"""
from __future__ import annotations

import math
import random
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from . import check as checks
from .check import Check
from .mpeval import FUNCS, NotReal
from .tensor import (Index, Map, MatMul, Mean, Outer, Softmax, Sum, T, Transpose, Var, names, ph, unroll, walk)
from .vjp import RULES, RuleUse, map_partial, vjp

F = 128                         # fixed point: a number x is the integer round(x · 2^F)
ONE = 1 << F
DIGITS = checks.DIGITS
TOL = 10.0 ** -(DIGITS - 8)
SMALL_SIZE = 3                  # rules are unrolled with dimensions of at most this
LEMMA_SIZE = 2                  # … and lemmas (their entries are larger expressions)
SYMBOLIC_OPS = 80               # larger differences, and those with functions, are compared at random points
SMALL_SCALARS = 400             # definitions up to this many scalar leaves and nodes are checked entry by entry
ENTRIES = 3                     # single entries checked per result (besides a random direction)
_SEED = 20260601


# ------------------------------------------------------------ small sizes ---

def _shrink(t: T, size: int = SMALL_SIZE, memo=None) -> T:
    """``t`` with every dimension n made min(n, size) (equal sizes stay equal)."""
    memo = {} if memo is None else memo
    if t in memo:
        return memo[t]
    s = tuple(min(n, size) for n in t.shape)
    if isinstance(t, Var):
        r = Var(t.name, s, t.adjoint)
    elif isinstance(t, Map):
        r = Map(t.f, tuple(_shrink(a, size, memo) for a in t.args), s)
    elif isinstance(t, Index):
        r = Index(_shrink(t.a, size, memo), tuple(min(i, size - 1) for i in t.index))
    else:
        r = type(t)(*[_shrink(p, size, memo) for p in t.parts])
    memo[t] = r
    return r


def _symbol_env(ts) -> dict:
    """Object arrays of fresh symbols for every Var of the expressions (values and adjoints apart)."""
    env = {}
    for t in ts:
        for x in walk(t):
            if isinstance(x, Var) and x not in env:
                arr = np.empty(x.shape, dtype=object)
                tag = ("d_" if x.adjoint else "") + x.name
                for idx in np.ndindex(*x.shape):
                    arr[idx] = sp.Symbol(f"{tag}{''.join(f'_{i}' for i in idx)}", real=True)
                env[x] = arr
    return env


def _equal_entries(mine: np.ndarray, ref: np.ndarray) -> tuple[bool, str]:
    """Entry by entry: symbolic where the difference expands to 0, else at random 30-digit points."""
    numeric = False
    for a, b in zip(np.ravel(mine), np.ravel(ref)):
        a, b = sp.sympify(a), sp.sympify(b)
        if a == b:
            continue
        diff = a - b
        # symbolic for sums and products (fast); functions (exp, σ, tanh, …) at random 30-digit points
        if not diff.atoms(sp.Function) and sp.count_ops(diff) <= SYMBOLIC_OPS and checks.symbolic_zero(diff):
            continue
        envs = checks._Envs(checks.random_envs(a.free_symbols | b.free_symbols | {sp.Symbol("_", real=True)}))
        ok, _, info = checks.numeric_equal(a, b, envs)
        if not ok:
            return False, info
        numeric = True
    return True, "numeric" if numeric else "symbolic"


def check_identity(claimed: T, simplified: T) -> Check:
    """Two forms of one tensor expression, unrolled at a small size, are equal entry by entry."""
    memo: dict = {}
    a, b = _shrink(claimed, LEMMA_SIZE, memo), _shrink(simplified, LEMMA_SIZE, memo)
    env = _symbol_env([a, b])
    ok, how = _equal_entries(unroll(b, env), unroll(a, env))
    sizes = "×".join(str(n) for n in a.shape) or "scalar"
    if ok:
        what = "the difference expands to 0" if how == "symbolic" else "at random points (mpmath, 30 digits)"
        return Check(how, f"unrolled into scalars at size {sizes}, equal to the substituted form ({what})", True)
    return Check("numeric", f"NOT equal to the substituted form unrolled at size {sizes} ({how})", False)


# ----------------------------------------------------------------- rules ---

def _operand(shape, name) -> Var:
    return Var(name, tuple(min(n, SMALL_SIZE) for n in shape))


def _instance(use: RuleUse) -> T:
    """The rule's operation on small operands."""
    shapes = use.shapes
    if use.key.startswith("matmul"):
        a, b = shapes
        k = min(a[-1], SMALL_SIZE)
        sa = (2, k) if len(a) == 2 else (k,)
        sb = (k, 2) if len(b) == 2 else (k,)
        return MatMul(Var("A", sa), Var("B", sb))
    if use.key.startswith("outer"):
        return Outer(Var("a", (2,)), Var("b", (3,)))
    if use.key == "transpose":
        return Transpose(Var("A", (2, 3)))
    if use.key in ("sum", "mean"):
        s = (2, 3) if len(shapes[0]) == 2 else (3,)
        return (Sum if use.key == "sum" else Mean)(Var("a", s))
    if use.key == "softmax":
        return Softmax(Var("z", (3,)))
    out = (2,) if any(shapes) else ()
    return Map(use.f, tuple(Var(f"u{i}", out if s else ()) for i, s in enumerate(shapes)), out)


@lru_cache(maxsize=1024)
def _check_rule(key: str, kinds: tuple, f, index: int) -> Check:
    use = RuleUse(key, kinds, f, index)
    op = _instance(use)
    g = Var("out", op.shape, adjoint=True)
    value = Var("value", op.shape)
    share, _ = vjp(op, index, g, value)
    operand = op.parts[index]
    env = _symbol_env([op, share, g])
    out = unroll(op, env)
    env[value] = out
    mine = unroll(share, env)
    gs = env[g]
    ref = np.empty(operand.shape, dtype=object)
    for idx in np.ndindex(*operand.shape):
        x = env[operand][idx]
        ref[idx] = sp.Add(*[gs[o] * sp.diff(out[o], x) for o in np.ndindex(*op.shape)])
    ok, how = _equal_entries(mine, ref)
    sizes = ", ".join("×".join(str(n) for n in p.shape) or "scalar" for p in op.parts)
    detail = (f"unrolled into scalars (operands {sizes}) and compared with sympy's diff of the unrolled operation"
              + (" (the difference expands to 0)" if how == "symbolic" else " at random points (mpmath, 30 digits)"
                 if ok else f": {how}"))
    if ok and f is not None:
        mine_p, _ = map_partial(f, index, False)
        local = checks.check_local(f, ph(index), mine_p, sp.diff(f, ph(index)))
        if not local.passed:
            return Check("numeric", f"the scalar partial of the map: {local.detail}", False)
        detail += f"; its scalar partial is {local.detail}"
    return Check(how if ok else "numeric", detail if ok else "NOT equal: " + detail, ok)


def _kinds(shapes) -> tuple:
    """Shapes up to their sizes: a rule holds for every size of the same kind."""
    return tuple(tuple(min(n, 2) for n in s) for s in shapes)


# ------------------------------------------------------- fixed point ---

_INT = np.frompyfunc(int, 1, 1)


def to_fixed(values) -> np.ndarray:
    """Floats (exact) as fixed-point integers in an object array."""
    arr = np.asarray(values, dtype=float)
    return _obj(_INT(np.ldexp(arr, F).astype(object)))


RANDOM_BITS = 24


def random_fixed(rng: np.random.Generator, shape, lo: float, hi: float, scale_log2: int = 0) -> np.ndarray:
    """Uniform random numbers in [lo, hi)·2^-scale_log2, on a grid of 2^-24: exact in float64 and in fixed point."""
    k = rng.integers(int(lo * 2 ** RANDOM_BITS), int(hi * 2 ** RANDOM_BITS), size=shape, dtype=np.int64)
    return _obj(k.astype(object) << (F - RANDOM_BITS - scale_log2))


def from_mp(v) -> int:
    return int(mpmath.ldexp(v, F))


def to_mp(x: int):
    """The fixed-point integer as an exact mpmath number (whatever the working precision)."""
    return mpmath.mp.make_mpf(mpmath.libmp.from_man_exp(int(x), -F))


def to_mpf(arr: np.ndarray) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        out[idx] = to_mp(int(arr[idx]))
    return out


def _fmul(a, b):
    return (a * b) >> F


def _fdiv(a, b):
    return (a << F) // b


def _obj(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    arr = np.empty((), dtype=object)
    arr[()] = x
    return arr


def _const(e) -> int:
    if e.is_Rational:
        return (int(e.p) << F) // int(e.q)
    return from_mp(mpmath.mpf(sp.Float(e, DIGITS + 10)))


def _elementwise(fn, args):
    shape = np.broadcast_shapes(*[np.shape(a) for a in args])
    bs = [np.broadcast_to(_obj(a), shape) for a in args]
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        v = fn(*[to_mp(int(b[idx])) for b in bs])
        if isinstance(v, mpmath.mpc):
            if v.imag != 0:
                raise NotReal("complex value")
            v = v.real
        if not mpmath.isfinite(v):
            raise NotReal("not finite")
        out[idx] = from_mp(v)
    return out


def _pow(b, n: int):
    out = None
    base = b
    while n:
        if n & 1:
            out = base if out is None else _fmul(out, base)
        n >>= 1
        if n:
            base = _fmul(base, base)
    return out


def fixed_map(f: sp.Expr, args: list, shape) -> np.ndarray:
    """A map's f over fixed-point operands (sums and products in integers, functions in mpmath)."""
    env = {ph(i): a for i, a in enumerate(args)}

    def ev(e):
        if e.is_Symbol:
            return env[e]
        if e.is_Number or e.is_NumberSymbol:
            return _const(e)
        if e.is_Add:
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out + ev(a)
            return out
        if e.is_Mul:
            coeff, rest = e.as_coeff_Mul()
            factors = sp.Mul.make_args(rest)
            out = ev(factors[0])
            for a in factors[1:]:
                out = _fmul(out, ev(a))
            if coeff != 1:
                out = (out * int(coeff.p)) // int(coeff.q) if coeff.is_Rational else _fmul(out, _const(coeff))
            return out
        if e.is_Pow and e.exp.is_Integer:
            n = int(e.exp)
            base = ev(e.base)
            if n == 0:
                return ONE
            p = _pow(base, abs(n))
            return p if n > 0 else _fdiv(np.full(np.shape(p), ONE, dtype=object) if np.shape(p) else ONE, p)
        if e.is_Pow:
            return _elementwise(lambda b, x: b ** x, [ev(e.base), ev(e.exp)])
        fn = FUNCS.get(type(e))
        if fn is None:
            raise NotImplementedError(f"no high-precision evaluation of {type(e).__name__}")
        return _elementwise(fn, [ev(a) for a in e.args])

    with mpmath.workprec(F + 24):
        try:
            v = ev(f)
        except ZeroDivisionError:
            raise NotReal("division by zero") from None
    v = _obj(v)
    return v if v.shape == tuple(shape) else np.broadcast_to(v, shape).copy()


def _softmax(z: np.ndarray) -> np.ndarray:
    with mpmath.workprec(F + 24):
        zs = [to_mp(int(v)) for v in z]
        m = max(zs)
        e = [mpmath.exp(v - m) for v in zs]
        s = mpmath.fsum(e)
        out = np.empty(z.shape, dtype=object)
        out[:] = [from_mp(v / s) for v in e]
    return out


def _matmul(a, b):
    return _obj(np.matmul(a, b) >> F) if a.ndim and b.ndim else _obj(a * b >> F)


def fixed_eval(t: T, env: dict, cache: dict) -> np.ndarray:
    """The value of ``t`` in fixed point; env maps a Var (or a value's name) to an object array."""
    def ev(x):
        hit = cache.get(x)
        if hit is not None:
            return hit
        if isinstance(x, Var):
            v = env[x] if x in env else env[x.name]
        elif isinstance(x, Map):
            v = fixed_map(x.f, [ev(a) for a in x.args], x.shape)
        elif isinstance(x, MatMul):
            v = _matmul(ev(x.a), ev(x.b))
        elif isinstance(x, Outer):
            v = np.multiply.outer(ev(x.a), ev(x.b)) >> F
        elif isinstance(x, Transpose):
            v = ev(x.a).T
        elif isinstance(x, Sum):
            v = _obj(int(ev(x.a).sum()))
        elif isinstance(x, Mean):
            a = ev(x.a)
            v = _obj(int(a.sum()) // a.size)
        elif isinstance(x, Softmax):
            v = _softmax(ev(x.a))
        elif isinstance(x, Index):
            v = _obj(ev(x.a)[x.index])
        else:
            raise TypeError(x)
        v = _obj(v)
        cache[x] = v
        return v
    return ev(t)


# ------------------------------------------------- forward-mode tangents ---

class OneHot:
    """A tangent with one entry 1 (in fixed point): single entries, without dense zeros."""

    def __init__(self, shape, index):
        self.shape, self.index = tuple(shape), tuple(index)

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=object)
        out[self.index] = ONE
        return out


def _dense(t):
    return t.dense() if isinstance(t, OneHot) else t


@lru_cache(maxsize=4096)
def _sympy_partial(f: sp.Expr, i: int) -> sp.Expr:
    """sympy's own ∂f/∂_i: the tangents never use the rules table."""
    return sp.diff(f, ph(i))


def _tangent_matmul(a, b, da, db):
    parts = []
    if da is not None:
        if isinstance(da, OneHot) and a.ndim == 2:
            i, k = da.index
            row = np.zeros(a.shape[0] if b.ndim == 1 else (a.shape[0], b.shape[1]), dtype=object)
            row[i] = b[k]
            parts.append(row)
        else:
            parts.append(_matmul(_dense(da), b))
    if db is not None:
        if isinstance(db, OneHot) and b.ndim == 1 and a.ndim == 2:
            parts.append(_obj(a[:, db.index[0]].copy()))
        else:
            parts.append(_matmul(a, _dense(db)))
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return _obj(out)


def tangent(lg, values: dict, seed_name: str, seed, cache: dict | None = None) -> int:
    """d output along ``seed`` (a direction for the leaf or node ``seed_name``), by forward accumulation.

    ``cache`` holds the values of sub-expressions at this point (shared by every tangent there)."""
    cache = {} if cache is None else cache
    tan: dict = {seed_name: seed}
    for n in lg.nodes:
        if n.name == seed_name:
            continue
        if not any(p in tan for p in n.parents):
            continue
        tan[n.name] = _jvp(n.expr, values, tan, cache, {})
    t = tan.get(lg.output)
    if t is None:
        return 0
    return int(np.ravel(_obj(_dense(t)))[0])


def _jvp(t: T, values, tan, cache, tcache):
    def val(x):
        return fixed_eval(x, values, cache)

    def go(x):
        if x in tcache:
            return tcache[x]
        if isinstance(x, Var):
            r = tan.get(x.name)
        elif isinstance(x, Map):
            parts = [go(a) for a in x.args]
            r = None
            if any(p is not None for p in parts):
                for i, p in enumerate(parts):
                    if p is None:
                        continue
                    key = ("partial", x, i)         # the partial at this point, whatever the direction
                    d = cache.get(key)
                    if d is None:
                        partial = _sympy_partial(x.f, i)
                        args = [val(a) if partial.has(ph(j)) else ONE for j, a in enumerate(x.args)]
                        d = cache[key] = fixed_map(partial, args, x.shape)
                    term = _obj((d * _dense(p)) >> F)
                    if term.shape != x.shape:
                        term = np.broadcast_to(term, x.shape).copy()
                    r = term if r is None else r + term
        elif isinstance(x, MatMul):
            da, db = go(x.a), go(x.b)
            r = None if da is None and db is None else _tangent_matmul(val(x.a), val(x.b), da, db)
        elif isinstance(x, Outer):
            da, db = go(x.a), go(x.b)
            r = None
            if da is not None:
                r = np.multiply.outer(_dense(da), val(x.b)) >> F
            if db is not None:
                s = np.multiply.outer(val(x.a), _dense(db)) >> F
                r = s if r is None else r + s
        elif isinstance(x, Transpose):
            d = go(x.a)
            r = None if d is None else _dense(d).T
        elif isinstance(x, (Sum, Mean)):
            d = go(x.a)
            if d is None:
                r = None
            else:
                total = ONE if isinstance(d, OneHot) else int(d.sum())
                r = _obj(total if isinstance(x, Sum) else total // math.prod(x.a.shape))
        elif isinstance(x, Softmax):
            d = go(x.a)
            if d is None:
                r = None
            else:   # s = e/S: ds = (e ⊙ dz)/S − e (Σ e ⊙ dz)/S², the quotient rule on the definition
                z = val(x.a)
                with mpmath.workprec(F + 24):
                    zs = [to_mp(int(v)) for v in z]
                    m = max(zs)
                    e = [mpmath.exp(v - m) for v in zs]
                    S = mpmath.fsum(e)
                    dz = [to_mp(int(v)) for v in _dense(d)]
                    edz = mpmath.fsum(a * b for a, b in zip(e, dz))
                    r = np.empty(x.shape, dtype=object)
                    r[:] = [from_mp(ei * dzi / S - ei * edz / S ** 2) for ei, dzi in zip(e, dz)]
        elif isinstance(x, Index):
            d = go(x.a)
            r = None if d is None else _obj(_dense(d)[x.index])
        else:
            raise TypeError(x)
        if r is not None and not isinstance(r, OneHot):
            r = _obj(r)
        tcache[x] = r
        return r
    return go(t)


# ------------------------------------------------------------------ points ---

def _random_leaf(rng: np.random.Generator, shape, k: int) -> np.ndarray:
    """Random fixed-point values for a leaf: in (−1, 1) or (0.1, 0.9); a matrix scaled by about 1/√columns,
    so that pre-activations are of order 1 whatever the width."""
    lo, hi = (-1.0, 1.0) if k % 2 == 0 else (0.1, 0.9)
    scale = round(math.log2(math.sqrt(shape[1]))) if len(shape) == 2 else 0
    return random_fixed(rng, shape, lo, hi, max(scale - 1, 0))


def from_fixed(arr: np.ndarray) -> np.ndarray:
    """Fixed point to float64 (rounded)."""
    out = np.empty(np.shape(arr))
    for idx in np.ndindex(*np.shape(arr)):
        out[idx] = float(to_mp(int(_obj(arr)[idx])))
    return out


class Checker:
    """The checks of one layer workspace (its points and values are shared by its derivations)."""

    def __init__(self, ws):
        self.ws = ws
        self.lg = ws.lg
        self._points = None
        self._caches: list = []
        self._claims: dict = {}
        self._scalar = None

    # -- rules
    def rules(self, uses) -> tuple:
        from .layer_derivation import RuleCheck
        out: dict = {}
        for u in uses:
            key = (u.key, _kinds(u.shapes), u.f, u.index if u.f is not None or u.key.startswith(("matmul", "outer"))
                   else 0)
            if key not in out:
                out[key] = RuleCheck(u.key, RULES[u.key].name, u.shapes, _check_rule(*key))
        return tuple(out.values())

    # -- points
    @property
    def points(self) -> list[dict]:
        """Fixed-point values of every leaf (by name): `at` when complete, and random points."""
        if self._points is None:
            from .layer_graph import point
            lg = self.lg
            pts = []
            leaves, missing = point(lg, self.ws.at)
            if not missing:
                env = self._valid({n: to_fixed(v) for n, v in leaves.items()}, self._caches)
                if env is not None:
                    pts.append(env)
            total = sum(max(1, math.prod(lg.shapes[n])) for n in lg.leaves)
            want = (2 if total > 10_000 else 3) + (1 if pts else 0)
            rng = np.random.default_rng(_SEED)
            for k in range(12):
                if len(pts) >= want:
                    break
                env = self._valid({n: _random_leaf(rng, lg.shapes[n], k) for n in lg.leaves}, self._caches)
                if env is not None:
                    pts.append(env)
            self._points = pts
        return self._points

    def _valid(self, env: dict, caches: list | None = None) -> dict | None:
        try:
            cache: dict = {}
            for n in self.lg.nodes:
                env[n.name] = fixed_eval(n.expr, env, cache)
        except (NotReal, ZeroDivisionError, OverflowError, ValueError):
            return None
        if caches is not None:
            caches.append(cache)
        return env

    def claims(self, k: int) -> dict:
        """The derivation's δ claims at point k (fixed point), by Var."""
        c = self._claims.get(k)
        if c is None:
            c = self._claims[k] = {}
        return c

    def claim_value(self, k: int, t: T, env: dict) -> np.ndarray:
        """``t`` at point k, with the δ's it uses evaluated from their claims (recursively, once each)."""
        done = self.claims(k)
        need = [n for n in names(t, adjoint=True)]
        stack = list(need)
        order = []
        seen = set()
        while stack:
            n = stack.pop()
            if n in seen or Var(n, self.lg.shapes[n], adjoint=True) in done:
                continue
            seen.add(n)
            order.append(n)
            stack.extend(names(self.ws.claim(n), adjoint=True))
        position = {nd.name: i for i, nd in enumerate(self.lg.nodes)}
        full = dict(env)
        full.update(done)
        for n in sorted(order, key=lambda x: -position.get(x, -1)):
            v = fixed_eval(self.ws.claim(n), full, {})
            var = Var(n, self.lg.shapes[n], adjoint=True)
            done[var] = full[var] = v
        return fixed_eval(t, full, {})

    # -- results
    def result(self, target: str, index, final: T) -> Check:
        parts = []
        small = self._scalar_view_check(target, index, final)
        if small is not None:
            if not small.passed:
                return small
            parts.append(small.detail)
        big = self._tangent_check(target, index, final)
        if not big.passed:
            return big
        parts.append(big.detail)
        return Check("numeric", "; ".join(parts), True)

    def _tangent_check(self, target: str, index, final: T) -> Check:
        pts = self.points
        if not pts:
            return Check("numeric", "could not be checked: no point where the forward pass is finite and real", False)
        shape = self.lg.shapes[target]
        rng = random.Random(_SEED)
        used = 0
        entries = 0
        for k, env in enumerate(pts):
            try:
                got = self.claim_value(k, final, env)
            except (NotReal, ZeroDivisionError, OverflowError, ValueError):
                continue
            used += 1
            if index is not None:
                want = tangent(self.lg, env, target, OneHot(shape, index), self._caches[k])
                bad = _differ(int(got[()]), want, abs(want))
                if bad:
                    return Check("numeric", f"NOT equal to forward-mode differentiation at a test point ({bad})", False)
                entries += 1
                continue
            G = _dense(got)
            scale = int(np.abs(G.ravel()).max()) if G.size else 0
            if shape:
                direction = random_fixed(np.random.default_rng(_SEED + k), shape, -1.0, 1.0)
                want = tangent(self.lg, env, target, direction, self._caches[k])
                products = G * direction
                mine = int(products.sum()) >> F
                bad = _differ(mine, want, int(np.abs(products).sum()) >> F)
                if bad:
                    return Check("numeric", "NOT equal to forward-mode differentiation along a random direction "
                                            f"({bad})", False)
                n = math.prod(shape)
                flat = range(n) if n <= ENTRIES else [0, n - 1, rng.randrange(n)]
                pick = [tuple(int(i) for i in np.unravel_index(i, shape)) for i in flat]
            else:
                pick = [()]
            for idx in pick:
                want = tangent(self.lg, env, target, OneHot(shape, idx) if shape else _obj(ONE), self._caches[k])
                bad = _differ(int(G[idx]), want, scale)
                if bad:
                    return Check("numeric", f"NOT equal to forward-mode differentiation for entry {list(idx)} ({bad})",
                                 False)
                entries += 1
        if not used:
            return Check("numeric", "could not be checked: no point where the claims are finite", False)
        where = ("the given point and " if self._has_at() else "") + \
            f"{used - (1 if self._has_at() else 0)} random point{'s' if used - self._has_at() != 1 else ''}"
        what = f"{entries} single entr{'y' if entries == 1 else 'ies'}" + \
            (" and a random direction through every entry" if index is None and shape else "")
        return Check("numeric", f"equal to forward-mode differentiation (sympy's diff of each map) at {where}: {what} "
                                f"(fixed point, {F} bits)", True)

    def _has_at(self) -> int:
        from .layer_graph import point
        return 0 if point(self.lg, self.ws.at)[1] else 1 if self.points else 0

    # -- the scalar view, entry by entry
    def _scalar_view_check(self, target: str, index, final: T) -> Check | None:
        d = self.ws.definition
        if d is None or not _small(d, self.lg):
            return None
        if self._scalar is None:
            from .api import workspace
            sws = workspace(d)
            grads = []
            for env in sws.points.envs:
                grads.append(_scalar_adjoints(sws, env))
            self._scalar = (sws, grads)
        sws, grads = self._scalar
        naming = self.lg.naming
        shape = self.lg.shapes[target]
        idxs = [index] if index is not None else list(np.ndindex(*shape)) if shape else [()]
        used = 0
        for env, adj in zip(sws.points.envs, grads):
            fixed = {}
            for leaf in self.lg.leaves:
                s = self.lg.shapes[leaf]
                arr = np.empty(s, dtype=object)
                for idx in np.ndindex(*s):
                    arr[idx] = from_mp(env[_sym(naming.entry_name(leaf, idx))])
                fixed[leaf] = arr
            fixed = self._valid(fixed)
            if fixed is None:
                continue
            try:
                got = _dense(self._eval_claims_at(fixed, final))
            except (NotReal, ZeroDivisionError, OverflowError, ValueError):
                continue
            used += 1
            with mpmath.workprec(F + 24):
                for idx in idxs:
                    ref = adj.get(naming.entry_name(target, idx), mpmath.mpf(0))
                    mine = to_mp(int(got[()] if index is not None else got[idx]))
                    if abs(mine - ref) > TOL * max(1, abs(ref)):
                        return Check("numeric", f"NOT equal to the scalar view for entry {list(idx)}: "
                                                f"{mpmath.nstr(mine, 15)} vs {mpmath.nstr(ref, 15)}", False)
        if not used:
            return None
        return Check("numeric", f"every entry equal to the scalar view ({len(sws.graph.nodes)} scalar nodes, its "
                                f"local partials reverse-accumulated) at {sws.points.describe(used)}", True)

    def _eval_claims_at(self, env: dict, t: T) -> np.ndarray:
        saved = self._claims
        self._claims = {}
        try:
            return self.claim_value(-1, t, env)
        finally:
            self._claims = saved

    # -- the batch form
    def batch(self, target: str, result: T) -> Check:
        """The batch formula against the mean of per-sample results (float64, 3 samples)."""
        from .layer_derivation import evaluate_claims, numbers_env
        from .layer_graph import point
        from .tensor import evaluate
        lg = self.lg
        rng = np.random.default_rng(_SEED)
        values, _ = point(lg, self.ws.at)
        params = {n: (values[n] if n in values else
                      rng.uniform(-1, 1, lg.shapes[n]) / math.sqrt(lg.shapes[n][1] if len(lg.shapes[n]) == 2 else 1))
                  for n in lg.leaves}
        per, mats = [], {}
        vars_ = [x for x in walk(result) if isinstance(x, Var)]
        for _ in range(3):
            sample = dict(params)
            for n in ("x", "y"):
                if n in lg.shapes:
                    sample[n] = rng.uniform(0.1, 0.9, lg.shapes[n])
            nums = evaluate_claims(self.ws, sample, [n.name for n in lg.nodes])
            env = numbers_env(nums, lg)
            with np.errstate(all="ignore"):
                per.append(np.asarray(evaluate(result, env), dtype=float))
            for v in vars_:
                mats.setdefault(v, []).append(np.asarray(env[v] if v.adjoint else env[v.name], dtype=float))
        mean = np.mean(per, axis=0)
        cols = {v: np.stack(m, axis=1) if np.ndim(m[0]) else np.asarray(m) for v, m in mats.items()}
        if isinstance(result, Outer):
            batch = cols[result.a] @ cols[result.b].T / 3
        elif isinstance(result, Sum):
            batch = np.asarray(cols[result.a].sum() / 3)
        else:
            batch = cols[result] @ np.ones(3) / 3
        if np.all(np.isfinite(batch)) and np.allclose(batch, mean, rtol=1e-12, atol=1e-14):
            return Check("numeric", "equal to the mean of the per-sample results over 3 random samples (float64)", True)
        return Check("numeric", "NOT equal to the mean of the per-sample results over 3 random samples", False)


def _sym(name: str):
    from .expr import symbol
    return symbol(name)


def _differ(mine: int, want: int, scale: int) -> str | None:
    """None when the fixed-point values agree to the tolerance, else a short description."""
    floor = 1 << (F - 100)                       # 2^-100: fixed-point rounding over many operations
    if abs(mine - want) <= max(floor, int(TOL * max(abs(want), scale))):
        return None
    with mpmath.workprec(F + 24):
        return f"{mpmath.nstr(to_mp(mine), 12)} vs {mpmath.nstr(to_mp(want), 12)}"


def _small(d, lg) -> bool:
    if d.network is not None:
        net = d.network
        return net.n_params + sum(u for u, _ in net.layers) * 2 + net.inputs <= SMALL_SCALARS
    total = sum(max(1, math.prod(s)) for s in lg.shapes.values())
    return total <= SMALL_SCALARS


def _scalar_adjoints(sws, env: dict) -> dict:
    """∂output/∂name at one point for every scalar name, by the scalar view's own checked partials."""
    from .mpeval import evaluate
    g = sws.graph
    delta = {g.output: mpmath.mpf(1)}
    with mpmath.workdps(DIGITS):
        for n in reversed(g.nodes):
            dn = delta.get(n.name)
            if dn is None:
                continue
            for p in dict.fromkeys(n.parents):
                delta[p] = delta.get(p, 0) + dn * evaluate(sws.partial(n.name, p).expr, env)
    return delta
