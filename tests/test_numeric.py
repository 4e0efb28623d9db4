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
import derivator.api  # noqa: F401  (derivator.api.default_view below, before any lazy import)
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


# ------------------------------------------------------------ adjoints as written ---
# The compiled code computes with the definition rewritten for floating point (stable.py);
# the adjoints it reports are those of the definition as written, also where a rewritten
# edge leaves a node with other children (issue 7, item 1).

AS_WRITTEN = {
    "log_and_itself": ("""
equations:
  P: sigmoid(a)
  L: log(P) + P
""", {"a": (-2, 2)}),
    "bce_plus_square": ("""
equations:
  o: sigmoid(z)
  L: -(y*log(o) + (1-y)*log(1-o)) + o**2
""", {"z": (-2, 2), "y": (0.05, 0.95)}),
    "softmax_loss_uses_s": ("""
equations:
  s: exp(z1) + exp(z2) + exp(z3)
  o1: exp(z1)/s
  o2: exp(z2)/s
  o3: exp(z3)/s
  L: -(y1*log(o1) + y2*log(o2) + y3*log(o3)) + s/10
""", {"z1": (-2, 2), "z2": (-2, 2), "z3": (-2, 2), "y1": (0.05, 0.95), "y2": (0.05, 0.95), "y3": (0.05, 0.95)}),
    "softmax_output_in_two_losses": ("""
equations:
  s: exp(z1) + exp(z2)
  o1: exp(z1)/s
  o2: exp(z2)/s
  L: -(y1*log(o1) + y2*log(o2)) + (o1 - y1)**2
""", {"z1": (-2, 2), "z2": (-2, 2), "y1": (0.05, 0.95), "y2": (0.05, 0.95)}),
    "log_read_by_two_nodes": ("""
equations:
  P: sigmoid(a*b)
  A: log(P)
  B: c*log(1 - P)
  L: A + B + P*c
""", {"a": (-2, 2), "b": (-2, 2), "c": (-2, 2)}),
    "rewritten_node_is_a_wrt": ("""
equations:
  P: sigmoid(a)
  Q: P*b
  L: log(P) + Q
wrt: [P, a, b]
""", {"a": (-2, 2), "b": (-2, 2)}),
}


def _as_written(name):
    return derivator.loads(AS_WRITTEN[name][0], source=name)


def _as_written_points(name, count=3):
    rng = random.Random(f"as-written-{name}")
    ranges = AS_WRITTEN[name][1]
    return [{k: rng.uniform(*r) for k, r in ranges.items()} for _ in range(count)]


def test_adjoint_of_a_rewritten_node_with_another_child():
    """δ_P of L = log(P) + P is 1/P + 1 = 3 at a = 0, as the derivation says (not 1)."""
    d = _as_written("log_and_itself")
    assert float(derivator.compile(d)(a=0.0).adjoints["P"]) == pytest.approx(3.0, rel=1e-15)
    proof = derivator.derive(d, "P")
    assert float(proof.result.subs({sp.Symbol("P", real=True): 0.5})) == pytest.approx(3.0)


@pytest.mark.parametrize("name", list(AS_WRITTEN))
def test_adjoints_as_written_against_torch(name):
    d = _as_written(name)
    grad = derivator.compile(d)
    for pt in _as_written_points(name):
        out = grad(**pt)
        value, tgrads, tadj, _ = torch_reference(d, pt)
        assert_close(out.value, value, 1e-12, f"{name}: value")
        for node, ref in tadj.items():
            assert_close(out.adjoints[node], ref, 1e-10, f"{name}: adjoint of {node} at {pt}")
        for w in d.wrt:
            assert_close(out.gradient[w], tgrads[w] if w in tgrads else tadj[w], 1e-10, f"{name}: d/d{w}")
    # the batch totals of a rewritten wrt node are its adjoints as written, summed
    pts = _as_written_points(name, count=5)
    batch = {k: np.array([p[k] for p in pts]) for k in pts[0]}
    tot = grad.sum(**batch)
    each = grad(**batch)
    for w in d.wrt:
        assert_close(tot.gradient[w], float(np.sum(each.gradient[w])), 1e-12, f"{name}: total of d/d{w}")


