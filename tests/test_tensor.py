"""The tensor IR and the `shapes` front end: shapes inferred per node, mismatches as exit 2, printers."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp

import derivator
from derivator.cli import main
from derivator.layer_graph import layer_graph, point
from derivator.layer_network import entry_name, entry_of, layer_leaves, scalar_wrt
from derivator.tensor import (MatMul, Outer, Softmax, Sum, Transpose, Var, build, evaluate, parse, to_latex, to_str,
                              unroll)

SHAPES = {"x": (3,), "W1": (4, 3), "b1": (4,), "W2": (2, 4), "y": (2,), "z1": (4,), "u": (3,), "c": ()}


def b(text):
    return build(parse(text), SHAPES.__getitem__)


@pytest.mark.parametrize("text, shape, printed", [
    ("W1 @ x + b1", (4,), "W1 @ x + b1"),
    ("tanh(z1)", (4,), "tanh(z1)"),
    ("-sum(y * log(y))", (), "-sum(y*log(y))"),
    ("u @ transpose(x)", (3, 3), "u @ transpose(x)"),
    ("transpose(x) @ u", (), "x @ u"),
    ("x @ u", (), "x @ u"),
    ("z1 @ W1", (3,), "z1 @ W1"),
    ("transpose(W1) @ z1", (3,), "transpose(W1) @ z1"),
    ("W2 @ W1", (2, 3), "W2 @ W1"),
    ("2*W1 @ x", (4,), "(2*W1) @ x"),
    ("mean((y - softmax(y))**2)", (), "mean((-softmax(y) + y)**2)"),
    ("c*x + 1", (3,), "c*x + 1"),
    ("max(x, u, 0)", (3,), "Max2(Max2(x, u), 0)"),
    ("sum(W1)", (), "sum(W1)"),
    ("sum(c)", (), "c"),
])
def test_shapes_are_inferred(text, shape, printed):
    t = b(text)
    assert t.shape == shape
    assert to_str(t) == printed


@pytest.mark.parametrize("text, words", [
    ("W1 @ u + b1 + x", ["'+'", "[4]", "[3]"]),
    ("W1 @ b1", ["[4, 3]", "[4]", "3 columns", "4 entries"]),
    ("x @ c", ["for a scalar factor write *"]),
    ("transpose(x)", ["transpose of a vector", "outer product"]),
    ("softmax(W1)", ["softmax needs a vector", "[4, 3]"]),
    ("transpose(c)", ["needs a matrix"]),
    ("x * y", ["[3]", "[2]"]),
    ("max(x, y)", ["max(…)", "[3]", "[2]"]),
])
def test_shape_mismatches_name_both_shapes(text, words):
    with pytest.raises(derivator.ExpressionError) as e:
        b(text)
    for w in words:
        assert w in str(e.value)


def test_the_ir_is_frozen_and_hashable():
    t = b("W1 @ x + b1")
    assert t == b("W1 @ x + b1") and hash(t) == hash(b("W1 @ x + b1"))
    with pytest.raises(Exception):
        t.shape = (1,)
    assert MatMul(Var("W1", (4, 3)), Var("x", (3,))).shape == (4,)
    assert Outer(Var("a", (2,)), Var("x", (3,))).shape == (2, 3)
    assert Transpose(Var("W1", (4, 3))).shape == (3, 4)
    assert Sum(Var("W1", (4, 3))).shape == ()
    assert Softmax(Var("x", (3,))).shape == (3,)


def test_latex_is_matrix_notation():
    disp = {"W1": "W^{(1)}", "b1": "b^{(1)}", "delta_z1": r"\delta^{(1)}"}
    assert to_latex(b("W1 @ x + b1"), disp) in ("W^{(1)} x + b^{(1)}", "b^{(1)} + W^{(1)} x")
    assert to_latex(Outer(Var("z1", (4,), adjoint=True), Var("x", (3,))), disp) == r"\delta^{(1)} x^{\top}"
    assert to_latex(MatMul(Transpose(Var("W1", (4, 3))), Var("z1", (4,))), disp) == r"W^{(1)\top} z_1"
    assert to_latex(MatMul(Transpose(Var("W2", (4, 3))), Var("z1", (4,))), disp) == r"W_2^{\top} z_1"
    # sums as 1ᵀv, no parentheses twice or around a power, a negation without parentheses
    assert to_latex(b("-sum(y * log(y))"), disp) == r"-\mathbf{1}^{\top} (y \odot \log(y))"
    assert to_latex(b("mean((x - u)**2)"), disp) == r"\frac{1}{3} \, \mathbf{1}^{\top} (x - u)^2"
    assert to_latex(b("2*x - 2*u"), disp) == r"2 (x - u)"
    assert r"\odot" in to_latex(b("y * log(y)"), disp)


def test_numpy_semantics_and_unrolling_agree():
    rng = np.random.default_rng(1)
    vals = {n: rng.uniform(-1, 1, s) for n, s in SHAPES.items()}
    syms = {}
    for n, s in SHAPES.items():
        arr = np.empty(s, dtype=object)
        for idx in np.ndindex(*s):
            arr[idx] = sp.Symbol(f"{n}{idx}")
        syms[n] = arr
    for text in ["W1 @ x + b1", "u @ transpose(x)", "softmax(z1) * z1", "transpose(W1) @ z1", "mean(W1**2)",
                 "z1 @ W1", "sum(tanh(W1 @ u) / 2)"]:
        t = b(text)
        got = evaluate(t, vals)
        sym = unroll(t, syms)
        sub = {syms[n][idx]: vals[n][idx] for n, s in SHAPES.items() for idx in np.ndindex(*s)}
        want = np.vectorize(lambda e: float(e.xreplace(sub)), otypes=[float])(sym)
        assert np.allclose(got, want, rtol=1e-12, atol=1e-12), text


# ------------------------------------------------------------ definitions ---

TWO_LAYER = """title: t
shapes: {x: [3], W1: [4, 3], b1: [4], W2: [2, 4], b2: [2], y: [2]}
equations:
  z1: W1 @ x + b1
  a1: tanh(z1)
  z2: W2 @ a1 + b2
  p: softmax(z2)
  L: -sum(y * log(p))
