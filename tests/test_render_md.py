"""render stage, Markdown: what a reader gets, how GitHub shows it, user templates.

Every Markdown math span of every shipped example (and of definitions made to
break the printers) must parse in KaTeX: the test runs node with KaTeX from
``.ci/katex`` (``.ci/run`` installs it). Outside CI it is skipped, with the
command that installs it, when node or KaTeX is missing; in CI (``CI`` or
``DERIVATOR_REQUIRE_KATEX`` set) it fails instead.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

import derivator
from derivator.cli import main
from derivator.render import render
from layer_definitions import LAYER, MNIST, with_point

ROOT = Path(__file__).resolve().parent.parent
KATEX_VERSION = "0.19.1"
MAX_INLINE = 160            # characters of one inline math span (GitHub's page width)

# definitions made to break the printers: names that sympy would turn into fonts or powers, names
# that look alike, abs in tables, relu at a kink, a point outside a function's domain
HOSTILE = {
    "names": {"equations": {"u": "xscr*w1 + w_1*x0 + x_0 + delta_u*x__2 + hbar*beth + abs(xfrak) + max(xscr, w1)",
                            "v": "u*sign + dot*invden + x1w1"},
              "at": {"xscr": 1, "w1": 2, "w_1": 3, "x0": 4, "x_0": 5, "delta_u": 6, "x__2": 7, "hbar": 8, "beth": 9,
                     "xfrak": -10, "sign": 2, "dot": 1, "invden": 3, "x1w1": 0.5}, "lr": 0.1},
    "relu": LAYER["relu"],
    "domain": {"equations": {"F": "sqrt(a)*b"}, "at": {"a": 0, "b": 1}, "lr": 0.1},
    "log": {"equations": {"u": "log(a)", "F": "u*b + c"}, "at": {"a": -1, "b": 1, "c": 2}, "lr": 0.1},
    "huge": {"equations": {"u": "exp(a)", "F": "u*b + log(u)"}, "at": {"a": 1000, "b": 2}, "lr": 0.1},
    "layered": LAYER["layered"],
}


def _md(name_or_dict, wrt=None, view=None) -> str:
    d = derivator.load_dict(name_or_dict) if isinstance(name_or_dict, dict) else derivator.load(name_or_dict)
    return render(derivator.derive_all(d, wrt, view=view), "md")


@pytest.fixture(scope="module")
def docs() -> dict[str, str]:
    out = {n: _md(n) for n in derivator.examples()}
    out.update({f"hostile_{k}": _md(v) for k, v in HOSTILE.items()})
    out.update({f"{n}.layer": _md(n, view="layer") for n in derivator.examples()
                if derivator.load(n).network is not None})
    out.update({f"layer_{k}": _md(v, view="layer") for k, v in LAYER.items()})
    out["layer_mnist"] = _md(MNIST)
    out["layer_mnist_at"] = _md(with_point(MNIST))
    return out


DOCS = (derivator.examples() + [f"hostile_{k}" for k in HOSTILE] + [f"layer_{k}" for k in LAYER]
        + ["layer_mnist", "layer_mnist_at"]
        + [f"{n}.layer" for n in derivator.examples() if derivator.load(n).network is not None])


# ------------------------------------------------------- math spans, as GitHub finds them ---

def math_spans(md: str) -> list[tuple[str, bool, int]]:
    """(tex, display, line) for every math span outside code blocks: $$ blocks and inline $…$."""
    out, lines, i, fence = [], md.split("\n"), 0, False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.strip() == "$$":
            j = lines.index("$$", i + 1)
            body = lines[i + 1:j]
            assert all(b.strip() for b in body), f"line {i + 1}: a blank line inside $$ ends the math on GitHub"
            out.append(("\n".join(body), True, i + 1))
            i = j
        elif not fence:
            marks = [m.start() for m in re.finditer(r"(?<!\\)\$", line)]
            assert len(marks) % 2 == 0, f"line {i + 1}: an odd number of $: {line}"
            out += [(line[a + 1:b], False, i + 1) for a, b in zip(marks[::2], marks[1::2])]
        i += 1
    return out


def _katex() -> tuple[str, str] | None:
    node = shutil.which("node")
    for folder in (os.environ.get("DERIVATOR_KATEX"), ROOT / ".ci" / "katex" / "node_modules"):
        if node and folder and (Path(folder) / "katex" / "package.json").exists():
            return node, str(folder)
    return None


_KATEX_JS = r"""
const katex = require('katex'); let data = '';
process.stdin.on('data', c => data += c);
process.stdin.on('end', () => {
  const bad = [];
  for (const it of JSON.parse(data)) {
    try { katex.renderToString(it.tex, {displayMode: it.display, throwOnError: true, strict: 'error'}); }
    catch (e) { bad.push(it.where + ': ' + e.message); }
  }
  console.log(JSON.stringify(bad));
});
"""


def test_every_math_span_parses_in_katex(docs):
    found = _katex()
    if found is None:
        how = (f"KaTeX is not installed: npm install --no-save --prefix .ci/katex katex@{KATEX_VERSION} "
               "(or run .ci/run); node and npm are needed")
        if os.environ.get("CI") or os.environ.get("DERIVATOR_REQUIRE_KATEX"):
            pytest.fail(how)
        pytest.skip(how)
    node, folder = found
    items = [{"tex": t, "display": disp, "where": f"{name}.md:{line}"}
             for name, md in docs.items() for t, disp, line in math_spans(md)]
    assert len(items) > 500
    proc = subprocess.run([node, "-e", _KATEX_JS], input=json.dumps(items), capture_output=True, text=True,
                          env=dict(os.environ, NODE_PATH=folder), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bad = json.loads(proc.stdout)
    assert not bad, "KaTeX cannot parse:\n" + "\n".join(bad[:20])


# ------------------------------------------------------------------- style ---

_SIZING = re.compile(r"\\(left|right|[Bb]igg?[lr]?)(?![A-Za-z])")
_LONE = re.compile(r"(?<![A-Za-z\\}{'])\(\s*(\\?[A-Za-z]+(_\{?[A-Za-z0-9]+\}?)?|\\math(rm|tt)\{[^{}]*\}(_\{[^{}]*\})?|"
                   r"[0-9]+(\.[0-9]+)?)\s*\)")


def _italic_words(tex: str) -> list[str]:
    """Runs of two or more letters that TeX would set as an italic product."""
    s = re.sub(r"\\(begin|end)\{[a-z*]+\}", " ", tex)
    s = re.sub(r"\\(mathrm|mathtt|operatorname|text|textbf)\{[^{}]*\}", " ", s)
    s = re.sub(r"\\[A-Za-z]+", " ", s)
    return re.findall(r"[A-Za-z]{2,}", s)


@pytest.mark.parametrize("name", DOCS)
def test_math_reads_like_a_hand_derivation(docs, name):
    md = docs[name]
    for tex, display, line in math_spans(md):
        flat = _SIZING.sub("", tex)
        assert "((" not in flat.replace(" ", ""), f"{name}.md:{line}: doubled parentheses in {tex[:200]}"
        assert not _LONE.search(flat), f"{name}.md:{line}: a lone symbol or number in parentheses: {_LONE.search(flat)[0]}"
        assert not _italic_words(tex), f"{name}.md:{line}: {_italic_words(tex)} would print as italic products"
        assert "|" not in tex, f"{name}.md:{line}: a | in math breaks GitHub tables"
        if not display:
            assert len(tex) <= MAX_INLINE, f"{name}.md:{line}: inline math of {len(tex)} characters"
    assert not re.search(r"(?i)\bnan\b|\binf\b|infinity|\\infty", md), f"{name}: a non-number is printed"


@pytest.mark.parametrize("name", DOCS)
def test_tables_keep_their_columns(docs, name):
    """GitHub splits table rows at every | that is not escaped, math or not."""
    cells = None
    for line in docs[name].split("\n"):
        if line.startswith("|"):
            n = len(re.split(r"(?<!\\)\|", line))
            cells = cells or n
            assert n == cells, f"{name}: a table row with {n - 2} cells instead of {cells - 2}: {line}"
        else:
            cells = None


# ------------------------------------------------------------------ content ---

def test_markdown_has_every_section_and_one_picture(capsys):
    assert main(["derive", "two_outputs"]) == 0
    md = capsys.readouterr().out
    for heading in ("## 1. The computational graph", "## 2. Forward pass", "## 3. Local derivatives",
                    "## 4. Backward pass: reverse accumulation", "## 5. Gradients", "## 6. How this was checked",
                    "### 5.1 Output layer, weights: w7, w8, w9, w10, w11, w12"):
        assert heading in md
    assert md.count("```mermaid") == 1, "the graph is drawn once per document"
    headings = [line for line in md.split("\n") if line.startswith("#")]
    assert not [h for h in headings if "$" in h or "\\" in h], "headings carry no TeX (clean anchors)"
    # weights that share a structure: one group, one worked example, one table of all of them
    assert md.count("There are 2 paths from $L$ to") == 2          # w1 and b1 worked; w2…w6, b2, b3 in tables
    assert md.count("| $w_") == 12


# ------------------------------------------------------- the layer view ---

def test_layer_document_has_every_section_shapes_lemma_and_one_picture(docs):
    md = docs["two_layer_vector"]
    for heading in ("## 1. The computational graph", "## 2. Forward pass",
                    "## 3. Local rules: vector-Jacobian products", "## 4. Backward pass: reverse accumulation",
                    "## 5. Gradients", "## 6. How this was checked", "### 5.1 With respect to W2, b2"):
        assert heading in md
    assert md.count("```mermaid") == 1 and 'n0(["W1 ∈ ℝ⁴ˣ³"])' in md       # tensor nodes with their shapes
    assert r"z_1 &= W_1 x + b_1 \quad \in \mathbb{R}^{4}" in md            # the forward pass with shapes
    assert r"| $z_2 \to a_1$ | $W_2^{\top} \delta_{z_2}$ | matrix-vector product, the vector (BP2) |" in md
    # the lemma derived: the softmax rule, the loss's δ substituted, the cancellation, then the numbers
    assert (r"\delta_{z_2} &= p \odot (\delta_{p} - p^{\top} \delta_{p}) = p \odot \left(-\frac{y}{p} - "
            r"p^{\top} \left(-\frac{y}{p}\right)\right) = p (\mathbf{1}^{\top} y) - y") in md
    assert "**Lemma: softmax and cross-entropy.**" in md and r"\delta_{z_2} = p - y$ when they sum to 1" in md
    # one table of every parameter, then each worked over its numbers, and the update
    assert len(re.findall(r"^\| \$[Wb]_[12]\$ \| ", md, flags=re.M)) == 4
    assert r"\frac{\partial L}{\partial W_1} &= \delta_{z_1} x^{\top} = " in md
    assert r"-0.03137 & 0.06273 & -0.1255" in md                         # ∂L/∂W1, first row (torch: -0.0313652…)
    assert r"W_1 &\leftarrow" in md and "0.1157 & -0.2314 & 0.3627" in md  # W1 - 0.5 ∂L/∂W1
    assert md.count("**Lemma (softmax and cross-entropy)**") == 1       # and how it was checked


def test_network_layer_document_draws_neurons_and_states_bp1_to_bp4(docs):
    md = docs["layer_softmax_4884"]
    assert md.count("```mermaid") == 1
    picture = md[md.index("```mermaid"):md.index("```", md.index("```mermaid") + 3)]
    assert picture.count("subgraph") == 4 and picture.count("((") == 4 + 8 + 8 + 4      # neurons in columns
    assert picture.count(" --> ") == 4 * 8 + 8 * 8 + 8 * 4 + 4 + 1                 # weights are the edges
    assert "W1" not in picture and "W⁽¹⁾" not in picture.split("subgraph")[0]
    assert r"z^{(1)} &= W^{(1)} x + b^{(1)} \quad \in \mathbb{R}^{8}" in md
    assert "**The output layer** (Nielsen's BP1" in md and md.count("That is the recursion of every hidden layer") == 1
    assert r"\delta^{(2)} &= \delta_{a^{(2)}} \odot a^{(2)} \odot (1 - a^{(2)}) = (W^{(3)\top} \delta^{(3)}) \odot" in md
    assert r"$\frac{1}{N}\, \Delta^{(1)} X^{\top}$" in md and r"$\frac{1}{N}\, \Delta^{(1)}\,\mathbf{1}_N$" in md
    assert md.count("**Gradient-descent step**") == 6
    bce = docs["layer_bce"]
    assert "**Lemma: sigmoid and binary cross-entropy.**" in bce and r"\frac{a^{(2)} - y}{2}" in bce


def _bmatrix_widths(md: str) -> list[int]:
    return [max(r.count("&") + 1 for r in m.split(r"\\"))
            for m in re.findall(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", md)]


def test_large_layers_are_drawn_as_boxes_and_shortened(docs):
    md = docs["layer_mnist_at"]
    assert 'n0(["x ∈ ℝ⁷⁸⁴"])' in md and '-->|"W⁽¹⁾, b⁽¹⁾"| n1' in md          # one box per layer
    assert r"\in \mathbb{R}^{128 \times 784}" in md and r"\cdots" in md and r"\ddots" in md
    widths = _bmatrix_widths(md)
    assert widths and max(widths) <= 8, "a 784-wide matrix is never printed"
    assert max(len(m) for m in re.findall(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", md)) < 400
    assert len(md) < 40_000 and len(docs["layer_mnist"]) < 20_000


def test_layer_documents_grow_linearly_with_depth():
    """A deep sigmoid network (8 units a layer) in the layer view: the same bytes for every layer added."""
    def doc(depth):
        spec = {"network": {"inputs": 4, "layers": [{"units": 8}] * depth + [{"units": 4}]}}
        return _md(with_point(spec), view="layer")
    a, b, c = (len(doc(n)) for n in (2, 4, 8))
    assert (c - b) / 4 == pytest.approx((b - a) / 2, rel=0.15)


def test_layer_derivations_render_from_python_and_the_cli(capsys, tmp_path):
    d = derivator.load("two_layer_vector")
    proof = derivator.derive(d, "W1")
    assert proof.to_markdown() == proof._repr_markdown_() and "## 5. Gradients" in proof.to_markdown()
    assert proof.to_latex().rstrip().endswith(r"\end{document}")
    assert r"\documentclass" not in proof.to_latex(fragment=True)
    assert main(["derive", "seed_network", "--view", "layer", "--wrt", "W2", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "### 5.1 Output layer: W2" in md and r"\delta^{(2)} a^{(1)\top}" in md
    assert main(["derive", "seed_network", "--view", "layer", "--wrt", "w5"]) == 0       # one entry of W2
    assert r"{W^{(2)}}_{1,1}" in capsys.readouterr().out
    (tmp_path / "derivation.md.j2").write_text(
        '{% extends "derivator/derivation.md.j2" %}\n{% block intro %}Week 4: {{ view }} view.\n\n{% endblock %}\n')
    assert main(["derive", "two_layer_vector", "--templates", str(tmp_path)]) == 0
    assert "Week 4: layer view." in capsys.readouterr().out


def test_definitions_print_as_written(docs):
    assert r"L &= (y_1 - o_1)^2" in docs["seed_network_equations"]
    assert r"L &= (y_1 - o_1)^2" in docs["seed_network"]
    mazur = docs["mazur"]
    assert r"E_{o1} &= \frac{1}{2} (\mathrm{target}_{o1} - \mathrm{out}_{o1})^2" in mazur
    assert r"\mathrm{out}_{o1} &= \frac{1}{1 + e^{-\mathrm{net}_{o1}}}" in mazur
    assert r"\mathrm{net}_{h1} &= w_1 \, i_1 + w_2 \, i_2 + b_1 \cdot 1" in mazur or \
        r"\mathrm{net}_{h1} &= w_1 i_1 + w_2 i_2 + b_1 \cdot 1" in mazur
    assert r"\max(z, w)" in _md({"equations": {"F": "max(z, w)"}})


def test_chain_products_keep_the_chain_order_over_their_values(docs):
    md = docs["seed_network"]
    block = md[md.index("### 5.1"):md.index("### 5.2")]
    rows = [r.rstrip(" \\") for r in block.split("\n") if r.startswith(("\\frac{\\partial L}{\\partial w_5} &=", "&="))]
    assert rows[:4] == [
        r"\frac{\partial L}{\partial w_5} &= \frac{\partial L}{\partial o_1} \frac{\partial o_1}{\partial z_3} "
        r"\frac{\partial z_3}{\partial w_5}",
        r"&= 2 (o_1 - y_1) \cdot o_1 (1 - o_1) \cdot h_1",
        r"&= -1.00919682 \cdot 0.249978855 \cdot 0.562176501",
        r"&= -0.141824687"]
    # the derivative of the loss reads the same in the table, the backward pass and the chain
    assert md.count("2 (o_1 - y_1)") >= 3 and "2 o_1 - 2 y_1" not in md


def test_mazur_w5_is_worked_as_in_his_post(docs):
    """∂E/∂w5 = ∂E/∂out_o1 · ∂out_o1/∂net_o1 · ∂net_o1/∂w5 = 0.74136507 · 0.186815602 · 0.593269992."""
    for text in (docs["mazur"], render(derivator.derive_all(derivator.load("mazur")), "tex")):
        assert r"0.74136507 \cdot 0.186815602 \cdot 0.593269992" in text
        assert r"0.0363503064 \cdot 0.241300709 \cdot 0.05" in text      # ∂E/∂w1, through δ_out_h1
        assert "0.35891648" in text and "0.149780716" in text           # his updated w5 and w1


def test_worked_numbers_reuse_the_deltas(docs):
    md = docs["two_outputs"]
    delta_h1 = re.search(r"\\delta_\{h_1\} &= .*\n(?:&.*\n)*?&= (-?[0-9.]+)\s*(\\\\)?\n", md)
    assert delta_h1, "δ_h1 has a value in the backward pass"
    worked = md[md.index("There are 2 paths from $L$ to $w_1$"):]
    assert "&= " + delta_h1.group(1) + r" \cdot " in worked, "∂L/∂w1 starts from δ_h1's value"


def test_relu_inactive_unit_is_explained_once(docs):
    md = docs["hostile_relu"]
    assert md.count("**An inactive unit.**") == 1
    assert r"$z_2 = -0.25 \le 0$" in md and "$w_3$, $w_4$ are 0" in md and "$w_6$, which multiplies $h_2$" in md
    assert "is 1 when the condition holds and 0 otherwise" in md


def test_outside_the_domain_no_number_is_printed(docs):
    md = docs["hostile_domain"]
    assert md.count("**Outside the domain.**") == 1
    assert r"w_a" not in md and r"a \leftarrow" not in md, "no update for a gradient that cannot be computed"
    assert r"b \leftarrow b - \eta" in md
    log = docs["hostile_log"]
    assert log.count("**Outside the domain.**") == 1 and "$u$" in log
    huge = docs["hostile_huge"]                  # finite, beyond float64: printed with its exponent
    assert r"u &= e^{1000} = 1.97007111 \times 10^{434}" in huge and "Outside the domain" not in huge


def test_names_never_look_alike(docs):
    md = docs["hostile_names"]
    for bad in (r"\mathscr", r"\mathfrak", r"\beth", r"\hbar", "x^{2}", "x^2", r"\dot"):
        assert bad not in md, bad
    for good in (r"\mathtt{w1}", r"\mathtt{w\_1}", r"\mathtt{x0}", r"\mathtt{x\_0}", r"\mathtt{delta\_u}",
                 r"\mathtt{x\_\_2}", r"\mathrm{xscr}", r"\mathrm{hbar}", r"\mathtt{sign}", r"\mathrm{x1w1}",
                 r"\lvert \mathrm{xfrak} \rvert"):
        assert good in md, good


def test_long_chain_document_grows_linearly():
    """A sigmoid chain: the document holds each equation a bounded number of times (it held δ_n written
    out for every n, quadratic in the length: 1.7 MB at 250 equations)."""
    def doc(n):
        eqs = {"u1": "sigmoid(w*a)"}
        eqs.update({f"u{i}": f"sigmoid(u{i - 1})" for i in range(2, n + 1)})
        return _md({"equations": eqs, "at": {"a": 0.5, "w": 0.9}, "lr": 0.1})
    small, large = doc(60), doc(120)
    per_equation = (len(large) - len(small)) / 60
    assert per_equation < 600, f"{per_equation:.0f} bytes per equation"
    assert len(large) < 2.1 * len(small)


# ----------------------------------------------------------------- templates ---

def test_user_template_overrides_one_block(tmp_path, capsys):
    (tmp_path / "derivation.md.j2").write_text(
        '{% extends "derivator/derivation.md.j2" %}\n{% block intro %}Course notes, week 3.\n\n{% endblock %}\n')
    assert main(["derive", "colah", "--templates", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert "Course notes, week 3." in md and "derived by the chain rule" not in md
    assert "## 1. The computational graph" in md


def test_user_template_overrides_the_worked_example(tmp_path, capsys):
    (tmp_path / "derivation.md.j2").write_text(
        '{% extends "derivator/derivation.md.j2" %}\n'
        '{% block worked %}Worked: {{ g.wrt }} = {{ g.rows[0].value }}\n\n{% endblock %}\n')
    assert main(["derive", "seed_network", "--templates", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert "Worked: w5 = -0.141824687" in md and "Worked: w1 = 0.0155235452" in md


def test_user_templates_are_sandboxed(tmp_path):
    """A template cannot reach Python: the classic escapes raise instead of running code."""
    marker = tmp_path / "pwned"
    payloads = [
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ derivations.__class__ }}{{ title.format.__globals__ }}",
    ]
    d = derivator.load("colah")
    ders = derivator.derive_all(d)
    for p in payloads:
        (tmp_path / "derivation.md.j2").write_text(p + "\n")
        with pytest.raises(jinja2.TemplateError):
            render(ders, "md", template_path=str(tmp_path))
        assert not marker.exists()


def test_markdown_title_is_inert():
    d = derivator.load_dict({"title": "<script>alert(1)</script> [x](javascript:y) $\\input{z}$ # *b*",
                             "equations": {"u": "a*b"}})
    md = derivator.derive(d, "a").to_markdown()
    first = md.splitlines()[0]
    assert "<script>" not in first and "\\<script\\>" in first           # no HTML
    assert "\\[x\\](javascript" in first                                 # no link
    assert "\\$\\\\input" in first and "\\*b\\*" in first                # no math, no emphasis
