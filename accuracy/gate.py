"""Run suites of every kind against their baselines. Used by ``accuracy gate`` and the pytest plugin,
so the two always agree.

Each kind has a module with ``run_suite(suite, *, update_baselines=False) -> SuiteResult``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from accuracy.config import Suite, discover_suites, load_suite
from accuracy.errors import AccuracyError
from accuracy.results import SuiteResult
from accuracy.userguard import guarded

RUNNERS = {
    "scores": "accuracy.scores.suite",
    "llm": "accuracy.llm.suite",
    "pipeline": "accuracy.pipelines.suite",
}


def run_suite(suite: Suite, *, update_baselines: bool = False) -> SuiteResult:
    """Judge one parsed suite. Bad input becomes ``SuiteResult.error``, never an exception."""
    try:
        # the verdict is never lost: whatever a suite's user code (or a bug) raises, sys.exit included,
        # is recorded as this suite's error and the other suites are still judged
        with guarded(f"suite {suite.name!r}", path=suite.path):
            module = importlib.import_module(RUNNERS[suite.kind])
            return module.run_suite(suite, update_baselines=update_baselines)
    except AccuracyError as exc:
        return SuiteResult(suite=suite.name, kind=suite.kind, path=suite.path, error=str(exc))


def run_paths(paths: Iterable[str | Path], *, update_baselines: bool = False) -> list[SuiteResult]:
    results = []
    for path in discover_suites(paths):
        try:
            suite = load_suite(path)
        except AccuracyError as exc:
            results.append(SuiteResult(suite=Path(path).stem, kind="?", path=Path(path), error=str(exc)))
            continue
        results.append(run_suite(suite, update_baselines=update_baselines))
    return results
