#!/usr/bin/env python
"""derivator benchmarks (issue 3, item 6): one command, one thread, round-robin medians.

    python benchmarks/run.py [--quick] [--json PATH]

(a) 2-2-1 sigmoid network (9 parameters), every gradient summed over N = 10^6
    samples: derivator's compiled ``grad.sum`` vs hand-written NumPy backprop vs
    torch autograd vs ``jax.jit(jax.grad)`` (float64; each where installed).
(b) 4-8-8-4 sigmoid network (148 parameters), N = 10^5: the same contestants.
(c) derive + check + compile all 148 gradients of 4-8-8-4 in a fresh process
    vs ``sympy.diff`` of the composed loss + ``lambdify(cse=True)``; and one
    ``derivator derive FILE --format json`` CLI call, process start included.
(d) width-3 networks of depth 2..20: the derivation of one first-layer weight
    (time, exact path count, edges, time per edge), and the peak memory of
    ``derivator derive`` on the depth-20 network.

Prints four tables with the issue's targets (PASS / MISS) and writes JSON
(default ``benchmarks/results.json``). See benchmarks/README.md.
"""
# One thread everywhere: this must run before NumPy, torch or jax are imported
# (the variables are read when their thread pools start) and is inherited by
# every subprocess this script starts.
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"
_xla = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"):
    if _flag not in _xla:
        _xla = (_xla + " " + _flag).strip()
os.environ["XLA_FLAGS"] = _xla
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402

try:  # belt and braces: also cap BLAS/OpenMP pools that ignore the variables
    from threadpoolctl import threadpool_limits
    _POOLS = threadpool_limits(limits=1)
    THREADPOOLCTL = True
except ImportError:
    THREADPOOLCTL = False

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import derivator  # noqa: E402
import derivator.api  # noqa: E402

TARGETS = {
    "a": "derivator <= 0.8x hand NumPy (and ahead of torch and jax)",
    "b": "derivator <= 1.0x torch autograd",
    "c_inprocess": "<= 0.5 s in-process for all 148 gradients (derive + check + compile)",
    "c_cli": "<= 3 s for one `derivator derive` CLI call of all 148, process start included",
    "d_depth20": "depth 20: derivation with exact path count <= 0.2 s in-process",
    "d_linear": "time grows linearly with the number of edges",
    "d_memory": "peak memory of `derivator derive` on depth 20 <= 300 MB",
}
LINEAR_SLACK = 1.5      # (d): no pair of depths where time grew > 1.5x faster than edges


