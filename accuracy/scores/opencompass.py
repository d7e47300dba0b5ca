"""Read OpenCompass (and AISBench, its Ascend derivative) outputs as a score table.

Layouts, as OpenCompass 0.5's ``DefaultSummarizer`` and eval task write them:

- ``<work_dir>/<timestamp>/summary/summary_<timestamp>.{csv,txt,md}``: the same table three ways
  (columns ``dataset,version,metric,mode,<model>...``, ``-`` for a missing cell; a row of dashes
  for a dataset without a result or a section header). The ``.txt`` holds it as a "csv format"
  block between ``^^^`` and ``$$$`` lines. AISBench adds a ``total_count`` column after ``mode``
  and writes cells as ``75.00 (30/40)``.
- ``<work_dir>/<timestamp>/results/<model>/<dataset>.json`` with ``--dump-eval-details``: its
  ``details`` are a list (``example_abbr``, ``correct``) or an object ``{"type": "GEN"|"PPL",
  "0": {..., "correct": ...}, ...}``.
- ``<work_dir>/<timestamp>/configs/*.py``: the run's config as mmengine dumped it, with the
  summarizer's ``summary_groups`` (read by parsing, never by running it).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

from accuracy.compare.significance import flags_reproduce
from accuracy.errors import InputError
from accuracy.io import csv_rows, read_json, read_text
from accuracy.scores.model import Score, ScoreTable

FIXED_COLUMNS = ("dataset", "version", "metric", "mode")
COUNT_COLUMN = "total_count"  # AISBench: one more fixed column
SUMMARY_SUFFIXES = (".csv", ".txt", ".md")
_CORRECT_KEYS = ("correct", "is_correct", "cascade_correct")
_AISBENCH_CELL = re.compile(r"^(?P<value>\S+)\s*\((?P<right>\d+)/(?P<total>\d+)\)$")


def _read_text(path: Path) -> str:
    text = read_text(path, encoding="utf-8-sig")  # a regular file only: a named pipe is refused, not waited on
    if not text.strip():
        raise InputError("file is empty", path=path)
    return text


def summary_rows(path: Path) -> tuple[list[list[str]], int]:
    """The summary table of a ``.csv``, ``.txt`` or ``.md`` file, and the line number of its header."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = text.splitlines()
        try:
            start = next(i for i, line in enumerate(lines) if line.strip() == "csv format")
        except StopIteration:
            raise InputError(
                "not an OpenCompass summary .txt: no 'csv format' section (use the summary_*.csv beside it)", path=path
            ) from None
        body, first = [], start + 2  # skip the ^^^ rule
        for line in lines[first:]:
            if line.startswith("$$$"):
                break
            body.append(line)
        return csv_rows("\n".join(body), path=path, first_line=first + 1), first + 1
    if suffix == ".md":
        rows = []
        for line in text.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not line.strip() or all(set(cell) <= {"-", ":"} and cell for cell in cells):
                rows.append([])  # the |-----| rule, or a blank line, keeps line numbers right
                continue
            rows.append(cells)
        return rows, 1
    return csv_rows(text, path=path), 1


def _parse_value(raw: str, path: Path, where: str, column: str) -> tuple[float | None, tuple[int, int] | None]:
    text = raw.strip()
    if text in ("", "-"):
        return None, None
    counts = None
    match = _AISBENCH_CELL.match(text)
    if match:
        text, counts = match.group("value"), (int(match.group("right")), int(match.group("total")))
        if counts[0] > counts[1]:
            raise InputError(f"cell {raw.strip()!r} in column {column!r} counts more right answers than samples",
                             path=path, where=where)
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"score {raw.strip()!r} in column {column!r} is not a number", path=path, where=where) from None
    if not math.isfinite(value):
        raise InputError(f"score {raw.strip()[:40]!r} in column {column!r} is not a finite number", path=path,
                         where=where)
    return value, counts


