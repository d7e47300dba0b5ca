"""localize reading a model's weights in place (``accuracy/backends/onnxrt/weights.py``) against the ordinary
reader it stands in for: the same records, the same rounded tensors, the same errors for bad files.
The ordinary path is taken by making ``read_in_place`` decline (it returns ``None`` for files it does not
take), so each file here runs both ways."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import accuracy.localize.graph as graph_module
from accuracy.backends.onnxrt.weights import light_model
from accuracy.errors import BackendError
from accuracy.localize import localize_model
from accuracy.localize.graph import ModelGraph
from accuracy.localize.sides import OnnxSide

WIDTH = 64


# ---- protobuf wire format, written by hand for the layouts onnx.save never writes


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def _number(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _tensor(name: str, array: np.ndarray, *, raw_first: bool = False, packed: bool = False, extra: bytes = b"") -> bytes:
    """A float32 TensorProto's bytes: dims (packed or one field each), data type, name, raw data."""
    dims = _field(1, b"".join(map(_varint, array.shape))) if packed else b"".join(_number(1, d) for d in array.shape)
    head = dims + _number(2, TensorProto.FLOAT) + _field(8, name.encode())
    raw = _field(9, array.astype("<f4").tobytes())
    return (raw + head if raw_first else head + raw) + extra