def test_adjoints_as_written_in_eval_json(tmp_path, capsys):
    import json

    from derivator.cli import main
    f = tmp_path / "p.yaml"
    f.write_text("equations:\n  P: sigmoid(a)\n  L: log(P) + P\nat: {a: 0}\n")
    assert main(["eval", str(f), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["adjoints"]["P"] == pytest.approx(3.0, rel=1e-15)


def test_softmax_network_adjoints_as_written_against_torch():
    """A softmax network with a cross-entropy loss: the normaliser s and the outputs o_k have
    their adjoints as written, though the code computes through one log-sum-exp."""
    d = derivator.load_dict({"network": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"},
                                                                 {"units": 3, "activation": "softmax"}],
                                         "loss": "cross_entropy"}})
    grad = derivator.compile(d)
    rng = random.Random(7)
    for _ in range(3):
        pt = _default_sampler(d)(rng)
        out = grad(**pt)
        _, tgrads, tadj, _ = torch_reference(d, pt)
        for node, ref in tadj.items():
            assert_close(out.adjoints[node], ref, 1e-10, f"adjoint of {node}")
        for w in d.wrt:
            assert_close(out.gradient[w], tgrads[w], 1e-10, w)


# ------------------------------------------------------------ the generated code ---

def _function(source, name):
    """The text of one generated function."""
    start = source.index(f"def {name}(")
    end = source.find("\ndef ", start + 1)
    return source[start:] if end < 0 else source[start:end]


@pytest.mark.parametrize("sizes", [(3, 3, 4), (4, 8, 8, 10)])
def test_softmax_code_has_one_log_sum_exp_and_no_term_times_a_zero_adjoint(sizes):
    layers = [{"units": u, "activation": "sigmoid"} for u in sizes[1:-1]] + [{"units": sizes[-1], "activation": "softmax"}]
    d = derivator.load_dict({"network": {"inputs": sizes[0], "layers": layers, "loss": "cross_entropy"}})
    src = derivator.compile(d).source
    matrix = "def _layer_flat(" in src           # 4-8-8-10: the totals by the layer view's code
    assert matrix == (max(sizes[1:]) >= 4)
    names = ["gradient"] + (["_layer_totals", "_scalar_totals"] if matrix else ["totals"])
    for name in names:
        body = _function(src, name)
        assert sum(body.count(f) for f in ("_logsumexp(", "_softmax(", "_softmax_and_log(",
                                           "_vsoftmax(")) == 1, name
        zero = [line for line in body.splitlines() if line.endswith(" = 0.0") and "_value" not in line]
        assert not zero, (name, zero)                 # no adjoint fixed at 0 computed, none multiplied in
    # the totals do not compute the normaliser s (only the log-sum-exp reads the logits)
    assert "v_s = " not in _function(src, "_scalar_totals" if matrix else "totals")


def test_softmax_adjoint_is_the_derivation_s_own():
    """The code's δ_z of a softmax + cross-entropy is o·Σy − y, which is the derivation's δ_z for
    any targets (also those that do not sum to 1), checked against torch with such targets."""
    d = derivator.load_dict({"network": {"inputs": 2, "layers": [{"units": 3, "activation": "softmax"}],
                                         "bias": "none", "loss": "cross_entropy"}})
    pt = {"x1": 0.3, "x2": -1.2, "w1": 0.5, "w2": -0.4, "w3": 1.1, "w4": 0.2, "w5": -0.7, "w6": 0.9,
          "y1": 0.7, "y2": 0.6, "y3": 0.4}                         # Σy = 1.7
    out = derivator.compile(d)(**pt)
    _, tgrads, tadj, _ = torch_reference(d, pt)
    for z in ("z1", "z2", "z3"):
        assert_close(out.adjoints[z], tadj[z], 1e-12, z)
    for w in d.wrt:
        assert_close(out.gradient[w], tgrads[w], 1e-12, w)


