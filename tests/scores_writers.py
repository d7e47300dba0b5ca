"""Score files written by the real tools' own writer code, for the reader and gate tests.

- OpenCompass: its ``DefaultSummarizer`` writes the summary (.csv/.txt/.md) from results JSON, its
  evaluators and ``OpenICLEvalTask.format_details`` write the per-sample details, and mmengine dumps
  the run config, as ``opencompass run`` does.
- lm-evaluation-harness: its ``EvaluationTracker`` writes ``results_<date>.json`` and
  ``samples_<task>_<date>.jsonl``; the dicts it is given have the shape lm-eval's evaluator builds.
- AISBench (not installable here): its ``DefaultSummarizer._format_table`` adds a ``total_count``
  column and writes each cell as ``'{:.02f}'.format(v) + f' ({correct}/{total})'``; the CSV below is
  written the same way (``','.join(row)`` per row).
"""

from __future__ import annotations

import json
from pathlib import Path


def gen_details(dataset: str, flags: list[bool]) -> list[dict]:
    """Details as an OpenCompass evaluator returns them (BaseEvaluator.evaluate over Gsm8kEvaluator)."""
    from datasets import Dataset
    from opencompass.datasets.gsm8k import Gsm8kEvaluator

    refs = [str(i) for i in range(len(flags))]
    preds = [ref if flag else "wrong" for ref, flag in zip(refs, flags)]
    test_set = Dataset.from_dict({"question": refs, "answer": refs, "subdivision": [dataset] * len(refs), "idx": list(range(len(refs)))})
    result = Gsm8kEvaluator().evaluate(1, 1, test_set, predictions=preds, references=refs)
    return result["details"]


def ppl_details(flags: list[bool]) -> dict:
    """Details of a PPL dataset as OpenCompass formats them: {"type": "PPL", "0": {...}, ...}."""
    from opencompass.tasks.openicl_eval import OpenICLEvalTask

    preds, refs, pred_dicts = [], [], []
    for flag in flags:
        preds.append("A")
        refs.append("A" if flag else "B")
        pred_dicts.append(
            {
                "label: A": {"testing input": "q A", "prompt": "q A", "PPL": 1.0},
                "label: B": {"testing input": "q B", "prompt": "q B", "PPL": 2.0},
                "prediction": "A",
            }
        )
    return OpenICLEvalTask.format_details(None, preds, refs, None, pred_dicts)


def _dataset_cfg(abbr: str, mode: str) -> dict:
    inferencer = {"gen": "GenInferencer", "ppl": "PPLInferencer"}[mode]
    return {
        "abbr": abbr,
        "type": "opencompass.datasets.GSM8KDataset",
        "path": f"data/{abbr}",
        "reader_cfg": {"input_columns": ["question"], "output_column": "answer"},
        "infer_cfg": {
            "prompt_template": {"type": "PromptTemplate", "template": f"{abbr}: {{question}}"},
            "retriever": {"type": "ZeroRetriever"},
            "inferencer": {"type": inferencer},
        },
        "eval_cfg": {"evaluator": {"type": "AccEvaluator"}},
    }


def opencompass_run(
    root: Path,
    stamp: str,
    results: dict[str, dict],
    *,
    model: str = "npu",
    modes: dict[str, str] | None = None,
    groups: list[dict] | None = None,
    dataset_abbrs: list | None = None,
    summarize: bool = True,
) -> Path:
    """One run ``<root>/<stamp>`` as ``opencompass`` leaves it: configs/, results/<model>/, summary/.

    ``results``: dataset -> the results JSON (``{"accuracy": 75.0, "details": ...}``).
    """
    from mmengine.config import Config, ConfigDict
    from opencompass.summarizers import DefaultSummarizer

    run = root / stamp
    (run / "results" / model).mkdir(parents=True, exist_ok=True)
    for dataset, result in results.items():
        (run / "results" / model / f"{dataset}.json").write_text(json.dumps(result, indent=4))
    datasets = [_dataset_cfg(abbr, (modes or {}).get(abbr, "gen")) for abbr in results]
    config = {
        "models": [{"abbr": model, "type": "opencompass.models.OpenAISDK", "path": model}],
        "datasets": datasets,
        "work_dir": str(run),
        "summarizer": {"summary_groups": groups or []},
    }
    (run / "configs").mkdir(exist_ok=True)
    Config(config).dump(str(run / "configs" / f"{stamp}_4242.py"))
    if summarize:
        summarizer = DefaultSummarizer(ConfigDict(config), dataset_abbrs=dataset_abbrs, summary_groups=groups or [])
        summarizer.summarize(time_str=stamp)
    return run


def lmeval_run(out: Path, tasks: dict[str, dict], *, model: str = "org/tiny-gpu", groups: dict[str, list[str]] | None = None) -> Path:
    """An lm-eval ``--output_path out --log_samples`` run, written by lm-eval's EvaluationTracker.

    ``tasks``: task -> {"metrics": {"acc,none": 0.5, "acc_stderr,none": 0.05, ...},
    "samples": [{"doc_id": 0, "filter": "none", "acc": 1.0}, ...] (optional)}.
    Returns the results JSON path.
    """
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf", model_args=f"pretrained={model}", system_instruction=None, chat_template=None,
        fewshot_as_multiturn=False,
    )
    results = {
        "results": {task: {"name": task, "alias": task, **spec["metrics"]} for task, spec in tasks.items()},
        "group_subtasks": {**{task: [] for task in tasks if task not in (groups or {})}, **(groups or {})},
        "versions": {task: 1.0 for task in tasks},
        "n-shot": {task: 0 for task in tasks},
        "config": {"model": "hf", "model_args": f"pretrained={model}"},
    }
    samples = {task: [_lm_sample(task, s) for s in spec["samples"]] for task, spec in tasks.items() if spec.get("samples")}
    tracker.save_results_aggregated(results=results, samples=samples)
    for task, task_samples in samples.items():
        tracker.save_results_samples(task_name=task, samples=task_samples)
    return max((out / tracker.general_config_tracker.model_name_sanitized).glob("results_*.json"))


def _lm_sample(task: str, spec: dict) -> dict:
    """One logged sample as lm-eval's evaluator builds it (``example`` plus the metric values)."""
    metrics = {k: v for k, v in spec.items() if k not in ("doc_id", "filter")}
    return {
        "doc_id": spec["doc_id"],
        "doc": {"question": f"{task} {spec['doc_id']}"},
        "target": "1",
        "arguments": [(f"{task} {spec['doc_id']}", {"until": ["\n"]})],
        "resps": [["1"]],
        "filtered_resps": ["1"],
        "filter": spec.get("filter", "none"),
        "metrics": list(metrics),
        "doc_hash": "d",
        "prompt_hash": "p",
        "target_hash": "t",
        **metrics,
    }


def aisbench_summary(path: Path, rows: list[tuple], models: tuple[str, ...] = ("vllm-api-general-chat",)) -> Path:
    """rows: (dataset, version, metric, mode, total_count, cell per model); cells like '75.00 (30/40)'."""
    table = [["dataset", "version", "metric", "mode", "total_count", *models]] + [[str(v) for v in row] for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(row) for row in table) + "\n", encoding="utf-8")
    return path
