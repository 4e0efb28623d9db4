"""Benchmark: the layer view derives every parameter of an MNIST-sized network, checked, in one call.

    python3 benchmarks/layer_view.py [--repeat 5]

For 784-H-10 networks (sigmoid hidden layer, softmax output, cross-entropy; H = 32, 64, 128, 256:
25,450 to 203,530 parameters) it runs, as a new user would,

    derivator derive NET --view layer --format json

(every parameter W1, b1, W2, b2; every result checked: rules unrolled, forward-mode tangents at
high-precision points) in a fresh process, start-up included, round-robin over the sizes, and prints
the median wall and CPU time per size, the import time, and the slope of log(time − import) against
log(parameters) — linear work gives a slope of at most 1. Target (issue 8): 784-128-10 in ≤ 3 s wall.
One thread: OMP/BLAS threads are set to 1. Nothing here is a timed test; run it on an idle machine
and repeat before believing a number.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

SIZES = (32, 64, 128, 256)
TARGET_S = 3.0
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def network(hidden: int) -> str:
    return ("network:\n  inputs: 784\n  layers:\n"
            f"    - {{units: {hidden}, activation: sigmoid}}\n"
            "    - {units: 10, activation: softmax}\n  loss: cross_entropy\n")


def timed(argv) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its standard output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="derivator-bench-")
    paths = {}
    for h in SIZES:
        paths[h] = os.path.join(folder, f"net784_{h}_10.yaml")
        with open(paths[h], "w") as f:
            f.write(network(h))
    params = {h: 784 * h + h + h * 10 + 10 for h in SIZES}
    walls = {h: [] for h in SIZES}
    cpus = {h: [] for h in SIZES}
    imports = []
    for _ in range(args.repeat):
        imports.append(timed([sys.executable, "-c", "import derivator.cli"])[:2])
        for h in SIZES:
            wall, cpu, out = timed([sys.executable, "-m", "derivator", "derive", paths[h], "--view", "layer",
                                    "--format", "json"])
            objs = json.loads(out)
            assert [o["wrt"] for o in objs] == ["W1", "b1", "W2", "b2"] and all(o["verified"] for o in objs)
            walls[h].append(wall)
            cpus[h].append(cpu)
    imp_wall = statistics.median(w for w, _ in imports)
    imp_cpu = statistics.median(c for _, c in imports)
    print(f"load: {os.getloadavg()[0]:.2f} (1-minute average, {os.cpu_count()} CPUs)")
    print(f"import derivator.cli: {imp_wall:.2f} s wall, {imp_cpu:.2f} s CPU (median of {args.repeat})")
    print(f"{'network':>14} {'parameters':>11} {'wall s':>8} {'CPU s':>8}  (medians of {args.repeat}, start-up included)")
    for h in SIZES:
        print(f"{f'784-{h}-10':>14} {params[h]:>11,} {statistics.median(walls[h]):>8.2f} "
              f"{statistics.median(cpus[h]):>8.2f}")
    xs = [math.log(params[h]) for h in SIZES]
    for what, series, base in (("wall", walls, imp_wall), ("CPU", cpus, imp_cpu)):
        ys = [math.log(max(statistics.median(series[h]) - base, 1e-3)) for h in SIZES]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        print(f"slope of log({what} − import) against log(parameters): {slope:.2f} (linear: ≤ 1)")
    t = statistics.median(walls[128])
    print(f"784-128-10: {t:.2f} s wall = {t / TARGET_S:.2f}× the {TARGET_S:.0f} s target: "
          + ("met" if t <= TARGET_S else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
