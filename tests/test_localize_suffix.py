"""Keep-list trials run from the first kept node on (``localize.suffix``) give what the whole emulated
model gives, reuse one prefix for later cuts, and decline what they cannot run."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.backends import get_backend
from accuracy.localize.suffix import SuffixTrials
from tests.fixtures.onnx_graphs import HAZARD_FIX, normalizer_chain, save


def _whole(path, keep, feeds):
    return get_backend("onnxruntime-fp16", keep_fp32=list(keep), cache=False).load(path).run(feeds)


@pytest.mark.parametrize("keep", [HAZARD_FIX, ["norm"], ["sum_sq"], ["unit", "proj"], ["sum_sq", "proj"]])
def test_a_trial_from_the_cut_gives_the_whole_models_outputs(tmp_path, normalizer_inputs, keep):
    path = save(normalizer_chain(scale=100.0), tmp_path / "hazard.onnx")
    calls = [normalizer_inputs, {"x": normalizer_inputs["x"] * 0.5}]
    trials = SuffixTrials(path, calls)
    got = trials.outputs(keep)
    for call, outputs in zip(calls, got):
        for expected, obtained in zip(_whole(path, keep, call), outputs):
            assert np.allclose(obtained, expected, rtol=1e-3, atol=1e-4, equal_nan=True)


def test_a_later_cut_reuses_the_prefix_already_run(tmp_path, normalizer_inputs):
    path = save(normalizer_chain(scale=100.0), tmp_path / "hazard.onnx")
    trials = SuffixTrials(path, [normalizer_inputs])
    trials.outputs(HAZARD_FIX)
    first = trials.runs
    trials.outputs(["norm"])  # later than sum_sq: runs from sum_sq's cut, no new prefix
    assert first == 2 and trials.runs == 3


def test_what_it_cannot_run_from_a_cut_it_declines(tmp_path, normalizer_inputs):
    path = save(normalizer_chain(scale=100.0), tmp_path / "hazard.onnx")
    trials = SuffixTrials(path, [normalizer_inputs])
    assert trials.outputs([]) is None  # nothing kept: the isolated phase's own outputs
    assert trials.outputs(["embed"]) is None  # the first node: nothing to reuse
    assert trials.outputs(["branch/then_branch/x"]) is None  # a name the main graph does not have


def test_a_kept_node_reading_a_graph_input_after_the_cut_reads_it_raw(tmp_path):
    """The suffix takes the graph's inputs raw, rounded there only for readers not kept."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="first"),
         helper.make_node("Add", ["r", "x"], ["y"], name="late")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "late.onnx")
    feeds = {"x": np.array([1.0 + 2**-12, 3.0], np.float32)}
    (outputs,) = SuffixTrials(path, [feeds]).outputs(["late"])
    assert np.array_equal(outputs[0], _whole(path, ["late"], feeds)[0])
    assert outputs[0][0] == np.float32(1.0) + feeds["x"][0]  # the Relu's output rounded, x as it came


def test_weights_shared_across_the_cut_are_rounded_for_a_kept_reader_too(tmp_path):
    rng = np.random.default_rng(4)
    weight = (rng.integers(-8, 9, (16, 16)) / 4 * (1 + 2**-12)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["a"], name="early"),
         helper.make_node("MatMul", ["a", "W"], ["y"], name="late")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "shared.onnx")
    feeds = {"x": rng.integers(-2, 3, (1, 16)).astype(np.float32)}
    (outputs,) = SuffixTrials(path, [feeds]).outputs(["late"])
    assert np.array_equal(outputs[0], _whole(path, ["late"], feeds)[0])


def test_a_pipeline_call_with_a_recorded_calls_inputs_is_answered_from_the_cut(tmp_path, normalizer_inputs):
    """The repair's confirmation runs the pipeline with the culprit on its keep-list: a call fed what a
    recorded call was fed is answered by the run from the cut, and only other feeds open the whole
    emulated model (once)."""
    from accuracy.bisect.repair import FromCutSession
    from accuracy.pipelines.recording import feeds_digest

    path = save(normalizer_chain(scale=100.0), tmp_path / "hazard.onnx")
    trials = SuffixTrials(path, [normalizer_inputs])
    opened = []

    def whole():
        opened.append(1)
        return get_backend("onnxruntime-fp16", keep_fp32=HAZARD_FIX, cache=False).load(path)

    like = get_backend("onnxruntime").load(path)
    session = FromCutSession(like, trials, HAZARD_FIX, [feeds_digest(normalizer_inputs)], whole)
    expected = _whole(path, HAZARD_FIX, normalizer_inputs)
    assert np.allclose(session.run(normalizer_inputs)[0], expected[0], rtol=1e-3, atol=1e-4) and not opened
    other = {"x": normalizer_inputs["x"] * 0.5}
    assert np.array_equal(session.run(other)[0], _whole(path, HAZARD_FIX, other)[0])
    session.run(other)
    assert opened == [1]
    session.close()


def test_a_kept_node_that_gives_no_output_leaves_the_prefixs_outputs(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="first"),
         helper.make_node("Neg", ["x"], ["unused"], name="dead")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "dead.onnx")
    feeds = {"x": np.array([1.0 + 2**-12, -3.0], np.float32)}
    (outputs,) = SuffixTrials(path, [feeds]).outputs(["dead"])
    assert np.array_equal(outputs[0], _whole(path, ["dead"], feeds)[0])
