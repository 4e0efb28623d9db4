"""check stage: verdicts on claimed derivatives, on worked examples that are not in the repository.

Student-style answers (sign slips, a missing σ′ or tanh′, missing paths through shared hidden
units and shared biases, paths of a neighbouring weight, the wrong weight, numbers, answers
right only at the given point, equivalent rewritings) must get the right kind, and every
counterexample must show the difference, checked independently: the derivative there by the
compiled NumPy gradient, the claim by mpmath, and the point against the definition's `at`.
Hostile claims end in exit status 2 with one line, quickly, and run nothing.
"""
import json
import os
import time

import mpmath
import pytest

import derivator
from derivator import verdict
from derivator.cli import main
from derivator.expr import symbol
from derivator.mpeval import evaluate
from derivator.verdict import judge, make_claim

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "cases", "claims", "seed_claims.yaml")

# Matt Mazur's "A Step by Step Backpropagation Example" (2-2-2, shared biases), in its own names.
MAZUR = {
    "title": "Mazur's 2-2-2 example",
    "equations": {
        "net_h1": "w1*i1 + w2*i2 + b1", "net_h2": "w3*i1 + w4*i2 + b1",
        "out_h1": "sigmoid(net_h1)", "out_h2": "sigmoid(net_h2)",
        "net_o1": "w5*out_h1 + w6*out_h2 + b2", "net_o2": "w7*out_h1 + w8*out_h2 + b2",
        "out_o1": "sigmoid(net_o1)", "out_o2": "sigmoid(net_o2)",
        "E": "0.5*(t1 - out_o1)**2 + 0.5*(t2 - out_o2)**2"},
    "at": {"i1": 0.05, "i2": 0.10, "w1": 0.15, "w2": 0.20, "w3": 0.25, "w4": 0.30, "w5": 0.40,
           "w6": 0.45, "w7": 0.50, "w8": 0.55, "b1": 0.35, "b2": 0.60, "t1": 0.01, "t2": 0.99},
}
D1 = "(out_o1 - t1)*out_o1*(1 - out_o1)"       # δ of net_o1
D2 = "(out_o2 - t2)*out_o2*(1 - out_o2)"       # δ of net_o2
H1 = f"({D1}*w5 + {D2}*w7)"                    # δ of out_h1
H2 = f"({D1}*w6 + {D2}*w8)"                    # δ of out_h2
W1 = f"{H1}*out_h1*(1 - out_h1)*i1"
W3 = f"{H2}*out_h2*(1 - out_h2)*i1"

