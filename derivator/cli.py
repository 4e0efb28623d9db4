"""The command line: ``derivator derive | eval | paths | compile | check | examples``.

Exit status: 0 success; 2 bad input or usage (one line on standard error
naming the file, the line and the problem); 1 an internal failure or a
derivation that did not pass its checks; 3 (``check`` only) some claimed
derivative is wrong; 130 interrupted (Ctrl-C).

Output files (``-o``) are written atomically: a temporary file in the same
folder, then a rename, and never over the input, over a read-only file or
into a read-only folder; through a symbolic link, the file it points to is
written (the link stays). A new file gets the mode the umask gives, a
replaced one keeps its own.

This module imports only the standard library at first: sympy and NumPy
are imported inside ``main``, so that Ctrl-C at any moment exits quietly.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys

from .errors import DerivatorError, InputError, UsageError, VerificationError

VIEWS = ("scalar", "layer")
VIEW_HELP = ("scalar (one number per node) or layer (vectors and matrices); default: layer for `shapes` "
             "definitions and networks of more than 40 parameters, else scalar")
MAX_LISTED_PATHS = 100_000     # --max-paths and --limit: paths listed in one document or answer


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own status)
        sys.stderr.write(f"derivator: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _count(low: int):
    """An argparse type: a whole number from ``low`` to MAX_LISTED_PATHS, in ASCII digits."""
    def convert(text: str) -> int:
        t = text.strip()
        if not t.lstrip("+-").isascii() or not t.lstrip("+-").isdigit():
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
        n = int(t)
        if not low <= n <= MAX_LISTED_PATHS:
            raise argparse.ArgumentTypeError(f"must be from {low} to {MAX_LISTED_PATHS}, got {short_number(t)}")
        return n
    convert.__name__ = "count"
    return convert


def short_number(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + f"…({len(text)} digits)"


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
    d.add_argument("--max-paths", type=_count(1), default=16, metavar="N",
                   help=f"list at most N paths in documents (default 16, at most {MAX_LISTED_PATHS})")
    d.add_argument("--templates", metavar="DIR", help="a folder of templates that override the shipped ones")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    d.add_argument("--view", choices=VIEWS, help=VIEW_HELP)

    e = sub.add_parser("eval", help="values, gradient and the updated parameters at a point",
                       description="Evaluate the graph and its gradient at a point (`at` from the file, overridden by --at).")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--at", action="append", default=[], metavar="NAME=VALUE", help="a leaf's value (repeatable)")
    e.add_argument("--lr", metavar="RATE", help="learning rate for one gradient-descent step")
    e.add_argument("--format", choices=("text", "json"), default="text")
    e.add_argument("--view", choices=VIEWS, help=VIEW_HELP)

    pa = sub.add_parser("paths", help="the paths from the output to NAME",
                        description="List the paths from the output to NAME, and their exact count.")
    pa.add_argument("file", metavar="FILE")
    pa.add_argument("--wrt", required=True, metavar="NAME")
    pa.add_argument("--format", choices=("text", "json"), default="text")
    pa.add_argument("--limit", type=_count(0), default=1000, metavar="N",
                    help=f"list at most N paths (default 1000, at most {MAX_LISTED_PATHS})")
    pa.add_argument("--view", choices=VIEWS, help="scalar (the default: routes through scalar nodes) or layer "
                                                   "(routes through vectors and matrices)")

    c = sub.add_parser("compile", help="the gradient as a standalone NumPy module",
                       description="Write the compiled gradient as a readable Python module that needs only NumPy.")
    c.add_argument("file", metavar="FILE")
    c.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    c.add_argument("--wrt", action="append", metavar="NAME")
    c.add_argument("--view", choices=VIEWS, help=VIEW_HELP)

    k = sub.add_parser("check", help="judge claimed derivatives (exit 3 when one is wrong)",
                       description="Judge claimed derivatives of the output: right (proved), or wrong with a "
                                   "counterexample and a diagnosis. Exit status 0 every claim right, 3 some claim "
                                   "wrong, 2 bad input.")
    k.add_argument("file", metavar="FILE")
    k.add_argument("--wrt", action="append", default=[], metavar="NAME",
                   help="the claim's name (repeatable, paired in order with --claim); without --claim: "
                        "only the file's claims for these names")
    k.add_argument("--claim", action="append", default=[], metavar="EXPR",
                   help="a claimed derivative of the output with respect to the matching --wrt")
    k.add_argument("--format", choices=("text", "md", "tex", "json"), default="text",
                   help="output format (default: text)")
    k.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    k.add_argument("--templates", metavar="DIR", help="a folder of templates that override the shipped check.*.j2")

    sub.add_parser("examples", help="list the examples that ship with derivator")
    return p


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_only(path: str, st: os.stat_result) -> bool:
    """True for what the user could not write: no permission, or no write bit at all (chmod a-w)."""
    return not os.access(path, os.W_OK) or not st.st_mode & 0o222


def output_target(path: str | None, inputs=()) -> str | None:
    """Where ``-o PATH`` writes (a symbolic link: the file it points to), or ``UsageError`` why not.

    Checked before any work is done, and again just before writing. Refused:
    a missing folder, a folder, the input itself (same file by ``os.stat``
    identity: also through a link, a hard link or another spelling of the
    path), a read-only file, a read-only folder."""
    if not path:
        return None
    target = os.path.realpath(path) if os.path.islink(path) else path
    folder = os.path.dirname(os.path.abspath(target))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:       # a loop of links, a name too long, …
        raise UsageError(f"cannot write: {e.strerror}", source=path) from None
    if st is None and not os.path.isdir(folder):
        raise UsageError(f"the folder {folder} does not exist", source=path,
                         hint="create it first, or choose another -o")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError("is a folder", source=path, hint="give a file name to -o")
    for name in inputs:
        try:
            if st is not None and _same_file(st, os.stat(name)):
                raise UsageError(f"is the input definition {name}: writing would replace it", source=path,
                                 hint="choose another -o")
        except OSError:
            pass
    if st is not None and not stat.S_ISREG(st.st_mode):
        return target          # a device or a pipe (/dev/null, /dev/stdout): written to, never renamed over
    if st is not None and _read_only(target, st):
        raise UsageError("is read-only: derivator does not replace it", source=path,
                         hint="make it writable first, or choose another -o")
    try:
        fst = os.stat(folder)
    except OSError as e:
        raise UsageError(f"cannot write into the folder {folder}: {e.strerror}", source=path) from None
    if not os.access(folder, os.W_OK | os.X_OK) or not fst.st_mode & 0o222:
        raise UsageError(f"cannot write into the folder {folder}: it is read-only", source=path,
                         hint="choose another -o")
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _encode(text: str, where: str | None) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UsageError(f"the output holds a character that UTF-8 cannot encode ({text[e.start]!r}: "
                         "a lone surrogate?)", source=where, hint="remove it from the definition or template") from None


def _write_stdout(text: str) -> None:
    data = _encode(text, None)
    try:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()
        else:                                     # a text stream (io.StringIO in a test)
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise
    except OSError as e:
        _silence_stdout()
        raise UsageError(f"cannot write to standard output: {e.strerror or e}") from None


def _silence_stdout() -> None:
    """After a failed write, point standard output at /dev/null: the flush at exit must not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):      # io.UnsupportedOperation is both
        pass


