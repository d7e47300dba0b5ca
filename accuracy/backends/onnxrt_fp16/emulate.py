"""fp16 device-precision emulation by graph rewriting: round every float tensor to fp16 at op boundaries.

Why not ``onnxruntime.transformers.float16``: a plainly converted fp16 model run on ONNX Runtime's
CPU provider computes in fp32 — ORT wraps kernels that have no fp16 version in Casts and then drops
the redundant Cast pairs, so a sum of squares that overflows fp16 on a device comes out finite here.

What this does instead, in a private copy of the fp32 graph:

* after every node output (and every graph input) that is a float32 tensor, a
  ``Cast(to=float16) -> Cast(to=float32)`` pair, so the tensor holds exactly the fp16 value a device
  would store (``inf`` past 65504, lost low bits, flushed tiny values) while the op itself still
  accumulates in fp32, as NPU matrix units do;
* float32 initializers and ``Constant`` values rounded to fp16 values (stored as fp32), saturated
  to +-65504 as converters do offline (an attention mask's float32 minimum stays finite; a
  *computed* tensor past 65504 becomes ``inf``);
* graph inputs and outputs stay float32 with their names; every intermediate tensor keeps its name
  (the rounded value carries the original name, the raw op output is renamed ``<name>__fp32``).

Nodes named in ``keep_fp32`` are left alone (their outputs are not rounded, their private
initializers neither): the mixed-precision repair ``localize --suggest-fp32`` proposes.
The pairs must not be folded: sessions on an emulated model use ``graph_optimization_level="basic"``
or lower (checked by tests/test_backends_fp16.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data

RAW_SUFFIX = "__fp32"
HALF_SUFFIX = "__fp16"
EMULATION_VERSION = 2  # bump when the rewrite changes: it is part of the cache key


def node_names(graph: onnx.GraphProto) -> list[str]:
    """Deterministic node names: the node's own, or ``<OpType>_<index>`` (index in the graph's node
    list) when it has none or repeats an earlier one."""
    names, seen = [], set()
    for index, node in enumerate(graph.node):
        name = node.name if node.name and node.name not in seen else f"{node.op_type}_{index}"
        seen.add(name)
        names.append(name)
    return names


def float_tensor_names(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor in the main graph (inputs, initializers, node outputs), by
    shape inference; outputs whose type cannot be inferred are left out (never rounded)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is a help, not a requirement
        inferred = model
    graph = inferred.graph
    floats = {
        vi.name
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output)
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    floats |= {init.name for init in graph.initializer if init.data_type == TensorProto.FLOAT}
    return floats


def _cast_pair(name: str, source: str, target: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Cast", [source], [name + HALF_SUFFIX], name=f"{name}{HALF_SUFFIX}_cast", to=TensorProto.FLOAT16),
        helper.make_node("Cast", [name + HALF_SUFFIX], [target], name=f"{name}{HALF_SUFFIX}_back", to=TensorProto.FLOAT),
    ]


FP16_MAX = 65504.0
_CLIP_MIN, _CLIP_MAX = "__fp16_lowest", "__fp16_max"


def round_to_fp16(array: np.ndarray, *, saturate: bool = False) -> np.ndarray:
    """The float32 array holding the fp16 value of each element: ``inf`` past 65504, or with
    ``saturate`` clipped to +-65504 first (what converters do to weights and constants offline,
    e.g. an attention mask's float32 minimum; computed tensors overflow instead)."""
    array = np.asarray(array, dtype=np.float32)
    if saturate:
        array = np.clip(array, -FP16_MAX, FP16_MAX)
    with np.errstate(over="ignore"):
        return array.astype(np.float16).astype(np.float32)


def _saturated_pair(name: str) -> list[onnx.NodeProto]:
    """Clip to the fp16 range, then the rounding pair: an initializer whose data is not loaded."""
    clipped = name + "__clipped"
    return [helper.make_node("Clip", [name, _CLIP_MIN, _CLIP_MAX], [clipped], name=f"{name}__clip"),
            *_cast_pair(name, clipped, name + "__rounded")]


def _round_constant(node: onnx.NodeProto) -> None:
    """A float32 ``Constant``'s value, rounded to fp16 with saturation (it is a weight, not a result)."""
    for attr in node.attribute:
        if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
            attr.t.CopyFrom(numpy_helper.from_array(round_to_fp16(numpy_helper.to_array(attr.t), saturate=True),
                                                    attr.t.name))
        elif attr.name in ("value_float", "value_floats"):
            if attr.name == "value_float":
                attr.f = float(round_to_fp16(np.array(attr.f), saturate=True))
            else:
                values = round_to_fp16(np.array(attr.floats), saturate=True)
                del attr.floats[:]
                attr.floats.extend(float(v) for v in values)


def emulate_fp16(
    model: onnx.ModelProto,
    *,
    keep_fp32: Collection[str] = (),
    round_inputs: bool | Collection[str] = True,
    round_initializers: bool = True,
    float_tensors: Collection[str] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` whose float tensors are rounded to fp16 at every op boundary.

    ``keep_fp32``: node names (as ``node_names`` gives them) left in fp32. ``round_inputs``: round
    graph inputs too (a converter casts them to fp16 at entry), or only those named (a
    sub-model whose other inputs were rounded by their producers already). ``round_initializers``: round the data
    of in-memory initializers; with ``False``, and always for initializers whose data is external
    (not loaded), they are rounded by Cast pairs in the graph instead. ``float_tensors``: the float32 tensor names when the
    caller knows them already (saves a shape inference per call).
    """
    floats = set(float_tensors) if float_tensors is not None else float_tensor_names(model)
    emulated = onnx.ModelProto()
    emulated.CopyFrom(model)
    graph = emulated.graph
    names = node_names(graph)
    unknown = sorted(set(keep_fp32) - set(names))
    if unknown:
        from accuracy.errors import ConfigError

        raise ConfigError(f"keep_fp32 names nodes the model does not have: {', '.join(unknown)}")
    kept = set(keep_fp32)

    consumers: dict[str, list[str]] = {}
    for name, node in zip(names, graph.node):
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(name)

    new_nodes: list[onnx.NodeProto] = []
    entry_renames: dict[str, str] = {}
    initializer_names = {init.name for init in graph.initializer}
    entry_points = [vi.name for vi in graph.input if vi.name not in initializer_names and vi.name in floats]
    if round_inputs:
        for name in entry_points:
            if name in consumers and (round_inputs is True or name in round_inputs):
                new_nodes += _cast_pair(name, name, name + "__rounded")
                entry_renames[name] = name + "__rounded"

    clip_bounds_needed = False
    for init in graph.initializer:
        if init.name not in floats or all(c in kept for c in consumers.get(init.name, [])):
            continue
        if round_initializers and not uses_external_data(init):
            rounded = numpy_helper.from_array(round_to_fp16(numpy_helper.to_array(init), saturate=True), init.name)
            init.CopyFrom(rounded)
        else:
            new_nodes += _saturated_pair(init.name)
            entry_renames[init.name] = init.name + "__rounded"
            clip_bounds_needed = True
    if clip_bounds_needed:
        graph.initializer.extend([numpy_helper.from_array(np.array(-FP16_MAX, np.float32), _CLIP_MIN),
                                  numpy_helper.from_array(np.array(FP16_MAX, np.float32), _CLIP_MAX)])

    for name, node in zip(names, graph.node):
        for i, tensor in enumerate(node.input):
            if tensor in entry_renames:
                node.input[i] = entry_renames[tensor]
        new_nodes.append(node)
        if name in kept or node.op_type == "Cast" and _casts_to_non_float(node):
            continue
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            _round_constant(node)
        for i, tensor in enumerate(node.output):
            if tensor and tensor in floats:
                node.output[i] = tensor + RAW_SUFFIX
                new_nodes += _cast_pair(tensor, tensor + RAW_SUFFIX, tensor)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return emulated


def _casts_to_non_float(node: onnx.NodeProto) -> bool:
    return any(a.name == "to" and a.i != TensorProto.FLOAT for a in node.attribute)


def rounded_tensors(model: onnx.ModelProto) -> Iterable[str]:
    """Names of the tensors an emulated model rounds (for messages and tests)."""
    return [n.output[0][: -len(HALF_SUFFIX)] for n in model.graph.node if n.name.endswith(HALF_SUFFIX + "_cast")]
