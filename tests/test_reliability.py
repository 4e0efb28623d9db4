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

def test_item2_huge_exponent_is_not_a_false_alarm(tmp_path, capsys):
    # at 30 digits b - 1 rounds to b: the old check called the right derivation wrong (exit 1)
    for d in _derive_json(tmp_path, capsys, "equations:\n  F: a**b\nat: {a: 1.5, b: 1e300}\n"):
        assert d["verified"] is True, d["check"]
        assert "the given point was left out" in d["check"]["detail"], d["check"]["detail"]


@pytest.mark.parametrize("text, digits", [
    ("equations:\n  F: sigmoid(a)*b\nat: {a: 100, b: 1e60}\n", "120"),          # 1 - σ(100) = 0 at 30 digits
    ("equations:\n  u: sigmoid(a)\n  F: u*b*c\nat: {a: 300, b: 1e100, c: 1e100}\n", "240"),
    ("equations:\n  F: log(sigmoid(a))*b\nat: {a: 80, b: 1e40}\n", "120"),
])
def test_item2_cancellation_raises_the_precision_and_says_so(text, digits, tmp_path, capsys):
    ds = _derive_json(tmp_path, capsys, text, "--wrt", "a")
    detail = ds[0]["check"]["detail"]
    assert ds[0]["verified"] is True, detail
    assert f"raised to {digits} at the given point" in detail, detail


def test_item2_a_real_difference_is_still_found():
    a, b = symbol("a"), symbol("b")
    g = derivator.graph(derivator.loads("equations:\n  F: a**b\nat: {a: 1.5, b: 3}\n"))
    points = checks.Points(g, {"a": 1.5, "b": 3})
    ok, used, info = checks.numeric_equal(b * a ** b, b * a ** (b - 1), points)   # a wrong derivative
    assert not ok and "differs at a test point" in info
    # a tiny but real difference (below what 30 digits show) is found once the precision is raised
    e = sp.Integer(10) ** -25
    verdict, digits, _ = checks.settle(lambda dps: (mpmath.mpf(1) + mpmath.mpf(e), mpmath.mpf(1), 1))
    assert verdict == "equal"       # within the 30-digit tolerance: the check's stated precision
    verdict, digits, _ = checks.settle(lambda dps: (mpmath.mpf(2), mpmath.mpf(1), 1))
    assert verdict == "differ" and digits > checks.DIGITS     # confirmed at a second precision


def test_item2_a_difference_that_rounding_could_explain_is_never_called_a_difference():
    # values that keep moving with the precision, past the budget: the point is left out, not accused
    def values(dps):
        return mpmath.mpf(1), mpmath.mpf(2), 10 ** 6          # scale: a million bits of cancellation
    verdict, digits, _ = checks.settle(values)
    assert verdict == "unsettled"


def test_item2_points_out_of_the_first_ranges_are_found(tmp_path, capsys):
    # defined only for a > 20: the first random ranges (−1.5…1.5, 0.1…0.9) never are
    g = derivator.graph(derivator.loads("equations:\n  u: log(a - 20)\n  F: u*u\n"))
    points = checks.Points(g)
    assert len(points.envs) >= checks.POINTS


# ------------------------------------------------ item 8: budgets, no hangs ---

def test_item8_evaluation_refuses_huge_values_before_computing_them():
    a = symbol("a")
    start = time.monotonic()
    for expr, value in [(sp.exp(sp.exp(sp.exp(sp.exp(a)))), 3), (a ** a ** a ** a ** a ** a, 2),
                        (sp.exp(a) ** 1000000, 1000), (sp.Integer(2) ** (a * 10 ** 9), 1.5)]:
        with _Deadline(10), mpmath.workdps(30), pytest.raises(mpeval.NotReal) as caught:
            mpeval.evaluate(expr, {a: mpmath.mpf(value)})
        assert type(caught.value).__name__ == "OutOfRange"
    assert time.monotonic() - start < 2
    # every caller that skips a non-real point skips these too
    assert issubclass(mpeval.OutOfRange, mpeval.NotReal)


