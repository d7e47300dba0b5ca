"""bisect on a real three-model ONNX pipeline (onnxruntime against the fp16 emulation):
the hazard is blamed on exactly its model, the clean twin on none, noise on no model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.bisect.bisector import bisect_pipeline, noise_notes
from accuracy.bisect.swaps import beyond_noise, fit_to_gear
from accuracy.cli import main
from accuracy.compare.criteria import Judgement
from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.errors import BackendError
from tests.fixtures.tiny_sd import SUITE, WIDTH, chain_pipeline


def bisect(suite: Path) -> dict:
    return bisect_pipeline(load_pipeline_spec(load_suite(suite)))


def test_hazard_blamed_on_exactly_its_model(hazard_chain):
    result = bisect(hazard_chain)
    assert result["verdict"] == "fail"
    assert result["culprits"] == ["mid"]
    assert result["smallest_failing"] == ["mid"]
    mid = result["models"]["mid"]
    assert mid["isolated"]["verdict"] == "fail" and mid["isolated"]["cosine"] < 0.5
    assert mid["isolated"]["calls"] == 2  # the entry calls mid twice: compared call by call
    assert mid["swap_in"]["verdict"] == "fail" and mid["leave_out"]["verdict"] == "pass"
    for other in ("encode", "head"):
        assert result["models"][other]["isolated"]["verdict"] == "pass"
        assert result["models"][other]["swap_in"]["passed"]
    assert result["noise_floor"]["passed"]
    # the culprit fails alone, so leaving out another model is skipped unless asked for
    assert result["models"]["encode"]["leave_out"]["verdict"] == "skipped"


def test_full_runs_every_leave_out(hazard_chain):
    result = bisect_pipeline(load_pipeline_spec(load_suite(hazard_chain)), full=True)
    assert result["culprits"] == ["mid"]
    assert result["models"]["encode"]["leave_out"]["verdict"] == "fail"  # mid still on the candidate
    assert result["models"]["head"]["leave_out"]["verdict"] == "fail"


def test_clean_twin_blames_nobody(clean_chain):
    result = bisect(clean_chain)
    assert result["verdict"] == "pass"
    assert result["culprits"] == [] and result["smallest_failing"] is None
    assert all(view["isolated"]["verdict"] == "pass" for view in result["models"].values())


def test_bisect_replays_recorded_calls_instead_of_rerunning(hazard_chain):
    result = bisect(hazard_chain)
    calls_per_run = 4  # encode, mid, mid, head
    executed_if_no_reuse = result["pipeline_runs"] * calls_per_run
    assert result["cache"]["hits"] > 0
    assert result["cache"]["misses"] < executed_if_no_reuse / 2


def _variant(folder: Path, *, entry: str | None = None, extra: str = "", candidate_mid: onnx.ModelProto | None = None,
             backend: str = "onnxruntime-fp16") -> Path:
    suite = chain_pipeline(folder, hazard=False, suite_text=SUITE.replace('"onnxruntime-fp16"', f'"{backend}"') + extra)
    if entry:
        (folder / "pipeline.py").write_text(entry)
    if candidate_mid is not None:
        onnx.save(candidate_mid, str(folder / "models" / "mid_candidate.onnx"))
        text = suite.read_text().replace(f'backend = "{backend}"\n', f'backend = "{backend}"\n'
                                         '[candidate.models]\nmid = "models/mid_candidate.onnx"\n', 1)
        suite.write_text(text)
    return suite


def _graph(nodes, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "cand", [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", WIDTH])],
                              outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def test_non_finite_candidate_is_a_verdict_not_a_crash(tmp_path):
    zero = numpy_helper.from_array(np.zeros(WIDTH, np.float32), "zero")
    overflowing = _graph([helper.make_node("Div", ["h", "zero"], ["out"])],
                         [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", WIDTH])], [zero])
    result = bisect(_variant(tmp_path, candidate_mid=overflowing, backend="onnxruntime"))
    assert result["models"]["mid"]["isolated"]["verdict"] == "non-finite"
    assert result["models"]["mid"]["isolated"]["nonfinite"] > 0
    assert result["culprits"] == ["mid"]


def test_candidate_with_other_output_shape_is_a_clear_error(tmp_path):
    narrow = _graph([helper.make_node("Slice", ["h", "starts", "ends", "axes"], ["out"])],
                    [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])],
                    [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in (([0], "starts"), ([4], "ends"), ([1], "axes"))])
    with pytest.raises(BackendError, match="mid: output 0 has shape"):
        bisect(_variant(tmp_path, candidate_mid=narrow, backend="onnxruntime"))


def test_candidate_with_other_output_count_is_a_clear_error(tmp_path):
    two = _graph([helper.make_node("Identity", ["h"], ["out"]), helper.make_node("Identity", ["h"], ["extra"])],
                 [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", WIDTH]) for n in ("out", "extra")])
    with pytest.raises(BackendError, match="2 outputs, the reference 1"):
        bisect(_variant(tmp_path, candidate_mid=two, backend="onnxruntime"))


NOISY_ENTRY = '''\
import numpy as np

def run(models, inputs):
    h = models["encode"](h=inputs["x"])[0]
    h = h + np.random.standard_normal(h.shape).astype(np.float32) * 0.05  # unseeded: the reference is noisy
    for step in range(2):
        h = h + models["mid"](h=h)[0]
    return {"y": models["head"](h=h)[0]}
'''


def test_reference_noise_is_never_blamed_on_a_model(tmp_path):
    result = bisect(_variant(tmp_path, entry=NOISY_ENTRY))
    assert not result["noise_floor"]["passed"]  # measured: the reference disagrees with itself
    assert result["culprits"] == []
    # the all-candidate run fails the check, but within the noise: judged by the same rule, nobody is
    # blamed, no set is "smallest failing", and the verdict says the check cannot decide
    assert not result["all_candidate"]["passed"] and result["all_candidate"]["beyond_noise"] is False
    assert result["verdict"] == "inconclusive" and result["smallest_failing"] is None
    assert len(result["notes"]) == 1 and "no model can be blamed" in result["notes"][0]
    assert "seed the pipeline" in result["notes"][0]


def _judgement(rel_l2: float, passed: bool) -> Judgement:
    failures = () if passed else (f"y: rel_l2 {rel_l2} > 0.01",)
    return Judgement(passed=passed, outputs={"y": {"rel_l2": rel_l2}}, failures=failures)


@pytest.mark.parametrize("run, noise, beyond", [
    (_judgement(0.005, True), _judgement(0.0, True), False),
    (_judgement(0.05, False), _judgement(0.0, True), True),  # a quiet reference: any failure counts
    (_judgement(0.05, False), _judgement(0.04, False), False),  # within twice the reference's own
    (_judgement(0.09, False), _judgement(0.04, False), True),
    (_judgement(0.009, True), _judgement(0.004, False), False),  # a passing run never counts as failing
])
def test_beyond_noise_judges_every_run_by_one_rule(run, noise, beyond):
    assert beyond_noise(run, noise) is beyond


def test_noise_notes_say_what_a_noisy_reference_means():
    quiet, noisy = _judgement(0.0, True), _judgement(0.04, False)
    assert noise_notes(_judgement(0.05, False), quiet, all_fails=True) == []
    assert "inconclusive" in noise_notes(_judgement(0.05, False), noisy, all_fails=False)[0]
    assert "blamed only where" in noise_notes(_judgement(0.09, False), noisy, all_fails=True)[0]
    assert "passes all the same" in noise_notes(_judgement(0.0, True), noisy, all_fails=False)[0]


def test_isolated_runs_once_per_converter_gear(tmp_path):
    extra = '[converter.mid]\ninput_shape = "h:-1,16"\ndynamic_dims = "1;3"\n'
    result = bisect(_variant(tmp_path, extra=extra))
    gears = result["models"]["mid"]["isolated"]["gears"]
    assert [g["gear"] for g in gears] == ["h:1,16", "h:3,16"]
    assert all(g["calls"] == 2 and g["verdict"] == "pass" for g in gears)


def test_precision_mode_enforce_fp32_in_a_converter_config_keeps_that_model_in_fp32(tmp_path):
    suite = chain_pipeline(tmp_path, hazard=True, suite_text=SUITE + '[converter.mid]\nprecision_mode = "enforce_fp32"\n')
    result = bisect(suite)
    assert result["verdict"] == "pass" and result["culprits"] == []  # the guide's fix, checked before converting


def test_models_not_listed_in_candidate_models_stay_on_the_reference(tmp_path):
    text = SUITE.replace('backend = "onnxruntime-fp16"\n', 'backend = "onnxruntime-fp16"\n[candidate.models]\n'
                         'head = "models/head.onnx"\n')
    result = bisect(chain_pipeline(tmp_path, hazard=True, suite_text=text))
    assert list(result["models"]) == ["head"] and result["unchanged"] == ["encode", "mid"]
    assert result["verdict"] == "pass"  # the hazardous mid has no candidate here


def test_pipeline_code_that_raises_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    broken = NOISY_ENTRY.replace("    h = h + np.random", "    h = inputs['nope']\n    h = h + np.random")
    suite = _variant(tmp_path, entry=broken)
    assert main(["bisect", str(suite), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "raised KeyError: 'nope'" in err and "pipeline.py:5" in err


def _scale_model(path: Path, factor: float) -> str:
    scale = numpy_helper.from_array(np.array(factor, np.float32), "k")
    onnx.save(_graph([helper.make_node("Mul", ["h", "k"], ["out"])],
                     [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", WIDTH])], [scale]), str(path))
    return path.name


def test_no_single_swap_fails_but_a_pair_does(tmp_path):
    """a and b each move the output by 1 % (rel_l2), within the suite's 1.5 %; together by 2 %."""
    (tmp_path / "inputs").mkdir()
    np.save(tmp_path / "inputs" / "x.npy", np.linspace(-1, 1, 2 * WIDTH, dtype=np.float32).reshape(2, WIDTH))
    for name, factor in (("a", 1.0), ("b", 1.0), ("c", 1.0), ("a_cand", 1.02), ("b_cand", 1.02)):
        _scale_model(tmp_path / f"{name}.onnx", factor)
    (tmp_path / "pipeline.py").write_text(
        "def run(models, inputs):\n"
        "    x = models['c'](h=inputs['x'])[0]\n"
        "    return {'y': models['a'](h=x)[0] + models['b'](h=x)[0]}\n")
    (tmp_path / "suite.toml").write_text(
        '[pipeline]\nentry = "pipeline.py:run"\n[pipeline.models]\na = "a.onnx"\nb = "b.onnx"\nc = "c.onnx"\n'
        '[pipeline.inputs]\nx = "inputs/x.npy"\n[reference]\nbackend = "onnxruntime"\n'
        '[candidate]\nbackend = "onnxruntime"\n[candidate.models]\na = "a_cand.onnx"\nb = "b_cand.onnx"\n'
        'c = "c.onnx"\n[compare]\nrel_l2_max = 0.015\n')
    result = bisect(tmp_path / "suite.toml")
    assert result["verdict"] == "fail" and result["culprits"] == []
    assert result["smallest_failing"] == ["a", "b"]
    assert all(result["models"][m]["swap_in"]["passed"] for m in "abc")
    assert not result["models"]["c"]["leave_out"]["passed"]  # a and b both still on the candidate


