"""Every public case against its expected numbers, through the CLI (SPEC §2).

The cases live in ``../shared/cases/`` next to the repository; in a clone
without that folder the same files ship inside the package as examples
(run by name, SPEC §2) and ``tests/cases_expected.json`` is the copy of
``expected.json`` (tests below keep the copies identical).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import derivator
from derivator.cli import main
from derivator.spec import example_text

HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[2] / "shared" / "cases"
LOCAL_EXPECTED = HERE / "cases_expected.json"
USE_SHARED = (SHARED / "expected.json").is_file()
EXPECTED_FILE = SHARED / "expected.json" if USE_SHARED else LOCAL_EXPECTED

EXPECTED: dict = json.loads(EXPECTED_FILE.read_text(encoding="utf-8"))
CASES = sorted(EXPECTED)
DERIVE = [(case, name) for case in CASES for name in EXPECTED[case].get("path_count", {})]

# network file -> its equations twin
TWINS = sorted((c, c.replace(".yaml", "_equations.yaml")) for c in CASES
               if c.replace(".yaml", "_equations.yaml") in EXPECTED)


def close(a, b, rel=1e-9) -> bool:
    return isinstance(a, (int, float)) and math.isfinite(a) and abs(a - b) <= rel * max(1.0, abs(b))


def run_json(capsys, argv):
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, f"derivator {' '.join(argv)}: exit {rc}: {err}"
    return json.loads(out)


def case_path(case: str) -> str:
    """The file in ../shared/cases, or else the shipped example of that name."""
    if USE_SHARED:
        path = SHARED / case
        assert path.is_file(), f"{case} is listed in expected.json but missing from {SHARED}"
        return str(path)
    stem = case[:-len(".yaml")]
    assert stem in derivator.examples(), f"{case} does not ship as an example"
    return stem


def test_cases_found():
    assert CASES, "no cases"
    assert {"colah.yaml", "seed_warmup.yaml", "seed_network.yaml"} <= set(CASES)
    for case in CASES:
        case_path(case)


def test_expected_copy_is_current():
    """tests/cases_expected.json is the fallback copy of ../shared/cases/expected.json."""
    if not (SHARED / "expected.json").is_file():
        pytest.skip("../shared/cases is not present in this clone")
    assert json.loads(LOCAL_EXPECTED.read_text()) == json.loads((SHARED / "expected.json").read_text()), \
        "tests/cases_expected.json is stale: copy ../shared/cases/expected.json over it"


@pytest.mark.parametrize("case", sorted(p.name for p in SHARED.glob("*.yaml")) if SHARED.is_dir() else [])
def test_shipped_examples_are_the_shared_cases(case):
    stem = case[:-len(".yaml")]
    assert stem in derivator.examples(), f"{case} does not ship as an example"
    assert example_text(stem) == (SHARED / case).read_text(encoding="utf-8"), \
        f"the shipped example {stem} differs from ../shared/cases/{case}"


@pytest.mark.parametrize("case", CASES)
def test_eval_json(case, capsys):
    want = EXPECTED[case]
    got = run_json(capsys, ["eval", case_path(case), "--format", "json"])
    fails = []
    for field, w in want.items():
        if field == "path_count":
            continue
        if isinstance(w, dict):
            have = got.get(field) or {}
            fails += [f"{field}[{k}] = {have.get(k)}, expected {v}" for k, v in w.items() if not close(have.get(k), v)]
        elif isinstance(w, str):
            if got.get(field) != w:
                fails.append(f"{field} = {got.get(field)!r}, expected {w!r}")
        elif not close(got.get(field), w):
            fails.append(f"{field} = {got.get(field)}, expected {w}")
    assert not fails, "\n".join(fails)


@pytest.mark.parametrize("case", CASES)
def test_eval_json_shape(case, capsys):
    """SPEC §2.1: values has every node and leaf, gradient every wrt, adjoints every node."""
    d = derivator.load(case_path(case))
    g = derivator.graph(d)
    got = run_json(capsys, ["eval", case_path(case), "--format", "json"])
    assert got["output"] == d.output
    assert set(got["values"]) == set(g.names)
    assert list(got["gradient"]) == list(d.wrt)
    assert set(got["adjoints"]) == {n.name for n in g.nodes}
    assert got["adjoints"][d.output] == 1.0
    assert got["value"] == got["values"][d.output]
    if d.lr is not None:
        assert list(got["updated"]) == list(d.wrt)
        for k, v in got["updated"].items():
            assert close(v, d.at_dict[k] - d.lr * got["gradient"][k], 1e-15)
    else:
        assert "updated" not in got


def test_eval_lr_and_at_override(capsys):
    """The SPEC's own example (§2.1): colah with --lr 0.1; --at overrides the file."""
    got = run_json(capsys, ["eval", case_path("colah.yaml"), "--lr", "0.1", "--format", "json"])
    assert got["updated"] == pytest.approx({"a": 1.8, "b": 0.5}, rel=1e-12)
    got = run_json(capsys, ["eval", case_path("colah.yaml"), "--at", "a=3", "--at", "b=-2", "--format", "json"])
    # e = (a + b)(b + 1): de/da = b + 1, de/db = a + 2b + 1
    assert got["value"] == pytest.approx((3 - 2) * (-2 + 1), rel=1e-15)
    assert got["gradient"] == pytest.approx({"a": -1.0, "b": 0.0}, abs=1e-15)


