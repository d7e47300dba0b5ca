"""Helpers shared by subcommands: writing ``--json``, printing, exit codes from verdicts."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from accuracy.io import write_json_atomic

EXIT_BY_VERDICT = {"pass": 0, "fail": 1}


def emit_json(args: argparse.Namespace, result: Any) -> None:
    """Write the result to ``--json PATH`` when given (atomically)."""
    path = getattr(args, "json_path", None)
    if path:
        write_json_atomic(path, result)


def similarity_bound(text: str) -> float:
    """An argparse ``type`` for a lowest cosine or SSIM: a finite number in [-1, 1] (above 1 every
    comparison would fail)."""
    value = finite_float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is outside [-1, 1]: a similarity is at most 1, so every "
                                         "comparison would fail")
    return value


def finite_float(text: str) -> float:
    """An argparse ``type`` for thresholds and limits: a finite number (``inf``/``nan`` refused with
    the reason), so a flag can never silently disable the check it sets."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number: a threshold of inf or nan would pass "
                                         "(or fail) everything; leave the flag out to keep the default")
    return value


def say(text: str = "") -> None:
    """A line for people on stdout. A reader that went away (``accuracy bisect ... | head``) stops the
    printing, not the work: the result, ``--json`` and the exit code still come."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 suite``, ``2 suites`` (``many`` for irregular plurals)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def exit_code_for(verdict: str) -> int:
    """0 for pass, 1 for any accuracy failure (fail, non-finite, divergent ...)."""
    return EXIT_BY_VERDICT.get(verdict, 1)
