"""``accuracy bisect SUITE.toml [--json PATH] [--report PATH]``: which model moves the output.

Exit 1 iff the all-candidate pipeline fails the suite's ``[compare]``; 2 for bad input. Progress
goes to stderr, a table for people to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
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
    result = bisect_pipeline(spec, progress=progress, budget_bytes=args.budget_mb << 20, full=args.full)
    emit_json(args, result)
    say(bisect_table(result))
    if args.report:
        say(f"report: {write_bisect_report(args.report, result, title=f'bisect: {spec.name}')}")
    return exit_code_for(result["verdict"])


def bisect_table(result: Mapping[str, Any]) -> str:
    """The swap matrix for a terminal: one row per model, the headline metric of each experiment."""
    from accuracy.report.table import render_table

    rows = []
    culprits = set(result.get("culprits") or [])
    for name, views in result["models"].items():
        iso = views["isolated"]
        rows.append([
            name + (" <- culprit" if name in culprits else ""),
            f"{iso['verdict']} cos {_fmt(iso['cosine'])}",
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
    return "\n".join(lines)


def _run_cell(run: Mapping[str, Any] | None) -> str:
    if not run:
        return "-"
    if run.get("verdict") == "skipped":
        return "skipped"
    metrics = run.get("metrics", {})
    shown = [f"{key} {_fmt(metrics[key])}" for key in ("psnr", "ssim", "cosine") if key in metrics][:2]
    return f"{run['verdict']} " + ", ".join(shown)


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
