"""Read lm-evaluation-harness outputs as a score table.

Layout, as its ``EvaluationTracker`` writes it with ``--output_path OUT --log_samples``:
``OUT/<model_name_sanitized>/results_<date>.json`` and, beside it, one
``samples_<task>_<date>.jsonl`` per task (same ``<date>``). The results JSON holds
``{"results": {task: {"alias", "acc,none": 0.47, "acc_stderr,none": 0.01 | "N/A", ...}},
"group_subtasks": {group: [task, ...]}, "versions": {...}, "model_name": ...}``; metric keys are
``metric,filter``. Each samples line holds ``doc_id``, ``filter`` and the per-document value of
every metric (``"acc": 1.0``).

Accuracy-like metrics (fractions in lm-eval) are read as percentages, the unit OpenCompass and our
baselines use, so one tool's run can be judged against another's; their stderr is scaled alike.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from accuracy.errors import InputError
from accuracy.io import loads_json, read_json, read_text
from accuracy.scores.model import Score, ScoreTable

# lm-eval metrics that are fractions of documents (or means of 0/1 per document): shown x100.
PERCENT_METRICS = frozenset({"acc", "acc_norm", "exact_match", "em", "f1", "mcc", "mc1", "mc2", "contains", "accuracy"})


def is_results_json(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("results"), dict) and "scores" not in data


def find_results(folder: Path, model: str | None = None) -> Path | None:
    """The newest ``results_*.json`` in ``folder`` or in one ``<model>`` folder below it."""
    here = sorted(p for p in folder.glob("results_*.json") if p.is_file())
    if here:
        return here[-1]
    below = sorted(p for p in folder.glob("*/results_*.json") if p.is_file())
    if not below:
        return None
    models = sorted({p.parent.name for p in below})
    if model is not None:
        chosen = [p for p in below if p.parent.name in (model, model.replace("/", "__"))]
        if not chosen:
            raise InputError(f"no lm-eval results for model {model!r}; models: {', '.join(models)}", path=folder)
        return chosen[-1]
    if len(models) > 1:
        raise InputError(f"lm-eval results of several models ({', '.join(models)}): pick one with --model", path=folder)
    return below[-1]


def _percent(metric: str) -> bool:
    return metric in PERCENT_METRICS or metric.startswith(("pass@", "pass_at"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def read_lmeval_results(path: str | Path, *, model: str | None = None, data: Any = None) -> ScoreTable:
    """Read one lm-eval ``results_*.json`` (and its ``samples_*.jsonl`` for per-sample flags)."""
    path = Path(path)
    data = read_json(path) if data is None else data
    if not is_results_json(data):
        raise InputError("not an lm-evaluation-harness results file: no 'results' object", path=path)
    table_model = data.get("model_name") or (data.get("config") or {}).get("model_args") or path.parent.name
    table_model = str(table_model)
    if model is not None and model not in (table_model, path.parent.name, table_model.replace("/", "__")):
        raise InputError(f"holds lm-eval results of model {table_model!r}, not {model!r}", path=path)
    versions = data.get("versions") if isinstance(data.get("versions"), dict) else {}
    samples = _samples_beside(path)
    scores: list[Score] = []
    for task, metrics in data["results"].items():
        where = f"results.{task}"
        if not isinstance(metrics, dict):
            raise InputError("must be an object of 'metric,filter' values", path=path, where=where)
        for key, raw in metrics.items():
            if "," not in key or "_stderr," in key:
                continue  # alias, name, sample_len ... and the stderr we read with its metric
            name, _, filter_name = key.partition(",")
            value = _number(raw)
            if value is None and raw not in (None, "N/A"):
                raise InputError(f"{key} must be a number, got {raw!r}", path=path, where=where)
            scale = 100.0 if _percent(name) else 1.0
            stderr = _number(metrics.get(f"{name}_stderr,{filter_name}"))
            scores.append(
                Score(
                    dataset=task,
                    metric=key,
                    value=None if value is None else value * scale,
                    version=None if versions.get(task) is None else str(versions[task]),
                    stderr=None if stderr is None else stderr * scale,
                    samples=samples.get(task, {}).get(key),
                )
            )
    if not scores:
        raise InputError("lm-eval results hold no metrics", path=path, where="results")
    _pool_groups(scores, data.get("group_subtasks"), samples)
    provenance = {"tool": "lm-eval", "run": path.stem.removeprefix("results_")}
    if data.get("lm_eval_version"):
        provenance["lm_eval_version"] = data["lm_eval_version"]
    return ScoreTable(model=table_model, scores=scores, source=str(path), provenance=provenance)


def _samples_beside(results_path: Path) -> dict[str, dict[str, dict[str, bool]]]:
    """task -> "metric,filter" -> doc id -> correct, from the run's ``samples_<task>_<date>.jsonl``.

    A metric gets flags only when every document scored it 0 or 1 (partial credit gets none).
    """
    date = results_path.stem.removeprefix("results_")
    found: dict[str, dict[str, dict[str, bool]]] = {}
    for sample_path in sorted(results_path.parent.glob(f"samples_*_{date}.jsonl")):
        task = sample_path.name[len("samples_"):-len(f"_{date}.jsonl")]
        found[task] = _read_samples(sample_path)
    return found


def _read_samples(path: Path) -> dict[str, dict[str, bool]]:
    values: dict[str, dict[str, Any]] = {}
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):  # a regular file only
        if not line.strip():
            continue
        try:
            sample = loads_json(line, path=path)
        except InputError as exc:
            raise InputError(exc.message, path=path, where=f"line {line_no}") from None
        if not isinstance(sample, dict) or "doc_id" not in sample:
            raise InputError("not an lm-eval sample: expected an object with 'doc_id'", path=path, where=f"line {line_no}")
        filter_name = sample.get("filter", "none")
        for metric in sample.get("metrics") or []:
            if isinstance(metric, str) and metric in sample:
                values.setdefault(f"{metric},{filter_name}", {})[str(sample["doc_id"])] = sample[metric]
    flags: dict[str, dict[str, bool]] = {}
    for key, per_doc in values.items():
        if per_doc and all(isinstance(v, (bool, int, float)) and v in (0, 1) for v in per_doc.values()):
            flags[key] = {doc: bool(v) for doc, v in per_doc.items()}
    return flags


def _leaves(group: str, subtasks: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> list[str]:
    leaves: list[str] = []
    for child in subtasks.get(group, []):
        if subtasks.get(child) and child not in seen:
            leaves.extend(_leaves(child, subtasks, seen | {group}))
        else:
            leaves.append(child)
    return leaves


def _pool_groups(scores: list[Score], group_subtasks: Any, samples: dict[str, dict[str, dict[str, bool]]]) -> None:
    """A group's flags are its tasks' flags for the same metric, pooled (ids ``task/doc``)."""
    if not isinstance(group_subtasks, dict):
        return
    subtasks = {g: [str(c) for c in children] for g, children in group_subtasks.items() if isinstance(children, list)}
    for score in scores:
        if score.samples is not None or not subtasks.get(score.dataset):
            continue
        leaves = _leaves(score.dataset, subtasks)
        if leaves and all(score.metric in samples.get(leaf, {}) for leaf in leaves):
            score.samples = {f"{leaf}/{doc}": flag for leaf in leaves for doc, flag in samples[leaf][score.metric].items()}
