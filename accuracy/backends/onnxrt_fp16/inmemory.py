"""Conversions that never touch the cache (``cache = false``, a repair search's keep-list trials).

A model whose file can be read in place (``accuracy.backends.onnxrt.weights``) is emulated
without its weights: its large initializers stay references into the model file, rounded to fp16 by
Cast nodes in the graph (a pair alone for weights within fp16's range, else clipped first), and the
session runs with optimisations off -- ORT's constant folding of those Casts costs more at each
session's creation than running them. No weight passes through Python. Other models (weights in
typed fields, files the scan declines) are loaded, rounded in Python once per file, and handed to
ONNX Runtime as arrays.

What is prepared per file (the weightless graph, its float32 tensor names, which weights lie within
fp16's range; or the loaded model and its rounded weights) is kept in memory by (path, inode, size, mtime, ctime)
for the next keep-list of the same file. ``loaded_model`` is the whole model with its data, for the
repair's converter.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from accuracy.backends.onnxrt.weights import fp16_in_range, read_in_place
from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16, float_tensor_names
from accuracy.errors import BackendError

IN_PLACE_MIN = 1024  # bytes: smaller initializers stay in the graph and are rounded in Python


@dataclass
class InMemory:
    """An emulated model for one session: the serialized graph, and where its weights are -- the
    folder of the files it refers to (read in place, run with optimisations off), or arrays by name."""

    serialized: bytes
    folder: Path | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Prepared:
    model: onnx.ModelProto  # weightless when ``folder`` is set
    floats: set[str]
    in_range: set[str] = field(default_factory=set)
    folder: Path | None = None
    rounded: dict[str, onnx.TensorProto] = field(default_factory=dict)  # loaded models: rounded weights so far


_PREPARED: OrderedDict[tuple, _Prepared] = OrderedDict()
_LOADED: OrderedDict[tuple, onnx.ModelProto] = OrderedDict()
_KEEP = 3  # models kept in memory: a repair search converts one model many times


def emulated_in_memory(model_path: Path, keep_fp32) -> InMemory:
    """The fp16 emulation of ``model_path`` with ``keep_fp32`` in fp32, for a session (module docstring)."""
    prepared = _prepared(model_path)
    if prepared.folder is not None:
        emulated = emulate_fp16(prepared.model, keep_fp32=keep_fp32, float_tensors=prepared.floats,
                                in_range=prepared.in_range)
        return InMemory(emulated.SerializeToString(), folder=prepared.folder)
    emulated = emulate_fp16(prepared.model, keep_fp32=keep_fp32, float_tensors=prepared.floats,
                            rounded_cache=prepared.rounded)
    serialized, arrays = _weights_apart(emulated)
    return InMemory(serialized, arrays=arrays)


def loaded_model(model_path: Path) -> onnx.ModelProto:
    """The whole model of ``model_path``, its weights' data loaded, kept for the next caller: callers
    read it and never change it."""
    model_path = Path(model_path)
    key = _key(model_path)
    if key not in _LOADED:
        prepared = _prepared(model_path)
        if prepared.folder is None:
            model = prepared.model
        else:  # the weightless graph with its data read back: quicker than parsing the whole file
            from onnx.external_data_helper import load_external_data_for_model

            model = onnx.ModelProto()
            model.CopyFrom(prepared.model)
            try:
                load_external_data_for_model(model, str(prepared.folder))
            except Exception as exc:  # noqa: BLE001 - onnx raises several types for unreadable data files
                raise BackendError(f"onnx cannot read the model's weights: {exc}", path=model_path) from None
        _LOADED[key] = model
        _trim(_LOADED)
    _LOADED.move_to_end(key)
    return _LOADED[key]


def prepared_names(model_path: Path) -> tuple[set[str], dict[str, onnx.TensorProto]]:
    """The float32 tensor names of ``model_path`` and its weights rounded so far (name -> rounded
    initializer, filled by conversions of the loaded model): for ``emulate_fp16``."""
    prepared = _prepared(model_path)
    return prepared.floats, prepared.rounded


def _prepared(model_path: Path) -> _Prepared:
    key = _key(model_path)
    if key in _PREPARED:
        _PREPARED.move_to_end(key)
        return _PREPARED[key]
    found = read_in_place(model_path, IN_PLACE_MIN)
    if found is not None:
        prepared = _Prepared(found.model, float_tensor_names(found.model),
                             fp16_in_range(found.source, found.model, found.names), folder=found.source.parent)
    else:
        try:
            model = onnx.load(str(model_path))
        except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise many types for a bad file
            raise BackendError(f"onnx cannot read the model: {exc}", path=model_path) from None
        prepared = _Prepared(model, float_tensor_names(model))
    _PREPARED[key] = prepared
    _trim(_PREPARED)
    return prepared


def _key(model_path: Path) -> tuple:
    """The file's identity and times: a rewrite that keeps size and mtime (``os.utime``, or within one
    tick of the file clock) still changes the ctime, and a file renamed over it the inode."""
    stat = model_path.stat()
    return str(model_path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _trim(store: OrderedDict) -> None:
    while len(store) > _KEEP:
        store.popitem(last=False)


def _weights_apart(model: onnx.ModelProto) -> tuple[bytes, dict[str, Any]]:
    """``model`` serialized without its large weights, and those weights as arrays (name -> array) that
    the session receives in memory: a trial's model is not serialized and parsed back whole."""
    weights = {}
    for init in model.graph.initializer:
        if init.HasField("raw_data") and math.prod(init.dims) >= _APART_MIN:
            dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
            weights[init.name] = np.frombuffer(init.raw_data, dtype=dtype).reshape(tuple(init.dims))
            reference = TensorProto(name=init.name, dims=init.dims, data_type=init.data_type,
                                    data_location=TensorProto.EXTERNAL)
            for key, value in (("location", "accuracy-in-memory"), ("offset", "0"),
                               ("length", str(weights[init.name].nbytes))):
                entry = reference.external_data.add()
                entry.key, entry.value = key, value
            init.CopyFrom(reference)
    return model.SerializeToString(), weights


_APART_MIN = 1 << 14  # elements
