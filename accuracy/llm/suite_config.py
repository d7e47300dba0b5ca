"""The ``[llm]`` suite schema: which endpoint, which datasets, which generation settings.

```toml
[llm]
api = "openai"                          # "openai": OpenAI-compatible (/v1, vLLM's server); "vllm": old /generate
base_url = "http://127.0.0.1:8000/v1"   # or base_urls = [...] for several replicas
model = "my-model"                      # the served model name (default: the one the server lists)
abbr = "npu-fp16"                       # the model's column in OpenCompass's summary (default: suite name)
key = "EMPTY"                           # or key_env = "OPENAI_API_KEY"
tokenizer = "/models/my-model"          # a local tokenizer folder (default: vLLM's model folder, if here)
python = "/opt/oc-venv/bin/python"      # the interpreter that has opencompass (default: this one)
work_dir = "work/my-suite"              # default: .accuracy-work/<suite name> beside the suite file
[llm.generation]                        # temperature, max_out_len, max_seq_len, batch_size,
temperature = 0.0                       # query_per_second, retry, timeout, max_workers
[llm.datasets]
configs = ["mmlu_gen", "ceval_gen"]     # OpenCompass dataset config names
custom = ["data/add.jsonl"]             # or {path = "...", data_type = "mcq", infer_method = "gen"}
[llm.runner]                            # passed through to OpenCompass: type = "local" | "slurm" | "dlc",
max_num_workers = 4                     # max_workers_per_gpu, partition, quotatype, retry, num_split ...
```
``[baseline]`` and ``[tolerance]`` are read by the score layer (``accuracy.scores.suite``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accuracy.config.suite import Suite, TableReader
from accuracy.errors import ConfigError
from accuracy.io import expand_user

APIS = ("openai", "vllm")
RUNNER_TYPES = ("local", "slurm", "dlc")
CUSTOM_DATA_TYPES = ("mcq", "qa", "circular-mcq")
INFER_METHODS = ("gen", "ppl")
LLM_KEYS = ("api", "base_url", "base_urls", "model", "abbr", "key", "key_env", "tokenizer", "python",
            "work_dir", "generation", "datasets", "runner")
# Keys of [llm.runner] we pass to OpenCompass's runner / partitioner, with their types.
RUNNER_KEYS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "max_num_workers": int,
    "max_workers_per_gpu": int,
    "partition": str,
    "quotatype": str,
    "qos": str,
    "retry": int,
    "num_split": int,
    "min_task_size": int,
    "num_worker": int,
    "aliyun_cfg": dict,
    "extra_command": list,
}


@dataclass
class Generation:
    """Generation and request settings, OpenCompass's names (OpenAISDK / GenInferencer)."""

    temperature: float = 0.0
    max_out_len: int = 16
    max_seq_len: int = 4096
    batch_size: int = 8
    query_per_second: int = 8
    retry: int = 2
    timeout: int = 120
    max_workers: int | None = None


@dataclass
class CustomDataset:
    """A ``.jsonl`` dataset in OpenCompass's custom MCQ/QA format (question, A, B, ..., answer)."""

    path: Path
    abbr: str
    data_type: str | None = None
    infer_method: str = "gen"


@dataclass
class LLMSuite:
    """A validated ``[llm]`` section; every path is absolute."""

    suite: Suite
    api: str
    base_urls: list[str]
    model: str
    abbr: str
    key: str
    tokenizer: Path | None
    python: str
    work_dir: Path
    generation: Generation
    dataset_configs: list[str] = field(default_factory=list)
    custom_datasets: list[CustomDataset] = field(default_factory=list)
    runner: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_names(self) -> list[str]:
        return [*self.dataset_configs, *(d.abbr for d in self.custom_datasets)]

    def fingerprint(self) -> dict[str, Any]:
        """What a work dir must agree with to be resumed: everything that changes the predictions."""
        return {
            "suite": self.suite.name,
            "suite_path": str(self.suite.path),
            "api": self.api,
            "model": self.model,
            "abbr": self.abbr,
            "generation": {k: v for k, v in vars(self.generation).items()
                           if k not in ("batch_size", "query_per_second", "max_workers", "retry", "timeout")},
            "datasets": self.dataset_names,
        }


