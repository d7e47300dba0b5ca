"""The [llm] suite schema: what a valid suite reads as, and the one-line errors of bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accuracy.config import load_suite
from accuracy.errors import ConfigError
from accuracy.llm.suite_config import read_llm_suite

ROW = {"question": "1+2=?", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "C"}


def write_suite(folder: Path, llm: str, *, rows: list[dict] | None = None) -> Path:
    data = folder / "data"
    data.mkdir(exist_ok=True)
    (data / "add.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (rows or [ROW, ROW])))
    path = folder / "suite.toml"
    path.write_text(f'[suite]\nname = "s"\n[llm]\n{llm}\n[baseline]\npath = "b.json"\n')
    return path


BASE = 'base_url = "http://127.0.0.1:9/v1"\nmodel = "m"\ntokenizer = "."\n[llm.datasets]\ncustom = ["data/add.jsonl"]\n'


def test_a_minimal_suite_gets_real_defaults(tmp_path):
    llm = read_llm_suite(load_suite(write_suite(tmp_path, BASE)))
    assert llm.api == "openai" and llm.base_urls == ["http://127.0.0.1:9/v1"]
    assert llm.abbr == "s" and llm.key == "EMPTY"
    assert llm.generation.temperature == 0.0 and llm.generation.retry == 2
    assert llm.work_dir == (tmp_path / ".accuracy-work" / "s").resolve()
    assert [d.abbr for d in llm.custom_datasets] == ["add"]
    assert llm.custom_datasets[0].path == (tmp_path / "data" / "add.jsonl").resolve()


def test_replicas_runner_and_generation_are_read(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    suite = write_suite(tmp_path, (
        'api = "vllm"\nbase_urls = ["http://10.0.0.1:8080", "http://10.0.0.2:8080/"]\nmodel = "llama"\n'
        'key_env = "MY_KEY"\n[llm.generation]\nmax_out_len = 512\nbatch_size = 2\nquery_per_second = 4\n'
        '[llm.datasets]\nconfigs = ["mmlu_gen"]\ncustom = [{path = "data/add.jsonl", data_type = "mcq"}]\n'
        '[llm.runner]\ntype = "slurm"\npartition = "llm"\nmax_num_workers = 32\nnum_split = 8\n'
    ))
    llm = read_llm_suite(load_suite(suite), work_dir=tmp_path / "w")
    assert llm.api == "vllm" and llm.base_urls == ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
    assert llm.key == "sk-test" and llm.work_dir == (tmp_path / "w").resolve()
    assert (llm.generation.max_out_len, llm.generation.batch_size, llm.generation.query_per_second) == (512, 2, 4)
    assert llm.dataset_names == ["mmlu_gen", "add"]
    assert llm.runner == {"type": "slurm", "partition": "llm", "max_num_workers": 32, "num_split": 8}


@pytest.mark.parametrize(
    ("llm", "where", "words"),
    [
        (BASE.replace("model", "modle"), "llm.modle", "unknown key"),
        (BASE.replace('base_url = "http://127.0.0.1:9/v1"', 'base_url = "127.0.0.1:9"'), "llm.base_url", "http(s) URL"),
        (BASE.replace('base_url = "http://127.0.0.1:9/v1"\n', ""), "llm.base_url", "exactly one"),
        ('api = "grpc"\n' + BASE, "llm.api", "must be one of"),
        (BASE + "[llm.generation]\nbatch_size = 0\n", "llm.generation.batch_size", "1..2147483647, got 0"),
        (BASE + "[llm.generation]\nmax_out_len = 99999999999999999999\n", "llm.generation.max_out_len",
         "1..2147483647, got 99999999999999999999"),
        (BASE + "[llm.generation]\ntemprature = 0.5\n", "llm.generation.temprature", "unknown key"),
        (BASE.replace("data/add.jsonl", "data/none.jsonl"), "llm.datasets.custom[0].path", "file not found"),
        (BASE.replace('custom = ["data/add.jsonl"]', 'configs = ["mmlu_gen.py"]'), "llm.datasets.configs[0]", "config name"),
        (BASE.replace('custom = ["data/add.jsonl"]', ""), "llm.datasets.configs", "at least one dataset"),
        (BASE + "[llm.runner]\ntype = \"slurm\"\n", "llm.runner.partition", "partition"),
        (BASE + "[llm.runner]\ntype = \"k8s\"\n", "llm.runner.type", "must be one of"),
        (BASE.replace('model = "m"', 'model = "m"\nkey_env = "SURELY_UNSET_VARIABLE_42"'), "llm.key_env", "not set"),
    ],
)
def test_bad_suites_name_the_file_and_key(tmp_path, llm, where, words):
    suite = write_suite(tmp_path, llm)
    with pytest.raises(ConfigError) as caught:
        read_llm_suite(load_suite(suite))
    message = str(caught.value)
    assert message.startswith(str(suite.resolve())) and f"[{where}]" in message and words in message


def test_the_tokenizer_defaults_to_a_local_model_folder_else_is_left_to_preflight(tmp_path):
    suite = write_suite(tmp_path, BASE.replace('tokenizer = "."\n', ""))
    assert read_llm_suite(load_suite(suite)).tokenizer is None  # preflight asks the server (vLLM's root)
    served_from_a_folder = write_suite(tmp_path, BASE.replace('tokenizer = "."\n', "").replace('"m"', f'"{tmp_path}"'))
    assert read_llm_suite(load_suite(served_from_a_folder)).tokenizer == tmp_path.resolve()


def test_a_custom_dataset_missing_a_column_names_the_line(tmp_path):
    rows = [ROW, ROW, {k: v for k, v in ROW.items() if k != "C"}]
    suite = write_suite(tmp_path, BASE, rows=rows)
    with pytest.raises(ConfigError) as caught:
        read_llm_suite(load_suite(suite))
    assert str(caught.value).startswith(str(tmp_path / "data" / "add.jsonl"))
    assert "[line 3]" in str(caught.value) and "missing column C" in str(caught.value)


def test_a_qa_dataset_needs_question_and_answer_only(tmp_path):
    suite = write_suite(tmp_path, BASE, rows=[{"question": "2+2=?", "answer": "4"}, {"question": "1+1=?"}])
    with pytest.raises(ConfigError, match=r"\[line 2\]: missing column answer"):
        read_llm_suite(load_suite(suite))


def test_malformed_jsonl_names_the_line(tmp_path):
    suite = write_suite(tmp_path, BASE)
    (tmp_path / "data" / "add.jsonl").write_text(json.dumps(ROW) + "\n{not json\n")
    with pytest.raises(ConfigError, match=r"add.jsonl \[line 2\]: malformed JSON"):
        read_llm_suite(load_suite(suite))


def test_fingerprint_ignores_speed_settings_only(tmp_path):
    slow = read_llm_suite(load_suite(write_suite(tmp_path, BASE)))
    fast = read_llm_suite(load_suite(write_suite(tmp_path, BASE + "[llm.generation]\nbatch_size = 64\n")))
    longer = read_llm_suite(load_suite(write_suite(tmp_path, BASE + "[llm.generation]\nmax_out_len = 64\n")))
    assert slow.fingerprint() == fast.fingerprint()
    assert slow.fingerprint() != longer.fingerprint()