# name, wrt, claim, kind, details checked below
MAZUR_CLAIMS = [
    ("w5 right", "w5", f"{D1}*out_h1", "correct", {}),
    ("w5 expanded", "w5", "(out_o1**2 - out_o1**3 - t1*out_o1 + t1*out_o1**2)*out_h1", "correct", {}),
    ("w5 in the leaves", "w5", "(sigmoid(w5*sigmoid(w1*i1 + w2*i2 + b1) + w6*sigmoid(w3*i1 + w4*i2 + b1) + b2) - t1)"
     "*sigmoid(w5*sigmoid(w1*i1 + w2*i2 + b1) + w6*sigmoid(w3*i1 + w4*i2 + b1) + b2)"
     "*(1 - sigmoid(w5*sigmoid(w1*i1 + w2*i2 + b1) + w6*sigmoid(w3*i1 + w4*i2 + b1) + b2))"
     "*sigmoid(w1*i1 + w2*i2 + b1)", "correct", {}),
    ("w5 sign slip", "w5", "(t1 - out_o1)*out_o1*(1 - out_o1)*out_h1", "sign", {}),
    ("w5 missing sigma'", "w5", "(out_o1 - t1)*out_h1", "factor", {"factor": "out_o1*(1 - out_o1)",
                                                                   "parts": [("out_o1", "net_o1", 1, "sigmoid")]}),
    ("w5 sigma' twice", "w5", f"{D1}*out_h1*out_o1*(1 - out_o1)", "factor", {"parts": [("out_o1", "net_o1", -1, "sigmoid")]}),
    ("w5 the 2 of the square", "w5", f"2*{D1}*out_h1", "factor", {"factor": "1/2", "parts": []}),
    ("w5 the wrong hidden unit", "w5", f"{D1}*out_h2", "factor", {"equals": "w6"}),
    ("w1 right", "w1", W1, "correct", {}),
    ("w1 only through out_o1", "w1", f"{D1}*w5*out_h1*(1 - out_h1)*i1", "missing_paths",
     {"paths": [("E", "out_o2", "net_o2", "out_h1", "net_h1", "w1")]}),
    ("w1 the o1 path twice", "w1", f"(2*{D1}*w5 + {D2}*w7)*out_h1*(1 - out_h1)*i1", "extra_paths",
     {"paths": [("E", "out_o1", "net_o1", "out_h1", "net_h1", "w1")]}),
    ("w1 plus the paths of w3", "w1", f"{W1} + {W3}", "extra_paths",
     {"paths": [("E", "out_o1", "net_o1", "out_h2", "net_h2", "w3"), ("E", "out_o2", "net_o2", "out_h2", "net_h2", "w3")]}),
    ("w1 missing sigma' of the hidden unit", "w1", f"{H1}*i1", "factor", {"parts": [("out_h1", "net_h1", 1, "sigmoid")]}),
    ("w1 missing sigma' of both outputs", "w1", "((out_o1 - t1)*w5 + (out_o2 - t2)*w7)*out_h1*(1 - out_h1)*i1",
     "factor", {"parts": [("out_o1", "net_o1", 1, "sigmoid"), ("out_o2", "net_o2", 1, "sigmoid")]}),
    ("w1 answered for w2", "w1", f"{H1}*out_h1*(1 - out_h1)*i2", "factor", {"equals": "w2"}),
    ("w1 the weights of the other hidden unit", "w1", f"{H2}*out_h1*(1 - out_h1)*i1", "incorrect", {}),
    ("w1 zero", "w1", "0", "missing_paths", {"count": 2}),
    ("b1 shared bias, one hidden unit", "b1", f"{H1}*out_h1*(1 - out_h1)", "missing_paths",
     {"paths": [("E", "out_o1", "net_o1", "out_h2", "net_h2", "b1"), ("E", "out_o2", "net_o2", "out_h2", "net_h2", "b1")]}),
    ("b1 right", "b1", f"{H1}*out_h1*(1 - out_h1) + {H2}*out_h2*(1 - out_h2)", "correct", {}),
    ("b2 shared bias, one output", "b2", D1, "missing_paths", {"paths": [("E", "out_o2", "net_o2", "b2")]}),
    ("b2 right", "b2", f"{D1} + {D2}", "correct", {}),
    ("w5 a path of w7 added", "w5", f"{D1}*out_h1 + {D2}*out_h1", "extra_paths", {"paths": [("E", "out_o2", "net_o2", "w7")]}),
    ("w2 right at the given point only", "w2", f"{H1}*out_h1*(1 - out_h1)*2*i1", "factor", {"agrees": True}),
    ("w5 Mazur's number", "w5", "0.082167041", "incorrect", {"agrees": True}),
    ("b2 the output's own name", "b2", "E", "incorrect", {}),
    ("out_h1, a node", "out_h1", f"{D1}*w5 + {D2}*w7", "correct", {}),
    ("net_h1, a node, one output", "net_h1", f"{D1}*w5*out_h1*(1 - out_h1)", "missing_paths", {}),
]


@pytest.fixture(scope="module")
def mazur():
    return derivator.load_dict(MAZUR, source="mazur.yaml")


@pytest.fixture(scope="module")
def mazur_verdicts(mazur):
    report = judge(mazur, [(w, c) for _, w, c, _, _ in MAZUR_CLAIMS])
    return dict(zip([n for n, *_ in MAZUR_CLAIMS], report))


@pytest.fixture(scope="module")
def compiled(mazur):
    g = derivator.graph(mazur)
    return derivator.compile(mazur, [x for x in g.names if x != mazur.output])


def _independent(d, grad, v):
    """The claim (mpmath) and the derivative (compiled NumPy) at the verdict's counterexample."""
    at = dict(v.counterexample.at)
    g = derivator.graph(d)
    assert set(at) == set(g.leaves), "the counterexample must give every leaf"
    with mpmath.workdps(30):
        env = {symbol(k): mpmath.mpf(repr(x)) for k, x in at.items()}
        for n in g.nodes:
            env[n.symbol] = evaluate(n.expr, env)
        claimed = float(evaluate(v.expr, env))
    out = grad(**at)
    actual = float(out.gradient[v.wrt]) if v.wrt in out.gradient else float(out.adjoints[v.wrt])
    return claimed, actual


