"""Worked examples from the literature, each in both forms, against the published digits.

A published number is compared to within half a unit of its last printed
digit (the rounding its author did), with a hair of slack for the floating
point.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sympy as sp

import derivator
from derivator.cli import main
from derivator.expr import symbol


def published(got: float, text: str, what: str = "") -> None:
    """``got`` rounds to the published ``text`` (half a unit of its last digit)."""
    exponent = Decimal(text).as_tuple().exponent
    half = 0.5 * 10.0 ** exponent
    assert abs(float(got) - float(text)) <= half * (1 + 1e-6), f"{what}: {got!r} is not {text} as published"


def evaluate(d):
    out = derivator.compile(d)(**d.at_dict)
    values = {k: float(v) for k, v in out.values.items()}
    return float(out.value), values, {k: float(v) for k, v in out.gradient.items()}, \
        {k: float(v) for k, v in out.adjoints.items()}


# --------------------------------------------------------------------------
# Matt Mazur, "A Step by Step Backpropagation Example" (2015).
# 2-2-2 network, sigmoid everywhere, one bias per layer (b1 hidden, b2 output),
# E_total = Σ ½ (target − out)², learning rate 0.5.
# --------------------------------------------------------------------------

MAZUR_AT = """at: {x1: 0.05, x2: 0.10, y1: 0.01, y2: 0.99,
     w1: 0.15, w2: 0.20, w3: 0.25, w4: 0.30, w5: 0.40, w6: 0.45, w7: 0.50, w8: 0.55,
     b1: 0.35, b2: 0.60}
lr: 0.5
"""

MAZUR_NETWORK = """title: Mazur (2015), network form
network:
  inputs: 2
  layers:
    - {units: 2, activation: sigmoid}
    - {units: 2, activation: sigmoid}
  bias: shared
  loss: half_sse
  naming: flat
""" + MAZUR_AT

# Mazur's own names: i1, i2 inputs; net_/out_ for each neuron; target_o1/2.
MAZUR_EQUATIONS = """title: Mazur (2015), equations form in his notation
equations:
  net_h1: w1*i1 + w2*i2 + b1*1
  out_h1: sigmoid(net_h1)
  net_h2: w3*i1 + w4*i2 + b1*1
  out_h2: sigmoid(net_h2)
  net_o1: w5*out_h1 + w6*out_h2 + b2*1
  out_o1: 1/(1 + exp(-net_o1))
  net_o2: w7*out_h1 + w8*out_h2 + b2*1
  out_o2: 1/(1 + exp(-net_o2))
  E_o1: 1/2*(target_o1 - out_o1)^2
  E_o2: 1/2*(target_o2 - out_o2)^2
  E_total: E_o1 + E_o2
output: E_total
wrt: [w1, w2, w3, w4, w5, w6, w7, w8]
at: {i1: 0.05, i2: 0.10, target_o1: 0.01, target_o2: 0.99,
     w1: 0.15, w2: 0.20, w3: 0.25, w4: 0.30, w5: 0.40, w6: 0.45, w7: 0.50, w8: 0.55,
     b1: 0.35, b2: 0.60}
