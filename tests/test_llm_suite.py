"""End to end: the tiny LM served by `transformers serve` in fp32 (reference) and bf16 (candidate),
evaluated by the real OpenCompass CLI through `accuracy run`, and gated.

One reference run is killed halfway and resumed (a counting proxy proves no finished sample is
requested twice); the candidate is judged against the recorded baseline; a proxy that answers 500
to a few questions shows that failed requests are caught, not scored.
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


def copy_suite(target: Path, *, base_url: str, model: str) -> Path:
    """The committed llm-tiny suite, pointed at a server of this test."""
    shutil.copytree(SUITE_FOLDER, target, ignore=shutil.ignore_patterns(".accuracy-work", "baseline.json",
                                                                         "__pycache__"))
    suite = target / "llm-tiny.toml"
    text = suite.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{base_url}"', text)
    text = re.sub(r'(?m)^model = .*$', f'model = "{model}"', text)
    suite.write_text(text, encoding="utf-8")
    return suite


def accuracy_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accuracy", "run", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, HF_HUB_OFFLINE="1"), check=False)


def dataset_rows() -> dict[str, list[dict]]:
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for path in sorted((SUITE_FOLDER / "data").glob("*.jsonl"))}


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


@pytest.fixture(scope="module")
def reference(tiny_lm_servers, tmp_path_factory):
    """The fp32 reference, recorded as the baseline: interrupted halfway, then resumed."""
    fp32 = tiny_lm_servers["float32"]
    proxy = Proxy(fp32.base_url)
    try:
        suite = copy_suite(tmp_path_factory.mktemp("reference") / "llm-tiny", base_url=proxy.base_url,
                           model=fp32.model)
        work_dir = suite.parent / ".accuracy-work" / "llm-tiny"
        process = subprocess.Popen(
            [sys.executable, "-m", "accuracy", "run", str(suite), "--update-baselines"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
        kill_when(process, lambda: len(checkpointed_prompts(work_dir)) >= 12)
        time.sleep(1.0)  # let the proxy finish relaying what was in flight
        finished = checkpointed_prompts(work_dir)
        before = len(proxy.prompts)
        resumed = accuracy_run(str(suite), "--resume", "--update-baselines", "--json", str(suite.parent / "ref.json"))
        yield {
            "suite": suite, "work_dir": work_dir, "finished": finished, "proxy": proxy,
            "requests_after_resume": proxy.prompts[before:], "requests_before": proxy.prompts[:before],
            "resumed": resumed, "result": json.loads((suite.parent / "ref.json").read_text())
            if (suite.parent / "ref.json").exists() else None,
        }
    finally:
        proxy.stop()


def test_resumed_reference_resends_no_finished_sample(reference):
    resumed = reference["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    finished, after = reference["finished"], reference["requests_after_resume"]
    all_prompts = {prompt_of(row) for rows in dataset_rows().values() for row in rows}
    assert finished and finished < all_prompts  # interrupted halfway, really
    assert not finished & set(after), "finished samples were requested again after --resume"
    # every sample has been answered by the end, each unfinished one once more at most per batch in flight
    assert set(reference["requests_before"]) | set(after) >= all_prompts
    assert set(after) == all_prompts - finished
    assert len(after) == len(set(after))


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


def test_bf16_candidate_is_gated_against_fp32_baseline(reference, tiny_lm_servers, tmp_path):
    bf16 = tiny_lm_servers["bfloat16"]
    suite = reference["suite"]
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{bf16.base_url}"', suite.read_text())
    candidate_suite = suite.with_name("candidate.toml")
    candidate_suite.write_text(text.replace('name = "llm-tiny"', 'name = "llm-tiny-bf16"'))
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


def test_failed_requests_are_caught_not_scored(reference, tiny_lm_servers, tmp_path):
    bf16 = tiny_lm_servers["bfloat16"]
    rows = dataset_rows()["add"]
    refused = {prompt_of(row) for row in rows[3:6]}
    proxy = Proxy(bf16.base_url, fail=lambda prompt: prompt in refused)
    try:
        suite = reference["suite"]
        text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{proxy.base_url}"', suite.read_text())
        flaky_suite = suite.with_name("flaky.toml")
        flaky_suite.write_text(text.replace('name = "llm-tiny"', 'name = "llm-tiny-flaky"'))
        done = accuracy_run(str(flaky_suite), "--json", str(tmp_path / "flaky.json"))
    finally:
        proxy.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(proxy.failed) >= 3 * 3  # each refused question was retried (first try + 2 retries)
    result = json.loads((tmp_path / "flaky.json").read_text())
    assert result["predictions"]["add"]["failed"] == ["3", "4", "5"]
    assert result["predictions"]["add_more"]["failed"] == []
    add = next(c for c in result["checks"] if c["name"].startswith("add/"))
    add_more = next(c for c in result["checks"] if c["name"].startswith("add_more/"))
    assert not add["passed"] and add_more["passed"]
    assert "3 failed" in done.stderr


def test_vllm_generate_api_end_to_end(reference, tiny_lm_servers, tmp_path):
    """api = "vllm": OpenCompass talks to a /generate server (a shim in front of the fp32 server,
    since no vLLM is installed here) and the scores gate against the same fp32 baseline."""
    fp32 = tiny_lm_servers["float32"]
    shim = GenerateShim(fp32.base_url, fp32.model)
    try:
        suite = reference["suite"]
        text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{shim.url}"', suite.read_text())
        text = text.replace('api = "openai"', 'api = "vllm"').replace('name = "llm-tiny"', 'name = "llm-tiny-vllm"')
        vllm_suite = suite.with_name("vllm.toml")
        vllm_suite.write_text(text)
        done = accuracy_run(str(vllm_suite), "--json", str(tmp_path / "vllm.json"))
    finally:
        shim.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    all_prompts = {prompt_of(row) for rows in dataset_rows().values() for row in rows}
    assert sorted(shim.prompts) == sorted(all_prompts)  # every sample once, through /generate
    result = json.loads((tmp_path / "vllm.json").read_text())
    assert result["verdict"] == "pass" and all(c["passed"] for c in result["checks"])
