"""fp16 device-precision emulation by graph rewriting: round every float tensor to fp16 at op boundaries.

Why not ``onnxruntime.transformers.float16``: a plainly converted fp16 model run on ONNX Runtime's
CPU provider computes in fp32 — ORT wraps kernels that have no fp16 version in Casts and then drops
the redundant Cast pairs, so a sum of squares that overflows fp16 on a device comes out finite here.

What this does instead, in a private copy of the fp32 graph:

* after every node output (and every graph input) that is a float32 tensor, a
  ``Cast(to=float16) -> Cast(to=float32)`` pair, so the tensor holds exactly the fp16 value a device
  would store (``inf`` past 65504, lost low bits, flushed tiny values) while the op itself still
  accumulates in fp32, as NPU matrix units do;
* float32 initializers and ``Constant`` values rounded to fp16 values (stored as fp32); *finite*
  values past 65504 saturate to +-65504 as converters do offline (an attention mask's float32
  minimum stays finite), while ``inf``/``NaN`` stay what they are (a mask made with ``-inf`` keeps
  it, as ``onnxruntime.transformers.float16`` does); a *computed* tensor past 65504 becomes ``inf``;
* the same inside every subgraph (``If`` branches, ``Loop`` and ``Scan`` bodies, at any depth):
  their nodes, initializers and Constants are rounded like the main graph's;
* graph inputs and outputs stay float32 with their names; every intermediate tensor keeps its name
  (the rounded value carries the original name, the raw op output is renamed ``<name>__fp32``).

Nodes named in ``keep_fp32`` are left alone (their outputs are not rounded, their private
initializers neither): the mixed-precision repair ``localize --suggest-fp32`` proposes. Names are
``node_names``': the node's own name, or for an unnamed node its first output tensor's name.
A node whose output types shape inference cannot tell is not rounded; ``emulation_coverage``
counts those by op type so no report is silently partial.
The pairs must not be folded: sessions on an emulated model use ``graph_optimization_level="basic"``
or lower (checked by tests/test_backends_fp16.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data

RAW_SUFFIX = "__fp32"
HALF_SUFFIX = "__fp16"
EMULATION_VERSION = 5  # bump when the rewrite changes: it is part of the cache key
SUBGRAPH_OPS = ("If", "Loop", "Scan")


def node_names(graph: onnx.GraphProto, *, scope: str = "") -> list[str]:
    """Deterministic node names that exist in the user's file: the node's own name, or, for an
    unnamed node (or one repeating an earlier name), its first output tensor's name; only when that
    is taken too, ``<scope><OpType>_<index>``."""
    names, seen = [], set()
    for index, node in enumerate(graph.node):
        name = node.name
        if not name or name in seen:
            output = next((o for o in node.output if o), "")
            name = output if output and output not in seen else f"{scope}{node.op_type}_{index}"
        seen.add(name)
        names.append(name)
    return names


def subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    """(attribute name, graph) for every subgraph of ``node`` (If branches, Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for graph in attr.graphs:
                yield attr.name, graph


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph below it, depth first."""
    yield graph
    for node in graph.node:
        for _, sub in subgraphs(node):
            yield from all_graphs(sub)


def weightless_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose main-graph initializers of ``_WEIGHTLESS_MIN`` elements or more keep
    their name, type and dims but not their data (no weight is copied): what shape inference and
    graph rewrites need. Every other field is copied as it is."""
    light = onnx.ModelProto()
    _copy_fields(light, model, skip={"graph"})
    _copy_fields(light.graph, model.graph, skip={"initializer"})
    for init in model.graph.initializer:
        if init.HasField("raw_data") and math.prod(init.dims) >= _WEIGHTLESS_MIN:
            _copy_fields(light.graph.initializer.add(), init, skip={"raw_data"})
        else:
            light.graph.initializer.add().CopyFrom(init)
    return light


def _copy_fields(target, source, *, skip: Collection[str]) -> None:
    for descriptor, value in source.ListFields():
        if descriptor.name in skip:
            continue
        repeated = descriptor.is_repeated if hasattr(descriptor, "is_repeated") else \
            descriptor.label == descriptor.LABEL_REPEATED  # protobuf < 5.28 has only ``label``
        if repeated:
            getattr(target, descriptor.name).extend(value)
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            getattr(target, descriptor.name).CopyFrom(value)
        else:
            setattr(target, descriptor.name, value)


def weightless_infer_shapes(model: onnx.ModelProto, *, restore: bool, **options) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes(model, **options)`` on ``weightless_copy(model)`` (inference
    reads the weights' type and dims; onnx would serialize and parse the weights twice): with
    ``restore`` the result gets the data back from ``model``, else it holds types and shapes only.
    ``model`` is left as it was."""
    inferred = onnx.shape_inference.infer_shapes(weightless_copy(model), **options)
    if restore:
        source = {init.name: init for init in model.graph.initializer}
        for init in inferred.graph.initializer:
            if not init.HasField("raw_data") and source[init.name].HasField("raw_data"):
                init.CopyFrom(source[init.name])
    return inferred


_WEIGHTLESS_MIN = 1024  # elements; smaller initializers (shape constants) go through inference as they are


def tensor_types(model: onnx.ModelProto, *, inferred: bool = False) -> dict[str, int | str]:
    """Every tensor's type, main graph and subgraphs, by shape inference (skipped when ``inferred``
    says the model went through it already): the ONNX element type of a tensor, or
    ``"sequence"``/``"optional"``/``"map"`` for the other kinds. Unknown ones are absent."""
    if not inferred:
        try:
            model = weightless_infer_shapes(model, restore=False, strict_mode=False)
        except Exception:  # noqa: BLE001, S110 - inference is a help, not a requirement
            pass
    types: dict[str, int | str] = {}
    for graph in all_graphs(model.graph):
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            kind = vi.type.WhichOneof("value")
            if kind == "tensor_type":
                if vi.type.tensor_type.elem_type:
                    types[vi.name] = vi.type.tensor_type.elem_type
            elif kind is not None:
                types[vi.name] = kind.replace("_type", "")
        for init in graph.initializer:
            types[init.name] = init.data_type
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                for attr in node.attribute:
                    if attr.name == "value":
                        types.setdefault(node.output[0], attr.t.data_type)
                    elif attr.name in ("value_float", "value_floats"):
                        types.setdefault(node.output[0], TensorProto.FLOAT)
    return types


def float_tensor_names(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor, main graph and subgraphs (see ``tensor_types``); outputs whose
    type cannot be inferred are left out (never rounded)."""
    return {name for name, kind in tensor_types(model).items() if kind == TensorProto.FLOAT}


def _cast_pair(name: str, source: str, target: str) -> list[onnx.NodeProto]:
    half = name + HALF_SUFFIX
    return [  # built directly (helper.make_node's checks take twice as long; there are thousands)
        onnx.NodeProto(op_type="Cast", input=[source], output=[half], name=f"{half}_cast", attribute=[_TO_HALF]),
        onnx.NodeProto(op_type="Cast", input=[half], output=[target], name=f"{half}_back", attribute=[_TO_FLOAT]),
    ]


_TO_HALF, _TO_FLOAT = helper.make_attribute("to", TensorProto.FLOAT16), helper.make_attribute("to", TensorProto.FLOAT)


FP16_MAX = 65504.0
_CLIP_MIN, _CLIP_MAX = "__fp16_lowest", "__fp16_max"


def round_to_fp16(array: np.ndarray, *, saturate: bool = False) -> np.ndarray:
    """The float32 array holding the fp16 value of each element: ``inf`` past 65504, or with
    ``saturate`` finite values clipped to +-65504 first (what converters do to weights and constants
    offline, e.g. an attention mask's float32 minimum; computed tensors overflow instead). ``inf``
    and ``NaN`` are kept as they are either way."""
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise TypeError(f"round_to_fp16 takes a float array, not {array.dtype} "
                        "(bfloat16/float8/int4 data arrive from numpy as raw 'V' bytes)")
    array = array.astype(np.float32, copy=False)
    if array.size >= _ORT_CAST_MIN:  # ORT's Cast (hardware conversion, the same bits) beats numpy's 3x here
        rounded = _round_trip_session().run(None, {"x": array.reshape(-1)})[0].reshape(array.shape)
        half = None
    else:
        with np.errstate(over="ignore"):
            half = array.astype(np.float16)
        rounded = None
    # a finite float32 within +-65504 never rounds to inf: the saturation pass is skipped (min/max are cheap)
    if saturate and array.size and not (-FP16_MAX <= array.min() and array.max() <= FP16_MAX):
        overflowed = np.flatnonzero(np.isinf(half if rounded is None else rounded))  # past 65504, or inf already
        if overflowed.size:
            source = array.reshape(-1)[overflowed]
            finite = np.isfinite(source)
            target = half if rounded is None else rounded
            target.reshape(-1)[overflowed[finite]] = np.copysign(FP16_MAX, source[finite])
    return half.astype(np.float32) if rounded is None else rounded


_ORT_CAST_MIN = 1 << 16  # elements
_CAST_SESSIONS: dict[str, object] = {}


def _round_trip_session():
    """One ONNX Runtime session of ``Cast(float16) -> Cast(float32)`` on a 1-D tensor, made once."""
    return _cast_session("round_trip", (TensorProto.FLOAT16, TensorProto.FLOAT))


def to_float16(array: np.ndarray) -> np.ndarray:
    """``array.astype(numpy.float16)`` (the same bits: round to nearest even, inf past 65504, NaN kept),
    by ONNX Runtime's Cast for large float32 arrays, which is several times faster than numpy's."""
    if array.dtype != np.float32 or array.size < _ORT_CAST_MIN:
        with np.errstate(over="ignore"):
            return array.astype(np.float16)
    flat = np.ascontiguousarray(array).reshape(-1)
    return _cast_session("to_half", (TensorProto.FLOAT16,)).run(None, {"x": flat})[0].reshape(array.shape)


def _cast_session(name: str, chain: tuple[int, ...]):
    """An ONNX Runtime session casting a 1-D float32 tensor through the element types ``chain``, made
    once per process (optimisations off: a round-trip pair must stay)."""
    if name not in _CAST_SESSIONS:
        import onnxruntime as ort

        nodes, current = [], "x"
        for position, target in enumerate(chain):
            output = "y" if position == len(chain) - 1 else f"t{position}"
            nodes.append(helper.make_node("Cast", [current], [output], to=target))
            current = output
        graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                                  [helper.make_tensor_value_info("y", chain[-1], ["n"])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see onnxrt.loader
        _CAST_SESSIONS[name] = ort.InferenceSession(model.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
    return _CAST_SESSIONS[name]


def _saturated_pair(name: str) -> list[onnx.NodeProto]:
    """Clip finite values to the fp16 range (inf/NaN kept), then the rounding pair: for an
    initializer whose data is not loaded."""
    clipped, is_inf = name + "__clipped", name + "__isinf"
    return [helper.make_node("Clip", [name, _CLIP_MIN, _CLIP_MAX], [clipped + "_all"], name=f"{name}__clip"),
            helper.make_node("IsInf", [name], [is_inf], name=f"{name}__isinf"),
            helper.make_node("Where", [is_inf, name, clipped + "_all"], [clipped], name=f"{name}__keep_inf"),
            *_cast_pair(name, clipped, name + "__rounded")]


def _round_constant(node: onnx.NodeProto) -> None:
    """A float32 ``Constant``'s value, rounded to fp16 with saturation (it is a weight, not a result)."""
    for attr in node.attribute:
        if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
            attr.t.CopyFrom(numpy_helper.from_array(round_to_fp16(numpy_helper.to_array(attr.t), saturate=True),
                                                    attr.t.name))
        elif attr.name in ("value_float", "value_floats"):
            if attr.name == "value_float":
                attr.f = float(round_to_fp16(np.array(attr.f, np.float32), saturate=True))
            else:
                values = round_to_fp16(np.array(attr.floats, np.float32), saturate=True)
                del attr.floats[:]
                attr.floats.extend(float(v) for v in values)


@dataclass
class EmulationCoverage:
    """What the emulation did to each node, by op type (main graph and subgraphs together).

    ``emulated``: nodes whose float outputs are rounded; ``kept_fp32``: nodes the keep-list leaves
    in fp32; ``not_emulated``: nodes with an output whose type shape inference could not tell (left
    unrounded); ``no_float_output``: nodes with only non-float outputs (nothing to round);
    ``in_subgraphs``: how many of all nodes sit inside If/Loop/Scan bodies.
    """

    emulated: Counter = field(default_factory=Counter)
    kept_fp32: Counter = field(default_factory=Counter)
    not_emulated: Counter = field(default_factory=Counter)
    no_float_output: Counter = field(default_factory=Counter)
    in_subgraphs: int = 0

    def to_dict(self) -> dict:
        def table(counter: Counter) -> dict:
            return dict(sorted(counter.items()))

        return {"emulated": sum(self.emulated.values()), "not_emulated": sum(self.not_emulated.values()),
                "kept_fp32": sum(self.kept_fp32.values()), "no_float_output": sum(self.no_float_output.values()),
                "in_subgraphs": self.in_subgraphs,
                "by_op_type": {"emulated": table(self.emulated), "not_emulated": table(self.not_emulated),
                               "kept_fp32": table(self.kept_fp32)}}


def _classify(node: onnx.NodeProto, name: str, types: dict, kept: Collection[str]) -> str:
    if name in kept:
        return "kept_fp32"
    outputs = [o for o in node.output if o]
    if node.op_type == "Cast" and _casts_to_non_float(node):
        return "no_float_output"
    if any(o not in types for o in outputs):
        return "not_emulated"
    if any(types[o] == TensorProto.FLOAT for o in outputs):
        return "emulated"
    return "no_float_output"


def emulation_coverage(model: onnx.ModelProto, *, keep_fp32: Collection[str] = (),
                       types: dict | None = None) -> EmulationCoverage:
    """How ``emulate_fp16`` would treat each node of ``model`` (no rewrite is built)."""
    types = tensor_types(model) if types is None else types
    coverage = EmulationCoverage()

    def walk(graph: onnx.GraphProto, depth: int, scope: str) -> None:
        for name, node in zip(node_names(graph, scope=scope), graph.node):
            getattr(coverage, _classify(node, name, types, keep_fp32))[node.op_type] += 1
            coverage.in_subgraphs += depth > 0
            for attr, sub in subgraphs(node):
                walk(sub, depth + 1, f"{name}/{attr}/")

    walk(model.graph, 0, "")
    return coverage


def emulate_fp16(
    model: onnx.ModelProto,
    *,
    keep_fp32: Collection[str] = (),
    round_inputs: bool | Collection[str] = True,
    round_initializers: bool = True,
    float_tensors: Collection[str] | None = None,
    pre_rounded: Collection[str] = (),
    rounded_cache: dict[str, onnx.TensorProto] | None = None,
    in_range: Collection[str] = (),
    shared: Collection[str] = (),
) -> onnx.ModelProto:
    """A copy of ``model`` whose float tensors are rounded to fp16 at every op boundary, in the main
    graph and in every subgraph.

    ``keep_fp32``: node names (as ``node_names`` gives them; subgraph nodes by their own or output
    name) left in fp32; they read the graph's inputs unrounded, as a converter that keeps fp32 inputs
    and outputs (``keep_io_types``) feeds them, and a node not kept reads a kept node's value rounded
    to fp16 (the converter's Cast between them). ``round_inputs``: round graph inputs too (a converter casts them to fp16 at
    entry), or only those named (a sub-model whose other inputs were rounded by their producers
    already). ``round_initializers``: round the data of in-memory initializers; with ``False``, and
    always for initializers whose data is external (not loaded), they are rounded by nodes in the
    graph instead. ``float_tensors``: the float32 tensor names when the caller knows them already
    (saves a shape inference per call). ``pre_rounded``: initializers whose data the caller rounded
    already (localize's spilled weights), left as they are. ``rounded_cache``: name -> rounded
    initializer, filled and reused across calls on the same model (a repair search's trials).
    ``in_range``: external initializers whose values the caller knows lie within fp16's finite range
    (no saturation needed): rounded in the graph by a Cast pair alone. ``shared``: initializers that
    fp16 stores rounded because a node outside ``model`` reads them (``model`` is a part of a larger
    graph): rounded even when every node here that reads them is kept in fp32.
    """
    floats = set(float_tensors) if float_tensors is not None else float_tensor_names(model)
    emulated = onnx.ModelProto()
    emulated.CopyFrom(model)
    graph = emulated.graph
    unknown = sorted(set(keep_fp32) - all_node_names(graph))
    if unknown:
        from accuracy.errors import ConfigError

        raise ConfigError(f"keep_fp32 names nodes the model does not have: {', '.join(unknown)}")
    kept = set(keep_fp32)
    renames: dict[str, str] = {}
    initializer_names = {init.name for init in graph.initializer}
    entry_points = [vi.name for vi in graph.input if vi.name not in initializer_names and vi.name in floats]
    consumers = _consumers(graph, node_names(graph))
    entry_nodes: list[onnx.NodeProto] = []
    if round_inputs:
        for name in entry_points:
            # a kept node reads the input as it came (keep_io_types: fp32 at the boundary, cast for fp16 nodes)
            if any(c not in kept for c in consumers.get(name, ())) and (round_inputs is True or name in round_inputs):
                entry_nodes += _cast_pair(name, name, name + "__rounded")
                renames[name] = name + "__rounded"
    clip_bounds = _rewrite_graph(graph, floats, kept, renames, entry_nodes, round_initializers=round_initializers,
                                 scope="", pre_rounded=set(pre_rounded), rounded_cache=rounded_cache,
                                 in_range=set(in_range), shared=set(shared), inputs=set(entry_points))
    if clip_bounds:
        graph.initializer.extend([numpy_helper.from_array(np.array(-FP16_MAX, np.float32), _CLIP_MIN),
                                  numpy_helper.from_array(np.array(FP16_MAX, np.float32), _CLIP_MAX)])
    return emulated


def all_node_names(graph: onnx.GraphProto, scope: str = "") -> set[str]:
    """``node_names`` of ``graph`` and of every subgraph below it."""
    names = set(node_names(graph, scope=scope))
    for name, node in zip(node_names(graph, scope=scope), graph.node):
        for attr, sub in subgraphs(node):
            names |= all_node_names(sub, f"{name}/{attr}/")
    return names


def _consumers(graph: onnx.GraphProto, names: list[str]) -> dict[str, list[str]]:
    from accuracy.localize.graph import _subgraph_reads

    consumers: dict[str, list[str]] = {}
    for name, node in zip(names, graph.node):
        for tensor in [*node.input, *_subgraph_reads(node)]:
            consumers.setdefault(tensor, []).append(name)
    return consumers


def _rewrite_graph(graph: onnx.GraphProto, floats: set[str], kept: set[str], renames: dict[str, str],
                   new_nodes: list[onnx.NodeProto], *, round_initializers: bool, scope: str,
                   pre_rounded: Collection[str] = (), rounded_cache: dict | None = None,
                   in_range: Collection[str] = (), shared: Collection[str] = (),
                   inputs: Collection[str] = ()) -> bool:
    """Round ``graph``'s initializers, Constants and float node outputs in place (and its subgraphs');
    ``renames`` maps outer names to their rounded copies. True when the clip bounds are needed."""
    names = node_names(graph, scope=scope)
    consumers = _consumers(graph, names)
    renames = dict(renames)
    clip_bounds = False
    for init in graph.initializer:
        renames.pop(init.name, None)  # a local initializer shadows an outer name
        all_kept = init.name not in shared and all(c in kept for c in consumers.get(init.name, []))
        if init.name in pre_rounded or init.name not in floats or all_kept:
            continue
        if round_initializers and not uses_external_data(init):
            cached = None if rounded_cache is None or scope else rounded_cache.get(init.name)
            if cached is None:
                cached = numpy_helper.from_array(round_to_fp16(numpy_helper.to_array(init), saturate=True), init.name)
                if rounded_cache is not None and not scope:
                    rounded_cache[init.name] = cached
            init.CopyFrom(cached)
        elif init.name in in_range and not scope:
            new_nodes += _cast_pair(init.name, init.name, init.name + "__rounded")
            renames[init.name] = init.name + "__rounded"
        else:
            new_nodes += _saturated_pair(init.name)
            renames[init.name] = init.name + "__rounded"
            clip_bounds = True
    if scope:  # a subgraph's own inputs shadow outer names
        for vi in graph.input:
            renames.pop(vi.name, None)
    from_kept: dict[str, str] = {}  # a kept node's float output -> its fp16 copy, for the nodes not kept
    for name, node in zip(names, graph.node):
        for i, tensor in enumerate(node.input):
            if name not in kept and tensor in from_kept:
                node.input[i] = from_kept[tensor]
            elif tensor in renames and not (name in kept and tensor in inputs):  # kept: the graph input as is
                node.input[i] = renames[tensor]
        for attr, sub in subgraphs(node):
            clip_bounds |= _rewrite_graph(sub, floats, kept, {**renames, **from_kept}, [], round_initializers=True,
                                          scope=f"{name}/{attr}/", inputs=inputs) if name not in kept else False
        new_nodes.append(node)
        if name in kept:  # fp32 inside, and for kept readers; an fp16 reader gets it cast to fp16 (the converter's Cast)
            for tensor in node.output:
                if tensor in floats and any(c not in kept for c in consumers.get(tensor, ())):
                    new_nodes += _cast_pair(tensor, tensor, tensor + "__to_fp16")
                    from_kept[tensor] = tensor + "__to_fp16"
            continue
        if node.op_type == "Cast" and _casts_to_non_float(node):
            continue
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            _round_constant(node)
        for i, tensor in enumerate(node.output):
            if tensor and tensor in floats:
                node.output[i] = tensor + RAW_SUFFIX
                new_nodes += _cast_pair(tensor, tensor + RAW_SUFFIX, tensor)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return clip_bounds


def _casts_to_non_float(node: onnx.NodeProto) -> bool:
    return any(a.name == "to" and a.i != TensorProto.FLOAT for a in node.attribute)


def rounded_tensors(model: onnx.ModelProto) -> Iterable[str]:
    """Names of the tensors an emulated model rounds (for messages and tests)."""
    return [n.output[0][: -len(HALF_SUFFIX)] for graph in all_graphs(model.graph) for n in graph.node
            if n.name.endswith(HALF_SUFFIX + "_cast")]
