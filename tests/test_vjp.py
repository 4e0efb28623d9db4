"""The layer view's rules table: every matrix rule against its scalar unrolling and against torch."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from derivator.layer_check import _check_rule, _kinds, check_identity
from derivator.tensor import (Map, MatMul, Mean, Outer, Softmax, Sum, Transpose, Var, build, evaluate, parse, ph,
                              to_str)
from derivator.vjp import RULES, sindex, smap, ssum, vjp

torch.set_default_dtype(torch.float64)


def V(name, shape):
    return Var(name, tuple(shape))


# every rule of the table, on operands of the sizes that the rule's shape case takes
CASES = {
    "matmul_mm_left": (MatMul(V("A", (3, 4)), V("B", (4, 2))), 0),
    "matmul_mm_right": (MatMul(V("A", (3, 4)), V("B", (4, 2))), 1),
    "matmul_mv_left": (MatMul(V("A", (3, 4)), V("b", (4,))), 0),
    "matmul_mv_right": (MatMul(V("A", (3, 4)), V("b", (4,))), 1),
    "matmul_vm_left": (MatMul(V("a", (4,)), V("B", (4, 2))), 0),
    "matmul_vm_right": (MatMul(V("a", (4,)), V("B", (4, 2))), 1),
    "matmul_vv_left": (MatMul(V("a", (4,)), V("b", (4,))), 0),
    "matmul_vv_right": (MatMul(V("a", (4,)), V("b", (4,))), 1),
    "outer_left": (Outer(V("a", (3,)), V("b", (4,))), 0),
    "outer_right": (Outer(V("a", (3,)), V("b", (4,))), 1),
    "transpose": (Transpose(V("A", (3, 4))), 0),
    "sum": (Sum(V("A", (3, 4))), 0),
    "mean": (Mean(V("a", (5,))), 0),
    "softmax": (Softmax(V("z", (4,))), 0),
    "map": (Map(sp.tanh(ph(0)), (V("u", (4,)),), (4,)), 0),
    "hadamard": (Map(ph(0) * ph(1), (V("u", (4,)), V("v", (4,))), (4,)), 1),
    "broadcast": (Map(ph(0) * sp.exp(ph(1)), (V("u", (4,)), V("s", ())), (4,)), 1),
}


def test_every_rule_of_the_table_has_a_case():
    assert set(CASES) == set(RULES)
    for r in RULES.values():
        assert r.name and r.formula and r.text


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_rule_against_its_scalar_unrolling(key):
    """The check the derivations run: unrolled into scalars, against sympy's diff of the unrolled operation."""
    op, i = CASES[key]
    g = Var("out", op.shape, adjoint=True)
    share, use = vjp(op, i, g, Var("value", op.shape))
    assert use.key == key
    check = _check_rule(use.key, _kinds(use.shapes), use.f, use.index)
    assert check.passed, check.detail
    assert "unrolled into scalars" in check.detail


TORCH_OPS = {
    MatMul: lambda a, b: a @ b, Outer: torch.outer, Transpose: lambda a: a.T, Sum: torch.sum, Mean: torch.mean,
    Softmax: lambda z: torch.softmax(z, 0),
}
TORCH_F = {"tanh(_0)": lambda u: torch.tanh(u), "_0*_1": lambda u, v: u * v, "_0*exp(_1)": lambda u, s: u * torch.exp(s)}


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_rule_against_torch(key):
    """An independent reference: torch.autograd's vector-Jacobian product of the same operation."""
    op, i = CASES[key]
    rng = np.random.default_rng(hash(key) % 2**32)
    vals = {p.name: rng.uniform(-1, 1, p.shape) for p in op.parts}
    gval = rng.uniform(-1, 1, op.shape)
    g = Var("out", op.shape, adjoint=True)
    share, _ = vjp(op, i, g, None)
    mine = evaluate(share, {**vals, g: gval})
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in vals.items()}
    args = [ts[p.name] for p in op.parts]
    fn = TORCH_F[sp.sstr(op.f)] if isinstance(op, Map) else TORCH_OPS[type(op)]
    out = fn(*args)
    (ref,) = torch.autograd.grad(out, args[i], torch.tensor(gval))
    assert np.allclose(mine, ref.numpy(), rtol=1e-12, atol=1e-14)


def test_a_wrong_rule_fails_its_check(monkeypatch):
    """The check can fail: a matrix rule with its transpose forgotten is caught by the unrolling."""
    from derivator import vjp as vjp_module
    _check_rule.cache_clear()
    real = vjp_module._vjp_matmul

    def wrong(e, i, g, value):
        out, use = real(e, i, g, value)
        return (vjp_module.smatmul(e.a, g) if (i == 1 and len(e.a.shape) == 2 and e.a.shape[0] == e.a.shape[1])
                else out), use
    monkeypatch.setitem(vjp_module._VJP, MatMul, wrong)
    op = MatMul(V("A", (3, 3)), V("b", (3,)))
    _, use = vjp(op, 1, Var("out", (3,), adjoint=True), None)
    check = _check_rule(use.key, _kinds(use.shapes), None, 1)
    _check_rule.cache_clear()
    assert not check.passed and "NOT" in check.detail


def test_maps_fuse_and_tidy():
    x, y = V("x", (3,)), V("y", (3,))
    inner = smap(-ph(0) / ph(1), (y, x), (3,))
    outer = smap(ph(0) * ph(1), (x, inner), (3,))
    assert to_str(outer) == "-y"                               # x ⊙ (−y ⊘ x): one map, x cancels
    assert to_str(ssum(smap(-ph(0), (y,), (3,)))) == "-sum(y)"  # sums of a scaled vector pull the scale out
    assert to_str(ssum(smap(2 * ph(0), (V("c", ()),), (3,)))) == "6*c"   # a broadcast scalar summed
    assert smap(ph(0), (x,), (3,)) is x
    assert to_str(sindex(Outer(Var("z", (2,), adjoint=True), x), (1, 2))) == "delta_z[1]*x[2]"


def test_identities_are_checked_by_unrolling():
    p, y = V("p", (4,)), V("y", (4,))
    soft = build(parse("p*(-y/p - p @ (-y/p))"), {"p": (4,), "y": (4,)}.__getitem__)
    lemma = smap(ph(0) * ph(1) - ph(2), (p, Sum(y), y), (4,))
    assert check_identity(soft, lemma).passed
    wrong = smap(ph(0) - ph(1), (p, y), (4,))        # p − y: true only when Σy = 1, not an identity
    assert not check_identity(soft, wrong).passed
