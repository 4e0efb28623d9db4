"""The LaTeX documents: every shipped example compiles under ``pdflatex -no-shell-escape``
within its page budget, the fragment compiles when ``\\input`` with the packages its header
lists, names that sympy would turn into fonts (``xscr``, ``hbar``) and ``abs`` compile, and
a hostile title compiles and prints as text, with nothing read from disk or run.

The .tex is built in-process (``derive_all`` + ``render``); only pdflatex runs as a
subprocess, all compiles at once in a thread pool, once per module.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import derivator
from derivator.render import render
from layer_definitions import LAYER, MNIST, with_point

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None,
    reason="pdflatex is not installed (Debian: apt-get install texlive-latex-base "
           "texlive-latex-extra texlive-pictures)")

EXAMPLES = derivator.examples()               # each in its default view (two_layer_vector: the layer view)
NETWORKS = [n for n in EXAMPLES if derivator.load(n).network is not None]     # also in the layer view
NASTY_TITLE = r"\input{/etc/passwd} \write18{rm -rf /} $ % # _ { } ~ ^ \\ & <b>"
MAX_OVERFULL_PT = 10.0      # an hbox this much too wide is text running off the page
MAX_PAGES = {"seed_network": 5, "two_outputs": 10, "mazur": 8,   # a document an instructor keeps
             "layer_mnist": 12, "layer_mnist_at": 12}              # 784-128-10, every parameter (issue 8)
HOSTILE = {     # names sympy's printer would make into \mathscr, \mathfrak, \beth, \hbar, powers
    "names": {"equations": {"u": "xscr*w1 + w_1*x0 + x_0 + delta_u*x__2 + hbar*beth + abs(xfrak)",
                            "v": "u*sign + dot*invden + max(u, lambda_2)"},
              "at": {"xscr": 1, "w1": 2, "w_1": 3, "x0": 4, "x_0": 5, "delta_u": 6, "x__2": 7, "hbar": 8,
                     "beth": 9, "xfrak": -10, "sign": 2, "dot": 1, "invden": 3, "lambda_2": 1}, "lr": 0.1},
    "domain": {"equations": {"F": "sqrt(a)*b + log(c)"}, "at": {"a": 0, "b": 1, "c": 2}, "lr": 0.1},
}


def _tex(name_or_dict, *, fragment: bool = False, view=None) -> str:
    d = derivator.load_dict(name_or_dict) if isinstance(name_or_dict, dict) else derivator.load(name_or_dict)
    return render(derivator.derive_all(d, view=view), "tex", fragment=fragment)


def _nasty_definition() -> dict:
    return {"title": NASTY_TITLE, "equations": {"u": "a*b", "v": "u + c", "F": "5*v"},
            "at": {"a": 2, "b": -3, "c": 4}, "lr": 0.1}


def _fragment_packages(fragment: str) -> list[str]:
    """The \\usepackage lines that the fragment's leading comment asks for."""
    out = []
    for line in fragment.splitlines():
        if not line.startswith("%"):
            break
        m = re.match(r"%\s*(\\usepackage(\[[^\]]*\])?\{[^}]*\})\s*$", line)
        if m:
            out.append(m.group(1))
    return out


def _host_document(fragment_file: str, packages: list[str]) -> str:
    return "\n".join([r"\documentclass{article}", *packages, r"\begin{document}",
                      r"\section{Host text}", "Some text of the host document.",
                      "\\input{" + fragment_file + "}", "More host text.", r"\end{document}", ""])


# ------------------------------------------------------ without pdflatex ---

@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    """Every document of this module, by job name."""
    docs = {f"ex_{n}": _tex(n) for n in EXAMPLES}
    for n in ("seed_network", "two_outputs"):
        docs[f"frag_{n}"] = _tex(n, fragment=True)
    docs.update({f"layer_{n}": _tex(n, view="layer") for n in NETWORKS})
    docs.update({f"layer_{k}": _tex(v, view="layer") for k, v in LAYER.items()})
    docs["layer_mnist"] = _tex(MNIST)
    docs["layer_mnist_at"] = _tex(with_point(MNIST))
    docs["frag_two_layer_vector"] = _tex("two_layer_vector", fragment=True)
    docs["nasty"] = _tex(_nasty_definition())
    docs.update({f"hostile_{k}": _tex(v) for k, v in HOSTILE.items()})
    return docs


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_tex_is_ascii_and_standalone(sources, name):
    t = sources[f"ex_{name}"]
    bad = sorted({ch for ch in t if ord(ch) > 127})
    assert not bad, f"unicode that pdflatex would choke on: {bad}"
    assert t.lstrip().startswith("%") and r"\documentclass" in t
    assert t.rstrip().endswith(r"\end{document}")
    assert r"\begin{tikzpicture}" in t


