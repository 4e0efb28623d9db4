"""Hostile definitions: each gets exit status 2 and one short line, quickly, and runs nothing.

Definition files come from students, forums and course repositories. Every
case below is written to a temporary file and run through the CLI in-process
(``derive``, ``eval`` and ``paths``), with a time bound. Payloads that would
run code try to create a marker file; the test checks that it never appears.
The loader is also run with ``eval``/``exec``/``sympify`` replaced by traps,
to show that no text of a definition reaches them.
"""
import builtins
import os
import time

import pytest

import derivator
from derivator.cli import main

TIME_LIMIT = 5.0  # seconds of CPU for one command on one hostile file (CPU, not wall: the test
                  # machines are shared, and a loaded machine doubles wall time, not the work)


def _bomb(levels=9, width=9):
    lines = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\nequations: {F: a}\n"


def _bomb_inside():
    lines = ["equations:", "  F: a", "at:", "  a: 1", "title: &t0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha]"]
    # the bomb hangs under a key that is valid (title), so only the size budget stops it
    text = "\n".join(lines) + "\n"
    for i in range(1, 9):
        text += f"wrt{i}: &t{i} [" + ", ".join([f"*t{i - 1}"] * 10) + "]\n"
    return text


def corpus(marker):
    m = str(marker)
    touch = f"touch {m}"
    eq = "equations:\n  F: {}\n".format
    quoted = lambda expr: 'equations:\n  F: "{}"\n'.format(expr.replace("\\", "\\\\").replace('"', '\\"'))  # noqa: E731
    cases = {
        # code execution through YAML tags
        "tag_apply": f'equations:\n  F: !!python/object/apply:os.system ["{touch}"]\n',
        "tag_apply_top": f'!!python/object/apply:os.system ["{touch}"]\n',
        "tag_new": f'equations: !!python/object/new:subprocess.Popen [["touch", "{m}"]]\n',
        "tag_name": "equations:\n  F: !!python/name:os.system\n",
        "tag_module": "equations:\n  F: !!python/module:os\n",
        "tag_key": f'? !!python/object/apply:os.system ["{touch}"]\n: 1\nequations: {{F: a}}\n',
        "tag_title": f'title: !!python/object/apply:os.system ["{touch}"]\nequations: {{F: a}}\n',
        "tag_local": "equations:\n  F: !custom a\n",
        "tag_binary": "equations:\n  F: !!binary YWJj\n",
        "tag_set": "equations: !!set {F: null}\n",
        # code execution through expressions
        "dunder_import": quoted(f"__import__('os').system('{touch}')"),
        "dunder_import_no_quotes": eq("__import__(os).system"),
        "eval_call": quoted(f"eval(\"__import__('os').system('{touch}')\")"),
        "exec_call": quoted(f"exec('import os; os.system(\"{touch}\")')"),
        "open_call": quoted("open('/etc/passwd').read()"),
        "getattr_call": eq("getattr(a, b)"),
        "attribute": eq("a.__class__.__bases__"),
        "attribute_on_call": eq("sigmoid(a).func"),
        "subscript": eq("a[0]"),
        "lambda": quoted("(lambda: 0)()"),
        "comprehension": quoted("[x for x in a]"),
        "generator": quoted("sum(x for x in a)"),
        "string": quoted("'abc'"),
        "fstring": quoted("f'{a}'"),
        "walrus": quoted("(x := a)"),
        "conditional": eq("a if b else c"),
        "comparison": quoted("a == b"),
        "matmul": eq("a @ b"),
        "modulo": eq("a % b"),
        "floordiv": eq("a // b"),
        "bitnot": eq("~a"),
        "semicolon": quoted("a; b"),
        "backslash": quoted("\\frac{a}{b}"),
        "dunder_name": eq("__class__ + a"),
        "private_name": eq("_secret + a"),
        "unknown_function": eq("sigmod(a)"),
        "sympy_function": quoted("Function('f')(a)"),
        "sympify": quoted("sympify('a')"),
        "symbol": quoted("Symbol('x')"),
        "function_as_name": eq("exp * a"),
        "wrong_arity": eq("max(a)"),
        "unicode_name": eq("α + a"),
        "null_byte": "equations:\n  F: a\x00b\n",
        "escape_sequence_in_key": 'equations:\n  "a\\e[2J": b\n',
        # numbers that would hang or overflow
        "power_tower": eq("a**(10**10**10)"),
        "power_tower_2": eq("2**2**2**2**2**2"),
        "power_nines": eq("9**9**9"),
        "power_caret": eq("9^9^9"),
        "power_of_coefficient": eq("(2*a)**(10**18)"),
        "power_of_fraction": eq("(a/3)**(9**9)"),
        "power_exp_log": eq("exp(10**18*log(2))*a"),
        "power_huge_exponent_symbolic": eq("a**(2**100)"),
        "huge_literal": eq("9" * 100_000 + "*a"),
        "huge_decimal": eq("1." + "0" * 100_000 + "1*a"),
        "exponent_literal": eq("1e999999*a"),
        "exponent_literal_negative": eq("1e-999999*a"),
        "float_overflow": eq("1e308*10*a"),
        "exp_overflow": eq("exp(exp(exp(exp(1000))))*a"),
        "division_by_zero": eq("1/0"),
        "division_by_zero_symbolic": eq("a/(2-2)"),
        "zero_to_negative": eq("0**-1 + a"),
        "log_zero": eq("log(0) + a"),
        "log_negative": eq("a*log(-1)"),
        "sqrt_negative": eq("sqrt(-1) + a"),
        "fractional_power_negative": eq("(-8)**(1/3)*a"),
        # size and nesting
        "deep_parentheses": eq("(" * 5000 + "a" + ")" * 5000),
        "deep_minus": eq("-" * 5000 + "a"),
        "deep_calls": eq("sigmoid(" * 3000 + "a" + ")" * 3000),
        "deep_powers": eq("a" + "**a" * 3000),
        "long_expression": eq("+".join(["a"] * 15_000)),
        "unbalanced": eq("(" * 1000 + "a"),
        "deep_yaml_flow": "equations: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "deep_yaml_block": "".join(" " * i + f"k{i}:\n" for i in range(1500)),
        "deep_yaml_mapping": "at: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\nequations: {F: a}\n",
        "billion_laughs": _bomb(),
        "billion_laughs_under_valid_keys": _bomb_inside(),
        "recursive_alias": "equations: &e {F: *e}\n",
        "too_many_equations": "equations:\n" + "".join(f"  u{i}: a\n" for i in range(20_001)),
        "long_cycle": "equations:\n" + "".join(f"  u{i}: u{i + 1} + a\n" for i in range(3000)) + "  u3000: u0\n",
        "network_huge_inputs": "network:\n  inputs: 1000000000\n  layers: [{units: 1}]\n",
        "network_huge_units": "network:\n  inputs: 2\n  layers: [{units: 10000000000000000000000}]\n",
        "network_too_many_weights": "network:\n  inputs: 4096\n  layers: [{units: 4096}, {units: 4096}]\n",
        "network_many_layers": "network:\n  inputs: 1\n  layers: [" + ", ".join(["{units: 1}"] * 20_000) + "]\n",
        "network_negative": "network:\n  inputs: -1\n  layers: [{units: 1}]\n",
        "network_activation_code": f"network:\n  inputs: 1\n  layers: [{{units: 1, activation: \"__import__('os').system('{touch}')\"}}]\n",
        "network_loss_code": "network:\n  inputs: 1\n  layers: [{units: 1}]\n  loss: os.system\n",
        "at_code": f"equations: {{F: a}}\nat: {{a: \"__import__('os').system('{touch}')\"}}\n",
        "at_infinite": "equations: {F: a}\nat: {a: .inf}\n",
        "at_huge_integer": "equations: {F: a}\nat: {a: " + "9" * 5000 + "}\n",
        "lr_nan": "equations: {F: a}\nlr: .NaN\n",
        "wrt_code": "equations: {F: a}\nwrt: [\"__import__('os')\"]\n",
        "output_code": "equations: {F: a}\noutput: \"os.system('ls')\"\n",
        "name_code": "equations:\n  \"__import__('os').system('ls')\": a\n",
        # not definitions at all
        "binary_junk": bytes(range(256)) * 4,
        "invalid_utf8": b"equations:\n  F: \xff\xfe a\n",
        "empty": "",
        "whitespace": "   \n\n\t\n",
        "json_not_mapping": "[1, 2, 3]\n",
        "two_documents": "equations: {F: a}\n---\nequations: {F: b}\n",
        "too_large_file": "equations:\n  F: a\n" + "# padding\n" * 250_000,
    }
    return cases


