"""Verdicts on outputs of every kind, with real onnxruntime sessions (reference fp32 against the fp16
emulation) on graphs built with ``onnx.helper`` (``tests/fixtures/output_kinds.py``): the gate's
pipeline checks, bisect and its JSON/table, per-output criteria, and what an entry may return."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accuracy.bisect.bisector import bisect_pipeline
from accuracy.cli import main
from accuracy.cli.bisect import bisect_table
from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.pipelines.suite import run_suite
from tests.fixtures.output_kinds import (
    THRESHOLD_X,
    empty_max,
    ocr_suite,
    overflow,
    single_model_suite,
    threshold_hits,
    to_text,
)

PER_OUTPUT = """
[compare]
max_abs = 0.001
[compare.outputs.boxes]
max_abs = 0.5
[compare.outputs.text]
cer_max = 0.1
"""


def checks(suite) -> dict:
    result = run_suite(load_suite(suite))
    assert result.error is None
    return {check.name: check for check in result.checks}


def bisect(suite) -> dict:
    return bisect_pipeline(load_pipeline_spec(load_suite(suite)))


def test_minus_inf_on_both_sides_passes(tmp_path):
    suite = single_model_suite(tmp_path, empty_max(), np.array([[1, 2, 3], [4, 5, 6]], np.float32), output="peaks")
    peaks = checks(suite)["peaks"]
    assert peaks.passed, peaks.message
    assert peaks.details["nonfinite_expected"] == peaks.details["nonfinite_obtained"] == 2
    assert peaks.details["max_abs"] == 0.0 and peaks.details["cosine"] == pytest.approx(1.0)
    result = bisect(suite)
    assert result["verdict"] == "pass" and result["culprits"] == []
    assert result["models"]["only"]["isolated"]["verdict"] == "pass"


def test_nan_on_one_side_fails_naming_the_count(tmp_path):
    x = np.array([1, 100, 2, 100, 100, 1], np.float32)  # x*1000 overflows fp16 three times: inf - inf
    y = checks(single_model_suite(tmp_path, overflow(), x))["y"]
    assert not y.passed
    assert y.message.startswith("3 non-finite values on one side only (reference 0, candidate 3 non-finite), "
                                "first at index (1): 100.0 -> nan")
    assert y.details["mismatches"] == 3 and y.details["max_abs"] == 0.0  # the finite rest agrees exactly
    result = bisect(tmp_path / "suite.toml")
    assert result["verdict"] == "fail" and result["culprits"] == ["only"]
    assert result["all_candidate"]["verdict"] == "non-finite"
    assert result["all_candidate"]["worst"]["output"] == "y"


def test_an_int64_output_changing_shape_fails_showing_both_shapes(tmp_path):
    suite = single_model_suite(tmp_path, threshold_hits(), THRESHOLD_X, output="hits")
    hits = checks(suite)["hits"]
    assert not hits.passed
    assert hits.message.startswith("shape (3, 2) differs from the reference's (6, 2) (3 rows, the reference has 6)")
    assert hits.details["shape_expected"] == [6, 2] and hits.details["shape_obtained"] == [3, 2]
    result = bisect(suite)  # a data-dependent shape is a verdict, not a "different model" error
    assert result["verdict"] == "fail" and result["culprits"] == ["only"]
    isolated = result["models"]["only"]["isolated"]
    assert isolated["verdict"] == "fail" and "shape (3, 2) differs" in isolated["failures"][0]
    assert "fail hits: shape (3, 2)" in bisect_table(result)


def test_integer_values_that_change_at_the_same_shape_fail_exactly(tmp_path):
    suite = ocr_suite(tmp_path, entry='''\
def run(models, inputs):
    features, boxes = models["detect"](glyphs=inputs["glyphs"], raw=inputs["raw"])
    return {"ids": models["recognize"](features=features)[0]}
''', compare="[compare]\ncosine_min = 0.5\n")
    ids = checks(suite)["ids"]
    assert not ids.passed and ids.details["kind"] == "integer"
    assert ids.message.startswith("2 of 10 values differ (20.00%), first at index (0, 1): 3 -> 2")


def test_text_pipeline_is_bisected_to_the_model_that_changes_the_text(tmp_path, capsys):
    suite = ocr_suite(tmp_path)
    out = tmp_path / "bisect.json"
    assert main(["bisect", str(suite), "--json", str(out), "--quiet"]) == 1
    result = json.loads(out.read_text())
    assert result["culprits"] == ["recognize"]
    text = result["all_candidate"]["outputs"]["text"]
    assert text["kind"] == "text" and text["cer"] == pytest.approx(0.2) and not text["passed"]
    assert result["models"]["recognize"]["swap_in"]["worst"]["output"] == "text"
    assert result["models"]["recognize"]["swap_in"]["outputs"]["text"]["cer"] == pytest.approx(0.2)
    assert result["models"]["detect"]["swap_in"]["passed"]
    isolated = result["models"]["recognize"]["isolated"]
    assert isolated["verdict"] == "fail" and isolated["mismatches"] == 2  # its int64 class ids, exactly
    table = capsys.readouterr().out
    assert "fail text: text differs in 2 of 2 lines (first at line 0:" in table
    assert "all models on the candidate: fail text:" in table


def test_per_output_criteria_pass_one_output_and_fail_the_other_by_name(tmp_path):
    judged = checks(ocr_suite(tmp_path / "own", compare=PER_OUTPUT))
    assert judged["boxes"].passed, judged["boxes"].message  # 0.21 px within 0.5 px
    assert not judged["text"].passed and judged["text"].message.startswith("cer 0.2 > 0.1")
    shared = checks(ocr_suite(tmp_path / "shared", compare="[compare]\nmax_abs = 0.001\n"))
    assert not shared["boxes"].passed  # one bound for every output: the pixels fail it
    result = bisect(tmp_path / "own" / "suite.toml")
    assert result["culprits"] == ["recognize"]
    assert result["all_candidate"]["failures"] == ["text: cer 0.2 > 0.1"]
    assert result["models"]["detect"]["swap_in"]["passed"]


def test_the_worst_output_is_named_in_the_html_report(tmp_path):
    from accuracy.report.html.bisect import render_bisect

    html = render_bisect(bisect(ocr_suite(tmp_path, compare=PER_OUTPUT)))
    assert "<strong>text</strong>: cer 0.2 &gt; 0.1" in html


PYTHON_VALUES = '''\
import numpy as np

def run(models, inputs):
    y = models["only"](x=inputs["x"])[0]
    return {"array": y, "count": int(y.size), "score": float(y.max()), "flag": bool(y.max() > 0),
            "label": "cat", "labels": ["cat", "dog"], "values": [1.5, 2.5], "np_scalar": np.float32(y.sum())}
'''


def test_every_supported_python_value_is_compared(tmp_path):
    suite = single_model_suite(tmp_path, overflow(), np.array([1, 2, 3], np.float32))
    (tmp_path / "pipeline.py").write_text(PYTHON_VALUES)
    judged = checks(suite)
    assert set(judged) == {"array", "count", "score", "flag", "label", "labels", "values", "np_scalar"}
    assert all(check.passed for check in judged.values()), {n: c.message for n, c in judged.items()}
    assert judged["labels"].details["kind"] == "text" and judged["count"].details["kind"] == "integer"


@pytest.mark.parametrize("returned, words", [
    ('{"y": None}', "output 'y' of the pipeline entry 'pipeline.py:run' is None"),
    ('{"y": {"a": 1}}', "output 'y' of the pipeline entry 'pipeline.py:run' is a dict"),
    ('{"y": object()}', "output 'y' of the pipeline entry 'pipeline.py:run' is a object"),
    ('{"y": [1, [2, 3]]}', "output 'y' of the pipeline entry 'pipeline.py:run' is a ragged list"),
    ('{"y": 1 + 2j}', "output 'y' of the pipeline entry 'pipeline.py:run' is a complex"),
    ("None", "must return a non-empty dict of outputs"),
])
def test_unsupported_outputs_are_one_line_and_exit_2(tmp_path, capsys, returned, words):
    suite = single_model_suite(tmp_path, overflow(), np.array([1, 2, 3], np.float32))
    (tmp_path / "pipeline.py").write_text(f"def run(models, inputs):\n    return {returned}\n")
    assert main(["bisect", str(suite), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and str(suite) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["gate", str(suite)]) == 2


@pytest.mark.parametrize("compare, key, words", [
    ("[compare.outputs.txt]\ncer_max = 0.1\n", "compare.outputs.txt", ("the pipeline has no output 'txt' "
                                                                       "(it returns boxes, text)")),
    ("[compare.outputs.boxes]\ncer_max = 0.1\n", "compare.outputs.boxes.cer_max",
     "cer_max does not apply to 'boxes', a float output"),
    ("[compare]\noutputs = [\"txt\"]\n", "compare.outputs", "the pipeline has no output 'txt'"),
])
def test_compare_outputs_must_name_outputs_of_the_pipeline(tmp_path, capsys, compare, key, words):
    suite = ocr_suite(tmp_path, compare=compare)
    assert main(["bisect", str(suite), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(suite) in err and key in err and words in err and "Traceback" not in err


def test_gate_judges_each_output_by_its_own_criteria(tmp_path, capsys):
    suite = ocr_suite(tmp_path, compare=PER_OUTPUT)
    assert main(["gate", str(suite)]) == 1
    out = capsys.readouterr().out
    assert "1/2 checks pass" in out and "text: cer 0.2 > 0.1" in out and "boxes:" not in out


def test_a_string_tensor_from_the_model_is_judged_as_text_even_when_recordings_spill(tmp_path):
    suite = single_model_suite(tmp_path, to_text(), np.array([1.5, 2.25, 3.0001], np.float32))
    result = bisect_pipeline(load_pipeline_spec(load_suite(suite)), budget_bytes=0)  # every call spills to disk
    assert result["culprits"] == ["only"]
    text = result["all_candidate"]["outputs"]["y"]
    assert text["kind"] == "text" and text["first_index"] == 2 and text["cer"] == pytest.approx(0.5)
    worst = result["models"]["only"]["isolated"]["worst"]
    assert worst["output"] == "y" and "'3.0000999' -> '3'" in worst["text"]


def test_a_repair_of_exact_outputs_is_said_without_an_empty_metric_list():
    from accuracy.cli.bisect import localize_lines

    found = {"first_divergent": None, "tensors": {"diverged": 3, "inherited": 0}, "candidate": "onnxruntime-fp16",
             "inputs": "recorded reference call 0", "repair": {"passed": True, "keep_fp32": ["gain"],
             "op_types": {"gain": "Mul"}, "pipeline": {"metrics": {"mismatches": 0}}, "pipeline_runs": 2}}
    line = next(text for text in localize_lines("only", found) if "keep in fp32" in text)
    assert "gain (Mul) -> the pipeline passes (verified by running it, 2 pipeline run(s))" in line
