"""Reliability (issue 7): no false alarms, no hangs, no data loss, exit 2 for every bad input.

Each test names the item of issue 7 it holds the project to. The checks of a
derivation must never call a right derivation wrong (precision is raised, or
another point taken, and the check's detail says so); their high-precision
points have a budget; ``-o`` never writes over its input or leaves debris;
every bad input is one line and exit status 2.
"""
import json
import os
import subprocess
import sys
import time

import mpmath
import pytest
import sympy as sp

import derivator
from derivator import check as checks
from derivator.cli import main
from derivator.expr import symbol
from derivator import mpeval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(argv, capsys):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:     # argparse
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, out, err, *words):
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("derivator: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    for w in words:
        assert w in err, (w, err)


def _derive_json(tmp_path, capsys, text, *extra):
    path = tmp_path / "def.yaml"
    path.write_text(text, encoding="utf-8")
    rc, out, err = _cli(["derive", path, "--format", "json", *extra], capsys)
    assert rc == 0, err
    data = json.loads(out)
    return data if isinstance(data, list) else [data]


class _Deadline:
    """Fail (TimeoutError) instead of hanging: a SIGALRM after ``seconds``."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        import signal

        def alarm(*_):
            raise TimeoutError(f"still running after {self.seconds} s")
        self.old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        import signal
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)


def _run(args, timeout=20, cwd=None, stdin=None):
    """The CLI in a fresh process, with a memory limit (a runaway evaluation fails, never the machine)."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "derivator", *map(str, args)], capture_output=True, timeout=timeout,
                       cwd=cwd, env=env, preexec_fn=limit, stdin=stdin)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), \
        time.monotonic() - start


# ------------------------------------------------ item 2: no false "NOT equal" ---


# ------------------------------------------------ item 8: budgets, no hangs ---


# ------------------------------------------------ item 3: numbers are ASCII decimals ---

def _at(value):
    return f"equations:\n  F: a*2\nat: {{a: {value}}}\n"


# ------------------------------------------------ item 4: eval prints numbers, never NaN/Infinity ---

def _strict_json(text):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------ items 5, 6, 7: -o never loses data ---

DEF = "equations:\n  u: a*b\n  F: 5*u\nat: {a: 2, b: -3}\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(DEF, encoding="utf-8")
    return tmp_path


def _debris(path):
    return [p for p in os.listdir(path) if p.startswith(".derivator-")]


# ------------------------------------------------ item 10: only regular files are read ---


# ------------------------------------------------ item 11: exit 2, not 1 ---


# ------------------------------------------------ item 12: Ctrl-C ---


# ------------------------------------------------ also: the nesting limit counts a call once ---

@pytest.mark.parametrize("open_, close", [("exp(", ")"), ("(", ")"), ("max(b, ", ")")])
def test_nesting_counts_each_call_once(open_, close):
    derivator.loads("equations:\n  F: " + open_ * 60 + "a" + close * 60 + "\n")
    with pytest.raises(derivator.ExpressionError, match="more than 60 levels"):
        derivator.loads("equations:\n  F: " + open_ * 61 + "a" + close * 61 + "\n")
