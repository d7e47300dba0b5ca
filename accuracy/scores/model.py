"""Scores as data: one ``Score`` per (dataset, metric), collected in a ``ScoreTable``.

This is also the JSON of a result and (with ``schema`` and ``provenance``) of a baseline:
``{"schema": 1, "model", "source", "provenance": {...}, "scores": [{"dataset", "metric", "value",
"version", "samples", "invalid"}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class Score:
    """One score. ``value`` is ``None`` when the cell was missing or ``-``.

    ``samples`` maps a sample id to whether it was answered correctly (OpenCompass
    ``--dump-eval-details``, lm-evaluation-harness ``samples_*.jsonl``); ``invalid`` lists sample
    ids whose prediction was a failed or empty request, which must not be scored as if it were an
    answer. ``metric`` is ``"-"`` for a dataset the file lists without any result. ``stderr`` is the
    tool's own standard error (lm-eval), ``counts`` AISBench's (correct, total).
    """

    dataset: str
    metric: str
    value: float | None
    version: str | None = None
    mode: str | None = None
    samples: dict[str, bool] | None = None
    invalid: list[str] = field(default_factory=list)
    stderr: float | None = None
    counts: tuple[int, int] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.metric)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"dataset": self.dataset, "metric": self.metric, "value": self.value}
        if self.version is not None:
            data["version"] = self.version
        if self.mode is not None:
            data["mode"] = self.mode
        if self.samples is not None:
            data["samples"] = self.samples
        if self.invalid:
            data["invalid"] = list(self.invalid)
        if self.stderr is not None:
            data["stderr"] = self.stderr
        if self.counts is not None:
            data["counts"] = list(self.counts)
        return data


@dataclass
class ScoreTable:
    model: str
    scores: list[Score]
    source: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the reader chose (which run, which file)

    @property
    def tool(self) -> str:
        """Which tool wrote the scores: opencompass, aisbench, lm-eval (our JSON keeps its origin's)."""
        return str(self.provenance.get("tool", "opencompass"))

    def datasets(self) -> dict[str, list[Score]]:
        grouped: dict[str, list[Score]] = {}
        for score in self.scores:
            grouped.setdefault(score.dataset, []).append(score)
        return grouped

    def origin(self) -> dict[str, Any]:
        """Where the scores were read from, for the JSON: file, model, tool, run, reader notes."""
        record: dict[str, Any] = {"source": self.source, "model": self.model, "tool": self.tool}
        run = self.provenance.get("opencompass_run") or self.provenance.get("run")
        if run:
            record["run"] = run
        if self.notes:
            record["notes"] = list(self.notes)
        return record

    def describe(self) -> str:
        """Where the scores were read from, for people: file, model, tool, run."""
        origin = self.origin()
        parts = [f"model {self.model}", self.tool] + ([f"run {origin['run']}"] if "run" in origin else [])
        return f"{self.source} ({', '.join(parts)})"

    def get(self, dataset: str, metric: str) -> Score | None:
        """The score of (dataset, metric), by a dict built once per table (a scan per lookup made
        checking and recording quadratic in rows); rebuilt when ``scores`` was replaced or grew."""
        index = self.__dict__.get("_index")
        if index is None or index[0] is not self.scores or index[1] != len(self.scores):
            by_key: dict[tuple[str, str], Score] = {}
            for score in self.scores:
                by_key.setdefault(score.key, score)  # the first one, as the scan found it
            index = (self.scores, len(self.scores), by_key)
            self.__dict__["_index"] = index
        found = index[2].get((dataset, metric))
        if found is not None and found.key != (dataset, metric):  # renamed in place since: look again
            del self.__dict__["_index"]
            return self.get(dataset, metric)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "model": self.model,
            "source": self.source,
            "provenance": self.provenance,
            "scores": [score.to_dict() for score in self.scores],
        }
