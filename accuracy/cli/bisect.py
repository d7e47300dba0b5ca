"""``accuracy bisect SUITE.toml [--json PATH] [--report PATH] [--localize [--suggest-fp32]]``: which model
moves the output, and with ``--localize`` which operator inside it.

Exit 1 iff the all-candidate pipeline fails the suite's ``[compare]`` (also when a repair is found: the
candidate as converted still fails); 2 for bad input. Progress goes to stderr, a table for people to
stdout. Localize files (each culprit's whole localize JSON, the repaired model, converter snippets) go
to ``--localize-out``, by default ``<--json without suffix>.localize/`` (else next to ``--report``,
else under the cache dir).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accuracy.cli.common import emit_json, exit_code_for, say, warn
from accuracy.errors import ConfigError, UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", metavar="SUITE.toml", help="a pipeline suite ([pipeline], [reference], [candidate])")
    parser.add_argument("--report", metavar="PATH", help="also write an HTML report here")
    parser.add_argument("--budget-mb", type=int, default=2048,
                        help="memory for recorded model calls before they spill to disk (default 2048)")
    parser.add_argument("--full", action="store_true",
                        help="run leave_out for every model, also when a culprit already fails alone")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--localize", action="store_true",
                        help="then find the operator where error enters each culprit, on its recorded inputs")
    parser.add_argument("--suggest-fp32", action="store_true",
                        help="(implies --localize) then the smallest set of nodes to keep in fp32 so that the "
                             "whole pipeline passes, verified by running it")
    parser.add_argument("--call", type=int, metavar="N",
                        help="localize the culprit's recorded call N (default: the call worst in isolation)")
    parser.add_argument("--localize-out", metavar="DIR", help="where localize and repair files go (default: beside --json, else beside "
                             "--report, else under the cache folder)")


def run(args: argparse.Namespace) -> int:
    from accuracy.bisect.bisector import bisect_pipeline
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec

    if args.budget_mb < 0:
        raise UsageError("--budget-mb must be >= 0")
    suite = load_suite(args.suite)
    if suite.kind != "pipeline":
        raise ConfigError(f"bisect needs a [pipeline] suite, this one is a {suite.kind} suite", path=suite.path)
    spec = load_pipeline_spec(suite)
    progress = (lambda text: None) if args.quiet else (lambda text: warn(f"[bisect] {text}"))
    request = None
    if args.call is not None and not (args.localize or args.suggest_fp32):
        raise UsageError("--call applies to --localize / --suggest-fp32")
    if args.localize or args.suggest_fp32:
        from accuracy.bisect.localize import LocalizeRequest

        request = LocalizeRequest(suggest_fp32=args.suggest_fp32, out_dir=_localize_out(args, spec.name),
                                  call=args.call)
    pictures = Path(args.report).with_suffix(".pictures") if args.report else None
    result = bisect_pipeline(spec, progress=progress, budget_bytes=args.budget_mb << 20, full=args.full,
                             localize=request, pictures_dir=pictures)
    emit_json(args, result)
    say(bisect_table(result))
    if args.report:
        extra = [{"kind": "localize", "title": f"localize: inside {model}", "data": data}
                 for model, data in (request.full.items() if request else [])]
        say(f"report: {write_bisect_report(args.report, result, title=f'bisect: {spec.name}', extra=extra)}")
    return exit_code_for(result["verdict"])


def _localize_out(args: argparse.Namespace, suite_name: str) -> Path:
    if args.localize_out:
        return Path(args.localize_out)
    beside = getattr(args, "json_path", None) or args.report
    if beside:
        path = Path(beside)
        return path.with_name(path.stem + ".localize")
    from accuracy.bisect.localize import safe_name
    from accuracy.cache import cache_dir

    return cache_dir() / "bisect" / safe_name(suite_name, fallback="suite") / "localize"


def bisect_table(result: Mapping[str, Any]) -> str:
    """The swap matrix for a terminal: one row per model, the headline metric of each experiment."""
    from accuracy.report.table import render_table

    rows = []
    culprits = set(result.get("culprits") or [])
    for name, views in result["models"].items():
        rows.append([
            name + (" <- culprit" if name in culprits else ""),
            _run_cell(views["isolated"]),
            _run_cell(views.get("swap_in")),
            _run_cell(views.get("leave_out")),
        ])
    noise = result.get("noise_floor", {})
    lines = [
        f"bisect {result['suite']}: {result['reference_backend']} -> {result['candidate_backend']}",
        render_table(["model", "isolated (own output)", "swap_in (pipeline)", "leave_out (pipeline)"], rows),
        f"all models on the candidate: {_run_cell(result.get('all_candidate'))}",
        f"noise floor (reference twice): {_run_cell(noise)}",
        f"verdict: {result['verdict']}; culprits: {', '.join(result['culprits']) or 'none'}"
        + (f"; smallest failing combination: {', '.join(result['smallest_failing'])}"
           if result.get("smallest_failing") and not result["culprits"] else ""),
    ]
    lines += [f"note: {note}" for note in result.get("notes", [])]
    for name, views in result["models"].items():
        if "localize" in views:
            lines += localize_lines(name, views["localize"])
    if result.get("repair"):
        lines.append(repair_line(result["repair"]))
    return "\n".join(lines)


def localize_lines(model: str, found: Mapping[str, Any]) -> list[str]:
    """What ``--localize`` found inside one culprit, for people."""
    if found.get("verdict") in ("skipped", "error"):
        return [f"localize {model}: {found['verdict']}: {found.get('reason') or found.get('error')}"]
    first = found.get("first_divergent")
    counts = found["tensors"]
    if first:
        where = (f"error enters at {first['node']} ({first['op_type']}), tensor {first['tensor']}; "
                 f"{counts['inherited']} downstream tensor(s) only inherit it")
    elif counts["diverged"]:
        where = f"{counts['diverged']} tensor(s) diverge but no single node introduces it: the error accumulates"
    else:
        where = "no tensor diverges" + (" under the stand-in" if found.get("stand_in") else "")
    lines = [f"localize {model} ({found['candidate']}, on its {found['inputs']}): {where}"]
    if found.get("stand_in"):
        lines.append(f"  stand-in: {found['stand_in']}")
    repair = found.get("repair")
    if repair:
        if repair["passed"] and repair["keep_fp32"]:
            kept = ", ".join(f"{n} ({repair['op_types'].get(n, '?')})" for n in repair["keep_fp32"])
            metrics = (repair.get("pipeline") or {}).get("metrics", {})
            shown = ", ".join(f"{k} {_fmt(metrics[k])}" for k in ("psnr", "ssim", "cosine") if k in metrics)
            shown += "; " if shown else ""  # exact and text outputs have none of these metrics
            lines.append(f"  keep in fp32: {kept} -> the pipeline passes ({shown}verified by running it, "
                         f"{repair['pipeline_runs']} pipeline run(s))")
        else:
            lines.append(f"  repair: {repair.get('note') or 'none found'}")
        if repair.get("stand_in"):
            lines.append(f"  ({repair['stand_in']})")
        for kind, path in repair.get("files", {}).items():
            lines.append(f"  {kind}: {path}")
    if found.get("file"):
        lines.append(f"  localize JSON: {found['file']}")
    return lines


def repair_line(repair: Mapping[str, Any]) -> str:
    if repair["passed"]:
        return f"repaired pipeline (verified): {repair['configuration']}: {_run_cell(repair.get('pipeline'))}"
    return f"repair: {repair.get('note') or _run_cell(repair.get('pipeline'))}"


def _run_cell(run: Mapping[str, Any] | None) -> str:
    from accuracy.report.table import bisect_cell

    return bisect_cell(run)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == float("inf"):
            return "inf"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.3g}"
    return str(value)


def write_bisect_report(path: str, result: Mapping[str, Any], *, title: str, extra: list | None = None) -> str:
    """The HTML report (``accuracy.report.html``) with the bisect section."""
    from accuracy.report.html import write_report

    sections = [{"kind": "bisect", "title": title, "data": dict(result)}] + list(extra or [])
    return str(write_report(path, sections, title=title))