def read_llm_suite(suite: Suite, *, work_dir: str | Path | None = None) -> LLMSuite:
    """Validate the ``[llm]`` section; errors name the suite file and the dotted key."""
    llm = suite.table("llm")
    llm.reject_unknown(LLM_KEYS)  # first: a typo reads "unknown key", not "missing required key"
    api = llm.string("api", "openai", choices=APIS)
    base_urls = _base_urls(llm)
    # openai: without a name, preflight takes the one model the server lists on /v1/models
    model = llm.string("model", "") if api == "openai" else llm.string("model")
    abbr = llm.string("abbr", suite.name)
    if not abbr or "/" in abbr:
        raise llm.error("abbr", "must be a non-empty name without '/'")
    key = _key(llm)
    tokenizer = llm.path_to("tokenizer", suite.folder, None)
    if api == "openai" and tokenizer is None and model and expand_user(model).is_dir():
        tokenizer = expand_user(model).resolve()
    # still None: preflight takes the folder a vLLM server reports it loaded the model from
    # (/v1/models "root") when that folder is here, else asks for llm.tokenizer (OpenCompass counts
    # prompt tokens with it; without a local folder it would try the hub).
    python = llm.string("python", sys.executable)
    default_work = suite.folder / ".accuracy-work" / suite.name
    configured_work = llm.path_to("work_dir", suite.folder, str(default_work), must_exist=False)
    generation = _generation(llm.table("generation"))
    configs, customs = _datasets(llm.table("datasets", required=True), suite)
    runner = _runner(llm.table("runner"))
    return LLMSuite(
        suite=suite, api=api, base_urls=base_urls, model=model, abbr=abbr, key=key,
        tokenizer=tokenizer, python=python,
        work_dir=Path(work_dir).resolve() if work_dir is not None else configured_work.resolve(),
        generation=generation, dataset_configs=configs, custom_datasets=customs, runner=runner,
    )


def _base_urls(llm: TableReader) -> list[str]:
    single = llm.get("base_url", str, None)
    several = llm.get("base_urls", list, None)
    if (single is None) == (several is None):
        raise llm.error("base_url", "give exactly one of base_url (a string) or base_urls (a list of replicas)")
    urls = [single] if single is not None else several
    if not urls:
        raise llm.error("base_urls", "must list at least one URL")
    for index, url in enumerate(urls):
        name = "base_url" if single is not None else f"base_urls[{index}]"
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise llm.error(name, f"must be an http(s) URL, got {url!r}")
    return [url.rstrip("/") for url in urls]


def _key(llm: TableReader) -> str:
    key = llm.get("key", str, None)
    key_env = llm.get("key_env", str, None)
    if key is not None and key_env is not None:
        raise llm.error("key", "give key or key_env, not both")
    if key_env is not None:
        if key_env not in os.environ:
            raise llm.error("key_env", f"environment variable {key_env} is not set")
        return os.environ[key_env]
    return key if key is not None else "EMPTY"


def _generation(table: TableReader) -> Generation:
    defaults = Generation()
    generation = Generation(
        temperature=table.number("temperature", defaults.temperature, minimum=0.0),
        max_out_len=_int(table, "max_out_len", defaults.max_out_len),
        max_seq_len=_int(table, "max_seq_len", defaults.max_seq_len),
        batch_size=_int(table, "batch_size", defaults.batch_size),
        query_per_second=_int(table, "query_per_second", defaults.query_per_second),
        retry=_int(table, "retry", defaults.retry),
        timeout=_int(table, "timeout", defaults.timeout),
        max_workers=_int(table, "max_workers", None),
    )
    table.reject_unknown()
    return generation