"""


def test_a_shapes_definition_loads_with_every_shape():
    d = derivator.loads(TWO_LAYER)
    lg = layer_graph(d)
    assert dict(lg.shapes) == {"W1": (4, 3), "x": (3,), "b1": (4,), "W2": (2, 4), "a1": (4,), "b2": (2,),
                               "y": (2,), "z1": (4,), "z2": (2,), "p": (2,), "L": ()}
    assert d.layer_wrt == ("W1", "x", "b1", "W2", "b2", "y")
    assert d.has_layer_view
    # the scalar view: one equation per entry, wrt every entry
    assert [e.name for e in d.equations][:5] == ["z1_1", "z1_2", "z1_3", "z1_4", "a1_1"]
    assert len(d.wrt) == 12 + 3 + 4 + 8 + 2 + 2


def test_at_takes_lists_and_lists_of_rows():
    d = derivator.loads(TWO_LAYER + "at: {x: [1, 2, 3], W1: [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]}\n")
    assert d.at_dict["x_2"] == 2.0 and d.at_dict["W1_3_2"] == 8.0
    values, missing = point(layer_graph(d), d.at_dict)
    assert values["W1"].tolist()[1] == [4, 5, 6] and missing == ["b1", "W2", "b2", "y"]


def _run(tmp_path, capsys, text, *args):
    path = tmp_path / "def.yaml"
    path.write_text(text)
    rc = main([args[0], str(path), *args[1:]])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("text, line, words", [
    (TWO_LAYER.replace("W2 @ a1 + b2", "W2 @ a1 + b2 + x"), 6, ["def.yaml:6:", "equation for z2", "[2]", "[3]"]),
    (TWO_LAYER.replace("W1 @ x + b1", "W1 @ b1 + x"), 4, ["def.yaml:4:", "equation for z1", "[4, 3]", "[4]"]),
    (TWO_LAYER.replace("-sum(y * log(p))", "y * log(p)"), 8, ["output L has shape [2]", "scalar"]),
    (TWO_LAYER.replace("z1: W1 @ x + b1", "x_1: W1 @ x + b1").replace("tanh(z1)", "tanh(x_1)"), 4,
     ["'x_1'", "entry of x"]),
    (TWO_LAYER.replace("a1: tanh(z1)", "delta_a: tanh(z1)").replace("@ a1", "@ delta_a"), 5, ["delta_"]),
    (TWO_LAYER.replace("y: [2]}", "y: [2], z1: [4]}"), 2, ["computed by an equation"]),
    (TWO_LAYER.replace("y: [2]}", "y: [2, 0]}"), 2, ["at least 1"]),
    (TWO_LAYER.replace("y: [2]}", "yy: [2]}"), 2, ["'yy'", "did you mean 'y'"]),
    (TWO_LAYER + "at: {x: [1, 2]}\n", 9, ["x is a vector of 3", "2 entries"]),
    (TWO_LAYER + "at: {W1: [[1, 2, 3], [1, 2], [1, 2, 3], [1, 2, 3]]}\n", 9, ["row 2 of W1", "3 numbers"]),
    (TWO_LAYER + "at: {W1: 3}\n", 9, ["4×3 matrix", "list of rows"]),
    (TWO_LAYER + "at: {x: [1, .nan, 3]}\n", 9, ["finite"]),
    (TWO_LAYER + "at: {z1: [1, 2, 3, 4]}\n", 9, ["computed by an equation"]),
])
def test_bad_shapes_definitions_are_exit_2_with_the_line(tmp_path, capsys, text, line, words):
    rc, out, err = _run(tmp_path, capsys, text, "eval")
    assert rc == 2 and not out and err.count("\n") == 1 and "Traceback" not in err
    assert f"def.yaml:{line}" in err, err
    for w in words:
        assert w in err, (w, err)


# ------------------------------------------------------- network naming ---

@pytest.mark.parametrize("naming, bias, acts", list(itertools.product(
    ["flat", "layered"], ["per_neuron", "shared", "none"],
    [("tanh", "sigmoid"), ("relu", "softmax"), ("sigmoid", "tanh", "identity")])))
def test_network_scalar_names_map_to_layer_entries(naming, bias, acts):
    """Every scalar name of the network's expansion is the right entry: w·src in z_j is W[j, k] · a[k]."""
    sizes = [3, 4, 2, 3][:len(acts) + 1]
    d = derivator.load_dict({"network": {
        "inputs": sizes[0], "layers": [{"units": u, "activation": a} for u, a in zip(sizes[1:], acts)],
        "bias": bias, "naming": naming, "loss": "cross_entropy" if acts[-1] == "softmax" else "mse"}})
    net = d.network
    n_layers = len(acts)
    for e in d.equations:
        en = entry_of(net, e.name)
        if e.name in ("L", "s", f"s_{n_layers}"):
            assert en is None
            continue
        assert en is not None and entry_name(net, *en) == e.name
        if en[0].startswith("z"):
            layer, j = int(en[0][1:]), en[1][0]
            for term in sp.Add.make_args(e.expr):
                if term.is_Symbol:
                    assert entry_of(net, term.name) in ((f"b{layer}", (j,)), (f"b{layer}", ()))
                    continue
                w, src = sorted(term.args, key=lambda s: not entry_of(net, s.name)[0].startswith("W"))
                we, se = entry_of(net, w.name), entry_of(net, src.name)
                assert we == (f"W{layer}", (j, se[1][0]))
                assert se[0] == ("x" if layer == 1 else f"a{layer - 1}")
    leaves = derivator.graph(d).leaves
    assert all(entry_name(net, *entry_of(net, x)) == x for x in leaves)
    assert len(leaves) == sum(max(1, math.prod(s)) for _, s in layer_leaves(net))
    if not (naming == "flat" and bias == "per_neuron"):      # there b1 is a scalar name: the scalar view keeps it
        assert list(d.wrt) == scalar_wrt(net, [n for n, _ in layer_leaves(net) if n[0] == "W"]
                                         + [n for n, _ in layer_leaves(net) if n[0] == "b"])


