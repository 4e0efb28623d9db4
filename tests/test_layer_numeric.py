"""layer numeric stage: the layer view's compiled code against torch autograd, per sample and over batches.

Every gradient is compared with torch (float64) written independently of derivator's IR: networks
of every activation, loss and bias kind, the shipped `shapes` example, and `shapes` definitions
that exercise each printing rule with and without a batch axis on each operand.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import derivator
from derivator import api
from derivator.cli import main
from derivator.errors import UsageError, VerificationError

torch = pytest.importorskip("torch")
torch.set_default_dtype(torch.float64)
F = torch.nn.functional

LAYER_CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "layer"
RTOL = 1e-10


def two_layer_vector():
    """The `shapes` example: ../shared/cases/layer/two_layer_vector.yaml, or the shipped copy."""
    f = LAYER_CASES / "two_layer_vector.yaml"
    return derivator.load(str(f)) if f.is_file() else derivator.load("two_layer_vector")


def close(mine, ref, rtol=RTOL):
    """Relative to the largest entry of the reference array (a gradient that is 0 up to rounding stays 0)."""
    mine, ref = np.asarray(mine, dtype=float), np.asarray(ref, dtype=float)
    assert mine.shape == ref.shape
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1.0)
    assert float(np.max(np.abs(mine - ref))) <= rtol * scale if ref.size else True, (mine, ref)


# ---------------------------------------------------------- networks vs torch ---

ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "softplus": F.softplus,
       "identity": lambda z: z, "softmax": lambda z: torch.softmax(z, -1)}


def torch_loss(kind, a, y):
    if kind == "mse":
        return ((y - a) ** 2).mean(-1)
    if kind == "half_sse":
        return (0.5 * (y - a) ** 2).sum(-1)
    if kind == "bce":
        return -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).mean(-1)
    return -(y * torch.log(a)).sum(-1)


def net(sizes, acts, bias, loss):
    return derivator.load_dict({"network": {"inputs": sizes[0], "layers": [
        {"units": u, "activation": a} for u, a in zip(sizes[1:], acts)], "bias": bias, "loss": loss}})


def net_data(grad, sizes, loss, n, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in grad.shapes.items() if k not in ("x", "y")}
    X = rng.normal(size=(n, sizes[0]))
    Y = rng.uniform(0.05, 0.95, size=(n, sizes[-1]))
    if loss == "cross_entropy":
        Y /= Y.sum(axis=1, keepdims=True)
    return params, X, Y


def torch_net(params, X, Y, acts, bias, loss):
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a = torch.tensor(X)
    for layer, act in enumerate(acts, start=1):
        z = a @ tp[f"W{layer}"].T
        if bias != "none":
            z = z + tp[f"b{layer}"]
        a = ACT[act](z)
    per_sample = torch_loss(loss, a, torch.tensor(Y))
    grads = torch.autograd.grad(per_sample.sum(), list(tp.values()))
    return per_sample.detach().numpy(), dict(zip(tp, (g.numpy() for g in grads)))


NETWORKS = [((4, 5, 3), ("sigmoid", "softmax"), "cross_entropy"), ((3, 4, 2), ("tanh", "sigmoid"), "bce"),
            ((3, 4, 2), ("relu", "identity"), "mse"), ((3, 4, 2), ("softplus", "tanh"), "half_sse"),
            ((3, 4, 3), ("identity", "softmax"), "mse"), ((3, 4, 3, 2), ("sigmoid", "relu", "sigmoid"), "bce")]


@pytest.mark.parametrize("bias", ["per_neuron", "shared", "none"])
@pytest.mark.parametrize("sizes,acts,loss", NETWORKS, ids=["-".join(a) + "-" + lo for _, a, lo in NETWORKS])
def test_network_against_torch(sizes, acts, loss, bias):
    grad = derivator.compile(net(sizes, acts, bias, loss), view="layer")
    assert grad.batch == ("x", "y")
    params, X, Y = net_data(grad, sizes, loss, n=6)
    ref_value, ref = torch_net(params, X, Y, acts, bias, loss)
    tot = grad.sum(x=X, y=Y, **params)
    mean = grad.mean(x=X, y=Y, **params)
    per = grad(x=X, y=Y, **params)
    assert tot.count == mean.count == 6
    close(tot.value, ref_value.sum())
    close(per.value, ref_value)
    for k, r in ref.items():
        close(tot.gradient[k], r)
        close(mean.gradient[k], r / 6)
        assert per.gradient[k].shape == (6,) + params[k].shape
        close(per.gradient[k].sum(axis=0), r)
    one = grad(x=X[2], y=Y[2], **params)           # one sample: no batch axis anywhere
    assert np.ndim(one.value) == 0 and one.value == pytest.approx(per.value[2], rel=1e-12)
    for k in ref:
        assert one.gradient[k].shape == params[k].shape
        close(one.gradient[k], per.gradient[k][2], rtol=1e-12)
    for name, v in one.values.items():
        close(v, per.values[name][2], rtol=1e-12)
    for name, v in one.adjoints.items():
        close(v, per.adjoints[name][2], rtol=1e-12)


# ----------------------------------------------- the shipped `shapes` example ---

def test_two_layer_vector_matches_expected_and_torch():
    d = two_layer_vector()
    grad = derivator.compile(d, view="layer")
    at = d.at_dict
    from derivator.layer_graph import point
    leaves, missing = point(api.layer_workspace(d).lg, at)
    assert not missing
    out = grad(**leaves)
    expected_file = LAYER_CASES / "expected.json"
    if expected_file.is_file():
        expected = json.loads(expected_file.read_text())["two_layer_vector"]
        assert out.value == pytest.approx(expected["value"], rel=1e-12)
        for k, v in expected["gradient"].items():
            close(out.gradient[k], v, rtol=1e-12)
    # a batch, against torch
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(5, 3)), rng.dirichlet([1.0, 1.0], size=5)
    params = {k: leaves[k] for k in ("W1", "b1", "W2", "b2")}
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a1 = torch.tanh(torch.tensor(X) @ tp["W1"].T + tp["b1"])
    z2 = a1 @ tp["W2"].T + tp["b2"]
    loss = -(torch.tensor(Y) * torch.log(torch.softmax(z2, -1))).sum(-1)
    ref = torch.autograd.grad(loss.mean(), list(tp.values()))
    mean = grad.mean(x=X, y=Y, **params)
    assert mean.value == pytest.approx(loss.mean().item(), rel=1e-12)
    for k, r in zip(tp, ref):
        close(mean.gradient[k], r.numpy())


def test_eval_of_the_layer_view_uses_the_stable_code(capsys):
    """`eval --view layer` at a saturated softmax: finite loss and gradient (the interpreter gave nan)."""
    d = two_layer_vector()
    f = LAYER_CASES / "two_layer_vector.yaml"
    src = str(f) if f.is_file() else "two_layer_vector"
    capsys.readouterr()
    assert main(["eval", src, "--view", "layer", "--format", "json", "--at", "b2=[1000, -1000]",
                 "--at", "y=[0, 1]"]) == 0
    r = json.loads(capsys.readouterr().out)
    z2 = np.array(r["values"]["z2"])
    assert z2[0] - z2[1] > 1500
    assert r["value"] == pytest.approx(z2[0] - z2[1], rel=1e-12)     # -log p2 = z1 - z2 + log(1 + e^(z2 - z1))
    assert r["gradient"]["b2"] == [1.0, -1.0]
    assert d.output == r["output"]


# ------------------------------------------ `shapes` definitions, every rule ---

def per_sample_torch(fn, data, params, n):
    """Σ over samples of torch fn(sample) and its gradient: a plain loop, nothing batched in torch."""
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    total = 0
    values = []
    for i in range(n):
        sample = {k: torch.tensor(v[i]) if batched else torch.tensor(v) for k, (v, batched) in data.items()}
        value = fn({**sample, **tp})
        values.append(value.item())
        total = total + value
    grads = torch.autograd.grad(total, list(tp.values()), allow_unused=True)
    return np.array(values), {k: (g.numpy() if g is not None else np.zeros_like(params[k]))
                              for k, g in zip(tp, grads)}


SHAPES = {
    # least squares with a ridge term; lam is data (not in wrt), given once for the whole batch
    "least_squares": ({"shapes": {"X": [5, 3], "w": [3], "y": [5], "lam": []},
                       "equations": {"r": "X @ w - y", "L": "sum(r**2) + lam*sum(w**2)"}, "wrt": ["w"]},
                      lambda t: ((t["X"] @ t["w"] - t["y"]) ** 2).sum() + t["lam"] * (t["w"] ** 2).sum(),
                      {"X": True, "y": True, "lam": False}),
    # matrix factorisation: a batch of matrices R
    "factorisation": ({"shapes": {"U": [4, 2], "V": [3, 2], "R": [4, 3]},
                       "equations": {"E": "U @ transpose(V) - R", "L": "mean(E**2)"}, "wrt": ["U", "V"]},
                      lambda t: ((t["U"] @ t["V"].T - t["R"]) ** 2).mean(), {"R": True}),
    # vector @ matrix, a dot product of two batched vectors, a scalar parameter broadcast
    "vm_dot": ({"shapes": {"x": [3], "W": [3, 4], "s": []},
                "equations": {"h": "x @ W", "L": "tanh(h) @ tanh(h) + mean(h)*s + sum(s*h)"}, "wrt": ["W", "s"]},
               lambda t: (torch.tanh(t["x"] @ t["W"]) ** 2).sum() + (t["x"] @ t["W"]).mean() * t["s"]
               + (t["s"] * (t["x"] @ t["W"])).sum(), {"x": True}),
    # an outer product with a batched vector, its transpose batched, a matrix·vector with the matrix batched
    "outer_transpose": ({"shapes": {"u": [2], "x": [3], "v": [2], "c": [3]},
                         "equations": {"M": "u @ transpose(x)", "q": "transpose(M) @ v",
                                       "L": "sum(softplus(q) * c) + sum(u * v)"}, "wrt": ["u", "v", "c"]},
                        lambda t: (F.softplus(torch.outer(t["u"], t["x"]).T @ t["v"]) * t["c"]).sum()
                        + (t["u"] * t["v"]).sum(), {"x": True}),
    # both operands batched: matrix·vector, vector·matrix
    "both_batched": ({"shapes": {"A": [2, 3], "b": [3], "B": [3, 2], "w": [2], "k": []},
                      "equations": {"r": "A @ b", "q": "b @ B", "L": "sum(w * r**2) + k*sum(sigmoid(q))"},
                      "wrt": ["w", "k"]},
                     lambda t: (t["w"] * (t["A"] @ t["b"]) ** 2).sum() + t["k"] * torch.sigmoid(t["b"] @ t["B"]).sum(),
                     {"A": True, "b": True, "B": True}),
    # a node that is a view (a transpose) of an array that dies before it; a node the same for every sample
    "transposed_node": ({"shapes": {"A": [3, 2], "x": [3], "c": []},
                         "equations": {"B": "transpose(exp(A))", "u": "B @ x", "L": "sum(tanh(u)) + c*sum(B)"},
                         "wrt": ["A", "c"]},
                        lambda t: torch.tanh(torch.exp(t["A"]).T @ t["x"]).sum() + t["c"] * torch.exp(t["A"]).sum(),
                        {"x": True}),
    # softmax with mse (no lemma: the softmax Jacobian), a scalar per sample against vectors
    "softmax_mse": ({"shapes": {"W": [3, 4], "x": [4], "y": [3], "t": []},
                     "equations": {"p": "softmax(W @ x)", "L": "mean((y - p)**2) * t + relu(t - 1)"}, "wrt": ["W"]},
                    lambda t: ((t["y"] - torch.softmax(t["W"] @ t["x"], -1)) ** 2).mean() * t["t"] + torch.relu(t["t"] - 1),
                    {"x": True, "y": True, "t": True}),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_definitions_against_torch(name):
    spec, fn, batched = SHAPES[name]
    d = derivator.load_dict(dict(spec, output="L"))
    grad = derivator.compile(d, view="layer")
    assert set(grad.batch) == set(batched)
    rng = np.random.default_rng(7)
    n = 4
    params = {w: rng.normal(size=grad.shapes[w]) for w in grad.wrt}
    data = {x: (rng.normal(size=((n,) if b else ()) + grad.shapes[x]) + (2.0 if x == "t" else 0.0), b)
            for x, b in batched.items()}
    ref_values, ref = per_sample_torch(fn, data, params, n)
    args = {**params, **{k: v for k, (v, _) in data.items()}}
    tot = grad.sum(**args)
    per = grad(**args)
    close(tot.value, ref_values.sum())
    close(per.value, ref_values)
    for w in grad.wrt:
        close(tot.gradient[w], ref[w])
        close(per.gradient[w].sum(axis=0), ref[w])
    for i in range(n):              # the single-sample code gives the batch's sample i
        one = grad(**params, **{k: (v[i] if b else v) for k, (v, b) in data.items()})
        for w in grad.wrt:
            close(one.gradient[w], per.gradient[w][i], rtol=1e-12)


def test_a_batch_of_parameters_compiles_its_own_code():
    """W given with a batch axis (one W per sample): the code for that batch, same numbers as a loop."""
    spec, fn, _ = SHAPES["vm_dot"]
    grad = derivator.compile(derivator.load_dict(dict(spec, output="L")), view="layer")
    rng = np.random.default_rng(2)
    X, W, s = rng.normal(size=(3, 3)), rng.normal(size=(3, 3, 4)), 0.7
    out = grad(x=X, W=W, s=s)
    tot = grad.sum(x=X, W=W, s=s)
    assert len(grad._modules) == 2
    for i in range(3):
        one = grad(x=X[i], W=W[i], s=s)
        close(out.gradient["W"][i], one.gradient["W"], rtol=1e-12)
    close(tot.gradient["W"], sum(grad(x=X[i], W=W[i], s=s).gradient["W"] for i in range(3)), rtol=1e-12)


def test_sum_is_the_sum_of_blocks(monkeypatch):
    """Totals go through the batch in blocks of ROWS samples; the blocks add up to the whole."""
    grad = derivator.compile(net((3, 4, 2), ("tanh", "sigmoid"), "per_neuron", "bce"), view="layer")
    params, X, Y = net_data(grad, (3, 4, 2), "bce", n=50, seed=4)
    module = next(iter(grad._modules.values()))
    whole = grad.sum(x=X, y=Y, **params)
    monkeypatch.setitem(module, "ROWS", 8)
    blocks = grad.sum(x=X, y=Y, **params)
    assert blocks.count == whole.count == 50
    assert blocks.value == pytest.approx(whole.value, rel=1e-13)
    for k, v in whole.gradient.items():
        close(blocks.gradient[k], v, rtol=1e-13)


def test_entries_and_nodes_as_wrt():
    """A scalar entry (w5 is W1[1, 1] of a 3-4-2 net) and a node (z1: its δ) as wrt."""
    d = net((3, 4, 2), ("sigmoid", "sigmoid"), "per_neuron", "mse")
    grad = derivator.compile(d, wrt=["w5", "W1", "z1"], view="layer")
    params, X, Y = net_data(grad, (3, 4, 2), "mse", n=3)
    out = grad(x=X, y=Y, **params)
    np.testing.assert_array_equal(out.gradient["w5"], out.gradient["W1"][:, 1, 1])
    np.testing.assert_array_equal(out.gradient["z1"], out.adjoints["z1"])
    tot = grad.sum(x=X, y=Y, **params)
    assert tot.gradient["w5"].shape == () and tot.gradient["w5"] == pytest.approx(tot.gradient["W1"][1, 1])


# -------------------------------------------------------- floating point ---

def test_saturated_outputs_stay_finite_without_warnings():
    """Softmax + cross-entropy and sigmoid + binary cross-entropy at pre-activations of ±1000."""
    params = {"W1": np.eye(2), "b1": np.zeros(2), "W2": np.eye(2), "b2": np.zeros(2)}
    X = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])       # z2 = x
    Y = np.array([[0.0, 1.0], [0.0, 1.0]])
    for acts, loss, value, b2 in ((("identity", "softmax"), "cross_entropy", 2000.0, [1.0, -1.0]),
                                  (("identity", "sigmoid"), "bce", 1000.0, [0.5, -0.5])):
        grad = derivator.compile(net((2, 2, 2), acts, "per_neuron", loss), view="layer")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tot = grad.sum(x=X, y=Y, **params)
            one = grad(x=X[0], y=Y[0], **params)
        assert tot.value == pytest.approx(value, rel=1e-12)
        assert one.value == pytest.approx(value, rel=1e-12)
        close(tot.gradient["b2"], b2)
        assert all(np.all(np.isfinite(g)) for g in tot.gradient.values())


# ------------------------------------------------------------ bad inputs ---

@pytest.fixture(scope="module")
def small():
    grad = derivator.compile(net((3, 4, 2), ("sigmoid", "softmax"), "per_neuron", "cross_entropy"), view="layer")
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s) for k, s in grad.shapes.items() if k not in ("x", "y")}
    return grad, params


def test_missing_and_unknown_leaves(small):
    grad, params = small
    with pytest.raises(UsageError, match="no value for y"):
        grad(x=np.zeros(3), **params)
    with pytest.raises(UsageError, match="not a leaf of the graph: W3"):
        grad(x=np.zeros(3), y=np.ones(2), W3=1.0, **params)


@pytest.mark.parametrize("leaf,value,message", [
    ("x", np.zeros(4), r"input x has shape \[4\]; it must be \[3\], or \[N, 3\] for N samples"),
    ("x", np.zeros((2, 2, 3)), r"input x has shape \[2, 2, 3\]"),
    ("W1", np.zeros((3, 4)), r"input W1 has shape \[3, 4\]; it must be \[4, 3\] \(shapes: W1 \[4, 3\], x \[3\]"),
    ("b1", np.zeros((2, 5)), r"input b1 has shape \[2, 5\]; it must be \[4\] \("),
    ("b1", np.zeros((5, 4)), r"input b1 is a batch of 5 samples, but x of 2"),
    ("x", np.array([[0.0, 1.0, 2.0], [0.0, 1.0, np.nan]]), r"input x holds NaN or an infinite value \(first at index \(1, 2\)\)"),
    ("W2", np.full((2, 4), np.inf), r"input W2 holds NaN or an infinite value \(first at index \(0, 0\)\)"),
    ("x", np.array([1 + 2j, 0, 0]), r"input x holds complex128 values"),
    ("x", np.array([None, 1, 2], dtype=object), r"input x holds object values"),
    ("y", ["a", "b"], r"input y holds <U1 values"),
])
def test_bad_inputs_are_usage_errors(small, leaf, value, message):
    grad, params = small
    args = {"x": np.zeros((2, 3)), "y": np.array([[1.0, 0.0], [0.0, 1.0]]), **params, leaf: value}
    with pytest.raises(UsageError, match=message):
        grad(**args)
    if "NaN" in message:             # sum/mean check when a total is not finite
        with pytest.raises(UsageError, match=message):
            grad.mean(**args)
    else:
        with pytest.raises(UsageError, match=message):
            grad.sum(**args)


def test_batch_sizes_must_agree(small):
    grad, params = small
    with pytest.raises(UsageError, match="input y is a batch of 3 samples, but x of 2"):
        grad.sum(x=np.zeros((2, 3)), y=np.zeros((3, 2)), **params)


def test_a_target_shared_by_the_batch_is_broadcast(small):
    grad, params = small
    X = np.random.default_rng(1).normal(size=(4, 3))
    y = np.array([0.0, 1.0])
    a = grad.sum(x=X, y=y, **params)
    b = grad.sum(x=X, y=np.tile(y, (4, 1)), **params)
    for k in a.gradient:
        np.testing.assert_array_equal(a.gradient[k], b.gradient[k])


def test_a_failed_rule_check_compiles_nothing():
    from derivator.check import Check
    from derivator.layer_derivation import LayerWorkspace, RuleCheck
    from derivator.layer_numeric import compile_layer
    d = net((2, 3, 2), ("tanh", "softmax"), "per_neuron", "cross_entropy")
    ws = LayerWorkspace(api.layer_workspace(d).lg, d)

    class Failing:
        def rules(self, uses):
            return (RuleCheck("map", "elementwise function", ((3,),), Check("numeric", "differs at a point", False)),)
    ws._checker = Failing()
    with pytest.raises(VerificationError, match="no gradient is compiled: rule elementwise function: differs"):
        compile_layer(ws, ["W1"], d)


def test_compile_of_a_scalar_definition_has_no_layer_view():
    with pytest.raises(UsageError, match="the layer view needs vectors and matrices"):
        derivator.compile(derivator.load("colah"), view="layer")


def test_repr(small):
    grad, _ = small
    assert repr(grad).startswith("<CompiledLayerGradient ∂L/∂(W1, b1, W2, b2) of 6 leaves (")
    assert "a batch over x, y" in repr(grad)


# ------------------------------------------------------- standalone module ---

def _import(path):
    spec = importlib.util.spec_from_file_location("exported_layer_grad", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _shapes_file(tmp_path):
    """../shared/cases/layer/two_layer_vector.yaml, or the shipped example of that name."""
    f = LAYER_CASES / "two_layer_vector.yaml"
    return str(f) if f.is_file() else "two_layer_vector"


def test_exported_module_matches_compile(tmp_path):
    src = _shapes_file(tmp_path)
    out = tmp_path / "grad.py"
    assert main(["compile", src, "--view", "layer", "-o", str(out)]) == 0
    mod = _import(out)
    assert "layer view" in mod.__doc__ and mod.LEAVES == ("W1", "x", "b1", "W2", "b2", "y")
    grad = derivator.compile(derivator.load(src), view="layer")
    assert out.read_text() == grad.source
    rng = np.random.default_rng(5)
    args = {x: rng.normal(size=((7,) if x in ("x", "y") else ()) + s) for x, s in grad.shapes.items()}
    ref = grad(**args)
    values, adjoints, gradient = mod.gradient(*[args[x] for x in mod.LEAVES])
    for k, v in ref.gradient.items():
        np.testing.assert_array_equal(gradient[k], v)
    for k, v in ref.adjoints.items():
        np.testing.assert_array_equal(adjoints[k], v)
    total, tgrad, n = mod.totals(*[args[x] for x in mod.LEAVES])
    ref_t = grad.sum(**args)
    assert n == 7 and total == ref_t.value
    for k, v in ref_t.gradient.items():
        np.testing.assert_array_equal(tgrad[k], v)
    with pytest.raises(ValueError, match=r"input W1 has shape \[7, 4, 3\]; it must be \[4, 3\] \(a batch of W1"):
        mod.totals(*[np.zeros((7, 4, 3)) if x == "W1" else args[x] for x in mod.LEAVES])


def test_cli_compile_default_view(tmp_path):
    """`derivator compile` without --view takes the same default view as derive and eval: a shapes
    definition compiles to the layer view's matrix code, the seed's small network to scalar code."""
    out = tmp_path / "g.py"
    assert main(["compile", _shapes_file(tmp_path), "-o", str(out)]) == 0
    assert _import(out).LEAVES == ("W1", "x", "b1", "W2", "b2", "y")
    assert main(["compile", _shapes_file(tmp_path), "--view", "scalar", "-o", str(out)]) == 0
    assert "v_W1_1_1" in inspect.signature(_import(out).gradient).parameters
    assert main(["compile", "seed_network", "-o", str(out)]) == 0
    assert "v_w1" in inspect.signature(_import(out).gradient).parameters and "layer view" not in out.read_text()


def test_exported_module_runs_without_derivator(tmp_path):
    """The module needs NumPy only: import it where derivator and sympy cannot be imported."""
    src = _shapes_file(tmp_path)
    out = tmp_path / "grad.py"
    assert main(["compile", src, "--view", "layer", "-o", str(out)]) == 0
    code = (
        "import sys; sys.modules['derivator'] = None; sys.modules['sympy'] = None; sys.modules['torch'] = None\n"
        f"import importlib.util; s = importlib.util.spec_from_file_location('g', {str(out)!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "import numpy as np\n"
        "W1 = np.arange(12.0).reshape(4, 3) / 10; W2 = np.arange(8.0).reshape(2, 4) / 10\n"
        "v, a, g = m.gradient(W1, [0.5, -1, 2], [0.1, 0, -0.1, 0.2], W2, [0.05, -0.05], [1, 0])\n"
        "print(repr(float(g['W2'][1, 2])))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grad = derivator.compile(derivator.load(src), view="layer")
    ref = grad(W1=np.arange(12.0).reshape(4, 3) / 10, x=[0.5, -1, 2], b1=[0.1, 0, -0.1, 0.2],
               W2=np.arange(8.0).reshape(2, 4) / 10, b2=[0.05, -0.05], y=[1, 0])
    assert float(r.stdout) == float(ref.gradient["W2"][1, 2])


def test_exported_module_is_the_same_under_any_hash_seed(tmp_path):
    import os
    src = _shapes_file(tmp_path)
    outs = set()
    for seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-m", "derivator.cli", "compile", src, "--view", "layer"],
                           capture_output=True, text=True, env=env, check=True)
        outs.add(r.stdout)
    assert len(outs) == 1


def test_cli_compile_of_a_bad_name_is_exit_2(tmp_path, capsys):
    src = _shapes_file(tmp_path)
    assert main(["compile", src, "--view", "layer", "--wrt", "W9", "-o", str(tmp_path / "g.py")]) == 2
    assert "'W9' is not a name in the layer view" in capsys.readouterr().err
    assert not (tmp_path / "g.py").exists()


# --------------------------------------------- the scalar view's network totals ---
# derivator.compile(d) (the scalar view) of a network: grad.sum / grad.mean with scalar weights over 1-D
# batches go through this stage's code (layer_numeric.scalar_totals): one matrix code generator.

SCALAR_CONFIGS = [   # every activation, output, loss, bias kind and naming, some more than once
    ("sigmoid", "sigmoid", "mse", "per_neuron", "flat"), ("tanh", "sigmoid", "bce", "shared", "layered"),
    ("relu", "softmax", "cross_entropy", "none", "flat"), ("identity", "identity", "half_sse", "per_neuron", "layered"),
    ("softplus", "softmax", "mse", "shared", "flat"), ("sigmoid", "softmax", "cross_entropy", "per_neuron", "layered"),
    ("tanh", "identity", "mse", "none", "layered"), ("relu", "sigmoid", "half_sse", "shared", "flat"),
]


def scalar_network(act, out, loss, bias, naming, sizes=(4, 5, 3)):
    layers = [{"units": n, "activation": act} for n in sizes[:-1]] + [{"units": sizes[-1], "activation": out}]
    return derivator.load_dict({"network": {"inputs": 3, "layers": layers, "bias": bias, "loss": loss,
                                            "naming": naming}})


def scalar_batch(d, n, seed=0):
    """Layer parameters, X [n, inputs], Y [n, outputs], and the same as the scalar view's leaves."""
    from derivator.layer_network import entry_names, layer_leaves
    net = d.network
    rng = np.random.default_rng(seed)
    shapes = dict(layer_leaves(net))
    params = {k: rng.normal(size=s) for k, s in shapes.items() if k not in ("x", "y")}
    X = rng.normal(size=(n, net.sizes[0]))
    Y = rng.uniform(0.05, 0.95, size=(n, net.sizes[-1]))
    if net.loss == "cross_entropy":
        Y /= Y.sum(axis=1, keepdims=True)
    leaves = {}
    for k, v in params.items():
        leaves.update(zip(entry_names(net, k, shapes[k]), np.atleast_1d(v).ravel().tolist()))
    leaves.update({f"x{i + 1}": X[:, i].copy() for i in range(X.shape[1])})
    leaves.update({f"y{j + 1}": Y[:, j].copy() for j in range(Y.shape[1])})
    return params, X, Y, leaves


