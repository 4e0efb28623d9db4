"""Validation: every malformed definition gets one line naming FILE:LINE and the fix, exit status 2.

Each case runs the CLI in-process on a file written to a temporary folder and
checks: exit status 2, one line on standard error that starts with
``derivator: FILE:LINE``, no traceback, nothing on standard output, and (for
``derive -o``) no file written. docs/errors.md lists these errors for users.
"""
import os

import pytest

from derivator.cli import main

# id: (definition text, command, expected line or None, words the message must contain)
CASES = {
    "yaml_syntax": ("equations:\n  F: a\n   G: b\n", "derive", 3, ["YAML syntax error"]),
    "yaml_unclosed_flow": ("equations: {F: a\n", "derive", 2, ["YAML syntax error", "expected ','"]),
    "yaml_tab": ("equations:\n\tF: a\n", "derive", 2, ["tabs"]),
    "yaml_control_char": ("equations:\n  F: a\x07\n", "derive", 2, ["U+0007"]),
    "yaml_two_documents": ("equations: {F: a}\n---\nequations: {G: b}\n", "derive", 2, ["single document"]),
    "not_a_mapping_list": ("- a\n- b\n", "derive", 1, ["must be a mapping", "list"]),
    "not_a_mapping_text": ("just some text\n", "derive", 1, ["must be a mapping", "text"]),
    "empty_file": ("", "derive", 1, ["empty"]),
    "only_comments": ("# nothing here\n", "derive", 1, ["no YAML document"]),
    "both_forms": ("equations: {F: a}\nnetwork: {inputs: 1, layers: [{units: 1}]}\n", "derive", 2,
                   ["either `equations` or `network`, not both"]),
    "neither_form": ("title: hello\n", "derive", 1, ["needs `equations:` or `network:`"]),
    "unknown_key": ("equations: {F: a*b}\nwtr: [a]\n", "derive", 2, ["unknown key 'wtr'", "did you mean 'wrt'"]),
    "unknown_network_key": ("network:\n  inputs: 1\n  layer: [{units: 1}]\n", "derive", 3,
                            ["unknown key 'layer'", "did you mean 'layers'"]),
    "unknown_layer_key": ("network:\n  inputs: 1\n  layers:\n    - {unit: 1}\n", "derive", 4,
                          ["unknown key 'unit'", "did you mean 'units'"]),
    "duplicate_key": ("title: one\ntitle: two\nequations: {F: a}\n", "derive", 2,
                      ["duplicate key 'title'", "first on line 1"]),
    "duplicate_key_nested": ("equations: {F: a*b}\nat:\n  a: 1\n  a: 2\n", "derive", 4, ["duplicate key 'a'"]),
    "name_defined_twice": ("equations:\n  F: a\n  G: b\n  F: a + b\n", "derive", 4,
                           ["F is defined twice", "first on line 2"]),
    "name_not_identifier": ("equations:\n  2x: a\n", "derive", 2, ["'2x' is not a valid name"]),
    "name_with_dash": ("equations:\n  a-b: c\n", "derive", 2, ["'a-b' is not a valid name"]),
    "name_dunder": ("equations:\n  __class__: c\n", "derive", 2, ["not a valid name"]),
    "name_is_function": ("equations:\n  sigmoid: a\n", "derive", 2, ["'sigmoid' is a function name"]),
    "leaf_is_function": ("equations:\n  F: exp + a\n", "derive", 2, ["'exp' is a function"]),
    "cycle": ("equations:\n  u: v + a\n  v: w\n  w: u\n", "derive", 2, ["cycle: u -> v -> w -> u"]),
    "self_reference": ("equations:\n  u: u + a\n", "derive", 2, ["cycle: u -> u"]),
    "undefined_output": ("equations:\n  u: a*b\noutput: v\n", "derive", 3, ["`output` 'v' is not in the graph"]),
    "output_is_leaf": ("equations:\n  u: a*b\noutput: a\n", "derive", 3, ["'a' is a leaf"]),
    "wrt_not_in_graph": ("equations:\n  u: a*b\nwrt: [a, c]\n", "derive", 3, ["`wrt` 'c' is not in the graph"]),
    "wrt_typo": ("equations:\n  u: alpha*b\nwrt: [alpah]\n", "derive", 3, ["did you mean 'alpha'"]),
    "wrt_is_output": ("equations:\n  u: a*b\nwrt: u\n", "derive", 3, ["the output itself"]),
    "cli_wrt_not_in_graph": ("equations:\n  u: a*b\n", "derive --wrt zz", None, ["'zz' is not a name in the graph"]),
    "at_nan": ("equations: {u: a*b}\nat: {a: .nan, b: 1}\n", "derive", 2, ["finite number"]),
    "at_inf": ("equations: {u: a*b}\nat:\n  a: 1\n  b: -.inf\n", "derive", 4, ["finite number"]),
    "at_overflow": ("equations: {u: a*b}\nat: {a: 1e999, b: 1}\n", "derive", 2, ["finite number"]),
    "at_text": ("equations: {u: a*b}\nat: {a: two, b: 1}\n", "derive", 2, ["must be a number", "'two'"]),
    "at_bool": ("equations: {u: a*b}\nat: {a: true, b: 1}\n", "derive", 2, ["must be a number"]),
    "at_node": ("equations: {u: a*b}\nat: {u: 1}\n", "derive", 2, ["computed by an equation"]),
    "at_unknown": ("equations: {u: a*b}\nat: {c: 1}\n", "derive", 2, ["'c' is not in the graph"]),
    "eval_missing_values": ("equations: {u: a*b + c}\nat: {a: 1}\n", "eval", None, ["no value for b, c"]),
    "eval_cli_at_not_finite": ("equations: {u: a*b}\nat: {a: 1, b: 2}\n", "eval --at a=nan", None,
                               ["finite number"]),
    "lr_nan": ("equations: {u: a*b}\nlr: .nan\n", "derive", 2, ["`lr` must be a finite number"]),
    "lr_overflow": ("equations: {u: a*b}\nlr: 1e999\n", "derive", 2, ["`lr` must be a finite number", "1e999"]),
    "lr_text": ("equations: {u: a*b}\nlr: fast\n", "derive", 2, ["`lr` must be a number"]),
    "network_inputs_zero": ("network:\n  inputs: 0\n  layers: [{units: 1}]\n", "derive", 2,
                            ["`inputs` must be at least 1"]),
    "network_units_negative": ("network:\n  inputs: 2\n  layers:\n    - {units: -3}\n", "derive", 4,
                               ["`units` of layer 1 must be at least 1"]),
    "network_units_fraction": ("network:\n  inputs: 2\n  layers: [{units: 1.5}]\n", "derive", 3,
                               ["whole number"]),
    "network_no_layers": ("network:\n  inputs: 2\n  layers: []\n", "derive", 3, ["non-empty list"]),
    "network_unknown_activation": ("network:\n  inputs: 2\n  layers:\n    - {units: 2, activation: sigmod}\n"
                                   "    - {units: 1}\n", "derive", 4,
                                   ["unknown hidden-layer activation 'sigmod'", "did you mean 'sigmoid'",
                                    "sigmoid, tanh, relu, softplus, identity"]),
    "network_softmax_hidden": ("network:\n  inputs: 2\n  layers:\n    - {units: 2, activation: softmax}\n"
                               "    - {units: 1}\n", "derive", 4, ["output layer only"]),
    "network_unknown_loss": ("network:\n  inputs: 2\n  layers: [{units: 1}]\n  loss: hinge\n", "derive", 4,
                             ["unknown loss 'hinge'", "mse, half_sse, bce, cross_entropy"]),
    "network_unknown_bias": ("network:\n  inputs: 2\n  layers: [{units: 1}]\n  bias: some\n", "derive", 4,
                             ["unknown bias 'some'", "per_neuron, shared, none"]),
    "network_too_big": ("network:\n  inputs: 4096\n  layers: [{units: 4096}, {units: 1}]\n", "derive", 2,
                        ["more than 1000000 weights"]),
    "equations_empty": ("equations: {}\n", "derive", 1, ["`equations` is empty"]),
    "equations_list": ("equations: [a, b]\n", "derive", 1, ["`equations` must be a mapping"]),
    "equation_missing": ("equations:\n  F:\n", "derive", 2, ["must be an expression"]),
    "expression_unknown_function": ("equations:\n  F: sigmod(a)\n", "derive", 2,
                                    ["unknown function 'sigmod'", "did you mean 'sigmoid'"]),
    "expression_negative_base": ("equations:\n  F: (-2)**a\n", "derive", 2, ["-2 to a variable power"]),
    "expression_syntax": ("equations:\n  F: a +* b\n", "derive", 2, ["operand is missing"]),
    "yaml_tag": ("equations:\n  F: !!python/name:os.system\n", "derive", 2, ["YAML tag", "not allowed"]),
    "merge_key": ("base: &b {F: a}\nequations:\n  <<: *b\n", "derive", 3, ["merge keys"]),
    "no_such_file": (None, "derive", None, ["no such file or example"]),
}

