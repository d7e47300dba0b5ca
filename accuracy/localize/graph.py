"""The model as localize sees it: named nodes in topological order, tensor liveness, and small
sub-models ("segments") that expose every tensor they produce.

The model is read in place (``backends.onnxrt.weights``): its large weights become references to
their bytes in the model file itself, as external-data initializers are references into the model's
data files, and ONNX Runtime reads each segment's weights itself -- models over 2 GB work and no
weight is parsed or copied through Python. A file the scan declines is read the ordinary way and its
weights written once to a private file (``_spill``).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data

from accuracy.backends.onnxrt.weights import fp16_in_range, read_in_place
from accuracy.backends.onnxrt_fp16.emulate import all_graphs, node_names, tensor_types
from accuracy.errors import BackendError, InputError

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
_ELEM_BYTES = {TensorProto.FLOAT: 4, TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.BFLOAT16: 2,
               TensorProto.INT64: 8, TensorProto.INT32: 4, TensorProto.BOOL: 1, TensorProto.INT8: 1,
               TensorProto.UINT8: 1}


@dataclass(frozen=True)
class Node:
    """One node: its deterministic name, position in topological order and tensor names."""

    index: int
    name: str
    op_type: str
    inputs: tuple[str, ...]  # data inputs and outer-scope names its subgraphs read
    outputs: tuple[str, ...]
    proto: onnx.NodeProto = field(repr=False, compare=False)
    scope: str = ""  # the If whose taken branch the node comes from ("" in the main graph)


def is_expandable(node: Node) -> bool:
    """An ``If`` whose taken branch localize runs node by node."""
    return node.op_type == "If" and node.proto.op_type == "If"


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Outer-scope tensor names read by a node's subgraphs (If/Loop/Scan bodies)."""
    reads: set[str] = set()
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for graph in graphs:
            local = {i.name for i in graph.input} | {i.name for i in graph.initializer}
            for inner in graph.node:
                local |= set(inner.output)
            for inner in graph.node:
                reads |= {t for t in inner.input if t and t not in local} | (_subgraph_reads(inner) - local)
    return reads


