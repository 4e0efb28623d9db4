"""Printing: names, parse trees and sympy expressions -> LaTeX in the project's notation; safe text.

Three printers share one notation:

- ``Names`` renders every name of one document (the scheme is in the README):
  ``w1`` and ``w_1`` -> w₁, ``out_h1`` -> \\mathrm{out}_{h1} (a name of several
  letters is upright, never an italic product), Greek names -> Greek letters,
  ``δ_n`` -> the adjoint δ_n. Names are never handed to sympy's printer, which
  would turn ``xscr``, ``hbar`` or ``x__2`` into fonts, symbols or powers. Two
  different names of a document never print alike: names whose renderings
  would coincide (``w1`` and ``w_1``), names that would read as an adjoint
  (``delta_u``) or as one of the project's operators (``sign``), and names that
  the scheme cannot render (``x__2``) are printed verbatim in typewriter type.
- ``TreePrinter`` prints a definition from its parse tree (``expr.Ast``), as
  written: the user's order of terms and factors, their divisions, their
  numbers; with ``values`` it prints the same expression with a number in
  place of each name (the worked forward pass).
- ``TexPrinter``, a subclass of sympy's ``LatexPrinter``, prints what is not
  written by the user (local derivatives, results) in the same notation:
  sums from a positive term, σ for sigmoid, Iverson brackets ``[a \\ge b]``.

Parentheses are plain unless their content is tall (a fraction), never
doubled (a group that starts with a group gets square brackets), and never
around a lone symbol or a positive number. ``|`` is never printed (absolute
values are ``\\lvert … \\rvert``), so math can sit in a Markdown table cell.

``escape_tex`` and ``escape_md`` make user text (titles, names) inert.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

import mpmath
import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import precedence

from .expr import Call, Name, Neg, Num, Power, Product, Sum

# ------------------------------------------------------------- numbers ---


def format_number(v, digits: int = 9) -> str:
    """A number as a short decimal: 9 significant digits, ``a \\times 10^{k}`` outside 1e-4 … 1e9.

    Takes a float or an mpmath number (values beyond floating point keep their exponent).
    Raises ValueError for nan and ±inf: documents never print them."""
    if isinstance(v, (mpmath.mpf, mpmath.mpc)):
        if not mpmath.isfinite(v):
            raise ValueError("not a finite number")
        f = float(v)
        if math.isfinite(f) and (f != 0 or v == 0):
            v = f
        else:   # beyond float64: format from mpmath's own digits
            s = mpmath.nstr(v, digits, min_fixed=1, max_fixed=0)
            mant, _, exp = s.partition("e")
            mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
            return f"{mant} \\times 10^{{{int(exp)}}}" if exp else mant
    v = float(v)
    if not math.isfinite(v):
        raise ValueError("not a finite number")
    if v == 0:
        return "0"
    s = f"{v:.{digits}g}"
    if "e" in s:
        mant, exp = s.split("e")
        return f"{mant} \\times 10^{{{int(exp)}}}"
    return s


# --------------------------------------------------------------- names ---

GREEK = {
    "alpha": r"\alpha", "beta": r"\beta", "gamma": r"\gamma", "delta": r"\delta", "epsilon": r"\varepsilon",
    "zeta": r"\zeta", "eta": r"\eta", "theta": r"\theta", "iota": r"\iota", "kappa": r"\kappa",
    "lambda": r"\lambda", "mu": r"\mu", "nu": r"\nu", "xi": r"\xi", "pi": r"\pi", "rho": r"\rho",
    "sigma": r"\sigma", "tau": r"\tau", "upsilon": r"\upsilon", "phi": r"\phi", "chi": r"\chi",
    "psi": r"\psi", "omega": r"\omega",
    "Gamma": r"\Gamma", "Delta": r"\Delta", "Theta": r"\Theta", "Lambda": r"\Lambda", "Xi": r"\Xi",
    "Pi": r"\Pi", "Sigma": r"\Sigma", "Upsilon": r"\Upsilon", "Phi": r"\Phi", "Psi": r"\Psi",
    "Omega": r"\Omega",
}
# upright words the project prints itself: a name that would print as one of them is verbatim
OPERATOR_WORDS = frozenset({"sign", "relu", "softplus", "LSE", "sigmoid", "exp", "log", "tanh", "sin", "cos",
                            "max", "min", "sqrt", "abs"})
DELTA = "δ_"          # the prefix of adjoint names (derivation.DELTA): no definition name can have it

_LETTERS_DIGITS = re.compile(r"([A-Za-z]+?)([0-9]+)\Z")
_SHORT_SUB = re.compile(r"[A-Za-z]?[0-9]*\Z")


def _script(s: str) -> str:
    """A sub- or superscript: braces unless it is one character."""
    return s if len(s) == 1 else "{" + s + "}"


def _top_level_has(s: str, ch: str) -> bool:
    """``ch`` outside every brace, parenthesis and bracket of ``s``."""
    depth = 0
    for c in s:
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == ch and depth == 0:
            return True
    return False


def power(base: str, exponent: str) -> str:
    """``base`` to ``exponent``: a base that has a superscript of its own (w^{(2)}) is braced first."""
    if _top_level_has(base, "^"):
        base = "{" + base + "}"
    return base + "^" + _script(exponent)


def _word(w: str) -> str:
    if w in GREEK:
        return GREEK[w]
    return w if len(w) == 1 else r"\mathrm{" + w + "}"


def preferred(name: str) -> str | None:
    """A name in the scheme, before collisions are looked at; None where it has no rendering."""
    parts = name.split("_")
    if any(p == "" for p in parts) or not parts[0][:1].isalpha():
        return None                      # x__2, x_: no subscript reading
    base, subs = parts[0], []
    m = _LETTERS_DIGITS.match(base)
    if base not in GREEK and m and (len(m.group(1)) == 1 or m.group(1) in GREEK or len(parts) == 1):
        base, subs = m.group(1), [m.group(2)]        # w1, alpha2, out1
    if base in OPERATOR_WORDS:
        return None
    if base == "delta" and (subs or len(parts) > 1):
        return None                      # delta_u, delta1 would read as the adjoint δ_u
    for p in parts[1:]:
        subs.append(GREEK[p] if p in GREEK else (p if _SHORT_SUB.match(p) else r"\mathrm{" + p + "}"))
    out = _word(base)
    if subs:
        out += "_" + _script(",".join(subs))
    return out


def verbatim(name: str) -> str:
    """The name exactly as written, in typewriter type (injective: _ is escaped)."""
    return r"\mathtt{" + name.replace("_", r"\_") + "}"


class Names:
    """The LaTeX of every name of one document, with collisions resolved (see the module docstring).

    ``display`` gives the project's own notation for names it generates (the
    layered network form's w^{(2)}_{13}); it takes precedence."""

    def __init__(self, names=(), display=None):
        self.display = dict(display or {})
        names = list(dict.fromkeys(names))
        chosen = {n: self.display.get(n) or preferred(n) for n in names}
        by_tex: dict[str, list[str]] = {}
        for n, t in chosen.items():
            if t is not None:
                by_tex.setdefault(t, []).append(n)
        self.map: dict[str, str] = {}
        for n, t in chosen.items():
            clash = t is None or (len(by_tex[t]) > 1 and n not in self.display)
            self.map[n] = verbatim(n) if clash else t
        rendered = set(self.map.values())
        self.exp_as_e = "e" not in rendered            # e^{x} unless a name prints as e
        self.sigmoid_as_sigma = r"\sigma" not in rendered

    def tex(self, name: str) -> str:
        t = self.map.get(name)
        if t is not None:
            return t
        if name.startswith(DELTA):
            return self.delta(name[len(DELTA):])
        t = self.display.get(name) or preferred(name)
        return t if t is not None else verbatim(name)

    def delta(self, name: str) -> str:
        """The adjoint δ_name = ∂output/∂name."""
        return r"\delta_{" + self.tex(name) + "}"

    def frac(self, top: str, bottom: str) -> str:
        return r"\frac{\partial " + self.tex(top) + r"}{\partial " + self.tex(bottom) + "}"


