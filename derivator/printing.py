"""Printing: sympy expressions -> LaTeX in the project's notation, and safe text.

One subclass of sympy's ``LatexPrinter`` overrides only what differs: σ for
sigmoid, named operators for relu and softplus, Iverson brackets for the
step function, display names for layered networks (w^{(2)}_{13}), δ for
adjoints, and a *numbers* mode that prints a value in place of each symbol
(for worked examples: formula = numbers = value). Long sums and products are
cut into lines (``tex_lines``) for aligned environments.

``escape_tex`` and ``escape_md`` make user text (titles, names) inert.
"""
from __future__ import annotations

import math
import re

import sympy as sp
from sympy.printing.latex import LatexPrinter


def format_number(v: float, digits: int = 9) -> str:
    """A float as a short decimal: 9 significant digits, no exponent under 1e-4."""
    v = float(v)
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    s = f"{v:.{digits}g}"
    if "e" in s:
        mant, exp = s.split("e")
        return f"{mant} \\times 10^{{{int(exp)}}}"
    return s


class TexPrinter(LatexPrinter):
    """LaTeX in derivator's notation."""

    def __init__(self, display=None, values=None, digits: int = 9):
        settings = {"mul_symbol": "dot" if values is not None else None, "fold_short_frac": False}
        super().__init__(settings)
        self.display = dict(display or {})
        self.values = values          # name -> float: print numbers instead of symbols
        self.digits = digits

    def name(self, name: str) -> str:
        if name in self.display:
            return self.display[name]
        if name.startswith("δ_"):
            return r"\delta_{" + self.name(name[2:]) + "}"
        return super()._print_Symbol(sp.Symbol(name))

    def _print_Symbol(self, expr, style="plain"):
        if self.values is not None and expr.name in self.values:
            s = format_number(self.values[expr.name], self.digits)
            return f"\\left({s}\\right)" if s.startswith("-") else s
        return self.name(expr.name)

    def _print_sigmoid(self, expr, exp=None):
        s = r"\sigma\left(" + self._print(expr.args[0]) + r"\right)"
        return f"{s}^{{{exp}}}" if exp else s

    def _named(self, op, expr, exp=None):
        s = r"\operatorname{" + op + r"}\left(" + ", ".join(self._print(a) for a in expr.args) + r"\right)"
        return f"{s}^{{{exp}}}" if exp else s

    def _print_logsumexp(self, expr, exp=None):
        return self._named("LSE", expr, exp)

    def _print_relu(self, expr, exp=None):
        return self._named("relu", expr, exp)

    def _print_softplus(self, expr, exp=None):
        return self._named("softplus", expr, exp)

    def _print_Max2(self, expr, exp=None):
        s = r"\max\left(" + self._print(expr.args[0]) + ", " + self._print(expr.args[1]) + r"\right)"
        return f"{s}^{{{exp}}}" if exp else s

    def _print_Min2(self, expr, exp=None):
        s = r"\min\left(" + self._print(expr.args[0]) + ", " + self._print(expr.args[1]) + r"\right)"
        return f"{s}^{{{exp}}}" if exp else s

    def _print_Heaviside(self, expr, exp=None):
        arg, h0 = expr.args
        rel = r"\ge" if h0 == 1 else ">"
        s = r"\left[" + self._print(arg) + f" {rel} 0" + r"\right]"
        return f"{s}^{{{exp}}}" if exp else s

    def _print_sign(self, expr, exp=None):
        return self._named("sign", expr, exp)


def tex(expr, display=None, values=None) -> str:
    return TexPrinter(display, values).doprint(expr)


def tex_name(name: str, display=None) -> str:
    return TexPrinter(display).name(name)


def tex_lines(expr, display=None, values=None, width: int = 72) -> list[str]:
    """The expression cut at + and · into lines of about ``width`` characters.

    Breaks fall between the terms of a sum and the factors of a product; a
    term or factor that is itself too wide is cut inside, recursively (a cut
    sum inside a product gets ``\\Bigl( … \\Bigr)``, which may span lines).
    """
    p = TexPrinter(display, values)
    pieces = _pieces(p, expr, width)
    lines: list[str] = []
    cur = pieces[0]
    for t in pieces[1:]:
        if _visible(cur + t) > width and cur:
            lines.append(cur)
            cur = t.lstrip()
        else:
            cur += t
    lines.append(cur)
    return lines


def _pieces(p: TexPrinter, expr, width: int) -> list[str]:
    """Unbreakable pieces of ``expr``; each after the first carries its glue (+, -, ·)."""
    whole = p.doprint(expr)
    if _visible(whole) <= width:
        return [whole]
    if isinstance(expr, sp.Add):
        out: list[str] = []
        for i, term in enumerate(sp.Add.make_args(expr)):
            sub = _pieces(p, term, width)
            if i:
                sub[0] = " - " + sub[0][1:].lstrip() if sub[0].startswith("-") else " + " + sub[0]
            out.extend(sub)
        return out
    if isinstance(expr, sp.Mul):
        coeff, rest = expr.as_coeff_mul()
        factors = list(rest) if coeff == -1 else list(sp.Mul.make_args(expr))
        out = []
        for i, f in enumerate(factors):
            s = p.parenthesize(f, sp.printing.precedence.PRECEDENCE["Mul"])
            if _visible(s) > width and isinstance(f, sp.Add):
                sub = _pieces(p, f, width)
                sub[0], sub[-1] = r"\Bigl(" + sub[0], sub[-1] + r"\Bigr)"
            elif _visible(s) > width and isinstance(f, sp.Mul):
                sub = _pieces(p, f, width)
            else:
                sub = [s]
            if i:
                sub[0] = r" \cdot " + sub[0]
            out.extend(sub)
        if coeff == -1:
            out[0] = "-" + out[0]
        return out
    return [whole]


def _visible(s: str) -> int:
    s = re.sub(r"\\(left|right|[Bb]igg?[lr]?|operatorname|frac|cdot)", "", s)
    return len(re.sub(r"[{}\\ ]", "", s))


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
