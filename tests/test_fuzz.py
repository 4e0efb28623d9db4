"""Property-based fuzzing: every outcome is a result or the project's own error, never a hang.

Hypothesis generates expressions (from the grammar, then with junk spliced
in), YAML texts, definition dicts and small networks and graphs. Each
example either gives a result or raises a ``derivator.DerivatorError``; any
other exception fails the test. Each example is bounded in time twice: by
hypothesis' ``deadline`` and by a hard alarm (``SIGALRM``) that stops a hang.

About 11 600 examples in all (see ``EXAMPLES``). Runs are reproducible
(``derandomize``); set ``DERIVATOR_FUZZ_RANDOM=1`` to explore new examples,
and ``DERIVATOR_FUZZ_SCALE=10`` to run ten times as many.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import derivator
from derivator.expr import NAME_RE, parse_expression
from derivator.functions import FUNCTIONS
from derivator.spec import TOP_KEYS

SCALE = float(os.environ.get("DERIVATOR_FUZZ_SCALE", "1"))
EXAMPLES = {"grammar": 4000, "junk": 2500, "text": 1500, "yaml": 1200, "dict": 1000, "network": 600,
            "pipeline": 800}


def _settings(kind: str, deadline_s: float):
    return settings(max_examples=max(1, int(EXAMPLES[kind] * SCALE)), deadline=timedelta(seconds=deadline_s),
                    derandomize=not os.environ.get("DERIVATOR_FUZZ_RANDOM"), database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@contextlib.contextmanager
def hard_limit(seconds: float):
    """Raise TimeoutError in this (main) thread after ``seconds``: a hang fails instead of blocking CI."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"an example ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(fn, *args, **kwargs):
    """fn's result, or None where it raised the project's own error."""
    try:
        return fn(*args, **kwargs)
    except derivator.DerivatorError as e:
        text = str(e)
        assert "\n" not in text or isinstance(e, derivator.VerificationError), repr(text)
        return None


# ------------------------------------------------------------ strategies ---

GOOD_NAMES = ["a", "b", "c", "x1", "w_1", "alpha", "eta", "z_2_1", "E", "I", "pi", "S", "oo", "nan", "self",
              "lambda", "None", "np", "delta_a", "L", "o1", "Max2"]
BAD_NAMES = ["sigmoid", "exp", "max", "__class__", "_x", "__import__", "sigmod"]
NUMBERS = ["0", "1", "2", "10", "0.5", ".5", "1.", "3.25", "1e3", "1e-3", "2.5E+2", "1e307", "1e308", "1e309",
           "1e400", "1e-400", "1e999999", "9" * 61, "00", "0.000", "123456789012345678901234567890"]
OPS = ["+", "-", "*", "/", "**", "^", " + ", " * ", " ** "]
CALLS = list(FUNCTIONS) + ["sigmod", "eval", "getattr", "Function", "__import__"]
JUNK = list("()[]{}.,:;'\"@#$%&*~!<>=|\\`?_\t\n ") + ["α", "é", "\x00", "\x1b", "\u200b", "𝑥", "０", "**", "//",
                                                    "lambda ", " if ", " for ", ":=", "0x", "1e", "e-"]

names = st.sampled_from(GOOD_NAMES + BAD_NAMES) | st.from_regex(NAME_RE, fullmatch=True).filter(
    lambda s: len(s) < 12)
numbers = st.sampled_from(NUMBERS) | st.integers(0, 10 ** 30).map(str) | st.decimals(
    min_value=0, max_value=10 ** 6, allow_nan=False, allow_infinity=False, places=3).map(str)


def _extend(inner):
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPS), inner).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
        inner.map(lambda s: f"({s})"),
        inner.map(lambda s: f"-{s}"),
        st.tuples(st.sampled_from(CALLS), st.lists(inner, min_size=0, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(inner, st.sampled_from(["**", "^"]), st.sampled_from(["(10**10**10)", "2**2**2**2**2", "9**9**9",
                                                                       "(2**64)", "(1/3)", "0.5", "-1"])).map(
            lambda t: "".join(t)),
    )


expressions = st.recursive(names | numbers, _extend, max_leaves=24)


@st.composite
def junked(draw):
    text = draw(expressions)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(JUNK)) + text[at:]
    return text


def _check_parsed(text):
    p = outcome(parse_expression, text)
    if p is not None:
        for n in p.names:
            assert NAME_RE.match(n) and n not in FUNCTIONS, n
        assert {str(s) for s in p.expr.free_symbols} <= set(p.names)
    return p


# ------------------------------------------------------------------ tests ---

