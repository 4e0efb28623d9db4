"""The numbers: every gradient against finite differences and torch autograd.

The reference is built here, independently of the project's numeric code:
a small translator walks the sympy expressions of a definition and builds
the same function from torch operations (float64), and torch's autograd
differentiates it. The project's compiled gradient, its adjoints, its batch
API and the value of its derivation's result are compared with it.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import sympy as sp
import torch

import derivator
from derivator.functions import Max2, Min2, relu, sigmoid, softplus

torch.set_default_dtype(torch.float64)

# ------------------------------------------------------------ the reference ---

_UNARY = {
    sp.exp: torch.exp, sp.log: torch.log, sp.tanh: torch.tanh, sp.sin: torch.sin, sp.cos: torch.cos,
    sp.Abs: torch.abs, sigmoid: torch.sigmoid, relu: torch.relu,
    softplus: lambda x: torch.logaddexp(torch.zeros_like(x), x), sp.sign: torch.sign,
}
_BINARY = {Max2: torch.maximum, Min2: torch.minimum}


def to_torch(e: sp.Basic, env: dict) -> torch.Tensor:
    """A sympy expression of a definition as torch operations; ``env`` maps names to tensors."""
    if isinstance(e, sp.Symbol):
        return env[e.name]
    if e.is_Number:
        return torch.tensor(float(e), dtype=torch.float64)
    if isinstance(e, sp.Add):
        out = to_torch(e.args[0], env)
        for a in e.args[1:]:
            out = out + to_torch(a, env)
        return out
    if isinstance(e, sp.Mul):
        out = to_torch(e.args[0], env)
        for a in e.args[1:]:
            out = out * to_torch(a, env)
        return out
    if isinstance(e, sp.Pow):
        base, ex = e.args
        if ex == sp.Rational(1, 2):
            return torch.sqrt(to_torch(base, env))
        if ex.is_Integer:
            return to_torch(base, env) ** int(ex)
        if ex.is_Number:
            return to_torch(base, env) ** float(ex)
        return torch.pow(to_torch(base, env), to_torch(ex, env))
    if type(e) in _UNARY:
        (u,) = e.args
        return _UNARY[type(e)](to_torch(u, env))
    if type(e) in _BINARY:
        a, b = e.args
        return _BINARY[type(e)](to_torch(a, env), to_torch(b, env))
    if isinstance(e, sp.Heaviside):
        x = to_torch(e.args[0], env)
        h0 = float(e.args[1]) if len(e.args) > 1 else 0.5
        return torch.heaviside(x, torch.tensor(h0))
    raise NotImplementedError(f"no torch translation for {type(e).__name__}: {e}")


def torch_reference(d, point: dict):
    """(value, {leaf: ∂output/∂leaf}, {node: adjoint}, {node: value}) by torch autograd.

    Nodes are evaluated from the definition's equations by recursion (no use
    of the project's graph or its order).
    """
    eqs = {e.name: e.expr for e in d.equations}
    env: dict = {k: torch.tensor(float(v), requires_grad=True) for k, v in point.items()}
    leaves = dict(env)

    def value(name):
        if name not in env:
            expr = eqs[name]
            for s in sorted(expr.free_symbols, key=lambda s: s.name):
                value(s.name)
            t = to_torch(expr, env)
            t.retain_grad()
            env[name] = t
        return env[name]

    for name in eqs:
        value(name)
    out = env[d.output]
    out.backward()
    grads = {k: (0.0 if t.grad is None else float(t.grad)) for k, t in leaves.items()}
    adjoints = {k: (0.0 if env[k].grad is None else float(env[k].grad)) for k in eqs}
    adjoints[d.output] = 1.0
    values = {k: float(env[k].detach()) for k in eqs}
    return float(out.detach()), grads, adjoints, values


def assert_close(a, b, tol, what=""):
    a, b = float(a), float(b)
    assert math.isfinite(a), f"{what}: {a}"
    assert abs(a - b) <= tol * max(1.0, abs(b)), f"{what}: {a!r} vs reference {b!r}"


# ------------------------------------------------------------ definitions ---

# Definitions beyond the shipped examples, so every function and every form
# of the network sugar is covered. Each has a sampler for its random points
# (positive where a log or a fractional power needs it).
EXTRA = {
    "every_function": ("""
equations:
  p: exp(a*b) + log(c) - sin(a) * cos(b)
  q: tanh(p) / (1 + c**2) + sqrt(c) * abs(a - b)
  r: relu(q - a) + softplus(b*q) + sigmoid(p)
  s: max(r, q, a) - min(p, b) + a**b
  t: 2*s/c + q^3 - r**(1/2.0) + c**a - 0.25*d/(a*c)
