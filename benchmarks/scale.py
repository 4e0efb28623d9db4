#!/usr/bin/env python
"""derivator benchmarks of issue 9 (the scalar view at scale): one command, one thread.

    python benchmarks/scale.py [--quick] [--only e,f,g,h,i] [--json PATH]

(e) 4-8-8-4 softmax + cross-entropy (148 parameters): the batch mean of every gradient at
    N = 10^5, and one call at N = 32: derivator's ``grad.mean`` vs hand-written NumPy (one
    log-sum-exp per sample) vs torch autograd (``log_softmax``), round-robin medians.
(f) compile time per edge: ``derivator.compile`` of softmax + cross-entropy networks from 148 to
    25,450 parameters, each in a fresh process; 32-64-10 <= 5 s, 784-32-10 <= 60 s, and the time
    per edge flat within 2x.
(g) ``derivator derive --format json`` of every parameter of 16-32-32-10 (1,930 derivations):
    wall time and peak memory of the CLI, <= 30 s and <= 500 MB.
(h) the overhead of one call of a compiled function (one sample, as numbers) at 148 to 9,610
    parameters: linear in the parameters (time per parameter flat); and grad.mean of 32 samples.
(i) long graphs (issue 7, item 9): a chain of 250 and of 5,000 sigmoids, a 3,000-term sum and
    a 1-input -> 512-unit network: derive, its JSON and compile, each a result within 20 s.

Prints one table per item with the targets (PASS / MISS) and writes JSON (default
``benchmarks/scale.json``). See benchmarks/README.md.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (sets one thread everywhere before NumPy and torch are imported)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import derivator  # noqa: E402

torch = run.torch
TARGETS = {
    "e_batch": "4-8-8-4 softmax + cross-entropy, batch mean of the gradient at N = 1e5: <= 1.0x torch autograd",
    "e_call": "4-8-8-4 softmax + cross-entropy, one call at N = 32: <= 1.0x torch autograd",
    "f_small": "32-64-10 softmax/cross-entropy compiles in <= 5 s",
    "f_large": "784-32-10 softmax/cross-entropy compiles in <= 60 s",
    "f_flat": "compile time per edge flat within 2x from 148 to 25,450 parameters",
    "g_time": "derive --format json of every parameter of 16-32-32-10 in <= 30 s",
    "g_memory": "... and <= 500 MB peak memory",
    "h_linear": "the per-call overhead of a compiled function is O(parameters): from each size to a larger one, "
                "the time of grad.sum and of grad(...) grows at most 2x as fast as the parameters",
    "i_bounded": "long chains, long sums, wide layers: derive and compile each give a result within 20 s",
}


def softmax_network(sizes, hidden="sigmoid") -> dict:
    layers = [{"units": u, "activation": hidden} for u in sizes[1:-1]]
    layers.append({"units": sizes[-1], "activation": "softmax"})
    return {"title": f"{'-'.join(map(str, sizes))} softmax + cross-entropy",
            "network": {"inputs": sizes[0], "layers": layers, "bias": "per_neuron", "loss": "cross_entropy",
                        "naming": "flat"}}


class SoftmaxProblem(run.Problem):
    """A softmax + cross-entropy network and a batch (targets: distributions over the classes)."""

    def __init__(self, sizes, n, seed):
        super().__init__(sizes, n, seed)
        self.definition = derivator.load_dict(softmax_network(sizes))
        rng = np.random.default_rng(seed + 100)
        Y = rng.uniform(size=(sizes[-1], n))
        self.Y = Y / Y.sum(axis=0)
        for j in range(sizes[-1]):
            self.batch[f"y{j + 1}"] = np.ascontiguousarray(self.Y[j])


def hand_softmax(W, b):
    """Hand-written NumPy backprop for sigmoid hidden layers, a softmax output and the batch mean
    of the cross-entropy, matrix form (features x samples): one log-sum-exp per sample
    (max-shifted), δ_L = (P·Σ_k y_k − Y)/N, every batch-sized array in a workspace reused in
    place (``out=``)."""
    layers = list(zip(W, b))
    ws = {}
    sums = {}

    def step(X, Y):
        n = X.shape[1]
        A, D, T = run.hand_workspace(layers, ws, n)
        if sums.get("n") != n:
            sums["n"], sums["r"] = n, [np.empty(n) for _ in range(3)]
        mx, ssum, ysum = sums["r"]
        a = run.hand_forward(layers[:-1], X, A)
        WL, bL = layers[-1]
        Z = A[-1]
        np.matmul(WL, a, out=Z)
        Z += bL[:, None]
        np.max(Z, axis=0, out=mx)
        Z -= mx                                  # shifted logits
        P = D[-1]
        np.exp(Z, out=P)
        np.sum(P, axis=0, out=ssum)
        np.sum(Y, axis=0, out=ysum)
        logs = np.log(ssum, out=ssum)            # log Σ exp(z − max)
        loss = -(float(np.vdot(Y, Z)) - float(np.dot(ysum, logs))) / n
        np.exp(logs, out=logs)
        P /= logs                                # softmax
        P *= ysum
        P -= Y
        P *= 1.0 / n                             # δ_L of the batch mean
        gW, gb = run.hand_backward(layers, X, A, D, T, P)
        return loss, gW, gb
    return step


def compile_scalar(d):
    """derivator.compile in the scalar view (whatever the default view of a network)."""
    return derivator.compile(d, **({"view": "scalar"} if run.scalar_view() else {}))


def bench_softmax(n, reps, seed):
    p = SoftmaxProblem((4, 8, 8, 4), n, seed)
    grad = compile_scalar(p.definition)
    tot = grad.mean(**p.batch)
    ref, ref_value = dict(tot.gradient), tot.value
    hand = hand_softmax(p.W, p.b)
    loss, gW, gb = hand(p.X, p.Y)
    agree = {"hand NumPy": max(run.max_rel_err(p.named(gW, gb), ref), abs(loss - ref_value) / abs(ref_value))}
    if agree["hand NumPy"] > 1e-9:
        raise SystemExit(f"(e) hand NumPy and derivator disagree: {agree['hand NumPy']:.3g}")
    contestants = [("derivator", lambda: grad.mean(**p.batch)), ("hand NumPy", lambda: hand(p.X, p.Y))]
    if torch is not None:
        step, named = run.torch_contestant(p, softmax=True)
        v, g = named()
        agree["torch"] = max(run.max_rel_err(g, ref), abs(v - ref_value) / abs(ref_value))
        if agree["torch"] > 1e-9:
            raise SystemExit(f"(e) torch and derivator disagree: {agree['torch']:.3g}")
        contestants.append(("torch", step))
    times = run.round_robin(contestants, reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"network": "4-8-8-4 softmax + cross-entropy", "parameters": len(p.definition.wrt), "samples": n,
            "repetitions": reps, "median_s": med, "min_s": {k: min(v) for k, v in times.items()},
            "times_s": times, "ratio_vs_torch": {k: med[k] / med["torch"] for k in med} if "torch" in med else None,
            "ratio_vs_hand_numpy": {k: med[k] / med["hand NumPy"] for k in med},
            "max_relative_difference_vs_derivator": agree}


# ------------------------------------------------------------------ (f) compile
_COMPILE = r"""
import inspect, json, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import derivator
t1 = time.perf_counter(); c1 = time.process_time()
d = derivator.load_dict(json.loads(sys.argv[1]))
view = {"view": "scalar"} if "view" in inspect.signature(derivator.compile).parameters else {}
t2 = time.perf_counter(); c2 = time.process_time()
grad = derivator.compile(d, **view)
t3 = time.perf_counter(); c3 = time.process_time()
g = derivator.graph(d)
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "compile_s": t3 - t2,
                  "load_cpu_s": c2 - c1, "compile_cpu_s": c3 - c2, "parameters": len(d.wrt),
                  "edges": g.edge_count, "nodes": len(g.nodes), "source_bytes": len(grad.source)}))