@pytest.mark.parametrize("case,name", DERIVE)
def test_derive_json(case, name, capsys):
    n = EXPECTED[case]["path_count"][name]
    d = run_json(capsys, ["derive", case_path(case), "--wrt", name, "--format", "json"])
    assert isinstance(d, dict), "one --wrt gives one JSON object"
    assert d["output"] == EXPECTED[case].get("output", d["output"])
    assert d["wrt"] == name
    assert d["path_count"] == n
    assert len(d["paths"]) == n
    assert all(p[0] == d["output"] and p[-1] == name for p in d["paths"])
    assert len({tuple(p) for p in d["paths"]}) == n, "paths repeat"
    assert d["verified"] is True
    assert isinstance(d["result"], str) and d["result"]
    assert d["steps"][-1]["kind"] == "result" and d["steps"][-1]["expression"] == d["result"]


@pytest.mark.parametrize("case", CASES)
def test_paths_json_agrees_with_derive(case, capsys):
    for name, n in EXPECTED[case]["path_count"].items():
        p = run_json(capsys, ["paths", case_path(case), "--wrt", name, "--format", "json"])
        assert p["path_count"] == n and len(p["paths"]) == n and p["wrt"] == name


def test_derive_several_wrt_is_a_list(capsys):
    got = run_json(capsys, ["derive", case_path("colah.yaml"), "--wrt", "a", "--wrt", "b", "--format", "json"])
    assert isinstance(got, list) and [x["wrt"] for x in got] == ["a", "b"]
    assert [x["path_count"] for x in got] == [1, 2]


def test_colah_contract_example(capsys):
    """SPEC §2.2's example, word for word where it is exact."""
    got = run_json(capsys, ["derive", case_path("colah.yaml"), "--wrt", "b", "--format", "json"])
    assert got["paths"] == [["e", "c", "b"], ["e", "d", "b"]]
    assert got["path_count"] == 2 and got["verified"] is True


def _numbers(path):
    d = derivator.load(path)
    out = derivator.compile(d)(**d.at_dict)
    return d, out


def _rel(a, b):
    return abs(float(a) - float(b)) / max(1.0, abs(float(b)))


@pytest.mark.parametrize("net,eqs", TWINS)
def test_network_and_equations_twins_agree(net, eqs):
    dn, on = _numbers(case_path(net))
    de, oe = _numbers(case_path(eqs))
    assert dn.form == "network" and de.form == "equations"
    assert dn.output == de.output
    assert set(dn.wrt) == set(de.wrt)
    assert dn.at_dict == de.at_dict and dn.lr == de.lr
    assert _rel(on.value, oe.value) <= 1e-12
    for k in de.wrt:
        assert _rel(on.gradient[k], oe.gradient[k]) <= 1e-12, k
    common = set(oe.values) & set(on.values)
    assert {n.name for n in derivator.graph(de).nodes} <= common, "the twin names its nodes differently"
    for k in common:
        assert _rel(on.values[k], oe.values[k]) <= 1e-12, k
    for k in set(oe.adjoints) & set(on.adjoints):
        assert _rel(on.adjoints[k], oe.adjoints[k]) <= 1e-12, k


@pytest.mark.parametrize("net,eqs", TWINS)
def test_twins_have_the_same_graph(net, eqs):
    gn = derivator.graph(derivator.load(case_path(net)))
    ge = derivator.graph(derivator.load(case_path(eqs)))
    assert [n.name for n in gn.nodes] == [n.name for n in ge.nodes]
    assert set(gn.leaves) == set(ge.leaves)
    for a, b in zip(gn.nodes, ge.nodes):
        assert set(a.parents) == set(b.parents), a.name
        assert (a.expr - b.expr).expand() == 0, a.name
