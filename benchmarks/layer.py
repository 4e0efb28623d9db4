#!/usr/bin/env python
"""The layer view's compiled gradient against torch autograd (issue 8): one thread, round-robin medians.

    python benchmarks/layer.py [--quick] [--json PATH]

Networks with a sigmoid hidden layer, a softmax output and cross-entropy (784-128-10 has 101,770
parameters), N = 10^4 samples: the batch mean of the loss and of every gradient, by

- derivator: ``grad.mean(x=X, y=Y, W1=…, b1=…, W2=…, b2=…)`` of ``derivator.compile(d, view="layer")``;
- torch: ``torch.autograd.grad`` of the same function (float64, ``F.linear``, ``sigmoid``,
  ``log_softmax``; the mean over the batch of −Σ y log softmax(z)).

Both get the same float64 arrays (torch's tensors share NumPy's memory). Before timing, every
gradient array is compared (largest entry difference over the largest entry of torch's array);
the run stops when one differs by more than 1e-9. Prints a table with the ratio derivator / torch
(the target: <= 1.0x at 784-128-10), the compile time of each size in a fresh process, and the
log-log slope of time against parameters; writes JSON (default benchmarks/layer_results.json).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (one thread everywhere, set before NumPy and torch are imported; the root on sys.path)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402

import derivator  # noqa: E402

HERE, ROOT, THREADPOOLCTL = run.HERE, run.ROOT, run.THREADPOOLCTL

SIZES = [(64, 32, 10), (784, 32, 10), (784, 128, 10), (784, 256, 10)]
MAIN = (784, 128, 10)
SAMPLES = 10_000
TOLERANCE = 1e-9
TARGET = "derivator <= 1.0x torch autograd at 784-128-10 (one thread), gradients within 1e-9 (relative, per array)"


def network(sizes) -> dict:
    return {"title": f"{'-'.join(map(str, sizes))} network",
            "network": {"inputs": sizes[0],
                        "layers": [{"units": sizes[1], "activation": "sigmoid"},
                                   {"units": sizes[2], "activation": "softmax"}],
                        "bias": "per_neuron", "loss": "cross_entropy"}}


def data(sizes, n: int, seed: int = 0):
    """MNIST-like inputs in [0, 1), one-hot targets, Glorot-scaled weights, small biases."""
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    X = rng.uniform(0.0, 1.0, size=(n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, size=n)]
    params = {"W1": rng.normal(0.0, (2.0 / (n_in + n_hid)) ** 0.5, size=(n_hid, n_in)),
              "b1": rng.normal(0.0, 0.1, size=n_hid),
              "W2": rng.normal(0.0, (2.0 / (n_hid + n_out)) ** 0.5, size=(n_out, n_hid)),
              "b2": rng.normal(0.0, 0.1, size=n_out)}
    return X, Y, params


def contestants(sizes, n: int):
    X, Y, params = data(sizes, n)
    grad = derivator.compile(derivator.load_dict(network(sizes)), view="layer")

    def run_derivator():
        t = grad.mean(x=X, y=Y, **params)
        return t.value, t.gradient

    import torch
    import torch.nn.functional as F
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    tp = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    order = list(tp)

    def run_torch():
        a1 = torch.sigmoid(F.linear(tX, tp["W1"], tp["b1"]))
        z2 = F.linear(a1, tp["W2"], tp["b2"])
        loss = -(tY * torch.log_softmax(z2, dim=-1)).sum(dim=-1).mean()
        g = torch.autograd.grad(loss, [tp[k] for k in order])
        return loss.item(), {k: v.numpy() for k, v in zip(order, g)}

    return {"derivator": run_derivator, "torch": run_torch}


def agreement(runs) -> dict:
    """Largest difference per gradient array, over the largest entry of torch's array."""
    v_d, g_d = runs["derivator"]()
    v_t, g_t = runs["torch"]()
    out = {"value": abs(v_d - v_t) / max(abs(v_t), 1e-300)}
    for k, ref in g_t.items():
        out[k] = float(np.max(np.abs(g_d[k] - ref)) / max(float(np.max(np.abs(ref))), 1e-300))
    return out


def timed(runs, reps: int) -> dict:
    for f in runs.values():         # warm up
        f()
    times = {k: [] for k in runs}
    gc.disable()
    try:
        for _ in range(reps):
            for k, f in runs.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
                gc.collect()
    finally:
        gc.enable()
    return times