"""

COMPILE_SIZES = [(4, 8, 8, 4), (16, 32, 32, 10), (32, 64, 10), (64, 128, 10), (784, 32, 10)]


def bench_compile(quick):
    rows = []
    for sizes in COMPILE_SIZES:
        spec = json.dumps(softmax_network(sizes))
        runs = [run._py(_COMPILE, spec, timeout=900) for _ in range(1 if quick or sizes[0] > 100 else 3)]
        best = min(runs, key=lambda r: r["compile_s"])
        row = dict(best, network="-".join(map(str, sizes)), runs=runs,
                   compile_s=statistics.median(r["compile_s"] for r in runs),
                   compile_cpu_s=statistics.median(r["compile_cpu_s"] for r in runs))
        row["us_per_edge"] = row["compile_s"] / row["edges"] * 1e6
        row["cpu_us_per_edge"] = row["compile_cpu_s"] / row["edges"] * 1e6
        rows.append(row)
        print(f"    {row['network']:>12}: {row['compile_s']:.2f} s", flush=True)
    per = [r["cpu_us_per_edge"] for r in rows]
    growth = max((b["compile_cpu_s"] / a["compile_cpu_s"]) / (b["edges"] / a["edges"])
                 for i, a in enumerate(rows) for b in rows[i + 1:])
    return {"rows": rows, "per_edge_max_over_min_cpu": max(per) / min(per), "worst_growth_ratio_cpu": growth,
            "loglog_slope_cpu": float(np.polyfit(np.log([r["edges"] for r in rows]),
                                                 np.log([r["compile_cpu_s"] for r in rows]), 1)[0])}


# ------------------------------------------------------------------ (g) derive JSON
def bench_json(tmp):
    path = os.path.join(tmp, "net16.yaml")
    with open(path, "w") as f:
        json.dump(softmax_network((16, 32, 32, 10)), f)
    wall, peak, how = run.cli_derive(path, memory=True)
    out = subprocess.run(run.derivator_cmd() + ["derive", path, *run.scalar_view("derive"), "--format", "json",
                                                "--quiet"], capture_output=True)
    data = json.loads(out.stdout)
    return {"network": "16-32-32-10 softmax + cross-entropy", "derivations": len(data), "cli_wall_s": wall,
            "peak_rss_bytes": peak, "how": how, "output_bytes": len(out.stdout),
            "verified": all(x["verified"] for x in data),
            "command": "derivator derive net.yaml --format json --quiet > /dev/null"}


# ------------------------------------------------------------------ (h) per call
def bench_call(quick):
    rows = []
    for sizes in [(4, 8, 8, 4), (16, 32, 32, 10), (64, 128, 10)]:
        p = SoftmaxProblem(sizes, 32, 5)
        grad = compile_scalar(p.definition)
        one = {k: (float(v[0]) if isinstance(v, np.ndarray) else v) for k, v in p.batch.items()}
        reps = 15 if quick else 61
        times = run.round_robin([("sum", lambda: grad.sum(**one)), ("call", lambda: grad(**one)),
                                 ("mean32", lambda: grad.mean(**p.batch))], reps)
        row = {"network": "-".join(map(str, sizes)), "parameters": len(p.definition.wrt),
               "leaves": len(grad.leaves), "nodes": len(derivator.graph(p.definition).nodes),
               "sum_s": statistics.median(times["sum"]), "call_s": statistics.median(times["call"]),
               "mean32_s": statistics.median(times["mean32"])}
        row["sum_us_per_parameter"] = row["sum_s"] / row["parameters"] * 1e6
        row["call_us_per_node"] = row["call_s"] / (row["nodes"] + row["leaves"]) * 1e6
        rows.append(row)
    per = [r["sum_us_per_parameter"] for r in rows]

    def growth(key):       # the worst (time ratio) / (parameter ratio) from a size to a larger one
        return max((b[key] / a[key]) / (b["parameters"] / a["parameters"])
                   for i, a in enumerate(rows) for b in rows[i + 1:])
    return {"rows": rows, "sum_per_parameter_max_over_min": max(per) / min(per),
            "worst_growth_sum": growth("sum_s"), "worst_growth_call": growth("call_s")}


# ------------------------------------------------------------------ (i) long graphs
_LONG = r"""
import json, sys, time
import derivator
kind, n = sys.argv[1], int(sys.argv[2])
if kind == "chain":
    spec = {"equations": {"u0": "sigmoid(a)", **{f"u{i}": f"sigmoid(u{i - 1})" for i in range(1, n)}}}