def _optional(name):
    """The module if installed, else None (a contestant that is not installed is skipped)."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return __import__(name)
    except Exception as e:  # installed but broken: skip it, say why
        print(f"  [{name} is installed but failed to import: {e}; skipped]")
        return None


torch = _optional("torch")
if torch is not None:
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
jax = _optional("jax")
if jax is not None:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp


# ---------------------------------------------------------------- definitions
def network(n_in: int, hidden, n_out: int) -> dict:
    """A fully connected sigmoid network, per-neuron biases, mse, flat names."""
    return {"title": f"{n_in}-{'-'.join(map(str, hidden))}-{n_out} sigmoid network",
            "network": {"inputs": n_in,
                        "layers": [{"units": u, "activation": "sigmoid"} for u in list(hidden) + [n_out]],
                        "bias": "per_neuron", "loss": "mse", "naming": "flat"}}


def flat_names(sizes):
    """Flat parameter names per layer: W[l][j][k] and B[l][j] (SPEC §1.2: layer by layer,
    then destination neuron, then source neuron)."""
    W, B, w, b = [], [], 0, 0
    for n_prev, n in zip(sizes, sizes[1:]):
        W.append([[f"w{w + j * n_prev + k + 1}" for k in range(n_prev)] for j in range(n)])
        B.append([f"b{b + j + 1}" for j in range(n)])
        w += n * n_prev
        b += n
    return W, B


class Problem:
    """A network, its parameters and a batch, in the layout each contestant uses."""

    def __init__(self, sizes, n, seed):
        self.sizes = tuple(sizes)
        self.n = n
        self.definition = derivator.load_dict(network(sizes[0], sizes[1:-1], sizes[-1]))
        rng = np.random.default_rng(seed)
        self.W = [rng.normal(0.0, 1.0 / math.sqrt(p), size=(q, p)) for p, q in zip(sizes, sizes[1:])]
        self.b = [rng.normal(0.0, 0.5, size=q) for q in sizes[1:]]
        self.X = rng.normal(size=(sizes[0], n))           # features x samples, rows contiguous
        self.Y = rng.uniform(size=(sizes[-1], n))
        self.Wn, self.Bn = flat_names(sizes)
        self.params = {}
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            for j in range(W.shape[0]):
                self.params[self.Bn[l][j]] = float(b[j])
                for k in range(W.shape[1]):
                    self.params[self.Wn[l][j][k]] = float(W[j, k])
        assert set(self.params) == set(self.definition.wrt), "flat naming does not match the definition"
        self.batch = dict(self.params)
        for i in range(sizes[0]):
            self.batch[f"x{i + 1}"] = np.ascontiguousarray(self.X[i])
        for j in range(sizes[-1]):
            self.batch[f"y{j + 1}"] = np.ascontiguousarray(self.Y[j])

    def named(self, gW, gb) -> dict:
        """Per-layer matrix gradients -> {flat name: float}."""
        out = {}
        for l in range(len(gW)):
            gw, gbl = np.asarray(gW[l]), np.asarray(gb[l])
            for j in range(gw.shape[0]):
                out[self.Bn[l][j]] = float(gbl[j])
                for k in range(gw.shape[1]):
                    out[self.Wn[l][j][k]] = float(gw[j, k])
        return out


# ---------------------------------------------------------------- contestants
def hand_workspace(layers, ws: dict, n: int):
    """(A, D, T): activations, deltas and σ' temporaries, one (units, n) array per layer, allocated
    once per batch size and reused in place (``out=``), as a training loop would."""
    if ws.get("n") != n:
        ws["n"] = n
        for k in "ADT":
            ws[k] = [np.empty((Wl.shape[0], n)) for Wl, _ in layers]
    return ws["A"], ws["D"], ws["T"]


def hand_forward(layers, X, A):
    """Z = W A + b, A = σ(Z) for each of ``layers`` in turn, into A[l]; the last activations."""
    a = X
    for l, (Wl, bl) in enumerate(layers):
        z = A[l]
        np.matmul(Wl, a, out=z)
        z += bl[:, None]
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        np.reciprocal(z, out=z)          # A[l] = σ(z)
        a = z
    return a


def hand_backward(layers, X, A, D, T, d):
    """From the output layer's δ ``d``: δ_{l−1} = (W_lᵀ δ_l)∘A∘(1 − A) (sigmoid layers below),
    ∂W_l = δ_l A_{l−1}ᵀ (one GEMM per layer), ∂b_l = Σ_samples δ_l."""
    gW, gb = [None] * len(layers), [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        prev = A[l - 1] if l else X
        gW[l] = d @ prev.T
        gb[l] = d.sum(axis=1)
        if l:
            dp = D[l - 1]
            np.matmul(layers[l][0].T, d, out=dp)
            t = T[l - 1]
            np.subtract(1.0, prev, out=t)
            t *= prev
            dp *= t                       # δ_{l-1}
            d = dp
    return gW, gb


def hand_numpy(W, b):
    """Hand-written NumPy backprop, matrix form over the batch (features x samples).

    Forward Z = W A + b, A = σ(Z); loss Σ_samples (1/m) Σ_j (o_j − y_j)²;
    backward δ_L = (2/m)(O − Y)∘O∘(1 − O), δ_{l−1} = (W_lᵀ δ_l)∘A∘(1 − A),
    ∂W_l = δ_l A_{l−1}ᵀ (one GEMM per layer), ∂b_l = Σ_samples δ_l.
    Every batch-sized array lives in a workspace allocated once per batch size and
    reused in place (``out=``), as a training loop would: no allocation, and so no
    page faults, per call."""
    layers = list(zip(W, b))
    ws = {}

    def step(X, Y):
        A, D, T = hand_workspace(layers, ws, X.shape[1])
        a = hand_forward(layers, X, A)
        m = a.shape[0]
        d = D[-1]
        np.subtract(a, Y, out=d)
        loss = float(np.vdot(d, d)) / m
        t = T[-1]
        np.subtract(1.0, a, out=t)
        t *= a
        d *= t
        d *= 2.0 / m                          # δ_L
        gW, gb = hand_backward(layers, X, A, D, T, d)
        return loss, gW, gb
    return step


def torch_contestant(p: Problem, softmax: bool = False):
    """torch autograd, float64, features x samples (its faster layout here): sigmoid layers and the
    mse of table (b); with ``softmax``, a softmax output and the batch mean of the cross-entropy
    (``log_softmax``), as in scale.py's table (e)."""
    W = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in p.W]
    b = [torch.tensor(v[:, None], dtype=torch.float64, requires_grad=True) for v in p.b]
    X = torch.from_numpy(p.X)
    Y = torch.from_numpy(p.Y)
    m = p.sizes[-1]
    n = p.X.shape[1]
    params = W + b

    def step():
        a = X
        for Wl, bl in zip(W[:-1], b[:-1]):
            a = torch.sigmoid(torch.addmm(bl, Wl, a))
        z = torch.addmm(b[-1], W[-1], a)
        if softmax:
            loss = -(Y * torch.log_softmax(z, dim=0)).sum() / n
        else:
            loss = ((torch.sigmoid(z) - Y) ** 2).sum() / m
        grads = torch.autograd.grad(loss, params)
        return loss, grads

    def named():
        loss, grads = step()
        L = len(W)
        return float(loss.detach()), p.named([g.numpy() for g in grads[:L]], [g.numpy()[:, 0] for g in grads[L:]])
    return step, named