def test_a_gear_the_reference_cannot_run_is_skipped_not_blamed(tmp_path):
    extra = '[converter.mid]\ninput_shape = "h:2,-1"\ndynamic_dims = "16;5"\n'  # width 5 does not fit the weights
    result = bisect(_variant(tmp_path, extra=extra))
    gears = result["models"]["mid"]["isolated"]["gears"]
    assert [g["verdict"] for g in gears] == ["pass", "skipped"]
    assert "cannot run this gear" in gears[1]["reason"]
    assert result["models"]["mid"]["isolated"]["verdict"] == "pass" and result["culprits"] == []


def test_fit_to_gear_cuts_and_edge_pads():
    feeds = {"ids": np.array([[5, 6, 7, 2]]), "other": np.ones(3)}
    assert fit_to_gear(feeds, {"ids": (1, 2)})["ids"].tolist() == [[5, 6]]
    assert fit_to_gear(feeds, {"ids": (2, 6)})["ids"].tolist() == [[5, 6, 7, 2, 2, 2]] * 2
    assert fit_to_gear(feeds, {"ids": (1, 6)})["other"] is feeds["other"]


def test_cli_exit_codes_and_json(hazard_chain, clean_chain, tmp_path, capsys):
    out = tmp_path / "bisect.json"
    assert main(["bisect", str(hazard_chain), "--json", str(out), "--quiet"]) == 1
    data = json.loads(out.read_text())
    assert data["verdict"] == "fail" and data["culprits"] == ["mid"]
    assert set(data["models"]["mid"]) >= {"isolated", "swap_in", "leave_out"}
    assert "noise_floor" in data
    assert "mid <- culprit" in capsys.readouterr().out
    assert main(["bisect", str(clean_chain), "--quiet"]) == 0


