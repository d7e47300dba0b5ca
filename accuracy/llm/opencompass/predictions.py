"""Read OpenCompass's predictions to find answers that are not answers: failed or empty requests.

OpenCompass scores an empty string (and, without our model classes, whatever a failing request
left behind) as a wrong answer, so a flaky endpoint looks like a less accurate model. The
predictions live in ``<run>/predictions/<model>/<dataset>.json`` (``{"0": {"prediction": ...}}``;
``<dataset>_<k>.json`` parts when a partitioner split the dataset) and, for an interrupted
dataset, in the ``tmp_<dataset>.jsonl`` checkpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from accuracy.errors import InputError
from accuracy.scores.model import Score

# Kept equal to oc_models.FAILED_PREFIX (that module is imported by OpenCompass's interpreter only).
FAILED_PREFIX = "[accuracy: request failed"


@dataclass
class PredictionReport:
    """Invalid predictions of one dataset: which sample ids, and why."""

    dataset: str
    total: int
    failed: list[str] = field(default_factory=list)   # the request failed after every retry
    empty: list[str] = field(default_factory=list)    # the server answered nothing
    complete: bool = True                             # False: no final predictions file
    reasons: dict[str, str] = field(default_factory=dict)  # failed id -> the server's error ("HTTP 400: ...")

    @property
    def invalid(self) -> list[str]:
        return sorted(set(self.failed) | set(self.empty), key=_id_order)

    def describe(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} failed request{'s' if len(self.failed) > 1 else ''}")
        if self.empty:
            parts.append(f"{len(self.empty)} empty answer{'s' if len(self.empty) > 1 else ''}")
        if not self.complete:
            parts.append("no final predictions (inference did not finish)")
        return f"{self.dataset}: " + (", ".join(parts) or f"all {self.total} predictions valid")


def classify(prediction: object) -> str | None:
    """``"failed"``, ``"empty"`` or None (a real answer) for one prediction value."""
    if isinstance(prediction, list):  # several return sequences: invalid if any is
        kinds = [classify(item) for item in prediction]
        return next((kind for kind in kinds if kind), None) if prediction else "empty"
    if isinstance(prediction, dict):
        prediction = prediction.get("prediction")
    if prediction is None:
        return "empty"
    text = str(prediction)
    if text.startswith(FAILED_PREFIX):
        return "failed"
    if not text.strip():
        return "empty"
    return None


def failure_reason(prediction: object) -> str | None:
    """The error recorded in a failed prediction (``[accuracy: request failed: HTTP 400: ...]``)."""
    if isinstance(prediction, list):
        return next((r for r in map(failure_reason, prediction) if r), None)
    if isinstance(prediction, dict):
        prediction = prediction.get("prediction")
    text = str(prediction) if prediction is not None else ""
    if not text.startswith(FAILED_PREFIX):
        return None
    reason = text[len(FAILED_PREFIX):].removeprefix(":").removesuffix("]").strip()
    return reason or None


def read_predictions(folder: Path, dataset: str) -> tuple[dict[str, object], bool]:
    """A dataset's predictions by sample id, and whether they are final (not a checkpoint)."""
    final = folder / f"{dataset}.json"
    if final.exists():
        return _read_entries(final), True
    parts = sorted(folder.glob(f"{dataset}_*.json"), key=lambda p: _part_number(p, dataset))
    parts = [p for p in parts if _part_number(p, dataset) >= 0]
    if parts:
        merged: dict[str, object] = {}
        for part in parts:  # parts number their samples from 0: continue the count
            for key, value in sorted(_read_entries(part).items(), key=lambda kv: _id_order(kv[0])):
                merged[str(len(merged))] = value
        return merged, True
    checkpoint = folder / f"tmp_{dataset}.jsonl"
    if checkpoint.exists():
        entries: dict[str, object] = {}
        for number, line in enumerate(checkpoint.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():  # {"idx": 3, "origin_prompt": ..., "prediction": ...}
                try:
                    item = json.loads(line)
                    entries[str(item.pop("idx"))] = item
                except (ValueError, AttributeError, KeyError):
                    raise InputError("malformed checkpoint line", path=checkpoint, where=f"line {number}") from None
        return entries, False
    return {}, False


def check_predictions(run_dir: Path, model_abbr: str, dataset: str) -> PredictionReport:
    """Classify every prediction of ``dataset`` in an OpenCompass run folder."""
    entries, complete = read_predictions(run_dir / "predictions" / model_abbr, dataset)
    report = PredictionReport(dataset=dataset, total=len(entries), complete=complete)
    for sample_id, entry in sorted(entries.items(), key=lambda kv: _id_order(kv[0])):
        kind = classify(entry.get("prediction") if isinstance(entry, dict) else entry)
        if kind == "failed":
            report.failed.append(sample_id)
            reason = failure_reason(entry.get("prediction") if isinstance(entry, dict) else entry)
            if reason:
                report.reasons[sample_id] = reason
        elif kind == "empty":
            report.empty.append(sample_id)
    return report


def exclude_invalid(score: Score) -> bool:
    """Re-score ``score`` over its valid samples only, when its value is the percentage of correct
    per-sample flags (an accuracy): a failed request is then neither right nor wrong. Other metrics
    are left as OpenCompass computed them. Returns whether the value changed hands."""
    if not score.invalid or not score.samples or score.value is None:
        return False
    flags = score.samples
    if abs(score.value - 100.0 * sum(flags.values()) / len(flags)) > 0.01:
        return False  # not an accuracy over these flags: leave it
    invalid = set(score.invalid)
    valid = {key: flag for key, flag in flags.items() if key not in invalid}
    score.samples = valid
    score.value = 100.0 * sum(valid.values()) / len(valid) if valid else None
    return True


def _read_entries(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read OpenCompass predictions: {exc}", path=path) from None
    if isinstance(data, list):
        return {str(i): item for i, item in enumerate(data)}
    if not isinstance(data, dict):
        raise InputError("OpenCompass predictions must be an object keyed by sample index", path=path)
    return {str(k): v for k, v in data.items()}


def _part_number(path: Path, dataset: str) -> int:
    match = re.fullmatch(re.escape(dataset) + r"_(\d+)\.json", path.name)
    return int(match.group(1)) if match else -1


def _id_order(sample_id: str) -> tuple[int, str]:
    return (int(sample_id), "") if sample_id.isdigit() else (1 << 62, sample_id)
