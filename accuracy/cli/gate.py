"""``accuracy gate [SUITES...]``: run every check of the given suites; the exit code gates a release.

0 when every check passes, 1 when any accuracy check fails, 2 when a suite cannot be judged
(bad input). A suite found in a folder that needs a missing optional package (mindspore, say) is
skipped with the install hint and the rest are gated; a suite named explicitly that needs one is
exit 2. ``--json`` writes every suite's result, ``--junit`` a JUnit XML for CI systems.
"""

from __future__ import annotations

import argparse

from accuracy.cli.common import emit_json, plural, say, warn
from accuracy.gate import run_paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="*", default=["suites"], help="suite files or folders (default: suites/)")
    parser.add_argument("--junit", metavar="PATH", help="write a JUnit XML report here")
    parser.add_argument("--report", metavar="PATH", help="write a self-contained HTML report here")


def run(args: argparse.Namespace) -> int:
    results = run_paths(args.suites)
    if not results:
        warn(f"accuracy gate: no suites found in {', '.join(args.suites)}")
        emit_json(args, {"verdict": "error", "suites": [], "error": "no suites found"})
        return 2
    for result in results:
        passed = sum(1 for c in result.checks if c.passed)
        if result.error:
            say(f"[ERROR] {result.suite}: {result.error}")
            continue
        if result.skipped:
            say(f"[SKIPPED] {result.suite}: {result.skipped}")
            continue
        counts = result.details.get("counts")
        if counts:  # score suites: a baseline '-' row was never compared, so it is not counted as passing
            tally = f"{counts['aligned']}/{counts['compared']} compared checks pass"
            if counts["not_compared"]:
                tally += f", {counts['not_compared']} not compared"
        else:
            tally = f"{passed}/{len(result.checks)} checks pass"
        say(f"[{result.verdict.upper()}] {result.suite} ({result.kind}): {tally}")
        table = result.details.get("table")
        if table:
            say("\n".join("    " + line for line in table.splitlines()))
        else:
            for check in result.checks:
                if not check.passed:
                    say(f"    {check.name}: {check.message.splitlines()[-1] if check.message else 'failed'}")
    gated = [r for r in results if not r.skipped]
    skipped = len(results) - len(gated)
    if not gated:
        verdict = "error"  # nothing was judged: a release gate must not pass on that
    elif any(r.error for r in gated):
        verdict = "error"
    else:
        verdict = "pass" if all(r.verdict == "pass" for r in gated) else "fail"
    tail = f", {skipped} skipped (missing packages; install them to gate those too)" if skipped else ""
    say(f"\ngate: {verdict.upper()} ({plural(len(gated), 'suite')} gated{tail})")
    if not gated:
        warn("accuracy gate: every suite was skipped, nothing was gated")
    payload = {"verdict": verdict, "suites": [r.to_dict() for r in results]}
    emit_json(args, payload)
    if args.junit:
        from accuracy.report.junit import write_junit

        write_junit(args.junit, results)
    if args.report:
        from accuracy.report.html import write_report

        write_report(args.report, [r.to_dict() for r in results], title="accuracy gate")
    return {"pass": 0, "fail": 1}.get(verdict, 2)
