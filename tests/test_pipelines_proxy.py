"""The model proxy keeps diffusers' OnnxRuntimeModel contract over a real onnxruntime session."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from accuracy.backends import get_backend
from accuracy.errors import BackendError
from accuracy.pipelines.proxy import ModelProxy


def _unet_like(path, *, timestep_type=TensorProto.FLOAT, names=("sample", "timestep")):
    nodes = [helper.make_node("Cast", [names[1]], ["t"], to=TensorProto.FLOAT),
             helper.make_node("Add", [names[0], "t"], ["out_sample"]),
             helper.make_node("Neg", ["out_sample"], ["negated"])]
    graph = helper.make_graph(nodes, "unet", [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, ["b", 4]),
                                               helper.make_tensor_value_info(names[1], timestep_type, [1])],
                              [helper.make_tensor_value_info("out_sample", TensorProto.FLOAT, ["b", 4]),
                               helper.make_tensor_value_info("negated", TensorProto.FLOAT, ["b", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return path


def test_keyword_feeds_in_list_of_outputs_out(tmp_path):
    session = get_backend("onnxruntime").load(_unet_like(tmp_path / "unet.onnx"))
    proxy = ModelProxy("unet", session)
    outputs = proxy(sample=np.ones((2, 4), np.float32), timestep=np.array([3.0], np.float32))
    assert isinstance(outputs, list) and len(outputs) == 2
    np.testing.assert_array_equal(outputs[0], np.full((2, 4), 4.0))
    np.testing.assert_array_equal(outputs[1], -outputs[0])
    assert proxy.calls == 1


@pytest.mark.parametrize("ort_type, expected", [(TensorProto.FLOAT, "tensor(float)"), (TensorProto.INT64, "tensor(int64)")])
def test_model_get_inputs_gives_the_timestep_dtype_as_diffusers_reads_it(tmp_path, ort_type, expected):
    ORT_TO_NP_TYPE = pytest.importorskip("diffusers.pipelines.onnx_utils").ORT_TO_NP_TYPE

    session = get_backend("onnxruntime").load(_unet_like(tmp_path / "unet.onnx", timestep_type=ort_type))
    proxy = ModelProxy("unet", session)
    timestep_type = next(i.type for i in proxy.model.get_inputs() if i.name == "timestep")
    assert timestep_type == expected and timestep_type in ORT_TO_NP_TYPE
    assert [o.name for o in proxy.model.get_outputs()] == ["out_sample", "negated"]


def test_hook_sees_every_call_with_its_index(tmp_path):
    session = get_backend("onnxruntime").load(_unet_like(tmp_path / "unet.onnx"))
    seen = []

    def hook(name, index, feeds, run):
        seen.append((name, index, sorted(feeds)))
        return run(feeds)

    proxy = ModelProxy("unet", session, hook=hook)
    for _ in range(2):
        proxy(sample=np.zeros((1, 4), np.float32), timestep=np.array([1.0], np.float32))
    assert seen == [("unet", 0, ["sample", "timestep"]), ("unet", 1, ["sample", "timestep"])]


def test_candidate_with_other_input_names_takes_feeds_in_reference_order(tmp_path):
    backend = get_backend("onnxruntime")
    reference = backend.load(_unet_like(tmp_path / "ref.onnx"))
    candidate = backend.load(_unet_like(tmp_path / "cand.onnx", names=("x0", "x1")))
    proxy = ModelProxy("unet", candidate, reference=reference)
    out = proxy(sample=np.ones((1, 4), np.float32), timestep=np.array([2.0], np.float32))
    np.testing.assert_array_equal(out[0], np.full((1, 4), 3.0))
    assert [i.name for i in proxy.model.get_inputs()] == ["sample", "timestep"]  # the pipeline sees the reference
    with pytest.raises(BackendError, match="takes 2 inputs"):
        proxy(sample=np.ones((1, 4), np.float32))
