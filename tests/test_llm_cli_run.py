"""`accuracy run` on bad input: one line naming the file and key, exit 2, before OpenCompass starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from accuracy.cli import main
from tests.fixtures.llm_servers import Stub, free_port

pytest.importorskip("opencompass")

ROW = {"question": "1+2=?", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "C"}


def write_suite(folder: Path, *, name: str = "s", base_url: str | None = None, datasets: str = 'custom = ["add.jsonl"]',
                baseline: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add.jsonl").write_text(json.dumps(ROW) + "\n")
    if baseline:
        (folder / "b.json").write_text(json.dumps({"schema": 1, "model": "s", "scores": [
            {"dataset": "add", "metric": "accuracy", "value": 100.0}]}))
    base_url = base_url or f"http://127.0.0.1:{free_port()}/v1"
    path = folder / f"{name}.toml"
    path.write_text(f'[suite]\nname = "{name}"\n[llm]\nbase_url = "{base_url}"\nmodel = "m"\ntokenizer = "."\n'
                    f'[llm.datasets]\n{datasets}\n[baseline]\npath = "b.json"\n')
    return path


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    captured = capsys.readouterr()
    return code, captured.err


def no_opencompass_run(work_dir: Path) -> bool:
    return not list(work_dir.glob("2*_*"))


def test_an_unreachable_endpoint_is_reported_before_anything_starts(tmp_path, capsys):
    suite = write_suite(tmp_path)
    code, err = run(capsys, str(suite))
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"accuracy run: error: {suite}") and "[llm.base_url]" in line and "not serving" in line
    assert no_opencompass_run(tmp_path / ".accuracy-work" / "s")


def test_a_dataset_name_opencompass_does_not_know(tmp_path, capsys):
    suite = write_suite(tmp_path, datasets='configs = ["mmlu_gne"]')
    code, err = run(capsys, str(suite))
    assert code == 2 and "[llm.datasets.configs[0]]" in err and "no dataset config 'mmlu_gne'" in err
    assert "did you mean" in err and "mmlu_gen" in err


def test_a_custom_dataset_with_a_missing_column(tmp_path, capsys):
    suite = write_suite(tmp_path)
    (tmp_path / "add.jsonl").write_text(json.dumps(ROW) + "\n" + json.dumps({"question": "q", "A": "1"}) + "\n")
    code, err = run(capsys, str(suite))
    assert code == 2 and f"{tmp_path / 'add.jsonl'} [line 2]: missing columns answer, B, C, D" in err


def test_a_work_dir_of_another_suite_is_refused(tmp_path, capsys):
    server = Stub({("GET", "/v1/models"): [(200, {"data": [{"id": "m"}]})]})
    try:
        first = write_suite(tmp_path / "one", name="one", base_url=f"{server.url}/v1")
        other = write_suite(tmp_path / "two", name="two", base_url=f"{server.url}/v1")
        shared = tmp_path / "shared-work"
        from accuracy.config import load_suite
        from accuracy.llm.suite import prepare

        prepare(load_suite(first), work_dir=shared)  # claims the work dir (what a run does first)
        code, err = run(capsys, str(other), "--work-dir", str(shared))
    finally:
        server.stop()
    assert code == 2 and f"{shared}: work dir belongs to suite 'one'" in err
    assert no_opencompass_run(shared)


def test_a_foreign_non_empty_work_dir_is_refused(tmp_path, capsys):
    suite = write_suite(tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code, err = run(capsys, str(suite), "--work-dir", str(foreign))
    assert code == 2 and "not made by `accuracy run`" in err
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_resuming_after_the_suite_changed_is_refused(tmp_path, capsys):
    server = Stub({("GET", "/v1/models"): [(200, {"data": [{"id": "m"}]})]})
    try:
        suite = write_suite(tmp_path, base_url=f"{server.url}/v1")
        from accuracy.config import load_suite
        from accuracy.llm.suite import prepare

        prepare(load_suite(suite))
        suite.write_text(suite.read_text().replace('tokenizer = "."', 'tokenizer = "."\n[llm.generation]\nmax_out_len = 99'))
        code, err = run(capsys, str(suite), "--resume")
    finally:
        server.stop()
    assert code == 2 and "cannot resume: the suite changed since that run (generation)" in err


def test_a_missing_baseline_is_reported_up_front(tmp_path, capsys):
    suite = write_suite(tmp_path, baseline=False)
    code, err = run(capsys, str(suite))
    assert code == 2 and "[baseline.path]" in err and "--update-baselines" in err


def test_a_non_llm_suite_is_a_usage_error(tmp_path, capsys):
    suite = tmp_path / "scores.toml"
    suite.write_text('[scores]\ncandidate = "x.csv"\n[baseline]\npath = "b.json"\n')
    code, err = run(capsys, str(suite))
    assert code == 2 and "is a scores suite" in err


def test_the_committed_suite_is_valid(tmp_path):
    from accuracy.config import load_suite
    from accuracy.llm.suite_config import read_llm_suite

    folder = tmp_path / "llm-tiny"
    shutil.copytree(Path(__file__).resolve().parents[1] / "suites" / "llm-tiny", folder)
    text = (folder / "llm-tiny.toml").read_text().replace('model = "tiny-lm"', f'model = "{tmp_path}"')
    (folder / "llm-tiny.toml").write_text(text)
    llm = read_llm_suite(load_suite(folder / "llm-tiny.toml"))
    assert llm.dataset_names == ["add", "add_more"]


def fake_vllm(root: Path, *, limit: int = 256):
    """A scripted server answering like vLLM: /v1/models with root and max_model_len, /tokenize."""
    models = {"data": [{"id": "tiny-lm", "root": str(root), "max_model_len": limit}]}
    count = lambda body: {"count": len(body["messages"][0]["content"]), "max_model_len": limit}
    return Stub({("GET", "/v1/models"): [(200, models)], ("POST", "/tokenize"): [(200, count)]})


def bare_suite(folder: Path, base_url: str, rows: list[dict]) -> Path:
    """A suite that names neither the model nor the tokenizer: preflight asks the server."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "b.json").write_text(json.dumps({"schema": 1, "model": "s", "scores": [
        {"dataset": "add", "metric": "accuracy", "value": 100.0}]}))
    path = folder / "s.toml"
    path.write_text(f'[suite]\nname = "s"\n[llm]\nbase_url = "{base_url}"\n[llm.generation]\nmax_out_len = 4\n'
                    '[llm.datasets]\ncustom = ["add.jsonl"]\n[baseline]\npath = "b.json"\n')
    return path