def jax_contestant(p: Problem):
    """jax.jit(jax.grad(loss)), float64, samples x features (its faster layout here)."""
    m = p.sizes[-1]
    params = [(jnp.asarray(w), jnp.asarray(v)) for w, v in zip(p.W, p.b)]
    X = jnp.asarray(np.ascontiguousarray(p.X.T))
    Y = jnp.asarray(np.ascontiguousarray(p.Y.T))

    def loss(ps, X, Y):
        a = X
        for Wl, bl in ps:
            a = jax.nn.sigmoid(a @ Wl.T + bl)
        return jnp.sum((a - Y) ** 2) / m
    g = jax.jit(jax.grad(loss))
    f = jax.jit(loss)

    def step():
        return jax.block_until_ready(g(params, X, Y))

    def named():
        grads = step()
        return float(f(params, X, Y)), p.named([np.asarray(w) for w, _ in grads], [np.asarray(v) for _, v in grads])
    return step, named


def max_rel_err(got: dict, ref: dict) -> float:
    """Largest per-component relative difference (components below 1e-12 of the largest
    are compared relative to the largest)."""
    scale = max(abs(v) for v in ref.values()) or 1.0
    return max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-12 * scale) for k in ref)


def round_robin(contestants, reps: int) -> dict:
    """Interleaved timing: every repetition times one call of each contestant in turn;
    returns {name: [seconds per call]}."""
    for _, fn in contestants:       # warm-up (jit compilation, allocator, caches)
        fn()
    times = {name: [] for name, _ in contestants}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            for name, fn in contestants:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    finally:
        if gc_was:
            gc.enable()
    return times


def bench_network(key, sizes, n, reps, seed) -> dict:
    print(f"\n({key}) {'-'.join(map(str, sizes))} sigmoid network, {n:,} samples, {reps} round-robin repetitions ...",
          flush=True)
    p = Problem(sizes, n, seed)
    grad = derivator.compile(p.definition)
    tot = grad.sum(**p.batch)
    ref = dict(tot.gradient)
    ref_value = tot.value
    hand = hand_numpy(p.W, p.b)
    loss, gW, gb = hand(p.X, p.Y)
    hand_named = p.named(gW, gb)
    agree = {"hand NumPy": max(max_rel_err(hand_named, ref), abs(loss - ref_value) / abs(ref_value))}
    if agree["hand NumPy"] > 1e-9:
        raise SystemExit(f"({key}) hand NumPy and derivator disagree: max relative error {agree['hand NumPy']:.3g}")
    contestants = [("derivator", lambda: grad.sum(**p.batch)),
                   ("hand NumPy", lambda: hand(p.X, p.Y))]
    skipped = []
    for name, mod, make in (("torch", torch, torch_contestant), ("jax", jax, jax_contestant)):
        if mod is None:
            skipped.append(name)
            continue
        step, named = make(p)
        v, g = named()
        agree[name] = max(max_rel_err(g, ref), abs(v - ref_value) / abs(ref_value))
        if agree[name] > 1e-9:
            print(f"  warning: {name} differs from derivator by {agree[name]:.3g} (relative)")
        contestants.append((name, step))
    times = round_robin(contestants, reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"network": "-".join(map(str, sizes)), "parameters": len(p.definition.wrt), "samples": n,
            "repetitions": reps, "median_s": med, "min_s": {k: min(v) for k, v in times.items()},
            "times_s": times, "ratio_vs_hand_numpy": {k: med[k] / med["hand NumPy"] for k in med},
            "ratio_vs_torch": ({k: med[k] / med["torch"] for k in med} if "torch" in med else None),
            "max_relative_difference_vs_derivator": agree, "skipped": skipped,
            "layouts": {"hand NumPy": "features x samples", "torch": "features x samples",
                        "jax": "samples x features", "derivator": "one 1-D array per input/target"}}


