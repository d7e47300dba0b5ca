"""``accuracy run SUITE.toml [--work-dir DIR] [--resume] [--update-baselines] [--json PATH] [--report PATH]``.

Runs an ``[llm]`` suite: OpenCompass against the served model, then the suite's baseline check.
The scores land in ``<work dir>/<timestamp>/accuracy_scores.json`` (what ``accuracy check`` reads);
``--json`` gets the judged result. Exit 0 pass, 1 accuracy failure (including failed or empty
requests beyond the suite's ``max_invalid``), 2 bad input (found before OpenCompass starts).
"""

from __future__ import annotations

import argparse

from accuracy.cli.common import emit_json, exit_code_for, say, warn
from accuracy.config import load_suite
from accuracy.errors import UsageError
from accuracy.io import writable_folder


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="an LLM suite file ([llm] section)")
    parser.add_argument("--work-dir", metavar="DIR", help="OpenCompass work dir (default: the suite's llm.work_dir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest run in the work dir without re-requesting finished samples")
    parser.add_argument("--update-baselines", action="store_true",
                        help="record these scores as the suite's baseline (then judge against them)")
    parser.add_argument("--report", metavar="PATH", help="write a self-contained HTML report here")


def run(args: argparse.Namespace) -> int:
    from accuracy.llm.suite import run_suite

    suite = load_suite(args.suite)
    if suite.kind != "llm":
        raise UsageError(f"{args.suite} is a {suite.kind} suite; `accuracy run` takes [llm] suites "
                         "(use `accuracy gate` for the others)")
    if args.work_dir is not None:  # a file there, or no permission: one line naming the flag, not a traceback
        writable_folder(args.work_dir, what="work dir", where="--work-dir")
    result = run_suite(suite, update_baselines=args.update_baselines, work_dir=args.work_dir,
                       resume=args.resume, progress=warn)
    predictions = result.details.get("predictions", {})
    for dataset, info in predictions.items():
        bad = len(info["failed"]) + len(info["empty"])
        if bad:
            warn(f"  {dataset}: {len(info['failed'])} failed and {len(info['empty'])} empty predictions "
                 f"are not scored as answers (samples {', '.join((info['failed'] + info['empty'])[:10])}"
                 f"{' ...' if bad > 10 else ''})")
        reasons = info.get("reasons") or {}
        for sample, reason in list(reasons.items())[:5]:  # the server's own words, e.g. vLLM's 400 message
            warn(f"    sample {sample}: {reason}")
        if len(reasons) > 5:
            warn(f"    ... {len(reasons) - 5} more in the JSON result (predictions.{dataset}.reasons)")
    passed = sum(1 for check in result.checks if check.passed)
    say(f"[{result.verdict.upper()}] {result.suite}: {passed}/{len(result.checks)} checks pass")
    if result.details.get("table"):
        say("\n".join("    " + line for line in result.details["table"].splitlines()))
    say(f"scores: {result.details.get('scores')}")
    emit_json(args, result.to_dict())
    if args.report:
        from accuracy.report.html import write_report

        write_report(args.report, [result.to_dict()], title=f"accuracy run {result.suite}")
    return exit_code_for(result.verdict)
