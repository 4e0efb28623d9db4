#!/usr/bin/env python
"""Rendering is linear in the graph: time and size of documents at growing sizes, in one run.

    python benchmarks/render_scale.py [--quick]

Four families, each at four sizes doubling from the first:

- a sigmoid chain ``u1 = σ(w·a)``, ``u_k = σ(u_{k-1})`` of N equations, derived
  for ``a`` and ``w`` (the case of issue 7 item 9: at N = 250 rendering took 45 s
  and wrote 1.7 MB, quadratic in N);
- a fully connected sigmoid network, 4 inputs, D hidden layers of 8 units and 4
  outputs, derived for every weight and bias (148 parameters at D = 2), in the
  scalar view;
- the layer view of 784-H-10 networks (sigmoid, softmax, cross-entropy; H = 16
  to 128, 12,730 to 101,770 parameters) with a point for every parameter, every
  W and b derived: the documents of issue 8's target (H = 128) print their
  matrices shortened, so the time must not grow with the parameters (slope ≈ 0
  against them);
- the layer view of 4-8×D-4 softmax networks with a point (D = 2 to 16 hidden
  layers): linear in the number of layers.

The derivations are made first; only ``render.render`` is timed (Markdown, the
template already compiled), on one thread, round-robin over the sizes with the
garbage collector off, median of R runs. The table gives the time per unit of
size (equation, or parameter) relative to the smallest size, and the slope of
log(time) against log(size): 1 is linear, 2 quadratic.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import derivator  # noqa: E402
from derivator.render import render  # noqa: E402


def chain(n: int):
    eqs = {"u1": "sigmoid(w*a)"}
    eqs.update({f"u{i}": f"sigmoid(u{i - 1})" for i in range(2, n + 1)})
    d = derivator.load_dict({"equations": eqs, "at": {"a": 0.5, "w": 0.9}, "lr": 0.1})
    return derivator.derive_all(d), n


def network(depth: int):
    layers = [{"units": 8}] * depth + [{"units": 4}]
    d = derivator.load_dict({"network": {"inputs": 4, "layers": layers}})
    g = derivator.graph(d)
    at = {x: 0.1 * ((i * 7) % 11 - 5) for i, x in enumerate(g.leaves)}
    d = derivator.load_dict({"network": {"inputs": 4, "layers": layers}, "at": at, "lr": 0.5})
    return derivator.derive_all(d, view="scalar"), len(d.wrt)


def _layer_point(sizes, per_neuron=True) -> dict:
    import numpy as np
    rng = np.random.default_rng(0)
    at = {"x": rng.uniform(-1, 1, sizes[0]).tolist(), "y": np.eye(sizes[-1])[0].tolist()}
    for l in range(1, len(sizes)):
        at[f"W{l}"] = rng.normal(0, 0.1, (sizes[l], sizes[l - 1])).tolist()
        at[f"b{l}"] = rng.normal(0, 0.1, sizes[l]).tolist()
    return at


def mnist(hidden: int):
    spec = {"network": {"inputs": 784, "layers": [{"units": hidden}, {"units": 10, "activation": "softmax"}],
                        "loss": "cross_entropy"}, "at": _layer_point((784, hidden, 10)), "lr": 0.1}
    d = derivator.load_dict(spec)
    return derivator.derive_all(d, view="layer"), d.network.n_params


def deep_layers(depth: int):
    layers = [{"units": 8}] * depth + [{"units": 4, "activation": "softmax"}]
    spec = {"network": {"inputs": 4, "layers": layers, "loss": "cross_entropy"},
            "at": _layer_point((4,) + (8,) * depth + (4,)), "lr": 0.1}
    return derivator.derive_all(derivator.load_dict(spec), view="layer"), depth


def slope(xs, ys) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def measure(name, build, sizes, reps):
    cases = []
    for s in sizes:
        t = time.perf_counter()
        ders, units = build(s)
        cases.append({"size": s, "units": units, "ders": ders, "derive": time.perf_counter() - t, "times": []})
    for c in cases:                                   # warm up: compile the template, fill the caches
        c["bytes"] = len(render(c["ders"], "md"))
    gc.disable()
    try:
        for _ in range(reps):
            for c in cases:
                t = time.perf_counter()
                render(c["ders"], "md")
                c["times"].append(time.perf_counter() - t)
    finally:
        gc.enable()
    base = None
    print(f"\n{name}")
    print(f"{'size':>6} {'units':>6} {'render (median)':>16} {'per unit':>10} {'ratio':>6} {'bytes':>9} "
          f"{'bytes/unit':>10} {'derive':>8}")
    for c in cases:
        med = statistics.median(c["times"])
        per = med / c["units"]
        base = base or per
        print(f"{c['size']:>6} {c['units']:>6} {med * 1000:>13.1f} ms {per * 1e3:>8.3f}ms {per / base:>6.2f} "
              f"{c['bytes']:>9} {c['bytes'] / c['units']:>10.0f} {c['derive']:>7.2f}s")
    s = slope([c["units"] for c in cases], [statistics.median(c["times"]) for c in cases])
    print(f"slope of log(render time) against log(size): {s:.2f}  (1 = linear, 2 = quadratic)")
    return s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    a = p.parse_args(argv)
    reps = 3 if a.quick else 7
    measure("sigmoid chain, derived for a and w", chain, [60, 120, 240, 480] if a.quick else [125, 250, 500, 1000],
            reps)
    measure("network 4-8x D-4, every weight and bias", network, [1, 2, 4, 8] if not a.quick else [1, 2, 3, 4], reps)
    measure("layer view, 784-H-10 with a point, every W and b (units: parameters)", mnist,
            [16, 32, 64, 128] if not a.quick else [16, 32, 64], reps)
    measure("layer view, 4-8x D-4 softmax with a point, every W and b (units: hidden layers)", deep_layers,
            [2, 4, 8, 16] if not a.quick else [2, 4, 8], reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
