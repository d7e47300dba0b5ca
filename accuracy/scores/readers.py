"""Read scores from whatever a user brings: an OpenCompass or AISBench summary (``.csv``, ``.txt``,
``.md``) or work dir, lm-evaluation-harness ``results_*.json`` or its output folder, or this
project's JSON. Every error names the file and, where known, the line or key.

The tool-specific layouts live in ``accuracy.scores.opencompass`` and ``accuracy.scores.lmeval``.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from accuracy.errors import InputError
from accuracy.io import existing, finite_or_none, read_json
from accuracy.scores.lmeval import find_results, is_results_json, read_lmeval_results
from accuracy.scores.model import SCHEMA_VERSION, Score, ScoreTable
from accuracy.scores.opencompass import (  # noqa: F401  (the readers' public names)
    FIXED_COLUMNS,
    newest_run,
    read_sample_flags,
    read_summary,
    read_workdir,
)

read_summary_csv = read_summary


def read_scores(path: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read a score table from whatever ``path`` is; the reader says which tool wrote it."""
    path = Path(path)
    found = existing(path)  # a name the OS refuses is one line, not a traceback
    if found is None:
        raise InputError("file not found", path=path)
    if stat.S_ISDIR(found.st_mode):
        results = find_results(path, model)
        if results is not None:
            return read_lmeval_results(results, model=model)
        return read_workdir(path, model=model)
    if path.suffix.lower() == ".json":
        return read_json_scores(path, model=model)
    return read_summary(path, model=model)


def read_json_scores(path: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read this project's score JSON (a result or a baseline: a top-level ``scores`` list), or an
    lm-eval ``results_*.json``."""
    path = Path(path)
    data = read_json(path)
    if is_results_json(data):
        return read_lmeval_results(path, model=model, data=data)
    return table_from_dict(data, path=path, model=model)


TABLE_KEYS = ("schema", "model", "source", "provenance", "scores")
SCORE_KEYS = ("dataset", "metric", "value", "version", "mode", "samples", "invalid", "stderr", "counts")


def _known_keys(data: dict[str, Any], known: tuple[str, ...], *, path: Path, where: str | None) -> None:
    """An unknown key is refused, never ignored (a misspelt ``value`` would read as "no result")."""
    from accuracy.config.suite import unknown

    for key in data:
        if key not in known:
            raise InputError(f"unknown key {str(key)[:40]!r}; {unknown(str(key), known)}", path=path,
                             where=f"{where}.{key}" if where else str(key)[:40])


def check_schema(data: dict[str, Any], *, path: Path) -> None:
    """The one schema check of this project's score JSON (results and baselines, read by ``check``,
    ``gate`` and ``baseline record`` alike): an unknown ``schema`` is refused, never guessed at."""
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise InputError(f"schema {repr(schema)[:20]} is not supported (this version of accuracy reads schema "
                         f"{SCHEMA_VERSION}); record it again with `accuracy baseline record`", path=path, where="schema")


def table_from_dict(data: Any, *, path: Path, model: str | None = None) -> ScoreTable:
    if not isinstance(data, dict) or not isinstance(data.get("scores"), list):
        raise InputError(
            "not a score table: expected this project's JSON (an object with a 'scores' list) "
            "or lm-evaluation-harness results_*.json (an object with a 'results' object)",
            path=path,
        )
    check_schema(data, path=path)
    _known_keys(data, TABLE_KEYS, path=path, where=None)
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
        _known_keys(item, SCORE_KEYS, path=path, where=where)  # "vaule" must not read as "no value"
        for key in ("dataset", "metric"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise InputError(f"missing or empty '{key}'", path=path, where=where)
        value = item.get("value")
        if value in ("-", None):
            value = None
        elif finite_or_none(value) is not None:
            value = float(value)
        else:
            raise InputError(f"'value' must be a finite number, '-' or null; got {str(value)[:40]!r}", path=path,
                             where=where)
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
        stderr = item.get("stderr")
        if stderr is not None and finite_or_none(stderr) is None:
            raise InputError(f"'stderr' must be a finite number; got {str(stderr)[:40]!r}", path=path, where=where)
        counts = item.get("counts")
        if counts is not None and not (
            isinstance(counts, list) and len(counts) == 2 and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
        ):
            raise InputError("'counts' must be [correct, total]", path=path, where=where)
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
                stderr=None if stderr is None else float(stderr),
                counts=None if counts is None else (counts[0], counts[1]),
            )
        )
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise InputError("'provenance' must be an object", path=path, where="provenance")
    return ScoreTable(model=table_model, scores=scores, source=str(path), provenance=provenance)
