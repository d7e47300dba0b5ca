"""``accuracy check``: OpenCompass scores of a candidate against a baseline, by the guide's 1 % rule."""

from __future__ import annotations

import argparse
import math

from accuracy.cli.common import emit_json, exit_code_for, say
from accuracy.compare.scores import ScorePolicy, Tolerance, compare_scores
from accuracy.errors import UsageError
from accuracy.report.table import score_table
from accuracy.scores.readers import read_scores


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", required=True, metavar="B", help="summary CSV, OpenCompass work dir, or JSON")
    parser.add_argument("--candidate", required=True, metavar="C", help="summary CSV, OpenCompass work dir, or JSON")
    parser.add_argument("--model", help="model column of the candidate summary (and of the baseline, unless --baseline-model)")
    parser.add_argument("--baseline-model", help="model column of the baseline summary")
    parser.add_argument("--rel-tol", type=float, default=None, help="relative tolerance, a fraction (default 0.01 = 1%%)")
    parser.add_argument("--abs-tol", type=float, default=None, help="absolute tolerance in score units (passes within either)")
    parser.add_argument("--allow-improvement", action="store_true", help="a candidate better than the baseline passes")
    parser.add_argument("--ignore-version", action="store_true", help="compare even when prompt versions differ")
    parser.add_argument(
        "--require-significance",
        action="store_true",
        help="fail a check only when beyond tolerance and significant (McNemar on per-sample results)",
    )
    parser.add_argument("--suite", metavar="SUITE.toml", help="take tolerances (incl. per-dataset) from this suite's [tolerance]")


def policy_from_args(args: argparse.Namespace) -> ScorePolicy:
    for flag, value in (("--rel-tol", args.rel_tol), ("--abs-tol", args.abs_tol)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{flag} must be a finite number >= 0, got {value}")
    if args.suite:
        from dataclasses import replace

        from accuracy.config import load_suite
        from accuracy.scores.suite import policy_from_suite

        clashing = [flag for flag, given in (("--rel-tol", args.rel_tol is not None), ("--abs-tol", args.abs_tol is not None),
                                             ("--allow-improvement", args.allow_improvement)) if given]
        if clashing:
            raise UsageError(f"{', '.join(clashing)} and --suite both set tolerances: put them in the suite's [tolerance]")
        policy = policy_from_suite(load_suite(args.suite))
        return replace(
            policy,
            ignore_version=policy.ignore_version or args.ignore_version,
            require_significance=policy.require_significance or args.require_significance,
        )
    return ScorePolicy(
        default=Tolerance(
            rel=0.01 if args.rel_tol is None else args.rel_tol, abs=args.abs_tol, allow_improvement=args.allow_improvement
        ),
        require_significance=args.require_significance,
        ignore_version=args.ignore_version,
    )


def run(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    baseline = read_scores(args.baseline, model=args.baseline_model or args.model)
    candidate = read_scores(args.candidate, model=args.model)
    comparison = compare_scores(baseline, candidate, policy)
    say(score_table(comparison.checks))
    if comparison.extra:
        say(f"not in the baseline (not judged): {', '.join(comparison.extra)}")
    failed = [c for c in comparison.checks if not c.passed]
    say(
        f"\n{comparison.verdict.upper()}: {len(comparison.checks) - len(failed)} of {len(comparison.checks)} "
        "checks aligned" + (f"; failing: {', '.join(f'{c.dataset}/{c.metric}' for c in failed)}" if failed else "")
    )
    result = comparison.to_dict()
    result["baseline"] = {"source": baseline.source, "model": baseline.model}
    result["candidate"] = {"source": candidate.source, "model": candidate.model}
    emit_json(args, result)
    return exit_code_for(comparison.verdict)