# ---------------------------------------------------------- parentheses ---

_SIZES = re.compile(r"\\(left|right|[Bb]igg?[lr]?)\b")


def _tall(s: str) -> bool:
    return r"\frac" in s or r"\begin{" in s        # a fraction, or a matrix (the layer view's numbers)


def _starts_with_group(s: str) -> bool:
    return _SIZES.sub("", s).lstrip().startswith(("(", "["))


def paren(s: str) -> str:
    """``s`` in parentheses: plain, sized to a fraction inside, square where ``s`` starts with a group."""
    o, c = ("[", "]") if _starts_with_group(s) else ("(", ")")
    return (r"\left" + o + s + r"\right" + c) if _tall(s) else (o + s + c)


def call(fn: str, s: str) -> str:
    """A function applied to its argument text."""
    if _tall(s):
        return fn + r"\left(" + s + r"\right)"
    if _starts_with_group(s):
        return fn + r"\bigl(" + s + r"\bigr)"
    return fn + "(" + s + ")"


def wrap_negative(s: str) -> str:
    """A number as a factor: in parentheses where it starts with a minus sign (``0.1 \\cdot (-2)``)
    or has a power of ten (``0.1 \\cdot (1.97 \\times 10^{434})``)."""
    return paren(s) if s.startswith("-") or r"\times" in s else s


