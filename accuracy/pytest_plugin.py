"""The pytest plugin: ``pytest suites/`` collects every suite file's checks as test items.

A suite runs once (through ``accuracy.gate.run_suite``, exactly as ``accuracy gate`` runs it) and
each of its checks is one item whose failure message is the check's table. Score suites know their
checks from the baseline before running; other kinds yield one item per check once run. Baselines
are written only with ``--accuracy-update-baselines``. As with ``accuracy gate``, a suite collected
from a folder that needs a missing optional package is skipped with the install hint (like
``pytest.importorskip``); a suite file named on the command line fails instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accuracy.config.suite import is_manual_suite, is_suite_file
from accuracy.testing.image_regression import image_regression  # noqa: F401  (the users' fixture)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("accuracy", "accuracy validation suites")
    group.addoption(
        "--accuracy-update-baselines",
        action="store_true",
        default=False,
        help="record baselines and golden outputs from this run instead of comparing (the only way a pytest run writes them)",
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    if file_path.suffix != ".toml" or file_path.name == "pyproject.toml" or not is_suite_file(file_path):
        return None
    named = any(Path(arg.split("::")[0]).resolve() == file_path.resolve() for arg in parent.config.args)
    if is_manual_suite(file_path) and not named:
        return None  # like `accuracy gate FOLDER`: a manual suite runs only when named
    suite_file = SuiteFile.from_parent(parent, path=file_path)
    suite_file.named = named
    return suite_file


class SuiteError(Exception):
    """The suite could not be judged (bad input); shown as one line, not a traceback."""


class SuiteFile(pytest.File):
    _result = None
    named = False  # named on the command line: a missing optional package fails instead of skipping

    def collect(self):
        from accuracy.config import load_suite
        from accuracy.errors import AccuracyError

        try:
            self.suite = load_suite(self.path)
            names = expected_checks(self.suite)
        except AccuracyError as exc:
            yield CheckItem.from_parent(self, name="suite", check_name=None, error=str(exc))
            return
        if names is None:
            names = [check.name for check in self.result().checks] or [None]
        for name in names:
            yield CheckItem.from_parent(self, name=name or "suite", check_name=name)

    def result(self):
        if self._result is None:
            from accuracy.gate import run_suite

            update = self.config.getoption("accuracy_update_baselines", default=False)
            self._result = run_suite(self.suite, update_baselines=update, skip_missing=not self.named)
        return self._result


def expected_checks(suite) -> list[str] | None:
    """Check names known before running: a score suite's baseline rows. None when unknown."""
    if suite.kind != "scores":
        return None
    from accuracy.baselines import load_baseline
    from accuracy.scores.suite import baseline_path

    path = baseline_path(suite)
    if not path.exists():
        return None  # running reports the missing baseline (or records it with --accuracy-update-baselines)
    return [f"{s.dataset}/{s.metric}" for s in load_baseline(path).scores]


class CheckItem(pytest.Item):
    def __init__(self, *, check_name: str | None, error: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.check_name = check_name
        self.error = error

    def runtest(self) -> None:
        if self.error:
            raise SuiteError(self.error)
        result = self.parent.result()
        if result.skipped:
            pytest.skip(result.skipped)
        if result.error:
            raise SuiteError(result.error)
        if self.check_name is None:
            failed = [c for c in result.checks if not c.passed]
            if failed:
                raise SuiteError("\n\n".join(f"{c.name}:\n{c.message}" for c in failed))
            return
        check = next((c for c in result.checks if c.name == self.check_name), None)
        if check is None:
            raise SuiteError(f"the suite produced no check named {self.check_name}")
        if not check.passed:
            raise SuiteError(check.message or f"{check.name} failed")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SuiteError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.parent.path.name}::{self.name}"