output: t
at: {a: 0.7, b: -0.3, c: 1.3, d: 2}
""", lambda rng: {"a": rng.uniform(0.2, 2), "b": rng.uniform(-1.5, 1.5), "c": rng.uniform(0.2, 2),
                  "d": rng.uniform(-2, 2)}),
    "softmax_cross_entropy": ("""
network:
  inputs: 3
  layers:
    - {units: 4, activation: relu}
    - {units: 3, activation: softmax}
  bias: per_neuron
  loss: cross_entropy
  naming: layered
""", None),
    "bce_softplus_tanh": ("""
network:
  inputs: 2
  layers:
    - {units: 3, activation: softplus}
    - {units: 2, activation: tanh}
    - {units: 2, activation: sigmoid}
  bias: shared
  loss: bce
""", None),
    "identity_mse": ("""
network:
  inputs: 2
  layers:
    - {units: 2, activation: identity}
    - {units: 3, activation: identity}
  bias: none
  loss: mse
""", None),
    "forward_reference": ("""
equations:
  L: (y - o)**2 + lam*w**2
  o: sigmoid(z)
  z: w*x + b
wrt: [w, b, x]
""", None),
}


def _extra(name):
    return derivator.loads(EXTRA[name][0], source=name)


def _default_sampler(d):
    g = derivator.graph(d)
    targets = {x for x in g.leaves if x.startswith("y")}

    def sample(rng):
        pt = {x: rng.uniform(-1.5, 1.5) for x in g.leaves}
        for y in targets:        # targets in (0, 1): bce and cross-entropy need them there
            pt[y] = rng.uniform(0.05, 0.95)
        return pt
    return sample


# the examples whose default view is the scalar one (test_layer_view.py tests the layer view's)
SCALAR_EXAMPLES = [n for n in derivator.examples() if derivator.api.default_view(derivator.load(n)) == "scalar"]


def all_definitions():
    out = [(name, derivator.load(name)) for name in SCALAR_EXAMPLES]
    out += [(name, _extra(name)) for name in EXTRA]
    return out


DEFINITIONS = dict(all_definitions())
NAMES = list(DEFINITIONS)


def sampler(name):
    custom = EXTRA.get(name, (None, None))[1]
    return custom or _default_sampler(DEFINITIONS[name])


def points(name, count=3, seed=0):
    """The file's `at` (where it gives every leaf), then random points."""
    d = DEFINITIONS[name]
    g = derivator.graph(d)
    out = []
    at = d.at_dict
    if all(x in at for x in g.leaves):
        out.append({x: at[x] for x in g.leaves})
    rng = random.Random(f"{name}-{seed}")
    sample = sampler(name)
    out += [sample(rng) for _ in range(count)]
    return out


def test_examples_are_covered():
    shipped = SCALAR_EXAMPLES
    assert {"seed_warmup", "seed_network"} <= set(shipped)
    assert all(name in DEFINITIONS for name in shipped)


def test_examples_function_survives_loading_an_example():
    """`derivator.examples()` stays the function after the subpackage derivator.examples is imported."""
    derivator.load("colah")
    assert callable(derivator.examples), (
        "derivator.examples is shadowed by the subpackage derivator/examples/ once it is imported")
    assert "seed_network" in derivator.examples()


# ------------------------------------------------------------ the tests ---

@pytest.mark.parametrize("name", NAMES)
def test_gradient_against_torch(name):
    d = DEFINITIONS[name]
    grad = derivator.compile(d)
    assert grad.wrt == d.wrt
    for pt in points(name, count=4):
        out = grad(**pt)
        value, tgrads, tadj, tvalues = torch_reference(d, pt)
        assert_close(out.value, value, 1e-12, f"{name}: value at {pt}")
        for w in d.wrt:
            ref = tgrads[w] if w in tgrads else tadj[w]
            assert_close(out.gradient[w], ref, 1e-10, f"{name}: d{d.output}/d{w} at {pt}")
        for node, ref in tadj.items():
            assert_close(out.adjoints[node], ref, 1e-10, f"{name}: adjoint of {node} at {pt}")
        for node, ref in tvalues.items():
            assert_close(out.values[node], ref, 1e-12, f"{name}: value of {node} at {pt}")


@pytest.mark.parametrize("name", NAMES)
def test_gradient_against_finite_differences(name):
    d = DEFINITIONS[name]
    grad = derivator.compile(d)
    for pt in points(name, count=2, seed=1):
        out = grad(**pt)
        for w in d.wrt:
            if w not in pt:      # a node: finite differences need a leaf
                continue
            h = 1e-6 * max(1.0, abs(pt[w]))
            up = float(grad(**{**pt, w: pt[w] + h}).value)
            down = float(grad(**{**pt, w: pt[w] - h}).value)
            fd = (up - down) / (2 * h)
            assert_close(out.gradient[w], fd, 1e-6, f"{name}: d{d.output}/d{w} at {pt} (finite differences)")