def _pick_model(models: list[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in models:
            raise InputError(f"no model column {wanted!r}; columns: {', '.join(models)}", path=path)
        return wanted
    if len(models) > 1:
        raise InputError(f"several model columns ({', '.join(models)}): pick one with --model", path=path)
    return models[0]


def _is_section_header(row: list[str]) -> bool:
    """``dataset_abbrs`` entries like ``'--------- Exam ---------'``: a title, not a dataset."""
    return row[0].strip().startswith("---") and all(cell.strip() == "-" for cell in row[1:])


def read_summary(path: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read an OpenCompass or AISBench summary (``.csv``, ``.txt`` or ``.md``).

    ``model`` picks a column when there are several. A dataset without a result keeps ``-`` as its
    metric: no name is made up.
    """
    path = Path(path)
    rows, header_line = summary_rows(path)
    while rows and not rows[0]:
        rows.pop(0)
        header_line += 1
    if not rows:
        raise InputError("file is empty", path=path)
    header = [cell.strip() for cell in rows[0]]
    fixed = len(FIXED_COLUMNS) + (1 if header[4:5] == [COUNT_COLUMN] else 0)
    if tuple(header[:4]) != FIXED_COLUMNS or len(header) <= fixed:
        raise InputError(
            f"not an OpenCompass summary: the header must be {','.join(FIXED_COLUMNS)},<model>... "
            f"(AISBench: ...,mode,{COUNT_COLUMN},<model>...); got {','.join(header)}",
            path=path,
            where=f"line {header_line}",
        )
    twice = sorted({name for name in header[fixed:] if header[fixed:].count(name) > 1})
    if twice:
        raise InputError(f"model column {twice[0]!r} appears twice: which one is meant cannot be told",
                         path=path, where=f"line {header_line}")
    column = _pick_model(header[fixed:], model, path)
    index = header.index(column, fixed)
    scores: list[Score] = []
    seen: dict[tuple[str, str], int] = {}
    for offset, row in enumerate(rows[1:], start=1):
        line_no = header_line + offset
        where = f"line {line_no}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} columns, got {len(row)}", path=path, where=where)
        if _is_section_header(row):
            continue
        dataset, version, metric, mode = (cell.strip() for cell in row[:4])
        key = (dataset, metric)
        if key in seen:
            raise InputError(f"{dataset}/{metric} appears twice (first on line {seen[key]})", path=path, where=where)
        seen[key] = line_no
        value, counts = _parse_value(row[index], path, where, column)
        scores.append(
            Score(
                dataset=dataset,
                metric=metric,
                value=value,
                version=None if version in ("", "-") else version,
                mode=None if mode in ("", "-") else mode,
                counts=counts,
            )
        )
    if not scores:
        raise InputError("summary has a header but no scores", path=path)
    tool = "aisbench" if fixed > len(FIXED_COLUMNS) else "opencompass"
    return ScoreTable(model=column, scores=scores, source=str(path), provenance={"tool": tool})


def _summaries(run: Path) -> list[Path]:
    folder = run / "summary"
    return sorted(p for p in folder.glob("summary_*") if p.suffix.lower() in SUMMARY_SUFFIXES and p.is_file())


def _summary_of(run: Path) -> Path | None:
    """The run's summary, preferring the CSV; the newest when a run was summarized twice."""
    found = _summaries(run)
    for suffix in SUMMARY_SUFFIXES:
        same = [p for p in found if p.suffix.lower() == suffix]
        if same:
            return max(same)
    return None


def pick_run(work_dir: Path) -> tuple[Path, list[str]]:
    """The newest ``<timestamp>`` run of a work dir that has a summary, and notes on runs skipped.

    ``work_dir`` may also be a timestamp folder itself.
    """
    if _summary_of(work_dir) is not None:
        return work_dir, []
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir()) if work_dir.is_dir() else []
    complete = [run for run in runs if _summary_of(run) is not None]
    if not complete:
        raise InputError(
            "not an OpenCompass work dir: no <timestamp>/summary/summary_<timestamp>.csv (or .txt) below it",
            path=work_dir,
        )
    chosen = complete[-1]
    skipped = [run.name for run in runs if run.name > chosen.name]
    notes = [
        f"newer run {name} has no summary (incomplete?): read run {chosen.name} instead" for name in skipped
    ]
    return chosen, notes


def newest_run(work_dir: Path) -> Path:
    return pick_run(work_dir)[0]


def read_workdir(work_dir: str | Path, *, model: str | None = None) -> ScoreTable:
    """Read the newest summarized run of a work dir, with per-sample flags where dumped."""
    run_dir, notes = pick_run(Path(work_dir))
    table = read_summary(_summary_of(run_dir), model=model)
    results_dir = run_dir / "results" / table.model
    groups = summary_groups(run_dir)
    wanted = [s.dataset for s in table.scores] + [d for s in table.scores for d in groups.get(s.dataset, [])]
    flags_of: dict[str, dict[str, bool]] = {}
    for dataset in dict.fromkeys(wanted):
        details_path = results_dir / f"{dataset}.json"
        if details_path.is_file():
            flags = read_sample_flags(details_path)
            if flags:
                flags_of[dataset] = flags
    for score in table.scores:
        score.samples = _flags_for(score, flags_of, groups)
    table.provenance["opencompass_run"] = run_dir.name
    table.notes.extend(notes)
    return table


def _flags_for(score: Score, flags_of: dict[str, dict[str, bool]], groups: dict[str, list[str]]) -> dict[str, bool] | None:
    """A dataset's flags belong to the one metric they reproduce (exact-match accuracy), never to a
    partial-credit score of the same dataset; a group's are its subsets' flags pooled."""
    flags = flags_of.get(score.dataset)
    if flags is not None:
        return dict(flags) if flags_reproduce(score.value, flags) else None
    subsets = groups.get(score.dataset)
    if subsets and score.value is not None and all(s in flags_of for s in subsets):
        return {f"{subset}/{sample}": flag for subset in subsets for sample, flag in flags_of[subset].items()}
    return None


def read_sample_flags(path: Path) -> dict[str, bool] | None:
    """Per-sample correctness from an OpenCompass results JSON (``--dump-eval-details``), or None."""
    data = read_json(path)
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, dict):
        # {"type": "GEN"|"PPL", "0": {...}, "1": {...}}: the type is a label, not a sample.
        items = [(key, detail) for key, detail in details.items() if key != "type"]
    elif isinstance(details, list):
        items = [(str(detail.get("example_abbr", index)) if isinstance(detail, dict) else str(index), detail)
                 for index, detail in enumerate(details)]
    else:
        return None
    flags: dict[str, bool] = {}
    for sample_id, detail in items:
        if not isinstance(detail, dict):
            return None
        flag = next((detail[k] for k in _CORRECT_KEYS if k in detail), None)
        if flag is None:
            return None
        if isinstance(flag, list):  # one entry per repeat (n > 1): majority
            flag = sum(bool(v) for v in flag) * 2 > len(flag) if flag else False
        flags[str(sample_id)] = bool(flag)
    return flags or None


def summary_groups(run_dir: Path) -> dict[str, list[str]]:
    """``summarizer.summary_groups`` of the run's dumped config: group name -> subset datasets.

    The config is parsed as data (``dict(...)`` calls, lists, strings); it is never executed.
    Groups over (dataset, metric) pairs keep the dataset names.
    """
    configs = sorted((run_dir / "configs").glob("*.py")) if (run_dir / "configs").is_dir() else []
    if not configs:
        return {}
    try:
        tree = ast.parse(read_text(configs[-1]))
    except (InputError, SyntaxError, ValueError, RecursionError, MemoryError):
        return {}  # groups are extra evidence: an unreadable config only means no pooled flags
    groups: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "summarizer" for t in node.targets):
            summarizer = _literal(node.value)
            for group in summarizer.get("summary_groups", []) if isinstance(summarizer, dict) else []:
                if not isinstance(group, dict) or not isinstance(group.get("name"), str):
                    continue
                subsets = [s[0] if isinstance(s, (list, tuple)) and s else s for s in group.get("subsets", [])]
                if subsets and all(isinstance(s, str) for s in subsets):
                    groups[group["name"]] = subsets
    return {name: _leaves(name, groups) for name in groups}


def _leaves(name: str, groups: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> list[str]:
    """A group's datasets, with groups of groups (mmlu over mmlu-humanities ...) expanded."""
    leaves: list[str] = []
    for subset in groups.get(name, []):
        if subset in groups and subset not in seen | {name}:
            leaves.extend(_leaves(subset, groups, seen | {name}))
        else:
            leaves.append(subset)
    return list(dict.fromkeys(leaves))


def _literal(node: ast.AST) -> Any:
    """Plain data from an mmengine config dump; anything else (a call, a name) becomes None."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    return None
