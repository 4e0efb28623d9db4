"""derivation stage at scale: factored derivations of deep networks, exact path counts, bounded documents."""
import json

import mpmath
import sympy as sp
import numpy as np
import pytest

import derivator
from derivator.cli import main
from derivator.expr import symbol
from derivator.mpeval import evaluate
from derivator.render import point_values


def deep(depth, width=3, inputs=3, act="sigmoid"):
    layers = [{"units": width, "activation": act}] * (depth - 1) + [{"units": 1, "activation": "sigmoid"}]
    return derivator.load_dict({"network": {"inputs": inputs, "layers": layers, "bias": "per_neuron", "loss": "mse"}})


def point(d, seed=0):
    rng = np.random.default_rng(seed)
    g = derivator.graph(d)
    return {x: float(rng.uniform(-1, 1)) for x in g.leaves}


@pytest.mark.parametrize("depth", [2, 5, 9, 20])
def test_exact_path_count_of_a_first_layer_weight(depth):
    proof = derivator.derive(deep(depth), "w1", view="scalar")   # deep nets default to the layer view
    # w1 -> z1 -> h1, then every later hidden layer multiplies the routes by 3, the output by 1
    assert proof.path_count == 3 ** (depth - 2)
    assert proof.verified


def _factored_value(proof, at):
    """∂L/∂w as the derivation states it, evaluated at the point (deltas by its own accumulation)."""
    env = point_values(proof.graph, at)
    by_edge = {(p.child, p.parent): p for p in proof.partials}
    delta = {proof.output: mpmath.mpf(1)}
    with mpmath.workdps(30):
        for a in proof.accumulation[1:]:
            delta[a.node] = mpmath.fsum(delta[c] * evaluate(by_edge[(c, a.node)].expr, env) for c in a.children)
        full = dict(env)
        full.update({symbol(f"δ_{k}"): v for k, v in delta.items()})
        return float(evaluate(proof.result, full)), float(delta[proof.wrt])


@pytest.mark.parametrize("depth,act", [(6, "tanh"), (12, "sigmoid")])
def test_factored_derivation_against_finite_differences(depth, act):
    d = deep(depth, act=act)
    at = point(d, seed=depth)
    grad = derivator.compile(d)
    for w in ("w1", "w5", "b2"):
        proof = derivator.derive(d, w, view="scalar")
        assert proof.verified
        stated, accumulated = _factored_value(proof, at)
        h = 1e-6
        up = float(grad(**{**at, w: at[w] + h}).value)
        down = float(grad(**{**at, w: at[w] - h}).value)
        fd = (up - down) / (2 * h)
        assert stated == pytest.approx(accumulated, rel=1e-12, abs=1e-15)
        assert stated == pytest.approx(fd, rel=1e-5, abs=1e-9)
        assert float(grad(**at).gradient[w]) == pytest.approx(stated, rel=1e-10, abs=1e-14)


def test_deep_result_is_stated_through_named_adjoints():
    proof = derivator.derive(deep(20), "w1", view="scalar")
    data = proof.to_json()
    assert data["path_count"] == 3 ** 18
    assert data["result"] == "x1*δ_z1"
    assert len(data["paths"]) == 1000          # shortened; the count stays exact
    assert all(p[0] == "L" and p[-1] == "w1" for p in data["paths"])


def test_deep_document_stays_small(tmp_path):
    d = deep(20)
    out = tmp_path / "deep.md"
    path = tmp_path / "deep.yaml"
    path.write_text(json.dumps({"network": {"inputs": 3, "layers": [{"units": 3}] * 19 + [{"units": 1}],
                                            "loss": "mse"}}))
    assert main(["derive", str(path), "--view", "scalar", "--wrt", "w1", "-o", str(out)]) == 0
    text = out.read_text()
    assert "387420489 paths" in text and "the first 16 are listed" in text
    assert len(text) < 400_000
    assert derivator.derive(d, "w1", view="scalar").path_count == 387420489