_UPRIGHT_END = re.compile(r"\\math(rm|tt)\{[^{}]*\}(_(\{[^{}]*\}|[A-Za-z0-9]))?\Z")


def juxtapose(left: str, right: str, dot: bool = False) -> str:
    """Two factors side by side: a \\cdot where juxtaposition would misread (2 3, 2 \\frac12, a (-b)),
    a thin space beside an upright name (w_5 \\, \\mathrm{out}_{h1}, not w5out)."""
    if dot or right[:1].isdigit() or right.startswith("-") or (right.startswith(r"\frac") and left[-1:].isdigit()):
        return left + r" \cdot " + right
    if right.startswith((r"\mathrm", r"\mathtt")) or _UPRIGHT_END.search(left):
        return left + r" \, " + right
    return left + " " + right


# ---------------------------------------------------- as written (trees) ---

def _num_text(text: str) -> str:
    mant, _, exp = text.lower().partition("e")
    if mant.startswith("."):
        mant = "0" + mant
    if mant.endswith("."):
        mant = mant[:-1]
    if not exp:
        return mant
    e = int(exp)
    return (r"10^{" + str(e) + "}") if mant in ("1", "1.0") else (mant + r" \times 10^{" + str(e) + "}")


class TreePrinter:
    """A parse tree as LaTeX, as written; with ``values`` (name -> LaTeX of a number), worked numbers.

    ``level`` is how tightly the surroundings bind: 0 anywhere (top, argument,
    fraction, exponent), 1 a term of a sum, 2 a factor, 3 the base of a power.
    ``lead`` says whether the text may start with a minus sign."""

    def __init__(self, names: Names, values: dict | None = None):
        self.names = names
        self.values = values

    def doprint(self, tree) -> str:
        return self.p(tree, True, 0)

    def p(self, t, lead: bool, level: int) -> str:
        return getattr(self, "_" + type(t).__name__)(t, lead, level)

    def _Num(self, t: Num, lead, level):
        s = _num_text(t.text)
        return paren(s) if level >= 3 and r"\times" in s else s

    def _Name(self, t: Name, lead, level):
        if self.values is None:
            return self.names.tex(t.name)
        s = self.values[t.name]
        if s.startswith("-") and (not lead or level >= 3):
            return paren(s)
        if level >= 2 and r"\times" in s:         # (1.97 \times 10^{434}) \cdot 2
            return paren(s)
        return s

    def _Neg(self, t: Neg, lead, level):
        s = "-" + self.p(t.arg, False, 2)
        return paren(s) if (not lead or level >= 3) else s

    def _Sum(self, t: Sum, lead, level):
        out = ""
        for i, (sign, term) in enumerate(t.terms):
            if i == 0:
                out = self.p(term, True, 1)
            else:
                out += (" + " if sign > 0 else " - ") + self.p(term, False, 1)
        return paren(out) if level >= 1 else out

    def _Product(self, t: Product, lead, level):
        groups: list[list] = []           # [numerator, [denominators]]
        for op, f in t.factors:
            if op == "/" and groups:
                groups[-1][1].append(f)
            else:
                groups.append([f, []])
        dot = self.values is not None
        out = ""
        for i, (num, dens) in enumerate(groups):
            first = i == 0
            if dens:
                sign = ""
                if isinstance(num, Neg):
                    sign, num = "-", num.arg
                top = self.p(num, True, 0)
                if len(dens) == 1:
                    bottom = self.p(dens[0], True, 0)
                else:
                    bottom = self.p(dens[0], True, 2)
                    for dd in dens[1:]:
                        bottom = juxtapose(bottom, self.p(dd, False, 2), dot)
                s = sign + r"\frac{" + top + "}{" + bottom + "}"
                if sign and (not first or not lead):
                    s = paren(s)
            else:
                s = self.p(num, lead and first, 2)
            out = s if first else juxtapose(out, s, dot)
        return paren(out) if level >= 3 else out

    def _Power(self, t: Power, lead, level):
        s = power(self.p(t.base, False, 3), self.p(t.exponent, True, 0))
        return paren(s) if level >= 3 else s

    def _Call(self, t: Call, lead, level):
        args = [self.p(a, True, 0) for a in t.args]
        s = function_tex(t.func, args, self.names)
        return paren(s) if level >= 3 and t.func == "exp" and self.names.exp_as_e else s

    # -- lines ---------------------------------------------------------
    def pieces(self, t, width: int) -> list[str]:
        """Unbreakable pieces of the top-level sum or product; each after the first carries its glue."""
        whole = self.doprint(t)
        if visible(whole) <= width:
            return [whole]
        if isinstance(t, Sum):
            out = []
            for i, (sign, term) in enumerate(t.terms):
                s = self.p(term, i == 0, 1)
                out.append(s if i == 0 else (" + " if sign > 0 else " - ") + s)
            return out
        if isinstance(t, Product) and all(op == "*" for op, _ in t.factors):
            out = []
            for i, (_, f) in enumerate(t.factors):
                if isinstance(f, Sum) and visible(self.doprint(f)) > width:
                    sub = self.pieces(f, width)
                    sub[0], sub[-1] = r"\bigl(" + sub[0], sub[-1] + r"\bigr)"
                else:
                    sub = [self.p(f, i == 0, 2)]
                if i:
                    sub[0] = r" \cdot " + sub[0]
                out.extend(sub)
            return out
        return [whole]