def _write(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


CASE_NAMES = sorted(corpus("M"))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_definition_is_refused_quickly(name, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, name, corpus(marker)[name])
    outfile = tmp_path / "out.md"
    for argv in (["derive", path, "-o", str(outfile)], ["eval", path, "--format", "json"],
                 ["paths", path, "--wrt", "a"]):
        start = time.process_time()
        try:
            rc = main(argv)
        except SystemExit as e:  # pragma: no cover - argparse only
            rc = e.code
        elapsed = time.process_time() - start
        out, err = capsys.readouterr()
        assert elapsed < TIME_LIMIT, f"{name}: {argv[0]} took {elapsed:.1f} s of CPU"
        assert rc == 2, f"{name}: {argv[0]} exit {rc}: {err[:300]}"
        assert out == ""
        assert "Traceback" not in err
        assert err.startswith("derivator: ") and err.endswith("\n") and err.count("\n") == 1, repr(err[:300])
        assert path in err
        assert len(err) <= 500, f"{name}: message too long ({len(err)})"
        assert not marker.exists(), f"{name}: the payload ran"
        assert not outfile.exists()
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]


def _load_all_with_traps(texts):
    """Load every text with eval, exec, sympify and parse_expr replaced by recorders."""
    import sympy
    import sympy.parsing.sympy_parser as sympy_parser
    calls = []

    def trap(*args, **kwargs):
        calls.append(args[:1])
        raise RuntimeError("user text reached an evaluator")

    refused = 0
    examples = derivator.examples()   # imports the examples package before exec is trapped
    for name in examples:             # and every module loading reaches (an import runs exec)
        derivator.load(name)
    with pytest.MonkeyPatch.context() as mp:
        for mod, attr in ((builtins, "eval"), (builtins, "exec"), (sympy, "sympify"), (sympy, "parse_expr"),
                          (sympy_parser, "parse_expr")):
            mp.setattr(mod, attr, trap)
        for name, text in texts:
            try:
                derivator.loads(text, source=name)
            except derivator.DerivatorError:
                refused += 1
            except RuntimeError:
                pass
        for name in examples:
            derivator.load(name)
    return refused, calls