@pytest.mark.parametrize("text, words", [
    ("equations:\n  F: exp(exp(exp(exp(a))))\nat: {a: 3}\n", ["the given point was left out"]),
    ("equations:\n  F: exp(exp(exp(exp(exp(exp(exp(a)))))))\n", ["no test point could be used"]),
    ("equations:\n  F: " + "**".join(["a"] * 15) + "\nat: {a: 2}\n", ["the given point was left out"]),
    ("equations:\n  u1: exp(a)\n  u2: exp(u1)\n  u3: exp(u2)\n  u4: exp(u3)\n  u5: exp(u4)\n  u6: exp(u5)\n"
     "  F: exp(u6)*b\nat: {a: 1, b: 2}\n", ["left out"]),
])
def test_item8_high_precision_checks_have_a_budget(text, words, tmp_path):
    path = tmp_path / "def.yaml"
    path.write_text(text, encoding="utf-8")
    rc, out, err, took = _run(["derive", path, "--format", "json"])
    assert took < 20
    assert rc in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    if rc == 0:
        data = json.loads(out)
        for d in data if isinstance(data, list) else [data]:
            assert d["verified"] is True
            for w in words:
                assert w in d["check"]["detail"], d["check"]["detail"]
    else:
        assert err.count("\n") == 1 and "could not be checked" in err, err


def test_item2_worked_numbers_survive_cancellation(tmp_path, capsys):
    # the document's number at the given point: 1e60·(1 − σ(100))·σ(100) is 3.72e16, not 0
    path = tmp_path / "def.yaml"
    path.write_text("equations:\n  F: sigmoid(a)*b\nat: {a: 100, b: 1e60}\n", encoding="utf-8")
    rc, out, err = _cli(["derive", path, "--wrt", "a"], capsys)
    assert rc == 0, err
    assert r"3.72007598 \times 10^{16}" in out


# ------------------------------------------------ item 3: numbers are ASCII decimals ---

def _at(value):
    return f"equations:\n  F: a*2\nat: {{a: {value}}}\n"


@pytest.mark.parametrize("value, words", [
    ("'٣'", ["must be a number", "ASCII digits"]),
    ("'３'", ["must be a number", "ASCII digits"]),
    ("'1٠5'", ["must be a number", "ASCII digits"]),
    ("' 12 '", ["must be a number"]),
    ("'1_000'", ["must be a number"]),
    ("010", ["YAML 1.1 reads as 8", "YAML 1.2 as 10"]),
    ("-017", ["YAML 1.1 reads as -15"]),
    ("1:01", ["YAML 1.1 reads 1:01 as 61", "base 60"]),
    ("0x1F", ["YAML 1.1 reads 0x1F as 31", "hexadecimal"]),
    ("0b11", ["YAML 1.1 reads 0b11 as 3", "binary"]),
    ("1_000", ["YAML 1.1 reads 1_000 as 1000"]),
])
def test_item3_at_values_are_ascii_decimal_numbers(value, words, tmp_path, capsys):
    path = tmp_path / "def.yaml"
    path.write_text(_at(value), encoding="utf-8")
    rc, out, err = _cli(["eval", path], capsys)
    _one_line_error(rc, out, err, f"{path}:3:9: the value of a in `at`", *words)


@pytest.mark.parametrize("text, where", [
    ("equations:\n  F: a*2\nat: {a: 1}\nlr: 0x10\n", ":4:5: `lr`"),
    ("equations:\n  F: a*2\nat: {a: 1}\nlr: 1:30.5\n", ":4:5: `lr`"),
    ("equations:\n  F: a*2\nat: {a: 1}\nlr: '٠.١'\n", ":4:5: `lr`"),
    ("network:\n  inputs: 010\n  layers: [{units: 1}]\n", ":2:11: `inputs`"),
    ("network:\n  inputs: '٣'\n  layers: [{units: 1}]\n", ":2:11: `inputs`"),
    ("network:\n  inputs: 2\n  layers: [{units: 1_0}]\n", ":3:20: `units`"),
    ("network:\n  inputs: 2\n  layers: [{units: 0x2}]\n", ":3:20: `units`"),
    ("equations:\n  F: 010\n", ":2:6: the equation for F"),
])
def test_item3_yaml_1_1_numbers_in_lr_sizes_and_equations(text, where, tmp_path, capsys):
    path = tmp_path / "def.yaml"
    path.write_text(text, encoding="utf-8")
    rc, out, err = _cli(["derive", path], capsys)
    _one_line_error(rc, out, err, f"{path}{where}")


