"""The command line: ``derivator derive | eval | paths | compile | examples``.

Exit status: 0 success; 2 bad input or usage (one line on standard error
naming the file, the line and the problem); 1 an internal failure or a
derivation that did not pass its checks. Output files are written
atomically (a temporary file in the same folder, then a rename).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

from . import api
from .errors import DerivatorError, InputError, UsageError, VerificationError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own convention)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"derivator: error: {message}\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="derivator", description="Step-by-step, machine-checked derivations of backpropagation gradients.")
    p.add_argument("--version", action="version", version="derivator 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    d = sub.add_parser("derive", help="the step-by-step derivation of d(output)/d(NAME)",
                       description="Write the step-by-step derivation of the output's gradient.")
    d.add_argument("file", metavar="FILE", help="a definition file, or the name of a shipped example")
    d.add_argument("--wrt", action="append", metavar="NAME", help="a name to differentiate by (repeatable; default: every `wrt`)")
    d.add_argument("--format", choices=("md", "tex", "json"), default="md", help="output format (default: md)")
    d.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    d.add_argument("--fragment", action="store_true", help="with --format tex: a fragment for \\input, not a whole document")
    d.add_argument("--max-paths", type=int, default=16, metavar="N", help="list at most N paths in documents (default 16)")
    d.add_argument("--templates", metavar="DIR", help="a folder of templates that override the shipped ones")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")

    e = sub.add_parser("eval", help="values, gradient and the updated parameters at a point",
                       description="Evaluate the graph and its gradient at a point (`at` from the file, overridden by --at).")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--at", action="append", default=[], metavar="NAME=VALUE", help="a leaf's value (repeatable)")
    e.add_argument("--lr", metavar="RATE", help="learning rate for one gradient-descent step")
    e.add_argument("--format", choices=("text", "json"), default="text")

    pa = sub.add_parser("paths", help="the paths from the output to NAME",
                        description="List the paths from the output to NAME, and their exact count.")
    pa.add_argument("file", metavar="FILE")
    pa.add_argument("--wrt", required=True, metavar="NAME")
    pa.add_argument("--format", choices=("text", "json"), default="text")
    pa.add_argument("--limit", type=int, default=1000, metavar="N", help="list at most N paths (default 1000)")

    c = sub.add_parser("compile", help="the gradient as a standalone NumPy module",
                       description="Write the compiled gradient as a readable Python module that needs only NumPy.")
    c.add_argument("file", metavar="FILE")
    c.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    c.add_argument("--wrt", action="append", metavar="NAME")

    sub.add_parser("examples", help="list the examples that ship with derivator")
    return p


def write_output(text, path: str | None) -> None:
    """Standard output, or PATH written atomically. ``text`` is a string or an iterable of
    strings, written one after the other (a large JSON document is never one string)."""
    pieces = (text,) if isinstance(text, str) else text
    if not path:
        for piece in pieces:
            sys.stdout.write(piece)
        sys.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"the folder {folder} does not exist", source=path, hint="create it first, or choose another -o")
    if os.path.isdir(path):
        raise UsageError("is a folder", source=path, hint="give a file name to -o")
    if os.path.exists(path) and not os.path.isfile(path):
        # a device or a pipe (/dev/null, /dev/stdout): write to it, never rename over it
        try:
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(pieces)
        except OSError as e:
            raise UsageError(f"cannot write: {e.strerror}", source=path) from None
        return
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".derivator-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(pieces)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UsageError(f"cannot write: {e.strerror}", source=path) from None


def _progress(quiet: bool, total: int):
    """A tqdm bar on standard error: only on a terminal, never with --quiet, only for several names."""
    if quiet or total < 2 or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm
    bar = tqdm(total=total, desc="deriving", unit="gradient", file=sys.stderr, leave=False, disable=None)

    def step(i, n, name):
        bar.set_postfix_str(name, refresh=False)
        bar.update(1)
    return step, bar


def cmd_derive(a) -> int:
    d = api.load(a.file)
    if a.max_paths < 1:
        raise UsageError("--max-paths must be at least 1")
    step, bar = _progress(a.quiet, len(a.wrt or d.wrt))
    try:
        ders = api.derive_all(d, a.wrt, max_paths=a.max_paths, progress=step)
    finally:
        if bar is not None:
            bar.close()
    bad = [f for x in ders for f in x.failures]
    if bad:
        raise VerificationError("the derivation did not pass its checks; nothing was written:\n  " + "\n  ".join(bad))
    if a.format == "json":
        from itertools import chain

        from .render import derivations_json_text
        single = len(ders) == 1 and (not a.wrt or len(a.wrt) == 1)
        text = chain(derivations_json_text(ders, as_list=not single), ["\n"])   # written piece by piece
    else:
        from .render import render
        text = render(ders, a.format, fragment=a.fragment, template_path=a.templates)
    write_output(text, a.output)
    return 0


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise UsageError(f"{what} must be a finite number, got {text!r}")
    return v


def evaluate(d, overrides: dict, lr: float | None) -> dict:
    at = d.at_dict
    at.update(overrides)
    g = api.graph(d)
    for name in overrides:
        if name not in g.names:
            raise UsageError(f"--at {name}: not a name in the graph", source=d.source)
        if not g.is_leaf(name):
            raise UsageError(f"--at {name}: {name} is computed by an equation; give values for leaves",
                             source=d.source)
    missing = [x for x in g.leaves if x not in at]
    if missing:
        raise UsageError("no value for " + ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else ""), source=d.source,
                         hint="add them to `at:` in the file, or pass --at NAME=VALUE")
    grad = api.compile(d)
    import numpy as np
    with np.errstate(all="ignore"):          # non-finite results are reported below, once
        out = grad(**{x: at[x] for x in g.leaves})
    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    result = {"output": d.output, "value": float(out.value),
              "values": {k: num(v) for k, v in out.values.items()},
              "gradient": {k: float(v) for k, v in out.gradient.items()},
              "adjoints": {k: num(v) for k, v in out.adjoints.items()}}
    bad = [k for k, v in [(d.output, result["value"])] + list(result["gradient"].items()) if not math.isfinite(v)]
    if bad:
        raise UsageError("the output or its gradient is not finite at this point: " + ", ".join(bad[:8]),
                         source=d.source, hint="check the inputs (log of a non-positive number? division by zero?)")
    over = [k for k, v in list(result["values"].items()) + list(result["adjoints"].items()) if v is None]
    if over:
        sys.stderr.write("derivator: warning: not finite in float64 at this point (shown as null): "
                         + ", ".join(dict.fromkeys(over)) + "\n")
    rate = lr if lr is not None else d.lr
    if rate is not None:
        result["updated"] = {k: at[k] - rate * v for k, v in result["gradient"].items() if k in at}
    return result


def cmd_eval(a) -> int:
    d = api.load(a.file)
    overrides = {}
    for item in a.at:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--at {item!r}: write NAME=VALUE")
        overrides[name.strip()] = _number(value, f"--at {name.strip()}")
    lr = _number(a.lr, "--lr") if a.lr is not None else None
    r = evaluate(d, overrides, lr)
    if a.format == "json":
        text = json.dumps(r, indent=1) + "\n"
    else:
        lines = [f"{r['output']} = {r['value']!r}", "", "values:"]
        lines += [f"  {k} = {v!r}" for k, v in r["values"].items()]
        lines += ["", f"gradient (d{r['output']}/dNAME):"] + [f"  {k}: {v!r}" for k, v in r["gradient"].items()]
        lines += ["", "adjoints:"] + [f"  {k}: {v!r}" for k, v in r["adjoints"].items()]
        if "updated" in r:
            lines += ["", "updated:"] + [f"  {k} = {v!r}" for k, v in r["updated"].items()]
        text = "\n".join(lines) + "\n"
    write_output(text, None)
    return 0


def cmd_paths(a) -> int:
    from itertools import islice

    from .paths import count_paths, iter_paths
    d = api.load(a.file)
    name = api._check_wrt(d, [a.wrt])[0]
    g = api.graph(d)
    n = count_paths(g, name)
    paths = [list(p) for p in islice(iter_paths(g, name), max(a.limit, 0))]
    if a.format == "json":
        text = json.dumps({"output": d.output, "wrt": name, "path_count": n, "paths": paths}, indent=1) + "\n"
    else:
        lines = [f"{n} path{'s' if n != 1 else ''} from {d.output} to {name}" + (f" (first {len(paths)} shown)" if len(paths) < n else "")]
        lines += ["  " + " -> ".join(p) for p in paths]
        text = "\n".join(lines) + "\n"
    write_output(text, None)
    return 0


def cmd_compile(a) -> int:
    d = api.load(a.file)
    write_output(api.compile(d, a.wrt).source, a.output)
    return 0


def cmd_examples(a) -> int:
    from .spec import examples, loads, example_text
    for name in examples():
        d = loads(example_text(name), source=name)
        write_output(f"{name:28} {d.title or ''}\n", None)
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    handler = {"derive": cmd_derive, "eval": cmd_eval, "paths": cmd_paths, "compile": cmd_compile,
               "examples": cmd_examples}[args.command]
    try:
        return handler(args)
    except InputError as e:
        sys.stderr.write(f"derivator: {e}\n")
        return 2
    except VerificationError as e:
        sys.stderr.write(f"derivator: verification failed: {e}\n")
        return 1
    except DerivatorError as e:
        sys.stderr.write(f"derivator: {e}\n")
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # an internal failure: one line, no traceback unless asked
        if os.environ.get("DERIVATOR_DEBUG"):
            raise
        sys.stderr.write(f"derivator: internal error: {type(e).__name__}: {e} "
                         "(set DERIVATOR_DEBUG=1 for a traceback)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
