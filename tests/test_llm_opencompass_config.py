"""The generated OpenCompass config, loaded the way the opencompass CLI loads it (mmengine's
Config.fromfile, then OpenCompass's own expansion of custom datasets)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from accuracy.config import load_suite
from accuracy.errors import ConfigError
from accuracy.llm.opencompass.config import write_config
from accuracy.llm.opencompass.runner import find_dataset_configs, opencompass_root
from accuracy.llm.suite_config import read_llm_suite

pytest.importorskip("opencompass")

ROW = {"question": "1+2=?", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "C"}


def make_suite(folder: Path, llm: str):
    (folder / "add.jsonl").write_text(json.dumps(ROW) + "\n")
    path = folder / "suite.toml"
    path.write_text(f'[suite]\nname = "s"\n[llm]\n{llm}\n[baseline]\npath = "b.json"\n')
    return read_llm_suite(load_suite(path))


@pytest.fixture
def load_config(monkeypatch):
    """Write the config and read it back with OpenCompass's loader, as `opencompass CONFIG` does
    (with the config's folder on the path, as the runner's PYTHONPATH puts it)."""
    from mmengine.config import Config
    from opencompass.utils.run import try_fill_in_custom_cfgs

    def load(llm, dataset_files=None):
        path = write_config(llm, llm.work_dir / "_accuracy", dataset_files or {})
        monkeypatch.syspath_prepend(str(path.parent))
        return try_fill_in_custom_cfgs(Config.fromfile(str(path), format_python_code=False))

    return load


def test_openai_replicas_generation_and_local_runner(tmp_path, load_config):
    llm = make_suite(tmp_path, (
        'base_urls = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]\nmodel = "qwen"\n'
        'tokenizer = "."\nkey = "k"\n[llm.generation]\nmax_out_len = 16\nbatch_size = 4\nquery_per_second = 3\n'
        'retry = 5\ntimeout = 30\n[llm.datasets]\ncustom = ["add.jsonl"]\n[llm.runner]\nmax_num_workers = 6\n'
    ))
    config = load_config(llm)
    (model,) = config["models"]
    assert model["type"].__name__ == "AccuracyOpenAISDK"
    assert model["openai_api_base"] == ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    assert model["tokenizer_path"] == str(tmp_path.resolve())  # local: nothing fetched
    assert (model["path"], model["key"], model["abbr"]) == ("qwen", "k", "s")
    assert (model["max_out_len"], model["batch_size"], model["query_per_second"]) == (16, 4, 3)
    assert (model["retry"], model["timeout"], model["temperature"]) == (5, 30, 0.0)
    assert config["infer"]["runner"]["type"].__name__ == "LocalRunner"
    assert config["infer"]["runner"]["max_num_workers"] == 6
    assert config["infer"]["partitioner"]["type"].__name__ == "NaivePartitioner"
    (dataset,) = config["datasets"]
    assert dataset["abbr"] == "add" and dataset["path"] == str((tmp_path / "add.jsonl").resolve())
    assert dataset["reader_cfg"]["input_columns"] == ["question", "A", "B", "C", "D"]


def test_vllm_generate_slurm_and_split_pass_through(tmp_path, load_config):
    llm = make_suite(tmp_path, (
        'api = "vllm"\nbase_urls = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]\nmodel = "llama"\n'
        '[llm.datasets]\ncustom = ["add.jsonl"]\n'
        '[llm.runner]\ntype = "slurm"\npartition = "llm"\nquotatype = "auto"\nmax_num_workers = 32\nnum_split = 8\n'
    ))
    config = load_config(llm)
    (model,) = config["models"]
    assert model["type"].__name__ == "VLLMGenerateAPI"
    assert model["url"] == ["http://10.0.0.1:8080/generate", "http://10.0.0.2:8080/generate"]
    runner = config["infer"]["runner"]
    assert runner["type"].__name__ == "SlurmSequentialRunner"
    assert (runner["partition"], runner["quotatype"], runner["max_num_workers"]) == ("llm", "auto", 32)
    assert config["infer"]["partitioner"]["type"].__name__ == "NumWorkerPartitioner"
    assert config["infer"]["partitioner"]["num_split"] == 8
    assert config["eval"]["runner"]["task"]["type"].__name__ == "OpenICLEvalTask"


def test_dataset_config_names_load_every_dataset_list(tmp_path, load_config):
    llm = make_suite(tmp_path, 'base_url = "http://127.0.0.1:1/v1"\nmodel = "m"\ntokenizer = "."\n[llm.datasets]\nconfigs = ["gsm8k_gen"]\n')
    files = find_dataset_configs(opencompass_root(sys.executable), ["gsm8k_gen"])
    config = load_config(llm, files)
    assert [d["abbr"] for d in config["datasets"]] == ["gsm8k"]


def test_an_unknown_dataset_config_is_refused_with_suggestions():
    root = opencompass_root(sys.executable)
    with pytest.raises(ConfigError) as caught:
        find_dataset_configs(root, ["mmlu_gen", "mmlu_gne"], path="s.toml")
    assert "[llm.datasets.configs[1]]" in str(caught.value) and "mmlu_gen" in str(caught.value)


def test_an_interpreter_without_opencompass_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"\[llm.python\].*not found"):
        opencompass_root(str(tmp_path / "no-python"), path="s.toml")