def _matmul_file(initializers: list[bytes], *, graph_extra: bytes = b"", model_extra: bytes = b"") -> bytes:
    """y = MatMul(x, W) + B with the given initializer fields (W and B among them), appended to the graph."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"), helper.make_node("Add", ["h", "B"], ["y"], name="add")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    graph = model.graph.SerializeToString() + b"".join(_field(5, init) for init in initializers) + graph_extra
    model.ClearField("graph")
    return model.SerializeToString() + _field(7, graph) + model_extra


def _weights(scale: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((WIDTH, WIDTH)) * scale).astype(np.float32),
            rng.standard_normal((1, WIDTH)).astype(np.float32))


def _save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


def _matmul_model(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"), helper.make_node("Add", ["h", "B"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(weight, "W"),
                                                     numpy_helper.from_array(bias, "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def feeds():
    return {"x": np.random.default_rng(7).standard_normal((1, WIDTH)).astype(np.float32)}


@pytest.fixture
def ordinary(monkeypatch):
    """Run a callable with ``read_in_place`` declining every file (the ordinary reader's path)."""
    def run(call, *args, **kwargs):
        with monkeypatch.context() as patched:
            patched.setattr(graph_module, "read_in_place", lambda *_: None)
            return call(*args, **kwargs)
    return run


def _same_records(in_place: dict, reference: dict) -> None:
    __tracebackhide__ = True
    assert in_place["verdict"] == reference["verdict"]
    assert in_place["introduced"] == reference["introduced"] and in_place["warnings"] == reference["warnings"]
    assert [r["tensor"] for r in in_place["tensors"]] == [r["tensor"] for r in reference["tensors"]]
    for mine, theirs in zip(in_place["tensors"], reference["tensors"]):
        assert (mine["passed"], mine.get("status")) == (theirs["passed"], theirs.get("status")), mine["tensor"]
        for key, value in theirs["metrics"].items():
            if isinstance(value, float):
                assert mine["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), (mine["tensor"], key)
            else:
                assert mine["metrics"][key] == value, (mine["tensor"], key)


# ---- layouts protobuf allows: the references point at exactly the bytes protobuf reads


@pytest.mark.parametrize("layout", ["raw data first", "packed dims", "doc string and metadata", "unknown fields",
                                    "name twice", "float_data beside raw data"])
def test_each_layout_refers_to_the_bytes_the_ordinary_reader_reads(tmp_path, layout):
    weight, bias = _weights()
    extra = {"doc string and metadata": _field(12, b"doc") + _field(16, _field(1, b"k") + _field(2, b"v")),
             "unknown fields": _number(99, 5) + _field(100, b"zz"),
             "name twice": _field(8, b"W"),
             "float_data beside raw data": _field(4, np.ones(WIDTH * WIDTH, "<f4").tobytes())}.get(layout, b"")
    tensor = _tensor("W", weight, raw_first=layout == "raw data first", packed=layout == "packed dims", extra=extra)
    path = tmp_path / "m.onnx"
    path.write_bytes(_matmul_file([_field(8, b"Q") + tensor if layout == "name twice" else tensor, _tensor("B", bias)],
                                  graph_extra=_number(77, 1) if layout == "unknown fields" else b"",
                                  model_extra=_field(88, b"q") if layout == "unknown fields" else b""))
    light = light_model(path, 1024)
    assert light is not None and light[1] == {"W"}
    model, _ = light
    onnx.external_data_helper.load_external_data_for_model(model, str(tmp_path))
    expected = onnx.load(str(path))
    assert {i.name: numpy_helper.to_array(i).tobytes() for i in model.graph.initializer} == \
           {i.name: numpy_helper.to_array(i).tobytes() for i in expected.graph.initializer}


def test_raw_data_of_another_wire_type_is_an_unknown_field_not_a_weight(tmp_path):
    """Field 9 as a fixed32 is not ``raw_data`` to protobuf (it keeps it as an unknown field): no reference
    to those 4 bytes may be made."""
    weight, bias = _weights()
    odd = _number(1, 1) + _number(2, TensorProto.FLOAT) + _field(8, b"odd") + _varint(9 << 3 | 5) + b"\0\0\x80\x3f"
    path = tmp_path / "m.onnx"
    path.write_bytes(_matmul_file([_tensor("W", weight), _tensor("B", bias), odd]))
    assert not onnx.load(str(path)).graph.initializer[2].HasField("raw_data")
    light = light_model(path, 4)
    assert light is not None and "odd" not in light[1]
    kept = next(i for i in light[0].graph.initializer if i.name == "odd")
    assert kept.data_location != TensorProto.EXTERNAL and not kept.external_data


@pytest.mark.parametrize("damage", ["two graph fields", "raw data twice", "two big of one name"])
def test_files_protobuf_reads_by_merging_are_left_to_the_ordinary_reader(tmp_path, damage):
    weight, bias = _weights()
    if damage == "two graph fields":
        whole = _matmul_file([_tensor("W", weight), _tensor("B", bias)])
        data = whole + _field(7, _field(2, b"renamed"))  # protobuf merges the second into the first
    elif damage == "raw data twice":
        data = _matmul_file([_tensor("W", weight) + _field(9, (weight * 2).tobytes()), _tensor("B", bias)])
    else:
        data = _matmul_file([_tensor("W", weight), _tensor("W", weight * 2), _tensor("B", bias)])
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert light_model(path, 1024) is None


# ---- the same records and rounded tensors as the ordinary path


def test_rounded_weights_are_bitwise_those_of_the_ordinary_path(tmp_path, ordinary):
    """inf, NaN, past 65504, at the edge of rounding to inf, fp16 subnormals, float32 denormals, -0.0: the
    candidate's tensor y = x * W (x all ones) is W as the emulation rounds it, bit for bit both ways."""
    special = np.array([np.nan, np.inf, -np.inf, 1e5, -1e5, 65519, 65520, -65520, 65504, 1e-8, 6e-8, 3e-8,
                        -1e-39, -0.0, 0.0, 1.0001, 3.14159, 1e-45], np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    feeds = {"x": np.ones((1, WIDTH), np.float32)}
    for label, weight in [("special", np.resize(special, (WIDTH, WIDTH))),
                          ("in range", np.resize(special[9:], (WIDTH, WIDTH)))]:
        graph = helper.make_graph([helper.make_node("Mul", ["x", "W"], ["y"], name="mul")], "g", [x], [y],
                                  [numpy_helper.from_array(weight.astype(np.float32), "W")])
        path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / f"{label}.onnx")

        def candidate(model_graph: ModelGraph) -> np.ndarray:
            rounded, names = model_graph.rounded() if model_graph.spilled else ({}, set())
            part = model_graph.submodel(model_graph.nodes, feeds, ["y"], replace=rounded)
            return OnnxSide(fp16=True).run(part, feeds, ["y"], graph_inputs=["x"], source=model_graph.data_source,
                                           pre_rounded=names, in_range=model_graph.in_range)["y"]

        in_place = ModelGraph(path, feeds=feeds, fp16=True)
        assert in_place.in_place == {"W"} and in_place.in_range == ({"W"} if label == "in range" else set())
        reference = ordinary(ModelGraph, path, feeds=feeds, fp16=True)
        assert reference.spilled == {"W"}
        assert candidate(in_place).view(np.uint32).tolist() == candidate(reference).view(np.uint32).tolist(), label


def test_exact_arithmetic_gives_identical_records_both_ways(tmp_path, feeds, ordinary):
    """Weights in quarters and integer inputs: every sum is exact in fp32 and fp16, so the records must
    agree to the last bit whichever order ONNX Runtime adds in."""
    rng = np.random.default_rng(3)
    weight = (rng.integers(-8, 9, (WIDTH, WIDTH)) / 4).astype(np.float32)
    bias = (rng.integers(-8, 9, (1, WIDTH)) / 4).astype(np.float32)
    exact = {"x": rng.integers(-3, 4, (1, WIDTH)).astype(np.float32)}
    path = _save(_matmul_model(weight, bias), tmp_path / "m.onnx")
    in_place = localize_model(path, exact)
    reference = ordinary(localize_model, path, exact)
    assert [r["metrics"] for r in in_place["tensors"]] == [r["metrics"] for r in reference["tensors"]]


# ---- where the model file lies: links, read-only folders


def test_a_model_linked_from_another_folder_reads_its_weights_in_place(tmp_path, feeds, ordinary):
    """ONNX Runtime refuses external data that resolves outside the model's folder: a link's weights are
    named by the file the link points at, not by the link."""
    (tmp_path / "store").mkdir()
    (tmp_path / "models").mkdir()
    target = _save(_matmul_model(*_weights(scale=1e4)), tmp_path / "store" / "blob")
    link = tmp_path / "models" / "model.onnx"
    os.symlink(os.path.relpath(target, link.parent), link)
    model_graph = ModelGraph(link, feeds=feeds, fp16=True)
    assert model_graph.in_place == {"W"}
    _same_records(localize_model(link, feeds), ordinary(localize_model, link, feeds))


def test_a_linked_model_with_its_data_file_beside_the_link_is_read_as_onnx_reads_it(tmp_path, feeds, ordinary):
    """B lies in a data file beside the link (where ``onnx.load`` looks), W inline in the file linked to:
    no one folder holds both, so the ordinary path is taken, and it succeeds."""
    (tmp_path / "store").mkdir()
    (tmp_path / "models").mkdir()
    weight, bias = _weights(seed=5)
    bias = np.tile(bias, (WIDTH, 1))  # large enough to be a weight of its own file
    model = _matmul_model(weight, bias)
    onnx.external_data_helper.set_external_data(model.graph.initializer[1], "bias.bin")
    (tmp_path / "models" / "bias.bin").write_bytes(bias.tobytes())
    model.graph.initializer[1].ClearField("raw_data")
    target = _save(model, tmp_path / "store" / "model.onnx")
    link = tmp_path / "models" / "model.onnx"
    os.symlink(target, link)
    assert ModelGraph(link, feeds=feeds).in_place == set()
    _same_records(localize_model(link, feeds), ordinary(localize_model, link, feeds))


def test_a_read_only_model_folder_is_only_read(tmp_path, feeds, ordinary):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = _save(_matmul_model(*_weights(scale=1e5)), folder / "m.onnx")
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    try:
        before = sorted(os.listdir(folder))
        in_place = localize_model(path, feeds)
        assert sorted(os.listdir(folder)) == before
        _same_records(in_place, ordinary(localize_model, path, feeds))
    finally:
        os.chmod(folder, 0o755)


# ---- bad files: the ordinary reader's one-line error


def _localize_cli(model, feeds_path):
    return subprocess.run([sys.executable, "-m", "accuracy", "localize", str(model), "--inputs", str(feeds_path)],
                          check=False, capture_output=True, text=True, timeout=120)


def test_two_initializers_of_one_name_give_the_ordinary_error(tmp_path, feeds, ordinary):
    """A large W, then a small W of the same name: which one the name means is protobuf's and ORT's
    question, so the file goes the ordinary way (it failed with a KeyError traceback)."""
    weight, bias = _weights()
    path = tmp_path / "m.onnx"
    path.write_bytes(_matmul_file([_tensor("W", weight), _tensor("W", weight[:2, :2]), _tensor("B", bias)]))
    assert light_model(path, 1024) is None
    with pytest.raises(BackendError) as in_place:
        localize_model(path, feeds)
    with pytest.raises(BackendError) as reference:
        ordinary(localize_model, path, feeds)
    assert str(in_place.value).split(": ", 1)[1] == str(reference.value).split(": ", 1)[1]
    np.savez(tmp_path / "feeds.npz", **feeds)
    proc = _localize_cli(path, tmp_path / "feeds.npz")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("damage", ["truncated in the weights", "one byte short", "not protobuf", "varint of 11 bytes",
                                    "length past the file"])
def test_a_bad_file_gives_onnx_cannot_read_the_model(tmp_path, feeds, damage):
    weight, bias = _weights()
    good = _matmul_file([_tensor("W", weight), _tensor("B", bias)])
    data = {"truncated in the weights": good[:len(good) // 2], "one byte short": good[:-1],
            "not protobuf": b"this is not an onnx model\n" * 100,
            "varint of 11 bytes": _varint(7 << 3 | 2) + b"\xff" * 10 + b"\x01" + good,
            "length past the file": _varint(7 << 3 | 2) + _varint(2**62) + good}[damage]
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert light_model(path, 1024) is None
    np.savez(tmp_path / "feeds.npz", **feeds)
    proc = _localize_cli(path, tmp_path / "feeds.npz")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "onnx cannot read the model" in lines[0], proc.stderr


@pytest.mark.parametrize("width", [WIDTH, 8])  # in place, and small enough to stay in the graph
def test_a_weight_shared_by_a_kept_node_and_another_is_rounded_whatever_the_segments(tmp_path, ordinary, width):
    """W is read by ``kept`` (kept in fp32) and by ``other``: fp16 stores W rounded, so ``kept`` reads the
    rounded W, as the ordinary path and one segment of the whole graph give. With a segment per node the
    emulation once decided per segment and left W unrounded for ``kept`` (in place or not). Every sum is
    exact (W: quarters times 1 + 2**-12, which fp16 rounds away; x: small integers), so only the rounding
    of W can tell the runs apart."""
    rng = np.random.default_rng(1)
    weight = (rng.integers(-8, 9, (width, width)) / 4 * (1 + 2**-12)).astype(np.float32)
    exact = {"x": rng.integers(-3, 4, (1, width)).astype(np.float32)}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y1", "y2")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y1"], name="kept"), helper.make_node("Relu", ["x"], ["r"], name="r"),
             helper.make_node("MatMul", ["r", "W"], ["y2"], name="other")]
    graph = helper.make_graph(nodes, "g", [x], outputs, [numpy_helper.from_array(weight, "W")])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "shared.onnx")
    whole = localize_model(path, exact, keep_fp32=["kept"])
    _same_records(whole, ordinary(localize_model, path, exact, keep_fp32=["kept"]))
    assert whole["tensors"][1]["tensor"] == "y1" and whole["tensors"][1]["metrics"]["max_abs"] > 0  # W rounded
    _same_records(localize_model(path, exact, keep_fp32=["kept"], segment_bytes=1), whole)
