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
    ``--dump-eval-details``); ``invalid`` lists sample ids whose prediction was a failed or empty
    request, which must not be scored as if it were an answer.
    """

    dataset: str
    metric: str
    value: float | None
    version: str | None = None
    mode: str | None = None
    samples: dict[str, bool] | None = None
    invalid: list[str] = field(default_factory=list)

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
        return data


@dataclass
class ScoreTable:
    model: str
    scores: list[Score]
    source: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def get(self, dataset: str, metric: str) -> Score | None:
        for score in self.scores:
            if score.dataset == dataset and score.metric == metric:
                return score
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "model": self.model,
            "source": self.source,
            "provenance": self.provenance,
            "scores": [score.to_dict() for score in self.scores],
        }
