"""The ``onnxruntime`` backend on real ORT sessions over the tiny graphs of tests/fixtures/onnx_graphs.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from accuracy.backends import get_backend
from accuracy.errors import BackendError, ConfigError


def test_runs_and_describes_the_model(hazard_onnx, normalizer_inputs):
    session = get_backend("onnxruntime").load(hazard_onnx)
    assert session.input_names == ["x"] and session.output_names == ["y"]
    assert session.inputs[0].shape == (1, 64) and session.inputs[0].dtype == np.float32
    (y,) = session.run(normalizer_inputs)
    assert y.shape == (1, 64) and np.isfinite(y).all()
    # the same numbers as a hand computation in float64
    model = onnx.load(str(hazard_onnx))
    w = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    h = np.maximum(normalizer_inputs["x"] @ w["w1"], 0) * w["scale"]
    expected = np.tanh((h / np.sqrt((h ** 2).sum(-1, keepdims=True))) @ w["w2"])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_optimization_levels_agree(hazard_onnx, normalizer_inputs, level):
    base = get_backend("onnxruntime", graph_optimization_level="disable").load(hazard_onnx).run(normalizer_inputs)
    other = get_backend("onnxruntime", graph_optimization_level=level).load(hazard_onnx).run(normalizer_inputs)
    np.testing.assert_allclose(other[0], base[0], rtol=1e-5, atol=1e-6)


def test_session_options_are_applied(hazard_onnx):
    session = get_backend(
        "onnxruntime", intra_op_num_threads=1, session_options={"enable_mem_pattern": False}
    ).load(hazard_onnx)
    options = session.ort_session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.enable_mem_pattern is False
    assert session.ort_session.get_providers() == ["CPUExecutionProvider"]


def test_idle_threads_do_not_spin_unless_asked(hazard_onnx):
    """Several sessions live in one process: an idle pool's busy-waiting threads would take the cores."""
    def spinning(**options):
        session = get_backend("onnxruntime", **options).load(hazard_onnx)
        return session.ort_session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning() == "0" and spinning(allow_spinning=True) == "1"
    fp16 = get_backend("onnxruntime-fp16", cache=False).load(hazard_onnx)
    assert fp16.ort_session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_bad_options_name_the_key(hazard_onnx):
    with pytest.raises(ConfigError, match="graph_optimization_level"):
        get_backend("onnxruntime", graph_optimization_level="max").load(hazard_onnx)
    with pytest.raises(ConfigError, match="frobnicate"):
        get_backend("onnxruntime", frobnicate=1).load(hazard_onnx)
    with pytest.raises(ConfigError, match="TensorrtExecutionProvider not available.*CPUExecutionProvider"):
        get_backend("onnxruntime", providers=["TensorrtExecutionProvider", "CPUExecutionProvider"]).load(hazard_onnx)
    with pytest.raises(ConfigError, match="no_such_attribute"):
        get_backend("onnxruntime", session_options={"no_such_attribute": 1}).load(hazard_onnx)


def test_bad_model_and_bad_feeds_are_backend_errors(tmp_path, hazard_onnx):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="junk.onnx.*cannot load"):
        get_backend("onnxruntime").load(junk)
    with pytest.raises(BackendError, match="not found"):
        get_backend("onnxruntime").load(tmp_path / "missing.onnx")
    session = get_backend("onnxruntime").load(hazard_onnx)
    with pytest.raises(BackendError, match="missing \\['x'\\]"):
        session.run({"z": np.zeros((1, 64), np.float32)})
    with pytest.raises(BackendError, match="failed to run"):
        session.run({"x": np.zeros((2, 3), np.float32)})


@pytest.mark.parametrize(("options", "key"), [
    ({"intra_op_num_threads": "four"}, "onnxruntime.intra_op_num_threads"),
    ({"inter_op_num_threads": -1}, "onnxruntime.inter_op_num_threads"),
    ({"intra_op_num_threads": True}, "onnxruntime.intra_op_num_threads"),
    ({"providers": 5}, "onnxruntime.providers"),
    ({"graph_optimization_level": 2}, "onnxruntime.graph_optimization_level"),
    ({"session_options": ["enable_mem_pattern"]}, "onnxruntime.session_options"),
    ({"allow_spinning": "no"}, "onnxruntime.allow_spinning"),
    ({"session_options": {"enable_mem_pattern": "yes please"}}, "onnxruntime.session_options.enable_mem_pattern"),
])
def test_option_values_of_the_wrong_type_are_config_errors_naming_the_option(hazard_onnx, options, key):
    with pytest.raises(ConfigError) as caught:
        get_backend("onnxruntime", **options).load(hazard_onnx)
    assert caught.value.where == key
