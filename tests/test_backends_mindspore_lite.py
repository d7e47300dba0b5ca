"""``mindspore-lite`` backend. Its wheel cannot be installed here, so every test that builds a model
injects a fake ``mindspore_lite`` module (named ``fake`` below) recording what the backend asks of
the API; the missing-package path is tested for real."""

from __future__ import annotations

import sys
import types
from enum import Enum

import numpy as np
import pytest

from accuracy.backends import get_backend
from accuracy.backends.base import Session, TensorSpec
from accuracy.errors import BackendError, ConfigError, MissingDependencyError


class _DataType(Enum):
    FLOAT32 = 43
    FLOAT16 = 42


class _FakeTensor:
    def __init__(self, name, shape, dtype=_DataType.FLOAT32):
        self.name, self.shape, self.dtype, self.data = name, list(shape), dtype, None

    def set_data_from_numpy(self, array):
        if list(array.shape) != self.shape:
            raise RuntimeError(f"shape {array.shape} != {self.shape}")
        self.data = array

    def get_data_to_numpy(self):
        return self.data


def _fake_mindspore_lite(log: dict) -> types.ModuleType:
    """A stand-in for the API surface the backend uses: y = 2 * a + b, names a, b -> y."""
    module = types.ModuleType("mindspore_lite")

    class _Device:
        pass

    class Context:
        def __init__(self):
            self.target = []
            self.ascend, self.cpu, self.gpu = _Device(), _Device(), _Device()
            log["context"] = self

    class ModelType(Enum):
        MINDIR = 0

    class Model:
        def build_from_file(self, path, model_type, context, config_path="", config_dict=None):
            if path.endswith("broken.mindir"):
                raise RuntimeError("Build model failed: unsupported operator Foo\nmore detail")
            log["build"] = {"path": path, "model_type": model_type, "config_path": config_path,
                            "config_dict": config_dict}
            self.inputs = [_FakeTensor("a", (1, 4)), _FakeTensor("b", (1, 4))]

        def get_inputs(self):
            return self.inputs

        def get_outputs(self):
            return [_FakeTensor("y", (1, 4))]

        def resize(self, inputs, shapes):
            log["resize"] = shapes
            self.inputs = [_FakeTensor(t.name, s) for t, s in zip(inputs, shapes)]

        def predict(self, inputs):
            out = _FakeTensor("y", inputs[0].shape)
            out.data = 2 * inputs[0].data + inputs[1].data
            return [out]

    module.Context, module.Model, module.ModelType, module.DataType = Context, Model, ModelType, _DataType
    return module


@pytest.fixture
def fake_lite(monkeypatch):
    log: dict = {}
    monkeypatch.setitem(sys.modules, "mindspore_lite", _fake_mindspore_lite(log))
    return log


@pytest.fixture
def mindir(tmp_path):
    path = tmp_path / "model.mindir"
    path.write_bytes(b"mindir")
    return path


def test_fake_builds_with_target_device_and_ascend_precision_mode(fake_lite, mindir):
    session = get_backend("mindspore-lite", device_id=3, precision_mode="enforce_fp32").load(mindir)
    context = fake_lite["context"]
    assert context.target == ["ascend"] and context.ascend.device_id == 3
    assert fake_lite["build"]["config_dict"] == {"ascend_context": {"precision_mode": "enforce_fp32"}}
    assert fake_lite["build"]["path"] == str(mindir)
    assert session.input_names == ["a", "b"] and session.inputs[0].dtype == np.float32
    a, b = np.ones((1, 4), np.float32), np.arange(4, dtype=np.float32)[None]
    (y,) = session.run({"b": b, "a": a})  # by name, whatever the order of the feeds
    np.testing.assert_array_equal(y, 2 * a + b)


def test_fake_cpu_precision_mode_and_resize(fake_lite, mindir):
    session = get_backend("mindspore-lite", target="cpu", precision_mode="preferred_fp16").load(mindir)
    assert fake_lite["context"].target == ["cpu"] and fake_lite["context"].cpu.precision_mode == "preferred_fp16"
    assert fake_lite["build"]["config_dict"] is None
    a = np.ones((3, 4), np.float32)
    (y,) = session.run({"a": a, "b": a})
    assert fake_lite["resize"] == [[3, 4], [3, 4]] and y.shape == (3, 4)


class _Reference(Session):
    def _run(self, feeds):
        return []


def test_fake_takes_reference_names_when_conversion_lost_them(fake_lite, mindir, tmp_path):
    spec = lambda n: TensorSpec(n, (1, 4), np.dtype(np.float32))
    reference = _Reference(tmp_path / "m.onnx", [spec("sample"), spec("bias")], [spec("out")])
    session = get_backend("mindspore-lite").load(mindir, reference=reference)
    assert session.input_names == ["sample", "bias"] and session.output_names == ["out"]
    (y,) = session.run({"sample": np.ones((1, 4), np.float32), "bias": np.zeros((1, 4), np.float32)})
    assert (y == 2).all()


def test_fake_build_failure_and_bad_options(fake_lite, tmp_path):
    broken = tmp_path / "broken.mindir"
    broken.write_bytes(b"x")
    with pytest.raises(BackendError, match="broken.mindir.*unsupported operator Foo$"):
        get_backend("mindspore-lite").load(broken)
    with pytest.raises(ConfigError, match="target"):
        get_backend("mindspore-lite", target="npu").load(broken)
    with pytest.raises(ConfigError, match="precision"):
        get_backend("mindspore-lite", precision="fp16").load(broken)


def test_missing_package_says_how_to_install(mindir, monkeypatch):
    monkeypatch.setitem(sys.modules, "mindspore_lite", None)  # absent here anyway; make sure
    with pytest.raises(MissingDependencyError, match="mindspore_lite is not installed.*pip install mindspore-lite"):
        get_backend("mindspore-lite").load(mindir)