def function_tex(func: str, args: list[str], names: Names) -> str:
    """A call of one of the definition functions, its arguments already printed."""
    if func == "exp":
        return ("e^" + _script(args[0])) if names.exp_as_e else call(r"\exp", args[0])
    if func == "sqrt":
        return r"\sqrt{" + args[0] + "}"
    if func == "abs":
        return (r"\left\lvert " + args[0] + r" \right\rvert") if _tall(args[0]) else (r"\lvert " + args[0] + r" \rvert")
    if func in ("max", "min"):
        return call("\\" + func, ", ".join(args))
    if func == "sigmoid":
        return call(r"\sigma" if names.sigmoid_as_sigma else r"\operatorname{sigmoid}", args[0])
    if func in ("tanh", "log", "sin", "cos"):
        return call("\\" + func, args[0])
    return call(r"\operatorname{" + func + "}", ", ".join(args))


# ------------------------------------------------- computed expressions ---

class TexPrinter(LatexPrinter):
    """sympy expressions (local derivatives, results) in the same notation as the definitions."""

    printmethod = "_derivator_latex"

    def __init__(self, names: Names | None = None):
        super().__init__({"mul_symbol": None, "fold_short_frac": False})
        self.names = names or Names()

    # -- structure -----------------------------------------------------
    def _add_parens(self, s) -> str:
        return paren(s)

    def _add_parens_lspace(self, s) -> str:
        return paren(s)

    def parenthesize(self, item, level, is_neg=False, strict=False) -> str:
        prec = precedence(item)
        s = self._print(item)
        if (prec < level) or (not strict and prec <= level) or (is_neg and s.startswith("-")):
            return paren(s)
        return s

    def _print_Symbol(self, expr, style="plain"):
        return self.names.tex(expr.name)

    def _print_Add(self, expr, order=None):
        terms = add_terms(expr)
        out = ""
        for i, t in enumerate(terms):
            neg = t.could_extract_minus_sign()
            s = self._print(_negate(t)) if neg else self._print(t)
            if isinstance(t, sp.Add):
                s = paren(s)
            out = (("-" + s) if neg else s) if i == 0 else out + (" - " if neg else " + ") + s
        return out

    def _print_Mul(self, expr):
        factors = list(expr.as_ordered_factors())
        sign = ""
        coeff = sp.S.One
        num, den = [], []
        for f in factors:
            if f.is_Rational:
                coeff *= f
            elif f.is_Pow and f.exp.is_Rational and f.exp.is_negative:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        if coeff < 0:
            sign, coeff = "-", -coeff
        if coeff.q != 1:
            den.insert(0, sp.Integer(coeff.q))
        if coeff.p != 1 or not num:
            num.insert(0, sp.Integer(coeff.p))
        top = self._print(num[0]) if den and len(num) == 1 else self._product(num)   # \frac{a - y}{2}
        if den:
            out = r"\frac{" + top + "}{" + (self._print(den[0]) if len(den) == 1 else self._product(den)) + "}"
        else:
            out = top
        return sign + out

    def _product(self, factors) -> str:
        out = ""
        for f in factors:
            s = self._print(f)
            if isinstance(f, sp.Add) or (f.is_Number and f.is_negative):
                s = paren(s)
            elif isinstance(f, sp.Mul) and s.startswith("-"):
                s = paren(s)
            out = s if not out else juxtapose(out, s)
        return out

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Rational and exp.is_negative:
            return r"\frac{1}{" + self._print(sp.Pow(base, -exp, evaluate=False) if exp != -1 else base) + "}"
        if exp == sp.S.Half:
            return r"\sqrt{" + self._print(base) + "}"
        b = self._print(base)
        if isinstance(base, (sp.Add, sp.Mul, sp.Pow)) or (base.is_Number and (base.is_negative or not base.is_Integer)) \
                or (isinstance(base, sp.exp) and self.names.exp_as_e):
            b = paren(b)
        return power(b, self._print(exp))

    def _print_Rational(self, expr):
        if expr.q == 1:
            return str(expr.p)
        sign = "-" if expr.p < 0 else ""
        return sign + r"\frac{" + str(abs(expr.p)) + "}{" + str(expr.q) + "}"

    def _print_Integer(self, expr):
        return str(expr.p)

    # -- functions -----------------------------------------------------
    def _fn(self, name, expr, exp=None):
        s = function_tex(name, [self._print(a) for a in expr.args], self.names)
        return (paren(s) + "^" + _script(exp)) if exp else s

    def _print_sigmoid(self, expr, exp=None):
        return self._fn("sigmoid", expr, exp)

    def _print_exp(self, expr, exp=None):
        return self._fn("exp", expr, exp)

    def _print_log(self, expr, exp=None):
        return self._fn("log", expr, exp)

    def _print_tanh(self, expr, exp=None):
        return self._fn("tanh", expr, exp)

    def _print_sin(self, expr, exp=None):
        return self._fn("sin", expr, exp)

    def _print_cos(self, expr, exp=None):
        return self._fn("cos", expr, exp)

    def _print_Abs(self, expr, exp=None):
        return self._fn("abs", expr, exp)

    def _print_relu(self, expr, exp=None):
        return self._fn("relu", expr, exp)

    def _print_softplus(self, expr, exp=None):
        return self._fn("softplus", expr, exp)

    def _print_sign(self, expr, exp=None):
        return self._fn("sign", expr, exp)

    def _print_logsumexp(self, expr, exp=None):
        return self._fn("LSE", expr, exp)

    def _print_Max2(self, expr, exp=None):
        return self._fn("max", expr, exp)

    def _print_Min2(self, expr, exp=None):
        return self._fn("min", expr, exp)

    def _print_Heaviside(self, expr, exp=None):
        """Iverson bracket: [a ≥ b] (H(a − b) with H(0) = 1), [a > b] (with H(0) = 0)."""
        arg, h0 = expr.args
        terms = sp.Add.make_args(arg)
        pos = [t for t in terms if not t.could_extract_minus_sign()]
        neg = [_negate(t) for t in terms if t.could_extract_minus_sign()]
        if pos:
            rel = r"\ge" if h0 == 1 else ">"
            s = self._print(sp.Add(*pos)) + " " + rel + " " + (self._print(sp.Add(*neg)) if neg else "0")
        else:
            rel = r"\le" if h0 == 1 else "<"
            s = self._print(sp.Add(*neg)) + " " + rel + " 0"
        s = (r"\left[" + s + r"\right]") if r"\begin{" in s else "[" + s + "]"     # around a matrix: sized
        return (s + "^" + _script(exp)) if exp else s


