"""``accuracy demo``: the whole story on a bundled tiny Stable Diffusion pipeline, no setup.

Builds the pipeline once (cached under ``$ACCURACY_CACHE_DIR`` or ``~/.cache/accuracy``), bisects
fp32 against fp16, prints the story, writes an HTML report (``--report``; by default
``<cache>/demo/report.html``). ``--json`` is the bisect JSON. Exit 1: the all-fp16 pipeline fails its
check, as a release gate would say.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accuracy.cli.common import emit_json, exit_code_for, say, warn


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", metavar="PATH", help="HTML report path (default: <cache>/demo/report.html)")
    parser.add_argument("--no-report", action="store_true", help="write no HTML report")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the tiny pipeline even if cached")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from accuracy.cache import cache_dir
    from accuracy.cli.bisect import bisect_table, write_bisect_report
    from accuracy.demo.story import run_demo

    progress = (lambda text: None) if args.quiet else (lambda text: warn(f"[demo] {text}"))
    report = None if args.no_report else Path(args.report or cache_dir() / "demo" / "report.html")
    pictures = None if report is None else report.with_suffix(".pictures")
    result, story = run_demo(progress=progress, rebuild=args.rebuild, pictures_dir=pictures)
    emit_json(args, result)
    say(bisect_table(result))
    say()
    say(story)
    if report is not None:
        path = str(report)
        extra = [{"kind": "localize", "title": "localize: inside the culprit", "data": result["localize"]}] \
            if result.get("localize") else []
        say(f"\nHTML report: {write_bisect_report(path, result, title='accuracy demo: tiny SD img2img, fp32 vs fp16', extra=extra)}")
    return exit_code_for(result["verdict"])