lr: 0.5
"""

# The names of the network form for Mazur's quantities.
MAZUR_NAMES = {"network": {"net_h1": "z1", "out_h1": "h1", "out_h2": "h2", "net_o1": "z3",
                           "out_o1": "o1", "out_o2": "o2", "E_total": "L"},
               "equations": {k: k for k in ("net_h1", "out_h1", "out_h2", "net_o1", "out_o1", "out_o2",
                                            "E_total")}}

MAZUR_VALUES = {            # forward pass, as published
    "net_h1": "0.3775",
    "out_h1": "0.593269992",
    "out_h2": "0.596884378",
    "net_o1": "1.105905967",
    "out_o1": "0.75136507",
    "out_o2": "0.772928465",
    "E_total": "0.298371109",
}
MAZUR_UPDATED = {           # after one step of gradient descent at rate 0.5, as published
    "w1": "0.149780716", "w2": "0.19956143", "w3": "0.24975114", "w4": "0.29950229",
    "w5": "0.35891648", "w6": "0.408666186", "w7": "0.511301270", "w8": "0.561370121",
}
MAZUR_GRADIENT = {"w5": "0.082167041", "w1": "0.000438568"}
MAZUR_PATHS = {"w1": 2, "w2": 2, "w3": 2, "w4": 2, "w5": 1, "w6": 1, "w7": 1, "w8": 1}

FORMS = {"network": MAZUR_NETWORK, "equations": MAZUR_EQUATIONS}


@pytest.fixture(scope="module", params=list(FORMS))
def mazur(request):
    form = request.param
    d = derivator.loads(FORMS[form], source=f"mazur_{form}.yaml")
    assert d.form == form
    return form, d


def test_mazur_forward_pass(mazur):
    form, d = mazur
    value, values, _, _ = evaluate(d)
    names = MAZUR_NAMES[form]
    published(value, MAZUR_VALUES["E_total"], f"{form}: E_total")
    for quantity, text in MAZUR_VALUES.items():
        published(values[names[quantity]], text, f"{form}: {quantity}")


def test_mazur_gradient_and_update(mazur):
    form, d = mazur
    _, _, gradient, adjoints = evaluate(d)
    for w, text in MAZUR_GRADIENT.items():
        published(gradient[w], text, f"{form}: dE/d{w}")
    # the intermediate factors of dE/dw5 as Mazur shows them
    published(adjoints[MAZUR_NAMES[form]["out_o1"]], "0.74136507", f"{form}: dE/dout_o1")
    published(adjoints[MAZUR_NAMES[form]["net_o1"]] / adjoints[MAZUR_NAMES[form]["out_o1"]], "0.186815602",
              f"{form}: dout_o1/dnet_o1")
    at = d.at_dict
    assert d.lr == 0.5
    for w, text in MAZUR_UPDATED.items():
        published(at[w] - d.lr * gradient[w], text, f"{form}: updated {w}")


def test_mazur_updates_through_the_cli(mazur, tmp_path, capsys):
    form, d = mazur
    path = tmp_path / f"mazur_{form}.yaml"
    path.write_text(FORMS[form], encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", str(path), "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    published(got["value"], MAZUR_VALUES["E_total"], f"{form}: E_total (CLI)")
    for w, text in MAZUR_UPDATED.items():
        published(got["updated"][w], text, f"{form}: updated {w} (CLI)")


def at_point(expr, values: dict) -> float:
    """A derivation's result (in node and leaf symbols) at the evaluated point."""
    env = {symbol(n): sp.Float(v, 30) for n, v in values.items()}
    return float(expr.xreplace(env).rewrite(sp.exp).evalf(30))


def test_mazur_derivations(mazur):
    form, d = mazur
    _, values, gradient, _ = evaluate(d)
    for w, n in MAZUR_PATHS.items():
        proof = derivator.derive(d, w)
        assert proof.verified, proof.failures
        assert proof.path_count == n
        assert all(p[0] == d.output and p[-1] == w for p in proof.paths)
        assert abs(at_point(proof.result, values) - gradient[w]) <= 1e-12
    published(at_point(derivator.derive(d, "w5").result, values), MAZUR_GRADIENT["w5"], f"{form}: result of dE/dw5")


def test_mazur_ships_as_an_example():
    """`derivator derive mazur` is this test's equations form (its document is in output/)."""
    shipped, here = derivator.load("mazur"), derivator.loads(MAZUR_EQUATIONS)
    assert [(e.name, e.text) for e in shipped.equations] == [(e.name, e.text) for e in here.equations]
    assert (shipped.at, shipped.lr, shipped.wrt, shipped.output) == (here.at, here.lr, here.wrt, here.output)