def test_item3_the_documented_readings(tmp_path, capsys):
    # what is read, and how: the text as written, in the decimal syntax of expressions
    path = tmp_path / "def.yaml"
    for value, expected in [("'3'", 3.0), ("1e3", 1000.0), ("+12", 12.0), (".5", 0.5), ("1.5e+3", 1500.0),
                            ("-0.25", -0.25), ("'010'", 10.0), ("00.5", 0.5), ("010", None), ("'٣'", None),
                            ("1:01", None), (".inf", None), ("'infinity'", None), ("0o17", None)]:
        path.write_text(_at(value), encoding="utf-8")
        rc, out, err = _cli(["eval", path, "--format", "json"], capsys)
        if expected is None:
            _one_line_error(rc, out, err, f"{path}:3:9:")
        else:
            assert rc == 0, err
            assert json.loads(out)["values"]["a"] == expected


@pytest.mark.parametrize("argv", [["--at", "a=٣"], ["--at", "a=３"], ["--at", "a=1_000"], ["--lr", "٠.1"],
                                  ["--at", "a= 3"]])
def test_item3_command_line_numbers_are_ascii_decimals(argv, tmp_path, capsys):
    path = tmp_path / "def.yaml"
    path.write_text(_at(1), encoding="utf-8")
    rc, out, err = _cli(["eval", path, *argv], capsys)
    _one_line_error(rc, out, err)
    for bad in (["--at", "a=1e400"], ["--at", "a=" + "9" * 400], ["--lr", "1e999"], ["--lr", "nan"]):
        rc, out, err = _cli(["eval", path, *bad], capsys)
        _one_line_error(rc, out, err, "must be a finite number")


def test_item3_python_api_numbers_are_ascii_decimals():
    with pytest.raises(derivator.DefinitionError, match="ASCII digits"):
        derivator.load_dict({"equations": {"F": "a*2"}, "at": {"a": "٣"}})
    with pytest.raises(derivator.DefinitionError, match="must be a number"):
        derivator.load_dict({"equations": {"F": "a*2"}, "lr": "1_0"})
    assert derivator.load_dict({"equations": {"F": "a*2"}, "at": {"a": "1e-3"}}).at_dict == {"a": 0.001}


# ------------------------------------------------ item 4: eval prints numbers, never NaN/Infinity ---

def _strict_json(text):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("text, name", [
    ("equations:\n  F: a*b\nat: {a: 1e308, b: 1}\nlr: 10\n", "b"),                 # the update overflows
    ("equations:\n  u: exp(a)\n  F: a*b\noutput: F\nat: {a: 1000, b: 2}\n", "u"),    # a value overflows
])
def test_item4_eval_never_prints_non_numbers(text, name, tmp_path, capsys):
    path = tmp_path / "def.yaml"
    path.write_text(text, encoding="utf-8")
    rc, out, err = _cli(["eval", path, "--format", "json"], capsys)
    assert rc == 0, err
    data = _strict_json(out)
    part = "updated" if "lr" in text else "values"
    assert data[part][name] is None
    assert "warning" in err and name in err and "null" in err
    rc, out, err = _cli(["eval", path], capsys)
    assert rc == 0, err
    assert "nan" not in out and "inf" not in out.replace("not finite", "")
    assert f"{name} = not finite" in out


# ------------------------------------------------ items 5, 6, 7: -o never loses data ---

DEF = "equations:\n  u: a*b\n  F: 5*u\nat: {a: 2, b: -3}\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(DEF, encoding="utf-8")
    return tmp_path


def _debris(path):
    return [p for p in os.listdir(path) if p.startswith(".derivator-")]


@pytest.mark.parametrize("command", ["derive", "compile"])
@pytest.mark.parametrize("spelling", ["net.yaml", "./net.yaml", "../{dir}/net.yaml", "{abs}", "link.yaml",
                                      "hard.yaml"])
def test_item5_output_is_never_the_input(command, spelling, folder, capsys):
    os.symlink("net.yaml", "link.yaml")
    os.link("net.yaml", "hard.yaml")
    target = spelling.format(dir=folder.name, abs=folder / "net.yaml")
    rc, out, err = _cli([command, "net.yaml", "-o", target], capsys)
    _one_line_error(rc, out, err, "is the input definition")
    assert (folder / "net.yaml").read_text(encoding="utf-8") == DEF
    assert os.path.islink("link.yaml") and _debris(folder) == []