def _negate(t):
    """−t, without letting sympy distribute a number over a sum (−2(a − b) stays a product)."""
    if isinstance(t, sp.Mul):
        c, rest = t.as_coeff_mul()
        c = -c
        if c == 1:
            return rest[0] if len(rest) == 1 else sp.Mul(*rest, evaluate=False)
        return sp.Mul(c, *rest, evaluate=False)
    return -t


def add_terms(expr) -> list:
    """The terms of a sum in sympy's printing order, turned to start from a positive term (y − o, not −o + y)."""
    terms = list(expr.as_ordered_terms())
    pos = next((i for i, t in enumerate(terms) if not t.could_extract_minus_sign()), 0)
    return terms[pos:] + terms[:pos]


def tidy(expr):
    """A local derivative or result as a reader expects it: common factors out (2(o − y), not 2o − 2y).

    ``factor_terms`` only, never ``simplify``; once per shape (the expression with its symbols
    renamed in order of their names), so the 250 σ′ of a long chain cost one."""
    if not isinstance(expr, (sp.Add, sp.Mul)):
        return expr
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    canon = {s: sp.Symbol(f"_t{i}", real=True) for i, s in enumerate(syms)}
    done = _tidy_shape(expr.xreplace(canon))
    return _rename(done, {v: k for k, v in canon.items()})