def scalar_names(d, grads: dict) -> dict:
    """Layer gradients as {scalar name: number}."""
    from derivator.layer_network import entry_names
    out = {}
    for k, g in grads.items():
        g = np.asarray(g)
        out.update(zip(entry_names(d.network, k, g.shape), g.ravel().tolist()))
    return out


def spy(grad) -> list:
    """Calls of the matrix code of a compiled scalar-view gradient (built here if it is not yet)."""
    assert grad._with_matrix()
    calls, inner = [], grad._layered

    def counted(*args):
        calls.append(len(args))
        return inner(*args)
    grad._layered = counted
    return calls


@pytest.mark.parametrize("config", SCALAR_CONFIGS, ids=lambda c: "-".join(c))
def test_scalar_view_network_totals_against_torch_and_the_scalar_code(config):
    act, out, loss, bias, naming = config
    d = scalar_network(*config)
    grad = derivator.compile(d)
    params, X, Y, leaves = scalar_batch(d, 20_000)          # several blocks of ROWS samples
    calls = spy(grad)
    tot = grad.sum(**leaves)
    assert calls, "a network's batch total went through the scalar code"
    # torch, written independently of derivator
    per_sample, tgrads = torch_net(params, X, Y, (act,) * 2 + (out,), bias, loss)
    assert tot.value == pytest.approx(float(per_sample.sum()), rel=1e-11)
    ref = scalar_names(d, tgrads)
    assert set(ref) == set(grad.wrt)
    scale = max(abs(v) for v in ref.values())
    for k in grad.wrt:
        assert abs(tot.gradient[k] - ref[k]) <= 1e-10 * scale, k
    # the scalar code of the same module (_scalar_totals) and the per-sample scalar code
    ns: dict = {}
    exec(grad.source, ns)
    value, flat, n = ns["_layer_flat"](*[leaves[x] for x in grad.leaves])
    sv, sg, sn = ns["_scalar_totals"](*[leaves[x] for x in grad.leaves])
    assert n == sn == 20_000 and value == pytest.approx(sv, rel=1e-12)
    for k, v in zip(grad.wrt, flat):
        assert v == pytest.approx(sg[k], rel=1e-10, abs=1e-10 * scale), k
    mean = grad.mean(**leaves)
    assert mean.value == pytest.approx(tot.value / 20_000, rel=1e-14)
    each = grad(**{k: (v[:500] if isinstance(v, np.ndarray) else v) for k, v in leaves.items()})
    part = grad.sum(**{k: (v[:500] if isinstance(v, np.ndarray) else v) for k, v in leaves.items()})
    for k in grad.wrt:
        assert part.gradient[k] == pytest.approx(float(np.sum(each.gradient[k])), rel=1e-10, abs=1e-12 * scale)


