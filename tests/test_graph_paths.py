"""The graph and paths stages: order, immutability, exact counts, lazy enumeration."""
from __future__ import annotations

import dataclasses
import inspect
import json
import random
import time
from itertools import islice

import pytest

import derivator
from derivator.cli import main
from derivator.graph import build_graph
from derivator.paths import cone, count_paths, first_paths, iter_paths, routes_down


def eqs(mapping: dict, **extra):
    return derivator.load_dict({"equations": mapping, **extra})


def graph_of(mapping: dict, **extra):
    return build_graph(eqs(mapping, **extra))


# ------------------------------------------------------------ graph ---

def test_node_order_is_the_file_order():
    d = derivator.load("seed_network_equations")
    g = derivator.graph(d)
    assert [n.name for n in g.nodes] == ["z1", "h1", "z2", "h2", "z3", "o1", "L"]
    assert [n.name for n in g.nodes] == [e.name for e in d.equations]
    assert g.output == "L"
    assert g.index == {n.name: i for i, n in enumerate(g.nodes)}


def test_node_order_with_forward_references_keeps_the_file_order_where_it_can():
    g = graph_of({"a1": "x + 1", "out": "a1*v", "v": "x*2", "last": "out + a1"}, output="last")
    # `out` needs `v`, defined after it: v moves up just enough, everything else keeps its place
    assert [n.name for n in g.nodes] == ["a1", "v", "out", "last"]
    g = graph_of({"L": "(y - o)**2", "o": "sigmoid(z)", "z": "w*x + b"}, output="L")
    assert [n.name for n in g.nodes] == ["z", "o", "L"]


def test_leaves_in_order_of_first_use():
    g = graph_of({"u": "b*a + c", "v": "d - a + u", "w": "u*v*e"})
    # the text's order, not sympy's (which prints a*b)
    assert g.leaves == ("b", "a", "c", "d", "e")
    assert derivator.load_dict({"equations": {"u": "b*a + c", "v": "d - a + u", "w": "u*v*e"}}).wrt == \
        ("b", "a", "c", "d", "e")
    # a forward reference: leaves still follow the file's text
    g = graph_of({"L": "q*k", "q": "m + n"}, output="L")
    assert g.leaves == ("k", "m", "n")
    assert g.names == ("k", "m", "n", "q", "L")


def test_parents_and_children_are_ordered():
    g = graph_of({"u": "b*a + c", "v": "d - a + u", "w": "u*v*a"})
    assert g.node("u").parents == ("b", "a", "c")
    assert g.node("v").parents == ("d", "a", "u")
    assert g.node("w").parents == ("u", "v", "a")
    assert g.children["a"] == ("u", "v", "w")
    assert g.children["u"] == ("v", "w")
    assert g.children["w"] == ()
    assert g.edge_count == 9
    assert all(isinstance(v, tuple) for v in g.children.values())
    assert g.ancestors("v") == ("b", "a", "c", "d", "u", "v")


def test_a_parent_used_twice_is_one_edge():
    g = graph_of({"c": "a + b", "e": "c*c + c"})
    assert g.node("e").parents == ("c",)
    assert count_paths(g, "a") == 1


def test_graph_is_frozen_and_deterministic():
    d = derivator.load("two_outputs")
    g = build_graph(d)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.output = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.nodes[0].name = "x"
    with pytest.raises(TypeError):
        g.children["x1"] = ()
    assert isinstance(g.nodes, tuple) and isinstance(g.leaves, tuple)
    assert all(isinstance(n.parents, tuple) for n in g.nodes)
    assert build_graph(d) == g


def test_network_expansion_flat_numbering():
    """SPEC §1.2: in a 2-2-2 network, w1: x1→h1, w2: x2→h1, w3: x1→h2, w4: x2→h2, w5: h1→o1, …"""
    d = derivator.loads("""
network:
  inputs: 2
  layers: [{units: 2, activation: sigmoid}, {units: 2, activation: sigmoid}]
  bias: per_neuron
  loss: half_sse
  naming: flat
""")
    g = derivator.graph(d)
    text = {n.name: n.text for n in g.nodes}
    assert text["z1"] == "w1*x1 + w2*x2 + b1"
    assert text["z2"] == "w3*x1 + w4*x2 + b2"
    assert text["z3"] == "w5*h1 + w6*h2 + b3"
    assert text["z4"] == "w7*h1 + w8*h2 + b4"
    assert d.wrt == tuple(f"w{i}" for i in range(1, 9)) + tuple(f"b{i}" for i in range(1, 5))
    assert g.leaves[:3] == ("w1", "x1", "w2")
    assert {"y1", "y2"} <= set(g.leaves)
    assert g.output == "L"


