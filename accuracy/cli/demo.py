"""``accuracy demo``: the whole story on a bundled tiny Stable Diffusion pipeline, no setup.

Builds the pipeline once (cached under ``$ACCURACY_CACHE_DIR`` or ``~/.cache/accuracy``), bisects
fp32 against fp16, prints the story, writes an HTML report (``--report``; by default
``<cache>/demo/report.html``). ``--json`` is the bisect JSON (plus the story's steps). Exit 1: the
all-fp16 pipeline fails its check, as a release gate would say.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accuracy.cli.common import emit_json, exit_code_for, say, warn

TITLE = "accuracy demo: tiny Stable Diffusion img2img, fp32 against fp16"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", metavar="PATH", help="HTML report path (default: <cache>/demo/report.html)")
    parser.add_argument("--no-report", action="store_true", help="write no HTML report")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the tiny pipeline even if cached")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from accuracy.cache import cache_dir
    from accuracy.cli.bisect import bisect_table
    from accuracy.demo.story import run_demo

    progress = (lambda text: None) if args.quiet else (lambda text: warn(f"[demo] {text}"))
    report = None if args.no_report else Path(args.report or cache_dir() / "demo" / "report.html")
    pictures = None if report is None else report.with_suffix(".pictures")
    localize_dir = None if report is None else report.with_suffix(".localize")
    result, story = run_demo(progress=progress, rebuild=args.rebuild, pictures_dir=pictures, localize_dir=localize_dir)
    emit_json(args, result)
    say(bisect_table(result))
    say()
    say(story)
    if report is not None:
        say(f"\nHTML report (the same story, with the pictures): {write_demo_report(report, result)}")
    return exit_code_for(result["verdict"])


def write_demo_report(path: Path, result: dict) -> str:
    """The story with the pictures first, then the swap matrix and what localize saw inside the culprit."""
    from accuracy.report.html import write_report

    sections = [{"kind": "demo", "title": "What happened, step by step", "data": result},
                {"kind": "bisect", "title": "Which model: the swap matrix", "data": result}]
    if result.get("localize"):
        culprit = (result.get("culprits") or ["the culprit"])[0]
        sections.append({"kind": "localize", "title": f"Which operator: inside {culprit}", "data": result["localize"]})
    return str(write_report(path, sections, title=TITLE))