def test_scalar_view_dispatch():
    """Which inputs take the matrix code: scalar weights over 1-D batches; anything else the scalar code."""
    d = scalar_network("sigmoid", "sigmoid", "mse", "per_neuron", "flat")
    grad = derivator.compile(d)
    _, _, _, leaves = scalar_batch(d, 300, seed=2)
    calls = spy(grad)
    ref = grad.sum(**leaves)
    assert len(calls) == 1
    # a per-sample weight: the scalar code, the same numbers
    per = dict(leaves, w1=np.full(300, leaves["w1"]))
    t = grad.sum(**per)
    assert len(calls) == 1
    assert t.value == pytest.approx(ref.value, rel=1e-12)
    assert all(t.gradient[k] == pytest.approx(ref.gradient[k], rel=1e-10, abs=1e-12) for k in grad.wrt)
    # a 2-D batch: the scalar code
    grad.sum(**{k: (v.reshape(20, 15) if isinstance(v, np.ndarray) else v) for k, v in leaves.items()})
    assert len(calls) == 1
    # one sample as numbers: a batch of one through the matrix code, the numbers of the per-sample code
    one = {k: (float(v[0]) if isinstance(v, np.ndarray) else v) for k, v in leaves.items()}
    t, each = grad.sum(**one), grad(**one)
    assert len(calls) == 2 and t.count == 1 and t.value == pytest.approx(float(each.value), rel=1e-12)
    assert all(t.gradient[k] == pytest.approx(float(each.gradient[k]), rel=1e-10, abs=1e-14) for k in grad.wrt)
    # a target shared by the batch (a number) is broadcast: still the matrix code, the same numbers
    shared = dict(leaves, y1=0.5)
    t1 = grad.sum(**shared)
    assert len(calls) == 3
    t2 = grad.sum(**dict(shared, y1=np.full(300, 0.5)))
    assert t1.value == pytest.approx(t2.value, rel=1e-12)
    # what the layer code does not give: no matrix code at all
    assert "_layer_flat" not in derivator.compile(d, ["w1", "z3"]).source         # a node as wrt
    assert "_layer_flat" not in derivator.compile(d, ["w1", "x1"]).source         # an input as wrt
    sub = derivator.compile(d, ["w7", "b2"])                                       # some weights: picked
    assert "_layer_flat" in sub.source
    s = sub.sum(**leaves)
    assert s.gradient["w7"] == pytest.approx(ref.gradient["w7"], rel=1e-12)
    assert s.gradient["b2"] == pytest.approx(ref.gradient["b2"], rel=1e-12)
    narrow = derivator.load_dict({"network": {"inputs": 2, "layers": [{"units": 2, "activation": "sigmoid"},
                                                                     {"units": 1, "activation": "sigmoid"}]}})
    assert "_layer_flat" not in derivator.compile(narrow).source                   # 2-2-1: scalar code
    assert "_layer_flat" not in derivator.compile(derivator.load("seed_network_equations")).source


