"""Determinism: documents and JSON are byte-identical across runs and PYTHONHASHSEED values.

Each command runs as its own process (the console script's entry point) under
three hash seeds; the outputs must be identical bytes. String hashing decides
the order of sets and of dicts built from them, so an order that leaks into a
document or into JSON shows up here.
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

SEEDS = ("0", "1", "12345")
EXAMPLES = ("seed_warmup", "seed_network")
COMMANDS = [["derive", "{ex}", "--format", "md"], ["derive", "{ex}", "--format", "tex"],
            ["derive", "{ex}", "--format", "json"], ["eval", "{ex}", "--format", "json"]]
LAYER_COMMANDS = [("derive", "two_layer_vector", "--format", "md"), ("derive", "two_layer_vector", "--format", "tex"),
                  ("derive", "seed_network", "--view", "layer", "--format", "md")]      # the layer view's documents


def _run(args, seed):
    env = dict(os.environ, PYTHONHASHSEED=seed)
    env.pop("DERIVATOR_DEBUG", None)
    code = "import sys; from derivator.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def outputs():
    jobs = [(ex, tuple(a.format(ex=ex) for a in cmd), seed) for ex in EXAMPLES for cmd in COMMANDS for seed in SEEDS]
    jobs += [(cmd[1], cmd, seed) for cmd in LAYER_COMMANDS for seed in SEEDS]
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        results = list(pool.map(lambda job: _run(list(job[1]), job[2]), jobs))
    return {(args, seed): r for (_, args, seed), r in zip(jobs, results)}


@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.parametrize("command", [" ".join(c) for c in COMMANDS])
def test_output_is_identical_across_hash_seeds(outputs, example, command):
    args = tuple(a.format(ex=example) for a in command.split())
    runs = [outputs[(args, seed)] for seed in SEEDS]
    for rc, out, err in runs:
        assert rc == 0, err.decode(errors="replace")
        assert out
    first = runs[0][1]
    for seed, (_, out, _) in zip(SEEDS[1:], runs[1:]):
        assert out == first, f"`derivator {' '.join(args)}` differs between PYTHONHASHSEED={SEEDS[0]} and {seed}"


@pytest.mark.parametrize("command", [" ".join(c) for c in LAYER_COMMANDS])
def test_layer_documents_are_identical_across_hash_seeds(outputs, command):
    runs = [outputs[(tuple(command.split()), seed)] for seed in SEEDS]
    for rc, out, err in runs:
        assert rc == 0, err.decode(errors="replace")
        assert out
    assert len({out for _, out, _ in runs}) == 1, f"`derivator {command}` differs between hash seeds"


def test_error_messages_are_identical_across_hash_seeds(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("equations:\n  u: v + a\n  v: w + b\n  w: u * c\nwtr: [a]\n", encoding="utf-8")
    cyc = tmp_path / "cycle.yaml"
    cyc.write_text("equations:\n  u: v + a\n  v: w + b\n  w: u * c\n", encoding="utf-8")
    for path in (bad, cyc):
        runs = [_run(["derive", str(path)], seed) for seed in SEEDS]
        assert {rc for rc, _, _ in runs} == {2}
        assert len({err for _, _, err in runs}) == 1