class ModelGraph:
    """An ONNX model prepared for streamed localisation (see the module docstring)."""

    def __init__(self, model_path: str | Path, *, feeds: Mapping[str, np.ndarray] | None = None,
                 fp16: bool = False):
        self.path = Path(model_path)
        if not self.path.exists():
            raise InputError("model file not found", path=self.path)
        self.data_source = self.path  # the model's data files are found beside this path
        self.spilled: set[str] = set()  # weights moved to the private file (with fp16 copies: ``rounded``)
        self._rounded: dict[str, onnx.TensorProto] | None = None
        if self.path.is_file() and not self.path.stat().st_size:
            raise BackendError("onnx cannot read the model: the file is empty", path=self.path)
        found = read_in_place(self.path, _SPILL_MIN)
        if found is not None:  # weights stay in the model file, referred to in place (see ``weights``)
            self.model, self.in_place, self.data_source = found.model, set(found.names), found.source
        else:
            try:
                self.model = onnx.load(str(self.path), load_external_data=False)
            except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise many types for a bad file
                raise BackendError(f"onnx cannot read the model: {exc}", path=self.path) from None
            self.in_place = set()
            self._spill(fp16=fp16)
        graph = self.model.graph
        _densify_sparse(graph, self.path)
        self.initializers = {init.name: init for init in graph.initializer}
        self.in_range = fp16_in_range(self.data_source, self.model, self.in_place) if fp16 and self.in_place else set()
        self.input_names = [i.name for i in graph.input if i.name not in self.initializers]
        self.output_names = [o.name for o in graph.output]
        self.nodes = self._topological(graph)
        self.producer = {t: node for node in self.nodes for t in node.outputs if t}
        self.last_use: dict[str, int] = {}
        for node in self.nodes:
            for tensor in node.inputs:
                self.last_use[tensor] = node.index
        for name in self.output_names:
            self.last_use[name] = len(self.nodes)
        self.consumers: dict[str, list[str]] = {}
        for node in self.nodes:
            for tensor in node.inputs:
                self.consumers.setdefault(tensor, []).append(node.name)
        self.elem_type, self.nbytes = self._infer(feeds or {})

    def _spill(self, *, fp16: bool) -> None:
        """Move in-memory weights of a model without external data into one private file, once, so
        every segment refers to them instead of carrying them: a segment then serializes in no time,
        and shape inference reads a light model. Small ones (shape constants) stay in memory. With
        ``fp16`` the rounded copies (``rounded``) are written in the same pass."""
        from accuracy.backends.onnxrt_fp16.emulate import round_to_fp16

        graph = self.model.graph
        if any(uses_external_data(init) for init in graph.initializer):
            return
        big = [init for init in graph.initializer if self._data_bytes(init) >= _SPILL_MIN]
        if not big:
            return
        self._workdir = tempfile.TemporaryDirectory(prefix="accuracy-localize-")
        folder = Path(self._workdir.name)
        rounded_file = open(folder / _ROUNDED, "wb") if fp16 else None  # noqa: SIM115 - closed below
        if fp16:
            self._rounded = {}
        try:
            with open(folder / _WEIGHTS, "wb") as handle:
                for init in big:
                    data = self._weight_data(init)
                    if rounded_file is not None and init.data_type == TensorProto.FLOAT:
                        rounded = round_to_fp16(data, saturate=True)
                        self._rounded[init.name] = _external(init, _ROUNDED, _append(rounded_file, rounded),
                                                             rounded.nbytes)
                    init.CopyFrom(_external(init, _WEIGHTS, _append(handle, data), data.nbytes))
                    self.spilled.add(init.name)
        finally:
            if rounded_file is not None:
                rounded_file.close()
        self.data_source = folder / "model.onnx"

    def _weight_data(self, init: onnx.TensorProto) -> np.ndarray:
        """A weight's data as an array (raw bytes as they are for types numpy cannot hold, e.g. bfloat16);
        data that does not fit the tensor's dims or type is a ``BackendError`` naming the weight."""
        try:
            if init.HasField("raw_data") and init.data_type != TensorProto.FLOAT:
                expected = self._data_bytes(init)
                if init.data_type in _ELEM_BYTES and len(init.raw_data) != expected:
                    raise ValueError(f"{len(init.raw_data)} bytes of data for {expected}")
                return np.frombuffer(init.raw_data, np.uint8)
            return numpy_helper.to_array(init)
        except (ValueError, TypeError) as exc:
            raise BackendError(f"onnx cannot read the model: initializer {init.name!r}: {exc}", path=self.path,
                               where=init.name) from None

    @staticmethod
    def _data_bytes(init: onnx.TensorProto) -> int:
        return math.prod(init.dims) * _ELEM_BYTES.get(init.data_type, 4)

    def rounded(self, keep_fp32: Collection[str] = ()) -> tuple[dict[str, onnx.TensorProto], set[str]]:
        """Spilled float32 weights as fp16 would store them (finite values past 65504 saturated, inf/NaN
        kept), in a second private file written on first use: (name -> its reference, the names rounded).
        Weights only ``keep_fp32`` nodes read stay as they are."""
        from accuracy.backends.onnxrt_fp16.emulate import round_to_fp16

        folder = self.data_source.parent
        if self._rounded is None:
            self._rounded = {}
            with open(folder / _WEIGHTS, "rb") as source, open(folder / _ROUNDED, "wb") as handle:
                for name in sorted(self.spilled):
                    init = self.initializers[name]
                    if init.data_type != TensorProto.FLOAT:
                        continue
                    location = {e.key: e.value for e in init.external_data}
                    source.seek(int(location["offset"]))
                    data = np.frombuffer(source.read(int(location["length"])), np.float32)
                    rounded = round_to_fp16(data, saturate=True)
                    self._rounded[name] = _external(init, _ROUNDED, _append(handle, rounded), rounded.nbytes)
        stored = self.stored_rounded(keep_fp32)
        chosen = {name: proto for name, proto in self._rounded.items() if name in stored}
        return chosen, set(chosen)

    def stored_rounded(self, keep_fp32: Collection[str] = ()) -> set[str]:
        """The weights fp16 stores rounded with ``keep_fp32`` in fp32: those any node not kept reads. fp16
        stores a weight once, so it is decided over the whole graph (a segment sees only its own readers)."""
        kept = set(keep_fp32)
        return {t for t, readers in self.consumers.items()
                if t in self.initializers and any(r not in kept for r in readers)}

    def _topological(self, graph: onnx.GraphProto) -> list[Node]:
        names = node_names(graph)
        pending = [(name, proto) for name, proto in zip(names, graph.node)]
        available = set(self.initializers) | {i.name for i in graph.input} | {""}
        ordered: list[Node] = []
        while pending:
            progressed, rest = False, []
            for name, proto in pending:
                reads = [t for t in proto.input if t] + sorted(_subgraph_reads(proto))
                if all(t in available for t in reads):
                    ordered.append(Node(len(ordered), name, proto.op_type, tuple(dict.fromkeys(reads)),
                                        tuple(proto.output), proto))
                    available |= set(proto.output)
                    progressed = True
                else:
                    rest.append((name, proto))
            if not progressed:
                missing = sorted({t for _, p in rest for t in p.input if t and t not in available})
                raise BackendError(f"graph has a cycle or reads undefined tensors: {missing[:5]}",
                                   path=self.path, where=rest[0][0])
            pending = rest
        return ordered

    def check_feeds(self, feeds: Mapping[str, np.ndarray], *, source: str | Path | None = None) -> None:
        """Every input fed, with the element type and the fixed dimensions the model declares (a
        negative, symbolic or missing dimension is free, as ONNX Runtime treats it): else an
        ``InputError`` naming ``source``, the feeds' file (the model file when there is none), and the input."""
        where = self.path if source is None else source
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InputError(f"inputs lack {missing}; the model takes {self.input_names}", path=where)
        for vi in self.model.graph.input:
            if vi.name not in feeds or vi.name in self.initializers:
                continue
            if vi.type.WhichOneof("value") != "tensor_type":
                continue
            _check_dtype(vi, np.asarray(feeds[vi.name]), where)
            if not vi.type.tensor_type.HasField("shape"):
                continue
            declared = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                             for d in vi.type.tensor_type.shape.dim)
            shape = np.shape(feeds[vi.name])
            if len(shape) != len(declared) or any(d is not None and d != s for d, s in zip(declared, shape)):
                shown = "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"
                raise InputError(f"input {vi.name!r} has shape {shape} but the model {self.path.name} declares "
                                 f"{shown} ('?' is free)", path=where, where=vi.name)

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, int | str], dict[str, int]]:
        """Element types (or ``"sequence"``/``"optional"``/``"map"``) and byte sizes per tensor, main
        graph and subgraphs, by shape inference with the feeds' shapes."""
        probe = onnx.ModelProto()
        probe.CopyFrom(self.model)
        for vi in probe.graph.input:
            if vi.name in feeds and vi.type.WhichOneof("value") == "tensor_type":
                dims = vi.type.tensor_type.shape.dim
                del dims[:]
                for size in np.shape(feeds[vi.name]):
                    dims.add().dim_value = int(size)
        try:
            inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
            elem: dict[str, int | str] = tensor_types(inferred, inferred=True)
        except Exception:  # noqa: BLE001 - inference only sizes segments; without it they are guessed
            inferred = probe
            elem = tensor_types(probe)
        nbytes: dict[str, int] = {}
        for graph in all_graphs(inferred.graph):
            for vi in [*graph.input, *graph.value_info, *graph.output]:
                if vi.type.WhichOneof("value") != "tensor_type" or not vi.type.tensor_type.HasField("shape"):
                    continue
                tensor_type = vi.type.tensor_type
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
                if all(d >= 0 for d in dims):
                    nbytes[vi.name] = math.prod(dims) * _ELEM_BYTES.get(tensor_type.elem_type, 4)
        for name, init in self.initializers.items():
            elem[name] = init.data_type
        return elem, nbytes

    def is_tensor(self, tensor: str) -> bool:
        """A tensor of a known element type (what a segment can expose and feed)."""
        return isinstance(self.elem_type.get(tensor), int) and self.elem_type[tensor] != 0

    def kind(self, tensor: str) -> str:
        """``"sequence"``, ``"optional"``, ``"map"`` or ``"unknown"`` for what is not a typed tensor."""
        found = self.elem_type.get(tensor)
        return found if isinstance(found, str) else "unknown"

    def is_float(self, tensor: str) -> bool:
        return self.elem_type.get(tensor) in _FLOAT_TYPES

    @property
    def float32_tensors(self) -> set[str]:
        """Names of every float32 tensor whose type is known."""
        return {name for name, elem in self.elem_type.items() if elem == TensorProto.FLOAT}

    def segments(self, budget_bytes: int, nodes: Sequence[Node] | None = None) -> list[list[Node]]:
        """Consecutive node runs whose produced tensors total about ``budget_bytes`` (unknown sizes
        count as the largest known one), so one segment's exposed tensors fit the budget. An ``If``
        is a segment of its own (localize expands its taken branch); a cut never falls where a
        sequence/optional value (which a segment cannot take as input) is still to be read."""
        nodes = self.nodes if nodes is None else nodes
        fallback = max(self.nbytes.values(), default=1 << 20)
        last_read = {t: position for position, node in enumerate(nodes) for t in node.inputs}
        chunks: list[list[Node]] = [[]]
        size = 0
        opaque: set[str] = set()  # values of the current chunk that cannot cross a cut, still to be read
        for position, node in enumerate(nodes):
            opaque = {t for t in opaque if last_read.get(t, -1) >= position}
            cost = sum(self.nbytes.get(t, fallback) for t in node.outputs if t)
            # the weights a segment carries count too: a segment model must stay under protobuf's 2 GB
            cost += sum(self.initializer_bytes(t) for t in node.inputs if t in self.initializers)
            alone = is_expandable(node)
            previous_alone = bool(chunks[-1]) and is_expandable(chunks[-1][-1])
            if chunks[-1] and not opaque and (size + cost > budget_bytes or alone or previous_alone):
                chunks.append([])
                size = 0
            chunks[-1].append(node)
            size += cost
            opaque |= {t for t in node.outputs if t and not self.is_tensor(t)}
        return [c for c in chunks if c]

    def expand_if(self, node: Node, condition: bool) -> list[Node]:
        """The taken branch of an ``If`` as nodes of this graph (their own names, or their output
        tensor's for unnamed ones), then one ``Identity`` per output named after the ``If``, which
        gives the branch's result the ``If``'s output name. Branch initializers join the model's."""
        branch = next(a.g for a in node.proto.attribute if a.name == ("then_branch" if condition else "else_branch"))
        scope = f"{node.name}/{'then_branch' if condition else 'else_branch'}/"
        for init in branch.initializer:
            self.initializers[init.name] = init
            self.elem_type[init.name] = init.data_type
        expanded = []
        for name, proto in zip(node_names(branch, scope=scope), branch.node):
            reads = [t for t in proto.input if t] + sorted(_subgraph_reads(proto))
            expanded.append(Node(node.index, name, proto.op_type, tuple(dict.fromkeys(reads)), tuple(proto.output),
                                 proto, scope=node.name))
        for inner, outer in zip(branch.output, node.outputs):
            identity = helper.make_node("Identity", [inner.name], [outer], name=node.name)
            expanded.append(Node(node.index, node.name, node.op_type, (inner.name,), (outer,), identity))
        return expanded

    @property
    def external_data_folder(self) -> Path:
        """Where the weights' files are found (the model's folder, or the private spill folder)."""
        return self.data_source.parent

    def initializer_bytes(self, name: str) -> int:
        """Size of an initializer's data, from its dims (the data itself is not loaded)."""
        init = self.initializers[name]
        return math.prod(init.dims) * _ELEM_BYTES.get(init.data_type, 4)

    def submodel(self, nodes: Sequence[Node], inputs: Mapping[str, np.ndarray], outputs: Iterable[str], *,
                 replace: Mapping[str, onnx.TensorProto] | None = None) -> onnx.ModelProto:
        """A model of ``nodes`` alone: ``inputs`` (name -> example array giving dtype/shape) become graph
        inputs, the initializers they read are copied in (``replace`` swaps some, e.g. the rounded
        weights), ``outputs`` are exposed."""
        used = {t for node in nodes for t in node.inputs}
        replace = replace or {}
        # external-data initializers stay references into the model's data files: ORT reads them
        # itself (see ``data_source``), so weights are neither copied nor serialized here
        initializers = [replace.get(t, self.initializers[t]) for t in sorted(used & set(self.initializers))
                        if t not in inputs]
        graph_inputs = [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype), np.shape(a))
            for name, a in inputs.items()
        ]
        graph_outputs = [_value_info(t, self.elem_type[t]) for t in outputs]  # hundreds: built directly
        protos = []
        for node in nodes:  # carry the deterministic names, so keep-lists and messages agree
            proto = onnx.NodeProto()
            proto.CopyFrom(node.proto)
            proto.name = node.name
            protos.append(proto)
        graph = helper.make_graph(protos, f"{self.model.graph.name}_part", graph_inputs,
                                  graph_outputs, initializers)
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        model.ir_version = self.model.ir_version
        model.functions.extend(self.model.functions)
        return model


