"""numeric stage: compiled functions stay finite and accurate at |z| = 1000, without warnings; bad inputs are reported."""
import warnings

import mpmath
import numpy as np
import pytest
import torch

import derivator

Z = [-1000.0, -300.0, -40.0, -1.0, 0.0, 2.5, 40.0, 300.0, 1000.0]


def one_layer(act, loss, outputs=1):
    return derivator.load_dict({"network": {"inputs": 1, "layers": [{"units": outputs, "activation": act}],
                                            "bias": "none", "loss": loss}})


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_bce_on_sigmoid_matches_torch_at_extreme_preactivations():
    grad = derivator.compile(one_layer("sigmoid", "bce"))
    for z in Z:
        for y in (0.0, 0.3, 1.0):
            out = grad(x1=1.0, w1=z, y1=y)
            w = torch.tensor(z, dtype=torch.float64, requires_grad=True)
            ref = torch.nn.functional.binary_cross_entropy_with_logits(w * 1.0, torch.tensor(y, dtype=torch.float64))
            ref.backward()
            assert np.isfinite(out.value) and np.isfinite(out.gradient["w1"])
            # torch's log(1 + e^-|z|) rounds 5.1e-131 (z = -300, y = 0) to 0: compare to 1e-15 absolute there,
            # and check derivator's tiny values exactly against mpmath
            assert float(out.value) == pytest.approx(ref.item(), rel=1e-12, abs=1e-15)
            assert float(out.gradient["w1"]) == pytest.approx(w.grad.item(), rel=1e-12, abs=1e-15)
            if y == 0.0:          # L = log(1 + e^z), exactly
                with mpmath.workdps(50):
                    exact = float(mpmath.log1p(mpmath.exp(mpmath.mpf(z))))
                assert float(out.value) == pytest.approx(exact, rel=1e-12, abs=0)


def test_softmax_cross_entropy_matches_torch_at_extreme_logits():
    grad = derivator.compile(one_layer("softmax", "cross_entropy", outputs=3))
    y = [0.2, 0.3, 0.5]
    for z in Z:
        ws = [z, 0.5 * z, -z]
        out = grad(x1=1.0, w1=ws[0], w2=ws[1], w3=ws[2], y1=y[0], y2=y[1], y3=y[2])
        w = torch.tensor(ws, dtype=torch.float64, requires_grad=True)
        ref = -(torch.tensor(y, dtype=torch.float64) * torch.log_softmax(w, 0)).sum()
        ref.backward()
        assert float(out.value) == pytest.approx(ref.item(), rel=1e-12)
        for k in range(3):
            assert float(out.gradient[f"w{k + 1}"]) == pytest.approx(w.grad[k].item(), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "relu"])
def test_activations_with_mse_stay_finite_and_match_torch(act):
    grad = derivator.compile(one_layer(act, "mse"))
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus,
         "relu": torch.relu}[act]
    for z in Z:
        if act == "relu" and z == 0.0:
            continue          # relu'(0) = 0 here; torch agrees, but the kink is not a test of soundness
        out = grad(x1=1.0, w1=z, y1=0.25)
        w = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        ref = (0.25 - f(w)) ** 2
        ref.backward()
        assert float(out.value) == pytest.approx(ref.item(), rel=1e-12, abs=1e-300)
        assert float(out.gradient["w1"]) == pytest.approx(w.grad.item(), rel=1e-10, abs=1e-300)


def test_batch_totals_stay_finite_at_extreme_preactivations():
    grad = derivator.compile(one_layer("sigmoid", "bce"))
    x = np.array(Z)
    tot = grad.mean(x1=x, w1=1.0, y1=np.full(len(Z), 0.5))
    assert np.isfinite(tot.value) and np.isfinite(tot.gradient["w1"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_reported(bad):
    grad = derivator.compile(derivator.load("seed_network"))
    at = derivator.load("seed_network").at_dict
    with pytest.raises(derivator.UsageError, match="x1 holds NaN or an infinite value"):
        grad(**{**at, "x1": np.array([0.5, bad])})
    with pytest.raises(derivator.UsageError, match="index"):
        grad.sum(**{**at, "x1": np.array([0.5, 0.1, bad])})


def test_eval_reports_a_non_finite_output(tmp_path, capsys):
    from derivator.cli import main
    f = tmp_path / "log.yaml"
    f.write_text("equations:\n  u: log(a)\nat: {a: 0}\n")
    assert main(["eval", str(f)]) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and err.count("\n") == 1