CLI_VALUE_ERRORS = {"eval_cli_at_not_finite"}


def _run(tmp_path, capsys, text, command, extra=()):
    path = tmp_path / "def.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    words = command.split()
    argv = [words[0], str(path)] + words[1:] + list(extra)
    try:
        rc = main(argv)
    except SystemExit as e:   # argparse
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err, str(path)


def _assert_one_line_error(rc, out, err, path, line=None, names_file=True):
    assert rc == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith(f"derivator: {path}" if names_file else "derivator: "), err
    if line is not None:
        assert err.startswith(f"derivator: {path}:{line}:") or err.startswith(f"derivator: {path}:{line} "), err
    assert len(err) < 500


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_is_one_line_naming_file_and_line(case, tmp_path, capsys):
    text, command, line, words = CASES[case]
    rc, out, err, path = _run(tmp_path, capsys, text, command)
    # a bad command-line value is the command line's fault, not the file's
    _assert_one_line_error(rc, out, err, path, line, names_file=case not in CLI_VALUE_ERRORS)
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("case", ["yaml_syntax", "unknown_key", "cycle", "at_nan", "network_unknown_loss",
                                  "expression_unknown_function", "yaml_tag"])
def test_bad_input_writes_nothing(case, tmp_path, capsys):
    text, _, line, _ = CASES[case]
    target = tmp_path / "out" / "doc.md"
    target.parent.mkdir()
    rc, out, err, path = _run(tmp_path, capsys, text, "derive", ["-o", str(target)])
    _assert_one_line_error(rc, out, err, path, line)
    assert os.listdir(target.parent) == []


