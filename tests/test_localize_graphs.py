"""``localize`` on the graphs real models bring: -inf masks, If branches, dynamic dims, other dtypes,
sequence intermediates, scale errors (graphs in tests/fixtures/fp16_graphs.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from accuracy.compare.tensors import TensorThresholds
from accuracy.errors import InputError
from accuracy.localize import localize_model
from tests.fixtures.fp16_graphs import (
    BN_NODE,
    attention_mask_model,
    batchnorm_scale_model,
    dynamic_batch_model,
    if_branch_model,
    save,
    sequence_model,
)


def _by_node(result):
    return {r["node"]: r for r in result["tensors"]}


def test_a_mask_made_with_minus_inf_is_not_blamed(tmp_path):
    path = save(attention_mask_model(), tmp_path / "mask.onnx")
    scores = {"scores": np.linspace(-2, 2, 16, dtype=np.float32).reshape(4, 4)}
    result = localize_model(path, scores)
    assert result["verdict"] == "pass" and result["first_divergent"] is None
    nodes = _by_node(result)
    assert nodes["causal_mask"]["passed"] is True and nodes["causal_mask"]["metrics"]["nonfinite_obtained"] == 6
    assert nodes["apply_mask"]["passed"] is True


def test_a_repair_that_fails_in_plain_onnxruntime_is_not_offered_fake_check(hazard_onnx, normalizer_inputs, tmp_path):
    """The deploy check is injected (fake) to fail: the keep-list is kept, the model file is not written."""
    seen = []
    result = localize_model(hazard_onnx, normalizer_inputs, suggest_fp32=True, out_dir=tmp_path,
                            deploy_check=lambda model: seen.append(model) or {"passed": False})
    repair = result["repair"]
    checked = onnx.ModelProto.FromString(seen[0])  # the check gets the serialized model, the bytes a user deploys
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in checked.graph.initializer)
    assert repair["keep_fp32"] == ["sum_sq", "norm"] and not repair["passed"] and "not offered" in repair["note"]
    assert "model" not in repair["files"] and not (tmp_path / "model_fp16_repaired.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model_fp16_repaired")]  # no staging left


def test_snippets_name_unnamed_nodes_by_their_output_tensor(tmp_path, normalizer_inputs):
    """The chain's Tanh has no name in the file: localize calls it by its output ``y``, the snippet says so,
    and the converted model blocks it under that name."""
    from accuracy.localize.offer import converter_snippets, repaired_fp16_model
    from tests.fixtures.onnx_graphs import normalizer_chain

    text = converter_snippets(["sum_sq", "y"], {"sum_sq": "ReduceSumSquare", "y": "Tanh"}, unnamed=["y"])
    assert "OpName::y" in text and "y: unnamed in your file" in text
    converted = repaired_fp16_model(normalizer_chain(scale=1.0), ["y"])
    tanh = next(n for n in converted.graph.node if n.op_type == "Tanh")
    assert tanh.name == "y" and tanh.input[0].endswith("fp32")  # blocked: fed through a Cast to fp32


def test_a_mask_of_float32_minimum_saturates_and_is_not_blamed(tmp_path):
    """Converters saturate it to -65504 (what fp16 holds): the same softmax, not an error's entry."""
    mask = np.triu(np.full((4, 4), np.finfo(np.float32).min, np.float32), k=1)
    path = save(attention_mask_model(mask), tmp_path / "mask_min.onnx")
    result = localize_model(path, {"scores": np.linspace(-2, 2, 16, dtype=np.float32).reshape(4, 4)})
    assert result["verdict"] == "pass"
    assert _by_node(result)["causal_mask"]["metrics"]["saturated"] == 6