elif kind == "sum":
    spec = {"equations": {"F": "+".join(f"a{i}" for i in range(n))}}
else:
    spec = {"network": {"inputs": 1, "layers": [{"units": n}, {"units": 1}], "loss": "mse"}}
import inspect
scalar = {f: ({"view": "scalar"} if "view" in inspect.signature(getattr(derivator, f)).parameters else {})
          for f in ("derive_all", "compile")}
out = {}
t = time.perf_counter(); d = derivator.load_dict(spec); out["load_s"] = time.perf_counter() - t
t = time.perf_counter(); ders = derivator.derive_all(d, **scalar["derive_all"]); out["derive_s"] = time.perf_counter() - t
t = time.perf_counter(); text = json.dumps([x.to_json() for x in ders]); out["json_s"] = time.perf_counter() - t
t = time.perf_counter(); grad = derivator.compile(d, **scalar["compile"]); out["compile_s"] = time.perf_counter() - t
t = time.perf_counter(); grad(**{x: 0.5 for x in grad.leaves}); out["call_s"] = time.perf_counter() - t
out["derivations"] = len(ders)
out["verified"] = all(x.verified for x in ders)
print(json.dumps(out))
"""


def bench_long():
    rows = []
    for kind, n, label in [("chain", 250, "chain of 250 sigmoids"), ("chain", 5000, "chain of 5,000 sigmoids"),
                           ("sum", 3000, "3,000-term sum"), ("wide", 512, "1 input -> 512 units -> 1")]:
        try:
            r = run._py(_LONG, kind, str(n), timeout=300)
        except Exception as e:  # a failure is a result here: the table says so
            r = {"error": str(e)[-300:]}
        r["case"] = label
        rows.append(r)
        print(f"    {label}: " + ("error" if "error" in r else f"derive {r['derive_s']:.2f} s, compile {r['compile_s']:.2f} s"),
              flush=True)
    return {"rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", default="e,f,g,h,i", help="the tables to run, e.g. e,h")
    ap.add_argument("--json", default=os.path.join(HERE, "scale.json"), metavar="PATH")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    started = time.perf_counter()
    info = run.machine()
    print(f"derivator scale benchmarks{' (--quick)' if args.quick else ''} on {info['cpu_model']}, "
          f"{info['cpu_count']} cores, one thread; load average {info['load_average_at_start']}")
    res = {"machine": info, "quick": args.quick, "targets": TARGETS}
    verdicts = {}
    if "e" in only:
        print("\n(e) 4-8-8-4 softmax + cross-entropy ...", flush=True)
        res["e"] = {"batch": bench_softmax(10**5, 9 if args.quick else 81, seed=3),
                    "call": bench_softmax(32, 201 if args.quick else 2001, seed=4)}
        for key, label in (("batch", "batch mean, N = 100,000"), ("call", "one call, N = 32")):
            r = res["e"][key]
            med = r["median_s"]
            tor = med.get("torch")
            verdicts[f"e_{key}"] = None if tor is None else med["derivator"] / tor <= 1.0
            rows = [[name, f"{med[name] * 1e3:.3f} ms", f"{med[name] / med['hand NumPy']:.2f}x",
                     "-" if tor is None else f"{med[name] / tor:.2f}x",
                     f"{r['max_relative_difference_vs_derivator'].get(name, 0.0):.1e}"] for name in med]
            run.table(f"(e) {r['network']} ({r['parameters']} parameters), {label}; median of {r['repetitions']}",
                      ["contestant", "median", "vs hand NumPy", "vs torch", "max rel. diff"], rows)
            print("  target: derivator <= 1.0x torch -> "
                  + ("n/a" if tor is None else f"{med['derivator'] / tor:.2f}x") + f"  {run.verdict(verdicts[f'e_{key}'])}")
    if "f" in only:
        print("\n(f) compile time, fresh process per network ...", flush=True)
        f = res["f"] = bench_compile(args.quick)
        rows = [[r["network"], r["parameters"], r["edges"], f"{r['load_s']:.2f} s", f"{r['compile_s']:.2f} s",
                 f"{r['compile_cpu_s']:.2f} s", f"{r['cpu_us_per_edge']:.0f} us"] for r in f["rows"]]
        run.table("(f) derivator.compile of softmax + cross-entropy networks (wall time; CPU time of the process)",
                  ["network", "parameters", "edges", "load", "compile", "compile CPU", "CPU/edge"], rows)
        by = {r["network"]: r for r in f["rows"]}
        verdicts["f_small"] = by["32-64-10"]["compile_s"] <= 5
        verdicts["f_large"] = by["784-32-10"]["compile_s"] <= 60
        verdicts["f_flat"] = f["per_edge_max_over_min_cpu"] <= 2
        print(f"  target: 32-64-10 <= 5 s   -> {by['32-64-10']['compile_s']:.2f} s  {run.verdict(verdicts['f_small'])}")
        print(f"  target: 784-32-10 <= 60 s -> {by['784-32-10']['compile_s']:.2f} s  {run.verdict(verdicts['f_large'])}")
        print(f"  target: CPU time per edge within 2x -> largest / smallest {f['per_edge_max_over_min_cpu']:.2f}x "
              f"(time grew at most {f['worst_growth_ratio_cpu']:.2f}x as fast as the edges; "
              f"log-log slope {f['loglog_slope_cpu']:.2f})  {run.verdict(verdicts['f_flat'])}")
    if "g" in only:
        print("\n(g) derive --format json of every parameter of 16-32-32-10 ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="derivator-scale-") as tmp:
            g = res["g"] = bench_json(tmp)
        verdicts["g_time"] = g["cli_wall_s"] <= 30
        verdicts["g_memory"] = g["peak_rss_bytes"] is not None and g["peak_rss_bytes"] <= 500e6
        run.table("(g) derivator derive --format json, one CLI call", ["what", "measured"],
                  [["derivations (all verified)" if g["verified"] else "derivations", g["derivations"]],
                   ["wall time, process start included", f"{g['cli_wall_s']:.2f} s"],
                   ["peak memory", f"{g['peak_rss_bytes'] / 1e6:.0f} MB"],
                   ["output", f"{g['output_bytes'] / 1e6:.0f} MB"]])
        print(f"  target: <= 30 s  -> {g['cli_wall_s']:.2f} s  {run.verdict(verdicts['g_time'])}")
        print(f"  target: <= 500 MB -> {g['peak_rss_bytes'] / 1e6:.0f} MB  {run.verdict(verdicts['g_memory'])}")
    if "h" in only:
        print("\n(h) the overhead of one call (N = 1) ...", flush=True)
        h = res["h"] = bench_call(args.quick)
        rows = [[r["network"], r["parameters"], f"{r['sum_s'] * 1e6:.0f} us", f"{r['sum_us_per_parameter']:.2f} us",
                 f"{r['call_s'] * 1e6:.0f} us", f"{r['call_us_per_node']:.2f} us", f"{r['mean32_s'] * 1e6:.0f} us"]
                for r in h["rows"]]
        run.table("(h) one sample (numbers, not arrays): grad.sum(**one) and grad(**one); and grad.mean of 32 samples",
                  ["network", "parameters", "sum", "per parameter", "grad(...)", "per name", "mean, N = 32"], rows)
        worst = max(h["worst_growth_sum"], h["worst_growth_call"])
        verdicts["h_linear"] = worst <= 2
        print(f"  target: O(parameters): time grew at most {worst:.2f}x as fast as the parameters "
              f"(sum {h['worst_growth_sum']:.2f}x, grad(...) {h['worst_growth_call']:.2f}x; allowed 2x)  "
              f"{run.verdict(verdicts['h_linear'])}")
    if "i" in only:
        print("\n(i) long graphs ...", flush=True)
        i = res["i"] = bench_long()
        rows = []
        ok = True
        for r in i["rows"]:
            if "error" in r:
                rows.append([r["case"], "error", "", "", ""])
                ok = False
                continue
            ok = ok and r["verified"] and max(r["derive_s"], r["compile_s"]) <= 20
            rows.append([r["case"], f"{r['derive_s']:.2f} s", f"{r['json_s']:.2f} s", f"{r['compile_s']:.2f} s",
                         "yes" if r["verified"] else "NO"])
        run.table("(i) derive_all, their JSON, compile (in a fresh process each)",
                  ["graph", "derive", "JSON", "compile", "verified"], rows)
        verdicts["i_bounded"] = ok
        print(f"  target: a result within 20 s each  {run.verdict(ok)}")
    return run.finish(res, verdicts, started, args.json)


if __name__ == "__main__":
    sys.exit(main())
