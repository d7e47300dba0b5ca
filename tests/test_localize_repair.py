"""``localize --suggest-fp32``: the smallest fp32 keep-list, verified, with the repaired model and snippets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.backends import get_backend
from accuracy.localize import localize_model
from accuracy.localize.repair import suggest_fp32
from tests.fixtures.onnx_graphs import HAZARD_FIX, HAZARD_NODE, normalizer_chain


def test_repair_keeps_only_the_hazard_and_its_reader_and_verifies_it(tmp_path, hazard_onnx, normalizer_inputs, monkeypatch):
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    result = localize_model(hazard_onnx, normalizer_inputs, suggest_fp32=True, out_dir=tmp_path / "out")
    repair = result["repair"]
    assert repair["keep_fp32"] == HAZARD_FIX and repair["passed"] is True
    assert repair["outputs"]["y"]["passed"] and repair["outputs"]["y"]["cosine"] > 0.999
    # independently: the fp16 backend with that keep-list now matches the reference
    reference = get_backend("onnxruntime").load(hazard_onnx).run(normalizer_inputs)[0]
    kept = get_backend("onnxruntime-fp16", keep_fp32=repair["keep_fp32"]).load(hazard_onnx).run(normalizer_inputs)[0]
    np.testing.assert_allclose(kept, reference, atol=5e-3)

    files = repair["files"]
    assert json.loads(Path(files["keep_fp32"]).read_text())["keep_fp32"] == HAZARD_FIX
    snippets = Path(files["snippets"]).read_text()
    assert "precision_mode=enforce_fp32" in snippets and f"{HAZARD_NODE}=data_type:float32" in snippets
    assert f"OpName::{HAZARD_NODE}" in snippets
    repaired = onnx.load(files["model"])
    weights = {i.name: i.data_type for i in repaired.graph.initializer}
    assert weights["w1"] == TensorProto.FLOAT16  # really converted to fp16 ...
    inferred = onnx.shape_inference.infer_shapes(repaired).graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.output)}
    hazard = next(n for n in repaired.graph.node if n.name == HAZARD_NODE)
    assert types[hazard.input[0]] == TensorProto.FLOAT  # ... except the kept node, fed fp32
    session = ort.InferenceSession(files["model"], providers=["CPUExecutionProvider"])
    (y,) = session.run(None, normalizer_inputs)
    assert y.dtype == np.float32 and np.isfinite(y).all()


def test_clean_model_needs_no_repair(clean_onnx, normalizer_inputs):
    repair = localize_model(clean_onnx, normalizer_inputs, suggest_fp32=True)["repair"]
    assert repair["keep_fp32"] == [] and repair["passed"] and repair["trials"] == 1


def _input_past_fp16() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "zero"], ["y"], name="add")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.zeros(2, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {"x": np.array([70000.0, 1.0 + 2**-12], np.float32)}


def test_a_kept_node_reads_the_graph_input_unrounded_as_the_repaired_model_feeds_it():
    """The input does not fit fp16 (70000; 1 + 2**-12 rounds to 1): under the emulation a kept Add reads
    it as it came, and so does the repaired model (keep_io_types keeps the input fp32; the converter's
    Cast(fp16) -> Cast(fp32) before the blocked Add is dropped, as between two blocked nodes). The
    emulation rounded it for the kept node too, and the repair said no keep-list could help."""
    from accuracy.backends.onnxrt.loader import open_session
    from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16
    from accuracy.localize.offer import repaired_fp16_model

    model, feeds = _input_past_fp16()
    found = suggest_fp32(model, feeds, ["add"], first_try=["add"])
    assert found.passed and found.keep_fp32 == ["add"]

    def run(candidate: onnx.ModelProto) -> np.ndarray:
        return open_session(candidate.SerializeToString(), model_path="<m>").run_outputs(["y"], feeds)[0]

    emulated, converted = run(emulate_fp16(model, keep_fp32=["add"])), run(repaired_fp16_model(model, ["add"]))
    assert np.array_equal(emulated, feeds["x"]) and np.array_equal(converted, feeds["x"])
    assert not np.array_equal(run(emulate_fp16(model)), feeds["x"])  # not kept: rounded at entry


def test_a_kept_node_gives_the_graph_output_unrounded_in_emulation_and_in_the_converted_model():
    """keep_io_types: the output stays fp32; the converter still routes a blocked node's value through
    Cast(fp16) -> Cast(fp32) on its way out (70000 became inf): the repaired model drops that pair, as the
    emulation never rounds a kept node's output."""
    from accuracy.backends.onnxrt.loader import open_session
    from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16
    from accuracy.localize.offer import repaired_fp16_model

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["m"], name="scale"), helper.make_node("Mul", ["m", "one"], ["y"], name="out")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.full(2, 1000.0, np.float32), "k"), numpy_helper.from_array(np.ones(2, np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"x": np.array([70.0, 0.5], np.float32)}
    expected = feeds["x"] * 1000.0

    def run(candidate: onnx.ModelProto) -> np.ndarray:
        return open_session(candidate.SerializeToString(), model_path="<m>").run_outputs(["y"], feeds)[0]

    keep = ["scale", "out"]
    emulated, converted = run(emulate_fp16(model, keep_fp32=keep)), run(repaired_fp16_model(model, keep))
    assert np.array_equal(emulated, expected) and np.array_equal(converted, expected)
    # (ORT's CPU provider computes fp16 nodes in fp32, so only the emulation shows an fp16 node's overflow)
    assert not np.isfinite(run(emulate_fp16(model, keep_fp32=["out"]))[0])


def test_a_node_not_kept_reads_a_kept_nodes_value_rounded_to_fp16():
    """The converter puts a Cast to fp16 between a blocked node and an fp16 reader: a sum of squares kept
    in fp32 (70000) reaches an fp16 Sqrt as inf. The emulation did not round there, so keeping the sum
    alone passed -- a list whose converted model gives inf (zeros downstream) on an fp16 device."""
    from accuracy.backends.onnxrt.loader import open_session
    from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16

    graph = helper.make_graph(
        [helper.make_node("ReduceSumSquare", ["x"], ["ss"], name="sum_sq", keepdims=1),
         helper.make_node("Sqrt", ["ss"], ["y"], name="norm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"x": np.full(4, 150.0, np.float32)}  # 4 * 22500 = 90000: past 65504

    def run(keep: list[str]) -> float:
        emulated = emulate_fp16(model, keep_fp32=keep)
        return float(open_session(emulated.SerializeToString(), model_path="<m>").run_outputs(["y"], feeds)[0][0])

    assert np.isinf(run(["sum_sq"])) and run(["sum_sq", "norm"]) == 300.0
    found = suggest_fp32(model, feeds, ["sum_sq", "norm"], first_try=["sum_sq"])
    assert found.passed and sorted(found.keep_fp32) == ["norm", "sum_sq"]


def test_the_search_starts_from_the_overflowing_node_and_the_readers_of_what_fp16_cannot_hold(hazard_onnx,
                                                                                              normalizer_inputs):
    """localize marks a diverging tensor whose reference values fp16 cannot hold (``past_fp16``); a node
    kept in fp32 hands such a value to an fp16 reader as inf, so the first list tried holds its readers:
    the sum of squares and the Sqrt, passing at the first trial, then shrunk (each alone fails)."""
    result = localize_model(hazard_onnx, normalizer_inputs, suggest_fp32=True)
    by_node = {r["node"]: r for r in result["tensors"]}
    assert by_node[HAZARD_NODE]["past_fp16"] == 1 and "past_fp16" not in by_node["norm"]  # sqrt(sum) fits fp16
    repair = result["repair"]
    assert repair["keep_fp32"] == HAZARD_FIX and repair["passed"]
    assert repair["trials"] <= 5  # nothing kept (fails), the seed (passes), each alone (fail), the final check


def test_a_cast_reading_a_constant_does_not_stop_the_conversion():
    """A Cast fed by a node without inputs (a Constant) ended the repair with an IndexError (the demo's
    text encoder casts its attention mask's constant)."""
    from accuracy.localize.offer import repaired_fp16_model

    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], name="const", value=numpy_helper.from_array(np.ones(2, np.float64))),
         helper.make_node("Cast", ["c"], ["cf"], name="to_float", to=TensorProto.FLOAT),
         helper.make_node("Add", ["x", "cf"], ["y"], name="add")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    converted = repaired_fp16_model(model, ["add"])
    got = ort.InferenceSession(converted.SerializeToString()).run(None, {"x": np.array([1.0, 2.0], np.float32)})[0]
    assert np.array_equal(got, [2.0, 3.0])


def test_an_unrepairable_model_says_so():
    """No keep-list passes the caller's check (a pipeline that fails for another reason): the whole
    model must stay fp32, and the search says so."""
    model, feeds = _input_past_fp16()
    found = suggest_fp32(model, feeds, ["add"], first_try=["add"], criterion=lambda keep: False)
    assert not found.passed and found.keep_fp32 == [] and "enforce_fp32" in found.note


def test_shrinking_drops_nodes_that_are_not_needed(normalizer_inputs):
    model = normalizer_chain(scale=100.0)
    found = suggest_fp32(model, normalizer_inputs, ["embed", "norm", HAZARD_NODE, "unit", "proj"],
                         first_try=["embed", "norm", HAZARD_NODE, "unit", "proj"])
    assert found.passed and sorted(found.keep_fp32) == sorted(HAZARD_FIX)


@pytest.mark.parametrize("max_trials", [3])
def test_trial_budget_is_respected(normalizer_inputs, max_trials):
    found = suggest_fp32(normalizer_chain(scale=100.0), normalizer_inputs, ["embed", "norm", HAZARD_NODE],
                         first_try=["embed", "norm", HAZARD_NODE], max_trials=max_trials)
    assert found.trials <= max_trials + 1  # the final verification always runs
    assert found.passed  # the seed passed, so whatever is left still contains the hazard
    assert HAZARD_NODE in found.keep_fp32


def test_a_pipeline_criterion_judges_the_keep_list(hazard_onnx, normalizer_inputs):
    """bisect --localize passes the pipeline's check; here: a check that also demands 'norm' in fp32."""
    seen = []

    def pipeline_check(keep):
        seen.append(list(keep))
        return {HAZARD_NODE, "norm"} <= set(keep)

    repair = localize_model(hazard_onnx, normalizer_inputs, suggest_fp32=True,
                            repair_criterion=pipeline_check)["repair"]
    assert sorted(repair["keep_fp32"]) == sorted([HAZARD_NODE, "norm"]) and repair["passed"]
    assert repair["criterion"].startswith("caller") and repair["trials"] == len(seen)


def test_repair_of_a_model_past_protobufs_limit_explains_itself(hazard_onnx, normalizer_inputs, monkeypatch):
    import accuracy.localize as localize_package

    monkeypatch.setattr(localize_package, "_REPAIR_LIMIT", 1000)  # the hazard chain's 32 KiB of weights
    result = localize_model(hazard_onnx, normalizer_inputs, suggest_fp32=True)
    assert result["first_divergent"]["node"] == HAZARD_NODE  # localisation itself streams: unaffected
    assert result["repair"]["passed"] is False and "under 2 GB" in result["repair"]["note"]
