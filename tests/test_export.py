"""numeric stage: `derivator compile -o grad.py` writes a standalone module equal to derivator.compile."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import derivator
from derivator.cli import main

EXAMPLES = ["seed_network", "two_outputs", "colah", "seed_warmup"]


def _import(path):
    spec = importlib.util.spec_from_file_location("exported_grad", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", EXAMPLES)
def test_exported_module_matches_compile(name, tmp_path):
    out = tmp_path / "grad.py"
    assert main(["compile", name, "-o", str(out)]) == 0
    text = out.read_text()
    assert "import numpy" in text and "derivator" not in text.split('"""', 2)[2].split("def gradient")[0]
    mod = _import(out)
    assert name in mod.__doc__ or derivator.load(name).source in mod.__doc__
    d = derivator.load(name)
    grad = derivator.compile(d)
    rng = np.random.default_rng(1)
    args = {x: rng.normal(size=50) for x in grad.leaves}
    ref = grad(**args)
    values, adjoints, gradient = mod.gradient(*[args[x] for x in grad.leaves])
    for k in d.wrt:
        np.testing.assert_allclose(gradient[k], ref.gradient[k], rtol=1e-13, atol=1e-15)
    for k, v in ref.adjoints.items():
        np.testing.assert_allclose(adjoints[k], v, rtol=1e-13, atol=1e-15)
    total, tgrad, n = mod.totals(*[args[x] for x in grad.leaves])
    ref_t = grad.sum(**args)
    assert n == 50
    assert total == pytest.approx(ref_t.value, rel=1e-12)
    for k in d.wrt:
        assert tgrad[k] == pytest.approx(ref_t.gradient[k], rel=1e-12, abs=1e-14)


def test_exported_module_runs_without_derivator(tmp_path):
    """The module imports with only NumPy: run it in a fresh interpreter that cannot import derivator."""
    out = tmp_path / "grad.py"
    assert main(["compile", "seed_network", "-o", str(out)]) == 0
    code = (
        "import sys; sys.modules['derivator'] = None; sys.modules['sympy'] = None\n"
        f"import importlib.util; s = importlib.util.spec_from_file_location('g', {str(out)!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "v, a, g = m.gradient(0.1, 0.5, -0.2, -1.0, 0.3, 0.4, -0.5, 0.6, 1.0)\n"
        "print(repr(float(g['w5'])))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    d = derivator.load("seed_network")
    grad = derivator.compile(d)
    leaves = dict(zip(grad.leaves, [0.1, 0.5, -0.2, -1.0, 0.3, 0.4, -0.5, 0.6, 1.0]))
    assert float(r.stdout) == pytest.approx(float(grad(**leaves).gradient["w5"]), rel=1e-14)


def test_compile_missing_leaf_is_usage_error():
    grad = derivator.compile(derivator.load("colah"))
    with pytest.raises(derivator.UsageError, match="no value for b"):
        grad(a=1.0)
    with pytest.raises(derivator.UsageError, match="not a leaf"):
        grad(a=1.0, b=2.0, zz=3.0)


def test_title_cannot_escape_the_docstring(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.yaml"
    src.write_text("title: 'x\"\"\" ; import os; os.system(\"touch %s\") ; \"\"\" \\'\n"
                   "equations:\n  u: a*b\n" % marker)
    out = tmp_path / "grad.py"
    assert main(["compile", str(src), "-o", str(out)]) == 0
    mod = _import(out)
    assert 'import os; os.system' in mod.__doc__
    derivator.compile(derivator.load(str(src)))(a=1.0, b=2.0)
    assert not marker.exists()


def test_exported_module_is_the_same_under_any_hash_seed():
    import os
    outs = set()
    for seed in ("0", "1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-m", "derivator.cli", "compile", "two_outputs"],
                           capture_output=True, text=True, env=env, check=True)
        outs.add(r.stdout)
    assert len(outs) == 1


def test_a_leaf_may_be_called_self():
    d = derivator.load_dict({"equations": {"u": "self*other"}, "at": {"self": 2, "other": 3}})
    grad = derivator.compile(d)
    assert float(grad(self=2.0, other=3.0).gradient["self"]) == 3.0
    assert grad.sum(self=[2.0, 1.0], other=3.0).gradient["self"] == 6.0
    assert grad.mean(self=[2.0, 1.0], other=3.0).value == pytest.approx(4.5)