def test_cli_bad_suite_is_one_line_and_exit_2(tmp_path, capsys):
    suite = chain_pipeline(tmp_path, hazard=False)
    (tmp_path / "models" / "head.onnx").unlink()
    assert main(["bisect", str(suite), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pipeline.models.head" in err and "file not found" in err


RANDOM_SCRIPT = '''\
import sys, numpy as np
from pathlib import Path
import onnxruntime as ort
path = sys.argv[1]
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
x = np.zeros((1, 8), np.float32)
print(float(session.run(None, {"x": x})[0].sum()))
'''


def _random_model(path: Path) -> Path:
    graph = helper.make_graph([helper.make_node("RandomNormalLike", ["x"], ["y"], name="sample")], "random",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return path


def _in_new_process(model: Path) -> float:
    out = subprocess.run([sys.executable, "-c", RANDOM_SCRIPT, str(model)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_seeded_private_copy_is_reproducible_across_processes(tmp_path):
    from accuracy.pipelines.determinism import random_nodes, seeded_copy

    original = _random_model(tmp_path / "random.onnx")
    assert [n.op_type for n in random_nodes(original)] == ["RandomNormalLike"]
    # unseeded: a second process draws other numbers (one process agreeing with itself proves nothing)
    assert _in_new_process(original) != _in_new_process(original)
    seeded = seeded_copy(original, tmp_path / "private")
    assert random_nodes(seeded)[0].seeded and not random_nodes(original)[0].seeded
    assert _in_new_process(seeded) == _in_new_process(seeded)


def test_seeded_copy_of_a_model_with_external_data(tmp_path):
    from accuracy.pipelines.determinism import seeded_copy

    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                               helper.make_node("RandomNormalLike", ["m"], ["noise"]),
                               helper.make_node("Add", ["m", "noise"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight])
    source = tmp_path / "src" / "model.onnx"
    source.parent.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(source),
              save_as_external_data=True, location="weights.bin", size_threshold=0)
    copy = seeded_copy(source, tmp_path / "private")
    assert (tmp_path / "private" / f"{copy.name}.data").exists()
    assert _in_new_process_named(copy, 64) == _in_new_process_named(copy, 64)


def _in_new_process_named(model: Path, width: int) -> float:
    script = RANDOM_SCRIPT.replace("(1, 8)", f"(1, {width})")
    out = subprocess.run([sys.executable, "-c", script, str(model)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_zero_memory_budget_spills_every_call_and_finds_the_same(hazard_chain):
    result = bisect_pipeline(load_pipeline_spec(load_suite(hazard_chain)), budget_bytes=0)
    assert result["culprits"] == ["mid"] and result["cache"]["spilled_calls"] > 0
