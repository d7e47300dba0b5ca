"""lm-evaluation-harness output from the real ``lm_eval`` CLI (its ``dummy`` model on a tiny local
multiple-choice task): the reader must agree with lm-eval's own aggregation."""

import json
import os
import subprocess
import sys

import pytest

from accuracy.compare.significance import flags_reproduce
from accuracy.scores.readers import read_scores

pytestmark = pytest.mark.slow

TASK = """\
task: tiny_mcq
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def test_lm_eval_cli_output_reads_with_its_own_numbers(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data = tasks / "tiny.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "choices": [str(i + 1), str(i + 2), str(i)],
                                        "answer": 0}) + "\n" for i in range(24)))
    (tasks / "tiny.yaml").write_text(TASK.format(data=data))
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "dummy", "--model_args", "pretrained=tiny-gpu",
         "--tasks", "tiny_mcq", "--include_path", str(tasks), "--output_path", str(tmp_path / "out"), "--log_samples"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads(next((tmp_path / "out").glob("*/results_*.json")).read_text())["results"]["tiny_mcq"]

    table = read_scores(tmp_path / "out")
    score = table.get("tiny_mcq", "acc,none")
    assert table.tool == "lm-eval" and table.model == "tiny-gpu"
    assert score.value == pytest.approx(100 * written["acc,none"])
    assert score.stderr == pytest.approx(100 * written["acc_stderr,none"])
    assert len(score.samples) == 24 and flags_reproduce(score.value, score.samples)