@_settings("grammar", 2.0)
@given(expressions)
def test_fuzz_expressions_from_the_grammar(text):
    with hard_limit(10):
        _check_parsed(text)


@_settings("junk", 2.0)
@given(junked())
def test_fuzz_expressions_with_junk(text):
    with hard_limit(10):
        _check_parsed(text)


@_settings("text", 2.0)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
       | st.text(alphabet="ab1()+-*/^.e, ", max_size=40))
def test_fuzz_arbitrary_text_as_expression(text):
    with hard_limit(10):
        _check_parsed(text)


# YAML: lines built from keys, values and YAML syntax, plus junk
YAML_KEYS = list(TOP_KEYS) + ["F", "u", "a", "inputs", "layers", "units", "activation", "loss", "bias", "naming",
                              "wtr", "<<", "? x", "- ", "&a x", "*a", "!!python/object:os.system", "!!str x"]
YAML_VALUES = ["a*b", "u + c", "sigmoid(z)", "[a, b]", "{a: 1, b: 2}", "1", "-3.5", ".nan", ".inf", "1e999",
               "null", "~", "true", "on", "''", '"x"', "|\n    a", ">\n    b", "&x [1, 2]", "*x", "[*x, *x]",
               "{F: a}", "{inputs: 2, layers: [{units: 1}]}", "[{units: 2}, {units: 1, activation: softmax}]",
               "mse", "bce", "2001-01-01", "0x10", "1_000", "!!binary YQ==", "!custom x", "[", "{", "}", ":", "- -",
               "\t", "#", "'unterminated", "exp(1000)*a", "a**(10**10)", "sigmod(a)"]


@st.composite
def yaml_texts(draw):
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        indent = " " * draw(st.sampled_from([0, 0, 0, 2, 2, 4, 1]))
        key = draw(st.sampled_from(YAML_KEYS) | names)
        value = draw(st.sampled_from(YAML_VALUES) | expressions | st.just(""))
        sep = draw(st.sampled_from([": ", ": ", ":", " : ", " "]))
        lines.append(f"{indent}{key}{sep}{value}")
    text = "\n".join(lines)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(JUNK + ["\n", "\n  ", "---\n", "...", "%YAML 1.2\n"])) + text[at:]
    return text


@_settings("yaml", 3.0)
@given(yaml_texts())
def test_fuzz_yaml_texts(text):
    with hard_limit(15):
        d = outcome(derivator.loads, text, source="fuzz.yaml")
        if d is not None:
            assert d.output in d.names and d.wrt


# dicts (the Python API)
scalars = st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6) | st.floats() | st.text(max_size=10) | names
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6) | names, inner, max_size=3), max_leaves=10)


@st.composite
def definition_dicts(draw):
    data = {}
    if draw(st.booleans()):
        data["equations"] = draw(st.dictionaries(names, expressions | json_like, min_size=0, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        data["network"] = draw(json_like | network_dicts())
    for key in draw(st.lists(st.sampled_from(list(TOP_KEYS) + ["wtr", "x"]), max_size=4)):
        data[key] = draw(json_like | names | st.lists(names, max_size=3)
                         | st.dictionaries(names, st.floats() | st.integers(-5, 5), max_size=3))
    return data


@_settings("dict", 3.0)
@given(definition_dicts())
def test_fuzz_definition_dicts(data):
    with hard_limit(15):
        d = outcome(derivator.load_dict, data)
        if d is not None:
            assert d.output in d.names and d.wrt
            assert all(math.isfinite(v) for _, v in d.at)
            assert d.lr is None or math.isfinite(d.lr)


ACTIVATIONS = ["sigmoid", "tanh", "relu", "softplus", "identity", "sigmoid", "tanh", "softmax", "sigmod", ""]


@st.composite
def network_dicts(draw):
    """Small networks, most of them valid, some with one bad field."""
    sizes = st.sampled_from([1] * 6 + [2] * 6 + [3] * 3 + [0, -1, "2", 1.5, None])
    layers = draw(st.lists(st.fixed_dictionaries(
        {"units": sizes}, optional={"activation": st.sampled_from(ACTIVATIONS)}), min_size=1, max_size=3)
        | st.sampled_from([[], None, "2-2-1", [{}]]))
    net = {"inputs": draw(sizes), "layers": layers}
    for key, choices in (("bias", ["per_neuron", "shared", "none", "every"]),
                         ("loss", ["mse", "half_sse", "bce", "cross_entropy", "hinge"]),
                         ("naming", ["flat", "layered", "greek"])):
        if draw(st.booleans()):
            net[key] = draw(st.sampled_from(choices))
    return net


points = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)


def _evaluate_everywhere(d, draw_value):
    grad = outcome(derivator.compile, d)
    if grad is None:
        return
    g = derivator.graph(d)
    # NumPy arrays: see test_known_bug_scalar_division_by_zero for plain floats
    at = {name: np.array([draw_value()]) for name in g.leaves}
    out = outcome(grad, **at)
    if out is not None:
        assert set(out.gradient) == set(d.wrt)


@_settings("network", 10.0)
@given(network_dicts(), st.data())
def test_fuzz_networks_load_derive_compile_evaluate(net, data):
    with hard_limit(30), np.errstate(all="ignore"):
        d = outcome(derivator.load_dict, {"network": net})
        if d is None:
            return
        event("valid network")
        if len(d.wrt) <= 8:
            ders = outcome(derivator.derive_all, d, d.wrt[:2])
            if ders is not None:
                assert [x.wrt for x in ders] == list(d.wrt[:2])
        _evaluate_everywhere(d, lambda: data.draw(points))


# the full pipeline on small valid graphs: derive_all + compile + evaluate
# abs is left out until the known bug below is fixed (test_known_bug_abs_of_a_power)
SAFE_CALLS = ["sigmoid", "tanh", "relu", "softplus", "exp", "log", "sqrt", "sin", "cos", "max", "min"]


def _safe_extend(inner):
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(SAFE_CALLS), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})" if t[0] in ("max", "min") else f"{t[0]}({t[1]})"),
    )