def _eval_sympy(expr, env: dict) -> float:
    """A derivation's result at a point: every symbol replaced by its value (torch, no autograd)."""
    with torch.no_grad():
        return float(to_torch(expr, {k: torch.tensor(float(v)) for k, v in env.items()}))


@pytest.mark.parametrize("name", NAMES)
def test_derivation_result_equals_compiled_gradient(name):
    """derive(d, w).result, with the node values substituted, is the compiled gradient."""
    d = DEFINITIONS[name]
    grad = derivator.compile(d)
    pts = points(name, count=1, seed=2)
    outs = [grad(**pt) for pt in pts]
    for w in d.wrt:
        proof = derivator.derive(d, w)
        assert proof.verified, proof.failures
        names = {s.name for s in proof.result.free_symbols}
        assert names <= set(derivator.graph(d).names), f"{name}/{w}: result uses {names}"
        for pt, out in zip(pts, outs):
            env = {k: float(v) for k, v in out.values.items()}
            assert_close(_eval_sympy(proof.result, env), out.gradient[w], 1e-10, f"{name}: result of d/d{w}")


@pytest.mark.parametrize("name", NAMES)
def test_result_composed_in_the_leaves_against_torch(name):
    """Substituting the nodes' definitions gives the gradient in leaves alone (SPEC §2.2)."""
    d = DEFINITIONS[name]
    g = derivator.graph(d)
    defs = {}
    for n in g.nodes:
        defs[n.symbol] = n.expr.xreplace(defs)
    pt = points(name, count=1, seed=3)[-1]
    _, tgrads, tadj, _ = torch_reference(d, pt)
    for w in d.wrt:
        if w not in tgrads:
            continue
        result = derivator.derive(d, w).result.xreplace(defs)
        assert {s.name for s in result.free_symbols} <= set(g.leaves)
        assert_close(_eval_sympy(result, pt), tgrads[w], 1e-10, f"{name}: d/d{w} in the leaves")


# ------------------------------------------------------------ batch API ---

BATCH = ["seed_network", "two_outputs", "colah", "softmax_cross_entropy", "every_function"]


def _batch(name, n=7, seed=4):
    d = DEFINITIONS[name]
    g = derivator.graph(d)
    rows = [sampler(name)(random.Random(f"{name}-{seed}-{i}")) for i in range(n)]
    params = set(d.wrt)
    shared = rows[0]
    # parameters (wrt) are one scalar each; everything else (inputs, targets) one value per sample
    batch = {x: (shared[x] if x in params else np.array([r[x] for r in rows])) for x in g.leaves}
    samples = [{x: (shared[x] if x in params else r[x]) for x in g.leaves} for r in rows]
    if all(x in params for x in g.leaves):      # e.g. colah: every leaf is a wrt; batch them all
        batch = {x: np.array([r[x] for r in rows]) for x in g.leaves}
        samples = [{x: r[x] for x in g.leaves} for r in rows]
    return d, batch, samples


@pytest.mark.parametrize("name", BATCH)
def test_batch_elementwise(name):
    d, batch, samples = _batch(name)
    grad = derivator.compile(d)
    out = grad(**batch)
    n = len(samples)
    assert np.shape(out.value) == (n,)
    for k, v in out.gradient.items():
        assert np.shape(v) == (n,), f"gradient[{k}] has shape {np.shape(v)}"
    for k, v in list(out.values.items()) + list(out.adjoints.items()):
        assert np.shape(v) == (n,), f"{k} has shape {np.shape(v)}: scalars broadcast to the batch"
    for i, s in enumerate(samples):
        one = grad(**s)
        assert_close(out.value[i], one.value, 1e-14, f"value[{i}]")
        for k in d.wrt:
            assert_close(out.gradient[k][i], one.gradient[k], 1e-13, f"gradient[{k}][{i}]")
        for k in one.adjoints:
            assert_close(out.adjoints[k][i], one.adjoints[k], 1e-13, f"adjoints[{k}][{i}]")
        for k in one.values:
            assert_close(out.values[k][i], one.values[k], 1e-14, f"values[{k}][{i}]")


