"""The derivation stage: steps as data, every step checked, and failures that stop everything."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sympy as sp

import derivator
import derivator.api
import derivator.rules
from derivator.cli import main
from derivator.derivation import Workspace
from derivator.derivation import derive as derive_graph
from derivator.expr import symbol
from derivator.functions import Max2, Min2, relu, sigmoid, softplus

KINDS = ("definition", "paths", "local", "chain", "accumulate", "result")

# examples derived in the scalar view by default (the layer view has its own tests: test_layer_view.py)
SCALAR_EXAMPLES = [n for n in derivator.examples() if derivator.api.default_view(derivator.load(n)) == "scalar"]


def S(name):
    return symbol(name)


def at_point(expr, values: dict) -> float:
    env = {S(k): sp.Float(float(v), 30) for k, v in values.items()}
    return float(expr.xreplace(env).rewrite(sp.exp).evalf(30))


@pytest.mark.parametrize("name", SCALAR_EXAMPLES)
def test_json_steps_structure(name):
    d = derivator.load(name)
    for w in d.wrt:
        proof = derivator.derive(d, w)
        j = proof.to_json()
        assert j["output"] == d.output and j["wrt"] == w
        assert j["path_count"] == proof.path_count and j["verified"] is True
        assert j["result"] == sp.sstr(proof.result)
        kinds = [s["kind"] for s in j["steps"]]
        assert set(kinds) <= set(KINDS), kinds
        # the order of the steps: definitions, paths, local partials, chain, accumulation, result
        assert kinds == sorted(kinds, key=KINDS.index), kinds
        assert kinds[-1] == "result" and kinds.count("result") == 1 and kinds.count("paths") == 1
        assert {"definition", "paths", "local", "accumulate", "result"} <= set(kinds)
        if proof.all_paths_shown:
            assert "chain" in kinds
        paths_step = next(s for s in j["steps"] if s["kind"] == "paths")
        assert paths_step["count"] == proof.path_count
        assert [tuple(p) for p in paths_step["shown"]] == list(proof.paths)
        defined = [s["name"] for s in j["steps"] if s["kind"] == "definition"]
        assert defined == [n for n in proof.cone.nodes if not derivator.graph(d).is_leaf(n)]
        locals_ = [s for s in j["steps"] if s["kind"] == "local"]
        assert [(s["of"], s["wrt"]) for s in locals_] == list(proof.cone.edges)
        for s in locals_:
            assert s["rules"], f"∂{s['of']}/∂{s['wrt']} names no rule"
            assert s["check"]["passed"] is True and s["check"]["method"] in ("identical", "symbolic", "numeric")
        assert j["steps"][-1]["check"]["passed"] is True
        assert j["check"]["method"] in ("symbolic", "numeric")
        json.dumps(j)   # plain JSON


@pytest.mark.parametrize("name", SCALAR_EXAMPLES)
def test_every_local_partial_has_rules_and_a_passed_check(name):
    d = derivator.load(name)
    for w in d.wrt:
        proof = derivator.derive(d, w)
        assert proof.verified and not proof.failures
        assert len(proof.partials) == len(proof.cone.edges)
        for p in proof.partials:
            assert p.rules and all(isinstance(r, str) and r for r in p.rules)
            assert p.check.passed, (p.child, p.parent, p.check.detail)
            assert p.check.detail


def test_path_sum_is_the_sum_over_paths_of_products_of_partials():
    d = derivator.load("two_outputs")
    proof = derivator.derive(d, "w1")
    assert proof.path_count == 2 and proof.all_paths_shown
    expected = sp.Add(*[sp.Mul(*[proof.partial(a, b).expr for a, b in zip(p, p[1:])]) for p in proof.paths])
    assert sp.expand(proof.path_sum - expected) == 0
    assert sp.expand(proof.path_sum - proof.result) == 0


def test_colah_b_is_c_plus_d_checked_symbolically():
    proof = derivator.derive(derivator.load("colah"), "b")
    assert proof.result == S("c") + S("d")
    assert proof.check.method == "symbolic" and proof.check.passed
    assert proof.path_count == 2 and proof.paths == (("e", "c", "b"), ("e", "d", "b"))
    assert proof.partial("e", "c").expr == S("d") and proof.partial("e", "d").expr == S("c")
    assert proof.partial("c", "b").expr == 1 and proof.partial("d", "b").expr == 1
    assert "product rule" in proof.partial("e", "c").rules or "constant multiple rule" in proof.partial("e", "c").rules
    assert proof.to_json()["result"] == "c + d"


def test_warmup_dF_da_is_5b():
    d = derivator.load("seed_warmup")
    proof = derivator.derive(d, "a")
    assert proof.result == 5 * S("b")
    assert proof.verified and proof.check.method == "symbolic"
    assert proof.paths == (("F", "v", "u", "a"),)
    assert derivator.derive(d, "c").result == 5
    assert derivator.derive(d, "b").result == 5 * S("a")


def test_seed_network_dL_dw5_at_the_point():
    d = derivator.load("seed_network")
    proof = derivator.derive(d, "w5")
    assert proof.verified and proof.path_count == 1
    assert proof.paths == (("L", "o1", "z3", "w5"),)
    assert proof.partial("o1", "z3").expr == S("o1") * (1 - S("o1"))
    assert "σ′ = σ(1 − σ)" in proof.partial("o1", "z3").rules
    values = derivator.compile(d)(**d.at_dict).values
    assert at_point(proof.result, values) == pytest.approx(-0.14182468695716405, rel=1e-12)
    assert {s.name for s in proof.result.free_symbols} <= set(derivator.graph(d).names)


def test_local_partials_are_shared_across_derivations():
    d = derivator.load("two_outputs")
    a = derivator.derive(d, "w1")
    b = derivator.derive(d, "w2")
    assert a.partial("L", "o1") is b.partial("L", "o1")


def test_derive_without_workspace():
    d = derivator.load("colah")
    proof = derive_graph(derivator.graph(d), "b")
    assert proof.result == S("c") + S("d") and proof.verified


def test_every_rule_of_the_table_is_used_and_checked():
    d = derivator.loads("""