COMPILE_SNIPPET = """
import time, json, sys
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
import derivator
t1 = time.perf_counter()
grad = derivator.compile(derivator.load_dict(json.loads({spec!r})), view="layer")
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "compile_s": t2 - t1, "source_lines": grad.source.count(chr(10))}}))
"""


def compile_time(sizes, reps: int) -> dict:
    """load_dict + compile(view="layer") in a fresh process (the rule checks included; import not)."""
    runs = []
    for _ in range(reps):
        code = COMPILE_SNIPPET.format(root=ROOT, spec=json.dumps(network(sizes)))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {"compile_s": statistics.median(r["compile_s"] for r in runs),
            "import_s": statistics.median(r["import_s"] for r in runs),
            "source_lines": runs[0]["source_lines"], "runs": runs}


def machine() -> dict:
    import torch
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        commit = None
    blas = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001  (older NumPy: no dict mode)
        pass
    return {"platform": platform.platform(), "cpu_model": cpu, "cpu_count": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "numpy_blas": blas,
                         "torch": torch.__version__, "derivator": getattr(derivator, "__version__", None)},
            "threads": {"variables": 1, "torch": torch.get_num_threads(), "threadpoolctl": THREADPOOLCTL},
            "git_commit": commit, "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def slope(xs, ys) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (about 30 s)")
    p.add_argument("--json", default=os.path.join(HERE, "layer_results.json"), metavar="PATH")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    reps = 5 if a.quick else 21
    started = time.perf_counter()
    info = machine()
    rows = []
    print(f"layer view vs torch autograd: batch mean over N = {SAMPLES:,} samples, one thread, "
          f"median of {reps} round-robin repetitions")
    print(f"{'network':>12} {'params':>8} {'derivator':>11} {'torch':>11} {'ratio':>7} {'max rel. diff':>14} "
          f"{'compile':>9}")
    for sizes in SIZES:
        runs = contestants(sizes, SAMPLES)
        agree = agreement(runs)
        worst = max(agree.values())
        if worst > TOLERANCE:
            print(f"{'-'.join(map(str, sizes))}: derivator and torch differ by {worst:.2e} (relative): {agree}",
                  file=sys.stderr)
            return 1
        times = timed(runs, reps)
        comp = compile_time(sizes, 1 if a.quick else 3)
        n_params = sizes[1] * (sizes[0] + 1) + sizes[2] * (sizes[1] + 1)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"network": "-".join(map(str, sizes)), "parameters": n_params, "samples": SAMPLES,
               "median_s": med, "min_s": {k: min(v) for k, v in times.items()}, "times_s": times,
               "ratio_vs_torch": med["derivator"] / med["torch"], "max_relative_difference": agree,
               "compile": comp}
        rows.append(row)
        print(f"{row['network']:>12} {n_params:>8,} {med['derivator'] * 1e3:>8.1f} ms {med['torch'] * 1e3:>8.1f} ms "
              f"{row['ratio_vs_torch']:>6.2f}x {worst:>14.1e} {comp['compile_s']:>7.2f} s")
        del runs
        gc.collect()
    main_row = next(r for r in rows if r["network"] == "-".join(map(str, MAIN)))
    big = [r for r in rows if r["parameters"] >= 20_000]
    fit = {k: slope([r["parameters"] for r in big], [r["median_s"][k] for r in big]) for k in ("derivator", "torch")}
    fit["compile"] = slope([r["parameters"] for r in rows], [r["compile"]["compile_s"] for r in rows])
    verdict = "PASS" if main_row["ratio_vs_torch"] <= 1.0 else "MISS"
    print(f"\n784-128-10: derivator / torch autograd = {main_row['ratio_vs_torch']:.3f}x "
          f"(target <= 1.0x: {verdict}); every gradient within {TOLERANCE:g} of torch's")
    print(f"log-log slope of time against parameters (networks of 20,000+ parameters): derivator "
          f"{fit['derivator']:.2f}, torch {fit['torch']:.2f}; of compile time (all sizes): {fit['compile']:.2f}")
    result = {"machine": info, "quick": a.quick, "target": TARGET, "repetitions": reps, "rows": rows,
              "slopes": fit, "verdict": verdict, "elapsed_s": time.perf_counter() - started}
    with open(a.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"results: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
