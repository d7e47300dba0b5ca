"""Weights localize cannot take as they are: one line naming the file and the weight, exit 2, never a
traceback -- on the ordinary reader's path too (a file the in-place scan declines, here by giving an
initializer twice or by ``read_in_place`` declining every file) -- and sparse weights read as dense."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import accuracy.localize.graph as graph_module
from accuracy.localize import localize_model

WIDTH = 32


def _model(initializers: list[onnx.TensorProto], *, weight: str = "W", sparse=()) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])
    nodes = [helper.make_node("MatMul", ["x", weight], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [x], [y], initializers, sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _weight(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((WIDTH, WIDTH)).astype(np.float32)


def _cli(path, tmp_path) -> subprocess.CompletedProcess:
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones((1, WIDTH), np.float32))
    return subprocess.run([sys.executable, "-m", "accuracy", "localize", str(path), "--inputs", str(feeds)],
                          capture_output=True, text=True, timeout=120, check=False)


def _one_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(word in lines[0] for word in words), lines[0]


@pytest.fixture
def ordinary(monkeypatch):
    monkeypatch.setattr(graph_module, "read_in_place", lambda *_: None)


def test_an_empty_model_file_is_one_line(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    _one_line(_cli(path, tmp_path), "empty.onnx", "onnx cannot read the model", "empty")


def _saved(model: onnx.ModelProto, path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_a_weight_whose_data_does_not_fit_its_dims_is_one_line_naming_it(tmp_path):
    short = numpy_helper.from_array(_weight(), "W")
    short.raw_data = short.raw_data[:-4]  # one float short
    # the same name twice: the in-place scan declines the file, so the ordinary reader meets the weight
    path = _saved(_model([short, numpy_helper.from_array(np.zeros(2, np.float32), "W")]), tmp_path / "short.onnx")
    _one_line(_cli(path, tmp_path), "short.onnx", "'W'")


@pytest.mark.parametrize("kind", ["bfloat16", "bad int64 length"])
def test_other_weight_types_are_spilled_as_bytes_or_refused_naming_them(tmp_path, ordinary, kind):
    """A bfloat16 weight (no numpy buffer format) is written as its raw bytes (a crash before); an int64
    weight with too few bytes is one ``BackendError`` naming it."""
    weight = numpy_helper.from_array(_weight(), "W")
    if kind == "bfloat16":
        other = onnx.TensorProto(name="table", dims=[WIDTH, WIDTH], data_type=TensorProto.BFLOAT16,
                                 raw_data=bytes(2 * WIDTH * WIDTH))
        result = localize_model(_saved(_model([weight, other]), tmp_path / "bf16.onnx"),
                                {"x": np.ones((1, WIDTH), np.float32)})
        assert result["verdict"] in ("pass", "fail") and any(r["node"] == "mm" for r in result["tensors"])
        return
    other = onnx.TensorProto(name="ids", dims=[WIDTH, WIDTH], data_type=TensorProto.INT64, raw_data=bytes(8 * 100))
    with pytest.raises(graph_module.BackendError, match="'ids'"):
        localize_model(_saved(_model([weight, other]), tmp_path / "ids.onnx"), {"x": np.ones((1, WIDTH), np.float32)})


@pytest.mark.parametrize("coordinates", ["linear", "rows"])
def test_a_sparse_weight_is_read_as_its_dense_twin(tmp_path, coordinates):
    """ONNX Runtime densifies a sparse initializer; localize did not know the tensor ('reads undefined
    tensors'). The same records as the model holding the dense weight."""
    dense = _weight()
    dense[np.abs(dense) < 1.0] = 0.0
    flat = np.flatnonzero(dense)
    indices = flat if coordinates == "linear" else np.stack(np.unravel_index(flat, dense.shape), axis=1)
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(dense.reshape(-1)[flat], "W"),
                                       numpy_helper.from_array(indices.astype(np.int64), "W_indices"), list(dense.shape))
    feeds = {"x": np.random.default_rng(2).standard_normal((1, WIDTH)).astype(np.float32)}
    from_sparse = localize_model(_saved(_model([], sparse=[sparse]), tmp_path / "sparse.onnx"), feeds)
    from_dense = localize_model(_saved(_model([numpy_helper.from_array(dense, "W")]), tmp_path / "dense.onnx"), feeds)
    assert [(r["tensor"], r["metrics"]) for r in from_sparse["tensors"]] == \
        [(r["tensor"], r["metrics"]) for r in from_dense["tensors"]]
    assert from_sparse["tensors"][1]["metrics"]["max_abs"] > 0  # compared for real: fp16 rounding shows