def test_item6_modes_are_kept_or_come_from_the_umask(folder, capsys):
    (folder / "doc.md").write_text("old", encoding="utf-8")
    os.chmod("doc.md", 0o640)
    assert _cli(["derive", "net.yaml", "-o", "doc.md"], capsys)[0] == 0
    assert os.stat("doc.md").st_mode & 0o777 == 0o640 and "old" not in (folder / "doc.md").read_text()
    old = os.umask(0o027)
    try:
        assert _cli(["derive", "net.yaml", "-o", "new.md"], capsys)[0] == 0
    finally:
        os.umask(old)
    assert os.stat("new.md").st_mode & 0o777 == 0o640
    assert _cli(["compile", "net.yaml", "-o", "grad.py"], capsys)[0] == 0
    assert os.stat("grad.py").st_mode & 0o777 == 0o666 & ~old


def test_item6_read_only_files_and_folders_are_not_replaced(folder, capsys):
    (folder / "ro.md").write_text("keep", encoding="utf-8")
    os.chmod("ro.md", 0o444)
    rc, out, err = _cli(["derive", "net.yaml", "-o", "ro.md"], capsys)
    _one_line_error(rc, out, err, "ro.md", "read-only")
    assert (folder / "ro.md").read_text() == "keep"
    os.mkdir("ro")
    os.chmod("ro", 0o555)
    try:
        rc, out, err = _cli(["derive", "net.yaml", "-o", "ro/doc.md"], capsys)
        _one_line_error(rc, out, err, "read-only")
        assert os.listdir("ro") == []
    finally:
        os.chmod("ro", 0o755)


def test_item6_a_symlink_is_written_through(folder, capsys):
    (folder / "real.md").write_text("old", encoding="utf-8")
    os.chmod("real.md", 0o604)
    os.symlink("real.md", "doc.md")
    assert _cli(["derive", "net.yaml", "-o", "doc.md"], capsys)[0] == 0
    assert os.path.islink("doc.md") and os.readlink("doc.md") == "real.md"
    assert (folder / "real.md").read_text().startswith("# ") and os.stat("real.md").st_mode & 0o777 == 0o604
    os.symlink("loop2", "loop1")
    os.symlink("loop1", "loop2")
    rc, out, err = _cli(["derive", "net.yaml", "-o", "loop1"], capsys)
    _one_line_error(rc, out, err, "loop1")


@pytest.mark.parametrize("title", ['"\\ud800"', '"a\\udc00b"', '"\\ud83d x"'])
def test_item7_lone_surrogates_are_refused_and_leave_nothing(title, folder, capsys):
    (folder / "bad.yaml").write_text(f"title: {title}\n" + DEF, encoding="utf-8")
    rc, out, err = _cli(["derive", "bad.yaml", "-o", "doc.md"], capsys)
    _one_line_error(rc, out, err, "bad.yaml:1:8", "lone surrogate")
    assert not os.path.exists("doc.md") and _debris(folder) == []
    # a pair of escapes (JSON's way to write 😀) is one character
    (folder / "ok.yaml").write_text('title: "\\ud83d\\ude00"\n' + DEF, encoding="utf-8")
    assert _cli(["derive", "ok.yaml", "-o", "doc.md"], capsys)[0] == 0
    assert (folder / "doc.md").read_text(encoding="utf-8").startswith("# \U0001F600")


def test_item7_non_utf8_file_names(folder, capsys):
    name = os.fsdecode(b"\xff-net.yaml")
    (folder / "net.yaml").rename(name)
    for argv in (["derive", name], ["eval", name, "--format", "json"], ["compile", name], ["paths", name, "--wrt", "a"],
                 ["derive", name, "-o", os.fsdecode(b"\xfe.md")]):
        rc, out, err = _cli(argv, capsys)
        assert rc == 0, (argv, err)
    (folder / "bad.yaml").write_text("equations:\n  F: a*\n", encoding="utf-8")
    os.rename("bad.yaml", os.fsdecode(b"\xfd.yaml"))
    rc, out, err = _cli(["derive", os.fsdecode(b"\xfd.yaml")], capsys)
    _one_line_error(rc, out, err, "\\xfd.yaml:2:")
    assert _debris(folder) == []