def test_scalar_view_network_not_ending_in_its_loss_keeps_the_scalar_code():
    d = derivator.load_dict({"network": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"},
                                                                {"units": 2, "activation": "sigmoid"}]},
                             "output": "o1"})
    grad = derivator.compile(d)
    assert "_layer_flat" not in grad.source
    rng = np.random.default_rng(0)
    b = {x: (rng.normal(size=50) if x.startswith("x") else float(rng.normal())) for x in grad.leaves}
    assert grad.sum(**b).count == 50


def test_scalar_view_export_has_the_matrix_code_and_needs_numpy_only(tmp_path):
    """`derivator compile -o` of a network: the matrix code is in the module, which runs with NumPy only."""
    d = scalar_network("tanh", "softmax", "cross_entropy", "shared", "layered")
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"network": {"inputs": 3, "layers": [
        {"units": 4, "activation": "tanh"}, {"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
        "bias": "shared", "loss": "cross_entropy", "naming": "layered"}}))
    out = tmp_path / "grad.py"
    assert main(["compile", str(spec), "--view", "scalar", "-o", str(out)]) == 0
    text = out.read_text()
    assert "def _layer_flat(" in text and "def _scalar_totals(" in text
    _, _, _, leaves = scalar_batch(d, 5000, seed=4)
    np.savez(tmp_path / "b.npz", **{k: np.asarray(v) for k, v in leaves.items()})
    code = (
        "import sys, json; sys.modules['derivator'] = None; sys.modules['sympy'] = None\n"
        "import numpy as np, importlib.util\n"
        f"s = importlib.util.spec_from_file_location('g', {str(out)!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        f"b = dict(np.load({str(tmp_path / 'b.npz')!r}))\n"
        "b = {k: (float(v) if v.ndim == 0 else v) for k, v in b.items()}\n"
        "args = [b[x[2:]] for x in m.totals.__code__.co_varnames[:m.totals.__code__.co_argcount]]\n"
        "v, g, n = m.totals(*args)\n"
        "print(json.dumps([v, g, n]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    v, g, n = json.loads(r.stdout)
    ref = derivator.compile(d).sum(**leaves)
    assert n == 5000 and v == pytest.approx(ref.value, rel=1e-12)
    for k in ref.gradient:
        assert g[k] == pytest.approx(ref.gradient[k], rel=1e-12, abs=1e-14)
