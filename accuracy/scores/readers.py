"""Read scores from an OpenCompass summary CSV, an OpenCompass work dir, or this project's JSON.

Every error names the file and, where known, the line or key. OpenCompass layouts read here:
``<work_dir>/<timestamp>/summary/summary_<timestamp>.csv`` (columns ``dataset,version,metric,mode,
<model>...``; ``-`` for a missing cell) and, with ``--dump-eval-details``,
``<work_dir>/<timestamp>/results/<model>/<dataset>.json`` whose ``details`` carry per-sample
``correct`` flags.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from accuracy.errors import InputError
from accuracy.io import read_json
from accuracy.scores.model import Score, ScoreTable

FIXED_COLUMNS = ("dataset", "version", "metric", "mode")
_CORRECT_KEYS = ("correct", "is_correct", "cascade_correct")


def read_scores(path: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read a score table from whatever ``path`` is (CSV file, work dir, or JSON)."""
    path = Path(path)
    if path.is_dir():
        return read_workdir(path, model=model)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.suffix.lower() == ".json":
        return read_json_scores(path, model=model)
    return read_summary_csv(path, model=model)


def _parse_value(raw: str, path: Path, line: int, column: str) -> float | None:
    text = raw.strip()
    if text in ("", "-"):
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"score {text!r} in column {column!r} is not a number", path=path, where=f"line {line}") from None


def read_summary_csv(path: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read an OpenCompass ``summary_*.csv``. ``model`` picks a column when there are several."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None
    if not text.strip():
        raise InputError("file is empty", path=path)
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip() for cell in rows[0]]
    if tuple(header[:4]) != FIXED_COLUMNS or len(header) < 5:
        raise InputError(
            f"not an OpenCompass summary: the header must be {','.join(FIXED_COLUMNS)},<model>...; got {','.join(header)}",
            path=path,
            where="line 1",
        )
    models = header[4:]
    column = _pick_model(models, model, path)
    index = header.index(column)
    scores: list[Score] = []
    seen: dict[tuple[str, str], int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} columns, got {len(row)}", path=path, where=f"line {line_no}")
        dataset, version, metric, mode = (cell.strip() for cell in row[:4])
        if metric == "-" and all(cell.strip() == "-" for cell in row[1:]):
            # OpenCompass writes a row of dashes for a dataset with no result at all.
            metric = "score"
        key = (dataset, metric)
        if key in seen:
            raise InputError(f"{dataset}/{metric} appears twice (first on line {seen[key]})", path=path, where=f"line {line_no}")
        seen[key] = line_no
        scores.append(
            Score(
                dataset=dataset,
                metric=metric,
                value=_parse_value(row[index], path, line_no, column),
                version=None if version in ("", "-") else version,
                mode=None if mode in ("", "-") else mode,
            )
        )
    if not scores:
        raise InputError("summary has a header but no scores", path=path)
    return ScoreTable(model=column, scores=scores, source=str(path))


def _pick_model(models: list[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in models:
            raise InputError(f"no model column {wanted!r}; columns: {', '.join(models)}", path=path)
        return wanted
    if len(models) > 1:
        raise InputError(f"several model columns ({', '.join(models)}): pick one with --model", path=path)
    return models[0]


def newest_run(work_dir: Path) -> Path:
    """The newest ``<timestamp>`` folder of an OpenCompass work dir that has a summary CSV.

    ``work_dir`` may also be a timestamp folder itself.
    """
    if list((work_dir / "summary").glob("summary_*.csv")):
        return work_dir
    runs = sorted(p.parent.parent for p in work_dir.glob("*/summary/summary_*.csv"))
    if not runs:
        raise InputError(
            "not an OpenCompass work dir: no <timestamp>/summary/summary_<timestamp>.csv below it", path=work_dir
        )
    return runs[-1]


def read_workdir(work_dir: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read the newest summary of an OpenCompass work dir, with per-sample flags where dumped."""
    run_dir = newest_run(Path(work_dir))
    csv_path = max((run_dir / "summary").glob("summary_*.csv"))
    table = read_summary_csv(csv_path, model=model)
    results_dir = run_dir / "results" / table.model
    for score in table.scores:
        details_path = results_dir / f"{score.dataset}.json"
        if details_path.exists():
            score.samples = read_sample_flags(details_path)
    table.provenance.setdefault("opencompass_run", run_dir.name)
    return table


def read_sample_flags(path: Path) -> dict[str, bool] | None:
    """Per-sample correctness from an OpenCompass results JSON (``--dump-eval-details``), or None."""
    data = read_json(path)
    details = data.get("details") if isinstance(data, dict) else None
    if details is None:
        return None
    items = details.items() if isinstance(details, dict) else enumerate(details)
    flags: dict[str, bool] = {}
    for index, detail in items:
        if not isinstance(detail, dict):
            return None
        flag = next((detail[k] for k in _CORRECT_KEYS if k in detail), None)
        if flag is None:
            return None
        if isinstance(flag, list):  # one entry per repeat (n > 1): majority
            flag = sum(bool(v) for v in flag) * 2 > len(flag) if flag else False
        sample_id = str(detail.get("example_abbr", index)) if isinstance(details, list) else str(index)
        flags[sample_id] = bool(flag)
    return flags


def read_json_scores(path: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read this project's score JSON (a result or a baseline: a top-level ``scores`` list)."""
    path = Path(path)
    data = read_json(path)
    return table_from_dict(data, path=path, model=model)


def table_from_dict(data: Any, *, path: Path, model: str | None = None) -> ScoreTable:
    if not isinstance(data, dict) or not isinstance(data.get("scores"), list):
        raise InputError("not a score table: expected an object with a 'scores' list", path=path)
    table_model = data.get("model") or "model"
    if not isinstance(table_model, str):
        raise InputError("'model' must be a string", path=path, where="model")
    if model is not None and model != table_model:
        raise InputError(f"holds scores of model {table_model!r}, not {model!r}", path=path)
    scores = []
    seen = set()
    for index, item in enumerate(data["scores"]):
        where = f"scores[{index}]"
        if not isinstance(item, dict):
            raise InputError("must be an object", path=path, where=where)
        for key in ("dataset", "metric"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise InputError(f"missing or empty '{key}'", path=path, where=where)
        value = item.get("value")
        if value in ("-", None):
            value = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        else:
            raise InputError(f"'value' must be a number, '-' or null; got {value!r}", path=path, where=where)
        samples = item.get("samples")
        if samples is not None and not (
            isinstance(samples, dict) and all(isinstance(v, bool) for v in samples.values())
        ):
            raise InputError("'samples' must map sample ids to true/false", path=path, where=where)
        for key in ("version", "mode"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise InputError(f"'{key}' must be a string", path=path, where=where)
        invalid = item.get("invalid", [])
        if not isinstance(invalid, list):
            raise InputError("'invalid' must be a list of sample ids", path=path, where=where)
        key = (item["dataset"], item["metric"])
        if key in seen:
            raise InputError(f"{key[0]}/{key[1]} appears twice", path=path, where=where)
        seen.add(key)
        scores.append(
            Score(
                dataset=item["dataset"],
                metric=item["metric"],
                value=value,
                version=item.get("version"),
                mode=item.get("mode"),
                samples=samples,
                invalid=[str(s) for s in invalid],
            )
        )
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise InputError("'provenance' must be an object", path=path, where="provenance")
    return ScoreTable(model=table_model, scores=scores, source=str(path), provenance=provenance)