def test_item7_a_failed_or_interrupted_write_leaves_no_temporary_file(folder, capsys, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupt)          # Ctrl-C between writing and renaming
    rc, out, err = _cli(["derive", "net.yaml", "-o", "doc.md"], capsys)
    assert rc == 130 and err.count("\n") <= 1, err
    assert _debris(folder) == [] and not os.path.exists("doc.md")

    def fail(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", fail)
    rc, out, err = _cli(["derive", "net.yaml", "-o", "doc.md"], capsys)
    _one_line_error(rc, out, err, "No space left")
    assert _debris(folder) == [] and not os.path.exists("doc.md")


# ------------------------------------------------ item 10: only regular files are read ---

def test_item10_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "net.yaml"
    os.mkfifo(fifo)
    rc, out, err, took = _run(["derive", fifo], timeout=15)     # it used to wait forever for a writer
    assert rc == 2 and "FIFO" in err and err.count("\n") == 1, err
    assert took < 10


def test_item10_standard_input(tmp_path):
    (tmp_path / "net.yaml").write_text(DEF, encoding="utf-8")
    with open(tmp_path / "net.yaml", "rb") as f:          # /dev/stdin redirected from a file: that file
        rc, out, err, _ = _run(["eval", "/dev/stdin"], stdin=f)
    assert rc == 0 and "F = -30.0" in out, err
    rc, out, err, _ = _run(["eval", "/dev/stdin"], stdin=subprocess.PIPE, timeout=15)    # a pipe: refused
    assert rc == 2 and "not a regular file" in err, err
    rc, out, err, _ = _run(["eval", "-"], stdin=subprocess.PIPE, timeout=15)
    assert rc == 2 and "standard input is not supported" in err, err


def test_item10_devices_and_sockets_are_refused(tmp_path, capsys):
    rc, out, err = _cli(["derive", "/dev/null"], capsys)
    _one_line_error(rc, out, err, "a device")
    import socket
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.yaml"))
        rc, out, err = _cli(["derive", tmp_path / "s.yaml"], capsys)
        _one_line_error(rc, out, err, "a socket")
    finally:
        sock.close()


# ------------------------------------------------ item 11: exit 2, not 1 ---

def test_item11_standard_output_that_cannot_be_written(tmp_path):
    with open("/dev/full", "wb") as full:
        for args in (["derive", "seed_warmup"], ["eval", "colah"], ["examples"]):
            p = subprocess.run([sys.executable, "-m", "derivator", *args], stdout=full, stderr=subprocess.PIPE,
                               timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
            err = p.stderr.decode()
            assert p.returncode == 2, err
            assert err.count("\n") == 1 and "No space left on device" in err, err


def test_item11_path_counts_out_of_range(capsys):
    for argv in (["derive", "colah", "--max-paths", "99999999999999999999"],
                 ["derive", "colah", "--max-paths", "0"], ["derive", "colah", "--max-paths", "-5"],
                 ["derive", "colah", "--max-paths", "1e3"],
                 ["paths", "colah", "--wrt", "a", "--limit", "99999999999999999999"],
                 ["paths", "colah", "--wrt", "a", "--limit", "-1"]):
        rc, out, err = _cli(argv, capsys)
        _one_line_error(rc, out, err, argv[-2])


@pytest.mark.parametrize("text, words", [
    ("equations:\n  u: a - a\n  F: log(u)\n", [":3: in the equation for F", "u is identically 0 (u: a - a)"]),
    ("equations:\n  u: a - a\n  v: 3*u\n  F: log(v) + b\n", ["equation for F", "v is identically 0"]),
    ("equations:\n  F: b/u\n  u: a*0\n", [":2: in the equation for F", "u is identically 0"]),
    ("equations:\n  u: a/a - 2\n  F: sqrt(u)*b\n", ["equation for F", "u is identically -1"]),
])
def test_item11_an_equation_undefined_at_every_point(text, words, tmp_path, capsys):
    path = tmp_path / "def.yaml"
    path.write_text(text, encoding="utf-8")
    for command in ("derive", "eval"):
        rc, out, err = _cli([command, path], capsys)
        _one_line_error(rc, out, err, *words)
    # a constant node used where it is defined is fine
    assert derivator.derive(derivator.loads("equations:\n  u: a - a\n  F: exp(u)*b\n"), "b").verified


def test_item11_template_errors_name_the_template_and_line(folder, capsys):
    os.mkdir("tpl")
    cases = {"{% if %}\n": "derivation.md.j2:1", "line\n{{ 1/0 }}\n": "derivation.md.j2:2",
             '{% extends "derivator/derivation.md.j2" %}\n{% block intro %}\n{{ nothere.x }}\n{% endblock %}\n':
             "derivation.md.j2:3",
             "a\n{% include 'nope.j2' %}\n": "derivation.md.j2:2"}
    for text, where in cases.items():
        (folder / "tpl" / "derivation.md.j2").write_text(text, encoding="utf-8")
        rc, out, err = _cli(["derive", "net.yaml", "--templates", "tpl", "-o", "doc.md"], capsys)
        _one_line_error(rc, out, err, where, "error in a template")
        assert not os.path.exists("doc.md") and _debris(folder) == []
    for bad in ("/nonexistent", "net.yaml"):
        rc, out, err = _cli(["derive", "net.yaml", "--templates", bad], capsys)
        _one_line_error(rc, out, err, "--templates")


def test_item11_a_folder_that_cannot_be_written(folder, capsys):
    os.mkdir("locked")
    os.chmod("locked", 0o500)
    try:
        for command in ("derive", "compile"):
            rc, out, err = _cli([command, "net.yaml", "-o", "locked/out.txt"], capsys)
            _one_line_error(rc, out, err, "locked")
    finally:
        os.chmod("locked", 0o755)
    assert os.listdir("locked") == []


def test_item8_a_definition_that_cannot_be_checked_is_exit_2(tmp_path, capsys):
    # values beyond the range of the check at every point, in a graph too large to compose in the
    # leaves (checked forward, where no algebra can stand in): nothing is written, exit 2, not 1
    lines = ["  u1: exp(a)"] + [f"  u{i}: exp(u{i - 1})" for i in range(2, 8)] + ["  v0: u7*b"] + \
        [f"  v{i}: v{i - 1}*c + b" for i in range(1, 40)]
    path = tmp_path / "def.yaml"
    path.write_text("equations:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with _Deadline(20):
        rc, out, err = _cli(["derive", path, "--wrt", "b", "-o", tmp_path / "doc.md"], capsys)
    _one_line_error(rc, out, err, "nothing was written", "could not be checked", "2^16384")
    assert not os.path.exists(tmp_path / "doc.md")


# ------------------------------------------------ item 12: Ctrl-C ---

def test_item12_the_command_line_imports_no_heavy_module_before_main():
    code = "import sys, derivator.cli; print(sorted(m for m in ('sympy', 'numpy', 'mpmath', 'jinja2', 'yaml') " \
           "if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.stdout.strip() == "[]", p.stdout + p.stderr
    # and the API works as before through the light package (names load on first use)
    code = ("import derivator\nfrom derivator.graph import build_graph\n"
            "d = derivator.load('colah')\nassert callable(derivator.graph) and derivator.graph(d).output == 'e'\n"
            "assert derivator.derive(d, 'b').verified and 'seed_warmup' in derivator.examples()\n"
            "assert derivator.compile(d)(a=2.0, b=1.0).gradient['b'] == 5.0\n"
            "assert set(derivator.__all__) <= set(dir(derivator))\nprint('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.stdout.strip() == "ok", p.stderr


def test_item12_ctrl_c_at_any_moment_is_one_line_and_130():
    import signal
    # the console script's own code: `from derivator.cli import main; sys.exit(main())`; the signal
    # comes while sympy is being imported (0.25 s), then while the derivation runs (0.6 s)
    for delay in (0.25, 0.6):
        p = subprocess.Popen([sys.executable, "-c", "import sys; from derivator.cli import main; sys.exit(main())",
                              "derive", "seed_network", "--format", "json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        if p.returncode == 0:          # finished before the signal (a fast machine)
            continue
        # 130; or, when the signal comes while Python is already shutting down, killed by SIGINT
        # (a shell shows that as 130 too), with nothing printed
        assert p.returncode in (130, -signal.SIGINT), (delay, p.returncode, err.decode())
        assert len(err.decode().splitlines()) <= 1 and b"Traceback" not in err, err.decode()


# ------------------------------------------------ also: the nesting limit counts a call once ---

@pytest.mark.parametrize("open_, close", [("exp(", ")"), ("(", ")"), ("max(b, ", ")")])
def test_nesting_counts_each_call_once(open_, close):
    derivator.loads("equations:\n  F: " + open_ * 60 + "a" + close * 60 + "\n")
    with pytest.raises(derivator.ExpressionError, match="more than 60 levels"):
        derivator.loads("equations:\n  F: " + open_ * 61 + "a" + close * 61 + "\n")
