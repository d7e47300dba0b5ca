"""The repaired model is the converter's own: its weight rounding swapped for a vectorised twin and its
shape inference run on the weightless graph change no byte of what ``convert_float_to_float16`` writes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.transformers import float16

from accuracy.localize.offer import (
    _drop_fp16_round_trips,
    _relocate_stray_nodes,
    _sort_topologically,
    converter_float16,
    name_nodes,
    repaired_fp16_bytes,
    repaired_fp16_model,
)

EDGES = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-9, -1e-9, 2.98e-8, 3e-8, 5.96e-08, -5.96e-08, 6e-8, 1e-45,
         6.1e-5, 6.2e-5, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 7e4, -7e4, 3e38, -3e38]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_rounding_gives_the_converters_bits(dtype):
    rng = np.random.default_rng(0)
    spread = rng.standard_normal(50_000) * 10.0 ** rng.uniform(-12, 8, 50_000)
    large = np.tile(np.array(EDGES), 20_000) * rng.uniform(0.5, 1.1, 20_000 * len(EDGES))  # ORT's Cast rounds these
    for data in (np.array(EDGES, dtype), spread.astype(dtype), np.array([], dtype), np.full(7, 1e-30, dtype),
                 large.astype(dtype).reshape(-1, len(EDGES))):
        expected = float16.convert_np_to_float16(data)
        obtained = converter_float16(data)
        assert obtained.dtype == np.float16
        assert np.array_equal(expected.view(np.uint16), obtained.view(np.uint16))
    assert float16.convert_np_to_float16 is not converter_float16  # the swap is scoped to the conversion


def _model() -> onnx.ModelProto:
    """Two MatMuls sharing a weight (one of them kept in fp32), an unnamed Add, weights holding values
    at fp16's edges (tiny, past 65504, inf), big enough to be taken out for shape inference."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    w.flat[:len(EDGES) - 3] = np.array([e for e in EDGES if not np.isnan(e)][:len(EDGES) - 3], np.float32)
    shared = (rng.standard_normal((64, 64)) * 1e-8).astype(np.float32)
    bias = rng.uniform(-1e5, 1e5, 64).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"], name="first"),
             helper.make_node("MatMul", ["a", "shared"], ["b"], name="kept"),
             helper.make_node("Add", ["b", "bias"], ["c"]),
             helper.make_node("MatMul", ["c", "shared"], ["y"], name="last")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(shared, "shared"),
                               numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _converter_as_shipped(model: onnx.ModelProto, keep: list[str]) -> onnx.ModelProto:
    named = onnx.ModelProto()
    named.CopyFrom(model)
    name_nodes(named.graph)
    converted = float16.convert_float_to_float16(named, keep_io_types=True, node_block_list=keep)
    _relocate_stray_nodes(converted.graph)
    _sort_topologically(converted.graph)
    _drop_fp16_round_trips(converted, blocked=keep)
    return converted


@pytest.mark.parametrize("keep", [[], ["kept"], ["kept", "c"]])
def test_repaired_model_is_byte_for_byte_the_converters(keep):
    model = _model()
    before = model.SerializeToString()
    ours = repaired_fp16_model(model, keep)
    assert model.SerializeToString() == before  # the user's model is left as it was
    assert ours.SerializeToString() == _converter_as_shipped(model, keep).SerializeToString()
    halves = [i for i in ours.graph.initializer if i.data_type == TensorProto.FLOAT16]
    assert halves and all(len(i.raw_data) == 2 * int(np.prod(i.dims)) for i in halves)  # data put back
    assert repaired_fp16_bytes(model, keep) == ours.SerializeToString()  # its weights joined in apart


def test_raw_data_joined_into_a_serialized_model_lands_where_protobuf_writes_it():
    """``with_raw_data``: the weights of a weightless model put back give protobuf's own bytes, a tensor
    with fields numbered past raw_data's (doc_string, metadata) included; a name it lacks is an error."""
    from accuracy.backends.onnxrt.weights import with_raw_data
    from accuracy.backends.onnxrt_fp16.emulate import weightless_copy

    model = _model()
    model.graph.initializer[0].doc_string = "after raw_data in field order"
    helper.set_model_props(model, {"k": "v"})
    light = weightless_copy(model)
    stripped = {i.name for i in light.graph.initializer if not i.HasField("raw_data")}
    data = {i.name: i.raw_data for i in model.graph.initializer if i.name in stripped}
    assert len(data) >= 2 and with_raw_data(light.SerializeToString(), data) == model.SerializeToString()
    with pytest.raises(ValueError, match="nowhere"):
        with_raw_data(light.SerializeToString(), {**data, "nowhere": b"1234"})


def test_weightless_copy_keeps_every_field_but_the_weights_data():
    from accuracy.backends.onnxrt_fp16.emulate import weightless_copy

    model = _model()
    model.producer_name, model.doc_string = "bench", "kept"
    helper.set_model_props(model, {"k": "v"})
    light = weightless_copy(model)
    assert light.ByteSize() < model.ByteSize() // 10  # the 64x64 weights' data left behind
    restored = onnx.ModelProto()
    restored.CopyFrom(light)
    for init, original in zip(restored.graph.initializer, model.graph.initializer):
        assert (init.name, list(init.dims), init.data_type) == (original.name, list(original.dims), original.data_type)
        init.CopyFrom(original)
    assert restored.SerializeToString() == model.SerializeToString()
