"""LLM suites end to end: validate, preflight, run OpenCompass (or resume), read, mark, judge.

Everything that can be wrong with the input is found before OpenCompass starts (minutes of work):
the suite's keys, the OpenCompass interpreter, dataset names, custom dataset columns, the
endpoint and its served model (name, tokenizer folder and context as vLLM reports them), whether
every custom prompt fits that context, the baseline and tolerance tables, and whether the work dir
belongs to this suite. After the run, predictions that are failed or empty requests are counted
per dataset (``Score.invalid``) so the score layer fails them instead of scoring them as answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from accuracy.config.suite import Suite
from accuracy.errors import ConfigError
from accuracy.io import expand_user, write_json_atomic
from accuracy.llm.endpoint import check_endpoint, check_prompts_fit, context_limit
from accuracy.llm.opencompass.config import write_config
from accuracy.llm.opencompass.custom_prompts import custom_prompts
from accuracy.llm.opencompass.predictions import PredictionReport, check_predictions, exclude_invalid
from accuracy.llm.opencompass.runner import (
    RunOutcome,
    find_dataset_configs,
    opencompass_root,
    run_opencompass,
)
from accuracy.llm.opencompass.sandboxed import rescore_deferred
from accuracy.llm.suite_config import LLMSuite, read_llm_suite
from accuracy.results import SuiteResult
from accuracy.scores.model import ScoreTable
from accuracy.scores.readers import read_scores

MARKER = "accuracy-suite.json"  # in the work dir: which suite owns it


@dataclass
class Prepared:
    """A suite that passed preflight: its settings and the config OpenCompass will run."""

    llm: LLMSuite
    config: Path
    resume: bool
    notes: list[str] = field(default_factory=list)  # what preflight learnt from the endpoint


def prepare(suite: Suite, *, work_dir: str | Path | None = None, resume: bool = False,
            update_baselines: bool = False, check_server: bool = True) -> Prepared:
    """Validate and preflight; writes the OpenCompass config. Raises ``AccuracyError`` on bad input."""
    from accuracy.scores.suite import baseline_path, policy_from_suite

    llm = read_llm_suite(suite, work_dir=work_dir)
    policy_from_suite(suite)
    baseline = baseline_path(suite)
    if not update_baselines and not baseline.exists():
        raise ConfigError(f"baseline not found: {baseline} (record one with --update-baselines)",
                          path=suite.path, where="baseline.path")
    root = opencompass_root(llm.python, path=suite.path)
    dataset_files = find_dataset_configs(root, llm.dataset_configs, path=suite.path)
    claim_work_dir(llm, resume=resume)
    notes: list[str] = []
    if check_server:
        notes = check_served_model(llm)
    elif llm.api == "openai" and (not llm.model or llm.tokenizer is None):
        raise ConfigError("give llm.model and llm.tokenizer (a local folder) when the server is not asked",
                          path=suite.path, where="llm.tokenizer" if llm.model else "llm.model")
    config = write_config(llm, llm.work_dir / "_accuracy", dataset_files)
    return Prepared(llm=llm, config=config, resume=resume, notes=notes)


def check_served_model(llm: LLMSuite) -> list[str]:
    """Ask the endpoint what it serves and fill in what the suite left to it: the model name
    (``/v1/models``), the tokenizer folder (vLLM's ``root``, when it is on this machine) and the
    context (vLLM's ``max_model_len``: every custom prompt must fit with its answer; OpenCompass's
    ``max_seq_len`` is capped to it). Returns lines for the progress output."""
    path = llm.suite.path
    probes = check_endpoint(llm.api, llm.base_urls, llm.model, key=llm.key, path=path)
    if llm.api != "openai":
        return []
    llm.model = probes[0].model
    if llm.tokenizer is None:
        root = probes[0].root
        if not root or not expand_user(root).is_dir():
            raise ConfigError(
                "give the local tokenizer folder of the served model (OpenCompass counts tokens with it; "
                f"nothing is fetched){f'; the server loaded it from {root}, not a folder here' if root else ''}",
                path=path, where="llm.tokenizer")
        llm.tokenizer = expand_user(root).resolve()
    limit = context_limit(probes)
    notes = [f"endpoint serves {llm.model!r}" + (f", max_model_len {limit}" if limit else "")]
    if limit is None:
        return notes
    llm.generation.max_seq_len = min(llm.generation.max_seq_len, limit)
    samples = [sample for dataset in llm.custom_datasets for sample in custom_prompts(dataset)]
    try:
        longest = check_prompts_fit(llm.base_urls[0], llm.model, samples, max_out_len=llm.generation.max_out_len,
                                    max_model_len=limit, key=llm.key)
    except OSError as exc:
        raise ConfigError(f"could not count prompt tokens at {llm.base_urls[0]}: {exc}", path=path,
                          where="llm.base_url") from None
    if longest is None and samples:
        notes.append(f"custom prompts not counted against max_model_len {limit}: the server has no vLLM /tokenize")
    if longest is not None and samples:
        notes.append(f"longest custom prompt {longest} tokens + max_out_len {llm.generation.max_out_len} "
                     f"fits max_model_len {limit}")
    return notes


def claim_work_dir(llm: LLMSuite, *, resume: bool) -> None:
    """A work dir holds the runs of one suite. Resuming also needs the same predictions settings."""
    marker = llm.work_dir / MARKER
    fingerprint = llm.fingerprint()
    if marker.exists():
        try:
            owner = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError("unreadable work-dir marker; delete the work dir or pick another", path=marker) from None
        if owner.get("suite_path") != fingerprint["suite_path"] or owner.get("suite") != fingerprint["suite"]:
            raise ConfigError(
                f"work dir belongs to suite {owner.get('suite')!r} ({owner.get('suite_path')}); "
                "pick another with --work-dir", path=llm.work_dir,
            )
        if resume and owner != fingerprint:
            changed = sorted(k for k in fingerprint if owner.get(k) != fingerprint[k])
            raise ConfigError(
                f"cannot resume: the suite changed since that run ({', '.join(changed)}); run without --resume",
                path=llm.work_dir,
            )
    elif llm.work_dir.exists() and any(llm.work_dir.iterdir()):
        raise ConfigError("work dir is not empty and was not made by `accuracy run`; pick another with --work-dir",
                          path=llm.work_dir)
    write_json_atomic(marker, fingerprint)


def dataset_totals(llm: LLMSuite) -> dict[str, int | None]:
    """Sample counts for progress lines: known for custom datasets, not for OpenCompass configs."""
    totals: dict[str, int | None] = {}
    for dataset in llm.custom_datasets:
        with open(dataset.path, encoding="utf-8") as handle:
            totals[dataset.abbr] = sum(1 for line in handle if line.strip())
    return totals


def score_run(llm: LLMSuite, outcome: RunOutcome) -> tuple[ScoreTable, list[PredictionReport]]:
    """Read the run's summary and per-sample flags, score HumanEval predictions in the sandbox, and
    mark failed/empty predictions invalid."""
    table = read_scores(outcome.run_dir, model=llm.abbr)
    sandboxed = rescore_deferred(table, outcome.run_dir, llm.abbr)  # HumanEval: code runs in our sandbox
    reports, rescored = [], []
    for dataset in sorted({score.dataset for score in table.scores}):
        report = check_predictions(outcome.run_dir, llm.abbr, dataset)
        reports.append(report)
        for score in table.scores:
            if score.dataset == dataset:
                score.invalid = [_sample_key(score.samples, dataset, i) for i in report.invalid]
                if exclude_invalid(score):  # a failed request is not a wrong answer either
                    rescored.append(f"{score.dataset}/{score.metric}")
    table.source = str(outcome.run_dir)
    table.provenance.update({
        "suite": llm.suite.name,
        "endpoint": {"api": llm.api, "base_urls": llm.base_urls, "model": llm.model},
        "generation": vars(llm.generation),
        "opencompass_seconds": round(outcome.seconds, 1),
        "resumed": outcome.resumed,
        "sandboxed": sandboxed,
        "rescored_without_invalid": rescored,
    })
    return table, reports


def _sample_key(samples: dict[str, bool] | None, dataset: str, index: str) -> str:
    """The id the per-sample flags use for prediction ``index`` (OpenCompass: ``<dataset>_<index>``)."""
    if samples and index not in samples and f"{dataset}_{index}" in samples:
        return f"{dataset}_{index}"
    return index


def run_suite(
    suite: Suite,
    *,
    update_baselines: bool = False,
    work_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Run an ``[llm]`` suite against its endpoint and judge the scores against the baseline."""
    from accuracy.scores.suite import judge_suite

    prepared = prepare(suite, work_dir=work_dir, resume=resume, update_baselines=update_baselines)
    llm = prepared.llm
    if progress:
        for note in prepared.notes:
            progress(f"{suite.name}: {note}")
        progress(f"{suite.name}: OpenCompass on {', '.join(llm.dataset_names)} "
                 f"({'resuming' if resume else 'work dir'} {llm.work_dir})")
    outcome = run_opencompass(prepared.config, llm.work_dir, python=llm.python, model_abbr=llm.abbr,
                              resume=prepared.resume, totals=dataset_totals(llm), progress=progress)
    table, reports = score_run(llm, outcome)
    scores_path = write_json_atomic(outcome.run_dir / "accuracy_scores.json", table)
    result = judge_suite(suite, table, update_baselines=update_baselines)
    result.details.update({
        "scores": str(scores_path),
        "work_dir": str(llm.work_dir),
        "run_dir": str(outcome.run_dir),
        "opencompass_seconds": round(outcome.seconds, 1),
        "predictions": {r.dataset: {"total": r.total, "failed": r.failed, "empty": r.empty,
                                    "complete": r.complete, "reasons": r.reasons} for r in reports},
    })
    return result