MAX_INT = 2**31 - 1  # token counts, batch sizes, seconds: the server's int32 (a 20-digit max_out_len reached vLLM)


def _int(table: TableReader, name: str, default: int | None) -> int | None:
    value = table.get(name, int, default)
    if value is not None and not 1 <= value <= MAX_INT:
        raise table.error(name, f"must be 1..{MAX_INT}, got {value}")
    return value


def _datasets(table: TableReader, suite: Suite) -> tuple[list[str], list[CustomDataset]]:
    configs = table.get("configs", list, [])
    for index, name in enumerate(configs):
        if not isinstance(name, str) or not name or "/" in name or name.endswith(".py"):
            raise table.error(f"configs[{index}]", f"must be an OpenCompass dataset config name like 'mmlu_gen', got {name!r}")
    customs = [_custom(table, index, item, suite) for index, item in enumerate(table.get("custom", list, []))]
    table.reject_unknown()
    if not configs and not customs:
        raise table.error("configs", "name at least one dataset (configs = [...] or custom = [...])")
    names = [*configs, *(c.abbr for c in customs)]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise table.error("custom", f"dataset names must be unique; repeated: {', '.join(duplicates)}")
    return configs, customs


def _custom(table: TableReader, index: int, item: Any, suite: Suite) -> CustomDataset:
    key = f"custom[{index}]"
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict):
        raise table.error(key, f"must be a path or a table {{path = ...}}, got {item!r}")
    reader = TableReader(table.path, table.key(key), item)
    path = reader.path_to("path", suite.folder)
    if path.suffix != ".jsonl":
        raise reader.error("path", f"custom datasets are OpenCompass .jsonl files, got {path.name}")
    data_type = reader.string("data_type", None, choices=CUSTOM_DATA_TYPES)
    infer_method = reader.string("infer_method", "gen", choices=INFER_METHODS)
    reader.reject_unknown()
    dataset = CustomDataset(path=path.resolve(), abbr=path.name.split(".")[0], data_type=data_type,
                            infer_method=infer_method)
    check_custom_columns(dataset, reader)
    return dataset


def check_custom_columns(dataset: CustomDataset, reader: TableReader) -> None:
    """Every row has the columns OpenCompass's custom format needs (question/answer, options A, B, ...).

    OpenCompass infers the format from the first row only and fails deep inside a task when a
    later row lacks a column; this finds it up front and names the line.
    """
    path = dataset.path
    first: dict[str, Any] | None = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"malformed JSON: {exc.msg}", path=path, where=f"line {number}") from None
            if not isinstance(row, dict):
                raise ConfigError("each line must be a JSON object", path=path, where=f"line {number}")
            if first is None:
                first = row
                options = [chr(ord("A") + i) for i in range(26) if chr(ord("A") + i) in row]
                mcq = dataset.data_type in ("mcq", "circular-mcq") or (dataset.data_type is None and len(options) > 1)
                required = ["question", "answer", *(options if mcq else [])]
                if mcq and len(options) < 2:
                    required += ["A", "B"]
            missing = [column for column in required if column not in row]
            if missing:
                raise ConfigError(
                    f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    f"(OpenCompass's custom format needs {', '.join(required)})",
                    path=path, where=f"line {number}",
                )
    if first is None:
        raise reader.error("path", f"dataset is empty: {path}")


def _runner(table: TableReader) -> dict[str, Any]:
    runner: dict[str, Any] = {}
    for name, types in RUNNER_KEYS.items():
        value = table.get(name, types, None)
        if value is not None:
            runner[name] = value
    if runner.get("type", "local") not in RUNNER_TYPES:
        raise table.error("type", f"must be one of {', '.join(RUNNER_TYPES)}, got {runner['type']!r}")
    if runner.get("type") == "slurm" and "partition" not in runner:
        raise table.error("partition", "a slurm runner needs a partition")
    table.reject_unknown()
    return runner