# ---------------------------------------------------------------- (c) derive all
_DERIVE_ALL = r"""
import inspect, json, sys, time
import derivator
d = derivator.load_dict(json.loads(sys.argv[1]))
view = {"view": "scalar"} if "view" in inspect.signature(derivator.derive_all).parameters else {}
t0 = time.perf_counter()
ders = derivator.derive_all(d, **view)
t1 = time.perf_counter()
grad = derivator.compile(d, **view)
t2 = time.perf_counter()
import numpy as np
batch = {x: (0.1 if x in d.wrt else np.linspace(0.0, 1.0, 16)) for x in grad.leaves}
grad.sum(**batch)        # the first batch total builds a network's matrix code (the layer view's rules checked)
t3 = time.perf_counter()
print(json.dumps({"derive_all_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0, "gradients": len(ders),
                  "first_batch_total_s": t3 - t2,
                  "verified": all(x.verified for x in ders),
                  "checks": sorted({x.check.method for x in ders}),
                  "check_detail": ders[0].check.detail}))
"""

_SYMPY = r"""
import json, sys, time
import numpy as np
import sympy as sp
import derivator
from derivator.expr import symbol
from derivator.functions import sigmoid
d = derivator.load_dict(json.loads(sys.argv[1]))
names = json.loads(sys.argv[2])          # the parameters to differentiate by
g = derivator.graph(d)
t0 = time.perf_counter()
full = {}
for n in g.nodes:                        # the loss written in the leaves
    full[n.name] = n.expr.xreplace({symbol(p): full[p] for p in n.parents if p in full})
L = full[g.output]
t1 = time.perf_counter()
per = {}
grads = []
for w in names:
    s = time.perf_counter()
    grads.append(sp.diff(L, symbol(w)))
    per[w] = time.perf_counter() - s
t2 = time.perf_counter()
leaves = [symbol(x) for x in g.leaves]
f = sp.lambdify(leaves, grads, modules=[{"sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x))}, "numpy"], cse=True)
t3 = time.perf_counter()
# sanity: the baseline computes the same gradients as derivator (not timed)
rng = np.random.default_rng(1)
pt = {x: rng.normal(size=64) for x in g.leaves}
ours = derivator.compile(d, names)(**pt).gradient
theirs = f(*[pt[x] for x in g.leaves])
err = max(float(np.max(np.abs(np.asarray(t) - ours[w]) / np.maximum(np.abs(ours[w]), 1e-12))) for w, t in zip(names, theirs))
print(json.dumps({"compose_s": t1 - t0, "diff_s": t2 - t1, "lambdify_s": t3 - t2, "per_parameter_s": per,
                  "max_relative_difference_vs_derivator": err}))
"""


def _py(code, *args, timeout=600):
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def derivator_cmd():
    """The console script next to this Python (a virtual environment's own), else this Python running
    derivator's CLI: never another install that comes first on PATH."""
    exe = os.path.join(os.path.dirname(sys.executable), "derivator")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-c", "import sys; from derivator.cli import main; sys.exit(main())"]


def scalar_view(command=None) -> list:
    """``["--view", "scalar"]`` where the CLI (or, with no command, ``derivator.compile``) has a
    ``view`` option, else ``[]``: the tables measure the scalar view, whatever the default view."""
    import inspect
    if command is None:
        return ["scalar"] if "view" in inspect.signature(derivator.compile).parameters else []
    r = subprocess.run(derivator_cmd() + [command, "--help"], capture_output=True, text=True)
    return ["--view", "scalar"] if "--view" in r.stdout else []


def cli_derive(path, extra=(), memory=False):
    """Wall time (and peak RSS in bytes when ``memory``) of one `derivator derive PATH --format json` call.

    Standard output goes to /dev/null through the shell's redirection, not through
    ``-o /dev/null``: the CLI writes -o files atomically (a temporary file, then a
    rename), which must never be aimed at a device node."""
    cmd = derivator_cmd() + ["derive", path, *extra, *scalar_view("derive"), "--format", "json", "--quiet"]
    peak = None
    timev = shutil.which("time") if memory else None
    timev = timev or ("/usr/bin/time" if memory and os.path.exists("/usr/bin/time") else None)
    if memory and timev:
        t0 = time.perf_counter()
        r = subprocess.run([timev, "-v", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", r.stderr)
        if m:
            peak = int(m.group(1)) * 1024
            how = "/usr/bin/time -v (Maximum resident set size)"
    else:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
    if memory and peak is None:      # fallback: the child's ru_maxrss, measured in a wrapper process
        code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
                "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True).stdout.split()
        peak = int(out[1]) * 1024
        how = "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss"
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-1000:]}")
    return (wall, peak, how) if memory else wall


