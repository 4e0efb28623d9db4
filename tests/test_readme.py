"""The README stays true: its excerpt is real output, its commands are the ones CI runs."""
import os
import re

from derivator import api
from derivator.render import render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_excerpt_is_real_output():
    text = readme()
    excerpt = text.split("<!-- excerpt:start -->\n")[1].split("<!-- excerpt:end -->")[0]
    assert excerpt.strip()
    doc = render([api.derive(api.load("seed_network"), "w5")], "md")
    assert re.sub(r"^#(#+) ", r"\1 ", excerpt, flags=re.M) in doc, "README excerpt is stale: run python3 -m derivator.regen"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```sh\n(.*?)```", readme(), re.S)
    test_cmd = [c.strip() for c in commands if "pytest" in c][0]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert test_cmd in ci.splitlines()
