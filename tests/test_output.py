"""render stage: the documents in output/ are the current rendering of the shipped examples (snapshots)."""
import os

import pytest

from derivator import regen

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output")


@pytest.fixture(scope="module")
def documents():
    return regen.documents()


def test_every_example_has_both_documents(documents):
    """NAME.md and NAME.tex in the default view; a network's layer view also as NAME.layer.md and .tex."""
    import derivator
    for name in derivator.examples():
        d = derivator.load(name)
        assert f"{name}.md" in documents and f"{name}.tex" in documents
        layer = d.network is not None and derivator.api.default_view(d) == "scalar"
        assert (f"{name}.layer.md" in documents and f"{name}.layer.tex" in documents) == layer, name
    assert "Local rules: vector-Jacobian products" in documents["two_layer_vector.md"]
    assert "Local rules: vector-Jacobian products" in documents["seed_network.layer.md"]
    assert "Local derivatives" in documents["seed_network.md"]


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