def test_long_sums_and_chains_compile_without_recursion():
    """A 3,000-term sum and a chain of 2,000 sigmoids: flat code, no RecursionError anywhere."""
    d = derivator.load_dict({"equations": {"F": "+".join(f"a{i}*b{i}" for i in range(1500))}})
    grad = derivator.compile(d)
    pt = {f"a{i}": 0.001 * i for i in range(1500)} | {f"b{i}": 1.0 for i in range(1500)}
    out = grad(**pt)
    assert float(out.value) == pytest.approx(sum(0.001 * i for i in range(1500)))
    assert float(out.gradient["b7"]) == pytest.approx(0.007)
    eqs = {"u0": "sigmoid(a)"} | {f"u{i}": f"sigmoid(u{i - 1})" for i in range(1, 2000)}
    d = derivator.load_dict({"equations": eqs})
    out = derivator.compile(d)(a=0.3)
    v, g = 0.3, 1.0
    for _ in range(2000):
        v = 1 / (1 + math.exp(-v))
        g *= v * (1 - v)
    assert float(out.value) == pytest.approx(v, rel=1e-12)
    assert float(out.gradient["a"]) == pytest.approx(g, rel=1e-9)


def test_max_of_many_arguments_is_shallow_and_sends_the_gradient_to_the_first_maximum():
    d = derivator.load_dict({"equations": {"F": "max(" + ", ".join(f"a{i}" for i in range(200)) + ")"}})
    grad = derivator.compile(d)
    pt = {f"a{i}": float(i % 50) for i in range(200)}        # 49 at i = 49, 99, 149, 199
    out = grad(**pt)
    assert float(out.value) == 49.0
    assert [k for k, v in out.gradient.items() if v != 0] == ["a49"]


# ------------------------------------------------------------ bad arrays ---

@pytest.mark.parametrize("value,match", [
    (np.array([1.0, 2.0, 3.0]), "do not broadcast together: x1 has shape \\(2,\\), x2 has shape \\(3,\\)"),
    (np.array([1.0, None], dtype=object), "x2 is not a number or an array of real numbers"),
    (10 ** 400, "x2 is too large for a float64"),
    ([1.0, 10 ** 400], "x2"),
    (1 + 2j, "x2 holds a complex number"),
    (np.array([1 + 1j, 2.0]), "x2 holds complex numbers"),
    ("0.5", "x2 is text, not a number"),
    (np.array(["a", "b"]), "x2 is text"),
    (None, "x2 is not a number"),
    ({"a": 1}, "x2 is not a number"),
])
def test_bad_arrays_raise_usage_errors(value, match):
    d = DEFINITIONS["seed_network"]
    grad = derivator.compile(d)
    at = {**d.at_dict, "x1": np.array([0.1, 0.2])}
    for call in (grad, grad.sum, grad.mean):
        with pytest.raises(derivator.UsageError, match=match):
            call(**{**at, "x2": value})


def test_good_array_kinds_are_accepted():
    d = DEFINITIONS["seed_network"]
    grad = derivator.compile(d)
    at = d.at_dict
    ref = grad.sum(**{**at, "x1": np.array([1.0, 2.0])})
    for x1 in (np.array([1, 2]), [1.0, 2.0], (1, 2), np.array([1.0, 2.0], dtype=np.float32),
               np.array([1.0, 2.0], dtype=object)):
        got = grad.sum(**{**at, "x1": x1})
        assert got.gradient == pytest.approx(ref.gradient, rel=1e-7)
    assert float(grad(**{**at, "x1": True}).value) == pytest.approx(float(grad(**{**at, "x1": 1.0}).value))