def test_layers_inside_an_if_branch_are_emulated_and_compared(tmp_path):
    path = save(if_branch_model(), tmp_path / "if.onnx")
    feeds = {"x": np.full((1, 64), 1.0, np.float32), "use_norm": np.array(True)}
    result = localize_model(path, feeds)
    assert result["verdict"] == "fail"
    first = result["first_divergent"]
    assert (first["node"], first["op_type"], first["tensor"]) == ("sum_sq", "ReduceSumSquare", "ss")
    nodes = _by_node(result)
    assert nodes["sum_sq"]["scope"] == "branch" and nodes["amplify"]["status"] == "ok"
    assert nodes["unit"]["status"] == "inherited" and nodes["branch"]["status"] == "inherited"
    assert result["control_flow"]["expanded"] == [{"node": "branch", "branch": "then_branch", "nodes": 4}]
    assert result["control_flow"]["compared_inside"] == 4 and result["control_flow"]["not_compared_inside"] == {}
    emulation = result["emulation"]
    assert emulation["in_subgraphs"] == 5 and emulation["not_emulated"] == 0
    assert emulation["by_op_type"]["emulated"]["ReduceSumSquare"] == 1
    # a keep-list naming the branch node repairs it, verified on the model's outputs
    repaired = localize_model(path, feeds, suggest_fp32=True, out_dir=tmp_path / "repair")["repair"]
    assert repaired["passed"] and repaired["keep_fp32"] == ["sum_sq", "norm"] and repaired["repaired_model"]["passed"]
    # the converter's model (its Casts around the blocked branch node put back into the branch) in plain ORT
    session = ort.InferenceSession(repaired["files"]["model"], providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(session.run(None, feeds)[0], reference, rtol=1e-3)
    other = localize_model(path, {**feeds, "use_norm": np.array(False)})
    assert other["verdict"] == "pass" and other["control_flow"]["expanded"][0]["branch"] == "else_branch"


@pytest.mark.parametrize("batch", [1, 5])
def test_negative_symbolic_and_missing_dims_are_free(tmp_path, batch):
    path = save(dynamic_batch_model(), tmp_path / "dyn.onnx")
    feeds = {"x": np.random.default_rng(0).standard_normal((batch, 3, 48, 8)).astype(np.float32)}
    result = localize_model(path, feeds)
    assert result["verdict"] == "pass" and result["tensors"][-1]["shape"] == [batch, 3, 48, 8]
    with pytest.raises(InputError, match=r"declares \(\?, 3, \?, 8\)"):
        localize_model(path, {"x": feeds["x"][:, :2]})  # the fixed dimension still is


def test_a_sequence_intermediate_is_skipped_with_a_note(tmp_path):
    path = save(sequence_model(), tmp_path / "seq.onnx")
    feeds = {"x": np.arange(8, dtype=np.float32).reshape(2, 4), "x0": np.ones(4, np.float32)}
    result = localize_model(path, feeds, segment_bytes=1)  # a cut after every node, but never across 'parts'
    assert result["verdict"] == "pass"
    assert result["skipped"] == [{"tensor": "parts", "node": "split", "kind": "sequence"}]
    assert any("sequence" in w and "parts" in w for w in result["warnings"])
    assert [r["tensor"] for r in result["tensors"] if r["index"] >= 0] == ["first", "y"]


def test_a_scale_error_cosine_cannot_see_is_caught_by_default(tmp_path):
    path = save(batchnorm_scale_model(), tmp_path / "bn.onnx")
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    result = localize_model(path, feeds)
    assert result["verdict"] == "fail" and result["first_divergent"]["node"] == BN_NODE
    metrics = result["first_divergent"]["metrics"]
    assert metrics["cosine"] > 0.999 and metrics["rel_l2"] > 5  # direction kept, magnitude not
    assert result["thresholds"]["rel_l2_max"] == 0.15
    cosine_only = localize_model(path, feeds, thresholds=TensorThresholds(cosine_min=0.99))
    assert cosine_only["verdict"] == "pass"  # the old default saw nothing


def _localize_cli(*args):
    return subprocess.run([sys.executable, "-m", "accuracy", "localize", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("dtype, said", [("V2", "raw 2-byte values"), ("float64", "is float64 but the model declares float")])
def test_feeds_of_another_dtype_are_one_line_exit_2(tmp_path, dtype, said):
    path = save(dynamic_batch_model(), tmp_path / "dyn.onnx")
    feeds = tmp_path / "feeds.npz"
    if dtype == "V2":  # how numpy stores bfloat16 data (e.g. ml_dtypes.bfloat16 saved with np.savez)
        data = np.zeros((1, 3, 4, 8), np.uint16).view("V2")
    else:
        data = np.zeros((1, 3, 4, 8), np.float64)
    np.savez(feeds, x=data)
    proc = _localize_cli(path, "--inputs", feeds)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(feeds) in lines[0] and "'x'" in lines[0] and said in lines[0]


def test_consecutive_blocked_nodes_keep_fp32_between_them_in_the_converted_model(tmp_path, normalizer_inputs):
    """The converter puts Cast(fp16)->Cast(fp32) between two blocked nodes: the fp32 sum of squares
    overflows there and the model outputs zeros. The repaired model drops that round trip."""
    from accuracy.localize.offer import repaired_fp16_model
    from tests.fixtures.onnx_graphs import HAZARD_SCALE, normalizer_chain

    chain = normalizer_chain(scale=HAZARD_SCALE)
    repaired = repaired_fp16_model(chain, ["sum_sq", "norm"])
    onnx.checker.check_model(repaired)
    got = ort.InferenceSession(repaired.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, normalizer_inputs)[0]
    want = ort.InferenceSession(chain.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, normalizer_inputs)[0]
    assert np.abs(got).max() > 0.1 and np.allclose(got, want, atol=5e-3)
    norm = next(n for n in repaired.graph.node if n.name == "norm")
    assert norm.input[0] == next(n for n in repaired.graph.node if n.name == "sum_sq").output[0]


def test_a_loop_body_is_compared_per_node_over_its_iterations(tmp_path):
    from tests.fixtures.fp16_graphs import LOOP_HAZARD, loop_model

    path = save(loop_model(), tmp_path / "loop.onnx")
    result = localize_model(path, {"x": np.full((1, 64), 0.5, np.float32)})
    assert result["verdict"] == "fail"
    first = result["first_divergent"]
    assert (first["node"], first["op_type"]) == (LOOP_HAZARD, "ReduceSumSquare")
    nodes = _by_node(result)
    assert nodes["body_grow"]["status"] == "ok" and nodes["body_grow"]["iterations"] == 6
    assert nodes[LOOP_HAZARD]["scope"] == "stream" and nodes[LOOP_HAZARD]["metrics"]["nonfinite_obtained"] == 4  # iterations 3..6
    assert nodes["body_unit"]["status"] == "inherited"
    assert {"node": "stream", "branch": "body", "nodes": 4} in result["control_flow"]["expanded"]
    assert result["control_flow"]["not_compared_inside"] == {}
    repair = localize_model(path, {"x": np.full((1, 64), 0.5, np.float32)}, suggest_fp32=True)["repair"]
    assert repair["keep_fp32"] == [LOOP_HAZARD, "body_norm"] and repair["passed"]


def test_an_accumulator_in_a_scan_body_that_overflows_late_introduces_the_error_itself(tmp_path):
    from onnx import TensorProto, helper

    state = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("acc", "step", "acc_out", "half")]
    body = helper.make_graph([helper.make_node("Add", ["acc", "step"], ["acc_out"], name="accumulate"),
                              helper.make_node("Mul", ["acc_out", "k"], ["half"], name="halve")], "body",
                             state[:2], [state[2], state[3]],
                             initializer=[onnx.numpy_helper.from_array(np.array(0.5, np.float32), "k")])
    graph = helper.make_graph([helper.make_node("Scan", ["init", "xs"], ["total", "halves"], name="sum",
                                                body=body, num_scan_inputs=1)], "scan",
                              [helper.make_tensor_value_info("init", TensorProto.FLOAT, [4]),
                               helper.make_tensor_value_info("xs", TensorProto.FLOAT, [6, 4])],
                              [helper.make_tensor_value_info("total", TensorProto.FLOAT, [4]),
                               helper.make_tensor_value_info("halves", TensorProto.FLOAT, [6, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "scan.onnx")
    # 20000 per step: the running sum leaves fp16's range at the 4th step (80000), not before
    result = localize_model(path, {"init": np.zeros(4, np.float32), "xs": np.full((6, 4), 20000, np.float32)})
    nodes = _by_node(result)
    assert result["verdict"] == "fail"
    assert (result["first_divergent"]["node"], nodes["accumulate"]["status"]) == ("accumulate", "introduced")
    assert nodes["accumulate"]["first_iteration"] == 3
    assert nodes["halve"]["status"] == "inherited" and nodes["sum"]["status"] == "inherited"


@pytest.mark.parametrize("feed", ["float32", "V2"])
def test_a_bfloat16_model_input_is_one_line_exit_2_never_run_as_another_type(tmp_path, feed):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
                               helper.make_node("Relu", ["xf"], ["y"])], "bf16_in",
                              [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "bf16.onnx")
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.zeros((2, 4), np.float32) if feed == "float32" else np.zeros((2, 4), np.uint16).view("V2"))
    proc = _localize_cli(path, "--inputs", feeds)  # a float32 feed ran as if the input were float32: 'pass'
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'x'" in lines[0] and "bfloat16" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("scale, shapes", [(1.9999, "(1, 1, 8, 8) differs from the reference's (1, 1, 7, 7)")])
def test_a_float_tensor_whose_shape_changes_under_fp16_diverges(tmp_path, scale, shapes):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["s0", "one"], ["scales"], name="scale"),
         helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="nearest")], "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "s0"),
                     numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "resize.onnx")
    # fp16 rounds the scale 1.9999 to 2: the output is 8x8, not 7x7 (it passed as a mere 'shape-mismatch')
    result = localize_model(path, {"x": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)})
    assert result["verdict"] == "fail"
    resize = _by_node(result)["resize"]
    assert resize["passed"] is False and shapes in resize["metrics"]["failures"][0]


