"""Score baselines in ``baselines/``: a score table plus a schema version and provenance.

A baseline is written only on purpose (``accuracy baseline record``, or a pytest run with
``--accuracy-update-baselines``), atomically, and never over an existing file without ``force``;
when it does replace one, the old -> new differences are returned so they can be shown.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accuracy.errors import InputError
from accuracy.io import OverwriteRefused, existing, read_json, write_json_atomic
from accuracy.provenance import SCORE_TOOLS, tool_versions
from accuracy.scores.model import ScoreTable
from accuracy.scores.readers import table_from_dict


def provenance_for(table: ScoreTable, *, label: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where a baseline came from: hardware/backend label, date, tool versions, prompt versions,
    generation settings (kept from the source result when it had them)."""
    provenance = dict(table.provenance)
    provenance["label"] = label or provenance.get("label") or f"{platform.node()} ({platform.machine()})"
    provenance["recorded_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    provenance["source"] = table.source
    provenance.setdefault("tool_versions", tool_versions(SCORE_TOOLS))
    provenance["prompt_versions"] = {s.dataset: s.version for s in table.scores if s.version}
    provenance.setdefault("generation", {})
    if extra:
        provenance.update(extra)
    return provenance


@dataclass
class Change:
    dataset: str
    metric: str
    old: float | None
    new: float | None

    def describe(self) -> str:
        def fmt(v: float | None) -> str:
            return "absent" if v is None else f"{v:.2f}"

        return f"{self.dataset}/{self.metric}: {fmt(self.old)} -> {fmt(self.new)}"


def load_baseline(path: str | Path) -> ScoreTable:
    """Read a baseline; a missing one says how to record it. Its schema is checked by the score
    reader every command shares, and an empty or all-null one is refused (``check_baseline``)."""
    path = Path(path)
    if existing(path) is None:
        raise InputError(
            "baseline not found; record one with `accuracy baseline record RESULT --out "
            f"{path}` (or a pytest run with --accuracy-update-baselines)",
            path=path,
        )
    return check_baseline(table_from_dict(read_json(path), path=path))


def check_baseline(table: ScoreTable) -> ScoreTable:
    """A baseline gates only when it holds something to compare against: no scores, or only null /
    ``-`` ones, would pass any candidate. ``check`` and ``gate`` both call this."""
    if not table.scores:
        raise InputError("the baseline holds no scores: it would pass any candidate; record it from a "
                         "result that has scores", path=table.source)
    if all(score.value is None for score in table.scores):
        raise InputError(f"every score in the baseline is null or '-' ({len(table.scores)} rows): it would pass "
                         "any candidate; record it from a result that has scores", path=table.source)
    return table


def diff_tables(old: ScoreTable, new: ScoreTable) -> list[Change]:
    changes = []
    keys = [s.key for s in old.scores] + [s.key for s in new.scores if old.get(*s.key) is None]
    for dataset, metric in keys:
        before, after = old.get(dataset, metric), new.get(dataset, metric)
        old_value = None if before is None else before.value
        new_value = None if after is None else after.value
        if old_value != new_value or (before is None) != (after is None):
            changes.append(Change(dataset, metric, old_value, new_value))
    return changes


def record_baseline(
    table: ScoreTable, path: str | Path, *, force: bool = False, label: str | None = None
) -> list[Change]:
    """Write ``table`` as the baseline at ``path``. Returns the changes against the file it replaced
    (empty for a new file). Without ``force`` an existing baseline is never touched."""
    path = Path(path)
    check_baseline(table)  # never write a baseline that would pass anything
    for score in table.scores:
        if score.value is not None and not math.isfinite(score.value):
            raise InputError(f"{score.dataset}/{score.metric} is {score.value}, not a finite score: a baseline "
                             "holds numbers (or null for no result)", path=table.source)
    old = None
    if existing(path) is not None:
        if not force:
            raise OverwriteRefused("baseline exists; pass --force to replace it", path=path)
        try:
            old = load_baseline(path)
        except InputError:
            old = None  # a broken old file is replaced on purpose; nothing to diff
    record = ScoreTable(
        model=table.model,
        scores=table.scores,
        source=table.source,
        provenance=provenance_for(table, label=label),
    )
    write_json_atomic(path, record.to_dict(), overwrite=force)
    if old is None:
        return []
    return diff_tables(old, record)
