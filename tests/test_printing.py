"""render stage, the printers: names, definitions as written, computed expressions, numbers."""
from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp

from derivator.expr import parse_tree, symbol
from derivator.functions import Max2, relu, sigmoid
from derivator.printing import Names, TexPrinter, TreePrinter, format_number, preferred, tidy, visible


@pytest.mark.parametrize("name,tex", [
    ("w1", "w_1"), ("x12", "x_{12}"), ("L", "L"), ("alpha", r"\alpha"), ("alpha2", r"\alpha_2"),
    ("Delta", r"\Delta"), ("epsilon", r"\varepsilon"),
    ("out_h1", r"\mathrm{out}_{h1}"), ("target_o1", r"\mathrm{target}_{o1}"), ("E_total", r"E_{\mathrm{total}}"),
    ("net_o1", r"\mathrm{net}_{o1}"), ("out1", r"\mathrm{out}_1"), ("w_2_1_3", "w_{2,1,3}"), ("h_alpha", r"h_{\alpha}"),
    # sympy's printer makes fonts, accents, Hebrew letters and powers of these
    ("xscr", r"\mathrm{xscr}"), ("xfrak", r"\mathrm{xfrak}"), ("beth", r"\mathrm{beth}"), ("hbar", r"\mathrm{hbar}"),
    ("xdot", r"\mathrm{xdot}"), ("dot", r"\mathrm{dot}"), ("invden", r"\mathrm{invden}"), ("x1w1", r"\mathrm{x1w1}"),
    # no rendering of their own: verbatim
    ("x__2", None), ("x_", None), ("delta_u", None), ("delta1", None), ("sign", None), ("LSE", None),
])
def test_name_scheme(name, tex):
    assert preferred(name) == tex


def test_names_that_would_look_alike_are_printed_verbatim():
    names = Names(["w1", "w_1", "x0", "x_0", "delta_u", "u", "x__2", "x", "y1", "alpha", "alpha_1", "alpha1"])
    assert names.tex("w1") == r"\mathtt{w1}" and names.tex("w_1") == r"\mathtt{w\_1}"
    assert names.tex("x0") == r"\mathtt{x0}" and names.tex("x_0") == r"\mathtt{x\_0}"
    assert names.tex("delta_u") == r"\mathtt{delta\_u}" and names.delta("u") == r"\delta_{u}"
    assert names.tex("x__2") == r"\mathtt{x\_\_2}"
    assert names.tex("y1") == "y_1" and names.tex("alpha") == r"\alpha"
    assert names.tex("alpha_1") != names.tex("alpha1")
    every = [names.tex(n) for n in names.map] + [names.delta(n) for n in names.map]
    assert len(set(every)) == len(every), "two names (or a name and an adjoint) print alike"


def test_functions_give_way_to_names_that_print_alike():
    assert Names(["e", "x"]).exp_as_e is False and Names(["x"]).exp_as_e is True
    tp = TreePrinter(Names(["e", "x", "sigma"]))
    assert tp.doprint(parse_tree("exp(x)*e")) == r"\exp(x) e"
    assert tp.doprint(parse_tree("sigmoid(x)*sigma")) == r"\operatorname{sigmoid}(x) \sigma"


@pytest.mark.parametrize("text,tex", [
    ("(y1 - o1)**2", "(y_1 - o_1)^2"),
    ("1/2*(target_o1 - out_o1)^2", r"\frac{1}{2} (\mathrm{target}_{o1} - \mathrm{out}_{o1})^2"),
    ("1/(1 + exp(-net_o1))", r"\frac{1}{1 + e^{-\mathrm{net}_{o1}}}"),
    ("w1*i1 + w2*i2 + b1*1", r"w_1 i_1 + w_2 i_2 + b_1 \cdot 1"),
    ("w5*out_h1", r"w_5 \, \mathrm{out}_{h1}"),
    ("b1 + w1*x1", "b_1 + w_1 x_1"),                          # the bias stays where it was written
    ("-(y*log(o) + (1 - y)*log(1 - o))", r"-(y \log(o) + (1 - y) \log(1 - o))"),
    ("-1/2*((y1 - o1)**2 + (y2 - o2)**2)", r"-\frac{1}{2} [(y_1 - o_1)^2 + (y_2 - o_2)^2]"),
    ("a - (b + c)", "a - (b + c)"), ("a*-b", "a (-b)"), ("(-a)**2", "(-a)^2"), ("-a**2", "-a^2"),
    ("((a))", "a"), ("a**b**c", "a^{b^c}"), ("(a**b)**c", "(a^b)^c"), ("2*3", r"2 \cdot 3"),
    ("max(z, w) + min(a, b, c)", r"\max(z, w) + \min(a, b, c)"), ("abs(a)*b", r"\lvert a \rvert b"),
    ("sqrt(a)/2", r"\frac{\sqrt{a}}{2}"), ("relu(z)", r"\operatorname{relu}(z)"), ("1e-3*a", "10^{-3} a"),
    ("2.5e3 + .5", r"2.5 \times 10^{3} + 0.5"), ("tanh(z)^2", r"\tanh(z)^2"),
    ("sigmoid((a + b)*c)", r"\sigma\bigl((a + b) c\bigr)"),
])
def test_definitions_print_as_written(text, tex):
    names = Names(["y1", "o1", "target_o1", "out_o1", "net_o1", "out_h1", "w5"])
    assert TreePrinter(names).doprint(parse_tree(text)) == tex