@st.composite
def small_graphs(draw):
    leaves = ["a", "b", "c"]
    equations = {}
    for i in range(draw(st.integers(1, 4))):
        pool = leaves + list(equations)
        atoms = st.sampled_from(pool + pool + ["2", "0.5", "3"])
        text = draw(st.recursive(atoms, _safe_extend, max_leaves=5))
        # constant nodes (a - a) are left out until test_known_bug_constant_zero_node is fixed
        parsed = outcome(parse_expression, text)
        assume(parsed is None or parsed.expr.free_symbols)
        equations[f"u{i}"] = text
    return {"equations": equations}


@_settings("pipeline", 20.0)
@given(small_graphs(), st.data())
def test_fuzz_full_pipeline_on_small_graphs(data_dict, data):
    with hard_limit(60), np.errstate(all="ignore"):
        d = outcome(derivator.load_dict, data_dict)
        if d is None:
            return
        ders = outcome(derivator.derive_all, d)
        if ders is not None:
            for x in ders:
                assert x.wrt in d.wrt
                outcome(x.to_json)
        _evaluate_everywhere(d, lambda: data.draw(points))


def test_fuzz_example_budget():
    """The CI run covers at least 10 000 examples."""
    assert sum(EXAMPLES.values()) >= 10_000


@pytest.mark.parametrize("text", ["a**(10**10**10)", "2**2**2**2**2**2", "9**9**9", "(2*a)**(10**18)",
                                  "(2-3)**a", "(a-a)**b", "123456789012345678901234567890**0.427",
                                  "exp(10**18*log(2))*a", "1e999999", "(" * 10_000 + "a" + ")" * 10_000])
def test_hard_limit_catches_nothing_on_known_bombs(text):
    with hard_limit(5):
        assert outcome(parse_expression, text) is None


# Found by this fuzzing: sympy's derivative of Abs(u) for a u not known to be real (a**b, sqrt(a))
# holds re/im/atan2, which mpeval now evaluates (for real values).
@pytest.mark.parametrize("expr", ["abs(a**b)", "abs(a**a)"])
def test_known_bug_abs_of_a_power(expr):
    d = derivator.load_dict({"equations": {"u": expr}})
    outcome(derivator.derive_all, d)


# Found by this fuzzing: a constant node (u0 = a - a) is a float64 in the compiled code, so log(u0)
# or 2/u0 gave inf/nan, never ZeroDivisionError. Such a definition is now refused when it is loaded
# (undefined at every point, naming u1 and u0: issue 7); a constant node used well still compiles.
@pytest.mark.parametrize("eqs", [{"u0": "a - a", "u1": "log(u0)"}, {"u0": "a - a", "u1": "2/u0"},
                                 {"u0": "a - a", "u1": "exp(u0)*a"}])
@pytest.mark.parametrize("value", [0.5, np.array([0.5])])
def test_known_bug_constant_zero_node(eqs, value):
    d = outcome(derivator.load_dict, {"equations": eqs})
    assert (d is None) == ("exp" not in eqs["u1"])
    if d is not None:
        with np.errstate(all="ignore"):
            outcome(derivator.compile(d), a=value)