equations:
  p: exp(a*b) + log(c) - sin(a) * cos(b) + a*sin(a)
  q: tanh(p) / (1 + c**2) + sqrt(c) * abs(a - b) + a/(a + 2*b) + c**c
  r: relu(q - a) + softplus(b*q) + sigmoid(p)
  s: max(r, q, a) - min(p, b) + a**b + 2**c + 3*c
output: s
""")
    seen = set()
    for w in d.wrt:
        proof = derivator.derive(d, w)
        assert proof.verified, proof.failures
        for p in proof.partials:
            assert p.check.passed
            seen.update(p.rules)
    table = {r.name for r in derivator.rules.RULES.values()}
    assert seen <= table, f"rules cited that are not in the table: {seen - table}"
    for cls in (sp.Add, sp.Mul, sp.Pow, "constant", "quotient", "exponential", "general power", "chain",
                "identity", sigmoid, sp.tanh, sp.exp, sp.log, softplus, relu, sp.sin, sp.cos, sp.Abs, Max2, Min2):
        assert derivator.rules.RULES[cls].name in seen, f"rule never exercised: {derivator.rules.RULES[cls].name}"


def test_output_is_byte_for_byte_the_same_under_other_hash_seeds():
    """No set or dict order reaches the output: two processes, two hash seeds, one result."""
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        p = subprocess.run([sys.executable, "-m", "derivator.cli", "derive", "two_outputs", "--format", "json"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]


# ------------------------------------------------------------ fault injection ---

def _clear_api_caches():
    derivator.api._graph.cache_clear()
    derivator.api.workspace.cache_clear()
    for value in vars(derivator.api).values():      # and any other cache the API keeps
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture
def wrong_sigmoid_rule(monkeypatch):
    """σ′ = σ instead of σ(1 − σ), with every cache cleared before and after."""
    _clear_api_caches()
    bad = derivator.rules.Rule("σ′ = σ(1 − σ)", r"\sigma'(u) = \sigma(u)(1 - \sigma(u))", lambda u, f: f)
    monkeypatch.setitem(derivator.rules.RULES, sigmoid, bad)
    yield
    monkeypatch.undo()
    _clear_api_caches()


def test_a_wrong_rule_is_caught(wrong_sigmoid_rule):
    d = derivator.load("seed_network")
    proof = derivator.derive(d, "w5")
    assert proof.verified is False
    assert proof.failures
    bad = [p for p in proof.partials if not p.check.passed]
    assert [(p.child, p.parent) for p in bad] == [("o1", "z3")]
    assert proof.to_json()["verified"] is False
    with pytest.raises(derivator.VerificationError):
        proof.to_markdown()
    with pytest.raises(derivator.VerificationError):
        proof.to_latex()
    # a fresh workspace sees the same failure
    fresh = derive_graph(derivator.graph(d), "w1", workspace=Workspace(derivator.graph(d), d.at_dict))
    assert fresh.verified is False


@pytest.mark.parametrize("fmt", ["md", "tex", "json"])
def test_a_wrong_rule_makes_the_cli_fail(wrong_sigmoid_rule, capsys, tmp_path, fmt):
    capsys.readouterr()
    rc = main(["derive", "seed_network", "--format", fmt])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == ""
    assert "verification failed" in err and "Traceback" not in err
    target = tmp_path / f"out.{fmt}"
    assert main(["derive", "seed_network", "--format", fmt, "-o", str(target)]) == 1
    assert not target.exists()


def test_the_rule_table_is_restored_after_fault_injection():
    d = derivator.load("seed_network")
    assert derivator.derive(d, "w5").verified


def test_a_wrong_rule_stops_compile_and_eval(wrong_sigmoid_rule, capsys):
    d = derivator.load("seed_network")
    capsys.readouterr()
    rc = main(["eval", "seed_network", "--format", "json"])
    out, _ = capsys.readouterr()
    assert rc == 1 and out == ""
    with pytest.raises(derivator.VerificationError):
        derivator.compile(d)


@pytest.mark.parametrize("spec", [
    {"network": {"inputs": 3, "layers": [{"units": 4}, {"units": 3, "activation": "softmax"}],
                 "loss": "cross_entropy"}},
    {"network": {"inputs": 2, "layers": [{"units": 3}] * 9 + [{"units": 1}], "loss": "mse"}},   # δ-stated results
    {"equations": {"u": "a*b", "v": "c + 1", "F": "2*u"}, "output": "F"},                    # a leaf off every path
])
def test_json_text_is_json_dumps_of_the_objects(spec):
    """derive --format json writes one derivation at a time, with recurring steps printed once per
    graph: the text is exactly json.dumps(indent=1) of the derivations' objects."""
    from derivator.render import derivations_json_text
    d = derivator.load_dict(spec)
    ders = derivator.derive_all(d, view="scalar")
    objs = [x.to_json() for x in ders]
    assert "".join(derivations_json_text(ders, as_list=True)) == json.dumps(objs, indent=1, ensure_ascii=False)
    assert "".join(derivations_json_text(ders[:1], as_list=False)) == json.dumps(objs[0], indent=1, ensure_ascii=False)
    assert "".join(derivations_json_text([], as_list=True)) == "[]"


def test_json_text_of_every_example_through_the_cli(capsys):
    for name in derivator.examples():
        assert main(["derive", name, "--format", "json", "--quiet"]) == 0
        out = capsys.readouterr().out
        ders = derivator.derive_all(derivator.load(name))
        objs = [x.to_json() for x in ders]
        assert json.loads(out) == (objs[0] if len(objs) == 1 else objs)
        assert out == json.dumps(objs[0] if len(objs) == 1 else objs, indent=1, ensure_ascii=False) + "\n"


def test_check_of_large_graphs_is_reverse_accumulation_once_per_point():
    """Past the size where the output is composed in the leaves, a result is checked against reverse
    accumulation of sympy's own partials, computed once per point for every parameter."""
    d = derivator.load_dict({"network": {"inputs": 3, "layers": [{"units": 4}, {"units": 4}, {"units": 2}],
                                         "loss": "mse"}})
    ders = derivator.derive_all(d, view="scalar")
    assert all(x.verified for x in ders)
    assert all("reverse accumulation of sympy's diff" in x.check.detail for x in ders)
    ws = derivator.api.workspace(d)
    assert len(ws._refadj) == len(ws.points.envs)          # one reverse pass per point, for all 38