def _rename(e, names: dict):
    """``e`` with its symbols renamed, rebuilt without evaluation: sympy would undo the factoring
    (it distributes 2 over o − y). Not ``sympy.evaluate(False)``, which clears sympy's caches."""
    if e in names:
        return names[e]
    if not e.args:
        return e
    args = [_rename(a, names) for a in e.args]
    try:
        return e.func(*args, evaluate=False)
    except TypeError:           # a class without an ``evaluate`` option: rebuild it as sympy would
        return e.func(*args)


@lru_cache(maxsize=4096)
def _tidy_shape(expr):
    if sp.count_ops(expr) <= 60:
        return sp.factor_terms(expr)
    return expr


def _names(names) -> Names:
    """A ``Names``, or one made from a display mapping (name -> LaTeX) as earlier callers pass."""
    return names if isinstance(names, Names) else Names((), dict(names or {}))


def tex(expr, names=None) -> str:
    """A sympy expression in the project's notation; ``names`` is a ``Names`` or a display mapping."""
    return TexPrinter(_names(names)).doprint(expr)


def tex_name(name: str, names=None) -> str:
    """One name in the project's notation (without a document's collisions unless ``names`` has them)."""
    return _names(names).tex(name)


def tex_lines(expr, names=None, width: int = 72) -> list[str]:
    """A sympy expression cut at + and · into lines of about ``width`` visible characters."""
    p = TexPrinter(_names(names))
    return break_lines(expr_pieces(p, expr, width), width)


# ---------------------------------------------------------------- lines ---

_NO_WIDTH = frozenset({"left", "right", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "mathrm", "mathtt",
                       "operatorname", "displaystyle", "quad", "qquad", ","})


def visible(s: str) -> int:
    """About the printed width of LaTeX text, in characters (a fraction as wide as its wider part)."""
    width, i, n = 0, 0, len(s)
    while i < n:
        ch = s[i]
        if ch == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            cmd = m.group(1)
            i += len(m.group(0))
            if cmd == "frac":
                top, i = _group(s, i)
                bottom, i = _group(s, i)
                width += max(visible(top), visible(bottom))
            elif cmd not in _NO_WIDTH:
                width += 1
        elif ch in "{} ":
            i += 1
        else:
            width += 1
            i += 1
    return width