_SPILL_MIN = 1024  # bytes; smaller initializers (shape constants) stay in the model for shape inference
_WEIGHTS, _ROUNDED = "weights.bin", "weights_fp16.bin"


def _append(handle, data: np.ndarray) -> int:
    """Write ``data`` at the next page boundary of ``handle`` (no copy of it in between); its offset.
    Page-aligned, so ONNX Runtime may map it instead of reading it into a buffer."""
    offset = -(-handle.tell() // _PAGE) * _PAGE
    handle.seek(offset)
    handle.write(memoryview(np.ascontiguousarray(data)).cast("B"))
    return offset


_PAGE = 4096


def _external(init: onnx.TensorProto, location: str, offset: int, length: int) -> onnx.TensorProto:
    """A reference to ``init``'s data at ``offset`` in ``location`` (no data of its own)."""
    tensor = onnx.TensorProto(name=init.name, dims=init.dims, data_type=init.data_type)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = TensorProto.EXTERNAL
    return tensor


def _value_info(name: str, elem_type: int) -> onnx.ValueInfoProto:
    """``helper.make_tensor_value_info(name, elem_type, None)``, without its checks (a segment exposes
    hundreds of tensors)."""
    return onnx.ValueInfoProto(name=name, type=onnx.TypeProto(tensor_type=onnx.TypeProto.Tensor(elem_type=elem_type)))


def _densify_sparse(graph: onnx.GraphProto, path: Path) -> None:
    """The main graph's sparse initializers as ordinary (dense) ones, as ONNX Runtime reads them: a
    segment carries initializers, not sparse ones. Bad ones are a ``BackendError`` naming them."""
    for sparse in graph.sparse_initializer:
        name = sparse.values.name
        try:
            values = numpy_helper.to_array(sparse.values).reshape(-1)
            indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
            dense = np.zeros(math.prod(sparse.dims), values.dtype)
            if indices.ndim == 2:  # one row of coordinates per value
                indices = np.ravel_multi_index(tuple(indices.T), tuple(sparse.dims))
            dense[indices.reshape(-1)] = values
            graph.initializer.append(numpy_helper.from_array(dense.reshape(tuple(sparse.dims)), name))
        except (ValueError, TypeError, IndexError, MemoryError) as exc:
            raise BackendError(f"onnx cannot read the model: sparse initializer {name!r}: {exc}", path=path,
                               where=name) from None
    del graph.sparse_initializer[:]


def _check_dtype(vi: onnx.ValueInfoProto, array: np.ndarray, where) -> None:
    """The feed's dtype is the one the model declares for the input; else one ``InputError`` line."""
    declared = vi.type.tensor_type.elem_type
    if not declared:
        return
    expected = helper.tensor_dtype_to_np_dtype(declared) if declared in _NUMPY_TYPES else None
    name = TensorProto.DataType.Name(declared).lower()
    if declared not in _NUMPY_TYPES and declared != TensorProto.STRING:  # bfloat16, float8, int4 ...
        raise InputError(f"the model declares input {vi.name!r} as {name}, which ONNX Runtime's Python API cannot "
                         "be fed; localize needs float, float16 or integer inputs (cast to "
                         f"{name} inside the model)", path=where, where=vi.name)
    if array.dtype.kind == "V":
        raise InputError(f"input {vi.name!r} holds raw {array.dtype.itemsize}-byte values ({array.dtype}: how numpy "
                         f"stores bfloat16/float8/int4 data) but the model declares {name}; save it as {expected}",
                         path=where, where=vi.name)
    if expected is not None and array.dtype != expected:
        raise InputError(f"input {vi.name!r} is {array.dtype} but the model declares {name} ({expected}); "
                         f"convert the feed (e.g. .astype(numpy.{expected}))", path=where, where=vi.name)


_NUMPY_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT8, TensorProto.INT16,
                TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32,
                TensorProto.UINT64, TensorProto.BOOL}