def test_yaml_syntax_error_has_line_and_column(tmp_path, capsys):
    rc, out, err, path = _run(tmp_path, capsys, "equations:\n  F: a\n   G: b\n", "derive")
    assert err.startswith(f"derivator: {path}:3:5: "), err


def test_expression_error_points_at_the_column(tmp_path, capsys):
    # plain scalar: the column of the offending character in the file
    rc, out, err, path = _run(tmp_path, capsys, "equations:\n  F: a + b.c\n", "derive")
    assert err.startswith(f"derivator: {path}:2:11: "), err
    assert "attribute access" in err
    # quoted scalar: the same, shifted by the quote
    rc, out, err, path = _run(tmp_path, capsys, 'equations:\n  F: "a + sigmod(b)"\n', "derive")
    assert err.startswith(f"derivator: {path}:2:11: "), err


def test_load_dict_errors_are_definition_errors():
    import derivator
    with pytest.raises(derivator.DefinitionError, match="unknown key 'wtr'"):
        derivator.load_dict({"equations": {"F": "a"}, "wtr": ["a"]})
    with pytest.raises(derivator.ExpressionError, match="at character 2 of the expression"):
        derivator.load_dict({"equations": {"F": "a.b"}})
    loop: dict = {"equations": {"F": "a"}}
    loop["at"] = loop
    with pytest.raises(derivator.DefinitionError):
        derivator.load_dict(loop)


def test_yaml_booleans_and_hex_are_read_as_written(tmp_path, capsys):
    # `on` is a name (YAML 1.1 would read true); 0x10 is not a number of the expression language
    import derivator
    d = derivator.loads("equations:\n  F: on\n")
    assert d.wrt == ("on",)
    with pytest.raises(derivator.ExpressionError, match="expected an operator"):
        derivator.loads("equations:\n  F: 0x10\n")


def test_a_valid_definition_still_loads(tmp_path, capsys):
    text = "equations: &e\n  u: a*b\n  F: 5*u\nat: {a: 2, b: -3}\nlr: 0.1\n"
    rc, out, err, path = _run(tmp_path, capsys, text, "eval --format json")
    assert rc == 0, err
    assert '"value": -30.0' in out
