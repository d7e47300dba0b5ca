"""End to end: the tiny LM served by the real vLLM (its OpenAI-compatible server) in fp32 (reference)
and bf16 (candidate), evaluated by the real OpenCompass CLI through `accuracy run`, and gated.

One vLLM server runs at a time (``tests.fixtures.llm_servers.OneVLLM``): the fp32 tests come first,
then the bf16 candidate. The reference run is killed halfway and resumed: vLLM's own request counter
(``/metrics``) and a recording proxy show that no finished sample is requested twice. A proxy that
answers 500 to a few questions, and one that sends vLLM a request it refuses, show that failed
requests are caught (with vLLM's error message), not scored. A prompt that does not fit the server's
``max_model_len`` is refused before OpenCompass starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.llm_servers import GenerateShim, Proxy
from tests.fixtures.tiny_lm import prompt_of

pytestmark = [pytest.mark.slow, pytest.mark.llm]

SUITE_FOLDER = Path(__file__).resolve().parents[1] / "suites" / "llm-tiny"
MODEL_ABBR = "tiny-lm"
SERVED_NAME = "tiny-lm"  # the committed suite's model = "tiny-lm": vLLM's --served-model-name


def copy_suite(target: Path, *, base_url: str) -> Path:
    """The committed llm-tiny suite, pointed at a server of this test. Nothing else changes: the
    tokenizer is the folder vLLM reports it loaded (preflight reads /v1/models)."""
    shutil.copytree(SUITE_FOLDER, target, ignore=shutil.ignore_patterns(".accuracy-work", "baseline.json",
                                                                         "__pycache__"))
    suite = target / "llm-tiny.toml"
    text = suite.read_text(encoding="utf-8")
    assert re.search(rf'(?m)^model = "{SERVED_NAME}"', text), "the committed suite names the served model"
    assert not re.search(r"(?m)^tokenizer", text)
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{base_url}"', text)
    suite.write_text(text, encoding="utf-8")
    return suite


def variant(suite: Path, name: str, *, base_url: str, api: str = "openai") -> Path:
    """A copy of the reference suite under another name (its own work dir), at another endpoint."""
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{base_url}"', suite.read_text())
    text = text.replace('api = "openai"', f'api = "{api}"').replace('name = "llm-tiny"', f'name = "{name}"')
    path = suite.with_name(f"{name}.toml")
    path.write_text(text)
    return path


def accuracy_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accuracy", "run", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, HF_HUB_OFFLINE="1"), check=False)


def dataset_rows() -> dict[str, list[dict]]:
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for path in sorted((SUITE_FOLDER / "data").glob("*.jsonl"))}


def all_prompts() -> set[str]:
    return {prompt_of(row) for rows in dataset_rows().values() for row in rows}


def checkpointed_prompts(work_dir: Path) -> set[str]:
    """Prompts whose predictions OpenCompass had saved (checkpoints and finished files)."""
    prompts = set()
    for path in work_dir.glob(f"*/predictions/{MODEL_ABBR}/*.json*"):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":  # a checkpoint: one {"idx", "origin_prompt", "prediction", ...} a line
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = list(json.loads(text).values())
        prompts.update(item["origin_prompt"][-1]["prompt"] for item in items)
    return prompts


def kill_when(process: subprocess.Popen, condition, *, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before it could be interrupted:\n"
                        f"{process.stderr.read() if process.stderr else ''}")
        if condition():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("the run made no progress to interrupt")


def settled_count(server, *, quiet: float = 1.5, timeout: float = 30) -> int:
    """vLLM's finished-request count once it has stopped moving (requests in flight at a kill end)."""
    deadline = time.monotonic() + timeout
    count = server.finished_requests()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = server.finished_requests()
        if now == count:
            return now
        count = now
    return count


