"""``mindspore-lite`` on an Ascend target: no NPU exists here, so these tests drive the worker's
request handlers in-process over a fake ``mindspore_lite`` module (named ``fake`` below) that records
what the worker asks of the API. Everything that can be real (the CPU runtime, the converter, the
worker process) is tested for real in ``test_backends_mindspore_lite_real.py``."""

from __future__ import annotations

import configparser
from enum import Enum
from types import SimpleNamespace

import numpy as np
import pytest

from accuracy.backends.mindspore_lite.worker import Handlers


class _DataType(Enum):
    FLOAT32 = 43
    INT32 = 34


class _FakeTensor:
    def __init__(self, name, shape, dtype=_DataType.FLOAT32):
        self.name, self.shape, self.dtype, self.data = name, list(shape), dtype, None

    def set_data_from_numpy(self, array):
        if list(array.shape) != self.shape:
            raise RuntimeError(f"shape {array.shape} != {self.shape}")
        self.data = array

    def get_data_to_numpy(self):
        return self.data


def _fake_mindspore_lite(log: dict) -> SimpleNamespace:
    """The API surface the worker uses on an Ascend host: y = 2 * a + b, names a, b -> y."""

    class Context:
        def __init__(self):
            self.target = []
            self.ascend, self.cpu, self.gpu = SimpleNamespace(), SimpleNamespace(), SimpleNamespace()
            log["context"] = self

    class ModelType(Enum):
        MINDIR = 0

    class Model:
        def build_from_file(self, path, model_type, context, config_path=""):
            parser = configparser.ConfigParser()
            if config_path:
                parser.read(config_path)
            log["build"] = {"path": path, "model_type": model_type,
                            "config": {s: dict(parser.items(s)) for s in parser.sections()}}
            self.inputs = [_FakeTensor("a", (1, 4)), _FakeTensor("b", (1, 4))]

        def get_inputs(self):
            return self.inputs

        def resize(self, inputs, shapes):
            log["resize"] = shapes
            self.inputs = [_FakeTensor(t.name, s) for t, s in zip(inputs, shapes)]

        def predict(self, inputs):
            out = _FakeTensor("y", inputs[0].shape)
            out.data = 2 * inputs[0].data + inputs[1].data
            return [out]

    return SimpleNamespace(Context=Context, Model=Model, ModelType=ModelType, DataType=_DataType)


@pytest.fixture
def fake_ascend():
    log: dict = {}
    return Handlers(_fake_mindspore_lite(log)), log


def test_fake_ascend_target_device_id_and_precision_mode_in_ascend_context(fake_ascend, tmp_path):
    handlers, log = fake_ascend
    user_config = tmp_path / "user.ini"
    user_config.write_text("[execution_plan]\nop1=data_type:float16\n")
    reply, _ = handlers.build({"path": "/m/unet.mindir", "target": "ascend", "device_id": 3,
                               "precision_mode": "enforce_fp32", "config_path": str(user_config)}, [])
    assert reply["ok"] and [i["name"] for i in reply["inputs"]] == ["a", "b"]
    context = log["context"]
    assert context.target == ["ascend"] and context.ascend.device_id == 3
    # the precision mode reaches Ascend as [ascend_context] precision_mode, beside the user's own config
    assert log["build"]["config"] == {"execution_plan": {"op1": "data_type:float16"},
                                      "ascend_context": {"precision_mode": "enforce_fp32"}}
    assert not hasattr(context.cpu, "precision_mode")


def test_fake_ascend_merged_config_file_is_removed_after_the_build(fake_ascend, tmp_path, monkeypatch):
    """Each Ascend build with a precision_mode left its merged accuracy-mslite-*.ini in /tmp."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    handlers, log = fake_ascend
    reply, _ = handlers.build({"path": "/m/unet.mindir", "target": "ascend", "precision_mode": "force_fp16"}, [])
    assert reply["ok"] and log["build"]["config"] == {"ascend_context": {"precision_mode": "force_fp16"}}
    assert list(tmp_path.glob("accuracy-mslite-*.ini")) == []


def test_fake_ascend_run_resizes_to_each_gear(fake_ascend):
    handlers, log = fake_ascend
    reply, _ = handlers.build({"path": "/m/x.mindir", "target": "ascend"}, [])
    a = np.ones((3, 4), np.float32)
    b = np.arange(12, dtype=np.float32).reshape(3, 4)
    answer, (y,) = handlers.run({"model": reply["model"]}, [a, b])
    assert answer["ok"] and log["resize"] == [[3, 4], [3, 4]]
    np.testing.assert_array_equal(y, 2 * a + b)