def _group(s: str, i: int) -> tuple[str, int]:
    """The brace group starting at ``s[i]`` (after spaces): its text and the index after it."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s) or s[i] != "{":
        return (s[i:i + 1], i + 1)
    depth, j = 0, i
    while j < len(s):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1:j], j + 1
        j += 1
    return s[i + 1:], len(s)


def break_lines(pieces: list[str], width: int, measure=visible) -> list[str]:
    """Pieces (each after the first with its glue) joined into lines of about ``width`` (as ``measure`` counts)."""
    lines: list[str] = []
    cur = pieces[0]
    for t in pieces[1:]:
        if cur and measure(cur + t) > width:
            lines.append(cur)
            cur = t.lstrip()
        else:
            cur += t
    lines.append(cur)
    return lines


def expr_pieces(p: TexPrinter, expr, width: int) -> list[str]:
    """Pieces of a sympy expression for ``break_lines``: the terms of a sum, the factors of a product."""
    whole = p.doprint(expr)
    if visible(whole) <= width:
        return [whole]
    if isinstance(expr, sp.Add):
        out = []
        for i, term in enumerate(add_terms(expr)):
            neg = term.could_extract_minus_sign()
            sub = expr_pieces(p, _negate(term) if neg else term, width)
            if i:
                sub[0] = (" - " if neg else " + ") + sub[0]
            elif neg:
                sub[0] = "-" + sub[0]
            out.extend(sub)
        return out
    if isinstance(expr, sp.Mul):
        c, rest = expr.as_coeff_mul()
        sign = "-" if c < 0 else ""
        factors = ([abs(c)] if abs(c) != 1 else []) + list(sp.Mul(*rest, evaluate=False).as_ordered_factors())
        out = []
        for i, f in enumerate(factors):
            s = p.doprint(f)
            if isinstance(f, sp.Add) and visible(s) > width:
                sub = expr_pieces(p, f, width)
                sub[0], sub[-1] = r"\bigl(" + sub[0], sub[-1] + r"\bigr)"
            else:
                sub = [paren(s) if isinstance(f, sp.Add) else s]
            if i:
                sub[0] = r" \cdot " + sub[0]
            out.extend(sub)
        out[0] = sign + out[0]
        return out
    return [whole]


# ------------------------------------------------------------ user text ---

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", '"': r"\textquotedbl{}",
}
_TEX_UNICODE = {
    "∂": r"$\partial$", "σ": r"$\sigma$", "δ": r"$\delta$", "η": r"$\eta$", "α": r"$\alpha$", "β": r"$\beta$",
    "γ": r"$\gamma$", "λ": r"$\lambda$", "μ": r"$\mu$", "θ": r"$\theta$", "Σ": r"$\Sigma$", "π": r"$\pi$",
    "→": r"$\to$", "←": r"$\leftarrow$", "·": r"$\cdot$", "×": r"$\times$", "−": r"$-$", "–": "--", "—": "---",
    "’": "'", "‘": "`", "“": "``", "”": "''", "…": r"\dots{}", "≤": r"$\le$", "≥": r"$\ge$", "²": r"$^2$",
    "′": r"$'$", "ε": r"$\varepsilon$", "ζ": r"$\zeta$", "τ": r"$\tau$", "φ": r"$\phi$", "ω": r"$\omega$",
    "⊙": r"$\odot$", "ᵀ": r"$^{\top}$", "ℝ": r"$\mathbb{R}$", "∈": r"$\in$", "Δ": r"$\Delta$", "⊘": r"$\oslash$",
}


def escape_tex(text: str) -> str:
    """User text as inert LaTeX text: specials escaped, unknown characters replaced."""
    out = []
    for ch in str(text):
        if ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _TEX_UNICODE:
            out.append(_TEX_UNICODE[ch])
        elif ch in "\n\r\t":
            out.append(" ")
        elif ord(ch) < 32 or ord(ch) == 127:
            continue
        elif ord(ch) < 128 or 0xC0 <= ord(ch) <= 0xFF:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#!|$~&])")


def escape_md(text: str) -> str:
    """User text as inert Markdown (no markup, no math, no HTML)."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    # a leading list or heading marker would turn the line into markup
    return "\\" + s if (s and s[0] in "+-=") or re.match(r"\d+[.)]", s) else s