def test_loading_never_evaluates_text(tmp_path):
    """The loader (spec + expr + network) reaches no evaluator, for hostile and valid files alike."""
    marker = tmp_path / "pwned"
    slow = ("too_many_equations", "too_large_file", "network_many_layers", "long_cycle")
    texts = [(n, t) for n, t in corpus(marker).items() if n not in slow and not isinstance(t, bytes)]
    refused, calls = _load_all_with_traps(texts)
    assert calls == []
    assert refused == len(texts)
    assert not marker.exists()


def test_load_dict_refuses_hostile_values(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    bad = [
        {"equations": {"F": payload}},
        {"equations": {payload: "a"}},
        {"equations": {"F": "a"}, "wrt": [payload]},
        {"equations": {"F": "a"}, "at": {"a": payload}},
        {"equations": {"F": "a"}, "output": payload},
        {"equations": {"F": "a"}, "lr": float("nan")},
        {"equations": {"F": "a"}, "at": {"a": float("inf")}},
        {"equations": {"F": object()}},
        {"equations": {"F": "a"}, "title": object()},
        {"network": {"inputs": 2, "layers": [{"units": 1, "activation": payload}]}},
        {"network": {"inputs": 10 ** 100, "layers": [{"units": 1}]}},
        {"equations": {1: "a"}},
    ]
    for data in bad:
        with pytest.raises(derivator.DefinitionError):
            derivator.load_dict(data)
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(derivator.DefinitionError):
        derivator.load_dict({"equations": {"F": "a"}, "wrt": deep})
    assert not marker.exists()
