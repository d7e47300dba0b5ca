"""HumanEval datasets of an LLM suite: OpenCompass never runs the model's code; our sandbox does."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from accuracy.config import load_suite
from accuracy.llm.opencompass.config import write_config
from accuracy.llm.opencompass.runner import find_dataset_configs, opencompass_root
from accuracy.llm.opencompass.sandboxed import SANDBOX_MARKER, rescore_deferred
from accuracy.llm.suite_config import read_llm_suite
from accuracy.scores.model import Score, ScoreTable

pytest.importorskip("opencompass")


def test_the_config_swaps_humaneval_evaluator_for_the_sandbox(tmp_path, monkeypatch):
    from mmengine.config import Config

    (tmp_path / "suite.toml").write_text(
        '[suite]\nname = "s"\n[llm]\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\ntokenizer = "."\n'
        '[llm.datasets]\nconfigs = ["humaneval_gen", "gsm8k_gen"]\n[baseline]\npath = "b.json"\n'
    )
    llm = read_llm_suite(load_suite(tmp_path / "suite.toml"))
    files = find_dataset_configs(opencompass_root(sys.executable), llm.dataset_configs)
    path = write_config(llm, tmp_path / "oc", files)
    monkeypatch.syspath_prepend(str(path.parent))
    config = Config.fromfile(str(path), format_python_code=False)
    evaluators = {d["abbr"]: d["eval_cfg"]["evaluator"]["type"] for d in config["datasets"]}
    assert evaluators["openai_humaneval"].__name__ == "DeferredToSandbox"
    assert "HumanEval" not in str(evaluators["gsm8k"])  # other datasets keep their evaluator


def test_the_stand_in_evaluator_runs_nothing(tmp_path):
    oc_models = importlib.import_module("accuracy.llm.opencompass.oc_models")
    witness = tmp_path / "ran"
    hostile = f"import pathlib; pathlib.Path({str(witness)!r}).write_text('x')"
    result = oc_models.DeferredToSandbox().score([hostile], ["HumanEval/0"], None)
    assert result == {oc_models.SANDBOX_MARKER: 1.0} and not witness.exists()
    assert oc_models.SANDBOX_MARKER == SANDBOX_MARKER


def test_deferred_predictions_are_scored_in_the_sandbox(tmp_path):
    from accuracy.llm.humaneval import load_problems

    problems = load_problems()
    ids = ["HumanEval/0", "HumanEval/1", "HumanEval/2", "HumanEval/3"]
    answers = [f"Here you go:\n```python\n{problems[i].prompt}{problems[i].canonical_solution}```\n" for i in ids[:3]]
    answers.append(f"```python\n{problems[ids[3]].prompt}    return None\n```")  # wrong
    folder = tmp_path / "predictions" / "m"
    folder.mkdir(parents=True)
    (folder / "openai_humaneval.json").write_text(json.dumps(
        {str(n): {"origin_prompt": "p", "prediction": a, "gold": i} for n, (a, i) in enumerate(zip(answers, ids))}))
    table = ScoreTable(model="m", scores=[
        Score("gsm8k", "accuracy", 50.0, version="1d7fe4"),
        Score("openai_humaneval", SANDBOX_MARKER, 4.0, version="8e312c", mode="gen"),
    ])
    assert rescore_deferred(table, tmp_path, "m", workers=2) == ["openai_humaneval"]
    assert [(s.dataset, s.metric) for s in table.scores] == [("gsm8k", "accuracy"), ("openai_humaneval", "humaneval_pass@1")]
    humaneval = table.scores[1]
    assert humaneval.value == pytest.approx(75.0) and humaneval.version == "8e312c"
    assert humaneval.samples == {"openai_humaneval_0": True, "openai_humaneval_1": True,
                                 "openai_humaneval_2": True, "openai_humaneval_3": False}


def test_a_table_without_deferred_datasets_is_left_alone(tmp_path):
    table = ScoreTable(model="m", scores=[Score("gsm8k", "accuracy", 50.0)])
    assert rescore_deferred(table, tmp_path, "m") == [] and len(table.scores) == 1