def parameter_groups(sizes):
    """(label, names) for each layer's weights and biases, in flat order."""
    W, B = flat_names(sizes)
    groups = [(f"weights of layer {l + 1}", [n for row in W[l] for n in row]) for l in range(len(W))]
    groups += [(f"biases of layer {l + 1}", list(B[l])) for l in range(len(B))]
    return groups


def bench_derive_all(quick: bool, tmp: str) -> dict:
    sizes = (4, 8, 8, 4)
    spec = network(4, [8, 8], 4)
    text = json.dumps(spec)
    runs = 1 if quick else 3
    print(f"\n(c) derive + check + compile all gradients of 4-8-8-4: {runs} fresh process(es) ...", flush=True)
    fresh = [_py(_DERIVE_ALL, text) for _ in range(runs)]
    # the same in this process, caches cleared (the brief's alternative to a fresh process)
    d = derivator.load_dict(spec)
    _clear_caches()
    t0 = time.perf_counter()
    view = {"view": "scalar"} if scalar_view() else {}
    ders = derivator.derive_all(d, **view)
    derivator.compile(d, **view)
    in_this = time.perf_counter() - t0
    _clear_caches()
    del ders

    yaml_path = os.path.join(tmp, "net_4_8_8_4.yaml")
    with open(yaml_path, "w") as f:
        json.dump(spec, f)         # JSON is YAML
    cli_runs = 1 if quick else 3
    print(f"    CLI `derivator derive FILE --format json` x{cli_runs} ...", flush=True)
    cli = [cli_derive(yaml_path) for _ in range(cli_runs)]

    groups = parameter_groups(sizes)
    all_names = [n for _, ns in groups for n in ns]
    if quick:   # two parameters per layer group, extrapolated by group size
        sample = [n for _, ns in groups for n in (ns[0], ns[-1])]
    else:
        sample = list(derivator.load_dict(spec).wrt)
    print(f"    sympy.diff of the composed loss for {len(sample)} parameter(s) + lambdify(cse=True) ...", flush=True)
    sy = _py(_SYMPY, text, json.dumps(sample))
    if quick:
        est = 0.0
        for _, ns in groups:
            got = [sy["per_parameter_s"][n] for n in ns if n in sy["per_parameter_s"]]
            est += statistics.mean(got) * len(ns)
        diff_total = est
        lamb_total = sy["lambdify_s"] * len(all_names) / len(sample)
        how = (f"estimated: {len(sample)} of {len(all_names)} parameters (first and last of each layer's "
               f"weights and biases) differentiated, scaled by group size; lambdify scaled linearly")
    else:
        diff_total = sy["diff_s"]
        lamb_total = sy["lambdify_s"]
        how = f"measured: all {len(all_names)} parameters, once"
    inproc = statistics.median(r["total_s"] for r in fresh)
    return {"network": "4-8-8-4", "gradients": fresh[0]["gradients"],
            "derivator_fresh_process": fresh, "derivator_in_process_s": inproc,
            "derivator_in_this_process_caches_cleared_s": in_this,
            "verified": all(r["verified"] for r in fresh), "checks": fresh[0]["checks"],
            "check_detail": fresh[0]["check_detail"],
            "cli_wall_s": cli, "cli_median_s": statistics.median(cli), "cli_runs": cli_runs,
            "sympy": {"compose_s": sy["compose_s"], "diff_s": diff_total, "lambdify_s": lamb_total,
                      "total_s": diff_total + lamb_total, "how": how, "parameters_differentiated": len(sample),
                      "per_parameter_s": sy["per_parameter_s"],
                      "max_relative_difference_vs_derivator": sy["max_relative_difference_vs_derivator"],
                      "note": "the composed loss keeps derivator's sigmoid class (its fdiff is "
                              "exp(-x)/(1+exp(-x))**2); writing sigmoid as 1/(1+exp(-x)) makes sympy slower"},
            "speedup_vs_sympy": (diff_total + lamb_total) / inproc}


