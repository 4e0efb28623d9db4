"""`derivator check` at growing sizes: is judging a claim linear in the graph?

    python benchmarks/check_scale.py            # depths 4, 8, 16, 32 of width-3 networks, 3 repetitions
    python benchmarks/check_scale.py --quick    # depths 4, 8, 16, 1 repetition

For width-3 sigmoid networks (3 inputs, mean squared error) of growing depth it times, in
one process and one thread, each from cold caches (the derivation of the true derivative
included, the loading of the definition not):

- right: the right claim for the last weight (derivator's own result, written out);
- wrong: ``x1`` for the first weight, which goes through the whole diagnosis (sign, factors,
  the search over nodes and edges, factors of local partials) to ``incorrect``;
- zero: ``0`` for the first weight (3^(depth-2) paths, counted, 1000 listed).

It prints the median time per claim, the time per edge, and the slope of log(time) against
log(edges) between consecutive sizes (1 is linear). Medians over round-robin repetitions.
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
            "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import sympy as sp  # noqa: E402

import derivator  # noqa: E402
from derivator import api, verdict  # noqa: E402


def network(depth: int, width: int = 3, inputs: int = 3) -> dict:
    layers = [{"units": width, "activation": "sigmoid"}] * (depth - 1) + [{"units": 1, "activation": "sigmoid"}]
    return {"network": {"inputs": inputs, "layers": layers, "bias": "per_neuron", "loss": "mse"}}


def cold():
    api._graph.cache_clear()
    api.workspace.cache_clear()
    api._stable.cache_clear()
    verdict._judge.cache_clear()


def claims(depth: int) -> dict[str, tuple[str, str]]:
    d = derivator.load_dict(network(depth))
    last = [w for w in d.wrt if w.startswith("w")][-1]
    right = sp.sstr(derivator.derive(d, last).result)
    return {"right": (last, right), "wrong": ("w1", "x1"), "zero": ("w1", "0")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    depths = [4, 8, 16] if a.quick else [4, 8, 16, 32]
    reps = 1 if a.quick else 3
    cases = {dep: claims(dep) for dep in depths}
    kinds = {}
    times: dict[tuple, list[float]] = {}
    for _ in range(reps):
        for dep in depths:
            for name, (wrt, text) in cases[dep].items():
                d = derivator.load_dict(network(dep))
                cold()
                t = time.perf_counter()
                v = verdict.judge(d, [(wrt, text)])[0]
                times.setdefault((dep, name), []).append(time.perf_counter() - t)
                kinds[(dep, name)] = v.kind
    print(f"derivator check, width-3 networks; median of {reps}; python {sys.version.split()[0]}")
    print(f"{'depth':>5} {'edges':>6} {'paths to w1':>12}  " + "  ".join(f"{n:>22}" for n in ("right", "wrong", "zero")))
    prev = None
    for dep in depths:
        g = derivator.graph(derivator.load_dict(network(dep)))
        e = g.edge_count
        med = {n: statistics.median(times[(dep, n)]) for n in ("right", "wrong", "zero")}
        cells = []
        for n in ("right", "wrong", "zero"):
            slope = ""
            if prev is not None:
                slope = f" s={math.log(med[n] / prev[1][n]) / math.log(e / prev[0]):.2f}"
            cells.append(f"{med[n]:6.3f}s {1e3 * med[n] / e:5.2f}ms/e{slope:>7}")
        print(f"{dep:>5} {e:>6} {3 ** (dep - 2):>12.3g}  " + "  ".join(cells))
        prev = (e, med)
    print("kinds:", sorted(set(kinds.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