def test_network_expansion_shared_bias_and_layered_names():
    d = derivator.loads("""
network:
  inputs: 2
  layers: [{units: 2, activation: tanh}, {units: 1, activation: identity}]
  bias: shared
  naming: layered
""")
    g = derivator.graph(d)
    text = {n.name: n.text for n in g.nodes}
    assert text["z_1_1"] == "w_1_1_1*x1 + w_1_1_2*x2 + b_1"
    assert text["z_1_2"] == "w_1_2_1*x1 + w_1_2_2*x2 + b_1"
    assert text["z_2_1"] == "w_2_1_1*a_1_1 + w_2_1_2*a_1_2 + b_2"
    assert d.wrt == ("w_1_1_1", "w_1_1_2", "w_1_2_1", "w_1_2_2", "w_2_1_1", "w_2_1_2", "b_1", "b_2")
    assert dict(d.display)["w_1_2_1"] == "w^{(1)}_{21}"
    assert count_paths(g, "b_1") == 2


# ------------------------------------------------------------ paths ---

def test_colah_paths_in_a_fixed_order():
    g = derivator.graph(derivator.load("colah"))
    assert list(iter_paths(g, "b")) == [("e", "c", "b"), ("e", "d", "b")]
    assert list(iter_paths(g, "a")) == [("e", "c", "a")]
    assert count_paths(g, "b") == 2 and count_paths(g, "c") == 1


def test_path_order_follows_parent_order():
    g = graph_of({"p": "x + y", "q": "y*x", "r": "p*q", "s": "q - p", "o": "s + r"}, output="o")
    # o's parents (s, r); s's (q, p); r's (p, q); p's (x, y); q's (y, x)
    assert list(iter_paths(g, "x")) == [
        ("o", "s", "q", "x"), ("o", "s", "p", "x"), ("o", "r", "p", "x"), ("o", "r", "q", "x")]
    assert list(iter_paths(g, "x")) == list(iter_paths(g, "x"))
    assert first_paths(g, "x", 2) == (("o", "s", "q", "x"), ("o", "s", "p", "x"))
    assert count_paths(g, "x") == 4 and count_paths(g, "p") == 2


def test_no_paths():
    g = graph_of({"u": "a*b", "v": "c + 1", "F": "2*u"}, output="F")
    assert count_paths(g, "c") == 0
    assert list(iter_paths(g, "c")) == []
    assert cone(g, "c").count == 0 and cone(g, "c").nodes == ()


def test_cone():
    g = derivator.graph(derivator.load("two_outputs"))
    cn = cone(g, "w1")
    assert cn.count == 2 and cn.output == "L" and cn.target == "w1"
    assert set(cn.nodes) == {"w1", "z1", "h1", "z4", "o1", "z5", "o2", "L"}
    order = [x for x in g.names if x in set(cn.nodes)]
    assert list(cn.nodes) == order
    assert set(cn.edges) == {("L", "o1"), ("L", "o2"), ("o1", "z4"), ("o2", "z5"), ("z4", "h1"),
                             ("z5", "h1"), ("h1", "z1"), ("z1", "w1")}
    assert dict(cn.ways)["L"] == 2 and dict(cn.ways)["h1"] == 1 and dict(cn.ways)["w1"] == 1
    # every cone edge lies on some path, and every path edge is a cone edge
    on_paths = {(a, b) for p in iter_paths(g, "w1") for a, b in zip(p, p[1:])}
    assert on_paths == set(cn.edges)


def _random_dag(rng: random.Random, n_leaves: int, n_nodes: int) -> dict:
    leaves = [f"x{i}" for i in range(n_leaves)]
    names: list[str] = list(leaves)
    mapping = {}
    for i in range(n_nodes):
        k = rng.randint(1, min(4, len(names)))
        parents = rng.sample(names, k)
        ops = [rng.choice(["+", "*", "-"]) for _ in parents[1:]]
        text = parents[0] + "".join(f" {op} {p}" for op, p in zip(ops, parents[1:]))
        if rng.random() < 0.3:
            text = f"tanh({text})"
        name = f"n{i}"
        mapping[name] = text
        names.append(name)
    # the output uses every sink so that the whole graph hangs below it
    used = {p for t in mapping.values() for p in t.replace("tanh(", " ").replace(")", " ").split() if p[0] in "xn"}
    sinks = [n for n in mapping if n not in used]
    mapping["out"] = " + ".join(sinks)
    return mapping


