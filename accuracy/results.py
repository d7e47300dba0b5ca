"""Results: one JSON-serialisable record per check and per suite, that knows whether it passed.

Every suite kind (scores, llm, pipeline) produces a ``SuiteResult``; ``gate``, the pytest plugin
and the reports consume only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASS = "pass"
FAIL = "fail"


@dataclass
class CheckResult:
    """One judged thing (a dataset metric, a pipeline output, a golden image).

    ``message`` is what a person reads when it fails (the table); ``details`` is the JSON record.
    """

    name: str
    passed: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message, **self.details}


@dataclass
class SuiteResult:
    suite: str
    kind: str
    path: Path | None
    checks: list[CheckResult] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # bad input: the suite could not be judged (exit 2)
    skipped: str | None = None  # not run: an optional package is missing (the install hint); a folder run only

    @property
    def verdict(self) -> str:
        if self.error:
            return "error"
        if self.skipped:
            return "skipped"
        return PASS if all(check.passed for check in self.checks) else FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "kind": self.kind,
            "path": None if self.path is None else str(self.path),
            "verdict": self.verdict,
            "error": self.error,
            "skipped": self.skipped,
            "checks": [check.to_dict() for check in self.checks],
            **self.details,
        }
