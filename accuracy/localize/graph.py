"""The model as localize sees it: named nodes in topological order, tensor liveness, and small
sub-models ("segments") that expose every tensor they produce.

The model is read without its external data; a segment's external initializers stay references
into the model's data files and ONNX Runtime reads them itself, so models over 2 GB work and no
weights are copied through Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from accuracy.backends.onnxrt_fp16.emulate import node_names
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

    def __init__(self, model_path: str | Path, *, feeds: Mapping[str, np.ndarray] | None = None):
        self.path = Path(model_path)
        if not self.path.exists():
            raise InputError("model file not found", path=self.path)
        try:
            self.model = onnx.load(str(self.path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise many types for a bad file
            raise BackendError(f"onnx cannot read the model: {exc}", path=self.path) from None
        graph = self.model.graph
        self.initializers = {init.name: init for init in graph.initializer}
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
        self.elem_type, self.nbytes = self._infer(feeds or {})

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
        """Every input fed, in the shape the model declares (its fixed dimensions): else an
        ``InputError`` naming ``source``, the feeds' file (the model file when there is none)."""
        where = self.path if source is None else source
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InputError(f"inputs lack {missing}; the model takes {self.input_names}", path=where)
        for vi in self.model.graph.input:
            if vi.name not in feeds or not vi.type.tensor_type.HasField("shape"):
                continue
            declared = tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
            shape = np.shape(feeds[vi.name])
            if len(shape) != len(declared) or any(d is not None and d != s for d, s in zip(declared, shape)):
                shown = "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"
                raise InputError(f"input {vi.name!r} has shape {shape} but the model {self.path.name} declares "
                                 f"{shown} ('?' is free)", path=where, where=vi.name)

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, int], dict[str, int]]:
        """Element types and byte sizes per tensor, by shape inference with the feeds' shapes."""
        probe = onnx.ModelProto()
        probe.CopyFrom(self.model)
        for vi in probe.graph.input:
            if vi.name in feeds:
                dims = vi.type.tensor_type.shape.dim
                del dims[:]
                for size in np.shape(feeds[vi.name]):
                    dims.add().dim_value = int(size)
        try:
            inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True).graph
        except Exception:  # noqa: BLE001 - inference only sizes segments; without it they are guessed
            inferred = probe.graph
        elem, nbytes = {}, {}
        for vi in list(inferred.input) + list(inferred.value_info) + list(inferred.output):
            tensor_type = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                continue
            elem[vi.name] = tensor_type.elem_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
            if tensor_type.HasField("shape") and all(d >= 0 for d in dims):
                nbytes[vi.name] = int(np.prod(dims, dtype=np.int64)) * _ELEM_BYTES.get(tensor_type.elem_type, 4)
        for name, init in self.initializers.items():
            elem[name] = init.data_type
        return elem, nbytes

    def is_float(self, tensor: str) -> bool:
        return self.elem_type.get(tensor) in _FLOAT_TYPES

    @property
    def float32_tensors(self) -> set[str]:
        """Names of every float32 tensor whose type is known."""
        return {name for name, elem in self.elem_type.items() if elem == TensorProto.FLOAT}

    def segments(self, budget_bytes: int) -> list[list[Node]]:
        """Consecutive node runs whose produced tensors total about ``budget_bytes`` (unknown sizes
        count as the largest known one), so one segment's exposed tensors fit the budget."""
        fallback = max(self.nbytes.values(), default=1 << 20)
        chunks: list[list[Node]] = [[]]
        size = 0
        for node in self.nodes:
            cost = sum(self.nbytes.get(t, fallback) for t in node.outputs if t)
            # the weights a segment carries count too: a segment model must stay under protobuf's 2 GB
            cost += sum(self.initializer_bytes(t) for t in node.inputs if t in self.initializers)
            if chunks[-1] and size + cost > budget_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(node)
            size += cost
        return [c for c in chunks if c]

    @property
    def external_data_folder(self) -> Path:
        """Where the model's external-data files are found (its own folder)."""
        return self.path.parent

    def initializer_bytes(self, name: str) -> int:
        """Size of an initializer's data, from its dims (the data itself is not loaded)."""
        init = self.initializers[name]
        return int(np.prod(init.dims, dtype=np.int64)) * _ELEM_BYTES.get(init.data_type, 4)

    def submodel(self, nodes: Sequence[Node], inputs: Mapping[str, np.ndarray], outputs: Iterable[str]) -> onnx.ModelProto:
        """A model of ``nodes`` alone: ``inputs`` (name -> example array giving dtype/shape) become graph
        inputs, the initializers they read are copied in, ``outputs`` are exposed."""
        used = {t for node in nodes for t in node.inputs}
        # external-data initializers stay references into the model's data files: ORT reads them
        # itself (see ``external_data_folder``), so weights are neither copied nor serialized here
        initializers = [self.initializers[t] for t in sorted(used & set(self.initializers)) if t not in inputs]
        graph_inputs = [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype), np.shape(a))
            for name, a in inputs.items()
        ]
        graph_outputs = [helper.make_tensor_value_info(t, self.elem_type.get(t, 0), None) for t in outputs]
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
