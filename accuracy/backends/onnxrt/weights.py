"""Where an ONNX file's weights lie, without reading them into Python.

``read_in_place(path)`` (on ``light_model``) scans the file's protobuf wire format (memory-mapped, nothing copied) and
returns the model with every large ``raw_data`` initializer of the main graph turned into an
external-data reference *into the file itself* (its name as the location, the byte offset and
length of the data there). ONNX Runtime then reads those weights from the original file when a
segment needs them, and Python never holds them: no parse of tens of MB of weights, no copy, no
private copy of the file on disk.

The protobuf library has no way to tell where a field lies in its input, so the few wire-format
rules needed are applied here (varint keys, length-delimited fields; ONNX uses no groups). Anything
unexpected (a malformed file, a field twice, two initializers of one name) returns ``None`` and the
caller reads the model the ordinary way, which also gives the ordinary error for a bad file.

``fp16_in_range`` tells which of those weights fp16 holds without saturation (a min and a max each,
through the same memory map). Used by ``localize`` (its segments) and by the ``onnxruntime-fp16``
backend's in-memory conversions (a repair search's trials).
"""

from __future__ import annotations

import mmap
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx.external_data_helper import uses_external_data

# field numbers of onnx.proto3
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_NAME, _TENSOR_RAW_DATA, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 9, 13, 14
_LENGTH_DELIMITED = 2


class _Malformed(Exception):
    pass


@dataclass(frozen=True)
class InPlace:
    """A model read in place: ``model`` whose initializers ``names`` refer to their bytes in ``source``,
    the file's real path (its folder is where ONNX Runtime reads them)."""

    model: onnx.ModelProto
    names: frozenset[str]
    source: Path


def read_in_place(path: Path, min_bytes: int) -> InPlace | None:
    """The model of ``path`` with its initializers of ``min_bytes`` or more referring to their bytes in
    the file (``light_model``), or ``None`` to read it the ordinary way. The file is named by its real
    path: ONNX Runtime refuses data that resolves outside the model's folder, and the target of a link
    may lie in another folder. Such a link's model with data files of its own (found beside the link,
    as ``onnx.load`` finds them) is read the ordinary way: ORT takes one folder."""
    path = Path(path)
    real = path.resolve()
    light = light_model(real, min_bytes) if real.is_file() else None
    if light is None:
        return None
    if real.parent != path.parent.resolve() and _other_external_data(*light):
        return None
    return InPlace(light[0], frozenset(light[1]), real)


FP16_MAX = 65504.0