@pytest.fixture(scope="module")
def reference(vllm, tmp_path_factory):
    """The fp32 reference, recorded as the baseline: interrupted halfway, then resumed."""
    fp32 = vllm.serve("float32")
    proxy = Proxy(fp32.base_url)
    try:
        suite = copy_suite(tmp_path_factory.mktemp("reference") / "llm-tiny", base_url=proxy.base_url)
        work_dir = suite.parent / ".accuracy-work" / "llm-tiny"
        process = subprocess.Popen(
            [sys.executable, "-m", "accuracy", "run", str(suite), "--update-baselines"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
        kill_when(process, lambda: len(checkpointed_prompts(work_dir)) >= 12)
        served_before = settled_count(fp32)  # what vLLM finished, in-flight requests included
        finished = checkpointed_prompts(work_dir)
        before = len(proxy.prompts)
        resumed = accuracy_run(str(suite), "--resume", "--update-baselines", "--json", str(suite.parent / "ref.json"))
        served_after = settled_count(fp32)
        yield {
            "suite": suite, "work_dir": work_dir, "finished": finished, "proxy": proxy,
            "requests_after_resume": proxy.prompts[before:], "requests_before": proxy.prompts[:before],
            "served_by_vllm_after_resume": served_after - served_before,
            "resumed": resumed, "result": json.loads((suite.parent / "ref.json").read_text())
            if (suite.parent / "ref.json").exists() else None,
        }
    finally:
        proxy.stop()


def test_resumed_reference_resends_no_finished_sample(reference):
    resumed = reference["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    finished, after = reference["finished"], reference["requests_after_resume"]
    assert finished and finished < all_prompts()  # interrupted halfway, really
    assert not finished & set(after), "finished samples were requested again after --resume"
    assert set(reference["requests_before"]) | set(after) >= all_prompts()
    assert set(after) == all_prompts() - finished
    assert len(after) == len(set(after))
    # counted at the server: vLLM finished exactly one request per unfinished sample after the resume
    assert reference["served_by_vllm_after_resume"] == len(all_prompts() - finished)


def test_reference_scores_come_from_the_predictions(reference):
    result = reference["result"]
    assert result["verdict"] == "pass" and result["baseline_updated"]
    scores = json.loads(Path(result["scores"]).read_text())["scores"]
    run_dir = Path(result["run_dir"])
    for score in scores:
        predictions = json.loads((run_dir / "predictions" / MODEL_ABBR / f"{score['dataset']}.json").read_text())
        correct = sum(p["prediction"].strip() == p["gold"] for p in predictions.values())
        assert score["value"] == pytest.approx(100 * correct / len(predictions), abs=0.01)
        assert len(score["samples"]) == len(predictions) and not score.get("invalid")
    assert min(s["value"] for s in scores) > 50  # trained: far above the 25 % of guessing


def test_failed_requests_are_caught_with_vllms_error_not_scored(reference, vllm, tmp_path):
    """Three questions get HTTP 500 from a proxy (retried, then marked failed); one is sent to vLLM
    with max_tokens = 0, which vLLM itself refuses (400, not retried): its error message is listed."""
    fp32 = vllm.serve("float32")
    rows = dataset_rows()["add"]
    refused = {prompt_of(row) for row in rows[3:6]}
    invalid = prompt_of(rows[7])
    proxy = Proxy(fp32.base_url, fail=lambda prompt: prompt in refused,
                  rewrite=lambda prompt, body: {**body, "max_tokens": 0} if prompt == invalid else body)
    try:
        flaky_suite = variant(reference["suite"], "llm-tiny-flaky", base_url=proxy.base_url)
        done = accuracy_run(str(flaky_suite), "--json", str(tmp_path / "flaky.json"))
    finally:
        proxy.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(proxy.failed) >= 3 * 3  # each refused question was retried (first try + 2 retries)
    assert proxy.prompts.count(invalid) == 1  # a 400 is the server's final word: not retried
    result = json.loads((tmp_path / "flaky.json").read_text())
    add = result["predictions"]["add"]
    assert add["failed"] == ["3", "4", "5", "7"]
    assert result["predictions"]["add_more"]["failed"] == []
    reasons = add["reasons"]
    assert set(reasons) == {"3", "4", "5", "7"}
    assert all(reasons[k].startswith("HTTP 500") and "injected failure" in reasons[k] for k in ("3", "4", "5"))
    assert reasons["7"].startswith("HTTP 400") and "max_tokens" in reasons["7"], reasons["7"]  # vLLM's words
    add_check = next(c for c in result["checks"] if c["name"].startswith("add/"))
    add_more = next(c for c in result["checks"] if c["name"].startswith("add_more/"))
    assert not add_check["passed"] and add_more["passed"]
    assert "4 failed" in done.stderr and reasons["7"][:60] in done.stderr


def test_a_prompt_longer_than_max_model_len_is_refused_before_the_run(reference, vllm, tmp_path):
    """vLLM reports max_model_len on /v1/models; a sample whose prompt and answer cannot fit is named
    (dataset file and line) and nothing is sent for completion."""
    fp32 = vllm.serve("float32")
    suite = variant(reference["suite"], "llm-tiny-long", base_url=fp32.base_url)
    data = suite.parent / "data" / "add_more.jsonl"
    rows = data.read_text().splitlines()
    long_row = {**json.loads(rows[2]), "question": "1+1=? " + "then add zero, " * 20}
    rows[2] = json.dumps(long_row)
    long_data = data.with_name("add_long.jsonl")
    long_data.write_text("\n".join(rows) + "\n")
    suite.write_text(suite.read_text().replace("data/add_more.jsonl", "data/add_long.jsonl"))
    served_before = fp32.finished_requests()
    done = accuracy_run(str(suite), "--json", str(tmp_path / "long.json"))
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert f"{long_data} [line 3]" in line and "max_model_len 256" in line, line
    assert fp32.finished_requests() == served_before
    assert not list((suite.parent / ".accuracy-work" / "llm-tiny-long").glob("2*_*"))  # OpenCompass never ran


def test_old_vllm_generate_api_against_the_shim(reference, vllm, tmp_path):
    """api = "vllm": vLLM's old /generate server (gone from vLLM 0.32), spoken by a shim in front of the
    real vLLM; the scores gate against the same fp32 baseline."""
    fp32 = vllm.serve("float32")
    shim = GenerateShim(fp32.base_url, fp32.model)
    try:
        vllm_suite = variant(reference["suite"], "llm-tiny-generate", base_url=shim.url, api="vllm")
        done = accuracy_run(str(vllm_suite), "--json", str(tmp_path / "vllm.json"))
    finally:
        shim.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(shim.prompts) == sorted(all_prompts())  # every sample once, through /generate
    result = json.loads((tmp_path / "vllm.json").read_text())
    assert result["verdict"] == "pass" and all(c["passed"] for c in result["checks"])


def test_bf16_candidate_is_gated_against_fp32_baseline(reference, vllm, tmp_path):
    bf16 = vllm.serve("bfloat16")  # last: this stops the fp32 server
    suite = reference["suite"]
    candidate_suite = variant(suite, "llm-tiny-bf16", base_url=bf16.base_url)
    report = tmp_path / "cand.html"
    done = accuracy_run(str(candidate_suite), "--json", str(tmp_path / "cand.json"), "--report", str(report))
    assert done.returncode in (0, 1), done.stderr
    result = json.loads((tmp_path / "cand.json").read_text())
    baseline = {s["dataset"]: s["value"] for s in json.loads((suite.parent / "baseline.json").read_text())["scores"]}
    candidate = {s["dataset"]: s["value"] for s in json.loads(Path(result["scores"]).read_text())["scores"]}
    assert set(candidate) == set(baseline) == set(dataset_rows())
    within = {d: abs(candidate[d] - baseline[d]) / abs(baseline[d]) <= 0.01 for d in baseline}
    aligned = all(within.values())
    assert result["verdict"] == ("pass" if aligned else "fail")
    assert done.returncode == (0 if aligned else 1)
    verdict_line = f"[{'PASS' if aligned else 'FAIL'}] llm-tiny-bf16: {sum(within.values())}/{len(within)} checks pass"
    assert verdict_line in done.stdout.splitlines(), done.stdout
    for dataset, ok in within.items():  # the table's row per dataset ends in its own verdict word
        rows = [line.rstrip() for line in done.stdout.splitlines() if line.split()[:1] == [dataset]]
        assert rows and all(row.endswith("aligned" if ok else "NOT ALIGNED") for row in rows), done.stdout
    page = report.read_text()
    assert "llm-tiny-bf16" in page and all(dataset in page for dataset in baseline)
