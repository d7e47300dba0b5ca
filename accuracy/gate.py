"""Run suites of every kind against their baselines. Used by ``accuracy gate`` and the pytest plugin,
so the two always agree.

Each kind has a module with ``run_suite(suite, *, update_baselines=False) -> SuiteResult``.

A suite found in a folder whose backend or runner needs an optional package that is missing is
skipped with the install hint (as pytest's ``importorskip`` does) and the rest are still gated; a
suite named explicitly is asked for on purpose, so the missing package is an error (exit 2).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from accuracy.config import Suite, discover_suites, load_suite
from accuracy.errors import AccuracyError, MissingDependencyError
from accuracy.results import SuiteResult
from accuracy.userguard import guarded

RUNNERS = {
    "scores": "accuracy.scores.suite",
    "llm": "accuracy.llm.suite",
    "pipeline": "accuracy.pipelines.suite",
}


def run_suite(suite: Suite, *, update_baselines: bool = False, skip_missing: bool = False) -> SuiteResult:
    """Judge one parsed suite. Bad input becomes ``SuiteResult.error``, never an exception; a missing
    optional package becomes ``SuiteResult.skipped`` when ``skip_missing`` (a folder run)."""
    try:
        # the verdict is never lost: whatever a suite's user code (or a bug) raises, sys.exit included,
        # is recorded as this suite's error and the other suites are still judged
        with guarded(f"suite {suite.name!r}", path=suite.path):
            module = importlib.import_module(RUNNERS[suite.kind])
            return module.run_suite(suite, update_baselines=update_baselines)
    except MissingDependencyError as exc:
        if skip_missing:
            return SuiteResult(suite=suite.name, kind=suite.kind, path=suite.path, skipped=str(exc))
        return SuiteResult(suite=suite.name, kind=suite.kind, path=suite.path, error=str(exc))
    except AccuracyError as exc:
        return SuiteResult(suite=suite.name, kind=suite.kind, path=suite.path, error=str(exc))


def run_paths(paths: Iterable[str | Path], *, update_baselines: bool = False) -> list[SuiteResult]:
    """Every suite named or found below a folder, in order. Suites found in a folder skip what needs
    a missing optional package; suites named explicitly do not."""
    found = [(path, Path(raw).is_dir()) for raw in paths for path in discover_suites([raw])]  # all checked first
    results = []
    for path, in_folder in found:
        try:
            suite = load_suite(path)
        except AccuracyError as exc:
            results.append(SuiteResult(suite=Path(path).stem, kind="?", path=Path(path), error=str(exc)))
            continue
        results.append(run_suite(suite, update_baselines=update_baselines, skip_missing=in_folder))
    return results
