"""render stage for `check`: the student's message, and the report as text, Markdown and LaTeX.

The LaTeX report compiles under ``pdflatex -no-shell-escape`` (one compile for every kind, a
hostile title and claims with underscores), runs nothing, and no line runs off the page.
"""
import json
import re
import shutil
import subprocess

import pytest

import derivator
from derivator.cli import main

PDFLATEX = shutil.which("pdflatex")
NASTY = r"\input{/etc/passwd} \write18{rm -rf /} $ % # _ { } ~ ^ & <b>"

NET = {  # a 2-2-2 sigmoid network with shared biases (not a shipped example), half squared error
    "title": NASTY,
    "network": {"inputs": 2, "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 2, "activation": "sigmoid"}],
                "bias": "shared", "loss": "half_sse"},
    "at": {"x1": 0.3, "x2": -0.6, "y1": 1, "y2": 0, "w1": 0.5, "w2": -0.5, "w3": 0.25, "w4": 0.75,
           "w5": -0.2, "w6": 0.4, "w7": 0.6, "w8": -0.8, "b1": 0.1, "b2": 0.2},
}
D1, D2 = "(o1 - y1)*o1*(1 - o1)", "(o2 - y2)*o2*(1 - o2)"
CLAIMS = {
    "w5": f"{D1}*h1",                                          # right
    "w6": "(y1 - o1)*o1*(1 - o1)*h2",                         # sign
    "w7": "(o2 - y2)*h1",                                      # factor σ′
    "w1": f"{D1}*w5*h1*(1 - h1)*x1",                           # missing the path through o2
    "w2": f"({D1}*w5 + {D2}*w7)*h1*(1 - h1)*x2 + ({D1}*w6 + {D2}*w8)*h2*(1 - h2)*x2",   # plus the paths of w4
    "b1": f"({D1}*w5 + {D2}*w7)*h1*(1 - h1)",                  # shared bias: h2's paths missing
    "b2": f"{D1}*{D2}",                                        # incorrect
}
KINDS = {"w5": "correct", "w6": "sign", "w7": "factor", "w1": "missing_paths", "w2": "extra_paths",
         "b1": "missing_paths", "b2": "incorrect"}


@pytest.fixture(scope="module")
def report():
    return derivator.check_claims(derivator.load_dict(NET, source="net_2_2_2.yaml"), CLAIMS)


def test_kinds_and_score(report):
    assert {v.wrt: v.kind for v in report} == KINDS
    assert report.score == (1, 7) and not report.all_correct


def test_messages_say_what_to_fix(report):
    m = {v.wrt: v.message for v in report}
    assert m["w5"].startswith("Your ∂L/∂w5 is right")
    assert "wrong sign" in m["w6"] and "−1 times" in m["w6"]
    assert "missing the factor σ′(z4) = ∂o2/∂z4 = o2*(1 - o2)" in m["w7"]
    assert "misses L → o2 → z4 → h1 → z1 → w1" in m["w1"]
    assert "do not end at w2" in m["w2"] and "w4" in m["w2"]
    assert "sum over 2 of the 4 paths" in m["b1"]
    assert "For comparison" in m["b2"]
    for v in report:
        assert "\n" not in v.message and "  " not in v.message
        if not v.correct:
            assert "given point" in v.message


def test_json_is_the_contract(report):
    objs = report.to_json()
    assert [o["kind"] for o in objs] == list(KINDS.values())
    w1 = objs[3]
    assert w1["paths"] == [["L", "o2", "z4", "h1", "z1", "w1"]] and w1["path_count"] == 1
    assert w1["counterexample"]["at"] == NET["at"] | {}, "the given point shows the difference"
    assert objs[2]["factor"] == "o2*(1 - o2)"
    json.dumps(objs)


def test_text_report(report):
    t = report.to_text()
    assert t.startswith("net_2_2_2.yaml: 1 of 7 claims right") and t.rstrip().endswith("score: 1/7")
    assert "WRONG (missing paths)" in t and "L → o2 → z4 → h1 → z1 → w1" in t
    body = [line for line in t.splitlines()[1:] if not re.match(r"\d+\. ∂", line)]   # but the claims as written
    assert max(len(line) for line in body) <= 90, "paragraphs are wrapped"


def test_markdown_report(report):
    md = report.to_markdown()
    assert md == report.to_markdown(), "deterministic"
    assert "**Score: 1 / 7**" in md and md.count("| wrong") == 0 and md.count("**wrong**") == 6
    assert r"\\input\{/etc/passwd\}" in md and "<b>" not in md, "the title is inert"
    assert "```mermaid" in md and "classDef missing" in md and re.search(r"class n[\d,n]+ missing", md)
    assert r"\text{(missed by the claim)}" in md
    assert "derivator derive net_2_2_2.yaml --wrt w1" in md
    assert report[0]._repr_markdown_().startswith("# Checking claimed derivatives")


def test_latex_report_is_ascii_and_escaped(report):
    tex = report.to_latex()
    assert not sorted({ch for ch in tex if ord(ch) > 127})
    assert r"\input{" not in tex and r"\write18" not in tex
    assert r"\textbackslash{}input\{/etc/passwd\}" in tex
    assert r"\texttt{(o1 - y1)*\allowbreak{}o1" in tex
    assert "-{}-wrt" in tex
    assert tex.rstrip().endswith(r"\end{document}")


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed")
def test_latex_report_compiles(report, tmp_path):
    (tmp_path / "main.tex").write_text(report.to_latex(), encoding="utf-8")
    p = subprocess.run([PDFLATEX, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                       cwd=tmp_path, capture_output=True, text=True, errors="replace", timeout=300,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout[-3000:]
    log = (tmp_path / "main.log").read_text(encoding="latin-1")
    too_wide = [float(x) for x in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)", log)]
    assert not [w for w in too_wide if w > 10.0], too_wide
    assert (tmp_path / "main.pdf").stat().st_size > 0


def test_cli_writes_documents(tmp_path, capsys):
    f = tmp_path / "net.yaml"
    f.write_text(json.dumps(NET | {"claims": CLAIMS}))
    for fmt in ("md", "tex"):
        out = tmp_path / f"report.{fmt}"
        assert main(["check", str(f), "--format", fmt, "-o", str(out)]) == 3
        assert out.read_text().count("Counterexample") >= 6
    assert capsys.readouterr().out == ""


def test_same_bytes_in_fresh_processes(tmp_path):
    """No set order or hash seed reaches the report: two processes with other hash seeds agree."""
    import os
    import sys
    f = tmp_path / "net.yaml"
    f.write_text(json.dumps(NET | {"claims": {k: CLAIMS[k] for k in ("w1", "w2", "b1")}}))
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        p = subprocess.run([sys.executable, "-m", "derivator", "check", str(f), "--format", "md"],
                           capture_output=True, env=env, timeout=120)
        assert p.returncode == 3, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]


def test_a_users_template_overrides_a_block(tmp_path, capsys):
    (tmp_path / "check.md.j2").write_text('{% extends "derivator/check.md.j2" %}\n'
                                          '{% block title %}# My course: checked answers\n\n{% endblock %}\n')
    assert main(["check", "student_answers", "--wrt", "w5", "--format", "md", "--templates", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# My course: checked answers") and "**Score: 1 / 1**" in out
