"""render stage: the documents in output/ are the current rendering of the shipped examples (snapshots)."""
import os

import pytest

from derivator import regen

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output")


@pytest.fixture(scope="module")
def documents():
    return regen.documents()


def test_every_example_has_both_documents(documents):
    import derivator
    for name in derivator.examples():
        if derivator.api.default_view(derivator.load(name)) == "layer":
            continue      # the layer view's documents are not written yet (derive --format json)
        assert f"{name}.md" in documents and f"{name}.tex" in documents


@pytest.mark.parametrize("fmt", ["md", "tex"])
def test_output_folder_is_up_to_date(documents, fmt):
    stale = []
    for fname, text in sorted(documents.items()):
        if not fname.endswith("." + fmt):
            continue
        path = os.path.join(FOLDER, fname)
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            stale.append(fname)
    assert not stale, ("output/ is stale: " + ", ".join(stale) +
                       ". Regenerate it with: python3 -m derivator.regen")


def test_regen_check_reports_stale_files(tmp_path, capsys):
    assert regen.main([str(tmp_path), "--check"]) == 1
    assert "python -m derivator.regen" in capsys.readouterr().err
    assert regen.main([str(tmp_path)]) == 0
    assert regen.main([str(tmp_path), "--check"]) == 0
