"""``recorded`` backend: replaying a folder of dumped calls, matched by inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accuracy.backends import get_backend
from accuracy.backends.recorded.loader import record_call
from accuracy.errors import BackendError, ConfigError


@pytest.fixture
def recording(tmp_path, hazard_onnx):
    """Two real calls of the fp16-emulated hazard model, dumped as a device host would."""
    device = get_backend("onnxruntime-fp16", cache=False).load(hazard_onnx)
    folder = tmp_path / "hazard_dump"
    feeds = []
    for i in range(2):
        x = np.random.default_rng(i).uniform(0.5, 1.5, (1, 64)).astype(np.float32)
        (y,) = device.run({"x": x})
        record_call(folder, i, {"x": x}, {"y": y})
        feeds.append(({"x": x}, y))
    return folder, feeds


def test_replays_the_matching_call_in_the_reference_order(recording, hazard_onnx):
    folder, calls = recording
    reference = get_backend("onnxruntime").load(hazard_onnx)
    session = get_backend("recorded").load(folder, reference=reference)
    assert session.input_names == ["x"] and session.output_names == ["y"]
    for feeds, expected in reversed(calls):  # order does not matter with match = "exact"
        np.testing.assert_array_equal(session.run(feeds)[0], expected)


def test_unrecorded_inputs_are_a_clear_error(recording):
    folder, calls = recording
    session = get_backend("recorded").load(folder)
    other = {"x": calls[0][0]["x"] + 1e-4}
    with pytest.raises(BackendError, match=r"hazard_dump.*no recording matches.*\(1, 64\)"):
        session.run(other)
    close = get_backend("recorded", match="close").load(folder)
    np.testing.assert_array_equal(close.run(other)[0], calls[0][1])
    with pytest.raises(BackendError, match="no recording"):
        close.run({"x": calls[0][0]["x"] + 1.0})


def test_order_mode_replays_call_by_call_then_stops(recording):
    folder, calls = recording
    session = get_backend("recorded", match="order").load(folder)
    anything = {"x": np.zeros((1, 64), np.float32)}
    for _, expected in calls:
        np.testing.assert_array_equal(session.run(anything)[0], expected)
    with pytest.raises(BackendError, match="call 3 has no recording"):
        session.run(anything)


def test_manifest_orders_outputs_and_names_with_slashes_survive(tmp_path):
    folder = tmp_path / "dump"
    record_call(folder, 0, {"in/0": np.ones(2, np.float32)}, {"b": np.zeros(1), "a/x:0": np.ones(1)})
    (folder / "manifest.json").write_text(json.dumps({"inputs": ["in/0"], "outputs": ["b", "a/x:0"]}))
    session = get_backend("recorded").load(folder)
    assert session.input_names == ["in/0"] and session.output_names == ["b", "a/x:0"]
    b, a = session.run({"in/0": np.ones(2, np.float32)})
    assert b[0] == 0 and a[0] == 1
    (folder / "manifest.json").write_text(json.dumps({"outputs": "b"}))
    with pytest.raises(ConfigError, match=r"manifest.json \[outputs\]"):
        get_backend("recorded").load(folder)


def test_bad_folders_and_options(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="no call_"):
        get_backend("recorded").load(tmp_path / "empty")
    (tmp_path / "file.npy").write_bytes(b"x")
    with pytest.raises(BackendError, match="folder"):
        get_backend("recorded").load(tmp_path / "file.npy")
    with pytest.raises(ConfigError, match="match"):
        get_backend("recorded", match="fuzzy").load(tmp_path / "empty")