def test_mazur_forms_agree():
    dn = derivator.loads(MAZUR_NETWORK)
    de = derivator.loads(MAZUR_EQUATIONS)
    vn, _, gn, _ = evaluate(dn)
    ve, _, ge, _ = evaluate(de)
    assert abs(vn - ve) <= 1e-15
    for w in MAZUR_UPDATED:
        assert abs(gn[w] - ge[w]) <= 1e-15, w


# --------------------------------------------------------------------------
# Stanford CS231n notes, "Backpropagation, Intuitions" (Karpathy): the
# 2-D sigmoid neuron f(w, x) = 1 / (1 + e^-(w0 x0 + w1 x1 + w2)) at
# w = [2, -3, -3], x = [-1, -2]. The circuit diagram prints 2 decimals.
# --------------------------------------------------------------------------

CS231N_NETWORK = """title: CS231n sigmoid neuron, network form
network:
  inputs: 2
  layers:
    - {units: 1, activation: sigmoid}
  bias: per_neuron
  loss: mse
  naming: flat
output: o1
wrt: [w1, w2, b1, x1, x2]
at: {x1: -1, x2: -2, w1: 2, w2: -3, b1: -3, y1: 0}
"""

CS231N_EQUATIONS = """title: CS231n sigmoid neuron, gate by gate
equations:
  p0: w0*x0
  p1: w1*x1
  s: p0 + p1
  dot: s + w2
  m: -1*dot
  e: exp(m)
  q: e + 1
  f: 1/q
output: f
wrt: [w0, x0, w1, x1, w2]
at: {w0: 2, x0: -1, w1: -3, x1: -2, w2: -3}
"""

# value, then the gradients printed under each input of the circuit
CS231N = {"f": "0.73", "w0": "-0.20", "x0": "0.39", "w1": "-0.39", "x1": "-0.59", "w2": "0.20"}
CS231N_TO_NETWORK = {"f": "o1", "w0": "w1", "x0": "x1", "w1": "w2", "x1": "x2", "w2": "b1"}
CS231N_GATES = {"dot": "0.20", "e": "-0.53", "q": "-0.53", "m": "-0.20"}   # gradients at the gates
CS231N_GATE_VALUES = {"dot": "1.00", "m": "-1.00", "e": "0.37", "q": "1.37"}


def test_cs231n_sigmoid_neuron_equations():
    d = derivator.loads(CS231N_EQUATIONS)
    value, values, gradient, adjoints = evaluate(d)
    published(value, CS231N["f"], "f")
    for k, text in CS231N.items():
        if k != "f":
            published(gradient[k], text, f"df/d{k}")
    for k, text in CS231N_GATES.items():
        published(adjoints[k], text, f"df/d{k}")
    for k, text in CS231N_GATE_VALUES.items():
        published(values[k], text, k)
    for w in d.wrt:
        assert derivator.derive(d, w).verified


def test_cs231n_sigmoid_neuron_network():
    d = derivator.loads(CS231N_NETWORK)
    assert d.output == "o1"
    value, values, gradient, adjoints = evaluate(d)
    published(value, CS231N["f"], "f")
    for k, text in CS231N.items():
        if k != "f":
            published(gradient[CS231N_TO_NETWORK[k]], text, f"df/d{k}")
    published(adjoints["z1"], CS231N_GATES["dot"], "df/d(dot)")
    for w in d.wrt:
        proof = derivator.derive(d, w)
        assert proof.verified and proof.path_count == 1


def test_cs231n_forms_agree():
    _, _, ge, _ = evaluate(derivator.loads(CS231N_EQUATIONS))
    _, _, gn, _ = evaluate(derivator.loads(CS231N_NETWORK))
    for k, n in CS231N_TO_NETWORK.items():
        if k != "f":
            assert abs(ge[k] - gn[n]) <= 1e-15, k
