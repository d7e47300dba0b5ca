"""``accuracy.localize``: where fp16 error enters a model, on the hazard chain and its clean twin."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16
from accuracy.compare.tensors import TensorThresholds
from accuracy.errors import InputError, UsageError
from accuracy.localize import localize_model
from accuracy.localize import sides as sides_module
from tests.fixtures.onnx_graphs import HAZARD_NODE, HAZARD_SCALE, INHERITORS, normalizer_chain

UPSTREAM = ("embed", "h1", "amplify")


def _by_node(result):
    return {r["node"]: r for r in result["tensors"]}


def test_hazard_is_first_divergent_and_downstream_inherits(hazard_onnx, normalizer_inputs):
    result = localize_model(hazard_onnx, normalizer_inputs, "onnxruntime-fp16")
    assert result["verdict"] == "fail"
    first = result["first_divergent"]
    assert (first["node"], first["op_type"], first["tensor"]) == (HAZARD_NODE, "ReduceSumSquare", "ss")
    assert first["metrics"]["nonfinite_obtained"] == 1 and first["local_metrics"]["nonfinite_obtained"] == 1
    nodes = _by_node(result)
    assert [nodes[n]["status"] for n in UPSTREAM] == ["ok"] * 3
    assert [nodes[n]["status"] for n in INHERITORS] == ["inherited"] * len(INHERITORS)
    for name in INHERITORS:  # accumulated error fails, the node's own error does not
        assert nodes[name]["passed"] is False and nodes[name]["local"]["cosine"] > 0.999
    assert result["introduced"] == [HAZARD_NODE]
    assert [r["index"] for r in result["tensors"]] == sorted(r["index"] for r in result["tensors"])
    assert set(nodes["embed"]["metrics"]) >= {"cosine", "max_abs", "max_rel", "mean_abs", "rmse",
                                               "nonfinite_obtained"}
    # single-node runs only for flagged nodes
    assert result["work"]["single_node_runs"] == 1 + len(INHERITORS)


def test_clean_twin_has_no_divergence(clean_onnx, normalizer_inputs):
    result = localize_model(clean_onnx, normalizer_inputs, "onnxruntime-fp16")
    assert result["verdict"] == "pass" and result["first_divergent"] is None
    assert all(r["status"] == "ok" for r in result["tensors"]) and len(result["tensors"]) == 1 + 8
    assert result["tensors"][0]["node"] == "input:x"  # the fp16 rounding of the input is compared too
    assert result["work"]["single_node_runs"] == 0
    # the rounding is visible, just within bounds
    assert any(r["metrics"]["max_abs"] > 0 for r in result["tensors"])


def test_threshold_is_configurable(clean_onnx, normalizer_inputs):
    strict = localize_model(clean_onnx, normalizer_inputs, thresholds=TensorThresholds(cosine_min=None, max_abs=1e-9))
    assert strict["verdict"] == "fail" and strict["first_divergent"] is not None


def test_streaming_in_small_segments_gives_the_same_answer(hazard_onnx, normalizer_inputs, monkeypatch):
    whole = localize_model(hazard_onnx, normalizer_inputs, segment_bytes=1 << 30)
    exposed: list[int] = []
    original = sides_module.OnnxSide.run

    def counting(self, model, feeds, outputs, **kwargs):
        exposed.append(len(outputs))
        return original(self, model, feeds, outputs, **kwargs)

    monkeypatch.setattr(sides_module.OnnxSide, "run", counting)
    streamed = localize_model(hazard_onnx, normalizer_inputs, segment_bytes=1)
    assert streamed["work"]["segments"] == 8 and whole["work"]["segments"] == 1
    assert max(exposed) == 1  # never more than one node's tensors at once (8 in the whole model)
    assert [(r["node"], r["status"]) for r in streamed["tensors"]] == [(r["node"], r["status"]) for r in whole["tensors"]]
    for a, b in zip(streamed["tensors"], whole["tensors"]):
        assert a["metrics"]["max_abs"] == pytest.approx(b["metrics"]["max_abs"], rel=1e-6, abs=1e-12)


def test_external_data_models_work(tmp_path, normalizer_inputs):
    path = tmp_path / "external" / "model.onnx"
    path.parent.mkdir()
    onnx.save(normalizer_chain(scale=HAZARD_SCALE), str(path), save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (path.parent / "weights.bin").stat().st_size > 2 * 64 * 64 * 4 - 1
    result = localize_model(path, normalizer_inputs, segment_bytes=1)
    assert result["first_divergent"]["node"] == HAZARD_NODE
    # weights read by ORT from the data file are rounded to fp16 as inline ones are: same numbers
    inline = localize_model(normalizer_chain_path(tmp_path), normalizer_inputs)
    for a, b in zip(result["tensors"], inline["tensors"]):
        assert (a["node"], a["status"]) == (b["node"], b["status"])
        assert a["metrics"]["max_abs"] == pytest.approx(b["metrics"]["max_abs"], rel=1e-6, abs=1e-12)


def normalizer_chain_path(folder):
    path = folder / "inline.onnx"
    onnx.save(normalizer_chain(scale=HAZARD_SCALE), str(path))
    return path


def _dump(model: onnx.ModelProto, feeds, folder, rename=lambda t: t):
    """What a device dump looks like: every intermediate of the fp16-emulated model as <name>.npy."""
    emulated = emulate_fp16(model)
    produced = [t for node in model.graph.node for t in node.output]
    del emulated.graph.output[:]
    emulated.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in produced)
    values = ort.InferenceSession(emulated.SerializeToString(), providers=["CPUExecutionProvider"]).run(produced, feeds)
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in zip(produced, values):
        np.save(folder / f"{rename(name)}.npy", value)
    return folder


def test_dump_folder_candidate_finds_the_hazard(tmp_path, hazard_onnx, normalizer_inputs):
    folder = _dump(normalizer_chain(scale=HAZARD_SCALE), normalizer_inputs, tmp_path / "dump")
    result = localize_model(hazard_onnx, normalizer_inputs, folder)
    assert result["first_divergent"]["node"] == HAZARD_NODE
    nodes = _by_node(result)
    assert [nodes[n]["status"] for n in INHERITORS] == ["inherited"] * len(INHERITORS)
    assert result["work"]["single_node_runs"] == 0 and "dump" in nodes[HAZARD_NODE]["local_method"]


def test_dump_with_missing_tensors_map_and_bad_shapes(tmp_path, hazard_onnx, normalizer_inputs):
    folder = _dump(normalizer_chain(scale=HAZARD_SCALE), normalizer_inputs, tmp_path / "dump",
                   rename=lambda t: f"npu_{t}")
    mapping = {t: f"npu_{t}" for t in ("h0", "h1", "h", "ss", "n", "u", "p", "y")}
    mapping["not_in_model"] = "npu_zzz"
    (folder / "npu_h1.npy").unlink()  # missing: listed, the rest compared
    np.save(folder / "npu_h0.npy", np.load(folder / "npu_h0.npy").reshape(8, 8))  # same size: reshaped
    np.save(folder / "npu_p.npy", np.zeros((3,), np.float32))  # different size: reported
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    result = localize_model(hazard_onnx, normalizer_inputs, folder, name_map=tmp_path / "map.json")
    nodes = _by_node(result)
    assert result["missing"] == ["h1"] and nodes["h1"]["status"] == "missing"
    assert nodes["proj"]["status"] == "shape-mismatch" and "(3,)" in nodes["proj"]["note"]
    assert nodes["embed"]["status"] == "ok" and "reshaped" in nodes["embed"]["note"]
    assert result["first_divergent"]["node"] == HAZARD_NODE
    assert any("not_in_model" in w for w in result["warnings"])
    assert any("lacks 1 tensor" in w for w in result["warnings"])


def test_nothing_to_compare_and_bad_candidates(tmp_path, hazard_onnx, normalizer_inputs):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no tensor could be compared"):
        localize_model(hazard_onnx, normalizer_inputs, tmp_path / "empty")
    with pytest.raises(UsageError, match="neither a backend"):
        localize_model(hazard_onnx, normalizer_inputs, "tensorrt")
    with pytest.raises(UsageError, match="--map"):
        localize_model(hazard_onnx, normalizer_inputs, "onnxruntime-fp16", name_map=tmp_path / "m.json")
    with pytest.raises(InputError, match="inputs lack \\['x'\\]"):
        localize_model(hazard_onnx, {"z": normalizer_inputs["x"]})


def test_feeds_must_fit_the_declared_shape_and_keep_fp32_must_name_nodes(tmp_path, hazard_onnx, normalizer_inputs):
    x = normalizer_inputs["x"]
    for wrong in (x[:, :32], x.reshape(1, 1, 64), np.concatenate([x, x])):
        with pytest.raises(InputError, match="declares \\(1, 64\\)") as caught:
            localize_model(hazard_onnx, {"x": wrong}, feeds_source=tmp_path / "feeds.npz")
        assert caught.value.path == str(tmp_path / "feeds.npz") and caught.value.where == "x"
    with pytest.raises(InputError, match="inputs lack") as caught:
        localize_model(hazard_onnx, {"z": x}, feeds_source=tmp_path / "feeds.npz")
    assert caught.value.path == str(tmp_path / "feeds.npz")
    free = normalizer_chain(scale=HAZARD_SCALE)
    free.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"  # a free batch size fits any
    onnx.save(free, str(tmp_path / "free.onnx"))
    assert localize_model(tmp_path / "free.onnx", {"x": np.concatenate([x, x])})["verdict"] == "fail"
    with pytest.raises(UsageError, match="\\['nosuch'\\]"):
        localize_model(hazard_onnx, normalizer_inputs, keep_fp32=[HAZARD_NODE, "nosuch"])
    with pytest.raises(UsageError, match="segment size"):
        localize_model(hazard_onnx, normalizer_inputs, segment_bytes=0)


def test_plain_onnxruntime_candidate_agrees_with_itself(hazard_onnx, normalizer_inputs):
    result = localize_model(hazard_onnx, normalizer_inputs, "onnxruntime")
    assert result["verdict"] == "pass"
    assert all(r["metrics"]["max_abs"] == 0 for r in result["tensors"] if r["metrics"]["nonfinite_expected"] == 0)


def test_integer_tensors_constants_and_duplicate_names_stream_through(tmp_path):
    """Shape arithmetic (int64 tensors), Constant nodes and repeated node names, one node per segment."""
    from onnx import TensorProto, numpy_helper

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="dup"),
        helper.make_node("Constant", [], ["flat"], name="dup",
                         value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Reshape", ["x", "flat"], ["v"]),
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array(3.0, np.float32))),
        helper.make_node("Mul", ["v", "k"], ["w"]),
        helper.make_node("Reshape", ["w", "shape"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "shapes.onnx"
    onnx.save(model, str(path))
    feeds = {"x": np.arange(12, dtype=np.float32).reshape(3, 4) * 1000}  # values up to 33000: fits fp16
    result = localize_model(path, feeds, segment_bytes=1)
    names = [r["node"] for r in result["tensors"]]
    assert names == ["input:x", "dup", "flat", "v", "k", "w", "y"]  # topological; a repeated name: by output
    assert result["verdict"] == "pass" and result["work"]["segments"] == 6
    big = {"x": feeds["x"] * 2.5}  # x fits fp16 (<= 27500); 3x passes 65504 for the last three values
    first = localize_model(path, big, segment_bytes=1)["first_divergent"]
    assert first["node"] == "w" and first["metrics"]["nonfinite_obtained"] == 3


def test_an_input_that_does_not_fit_fp16_is_where_error_enters(hazard_onnx, normalizer_inputs):
    feeds = {"x": normalizer_inputs["x"] * 1e5}  # past 65504 before any node runs
    result = localize_model(hazard_onnx, feeds, suggest_fp32=True)
    assert result["first_divergent"]["node"] == "input:x" and result["first_divergent"]["op_type"] == "Input"
    assert result["introduced"][0] == "input:x"
    # a kept node reads the input unrounded, as the converter (keep_io_types) feeds it: keeping the
    # input's reader is part of the fix, and the converted model passes in plain ONNX Runtime
    repair = result["repair"]
    assert repair["passed"] is True and "embed" in repair["keep_fp32"]