def test_fragment_has_no_preamble_and_lists_its_packages(sources):
    t = sources["frag_seed_network"]
    assert r"\documentclass" not in t and r"\begin{document}" not in t and r"\end{document}" not in t
    pkgs = " ".join(_fragment_packages(t))
    for needed in ("amsmath", "longtable", "booktabs", "array", "tikz", "adjustbox", "fontenc"):
        assert needed in pkgs, f"the fragment's header does not list {needed}"
    # the same body as the whole document
    whole = sources["ex_seed_network"]
    body = t[t.index(r"\begingroup"):]
    assert body in whole


def test_nasty_title_is_escaped(sources):
    t = sources["nasty"]
    assert r"\input{" not in t and r"\write18" not in t
    assert r"\textbackslash{}input\{/etc/passwd\}" in t
    assert r"\textbackslash{}write18\{rm -rf /\}" in t
    assert r"\$ \% \# \_ \{ \} \textasciitilde{} \textasciicircum{} \textbackslash{}\textbackslash{} \&" in t
    assert r"\textless{}b\textgreater{}" in t


# --------------------------------------------------------- with pdflatex ---

@pytest.fixture(scope="module")
def compiled(sources, tmp_path_factory) -> dict[str, dict]:
    """Compile every document once (in parallel): job name -> {rc, log, pdf, out}."""
    if PDFLATEX is None:
        pytest.skip("pdflatex is not installed")
    root = tmp_path_factory.mktemp("tex")
    jobs = {}
    for job, text in sources.items():
        folder = root / job
        folder.mkdir()
        if job.startswith("frag_"):
            (folder / "fragment.tex").write_text(text, encoding="utf-8")
            text = _host_document("fragment.tex", _fragment_packages(text))
        (folder / "main.tex").write_text(text, encoding="utf-8")
        jobs[job] = folder

    def run(folder: Path) -> dict:
        proc = subprocess.run([PDFLATEX, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error",
                               "main.tex"], cwd=folder, capture_output=True, text=True, errors="replace",
                              timeout=300, stdin=subprocess.DEVNULL)
        log = folder / "main.log"
        return {"rc": proc.returncode, "out": proc.stdout[-3000:], "pdf": folder / "main.pdf",
                "log": log.read_text(encoding="latin-1") if log.exists() else ""}

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(jobs, pool.map(run, jobs.values())))
    return results


def _assert_compiled(res: dict):
    assert res["rc"] == 0, "pdflatex failed:\n" + res["out"]
    assert res["pdf"].exists() and res["pdf"].stat().st_size > 0
    too_wide = [float(x) for x in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)", res["log"])]
    assert not [w for w in too_wide if w > MAX_OVERFULL_PT], f"text runs off the page: {too_wide}"


@needs_pdflatex
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_compiles(compiled, name):
    _assert_compiled(compiled[f"ex_{name}"])


def _pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf.read_bytes()))


LAYER_DOCS = [f"layer_{n}" for n in NETWORKS] + [f"layer_{k}" for k in LAYER] + ["layer_mnist", "layer_mnist_at"]


@needs_pdflatex
@pytest.mark.parametrize("name", LAYER_DOCS)
def test_layer_document_compiles(compiled, sources, name):
    _assert_compiled(compiled[name])
    t = sources[name]
    assert not sorted({ch for ch in t if ord(ch) > 127}) and r"\begin{tikzpicture}" in t


@needs_pdflatex
@pytest.mark.parametrize("name", sorted(MAX_PAGES))
def test_example_fits_its_page_budget(compiled, name):
    res = compiled[name if name.startswith("layer_") else f"ex_{name}"]
    _assert_compiled(res)
    assert _pages(res["pdf"]) <= MAX_PAGES[name]


@needs_pdflatex
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_names_compile(compiled, sources, name):
    _assert_compiled(compiled[f"hostile_{name}"])
    for command in (r"\mathscr", r"\mathfrak", r"\beth", r"\hbar", "nan", "inf"):
        assert command not in sources[f"hostile_{name}"]


@needs_pdflatex
@pytest.mark.parametrize("name", ["seed_network", "two_outputs", "two_layer_vector"])
def test_fragment_compiles_when_input(compiled, name):
    _assert_compiled(compiled[f"frag_{name}"])


@needs_pdflatex
def test_nasty_title_compiles_as_text(compiled):
    res = compiled["nasty"]
    _assert_compiled(res)
    log = res["log"]
    assert "/etc/passwd" not in log, "the log shows /etc/passwd being opened"
    assert "runsystem" not in log and "write18" not in log
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(res["pdf"]), "-"], capture_output=True,
                              text=True, check=True).stdout
        squeeze = lambda s: re.sub(r"\s+", "", s)
        assert squeeze(NASTY_TITLE) in squeeze(text)
        assert "root:" not in text