# ---------------------------------------------------------------- (d) depth
def _clear_caches():
    derivator.api._graph.cache_clear()
    derivator.api.workspace.cache_clear()
    derivator.api._stable.cache_clear()
    import sympy
    sympy.core.cache.clear_cache()


class _Capped(Exception):
    pass


def _alarm(signum, frame):
    raise _Capped()


def timed_capped(fn, cap):
    """(seconds, result) of fn(), or (None, None) when it ran past ``cap`` seconds."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, cap)
    t0 = time.perf_counter()
    try:
        out = fn()
        return time.perf_counter() - t0, out
    except _Capped:
        return None, None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def growth(rows) -> dict:
    """How time grows with edges: the worst pair of depths d < d' by
    [time(d')/time(d)] / [edges(d')/edges(d)] (1 = exactly linear, < 1 = sub-linear), and
    the least-squares slope of log time against log edges."""
    worst, pair = 0.0, None
    for i, r in enumerate(rows):
        for s in rows[i + 1:]:
            q = (s["time_s"] / r["time_s"]) / (s["edges"] / r["edges"])
            if q > worst:
                worst, pair = q, (r["depth"], s["depth"])
    slope = None
    if len(rows) >= 2:
        slope = float(np.polyfit(np.log([r["edges"] for r in rows]), np.log([r["time_s"] for r in rows]), 1)[0])
    return {"depths": [r["depth"] for r in rows], "worst_growth_ratio": worst, "worst_pair": pair,
            "loglog_slope_time_vs_edges": slope}


def bench_depth(quick: bool, tmp: str) -> dict:
    depths = list(range(2, 21))
    reps, budget = (3, 0.5) if quick else (5, 3.0)   # repetitions stop once a depth has used `budget` s
    cap = 3.0 if quick else 60.0
    print(f"\n(d) width-3 networks, depth 2..20, derive w1: median of up to {reps} (fresh caches each), "
          f"cap {cap:g} s per derivation ...", flush=True)
    rows = []
    view = {"view": "scalar"} if scalar_view() else {}     # networks over 40 parameters default to layers
    for depth in depths:
        spec = network(3, [3] * (depth - 1), 1)
        ts, der = [], None
        for _ in range(reps):
            d = derivator.load_dict(spec)
            _clear_caches()
            t, out = timed_capped(lambda: derivator.derive(d, "w1", **view), cap)
            if t is None:
                ts = None
                break
            ts.append(t)
            der = out
            if sum(ts) > budget:
                break
        g = derivator.graph(derivator.load_dict(spec))
        row = {"depth": depth, "edges": g.edge_count, "nodes": len(g.nodes)}
        if ts is None:
            row.update({"time_s": None, "capped_at_s": cap, "path_count": None})
            _clear_caches()
        else:
            med = statistics.median(ts)
            detail = der.check.detail
            row.update({"time_s": med, "times_s": ts, "path_count": der.path_count,
                        "cone_edges": len(der.cone.edges), "verified": der.verified,
                        "check": der.check.method, "check_detail": detail,
                        "check_kind": ("composed: sympy.diff in the leaves" if "leaves" in detail
                                       else "reverse accumulation (linear)" if "reverse accumulation" in detail
                                       else detail[:40]),
                        "us_per_edge": med / g.edge_count * 1e6})
        rows.append(row)
        t = row["time_s"]
        print(f"    depth {depth:2d}: {'capped' if t is None else f'{t * 1e3:8.1f} ms'}", flush=True)
    _clear_caches()
    capped = [r["depth"] for r in rows if r["time_s"] is None]
    done = [r for r in rows if r["time_s"] is not None]
    lin = growth(done)
    lin.update({"allowed": LINEAR_SLACK, "capped_depths": capped,
                "passed": (not capped) and lin["worst_growth_ratio"] <= LINEAR_SLACK})
    # for information: the same over the depths whose result check is reverse accumulation (linear)
    fwd = [r for r in done if r["check_kind"].startswith("reverse")]
    lin_fwd = growth(fwd) if len(fwd) >= 2 else None
    spec20 = network(3, [3] * 19, 1)
    path20 = os.path.join(tmp, "width3_depth20.yaml")
    with open(path20, "w") as f:
        json.dump(spec20, f)
    print("    peak memory of `derivator derive FILE --wrt w1 --format json` on depth 20 ...", flush=True)
    wall, peak, how = cli_derive(path20, ["--wrt", "w1"], memory=True)
    return {"rows": rows, "repetitions": reps, "repetition_budget_s": budget, "cap_s": cap,
            "capped_depths": capped, "linear": lin, "linear_reverse_accumulation_depths": lin_fwd,
            "memory": {"peak_rss_bytes": peak, "how": how, "cli_wall_s": wall,
                       "command": "derivator derive width3_depth20.yaml --wrt w1 --format json --quiet > /dev/null"}}


# ---------------------------------------------------------------- report
def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "derivator": getattr(derivator, "__version__", "?")}
    for name in ("sympy", "torch", "jax", "jaxlib", "threadpoolctl"):
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:
            versions[name] = None
    commit = None
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except Exception:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu_model": cpu,
            "cpu_count": os.cpu_count(), "usable_cpus": usable,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "versions": versions, "git_commit": commit,
            "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "MKL_NUM_THREADS", "XLA_FLAGS")}
            | {"torch": torch.get_num_threads() if torch else None, "threadpoolctl": THREADPOOLCTL},
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def verdict(ok) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def table(title, header, rows, left=(0,)):
    """A plain-text table; columns in ``left`` are left-aligned, the others right-aligned."""
    cols = [header] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def fmt(r):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    print("\n" + "\n".join([title, fmt(header), line] + [fmt(r) for r in rows]))


def ms(x):
    return "-" if x is None else f"{x * 1e3:.2f} ms"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions; sympy baseline estimated from a sample")
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"), metavar="PATH",
                    help="where to write the results (default benchmarks/results.json)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    info = machine()
    print(f"derivator benchmarks{' (--quick)' if args.quick else ''} on {info['cpu_model']}, "
          f"{info['cpu_count']} cores, Python {info['versions']['python']}, one thread; "
          f"load average {info['load_average_at_start']}")
    missing = [n for n, m in (("torch", torch), ("jax", jax)) if m is None]
    if missing:
        print("not installed (skipped): " + ", ".join(missing))

    res = {"machine": info, "quick": args.quick, "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="derivator-bench-") as tmp:
        res["a"] = bench_network("a", (2, 2, 1), 10**6, 5 if args.quick else 41, seed=1)
        res["b"] = bench_network("b", (4, 8, 8, 4), 10**5, 9 if args.quick else 81, seed=2)
        res["c"] = bench_derive_all(args.quick, tmp)
        res["d"] = bench_depth(args.quick, tmp)

    verdicts = {}
    # (a) and (b)
    for key in ("a", "b"):
        r = res[key]
        med, hand = r["median_s"], r["median_s"]["hand NumPy"]
        tor = med.get("torch")
        if key == "a":
            verdicts["a"] = med["derivator"] / hand <= 0.8
        else:
            verdicts["b"] = None if tor is None else med["derivator"] / tor <= 1.0
        rows = []
        for name in ("derivator", "hand NumPy", "torch", "jax"):
            if name not in med:
                rows.append([name, "not installed", "", "", ""])
                continue
            rows.append([name, ms(med[name]), f"{med[name] / hand:.2f}x",
                         "-" if tor is None else f"{med[name] / tor:.2f}x",
                         f"{r['max_relative_difference_vs_derivator'].get(name, 0.0):.1e}"])
        target = (f"target: derivator <= 0.8x hand NumPy -> {med['derivator'] / hand:.2f}x  {verdict(verdicts['a'])}"
                  if key == "a" else
                  "target: derivator <= 1.0x torch -> "
                  + ("torch not installed" if tor is None else f"{med['derivator'] / tor:.2f}x") + f"  {verdict(verdicts['b'])}")
        extra = ""
        if key == "a":
            others = [n for n in ("torch", "jax") if n in med]
            ahead = all(med["derivator"] < med[n] for n in others)
            extra = f"\n  derivator ahead of {' and '.join(others) or '(none installed)'}: {'yes' if ahead else 'no'}"
            r["ahead_of_torch_and_jax"] = ahead
        table(f"({key}) {r['network']} sigmoid network ({r['parameters']} parameters), every gradient summed over "
              f"N = {r['samples']:,}; median of {r['repetitions']} round-robin calls",
              ["contestant", "median", "vs hand NumPy", "vs torch", "max rel. diff"], rows)
        print("  " + target + extra)
        if key == "b" and tor is not None:
            print(f"  derivator / torch autograd = {med['derivator'] / tor:.2f}")

    # (c)
    c = res["c"]
    verdicts["c_inprocess"] = c["derivator_in_process_s"] <= 0.5
    verdicts["c_cli"] = c["cli_median_s"] <= 3.0
    s = c["sympy"]
    rows = [["derivator derive_all + compile (fresh process)", f"{c['derivator_in_process_s']:.3f} s",
             f"{len(c['derivator_fresh_process'])} run(s), median; derive {statistics.median(r['derive_all_s'] for r in c['derivator_fresh_process']):.3f} s"
             f" + compile {statistics.median(r['compile_s'] for r in c['derivator_fresh_process']):.3f} s; verified: {c['verified']}"
             + (f"; then the first grad.sum {statistics.median(r['first_batch_total_s'] for r in c['derivator_fresh_process']):.3f} s"
                " (builds the matrix code)" if "first_batch_total_s" in c["derivator_fresh_process"][0] else "")],
            ["  same, this process, caches cleared", f"{c['derivator_in_this_process_caches_cleared_s']:.3f} s", ""],
            ["sympy.diff of the composed loss", f"{s['diff_s']:.2f} s",
             "estimated from a sample (--quick)" if res["quick"] else s["how"]],
            ["  + lambdify(cse=True)", f"{s['lambdify_s']:.2f} s", ""],
            ["  sympy total", f"{s['total_s']:.2f} s", f"derivator is {c['speedup_vs_sympy']:.0f}x faster"],
            ["CLI derive --format json (process start incl.)", f"{c['cli_median_s']:.3f} s",
             f"median of {c['cli_runs']}: " + ", ".join(f"{x:.2f}" for x in c["cli_wall_s"])]]
    table(f"(c) every gradient of 4-8-8-4 ({c['gradients']}): derive + check ({', '.join(c['checks'])}) + compile",
          ["what", "time", "notes"], rows, left=(0, 2))
    print(f"  target: <= 0.5 s in-process -> {c['derivator_in_process_s']:.3f} s  {verdict(verdicts['c_inprocess'])}")
    print(f"  target: <= 3 s CLI call     -> {c['cli_median_s']:.3f} s  {verdict(verdicts['c_cli'])}")

    # (d)
    dd = res["d"]
    rows = []
    for r in dd["rows"]:
        if r["time_s"] is None:
            rows.append([r["depth"], f"> {r['capped_at_s']:g} s (capped)", "-", r["edges"], "-", "-"])
        else:
            rows.append([r["depth"], ms(r["time_s"]), f"{r['path_count']:,}", r["edges"],
                         f"{r['us_per_edge']:.0f} us", r["check_kind"]])
    table(f"(d) width-3 sigmoid networks: derive w1 in-process (fresh caches; median of {dd['repetitions']})",
          ["depth", "time", "paths (exact)", "edges", "time/edge", "result check"], rows, left=(5,))
    last = dd["rows"][-1]
    verdicts["d_depth20"] = last["time_s"] is not None and last["time_s"] <= 0.2
    verdicts["d_linear"] = dd["linear"]["passed"]
    peak = dd["memory"]["peak_rss_bytes"]
    verdicts["d_memory"] = peak is not None and peak <= 300e6
    lin = dd["linear"]
    print(f"  target: depth 20 <= 0.2 s   -> {ms(last['time_s'])}  {verdict(verdicts['d_depth20'])}")
    print(f"  target: linear in edges     -> worst pair of depths {lin['worst_pair']}: time grew "
          f"{lin['worst_growth_ratio']:.2f}x as fast as edges (allowed {LINEAR_SLACK}x)"
          + (f"; capped at depths {dd['capped_depths']}" if dd["capped_depths"] else "")
          + f"  {verdict(verdicts['d_linear'])}")
    fw = dd["linear_reverse_accumulation_depths"]
    if fw and fw["depths"] != lin["depths"]:
        print(f"    (depths {fw['depths'][0]}-{fw['depths'][-1]} alone, checked by reverse accumulation: worst "
              f"{fw['worst_growth_ratio']:.2f}x, log-log slope {fw['loglog_slope_time_vs_edges']:.2f})")
    print(f"  target: peak memory <= 300 MB -> {'-' if peak is None else f'{peak / 1e6:.0f} MB'} "
          f"({dd['memory']['how']})  {verdict(verdicts['d_memory'])}")

    return finish(res, verdicts, started, args.json)


def finish(res: dict, verdicts: dict, started: float, path: str) -> int:
    """Print the summary line, write the JSON results, return the exit status."""
    res["verdicts"] = {k: verdict(v) for k, v in verdicts.items()}
    res["elapsed_s"] = time.perf_counter() - started
    print("\nsummary: " + ", ".join(f"{k} {verdict(v)}" for k, v in verdicts.items()))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {path} ({res['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
