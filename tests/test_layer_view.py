"""The layer view end to end: derive and eval against torch and against the scalar view, defaults, errors.

The definitions from the literature here are not in the repository: least squares, matrix
factorisation, a two-layer ReLU/softmax net (CS231n), a Nielsen-style network, logistic regression
over a batch. Each gives torch's gradients to 1e-9 in `derive --view layer --format json` and `eval`.
"""
from __future__ import annotations

import itertools
import json
import os
import re

import numpy as np
import pytest
import torch
import yaml

import derivator
from derivator import api
from derivator.cli import main

torch.set_default_dtype(torch.float64)
CASES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "cases")


def close(a, b, tol=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.all(np.abs(a - b) <= tol * np.maximum(1, np.abs(b)))


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def write(tmp_path, data: dict) -> str:
    path = tmp_path / "def.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def rand(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).round(6).tolist()


# ------------------------------------------------------ the literature ---

def least_squares(rng):
    at = {"X": rand(rng, 6, 3), "w": rand(rng, 3), "y": rand(rng, 6)}
    d = {"title": "least squares", "shapes": {"X": [6, 3], "w": [3], "y": [6]},
         "equations": {"r": "X @ w - y", "L": "mean(r**2)"}, "wrt": ["w", "X"], "at": at}

    def ref(t):
        return ((t["X"] @ t["w"] - t["y"]) ** 2).mean()
    return d, ref


def matrix_factorisation(rng):
    at = {"U": rand(rng, 4, 2), "V": rand(rng, 3, 2), "R": rand(rng, 4, 3), "lam": 0.1}
    d = {"title": "matrix factorisation", "shapes": {"U": [4, 2], "V": [3, 2], "R": [4, 3]},
         "equations": {"E": "U @ transpose(V) - R", "L": "sum(E**2)/2 + lam/2*(sum(U**2) + sum(V**2))"},
         "wrt": ["U", "V"], "at": at}

    def ref(t):
        E = t["U"] @ t["V"].T - t["R"]
        return (E ** 2).sum() / 2 + t["lam"] / 2 * ((t["U"] ** 2).sum() + (t["V"] ** 2).sum())
    return d, ref


def relu_softmax(rng):
    y = [0.0, 1.0, 0.0]
    at = {"x": rand(rng, 4), "W1": rand(rng, 5, 4), "b1": rand(rng, 5), "W2": rand(rng, 3, 5), "b2": rand(rng, 3),
          "y": y, "reg": 0.01}
    d = {"title": "two-layer ReLU/softmax (CS231n)",
         "shapes": {"x": [4], "W1": [5, 4], "b1": [5], "W2": [3, 5], "b2": [3], "y": [3]},
         "equations": {"h": "relu(W1 @ x + b1)", "s": "W2 @ h + b2", "p": "softmax(s)",
                       "L": "-sum(y*log(p)) + reg/2*(sum(W1**2) + sum(W2**2))"},
         "wrt": ["W1", "b1", "W2", "b2"], "at": at}

    def ref(t):
        h = torch.relu(t["W1"] @ t["x"] + t["b1"])
        p = torch.softmax(t["W2"] @ h + t["b2"], 0)
        return -(t["y"] * torch.log(p)).sum() + t["reg"] / 2 * ((t["W1"] ** 2).sum() + (t["W2"] ** 2).sum())
    return d, ref


def logistic_batch(rng):
    at = {"X": rand(rng, 3, 3), "W1": rand(rng, 4, 3), "w2": rand(rng, 4), "y": [1.0, 0.0, 1.0]}
    d = {"title": "a batch of 3: tanh features, logistic output, binary cross-entropy",
         "shapes": {"X": [3, 3], "W1": [4, 3], "w2": [4], "y": [3]},
         "equations": {"A": "tanh(X @ transpose(W1))", "q": "sigmoid(A @ w2)",
                       "L": "-mean(y*log(q) + (1 - y)*log(1 - q))"}, "wrt": ["W1", "w2"], "at": at}

    def ref(t):
        q = torch.sigmoid(torch.tanh(t["X"] @ t["W1"].T) @ t["w2"])
        return -(t["y"] * torch.log(q) + (1 - t["y"]) * torch.log(1 - q)).mean()
    return d, ref


def nielsen(rng):
    """Nielsen ch. 1-2: sigmoid layers, the quadratic cost C = ½‖y − a‖², here 6-5-4-3."""
    sizes = [6, 5, 4, 3]
    at = {"x": rand(rng, 6, lo=0, hi=1), "y": [0.0, 1.0, 0.0]}
    for l in range(1, 4):
        at[f"W{l}"] = rand(rng, sizes[l], sizes[l - 1])
        at[f"b{l}"] = rand(rng, sizes[l])
    d = {"title": "Nielsen-style 6-5-4-3",
         "network": {"inputs": 6, "layers": [{"units": u, "activation": "sigmoid"} for u in sizes[1:]],
                     "bias": "per_neuron", "loss": "half_sse"}, "at": at}

    def ref(t):
        a = t["x"]
        for l in range(1, 4):
            a = torch.sigmoid(t[f"W{l}"] @ a + t[f"b{l}"])
        return 0.5 * ((t["y"] - a) ** 2).sum()
    return d, ref


LITERATURE = [least_squares, matrix_factorisation, relu_softmax, logistic_batch, nielsen]


@pytest.mark.parametrize("make", LITERATURE, ids=lambda f: f.__name__)
def test_literature_against_torch(make, tmp_path, capsys):
    d, ref = make(np.random.default_rng(7))
    path = write(tmp_path, d)
    at = d["at"]
    t = {k: torch.tensor(v, requires_grad=True) for k, v in at.items()}
    loss = ref(t)
    loss.backward()
    rc, out, err = run(capsys, "derive", path, "--view", "layer", "--format", "json")
    assert rc == 0, err
    objs = json.loads(out)
    objs = objs if isinstance(objs, list) else [objs]
    wrt = d.get("wrt") or [n for n in at if n not in ("x", "y")]
    assert [o["wrt"] for o in objs] == wrt
    for o in objs:
        assert o["view"] == "layer" and o["verified"] is True, o["check"]
        assert o["shape"] == list(np.shape(at[o["wrt"]]))
        assert close(o["value"], t[o["wrt"]].grad.numpy()), o["wrt"]
    rc, out, err = run(capsys, "eval", path, "--view", "layer", "--format", "json", "--lr", "0.5")
    assert rc == 0, err
    got = json.loads(out)
    assert close(got["value"], loss.item())
    for name in wrt:
        g = t[name].grad.numpy()
        assert close(got["gradient"][name], g)
        assert close(got["updated"][name], np.asarray(at[name]) - 0.5 * g)


def test_the_lemmas_are_derived_where_the_losses_meet_their_outputs():
    d, _ = relu_softmax(np.random.default_rng(1))
    proof = derivator.derive(derivator.load_dict(d), "W2", view="layer")
    (lemma,) = proof.lemmas
    assert lemma.name == "softmax and cross-entropy" and str(lemma.result) == "p*sum(y) - y"
    assert "sum to 1" in lemma.note and lemma.check.passed
    d, _ = logistic_batch(np.random.default_rng(1))
    proof = derivator.derive(derivator.load_dict(d), "w2", view="layer")
    (lemma,) = proof.lemmas
    assert lemma.name == "sigmoid and binary cross-entropy" and lemma.check.passed
    # q = sigmoid(A @ w2) in one equation: δ_w2 = Aᵀ (δ_q ⊙ q(1 − q)), and the lemma cancels inside
    assert str(lemma.result) in ("transpose(A) @ (q/3 - y/3)", "transpose(A) @ ((q - y)/3)")
    assert str(proof.result) == "transpose(A) @ (delta_q*q*(1 - q))"


# --------------------------------------------------------- the public case ---

LAYER_EXPECTED = os.path.join(CASES, "layer", "expected.json")
LOCAL_LAYER_EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layer_expected.json")


def test_layer_expected_copy_is_current():
    """tests/layer_expected.json is the copy of ../shared/cases/layer/expected.json for clones without it."""
    if not os.path.isfile(LAYER_EXPECTED):
        pytest.skip("../shared/cases is not present in this clone")
    assert json.load(open(LOCAL_LAYER_EXPECTED)) == json.load(open(LAYER_EXPECTED)), \
        "tests/layer_expected.json is stale: copy ../shared/cases/layer/expected.json over it"


def test_two_layer_vector_matches_torch_through_the_cli(capsys):
    shared = os.path.isfile(LAYER_EXPECTED)         # else the shipped example of that name and the copy
    path = os.path.join(CASES, "layer", "two_layer_vector.yaml") if shared else "two_layer_vector"
    want = json.load(open(LAYER_EXPECTED if shared else LOCAL_LAYER_EXPECTED))["two_layer_vector"]
    rc, out, err = run(capsys, "derive", path, "--format", "json")      # a `shapes` definition: layers by default
    assert rc == 0, err
    objs = {o["wrt"]: o for o in json.loads(out)}
    for name, g in want["gradient"].items():
        assert objs[name]["verified"] is True and close(objs[name]["value"], g)
    assert objs["W1"]["result"] == "delta_z1 @ transpose(x)" and objs["b2"]["result"] == "delta_z2"
    kinds = [s["kind"] for s in objs["W1"]["steps"]]
    assert kinds[0] == "forward" and "lemma" in kinds and "recursion" in kinds and kinds[-1] == "result"
    rc, out, err = run(capsys, "eval", path, "--format", "json")
    got = json.loads(out)
    assert close(got["value"], want["value"])
    for field in ("gradient", "updated"):
        for name, g in want[field].items():
            assert close(got[field][name], g)
    # the scalar view of the same file: one derivation per entry, the same numbers
    rc, out, err = run(capsys, "eval", path, "--view", "scalar", "--format", "json")
    scalar = json.loads(out)
    assert close(scalar["gradient"]["W1_4_3"], want["gradient"]["W1"][3][2])


# ------------------------------------------------------ networks, both views ---

NETS = [("flat", "per_neuron", ("tanh", "sigmoid"), "mse"), ("layered", "shared", ("relu", "softmax"), "cross_entropy"),
        ("flat", "none", ("sigmoid", "sigmoid"), "bce"), ("layered", "per_neuron", ("softplus", "identity"), "half_sse"),
        ("flat", "shared", ("sigmoid", "tanh", "sigmoid"), "bce"), ("layered", "none", ("tanh", "softmax"),
                                                                    "cross_entropy")]


def _net(naming, bias, acts, loss, rng):
    sizes = [3, 4, 2, 3][:len(acts) + 1]
    net = {"inputs": sizes[0], "layers": [{"units": u, "activation": a} for u, a in zip(sizes[1:], acts)],
           "bias": bias, "naming": naming, "loss": loss}
    leaves = derivator.graph(derivator.load_dict({"network": net})).leaves
    at = {x: float(rng.uniform(0.1, 0.9) if x[0] in "xy" else rng.uniform(-1, 1)) for x in leaves}
    return derivator.load_dict({"network": net, "at": at, "lr": 0.1})


@pytest.mark.parametrize("spec", NETS, ids=lambda s: "-".join([s[0], s[1], *s[2], s[3]]))
def test_layer_view_equals_the_scalar_view_on_network_variants(spec):
    """Every naming, bias and loss, every activation: the layer derivations are verified (their checks include
    every entry against the scalar view) and eval gives the scalar view's numbers."""
    from derivator.cli import evaluate, evaluate_layer
    d = _net(*spec, np.random.default_rng(3))
    ders = api.derive_all(d, view="layer")
    assert [x.wrt for x in ders] == list(d.layer_wrt)
    assert all(x.verified for x in ders), [x.failures for x in ders]
    assert all("scalar view" in x.check.detail for x in ders)
    scalar, layer = evaluate(d, {}, None), evaluate_layer(d, {}, None)
    assert close(layer["value"], scalar["value"], 1e-12)
    naming = api.layer_workspace(d).lg.naming
    for name, g in layer["gradient"].items():
        arr = np.asarray(g)
        for idx in np.ndindex(*arr.shape):
            assert close(arr[idx], scalar["gradient"][naming.entry_name(name, idx)], 1e-12)


@pytest.mark.parametrize("name", [n for n in derivator.examples() if derivator.load(n).network is not None])
def test_every_shipped_network_in_both_views(name):
    from derivator.cli import evaluate, evaluate_layer
    d = derivator.load(name)
    ders = api.derive_all(d, view="layer")
    assert all(x.verified for x in ders), [x.failures for x in ders]
    scalar, layer = evaluate(d, {}, None), evaluate_layer(d, {}, None)
    naming = api.layer_workspace(d).lg.naming
    for n, g in layer["gradient"].items():
        arr = np.asarray(g)
        for idx in np.ndindex(*arr.shape):
            assert close(arr[idx], scalar["gradient"][naming.entry_name(n, idx)], 1e-12)


def test_a_scalar_entry_and_the_b1_rule(capsys):
    # two_outputs: 2-3-2, flat naming, per-neuron biases: w5 is W1[2, 0]; b1 is the layer's bias vector
    rc, out, err = run(capsys, "derive", "two_outputs", "--view", "layer", "--wrt", "w5", "--wrt", "b1",
                       "--format", "json")
    assert rc == 0, err
    w5, b1 = json.loads(out)
    assert w5["shape"] == [] and w5["result"] == "delta_z1[2]*x[0]" and w5["paths"][0][-2:] == ["W1", "w5"]
    assert b1["shape"] == [3] and b1["result"] == "delta_z1"
    scalar = derivator.compile(derivator.load("two_outputs"))(**derivator.load("two_outputs").at_dict)
    assert close(w5["value"], float(scalar.gradient["w5"]), 1e-12)
    assert close(b1["value"], [float(scalar.gradient[f"b{i}"]) for i in (1, 2, 3)], 1e-12)


# ---------------------------------------------------------------- defaults ---

def test_default_views(capsys):
    assert api.default_view(derivator.load("seed_network")) == "scalar"
    assert api.default_view(derivator.load("two_layer_vector")) == "layer"
    big = derivator.load_dict({"network": {"inputs": 8, "layers": [{"units": 6}, {"units": 2}]}})
    assert big.network.n_params == 68 and api.default_view(big) == "layer"
    assert api.default_view(derivator.load_dict({"network": {"inputs": 3, "layers": [{"units": 4},
                                                                                      {"units": 2}]}})) == "scalar"
    rc, out, err = run(capsys, "derive", "seed_network", "--wrt", "w5", "--format", "json")
    assert rc == 0 and "view" not in json.loads(out)
    assert isinstance(derivator.derive(derivator.load("two_layer_vector"), "W1"),
                      derivator.layer_derivation.LayerDerivation)


@pytest.mark.parametrize("argv, words", [
    (["derive", "seed_warmup", "--view", "layer"], ["layer view needs", "shapes"]),
    (["derive", "two_layer_vector", "--format", "md", "--wrt", "W9"], ["'W9' is not a name"]),
    (["derive", "two_layer_vector", "--wrt", "W3"], ["'W3' is not a name", "W1, x, b1"]),
    (["eval", "two_layer_vector", "--at", "x=[1, 2]"], ["shape [2]", "[3]"]),
    (["eval", "two_layer_vector", "--at", "x=[1, 2, oops]"], ["list"]),
    (["compile", "two_layer_vector", "--view", "layer", "--wrt", "W3"], ["'W3' is not a name"]),
    (["check", "two_layer_vector", "--wrt", "W1", "--claim", "x"], ["'W1' is a vector or matrix of the layer view",
                                                                    "W1_1_1, W1_1_2, W1_1_3, …"]),
    (["derive", "two_layer_vector", "--view", "scalar", "--wrt", "b2"], ["entries are b2_1, b2_2;", "--view layer"]),
])
def test_layer_view_usage_errors_are_exit_2(capsys, argv, words):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and not out and err.count("\n") == 1
    for w in words:
        assert w in err, (w, err)


def test_the_scalar_view_of_a_large_network_is_refused_with_a_hint(tmp_path, capsys):
    path = write(tmp_path, {"network": {"inputs": 784, "layers": [{"units": 128}, {"units": 10,
                                                                                  "activation": "softmax"}],
                                        "loss": "cross_entropy"}})
    rc, out, err = run(capsys, "derive", path, "--view", "scalar", "--wrt", "w1", "--format", "json")
    assert rc == 2 and "for the scalar view" in err and "--view layer" in err


def test_eval_takes_lists_on_the_command_line(capsys):
    rc, out, err = run(capsys, "eval", "two_layer_vector", "--at", "x=[0, 0, 0]", "--format", "json")
    assert rc == 0, err
    got = json.loads(out)
    assert got["values"]["x"] == [0, 0, 0] and got["gradient"]["W1"] == [[0.0] * 3] * 4


def test_a_failed_check_fails_the_command(monkeypatch, capsys):
    """A wrong rule (softmax's Jacobian without its sᵀδ term) is caught: exit 1, nothing written."""
    from derivator import layer_check, vjp
    from derivator.tensor import Softmax, ph

    def wrong(e, i, g, value):
        s = value if value is not None else e
        return vjp.smap(ph(0) * ph(1), (s, g), e.shape), vjp.RuleUse("softmax", (e.a.shape,))
    monkeypatch.setitem(vjp._VJP, Softmax, wrong)
    layer_check._check_rule.cache_clear()
    api.layer_workspace.cache_clear()
    try:
        rc, out, err = run(capsys, "derive", "two_layer_vector", "--wrt", "b2", "--format", "json")
    finally:
        layer_check._check_rule.cache_clear()
        api.layer_workspace.cache_clear()
    assert rc == 1 and not out and "softmax" in err and "NOT" in err


def test_layer_json_is_deterministic(capsys):
    outs = set()
    for _ in range(2):
        api.layer_workspace.cache_clear()
        rc, out, err = run(capsys, "derive", "two_layer_vector", "--wrt", "W1", "--format", "json")
        outs.add(out)
    assert rc == 0 and len(outs) == 1


def test_outside_the_domain_the_json_holds_null_not_nan(tmp_path, capsys):
    """At a point where log's argument is negative, L is not a number: its JSON value is null (never
    NaN, which is not JSON), the finite gradients are numbers, and no NumPy warning reaches stderr."""
    f = tmp_path / "dom.yaml"
    f.write_text("shapes: {x: [3], w: [3]}\nequations:\n  u: w * x\n  L: sum(log(u))\n"
                 "at: {x: [1, -2, 3], w: [1, 1, 1]}\n")
    rc, out, err = run(capsys, "derive", str(f), "--format", "json")

    def refuse(c):
        raise AssertionError(f"{c} in the JSON")
    data = json.loads(out, parse_constant=refuse)
    assert rc == 0 and err == ""
    assert data[0]["wrt"] == "w" and data[0]["value"] == [1.0, 1.0, 1.0]
    forward = {s["name"]: s["value"] for s in data[0]["steps"] if s["kind"] == "forward" and "value" in s}
    assert forward["u"] == [1.0, -2.0, 3.0] and forward["L"] is None


def test_paths_over_tensor_nodes(capsys):
    rc, out, err = run(capsys, "paths", "two_outputs", "--view", "layer", "--wrt", "W1", "--format", "json")
    assert rc == 0 and json.loads(out)["paths"] == [["L", "a2", "z2", "a1", "z1", "W1"]]
    rc, out, err = run(capsys, "paths", "two_outputs", "--wrt", "w1", "--format", "json")     # scalar by default
    assert rc == 0 and json.loads(out)["path_count"] == 2


def test_layer_derivations_of_every_network_size_stay_linear():
    """No unrolling of large layers: a 300-200-10 network's layer graph has 7 nodes and derives in one pass."""
    d = derivator.load_dict({"network": {"inputs": 300, "layers": [{"units": 200}, {"units": 10,
                                                                                    "activation": "softmax"}],
                                         "loss": "cross_entropy"}})
    proof = derivator.derive(d, "W1", view="layer")
    assert proof.verified and len(proof.graph.nodes) == 5
    assert "random direction through every entry" in proof.check.detail


@pytest.mark.parametrize("naming, bias", list(itertools.product(["flat", "layered"], ["per_neuron", "shared"])))
def test_network_at_given_as_lists(naming, bias):
    d = derivator.load_dict({"network": {"inputs": 2, "layers": [{"units": 2}, {"units": 1}], "naming": naming,
                                         "bias": bias},
                             "at": {"W1": [[0.1, 0.2], [0.3, 0.4]], "W2": [[0.5, 0.6]],
                                    "b1": [0.1, 0.2] if bias == "per_neuron" else 0.1,
                                    "b2": [0.3] if bias == "per_neuron" else 0.3, "x": [1, 2], "y": [0.5]}})
    out = derivator.compile(d)(**d.at_dict)
    g = derivator.derive(d, "W1", view="layer").value
    naming_map = api.layer_workspace(d).lg.naming
    assert close(g, [[float(out.gradient[naming_map.entry_name("W1", (i, j))]) for j in range(2)]
                     for i in range(2)], 1e-12)


# ----------------------------------------------------- generated definitions ---

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LEAVES = {"a": (), "u": (3,), "v": (3,), "w": (2,), "M": (2, 3), "N": (3, 2)}
FUNCS = ["tanh", "sigmoid", "sin", "softplus"]


@st.composite
def expr_of(draw, shape, depth=0):
    """A random expression of the given shape over LEAVES, well shaped by construction."""
    leaves = [n for n, s in LEAVES.items() if s == shape]
    if depth >= 3 or (depth and draw(st.integers(0, 3)) == 0):
        if leaves:
            return draw(st.sampled_from(leaves))
        if shape == (2, 3):
            return "transpose(N)"
    sub = lambda s: draw(expr_of(s, depth + 1))  # noqa: E731
    choices = ["f", "add", "mul", "scale"]
    if shape == ():
        choices = ["sum", "mean", "dot", "sum", "dot", "f", "mul"]
    elif shape == (3,):
        choices += ["tm", "vm", "softmax"]
    elif shape == (2,):
        choices += ["mv"]
    else:
        choices += ["outer"]
    kind = draw(st.sampled_from(choices))
    if kind == "f":
        return f"{draw(st.sampled_from(FUNCS))}({sub(shape)})"
    if kind == "sum":
        return f"sum({sub(draw(st.sampled_from([(3,), (2, 3)])))})"
    template, shapes = TEMPLATES[kind]
    return template.format(*[sub(shape if s is None else s) for s in shapes])


# kind -> (text, the shapes of its operands; None: the shape asked for)
TEMPLATES = {
    "add": ("({} - {})", (None, None)), "mul": ("({} * {})", (None, None)), "scale": ("(a*{} + 0.5)", (None,)),
    "mean": ("mean({})", ((2,),)), "dot": ("({} @ {})", ((3,), (3,))), "tm": ("(transpose(M) @ {})", ((2,),)),
    "vm": ("({} @ M)", ((2,),)), "softmax": ("softmax({})", ((3,),)), "mv": ("(M @ {})", ((3,),)),
    "outer": ("({} @ transpose({}))", ((2,), (3,))),
}


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(expr_of(()), min_size=1, max_size=2))
def test_generated_definitions_agree_with_the_scalar_view(exprs):
    """Random vector and matrix expressions: every layer derivation is verified, and eval in the layer view
    gives the scalar view's gradient (its own graph, unrolled; its own compiled code)."""
    from derivator.cli import evaluate, evaluate_layer
    rng = np.random.default_rng(len("".join(exprs)))
    eqs = {f"t{i}": e for i, e in enumerate(exprs)}
    eqs["L"] = " + ".join(eqs)
    text = " ".join(eqs.values())
    used = [n for n in LEAVES if re.search(rf"\b{n}\b", text)]
    at = {n: rand(rng, *LEAVES[n], lo=-0.8, hi=0.8) if LEAVES[n] else 0.3 for n in used}
    d = derivator.load_dict({"shapes": {k: list(s) for k, s in LEAVES.items() if k in used}, "equations": eqs,
                             "at": at})
    ders = api.derive_all(d, view="layer")
    assert all(x.verified for x in ders), [(x.wrt, x.failures) for x in ders]
    layer, scalar = evaluate_layer(d, {}, None), evaluate(d, {}, None)
    assert close(layer["value"], scalar["value"])
    naming = api.layer_workspace(d).lg.naming
    for name, g in layer["gradient"].items():
        arr = np.asarray(g)
        for idx in np.ndindex(*arr.shape):
            assert close(arr[idx], scalar["gradient"][naming.entry_name(name, idx)]), (name, idx, eqs)


def test_layer_json_is_the_same_in_every_process():
    """No set order or hash on the way out: byte-identical JSON under different hash seeds."""
    import subprocess
    import sys
    outs = set()
    for seed in ("1", "2"):
        p = subprocess.run([sys.executable, "-m", "derivator", "derive", "two_layer_vector", "--wrt", "W1",
                            "--format", "json"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed})
        assert p.returncode == 0, p.stderr
        outs.add(p.stdout)
    assert len(outs) == 1