def _reference_paths(mapping: dict, output: str, target: str) -> list[tuple[str, ...]]:
    """Depth-first, parents in order of first use in the text: the fixed order, written independently."""
    parents = {}
    for name, text in mapping.items():
        seen = []
        for tok in text.replace("tanh(", " ").replace(")", " ").replace("(", " ").split():
            if tok[0].isalpha() and tok not in seen:
                seen.append(tok)
        parents[name] = seen
    out = []

    def walk(path):
        last = path[-1]
        if last == target:
            out.append(tuple(path))
            return
        for p in parents.get(last, ()):
            walk(path + [p])
    walk([output])
    return out


@pytest.mark.parametrize("seed", range(40))
def test_counts_by_dp_agree_with_enumeration_on_random_dags(seed):
    rng = random.Random(seed)
    mapping = _random_dag(rng, rng.randint(1, 4), rng.randint(1, 9))
    g = graph_of(mapping, output="out")
    for target in g.names:
        if target == "out":
            continue
        paths = list(iter_paths(g, target))
        assert count_paths(g, target) == len(paths)
        assert len(set(paths)) == len(paths)
        assert paths == _reference_paths(mapping, "out", target)
        for p in paths:
            assert p[0] == "out" and p[-1] == target
            for child, parent in zip(p, p[1:]):
                assert parent in g.node(child).parents
        assert routes_down(g, target)["out"] == len(paths)
        assert cone(g, target).count == len(paths)


def _deep(depth: int, width: int = 3):
    layer = f"    - {{units: {width}, activation: tanh}}\n"
    text = (f"network:\n  inputs: {width}\n  layers:\n" + layer * depth
            + "    - {units: 1, activation: sigmoid}\n  bias: per_neuron\n  loss: mse\n  naming: flat\n")
    return derivator.loads(text, source=f"deep{depth}.yaml")


@pytest.mark.parametrize("depth", [12, 40])
def test_deep_network_counts_are_exact(depth):
    d = _deep(depth)
    g = derivator.graph(d)
    t = time.perf_counter()
    # w1 (x1 -> first hidden neuron): one neuron per hidden layer below it is free to choose
    assert count_paths(g, "w1") == 3 ** (depth - 1)
    assert count_paths(g, "b1") == 3 ** (depth - 1)
    assert count_paths(g, "x1") == 3 ** depth            # an input feeds every first-layer neuron
    assert count_paths(g, "z1") == 3 ** (depth - 1)
    last_w = [w for w in d.wrt if w.startswith("w")][-1]   # the last weight: h -> o1
    assert last_w == f"w{9 * depth + 3}" and count_paths(g, last_w) == 1
    assert time.perf_counter() - t < 2.0, "counting must not enumerate"
    assert isinstance(count_paths(g, "x1"), int)


def test_deep_network_first_paths_come_lazily():
    d = _deep(40)
    g = derivator.graph(d)
    it = iter_paths(g, "w1")
    assert inspect.isgenerator(it)
    t = time.perf_counter()
    first = list(islice(it, 5))
    assert time.perf_counter() - t < 1.0
    assert len(first) == 5 and len(set(first)) == 5
    for p in first:
        assert p[0] == "L" and p[-1] == "w1" and len(p) == 2 + 2 * 40 + 2
        for child, parent in zip(p, p[1:]):
            assert parent in g.node(child).parents
    assert first == list(first_paths(g, "w1", 5))


def test_deep_network_derivation_and_cli_shorten_the_paths(capsys, tmp_path):
    d = _deep(12)
    proof = derivator.derive(d, "w1", view="scalar")     # 12 layers: the layer view is the default
    assert proof.path_count == 3 ** 11
    assert len(proof.paths) == proof.max_paths and not proof.all_paths_shown
    assert proof.verified, proof.failures
    path = tmp_path / "deep12.yaml"
    path.write_text("network:\n  inputs: 3\n  layers:\n" + "    - {units: 3, activation: tanh}\n" * 12
                    + "    - {units: 1, activation: sigmoid}\n  bias: per_neuron\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["paths", str(path), "--wrt", "w1", "--limit", "3", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["path_count"] == 3 ** 11 and len(got["paths"]) == 3
    assert [tuple(p) for p in got["paths"]] == list(first_paths(derivator.graph(d), "w1", 3))
