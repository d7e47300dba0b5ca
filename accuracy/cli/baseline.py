"""``accuracy baseline record``: store a result as a baseline, on purpose, atomically.

``accuracy baseline record RESULT --out baselines/x.json`` stores a score result (summary CSV,
OpenCompass work dir or JSON); ``accuracy baseline record SUITE.toml`` records what the suite's own
baseline is made from (a score suite's candidate; a pipeline suite's golden outputs). Never
overwrites without ``--force``; when it does, it prints old -> new.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accuracy.baselines import record_baseline
from accuracy.cli.common import emit_json, say
from accuracy.errors import AccuracyError, ConfigError, UsageError
from accuracy.io import existing
from accuracy.scores.readers import read_scores


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    record = actions.add_parser(
        "record", help="record a baseline from a result or a suite", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=("Store what later runs are compared against: a score result as a baseline JSON, or a suite's own\n"
                     "baseline (a score suite's candidate; a pipeline suite's golden images). Never overwrites without\n"
                     "--force.\n\nexamples:\n  accuracy baseline record gpu/summary.csv --out baselines/gpu.json\n"
                     "  accuracy baseline record suites/tiny-sd-img2img/suite.toml --force"))
    record.add_argument("source", help="summary CSV, OpenCompass work dir, result JSON, or a suite .toml")
    record.add_argument("--out", help="baseline file to write (default: the suite's [baseline].path)")
    record.add_argument("--model", help="model column when the summary has several")
    record.add_argument("--label", help="hardware/backend label for the provenance, e.g. 'GPU A100 / vLLM 0.6'")
    record.add_argument("--force", action="store_true", help="replace an existing baseline (prints old -> new)")
    record.add_argument(
        "--json", metavar="PATH", dest="json_path", default=argparse.SUPPRESS, help="write the machine-readable result here"
    )


def _record_suite(args: argparse.Namespace) -> dict:
    from accuracy.config import load_suite
    from accuracy.gate import run_suite

    suite = load_suite(args.source)
    if suite.kind == "scores":
        from accuracy.scores.suite import baseline_path, candidate_of

        out = Path(args.out) if args.out else baseline_path(suite)
        return _record_table(candidate_of(suite), out, args)
    if args.out:
        raise UsageError(f"--out applies to score baselines; a {suite.kind} suite records where it says")
    if not args.force:
        raise UsageError(f"recording a {suite.kind} suite's baselines replaces them: pass --force to confirm")
    if suite.kind == "pipeline" and "golden" not in suite.data:
        raise ConfigError(
            "no [golden] section: a pipeline suite without goldens is judged against its reference run, "
            "so it has no baseline to record",
            path=suite.path,
            where="golden",
        )
    result = run_suite(suite, update_baselines=True)
    if result.error:
        raise AccuracyError(result.error)  # already names the file
    say(f"recorded baselines of suite {suite.name}")
    for line in result.details.get("baseline_updated", []):
        say(f"  {line}")
    return result.to_dict()


def _record_table(table, out: Path, args: argparse.Namespace) -> dict:
    existed = existing(out) is not None  # a name the OS refuses is one line
    changes = record_baseline(table, out, force=args.force, label=args.label)
    if existed:
        say(f"replaced {out}")
        for change in changes:
            say(f"  {change.describe()}")
        if not changes:
            say("  (no score changed)")
    else:
        say(f"recorded {out} ({len(table.scores)} scores of {table.model})")
    return {"baseline": str(out), "replaced": existed, "changes": [c.describe() for c in changes]}


def run(args: argparse.Namespace) -> int:
    if args.source.endswith(".toml"):
        result = _record_suite(args)
    else:
        if not args.out:
            raise UsageError("--out is required when recording from a result file")
        result = _record_table(read_scores(args.source, model=args.model), Path(args.out), args)
    emit_json(args, result)
    return 0