@pytest.mark.parametrize("name", BATCH)
def test_batch_sum_and_mean(name):
    d, batch, samples = _batch(name)
    grad = derivator.compile(d)
    per = [grad(**s) for s in samples]
    n = len(samples)
    tot = grad.sum(**batch)
    mean = grad.mean(**batch)
    assert tot.count == n and mean.count == n
    assert_close(tot.value, sum(float(p.value) for p in per), 1e-12, "sum of values")
    assert_close(mean.value, sum(float(p.value) for p in per) / n, 1e-12, "mean of values")
    assert list(tot.gradient) == list(d.wrt) and list(mean.gradient) == list(d.wrt)
    for k in d.wrt:
        s = sum(float(p.gradient[k]) for p in per)
        assert_close(tot.gradient[k], s, 1e-12, f"sum of gradient[{k}]")
        assert_close(mean.gradient[k], s / n, 1e-12, f"mean of gradient[{k}]")


def test_batch_sum_against_torch():
    """The batch mean of the seed network's loss and gradient, against torch on the whole batch."""
    d, batch, samples = _batch("seed_network", n=11)
    mean = derivator.compile(d).mean(**batch)
    refs = [torch_reference(d, s) for s in samples]
    assert_close(mean.value, sum(r[0] for r in refs) / len(refs), 1e-12)
    for k in d.wrt:
        assert_close(mean.gradient[k], sum(r[1][k] for r in refs) / len(refs), 1e-12, k)


def test_scalar_weights_broadcast_with_array_inputs():
    d = DEFINITIONS["seed_network"]
    grad = derivator.compile(d)
    at = d.at_dict
    xs = np.linspace(-1, 1, 5)
    out = grad(**{**at, "x1": xs})
    assert np.shape(out.value) == (5,)
    for k in d.wrt:
        assert np.shape(out.gradient[k]) == (5,)
    for i, x in enumerate(xs):
        one = grad(**{**at, "x1": float(x)})
        for k in d.wrt:
            assert_close(out.gradient[k][i], one.gradient[k], 1e-14, k)
    # a 2-D broadcast, like a ufunc: inputs down the rows, a weight across the columns
    w5 = np.array([[-0.5, 0.0, 0.5, 1.0]])
    out = grad(**{**at, "x1": xs[:, None], "w5": w5})
    assert np.shape(out.value) == (5, 4) and np.shape(out.gradient["w1"]) == (5, 4)
    for i in range(5):
        for j in range(4):
            one = grad(**{**at, "x1": float(xs[i]), "w5": float(w5[0, j])})
            assert_close(out.gradient["w5"][i, j], one.gradient["w5"], 1e-14)
            assert_close(out.value[i, j], one.value, 1e-14)
    tot = grad.sum(**{**at, "x1": xs[:, None], "w5": w5})
    assert tot.count == 20
    assert_close(tot.gradient["w5"], float(np.sum(out.gradient["w5"])), 1e-12)
    assert_close(tot.gradient["w1"], float(np.sum(out.gradient["w1"])), 1e-12)


def test_sum_of_scalars_is_one_sample():
    d = DEFINITIONS["seed_warmup"]
    grad = derivator.compile(d)
    tot = grad.sum(**d.at_dict)
    one = grad(**d.at_dict)
    assert tot.count == 1
    assert tot.value == pytest.approx(float(one.value))
    assert tot.gradient == pytest.approx({k: float(v) for k, v in one.gradient.items()})


def test_compiled_wrt_a_node():
    """A node may be a `wrt` too: its gradient is its adjoint."""
    d = derivator.load_dict({"equations": {"c": "a + b", "d": "b + 1", "e": "c*d"}, "wrt": ["c", "b"]})
    grad = derivator.compile(d)
    out = grad(a=2.0, b=1.0)
    assert float(out.gradient["c"]) == pytest.approx(2.0)  # de/dc = d
    assert float(out.gradient["b"]) == pytest.approx(5.0)
    tot = grad.sum(a=np.array([2.0, 1.0]), b=np.array([1.0, 3.0]))
    assert tot.gradient["c"] == pytest.approx(2.0 + 4.0)
    assert tot.gradient["b"] == pytest.approx(5.0 + 8.0)


def test_compiled_rejects_missing_and_unknown_leaves():
    grad = derivator.compile(DEFINITIONS["colah"])
    with pytest.raises(derivator.UsageError):
        grad(a=1.0)
    with pytest.raises(derivator.UsageError):
        grad(a=1.0, b=2.0, zz=3.0)


def test_leaf_that_does_not_reach_the_output():
    d = derivator.load_dict({"equations": {"u": "a*b", "v": "c + 1", "F": "2*u"}, "output": "F"})
    assert d.wrt == ("a", "b", "c")
    out = derivator.compile(d)(a=3.0, b=4.0, c=5.0)
    assert float(out.gradient["c"]) == 0.0
    assert float(out.gradient["a"]) == pytest.approx(8.0)
    proof = derivator.derive(d, "c")
    assert proof.path_count == 0 and proof.result == 0 and proof.verified