def fp16_in_range(source: Path, model: onnx.ModelProto, names: Collection[str]) -> set[str]:
    """Of the float32 initializers ``names`` whose data lies in ``source``, those whose values all lie
    within fp16's finite range: rounding them needs no saturation (an fp16 emulation rounds them by a
    Cast pair alone). Read through a memory map of the file: a min and a max per weight, nothing copied."""
    tensors = {init.name: init for init in model.graph.initializer if init.name in names}
    found = set()
    with open(source, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for name in sorted(tensors):
            init = tensors[name]
            if init.data_type != onnx.TensorProto.FLOAT:
                continue
            where = {e.key: int(e.value) for e in init.external_data if e.key in ("offset", "length")}
            values = np.frombuffer(data, np.dtype("<f4"), count=where["length"] // 4, offset=where["offset"])
            if values.size and -FP16_MAX <= values.min() and values.max() <= FP16_MAX:  # NaN: not in range
                found.add(name)
            del values  # the map closes only with no array over it
    return found


def _other_external_data(model: onnx.ModelProto, in_place: Collection[str]) -> bool:
    """Whether a tensor of ``model`` besides the main-graph weights ``in_place`` has its data in a file."""
    main = model.graph
    for graph in _graphs(main):
        tensors = [init for init in graph.initializer if graph is not main or init.name not in in_place]
        tensors += [part for sparse in graph.sparse_initializer for part in (sparse.values, sparse.indices)]
        for node in graph.node:
            for attr in node.attribute:
                sparse = [attr.sparse_tensor, *attr.sparse_tensors]
                tensors += [attr.t, *attr.tensors, *(part for s in sparse for part in (s.values, s.indices))]
        if any(uses_external_data(tensor) for tensor in tensors):
            return True
    return False


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph below it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [*attr.graphs, *([attr.g] if attr.HasField("g") else [])]:
                yield from _graphs(sub)


def light_model(path: Path, min_bytes: int) -> tuple[onnx.ModelProto, set[str]] | None:
    """The model of ``path`` with its main-graph initializers of ``min_bytes`` or more of raw data
    referring to their bytes in ``path`` (external data, location ``path.name``), and their names;
    ``None`` when the file does not lend itself (read it with ``onnx.load`` then)."""
    try:
        with open(path, "rb") as handle:
            if not handle.seek(0, 2):
                return None
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                data = memoryview(buffer)
                try:
                    rewritten, names = _model(data, path.name, min_bytes)
                finally:
                    data.release()
        if not names:
            return None
        model = onnx.ModelProto.FromString(rewritten)
        listed = [init.name for init in model.graph.initializer]
        if len(set(listed)) != len(listed):  # which one a name means: the ordinary reader's (and ORT's) call
            return None
        return model, names
    except (_Malformed, IndexError, OSError, ValueError):
        return None
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: the ordinary reader reports it
        return None


def _model(data: memoryview, location: str, min_bytes: int) -> tuple[bytes, set[str]]:
    out, names, graphs = bytearray(), set(), 0
    for number, wire, start, value, end in _fields(data, 0, len(data)):
        if number == _MODEL_GRAPH and wire == _LENGTH_DELIMITED:
            graphs += 1
            body = _graph(data, value, end, location, min_bytes, names)
            out += _key(number, wire) + _varint(len(body)) + body
        else:
            out += data[start:end]
    if graphs != 1:
        raise _Malformed("no graph, or more than one")
    return bytes(out), names


def _graph(data: memoryview, begin: int, finish: int, location: str, min_bytes: int, names: set[str]) -> bytes:
    out = bytearray()
    for number, wire, start, value, end in _fields(data, begin, finish):
        if number == _GRAPH_INITIALIZER and wire == _LENGTH_DELIMITED:
            tensor = _tensor(data, value, end, location, min_bytes)
            if tensor is not None:
                body, name = tensor
                names.add(name)
                out += _key(number, wire) + _varint(len(body)) + body
                continue
        out += data[start:end]
    return bytes(out)


def _tensor(data: memoryview, begin: int, finish: int, location: str, min_bytes: int) -> tuple[bytes, str] | None:
    """The tensor's fields with its raw data replaced by a reference into the file; ``None`` to keep
    it as it is (small, typed fields, or external already)."""
    raw = None
    kept = bytearray()
    for number, wire, start, value, end in _fields(data, begin, finish):
        if number in (_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION):
            return None
        if number == _TENSOR_RAW_DATA and wire == _LENGTH_DELIMITED:  # other wire types: an unknown field
            if raw is not None:
                raise _Malformed("raw_data twice")
            raw = (value, end - value)
            continue
        kept += data[start:end]
    if raw is None or raw[1] < min_bytes:
        return None
    probe = onnx.TensorProto.FromString(bytes(kept))  # name and dims, a few bytes
    if not probe.name:
        return None
    for key, text in (("location", location), ("offset", str(raw[0])), ("length", str(raw[1]))):
        entry = _string_field(1, key.encode()) + _string_field(2, text.encode())
        kept += _key(_TENSOR_EXTERNAL_DATA, _LENGTH_DELIMITED) + _varint(len(entry)) + entry
    kept += _key(_TENSOR_DATA_LOCATION, 0) + _varint(onnx.TensorProto.EXTERNAL)
    return bytes(kept), probe.name


def _fields(data: memoryview, begin: int, finish: int):
    """(number, wire type, start of the key, start of the value, end) of each field in ``data[begin:finish]``."""
    position = begin
    while position < finish:
        start = position
        key, position = _read_varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _read_varint(data, position)
            value = position
        elif wire == 1:
            value, end = position, position + 8
        elif wire == _LENGTH_DELIMITED:
            length, value = _read_varint(data, position)
            end = value + length
        elif wire == 5:
            value, end = position, position + 4
        else:
            raise _Malformed(f"wire type {wire}")
        if number == 0 or end > finish:
            raise _Malformed("field past its message")
        yield number, wire, start, value, end
        position = end


def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise _Malformed("varint too long")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _string_field(number: int, value: bytes) -> bytes:
    return _key(number, _LENGTH_DELIMITED) + _varint(len(value)) + value


def with_raw_data(serialized: bytes, data: Mapping[str, bytes]) -> bytes:
    """``serialized`` (a model whose main-graph initializers named in ``data`` carry no data) with each
    one's ``raw_data`` put in, where protobuf itself would write it (by field number): the bytes of
    ``model.SerializeToString()`` after setting each ``raw_data``, without protobuf copying tens of
    MB of weights through its serializer (several times slower than joining them here)."""
    view = memoryview(serialized)
    chunks: list = []
    placed = set()
    for number, wire, start, value, end in _fields(view, 0, len(view)):
        if number != _MODEL_GRAPH or wire != _LENGTH_DELIMITED:
            chunks.append(view[start:end])
            continue
        graph: list = []
        for g_number, g_wire, g_start, g_value, g_end in _fields(view, value, end):
            tensor = None
            if g_number == _GRAPH_INITIALIZER and g_wire == _LENGTH_DELIMITED:
                tensor = _with_data(view, g_value, g_end, data, placed)
            if tensor is None:
                graph.append(view[g_start:g_end])
            else:
                graph += [_key(g_number, g_wire), _varint(sum(len(c) for c in tensor)), *tensor]
        chunks += [_key(number, wire), _varint(sum(len(c) for c in graph)), *graph]
    missing = sorted(set(data) - placed)
    if missing:
        raise ValueError(f"no initializer without data named {missing[:5]} in the model")
    return b"".join(chunks)


def _with_data(view: memoryview, begin: int, finish: int, data: Mapping[str, bytes], placed: set[str]) -> list | None:
    """The tensor's fields with ``raw_data`` from ``data`` inserted before the first field numbered
    past it; ``None`` when the tensor is not one to fill."""
    fields = list(_fields(view, begin, finish))
    name = None
    for number, wire, start, value, end in fields:
        if number == _TENSOR_RAW_DATA:
            return None
        if number == _TENSOR_NAME and wire == _LENGTH_DELIMITED:
            name = bytes(view[value:end]).decode("utf-8", "surrogateescape")
    if name not in data:
        return None
    placed.add(name)
    raw = data[name]
    inserted = [_key(_TENSOR_RAW_DATA, _LENGTH_DELIMITED), _varint(len(raw)), raw]
    chunks: list = []
    for number, _, start, _, end in fields:
        if inserted and number > _TENSOR_RAW_DATA:
            chunks += inserted
            inserted = []
        chunks.append(view[start:end])
    return chunks + inserted