def test_small_graph_shows_the_path_sum_and_its_factoring():
    proof = derivator.derive(derivator.load("olah_factoring"), "X")
    assert proof.path_count == 9 and proof.all_paths_shown
    assert str(proof.result) == "(alpha + beta + gamma)*(delta + epsilon + zeta)"
    assert proof.check.method == "symbolic"
    md = proof.to_markdown()
    assert "a sum over paths" in md and "reverse accumulation" in md
    assert r"&= (\alpha + \beta + \gamma) (\delta + \varepsilon + \zeta)" in md      # the sum, factored


def test_long_chain_whose_result_is_stated_through_adjoints():
    """u_i = u_{i-1}·c + a, 300 times: a reaches the output along 300 paths; the check still runs."""
    eqs = {"u0": "a*c"}
    for i in range(1, 301):
        eqs[f"u{i}"] = f"u{i - 1}*c + a"
    d = derivator.load_dict({"equations": eqs, "wrt": ["a"]})
    proof = derivator.derive(d, "a")
    assert proof.path_count == 301
    assert proof.verified


def test_chain_too_long_to_write_out_is_stated_through_adjoints():
    """A chain of 400 sigmoids: one path of 400 partials is not written out (it would cost time and
    memory quadratic in the chain); the result reads δ of a's child, and it is checked."""
    eqs = {"u0": "sigmoid(a)"} | {f"u{i}": f"sigmoid(u{i - 1})" for i in range(1, 400)}
    d = derivator.load_dict({"equations": eqs})
    proof = derivator.derive(d, "a")
    assert proof.path_count == 1 and proof.verified
    assert str(proof.result) == "u0*δ_u0*(1 - u0)"
    assert all(a.expr is None for a in proof.accumulation)
    data = proof.to_json()
    assert data["result"] == "u0*δ_u0*(1 - u0)" and len(data["paths"][0]) == 401
    # the value it states, with δ_u0 accumulated from its own steps, is the compiled gradient
    stated, _ = _factored_value(proof, {"a": 0.3})
    assert stated == pytest.approx(float(derivator.compile(d)(a=0.3).gradient["a"]), rel=1e-10)


def test_short_chain_is_written_out():
    eqs = {"u0": "sigmoid(a)"} | {f"u{i}": f"sigmoid(u{i - 1})" for i in range(1, 50)}
    proof = derivator.derive(derivator.load_dict({"equations": eqs}), "a")
    assert "δ" not in str(proof.result) and proof.verified
    assert all(a.expr is not None for a in proof.accumulation)


def test_wide_layer_partials_do_not_grow_with_the_fan_in():
    """1 input -> 256 units -> 1: the output's pre-activation sums 256 products; each of its partials
    is the derivative of one term (one shape for all 256 weights, one for all 256 units)."""
    d = derivator.load_dict({"network": {"inputs": 1, "layers": [{"units": 256}, {"units": 1}], "loss": "mse"}})
    ws = derivator.api.workspace(d)
    proofs = derivator.derive_all(d, ["w257", "w1", "b1"])
    assert all(p.verified for p in proofs)
    g = derivator.graph(d)
    z = g.node("z257")
    assert len(z.parents) == 513
    shapes = {id(ws._shape("z257", p)[0]) for p in z.parents}
    assert len(shapes) == 3                  # w·h by w, by h, and the bias
    for p in ("w260", "h7", "b257"):
        lp = ws.partial("z257", p)
        assert lp.expr == sp.diff(z.expr, symbol(p)) and lp.check.passed
        assert lp.rules[0] == "sum rule"
    at = point(d, seed=5)
    grad = derivator.compile(d)
    out = grad(**at)
    h = 1e-6
    fd = (float(grad(**{**at, "w300": at["w300"] + h}).value) - float(grad(**{**at, "w300": at["w300"] - h}).value)) / (2 * h)
    assert float(out.gradient["w300"]) == pytest.approx(fd, rel=1e-6)