def test_network_at_in_either_naming_and_the_b1_rule():
    base = {"network": {"inputs": 2, "layers": [{"units": 2}, {"units": 1}], "naming": "flat"}}
    d = derivator.load_dict({**base, "at": {"W1": [[1, 2], [3, 4]], "b1": 0.5, "w5": 7}})
    at = d.at_dict
    assert (at["w1"], at["w2"], at["w3"], at["w4"], at["w5"]) == (1, 2, 3, 4, 7)
    assert at["b1"] == 0.5                   # a number: the scalar leaf b1 (first neuron's bias)
    d = derivator.load_dict({**base, "at": {"b1": [0.5, 0.25]}})
    assert d.at_dict == {"b1": 0.5, "b2": 0.25}   # a list: the layer's vector
    with pytest.raises(derivator.DefinitionError, match="w1 twice"):
        derivator.load_dict({**base, "at": {"W1": [[1, 2], [3, 4]], "w1": 1}})


def test_a_big_network_is_never_expanded_for_the_layer_view():
    d = derivator.load_dict({"network": {"inputs": 784, "layers": [{"units": 128}, {"units": 10, "activation":
                                                                                    "softmax"}],
                                         "loss": "cross_entropy"}})
    assert d.layer_wrt == ("W1", "b1", "W2", "b2") and d.network.n_params == 101_770
    lg = layer_graph(d)
    assert lg.shapes["W1"] == (128, 784) and [n.name for n in lg.nodes] == ["z1", "a1", "z2", "a2", "L"]
    assert "101,770" not in repr(d) and "101770 parameters" in repr(d)
    with pytest.raises(derivator.DefinitionError, match="for the scalar view"):
        len(d.equations)
