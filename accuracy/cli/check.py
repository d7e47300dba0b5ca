"""``accuracy check``: scores of a candidate against a baseline, by the guide's 1 % rule.

Each side is whatever the user brings: an OpenCompass/AISBench summary or work dir, an
lm-evaluation-harness results file or output folder, or this project's JSON.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from accuracy.baselines import check_baseline
from accuracy.cli.common import emit_json, exit_code_for, say
from accuracy.compare.scores import ScorePolicy, Tolerance, compare_scores, parse_rel_tol
from accuracy.errors import UsageError
from accuracy.report.table import score_table
from accuracy.scores.readers import read_scores


def configure(parser: argparse.ArgumentParser) -> None:
    sources = "OpenCompass/AISBench summary (.csv/.txt/.md) or work dir, lm-eval results_*.json or output folder, or JSON"
    parser.add_argument("--baseline", required=True, metavar="B", help=sources)
    parser.add_argument("--candidate", required=True, metavar="C", help=sources)
    parser.add_argument("--model", help="model column of the candidate summary (and of the baseline, unless --baseline-model)")
    parser.add_argument("--baseline-model", help="model column of the baseline summary")
    parser.add_argument(
        "--rel-tol", default=None, metavar="TOL", help="relative tolerance: 1%% or the fraction 0.01 (the default)"
    )
    parser.add_argument("--abs-tol", type=float, default=None, help="absolute tolerance in score units (passes within either)")
    parser.add_argument("--allow-improvement", action="store_true", help="a candidate better than the baseline passes")
    parser.add_argument("--ignore-version", action="store_true", help="compare even when prompt versions differ")
    parser.add_argument(
        "--require-significance",
        action="store_true",
        help="fail a check only when beyond tolerance and significant (McNemar on per-sample results)",
    )
    parser.add_argument(
        "--suite",
        metavar="SUITE.toml",
        help="take tolerances (incl. per-dataset) from this suite's [tolerance] and name mappings from its [names]",
    )


def policy_from_args(args: argparse.Namespace) -> ScorePolicy:
    rel_tol = None
    if args.rel_tol is not None:
        try:
            rel_tol = parse_rel_tol(args.rel_tol)
        except ValueError as exc:
            raise UsageError(f"--rel-tol {exc}") from None
    if args.abs_tol is not None and not (math.isfinite(args.abs_tol) and args.abs_tol >= 0):
        raise UsageError(f"--abs-tol must be a finite number >= 0, got {args.abs_tol}")
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
            rel=0.01 if rel_tol is None else rel_tol, abs=args.abs_tol, allow_improvement=args.allow_improvement
        ),
        require_significance=args.require_significance,
        ignore_version=args.ignore_version,
    )


def run(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    baseline = check_baseline(read_scores(args.baseline, model=args.baseline_model or args.model))
    candidate = read_scores(args.candidate, model=args.model)
    comparison = compare_scores(baseline, candidate, policy)
    for side, table in (("baseline", baseline), ("candidate", candidate)):
        say(f"{side + ':':<10} {table.describe()}")
        for note in table.notes:
            say(f"{'':<10} {note}")
    say("")
    say(score_table(comparison.checks))
    if comparison.extra:
        say(f"not in the baseline (not judged): {', '.join(comparison.extra)}")
    say("\n" + comparison.summary())
    if not args.suite:
        for hint in suite_hints(args.baseline):
            say(hint)
    result = comparison.to_dict()
    result["baseline"] = baseline.origin()
    result["candidate"] = candidate.origin()
    emit_json(args, result)
    return exit_code_for(comparison.verdict)



def suite_hints(baseline: str) -> list[str]:
    """A line for each suite (under ``./suites`` or beside the baseline's folder) whose ``[baseline]`` is
    this file and whose ``[tolerance]`` differs from the command line's default, naming ``--suite``."""
    from accuracy.config import discover_suites, load_suite
    from accuracy.errors import AccuracyError
    from accuracy.scores.suite import baseline_path, policy_from_suite

    target = Path(baseline).resolve()
    roots = {Path("suites").resolve(), target.parent.parent / "suites"}
    hints = []
    for root in sorted(r for r in roots if r.is_dir()):
        for path in discover_suites([root]):
            try:
                suite = load_suite(path)
                if suite.kind not in ("scores", "llm") or baseline_path(suite) != target:
                    continue
                policy = policy_from_suite(suite)
            except AccuracyError:
                continue  # a broken suite is the gate's to report, not this hint's
            rules = [f"default {_rule(policy.default)}"] + [f"{name} {_rule(tolerance)}"
                                                            for name, tolerance in policy.per_dataset.items()]
            if rules == [f"default {_rule(ScorePolicy().default)}"]:
                continue
            shown = _relative(path)
            hints.append(f"note: {shown} judges this baseline with its own tolerances ({', '.join(rules)}), as "
                         f"`accuracy gate` does; add --suite {shown} to compare the same way")
    return hints


def _rule(tolerance: Tolerance) -> str:
    parts = [f"±{tolerance.rel * 100:g} %"] if tolerance.rel is not None else []
    parts += [f"±{tolerance.abs:g}"] if tolerance.abs is not None else []
    return " or ".join(parts) + (" (improvement allowed)" if tolerance.allow_improvement else "")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