def test_a_repair_inside_an_if_branch_with_its_own_constant_is_offered_and_runs_in_plain_onnxruntime(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    from accuracy.localize.offer import repaired_fp16_model

    then = helper.make_graph([helper.make_node("Mul", ["x", "big"], ["grown"], name="grow"),
                              helper.make_node("Div", ["grown", "big"], ["back"], name="shrink")], "then", [],
                             [helper.make_tensor_value_info("back", TensorProto.FLOAT, [2, 4])],
                             initializer=[numpy_helper.from_array(np.array(1e5, np.float32), "big")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["same"])], "else", [],
                              [helper.make_tensor_value_info("same", TensorProto.FLOAT, [2, 4])])
    graph = helper.make_graph([helper.make_node("Constant", [], ["yes"], value=numpy_helper.from_array(np.array(True))),
                               helper.make_node("If", ["yes"], ["y"], name="branch", then_branch=then,
                                                else_branch=other)], "if_const",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "if_const.onnx")
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    # the converter's Casts of 'big' and of the fp16 input landed outside the branch: ORT refused the model
    repaired = repaired_fp16_model(onnx.load(str(path)), ["grow"])
    got = ort.InferenceSession(repaired.SerializeToString()).run(None, {"x": x})[0]
    assert np.allclose(got, x, atol=2e-3)
    repair = localize_model(path, {"x": x}, suggest_fp32=True)["repair"]
    assert repair["passed"] and repair["keep_fp32"] == ["grow", "shrink"] and repair["repaired_model"]["passed"]