@pytest.mark.parametrize("name", [c[0] for c in MAZUR_CLAIMS])
def test_student_answers_on_mazur(mazur, mazur_verdicts, compiled, name):
    _, wrt, claim, kind, want = next(c for c in MAZUR_CLAIMS if c[0] == name)
    v = mazur_verdicts[name]
    assert v.kind == kind and v.kind in verdict.KINDS, f"{name}: {v.kind} ({v.check})"
    assert v.correct == (kind == "correct")
    if "paths" in want:
        assert sorted(v.paths) == sorted(want["paths"]) and v.path_count == len(want["paths"])
    if "count" in want:
        assert v.path_count == want["count"] == len(v.paths)
    if "factor" in want:
        assert str(v.factor) == want["factor"]
    if "parts" in want:
        assert [(p.child, p.parent, p.power, p.function) for p in v.factor_parts] == want["parts"]
    if "equals" in want:
        assert v.equals == want["equals"]
    if "agrees" in want:
        assert v.agrees_at_given is want["agrees"]
    if v.correct:
        assert v.counterexample is None
        return
    cx = v.counterexample
    claimed, actual = _independent(mazur, compiled, v)
    assert actual == pytest.approx(cx.actual, rel=1e-9, abs=1e-15)
    assert claimed == pytest.approx(cx.claimed, rel=1e-12, abs=1e-15)
    assert abs(claimed - actual) > 1e-6 * max(abs(claimed), abs(actual)), "the counterexample must show the difference"
    if cx.given:
        assert dict(cx.at) == mazur.at_dict
    else:   # a point a student can type: one decimal
        assert all(abs(x * 10 - round(x * 10)) < 1e-9 for _, x in cx.at)
    if want.get("agrees"):
        assert not cx.given, "the given point does not show the difference"
    assert v.message and v.check


def test_the_given_point_is_the_counterexample_when_it_shows_the_difference(mazur_verdicts):
    v = mazur_verdicts["w5 sign slip"]
    assert v.counterexample.given and v.counterexample.claimed == pytest.approx(-v.counterexample.actual)


def test_number_claims_are_judged_as_formulas_but_told_they_match(mazur_verdicts):
    v = mazur_verdicts["w5 Mazur's number"]
    assert v.number and v.agrees_at_given and not v.correct
    assert "right to the digits written" in v.message


def test_right_claims_say_how_they_were_proved(mazur_verdicts):
    assert mazur_verdicts["w5 right"].method == "symbolic"
    assert "node names" in mazur_verdicts["w5 right"].check
    leaves = mazur_verdicts["w5 in the leaves"]
    assert leaves.correct and (leaves.method == "symbolic" or "30 digits" in leaves.check)
    assert mazur_verdicts["w1 right"].method == "symbolic"


def test_seed_claims_case():
    d = derivator.load(SHARED if os.path.exists(SHARED) else "seed_network")
    if not d.claims:
        pytest.skip("the shared case is not here")
    kinds = {v.wrt: v.kind for v in judge(d)}
    assert kinds == {"w5": "correct", "w6": "sign", "w1": "factor", "w2": "correct"}
    w1 = [v for v in judge(d) if v.wrt == "w1"][0]
    assert str(w1.factor) == "o1*(1 - o1)" and w1.factor_parts[0].function == "sigmoid"


# ---------------------------------------------------------------- other worked examples ---

