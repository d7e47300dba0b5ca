"""Write the OpenCompass Python config for an ``[llm]`` suite.

The file is a plain OpenCompass config (HumanEval datasets aside: their code is run by our sandbox,
not by OpenCompass's evaluator) that a person can also run by hand
(``PYTHONPATH=<its folder> opencompass <file> -w <work dir>``): one API model (``AccuracyOpenAISDK``
for OpenAI-compatible servers, ``VLLMGenerateAPI`` for vLLM's /generate), the datasets (OpenCompass
dataset configs by file, custom ``.jsonl`` files in OpenCompass's custom format), and the
partitioner/runner settings passed through from ``[llm.runner]`` (local workers, Slurm, DLC).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from accuracy.io import write_bytes_atomic
from accuracy.llm.suite_config import LLMSuite

MODELS_MODULE = "accuracy_oc_models"  # the name oc_models.py gets beside the config
_API_META_TEMPLATE = {
    "round": [{"role": "HUMAN", "api_role": "HUMAN"}, {"role": "BOT", "api_role": "BOT", "generate": True}]
}


def model_config(llm: LLMSuite) -> dict[str, Any]:
    """The ``models = [...]`` entry for the suite's endpoint (a dict of literals; ``type`` apart)."""
    generation = llm.generation
    common: dict[str, Any] = {
        "abbr": llm.abbr,
        "path": llm.model,
        "max_seq_len": generation.max_seq_len,
        "max_out_len": generation.max_out_len,
        "batch_size": generation.batch_size,
        "query_per_second": generation.query_per_second,
        "retry": generation.retry,
        "temperature": generation.temperature,
        "timeout": generation.timeout,
        "meta_template": _API_META_TEMPLATE,
        "run_cfg": {"num_gpus": 0},
    }
    if generation.max_workers is not None:
        common["max_workers"] = generation.max_workers
    if llm.api == "openai":
        bases = llm.base_urls[0] if len(llm.base_urls) == 1 else list(llm.base_urls)
        model = {"type": "AccuracyOpenAISDK", **common, "key": llm.key, "openai_api_base": bases}
        # OpenCompass loads this tokenizer to count tokens; a local folder means nothing is fetched.
        model["tokenizer_path"] = str(llm.tokenizer) if llm.tokenizer else llm.model
        return model
    urls = [f"{base}/generate" for base in llm.base_urls]
    return {"type": "VLLMGenerateAPI", **common, "key": llm.key, "url": urls[0] if len(urls) == 1 else urls}


def custom_dataset_configs(llm: LLMSuite) -> list[dict[str, Any]]:
    """Custom datasets as OpenCompass expands them itself (entries without ``type``)."""
    entries = []
    for dataset in llm.custom_datasets:
        entry: dict[str, Any] = {"path": str(dataset.path), "abbr": dataset.abbr,
                                 "infer_method": dataset.infer_method}
        if dataset.data_type:
            entry["data_type"] = dataset.data_type
        entries.append(entry)
    return entries


def runner_configs(llm: LLMSuite) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``infer`` and ``eval`` sections: partitioner and runner from ``[llm.runner]``."""
    settings = dict(llm.runner)
    runner_type = settings.pop("type", "local")
    split_keys = {k: settings.pop(k) for k in ("num_split", "min_task_size", "num_worker") if k in settings}
    if split_keys:
        partitioner = {"type": "NumWorkerPartitioner", **split_keys}
    else:
        partitioner = {"type": "NaivePartitioner"}
    runner_class = {"local": "LocalRunner", "slurm": "SlurmSequentialRunner", "dlc": "DLCRunner"}[runner_type]
    runner: dict[str, Any] = {"type": runner_class, "max_num_workers": settings.pop("max_num_workers", 4)}
    if runner_type == "local":
        runner["max_workers_per_gpu"] = settings.pop("max_workers_per_gpu", 1)
    runner.update(settings)
    infer = {"partitioner": partitioner, "runner": {**runner, "task": {"type": "OpenICLInferTask"}}}
    eval_runner = {k: v for k, v in runner.items() if k != "max_workers_per_gpu" or runner_type == "local"}
    evaluate = {"partitioner": {"type": "NaivePartitioner"},
                "runner": {**eval_runner, "task": {"type": "OpenICLEvalTask"}}}
    return infer, evaluate


def render_config(llm: LLMSuite, dataset_files: dict[str, Path]) -> str:
    """The config's text. ``dataset_files`` maps each OpenCompass dataset config name to its file."""
    infer, evaluate = runner_configs(llm)
    lines = [
        f"# OpenCompass config written by `accuracy run` for suite {llm.suite.name!r} ({llm.suite.path}).",
        "# Edit the suite, not this file. To run it by hand:",
        "#   PYTHONPATH=<this folder> opencompass <this file> -w <work dir> --dump-eval-details",
        "from mmengine.config import Config as _Config",
        "from opencompass.partitioners import NaivePartitioner, NumWorkerPartitioner",
        "from opencompass.runners import DLCRunner, LocalRunner, SlurmSequentialRunner",
        "from opencompass.tasks import OpenICLEvalTask, OpenICLInferTask",
        f"from {MODELS_MODULE} import AccuracyOpenAISDK, DeferredToSandbox, VLLMGenerateAPI",
        "",
        "datasets = []",
    ]
    for name in llm.dataset_configs:
        lines += [
            f"# {name}: every '*_datasets' list in OpenCompass's config file, as `--datasets {name}` takes it",
            f"_loaded = _Config.fromfile({str(dataset_files[name])!r})",
            "datasets += [d for _k in _loaded.keys() if _k.endswith('_datasets') for d in _loaded[_k]]",
        ]
    lines += [
        f"datasets += {custom_dataset_configs(llm)!r}",
        "# HumanEval: model-written code runs in accuracy's sandbox after this run, never in OpenCompass.",
        "for _dataset in datasets:",
        "    _evaluator = _dataset.get('eval_cfg', {}).get('evaluator', {})",
        "    if str(_evaluator.get('type', '')).split('.')[-1].rstrip(\"'>\") == 'HumanEvalEvaluator':",
        "        _dataset['eval_cfg'] = dict(_dataset['eval_cfg'], evaluator=dict(type=DeferredToSandbox))",
        "",
        f"models = [{_literal(model_config(llm))}]",
        f"infer = {_literal(infer)}",
        f"eval = {_literal(evaluate)}",
        "",
    ]
    return "\n".join(lines)


def write_config(llm: LLMSuite, folder: Path, dataset_files: dict[str, Path]) -> Path:
    """Write ``opencompass_config.py`` and its model module into ``folder``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("oc_models.py"), folder / f"{MODELS_MODULE}.py")
    path = folder / "opencompass_config.py"
    write_bytes_atomic(path, render_config(llm, dataset_files).encode())
    return path


_CLASSES = {"AccuracyOpenAISDK", "VLLMGenerateAPI", "NaivePartitioner", "NumWorkerPartitioner", "LocalRunner",
            "SlurmSequentialRunner", "DLCRunner", "OpenICLInferTask", "OpenICLEvalTask"}


def _literal(value: Any) -> str:
    """``repr`` of plain data, except that ``{"type": "ClassName"}`` is written as ``type=ClassName``."""
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            text = item if key == "type" and item in _CLASSES else _literal(item)
            items.append(f"{key!r}: {text}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    return repr(value)
