"""``accuracy convert SOURCE [--out DIR] [--config-dir DIR] [--target cpu|ascend]``: ONNX models to
MINDIR with the real MindSpore Lite converter, one command for the guide's ``converter_onnx2mindir.sh``.

SOURCE is a diffusers ONNX folder, a pipeline suite or one ``.onnx`` file. Each model's ``.ini``
(``--config-dir/<model>.ini``, or the suite's ``[converter]``) sets its input shapes, gears and
precision; keys the target's converter cannot honour are named in the table. Results are cached by
content hash; ``--out`` gets ``<model>.mindir`` copies. Exit 0 when every model converted, 1 when
one failed (its row carries the converter's own error lines), 2 for bad input.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from accuracy.cli.common import emit_json, finite_float, say, warn
from accuracy.convert.options import TARGETS
from accuracy.errors import InputError
from accuracy.io import writable_folder


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="a diffusers ONNX folder, a pipeline suite .toml or an .onnx file")
    parser.add_argument("--out", metavar="DIR", help="write <model>.mindir here (default: only the cache)")
    parser.add_argument("--config-dir", metavar="DIR", help="the guide's configs folder: <model>.ini per model")
    parser.add_argument("--model", action="append", default=[], metavar="NAME", help="only this model (repeatable)")
    parser.add_argument("--target", choices=TARGETS, default="cpu",
                        help="the device the MINDIR is for (default cpu; ascend passes the .ini to converter_lite as written)")
    parser.add_argument("--python", metavar="PATH", help="the interpreter with mindspore_lite "
                        "(default: $ACCURACY_MSLITE_PYTHON, then .venv-mslite)")
    parser.add_argument("--timeout", type=_seconds, default=600.0, help="seconds per model before the converter is killed")
    parser.add_argument("--no-cache", action="store_true", help="convert again even when the cache has the result")
    parser.add_argument("--no-rewrites", action="store_true",
                        help="convert each model as it is (by default, CPU/GPU targets first get the exact "
                             "rewrites of accuracy.convert.rewrites where MindSpore Lite 2.0 cannot take an operator)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _seconds(text: str) -> float:
    """``--timeout``: seconds in (0, a week] (-1 killed every worker at once; 1e300 was a traceback)."""
    from accuracy.backends.mindspore_lite.client import MAX_TIMEOUT

    value = finite_float(text)
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds in (0, {MAX_TIMEOUT:g}]")
    return value


def run(args: argparse.Namespace) -> int:
    from accuracy.convert import convert_models
    from accuracy.convert.jobs import jobs_from_source

    jobs = jobs_from_source(args.source, config_dir=args.config_dir, only=tuple(args.model))
    if args.out:  # checked before any conversion, not after all of them
        writable_folder(Path(args.out), what="--out folder", where="--out")
    progress = (lambda text: None) if args.quiet else (lambda text: warn(f"[convert] {text}"))
    results = convert_models(jobs, python=args.python, target=args.target, timeout=args.timeout,
                             use_cache=not args.no_cache, rewrites=not args.no_rewrites, progress=progress)
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            for result in results:
                if result.mindir is not None:
                    copy = out / f"{result.name}.mindir"
                    shutil.copyfile(result.mindir, copy)
                    result.mindir = copy
        except OSError as exc:
            raise InputError(f"cannot write there: {exc.strerror or exc}", path=out) from None
    failed = [r.name for r in results if r.status == "failed"]
    record = {"verdict": "fail" if failed else "pass", "target": args.target, "failed": failed,
              "models": [r.to_json() for r in results]}
    emit_json(args, record)
    say(convert_table(record))
    return 1 if failed else 0


def convert_table(record: dict[str, Any]) -> str:
    from accuracy.report.table import render_table

    rows = [(m["name"], m["status"], f"{m['seconds']:.2f}", m["mindir"] or "-", m["config"] or "-")
            for m in record["models"]]
    lines = [render_table(("model", "status", "seconds", "mindir", "config"), rows)]
    for model in record["models"]:
        if model["status"] == "failed":
            lines.append(f"{model['name']}: failed: {model['error']}")
            lines += [f"  {line}" for line in model["log"]]
        for note in model["notes"]:
            lines.append(f"{model['name']}: {note}")
    converted = len(record["models"]) - len(record["failed"])
    lines.append(f"{converted} of {len(record['models'])} converted ({record['target']})"
                 + (f"; failed: {', '.join(record['failed'])}" if record["failed"] else ""))
    return "\n".join(lines)
