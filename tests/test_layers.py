"""numeric stage, layer-level back-end: matrix-product totals equal the scalar code's, in every configuration."""
import itertools

import numpy as np
import pytest

import derivator

CONFIGS = [
    (act, out, loss, bias, naming)
    for act, out, loss, bias, naming in itertools.product(
        ["sigmoid", "tanh", "relu", "identity", "softplus"], ["sigmoid", "softmax", "identity"],
        ["mse", "bce", "cross_entropy", "half_sse"], ["per_neuron", "shared", "none"], ["flat", "layered"])
    if (loss != "bce" or out == "sigmoid") and (loss != "cross_entropy" or out == "softmax")
]


def network(act, out, loss, bias, naming, sizes=(4, 3, 2)):
    layers = [{"units": n, "activation": act} for n in sizes[:-1]] + [{"units": sizes[-1], "activation": out}]
    return derivator.load_dict({"network": {"inputs": 3, "layers": layers, "bias": bias, "loss": loss,
                                            "naming": naming}})


def batch(grad, n, seed=0):
    rng = np.random.default_rng(seed)
    return {x: (rng.uniform(0.05, 0.95, size=n) if x.startswith("y") else
                rng.normal(size=n) if x.startswith("x") else float(rng.normal())) for x in grad.leaves}


def both(grad, b):
    ns = {}
    exec(grad.source, ns)
    args = [b[x] for x in grad.leaves]
    return ns["_layered_totals"](*args), ns["_scalar_totals"](*args)


@pytest.mark.parametrize("config", CONFIGS[::4], ids=lambda c: "-".join(c))
def test_layered_totals_equal_scalar_totals(config):
    grad = derivator.compile(network(*config))
    assert "_layered_totals" in grad.source
    (lv, lg, ln), (sv, sg, sn) = both(grad, batch(grad, 40_000))     # several blocks of CHUNK
    assert ln == sn == 40_000
    assert lv == pytest.approx(sv, rel=1e-12)
    for k in sg:
        assert lg[k] == pytest.approx(sg[k], rel=1e-10, abs=1e-10)


def test_layered_sum_matches_per_sample_gradients():
    grad = derivator.compile(network("tanh", "sigmoid", "bce", "per_neuron", "flat"))
    b = batch(grad, 3000, seed=3)
    tot = grad.sum(**b)
    each = grad(**b)
    assert tot.value == pytest.approx(float(np.sum(each.value)), rel=1e-12)
    for k in grad.wrt:
        assert tot.gradient[k] == pytest.approx(float(np.sum(each.gradient[k])), rel=1e-10, abs=1e-12)


def test_array_weights_fall_back_to_the_scalar_code():
    grad = derivator.compile(network("sigmoid", "sigmoid", "mse", "per_neuron", "flat"))
    b = batch(grad, 100)
    b["w1"] = np.full(100, b["w1"])          # a per-sample weight: not a matrix
    ref = batch(grad, 100)
    t1, t2 = grad.sum(**b), grad.sum(**ref)
    assert t1.value == pytest.approx(t2.value, rel=1e-12)
    assert t1.gradient["w1"] == pytest.approx(t2.gradient["w1"], rel=1e-10)


def test_equations_form_has_no_layered_code():
    assert "_layered_totals" not in derivator.compile(derivator.load("seed_network_equations")).source
