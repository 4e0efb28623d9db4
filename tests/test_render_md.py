"""render stage, Markdown: content, escaping, user templates."""
import derivator
from derivator.cli import main


def test_markdown_has_every_section(capsys):
    assert main(["derive", "two_outputs", "--wrt", "w1"]) == 0
    md = capsys.readouterr().out
    for heading in ("## 1. The computational graph", "## 2. Forward pass at the given point", "## 3. Local derivatives",
                    "## 4. Reverse accumulation", "## 5. The gradient", "### Paths", "### Chain rule: a sum over paths",
                    "### Factored: reverse accumulation", "### Result", "```mermaid"):
        assert heading in md
    assert "There are 2 paths" in md and "linkStyle" in md


def test_user_template_overrides_one_block(tmp_path, capsys):
    (tmp_path / "derivation.md.j2").write_text(
        '{% extends "derivator/derivation.md.j2" %}\n{% block intro %}Course notes, week 3.\n\n{% endblock %}\n')
    assert main(["derive", "colah", "--templates", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert "Course notes, week 3." in md and "Step-by-step derivation" not in md
    assert "## 1. The computational graph" in md


def test_markdown_title_is_inert():
    d = derivator.load_dict({"title": "<script>alert(1)</script> [x](javascript:y) $\\input{z}$ # *b*",
                             "equations": {"u": "a*b"}})
    md = derivator.derive(d, "a").to_markdown()
    first = md.splitlines()[0]
    assert "<script>" not in first and "\\<script\\>" in first           # no HTML
    assert "\\[x\\](javascript" in first                                 # no link
    assert "\\$\\\\input" in first and "\\*b\\*" in first                # no math, no emphasis