def test_fake_vllm_names_the_model_and_its_folder_gives_the_tokenizer(tmp_path):
    from accuracy.config import load_suite
    from accuracy.llm.suite import prepare

    server = fake_vllm(tmp_path)
    try:
        prepared = prepare(load_suite(bare_suite(tmp_path / "s", f"{server.url}/v1", [ROW])))
    finally:
        server.stop()
    assert prepared.llm.model == "tiny-lm" and prepared.llm.tokenizer == tmp_path.resolve()
    assert prepared.llm.generation.max_seq_len == 256  # OpenCompass's limit capped to the server's
    config = prepared.config.read_text()
    assert "'path': 'tiny-lm'" in config and f"'tokenizer_path': '{tmp_path.resolve()}'" in config
    assert any("max_model_len 256" in note for note in prepared.notes)


def test_fake_vllm_model_folder_elsewhere_asks_for_the_tokenizer(tmp_path, capsys):
    server = fake_vllm(Path("/models/not-on-this-machine"))
    try:
        suite = bare_suite(tmp_path, f"{server.url}/v1", [ROW])
        code, err = run(capsys, str(suite))
    finally:
        server.stop()
    assert code == 2 and f"{suite} [llm.tokenizer]" in err and "not a folder here" in err


def test_fake_vllm_a_prompt_that_cannot_fit_is_named_before_the_run(tmp_path, capsys):
    long_row = {**ROW, "question": "x" * 300}
    server = fake_vllm(tmp_path)
    try:
        suite = bare_suite(tmp_path, f"{server.url}/v1", [ROW, long_row])
        code, err = run(capsys, str(suite))
    finally:
        server.stop()
    line = err.strip().splitlines()[-1]
    assert code == 2 and f"{tmp_path / 'add.jsonl'} [line 2]" in line and "max_model_len 256" in line
    assert not any(path == "/v1/chat/completions" for _, path, _ in server.requests)
    assert no_opencompass_run(tmp_path / ".accuracy-work" / "s")