def test_cs231n_sigmoid_neuron():
    """CS231n's 2-d neuron f = σ(w0 x0 + w1 x1 + w2): the σ′ = (1 − f) f shortcut, and its omission."""
    d = derivator.load_dict({"equations": {"dot": "w0*x0 + w1*x1 + w2", "f": "sigmoid(dot)"},
                             "at": {"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}})
    r = derivator.check_claims(d, {"w0": "(1 - f)*f*x0", "w1": "x1", "w2": "exp(-dot)/(1 + exp(-dot))**2",
                                   "x0": "-(1 - f)*f*w0"})
    assert [v.kind for v in r] == ["correct", "factor", "correct", "sign"]
    assert r[1].factor_parts[0].function == "sigmoid" and r[1].factor_parts[0].parent == "dot"
    assert r.score == (2, 4)


def test_cs231n_add_multiply_gate():
    """f = (x + y) z: ∂f/∂x = z; answering q (which is ∂f/∂z) is a swap of two local partials."""
    d = derivator.load_dict({"equations": {"q": "x + y", "f": "q*z"}, "at": {"x": -2, "y": 5, "z": -4}})
    right, swapped = derivator.check_claims(d, [("x", "z"), ("x", "q")])
    assert right.correct and right.method == "symbolic"
    assert swapped.kind == "factor" and swapped.equals == "z"


def test_tanh_network_missing_tanh_prime_and_shared_bias():
    """A 3-2-1 tanh network with binary cross-entropy and shared biases (network form)."""
    d = derivator.load_dict({"network": {"inputs": 3, "layers": [{"units": 2, "activation": "tanh"},
                                                                  {"units": 1, "activation": "sigmoid"}],
                                         "bias": "shared", "loss": "bce"},
                             "at": {"x1": 0.3, "x2": -0.7, "x3": 1.1, "y1": 1, "w1": 0.2, "w2": -0.1, "w3": 0.4,
                                    "w4": 0.5, "w5": 0.3, "w6": -0.6, "w7": 0.8, "w8": -0.9, "b1": 0.05, "b2": -0.2}})
    delta = "(o1 - y1)"    # bce with a sigmoid output: ∂L/∂z3
    r = derivator.check_claims(d, {"w7": f"{delta}*h1", "w1": f"{delta}*w7*x1",
                                   "b1": f"{delta}*w7*(1 - h1**2)",
                                   "b2": f"{delta}*o1*(1 - o1)"})
    kinds = {v.wrt: v.kind for v in r}
    assert kinds == {"w7": "correct", "w1": "factor", "b1": "missing_paths", "b2": "factor"}
    w1 = r[1]
    assert w1.factor_parts[0].function == "tanh" and str(w1.factor) == "1 - h1**2"
    assert r[2].paths == (("L", "o1", "z3", "h2", "z2", "b1"),)
    assert r[3].factor_parts[0].power == -1


def test_softmax_targets_that_sum_to_one():
    """p − y holds for one-hot targets; written as a constraint (y2 = 1 − y1) it is proved."""
    base = {"z1": "w1*x", "z2": "w2*x", "s": "exp(z1) + exp(z2)", "p1": "exp(z1)/s", "p2": "exp(z2)/s",
            "L": "-(y1*log(p1) + y2*log(p2))"}
    loose = derivator.load_dict({"equations": base, "at": {"x": 1.5, "w1": 0.2, "w2": -0.3, "y1": 1, "y2": 0}})
    v = derivator.check_claim(loose, "w1", "(p1 - y1)*x")
    assert not v.correct and v.agrees_at_given, "right only where y1 + y2 = 1"
    tied = derivator.load_dict({"equations": {"y2": "1 - y1", **base}, "at": {"x": 1.5, "w1": 0.2, "w2": -0.3, "y1": 1}})
    assert derivator.check_claim(tied, "w1", "(p1 - y1)*x").correct


def test_no_path_and_a_claim_of_the_output_itself():
    d = derivator.load_dict({"equations": {"u": "a*b", "F": "exp(c)"}, "output": "F", "at": {"a": 1, "b": 2, "c": 0.5}})
    assert derivator.check_claim(d, "a", "0").correct
    assert derivator.check_claim(d, "c", "F").correct
    assert not derivator.check_claim(d, "a", "b").correct


def test_structured_search_on_a_network_with_many_paths():
    """Depth 6, width 3: 81 paths to w1, more than the exact solve takes; the missing paths
    through one hidden node are found by adjoints and tangents."""
    layers = [{"units": 3, "activation": "tanh"}] * 5 + [{"units": 1, "activation": "sigmoid"}]
    d = derivator.load_dict({"network": {"inputs": 2, "layers": layers, "loss": "mse"}})
    proof = derivator.derive(d, "w1", view="scalar")
    assert proof.path_count == 81
    ws = derivator.api.workspace(d)
    g = derivator.graph(d)
    skip = "h7"                    # a hidden node of the third layer
    through = [p for p in derivator.paths.iter_paths(g, "w1") if skip in p]
    kept = [p for p in derivator.paths.iter_paths(g, "w1") if skip not in p]
    import sympy as sp
    claim = sp.sstr(sp.Add(*[sp.Mul(*[ws.partial(a, b).expr for a, b in zip(p, p[1:])]) for p in kept]))
    t = time.perf_counter()
    v = derivator.check_claim(d, "w1", claim)
    assert time.perf_counter() - t < 20
    assert v.kind == "missing_paths" and v.path_count == len(through) == 27
    assert sorted(v.paths) == sorted(through)


def test_deep_network_zero_claim_counts_every_path():
    layers = [{"units": 3, "activation": "sigmoid"}] * 11 + [{"units": 1, "activation": "sigmoid"}]
    d = derivator.load_dict({"network": {"inputs": 3, "layers": layers, "loss": "mse"}})
    v = derivator.check_claim(d, "w1", "0")
    assert v.kind == "missing_paths" and v.path_count == 3 ** 10 and len(v.paths) == 1000


def test_deterministic(mazur):
    a = json.dumps(judge(mazur, [("w1", MAZUR_CLAIMS[9][2]), ("w5", "0.082167041")]).to_json())
    verdict._judge.cache_clear()
    b = json.dumps(judge(mazur, [("w5", "0.082167041"), ("w1", MAZUR_CLAIMS[9][2])]).to_json())
    assert json.loads(a) == json.loads(b)[::-1]


# ------------------------------------------------------------------ the file's claims ---

def test_claims_in_a_file(tmp_path):
    f = tmp_path / "net.yaml"
    f.write_text("equations:\n  u: a*b\n  F: u**2\nat: {a: 1, b: 2}\nclaims:\n  a: 2*u*b\n  b: '2*u'\n")
    d = derivator.load(str(f))
    assert [(c.wrt, c.text, c.line) for c in d.claims] == [("a", "2*u*b", 6), ("b", "2*u", 7)]
    r = derivator.check_claims(d)
    assert [v.kind for v in r] == ["correct", "factor"]


@pytest.mark.parametrize("text,where,what", [
    ("claims:\n  a: 2*w9\n", "3:8", "'w9', which is not in the graph"),
    ("claims:\n  a: \"2*(b\"\n", "3:11", "missing ')'"),
    ("claims:\n  zz: b\n", "3:3", "not in the graph"),
    ("claims:\n  F: b\n", "3:3", "the output itself"),
    ("claims:\n  a: [b]\n", "3:6", "must be an expression"),
    ("claims: [a, b]\n", "2:9", "must be a mapping"),
    ("claims:\n  a: b**(10**18)\n", "3:7", "too large for a claimed derivative"),
    ("claims:\n  a: \"__import__('os')\"\n", "3:18", "unexpected character"),
])
def test_bad_claims_in_a_file_name_the_line(tmp_path, text, where, what):
    f = tmp_path / "net.yaml"
    f.write_text("equations: {u: a*b, F: u**2}\n" + text)
    with pytest.raises(derivator.DefinitionError) as e:
        derivator.load(str(f))
    assert f"net.yaml:{where}:" in str(e.value) and what in str(e.value)


# ------------------------------------------------------------------ the command line ---

def _cli(capsys, *args):
    t = time.perf_counter()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err, time.perf_counter() - t


def test_cli_exit_status_and_json(capsys, tmp_path):
    f = tmp_path / "mazur.yaml"
    f.write_text(json.dumps(MAZUR))
    rc, out, err, _ = _cli(capsys, "check", str(f), "--wrt", "w5", "--claim", f"{D1}*out_h1", "--format", "json")
    assert rc == 0 and json.loads(out)["kind"] == "correct" and not err
    rc, out, _, _ = _cli(capsys, "check", str(f), "--wrt", "w5", "--claim", f"{D1}*out_h1",
                         "--wrt", "b2", "--claim", D1, "--format", "json")
    objs = json.loads(out)
    assert rc == 3 and [o["kind"] for o in objs] == ["correct", "missing_paths"]
    for o in objs:
        assert set(o) >= {"wrt", "claim", "correct", "kind", "paths", "counterexample", "check", "message"}
    assert objs[1]["paths"] == [["E", "out_o2", "net_o2", "b2"]]
    assert set(objs[1]["counterexample"]) == {"at", "claimed", "actual"}


def test_cli_shipped_example_and_text(capsys):
    rc, out, _, _ = _cli(capsys, "check", "student_answers")
    assert rc == 3 and "2 of 6 claims right" in out and "score: 2/6" in out
    rc, out, _, _ = _cli(capsys, "check", "student_answers", "--wrt", "w5")
    assert rc == 0 and "1 of 1 claim right" in out


HOSTILE = [
    ("code", ["--wrt", "w1", "--claim", "__import__('os').system('touch MARKER')"], "unexpected character"),
    ("eval", ["--wrt", "w1", "--claim", "eval(\"1\")"], "unexpected character"),
    ("huge constant power", ["--wrt", "w1", "--claim", "w1**(10**10**10)"], "too large"),
    ("huge power", ["--wrt", "w1", "--claim", "out_h1**(10**18)"], "too large for a claimed derivative"),
    ("huge power of a sum", ["--wrt", "w1", "--claim", "(out_h1 + i1)**100000"], "too large for a claimed derivative"),
    ("unknown name", ["--wrt", "w1", "--claim", "w9*i1"], "'w9', which is not in the graph"),
    ("unknown function", ["--wrt", "w1", "--claim", "sigmod(w1)"], "did you mean 'sigmoid'"),
    ("attribute", ["--wrt", "w1", "--claim", "w1.real"], "unexpected character"),
    ("empty", ["--wrt", "w1", "--claim", " "], "is empty"),
    ("nested", ["--wrt", "w1", "--claim", "(" * 200 + "w1" + ")" * 200], "nested too deeply"),
    ("too long", ["--wrt", "w1", "--claim", "+".join(["w1"] * 8000)], "too long"),
    ("log of a negative constant", ["--wrt", "w1", "--claim", "log(-1)*w1"], "not a real number"),
    ("division by zero", ["--wrt", "w1", "--claim", "w1/0"], "division by zero"),
    ("unknown wrt", ["--wrt", "w9", "--claim", "1"], "not a name in the graph"),
    ("the output as wrt", ["--wrt", "E", "--claim", "1"], "the output itself"),
    ("unpaired", ["--wrt", "w1", "--claim", "1", "--claim", "2"], "in pairs"),
    ("no claims", [], "no claims to check"),
    ("no such claim in the file", ["--wrt", "w1"], "no claim for w1"),
]


@pytest.mark.parametrize("name", [h[0] for h in HOSTILE])
def test_hostile_claims_exit_2(capsys, tmp_path, monkeypatch, name):
    _, args, what = next(h for h in HOSTILE if h[0] == name)
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "mazur.yaml"
    f.write_text(json.dumps(MAZUR))
    rc, out, err, seconds = _cli(capsys, "check", str(f), *args)
    assert rc == 2 and not out
    assert len(err.strip().splitlines()) == 1 and what in err and "Traceback" not in err
    assert err.startswith(f"derivator: {f}")
    assert seconds < 5
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("claim", ["exp(exp(exp(exp(exp(exp(w1))))))", "exp(10**10*w1)", "log(w1 - 5)",
                                   "(w1 + i1)**1000*(w1 + b1)**1000", "sqrt(-w1**2 - 1)"])
def test_claims_that_blow_up_are_wrong_not_hung(capsys, mazur, claim):
    t = time.perf_counter()
    v = derivator.check_claim(mazur, "w1", claim)
    assert time.perf_counter() - t < 10
    assert not v.correct and v.counterexample is not None


def test_make_claim_names_the_wrt(mazur):
    with pytest.raises(derivator.ExpressionError) as e:
        make_claim(mazur, "w1", "2*(w1")
    assert "in the claim for w1" in str(e.value) and str(e.value).startswith("mazur.yaml")


def test_relu_softplus_network_and_a_missing_relu_prime():
    """relu′ = [z > 0] vanishes at some points: the missing factor is still found and named."""
    d = derivator.load_dict({"equations": {"z1": "w1*x1 + b1", "h1": "relu(z1)", "z2": "w2*h1 + b2",
                                           "o": "softplus(z2)", "L": "(o - y)**2"}})
    r = derivator.check_claims(d, [("w2", "2*(o - y)*sigmoid(z2)*h1"),
                                   ("w1", "2*(o - y)*sigmoid(z2)*w2*max(0, z1)/z1*x1"),
                                   ("w1", "2*(o - y)*sigmoid(z2)*w2*x1")])
    assert [v.kind for v in r] == ["correct", "correct", "factor"]
    assert r[2].factor_parts[0].function == "relu" and "[z1 > 0]" in r[2].message
    assert r[2].counterexample.actual == 0 and not r[2].counterexample.given
