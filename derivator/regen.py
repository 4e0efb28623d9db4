"""Regenerate the rendered example documents in ``output/``.

    python -m derivator.regen            # writes output/<example>.md and .tex
    python -m derivator.regen --check    # exit 1 and name the stale files

Every shipped example is derived for all of its ``wrt`` and rendered as
Markdown and as a standalone LaTeX article. ``tests/test_output.py`` runs the
check, so a change that alters a document fails until this is rerun.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import api
from .render import render
from .spec import examples

FORMATS = ("md", "tex")


def documents() -> dict[str, str]:
    """file name -> text, for every shipped example and format."""
    out = {}
    for name in examples():
        d = api.load(name)
        ders = api.derive_all(d)
        for fmt in FORMATS:
            out[f"{name}.{fmt}"] = render(ders, fmt)
    return out


def default_folder() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m derivator.regen", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", default=default_folder(), help="where to write (default: output/ of the checkout)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is missing or stale")
    a = p.parse_args(argv)
    docs = documents()
    stale = []
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
        print(f"{len(stale)} of {len(docs)} documents rewritten in {a.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
