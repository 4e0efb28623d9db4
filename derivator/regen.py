"""Regenerate the rendered example documents in ``output/`` and the README's excerpt.

    python -m derivator.regen            # writes output/<example>.md and .tex, and README.md's excerpt
    python -m derivator.regen --check    # exit 1 and name the stale files

Every shipped example is derived for all of its ``wrt`` and rendered as
Markdown and as a standalone LaTeX article, in its default view:
``output/<example>.md`` and ``.tex`` (``two_layer_vector``, a `shapes`
definition, in the layer view; the others in the scalar view). A network
example whose default is the scalar view also gets its layer-view documents,
``output/<example>.layer.md`` and ``.layer.tex`` (``derive <example> --view
layer``). ``tests/test_output.py`` runs the check, so a change that alters a
document fails until this is rerun.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from . import api
from .render import render
from .spec import examples

FORMATS = ("md", "tex")


def documents() -> dict[str, str]:
    """file name -> text, for every shipped example and format (see the module docstring for the names)."""
    out = {}
    for name in examples():
        d = api.load(name)
        ders = api.derive_all(d)
        for fmt in FORMATS:
            out[f"{name}.{fmt}"] = render(ders, fmt)
        if api.default_view(d) == "scalar" and d.network is not None:
            layer = api.derive_all(d, view="layer")
            for fmt in FORMATS:
                out[f"{name}.layer.{fmt}"] = render(layer, fmt)
    return out


START, END = "<!-- excerpt:start -->\n", "<!-- excerpt:end -->"


def readme_excerpt() -> str:
    """The backward pass and the gradient of `derivator derive seed_network --wrt w5`, headings one level down."""
    doc = render([api.derive(api.load("seed_network"), "w5")], "md")
    body = doc[doc.index("## 4. "):doc.index("## 6. ")].rstrip() + "\n"
    return re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M)


def with_excerpt(readme: str) -> str:
    a = readme.index(START) + len(START)
    b = readme.index(END)
    return readme[:a] + readme_excerpt() + readme[b:]


def default_folder() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m derivator.regen", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", default=default_folder(), help="where to write (default: output/ of the checkout)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is missing or stale")
    a = p.parse_args(argv)
    docs = documents()
    stale = []
    readme = os.path.join(os.path.dirname(os.path.abspath(a.folder)), "README.md")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            old = f.read()
        if START in old and END in old and with_excerpt(old) != old:
            stale.append("README.md (excerpt)")
            if not a.check:
                with open(readme + ".tmp", "w", encoding="utf-8", newline="\n") as f:
                    f.write(with_excerpt(old))
                os.replace(readme + ".tmp", readme)
    for fname, text in docs.items():
        path = os.path.join(a.folder, fname)
        try:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if same:
            continue
        stale.append(fname)
        if not a.check:
            os.makedirs(a.folder, exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.replace(tmp, path)
    if a.check and stale:
        sys.stderr.write("stale documents in output/: " + ", ".join(stale) +
                         "\nregenerate them with: python -m derivator.regen\n")
        return 1
    if not a.check:
        print(f"{len(stale)} file(s) rewritten: " + (", ".join(stale) if stale else "none was stale"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