def write_output(text, path: str | None, inputs=()) -> None:
    """Standard output, or PATH written atomically (see ``output_target``); nothing is left behind.

    ``text`` is a string or an iterable of strings, written one after the other (a large JSON
    document is never held as one string)."""
    pieces = (text,) if isinstance(text, str) else text
    target = output_target(path, inputs)
    if target is None:
        for piece in pieces:
            _write_stdout(piece)
        return
    if os.path.exists(target) and not os.path.isfile(target):
        try:
            with open(target, "wb") as f:
                for piece in pieces:
                    f.write(_encode(piece, path))
        except OSError as e:
            raise UsageError(f"cannot write: {e.strerror}", source=path) from None
        return
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    import tempfile
    folder = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".derivator-", suffix=".tmp")
    except OSError as e:
        raise UsageError(f"cannot write into the folder {folder}: {e.strerror}", source=path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            for piece in pieces:
                f.write(_encode(piece, path))
        os.replace(tmp, target)
    except BaseException as e:        # an error, or Ctrl-C: no temporary file stays behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise UsageError(f"cannot write: {e.strerror}", source=path) from None
        raise


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


def _inputs(a) -> tuple[str, ...]:
    """The input file of a command, where it is a file (not a shipped example's name)."""
    return (a.file,) if os.path.exists(a.file) else ()


def _templates(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "no such folder"
        raise UsageError(f"--templates {path}: {what}", hint="give a folder of .j2 templates")
    return path


def _templated(templates: str | None, render, *args, **kwargs) -> str:
    """``render(*args, **kwargs)``; an error raised in a user's template folder is a UsageError there."""
    try:
        return render(*args, **kwargs)
    except DerivatorError:
        raise
    except Exception as e:
        err = _template_error(e, templates) if templates else None
        if err is None:
            raise
        raise err from None


def _template_error(e: Exception, folder: str) -> UsageError | None:
    """A jinja2 error (or any error raised inside a template) located in the user's template folder."""
    import traceback

    import jinja2
    where = None
    if isinstance(e, jinja2.TemplateSyntaxError) and e.filename:
        where = (e.filename, e.lineno)
    else:
        root = os.path.realpath(folder) + os.sep
        for frame in traceback.extract_tb(e.__traceback__):
            if frame.filename and os.path.realpath(frame.filename).startswith(root):
                where = (frame.filename, frame.lineno)
    if where is None and not isinstance(e, jinja2.TemplateError):
        return None
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    if isinstance(e, jinja2.TemplateNotFound):
        message = f"template {e.name!r} not found"
    if where is None:
        return UsageError(f"error in a template: {message}", source=folder)
    return UsageError(f"error in a template: {message}", source=where[0], line=where[1])


def _unchecked(ders) -> bool:
    """Every failed check of these derivations is one that could not be made (no usable point)."""
    failed = [c for x in ders for c in [p.check for p in getattr(x, "partials", ())] + [x.check] if not c.passed]
    return bool(failed) and all(c.method == "unchecked" for c in failed)


def cmd_derive(a) -> int:
    from . import api
    output_target(a.output, _inputs(a))
    templates = _templates(a.templates)
    d = api.load(a.file)
    view = api.view_of(d, a.view)
    step, bar = _progress(a.quiet, len(a.wrt or (d.layer_wrt if view == "layer" else d.wrt)))
    try:
        ders = api.derive_all(d, a.wrt, max_paths=a.max_paths, progress=step, view=view)
    finally:
        if bar is not None:
            bar.close()
    bad = [f for x in ders for f in x.failures]
    if bad and _unchecked(ders):
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UsageError(f"nothing was written: {bad[0]}{more}", source=d.source,
                         hint="give every leaf a value in `at:` where the values are moderate")
    if bad:
        raise VerificationError("the derivation did not pass its checks; nothing was written:\n  " + "\n  ".join(bad))
    if a.format == "json":
        from itertools import chain

        from .render import derivations_json_text
        single = len(ders) == 1 and (not a.wrt or len(a.wrt) == 1)
        if view == "layer":
            objs = [x.to_json() for x in ders]
            text = json.dumps(objs[0] if single else objs, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        else:
            text = chain(derivations_json_text(ders, as_list=not single), ["\n"])   # written piece by piece
    else:
        from .render import render
        text = _templated(templates, render, ders, a.format, fragment=a.fragment, template_path=templates)
    write_output(text, a.output, _inputs(a))
    return 0


def _number(text: str, what: str) -> float:
    """A finite number from the command line (``--at``, ``--lr``), read as ``spec.read_number`` reads."""
    from .spec import NumberError, read_number
    try:
        v = float(read_number(text))
    except NumberError as e:
        raise UsageError(f"{what} {e.message}", hint=e.hint) from None
    except OverflowError:           # a whole number of hundreds of digits
        v = math.inf
    if not math.isfinite(v):
        raise UsageError(f"{what} must be a finite number, got {short_number(text)}")
    return v


def _finite(v) -> float | None:
    """A JSON number, or None (null) for what float64 cannot hold: JSON has no NaN or Infinity."""
    v = float(v)
    return v if math.isfinite(v) else None


def evaluate(d, overrides: dict, lr: float | None) -> dict:
    from . import api
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
    result = {"output": d.output, "value": _finite(out.value),
              "values": {k: _finite(v) for k, v in out.values.items()},
              "gradient": {k: _finite(v) for k, v in out.gradient.items()},
              "adjoints": {k: _finite(v) for k, v in out.adjoints.items()}}
    bad = [k for k, v in [(d.output, result["value"])] + list(result["gradient"].items()) if v is None]
    if bad:
        raise UsageError("the output or its gradient is not finite at this point: " + ", ".join(bad[:8]),
                         source=d.source, hint="check the inputs: the log of a number <= 0? a division by zero?")
    rate = lr if lr is not None else d.lr
    if rate is not None:
        with np.errstate(all="ignore"):
            result["updated"] = {k: _finite(np.float64(at[k]) - np.float64(rate) * np.float64(v))
                                 for k, v in result["gradient"].items() if k in at}
    return result


def _layer_value(text: str, what: str):
    """A number, or a vector or matrix written as a JSON list (``--at x=[1,2,3]``)."""
    text = text.strip()
    if not text.startswith("["):
        return _number(text, what)
    try:
        v = json.loads(text)
    except ValueError:
        raise UsageError(f"{what} must be a number or a list such as [1, 2] or [[1, 2], [3, 4]], got {text[:40]!r}") \
            from None
    arr = v if isinstance(v, list) else None
    import numpy as np
    try:
        arr = np.asarray(arr, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim not in (1, 2) or not np.all(np.isfinite(arr)):
        raise UsageError(f"{what} must be a list of finite numbers or a list of rows, got {text[:40]!r}")
    return arr


def evaluate_layer(d, overrides: dict, lr: float | None) -> dict:
    from . import api
    from .layer_eval import evaluate_point
    from .layer_graph import indices
    ws = api.layer_workspace(d)
    lg = ws.lg
    at = d.at_dict
    for name, value in overrides.items():
        if hasattr(value, "shape"):
            if name not in lg.shapes or not lg.is_leaf(name):
                raise UsageError(f"--at {name}: not a leaf of the layer view", source=d.source)
            if tuple(value.shape) != tuple(lg.shapes[name]):
                raise UsageError(f"--at {name}: shape {list(value.shape)}, but {name} has shape "
                                 f"{list(lg.shapes[name])}", source=d.source)
            for idx in indices(lg.shapes[name]):
                at[lg.naming.entry_name(name, idx)] = float(value[idx])
            continue
        if name in lg.shapes and lg.is_leaf(name) and not lg.shapes[name]:
            at[lg.naming.entry_name(name, ())] = value
            continue
        e = lg.naming.entry_of(name)
        if e is None or not lg.is_leaf(e[0]):
            if name in lg.shapes and lg.is_leaf(name):
                raise UsageError(f"--at {name}: {name} has shape {list(lg.shapes[name])}: give a list",
                                 source=d.source)
            raise UsageError(f"--at {name}: not a leaf of the graph", source=d.source)
        at[name] = value
    return evaluate_point(d, ws, at, lr)


def _not_finite(result: dict) -> list[str]:
    """The names whose value, adjoint or update float64 cannot hold (printed as null / `not finite`)."""
    def holds_none(v):
        return v is None or (isinstance(v, list) and any(holds_none(x) for x in v))
    over = [k for part in ("values", "adjoints", "updated") for k, v in result.get(part, {}).items() if holds_none(v)]
    return list(dict.fromkeys(over))


def _text_number(v) -> str:
    return "not finite (beyond float64)" if v is None else repr(v)


def cmd_eval(a) -> int:
    from . import api
    d = api.load(a.file)
    view = api.view_of(d, a.view)
    overrides = {}
    for item in a.at:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--at {item!r}: write NAME=VALUE")
        overrides[name.strip()] = (_layer_value(value, f"--at {name.strip()}") if view == "layer"
                                   else _number(value, f"--at {name.strip()}"))
    lr = _number(a.lr, "--lr") if a.lr is not None else None
    r = evaluate_layer(d, overrides, lr) if view == "layer" else evaluate(d, overrides, lr)
    over = _not_finite(r)
    if over:
        shown = "null" if a.format == "json" else "'not finite'"
        sys.stderr.write(f"derivator: warning: not finite in float64 at this point (shown as {shown}): "
                         + ", ".join(over) + "\n")
    if a.format == "json":
        text = json.dumps(r, indent=1, allow_nan=False) + "\n"
    else:
        lines = [_shown(f"{r['output']} = ", r["value"]), "", "values:"]
        lines += [_shown(f"  {k} = ", v) for k, v in r["values"].items()]
        lines += ["", f"gradient (d{r['output']}/dNAME):"] + [_shown(f"  {k}: ", v) for k, v in r["gradient"].items()]
        lines += ["", "adjoints:"] + [_shown(f"  {k}: ", v) for k, v in r["adjoints"].items()]
        if "updated" in r:
            lines += ["", "updated:"] + [_shown(f"  {k} = ", v) for k, v in r["updated"].items()]
        text = "\n".join(lines) + "\n"
    write_output(text, None)
    return 0


def _shown(label: str, v) -> str:
    """A number as repr; a vector or matrix (the layer view) as NumPy prints it, summarised when large;
    what float64 cannot hold (null in the JSON) as `not finite`."""
    if not isinstance(v, list):
        return f"{label}{_text_number(v)}"
    import numpy as np
    arr = np.array([[math.nan if x is None else x for x in row] if isinstance(row, list) else
                    (math.nan if row is None else row) for row in v], dtype=float)
    text = np.array2string(arr, threshold=60, precision=9, separator=", ", prefix=label)
    return f"{label}{text}  (shape {list(arr.shape)})"


def cmd_paths(a) -> int:
    from itertools import islice

    from . import api
    from .paths import count_paths, iter_paths
    d = api.load(a.file)
    if a.view is not None and api.view_of(d, a.view) == "layer":     # paths: the scalar view unless asked
        from .layer_derivation import resolve
        name = api.layer_names(d, [a.wrt])[0]
        g = api.layer_workspace(d).lg.structure
        target, index = resolve(api.layer_workspace(d).lg, name)
        tail = [name] if index is not None else []
    else:
        name = api._check_wrt(d, [a.wrt])[0]
        g = api.graph(d)
        target, tail = name, []
    n = count_paths(g, target)
    paths = [list(p) + tail for p in islice(iter_paths(g, target), a.limit)]
    if a.format == "json":
        text = json.dumps({"output": d.output, "wrt": name, "path_count": n, "paths": paths}, indent=1) + "\n"
    else:
        lines = [f"{n} path{'s' if n != 1 else ''} from {d.output} to {name}" + (f" (first {len(paths)} shown)" if len(paths) < n else "")]
        lines += ["  " + " -> ".join(p) for p in paths]
        text = "\n".join(lines) + "\n"
    write_output(text, None)
    return 0


def cmd_compile(a) -> int:
    from . import api
    output_target(a.output, _inputs(a))
    d = api.load(a.file)
    view = api.view_of(d, a.view)                # the default view, as for derive and eval
    write_output(api.compile(d, a.wrt, view=view).source, a.output, _inputs(a))
    return 0


def cmd_check(a) -> int:
    from . import api, verdict
    output_target(a.output, _inputs(a))
    templates = _templates(a.templates)
    d = api.load(a.file)
    if a.claim:
        if len(a.claim) != len(a.wrt):
            raise UsageError(f"{len(a.wrt)} --wrt for {len(a.claim)} --claim: give them in pairs, "
                             '--wrt NAME --claim "EXPR"', source=d.source)
        claims = [verdict.make_claim(d, w, c) for w, c in zip(a.wrt, a.claim)]
    else:
        claims = list(d.claims)
        if a.wrt:
            have = {c.wrt: c for c in claims}
            missing = [w for w in a.wrt if w not in have]
            if missing:
                raise UsageError(f"the file has no claim for {', '.join(missing)}", source=d.source,
                                 hint='add it to `claims:`, or pass --claim "EXPR" after --wrt')
            claims = [have[w] for w in dict.fromkeys(a.wrt)]
    report = verdict.judge(d, claims or None)
    if a.format == "json":
        text = json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n"
    else:
        from .feedback import render_report
        text = _templated(templates, render_report, report, a.format, template_path=templates)
    write_output(text, a.output, _inputs(a))
    return 0 if report.all_correct else 3


def cmd_examples(a) -> int:
    from .spec import example_text, examples, loads
    lines = []
    for name in examples():
        d = loads(example_text(name), source=name)
        lines.append(f"{name:28} {d.title or ''}\n")
    write_output("".join(lines), None)
    return 0


def main(argv=None) -> int:
    """The console script: parse, run, and turn every outcome into an exit status and at most one line."""
    try:
        args = _parser().parse_args(argv)
        handler = {"derive": cmd_derive, "eval": cmd_eval, "paths": cmd_paths, "compile": cmd_compile,
                   "check": cmd_check, "examples": cmd_examples}[args.command]
        return handler(args)
    except KeyboardInterrupt:
        _quiet_stderr("derivator: interrupted\n")
        return 130
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
    except Exception as e:  # an internal failure: one line, no traceback unless asked
        if os.environ.get("DERIVATOR_DEBUG"):
            raise
        sys.stderr.write(f"derivator: internal error: {type(e).__name__}: {e} "
                         "(set DERIVATOR_DEBUG=1 for a traceback)\n")
        return 1


def _quiet_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    sys.exit(main())