@pytest.mark.parametrize("text,tex", [
    ("w1*x1 + w2*x2", r"0.1 \cdot 0.5 + (-0.2) \cdot (-1)"),
    ("sigmoid(z)", r"\sigma(-0.25)"),                            # no doubled parentheses
    ("w2*x1", r"-0.2 \cdot 0.5"), ("x1 - w2", r"0.5 - (-0.2)"), ("-w2", "-(-0.2)"), ("x2**2", "(-1)^2"),
    ("(y1 - o1)**2", "(1 - 0.495401592)^2"), ("w1 + x1", "0.1 + 0.5"),
    ("x1*big", r"0.5 \cdot (1.5 \times 10^{12})"), ("big*x1", r"(1.5 \times 10^{12}) \cdot 0.5"),
    ("big**2", r"(1.5 \times 10^{12})^2"), ("big + x1", r"1.5 \times 10^{12} + 0.5"),
])
def test_worked_numbers_print_where_the_names_were(text, tex):
    values = {"w1": "0.1", "x1": "0.5", "w2": "-0.2", "x2": "-1", "y1": "1", "o1": "0.495401592", "z": "-0.25",
              "big": r"1.5 \times 10^{12}"}
    assert TreePrinter(Names(list(values)), values).doprint(parse_tree(text)) == tex


def test_computed_expressions():
    o, y, h, z, w, a = (symbol(n) for n in ("o1", "y1", "h1", "z", "w", "a"))
    p = TexPrinter(Names(["o1", "y1", "h1", "z", "w", "a"]))
    assert p.doprint(tidy(2 * o - 2 * y)) == "2 (o_1 - y_1)"
    assert p.doprint(-o + y) == "y_1 - o_1"                              # from a positive term
    assert p.doprint(o * (1 - o)) == "o_1 (1 - o_1)"
    assert p.doprint(1 - h ** 2) == "1 - h_1^2"
    assert p.doprint(sp.Heaviside(z - w, 1)) == r"[z \ge w]"              # max(z, w) sends the gradient to z
    assert p.doprint(sp.Heaviside(z, 0)) == "[z > 0]"
    assert p.doprint(sp.Heaviside(-z, 0)) == "[z < 0]"
    assert p.doprint(sp.Abs(a) * w) == r"w \lvert a \rvert"
    assert p.doprint(sp.exp(-z) / (1 + sp.exp(-z)) ** 2) == r"\frac{e^{-z}}{(1 + e^{-z})^2}"
    assert p.doprint(w / (2 * sp.sqrt(a))) == r"\frac{w}{2 \sqrt{a}}"
    assert p.doprint(sigmoid(z) + relu(a) + Max2(z, w)) .count("(") == 3
    shown = TexPrinter(Names(["w"], {"w": "w^{(2)}_{13}"})).doprint(symbol("w") ** 2)
    assert shown == "{w^{(2)}_{13}}^2"                                  # no double superscript


def test_tidy_keeps_its_factoring_and_shares_the_work():
    o, y, u, v = (symbol(n) for n in ("o1", "y1", "u", "v"))
    a, b = tidy(2 * o - 2 * y), tidy(2 * u - 2 * v)
    assert sp.expand(a - 2 * o + 2 * y) == 0 and str(a) == "2*(o1 - y1)" and str(b) == "2*(u - v)"


@pytest.mark.parametrize("value,text", [
    (0.0, "0"), (0.1, "0.1"), (-1.00919682, "-1.00919682"), (1 / 3, "0.333333333"), (1.5e-7, r"1.5 \times 10^{-7}"),
    (123456789012.0, r"1.23456789 \times 10^{11}"), (mpmath.mpf("1e400"), r"1 \times 10^{400}"),
])
def test_numbers(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, mpmath.inf, mpmath.nan])
def test_non_numbers_are_refused(bad):
    with pytest.raises(ValueError):
        format_number(bad)


def test_visible_width_counts_a_fraction_once():
    assert visible(r"\frac{\partial L}{\partial o_1}") == visible(r"\partial o_1") == 4
    assert visible(r"\mathrm{out}_{h1} \cdot x") == 8
