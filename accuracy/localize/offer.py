"""The repair as a user deploys it: the fp16 model made by a real converter with the keep-list, run in
plain ONNX Runtime and judged before it is offered, and the files that carry it.

The converter is ``onnxruntime.transformers.float16.convert_float_to_float16(model,
keep_io_types=True, node_block_list=[...])``. It blocks nodes by ``node.name``; localize names an
unnamed node by its first output tensor (``emulate.node_names``), so the converted copy gives such
nodes that name first -- the converter snippet shows the same line for the user's own script.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from accuracy.backends.onnxrt_fp16.emulate import (
    node_names,
    subgraphs,
    to_float16,
    weightless_copy,
    weightless_infer_shapes,
)
from accuracy.compare.tensors import TensorThresholds

if TYPE_CHECKING:
    from accuracy.io import StagedWrite

REPAIRED_MODEL = "model_fp16_repaired.onnx"
CONVERTER = "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True, node_block_list=[...])"
RUNTIME = "plain ONNX Runtime (CPU)"


def name_nodes(graph: onnx.GraphProto, scope: str = "") -> list[str]:
    """Give every node of ``graph`` and its subgraphs the name localize uses for it (in place);
    returns the nodes that had none in the user's file (named by their output tensor)."""
    unnamed = []
    for name, node in zip(node_names(graph, scope=scope), graph.node):
        if not node.name:
            unnamed.append(name)
        node.name = name
        for attr, sub in subgraphs(node):
            unnamed += name_nodes(sub, f"{name}/{attr}/")
    return unnamed


def unnamed_nodes(graph: onnx.GraphProto, scope: str = "") -> list[str]:
    """The names ``name_nodes`` would give the nodes of ``graph`` (and its subgraphs) that have none."""
    unnamed = []
    for name, node in zip(node_names(graph, scope=scope), graph.node):
        if not node.name:
            unnamed.append(name)
        for attr, sub in subgraphs(node):
            unnamed += unnamed_nodes(sub, f"{name}/{attr}/")
    return unnamed


def repaired_fp16_model(model: onnx.ModelProto, keep_fp32: Sequence[str]) -> onnx.ModelProto:
    """A real fp16 model (onnxruntime.transformers.float16) with ``keep_fp32`` blocked in fp32,
    fp32 inputs/outputs: what a user deploys or hands to a converter."""
    converted, data = _converted(model, keep_fp32)
    for init in converted.graph.initializer:
        if init.name in data:
            init.raw_data = data[init.name]
    return converted


def repaired_fp16_bytes(model: onnx.ModelProto, keep_fp32: Sequence[str]) -> bytes:
    """``repaired_fp16_model(...).SerializeToString()``, the same bytes, its weights joined in apart
    (``weights.with_raw_data``): protobuf's serializer copies them several times slower."""
    from accuracy.backends.onnxrt.weights import with_raw_data

    converted, data = _converted(model, keep_fp32)
    return with_raw_data(converted.SerializeToString(), data)


def _converted(model: onnx.ModelProto, keep_fp32: Sequence[str]) -> tuple[onnx.ModelProto, dict[str, bytes]]:
    """The converter run on the graph without its large weights' data, and that data apart (name ->
    raw bytes): rounded to fp16 as the converter rounds it (``converter_float16``, bit for bit) for the
    initializers it made fp16, as it was for the rest. The converter itself changes only the type of
    a weight that has no data; the numbers it would write are the ones computed here."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # the converter's own first step, shape inference, run here on the graph without its weights' data
    # (onnx would serialize and parse them twice); the converter then skips it (same model, same result)
    named = weightless_copy(model)
    name_nodes(named.graph)
    typed = weightless_infer_shapes(named, strict_mode=False, restore=False)
    with _vectorised_weight_rounding():  # for data still in the graph: subgraphs, Constants, small weights
        converted = convert_float_to_float16(typed, keep_io_types=True, node_block_list=list(keep_fp32),
                                             disable_shape_infer=True)
    _relocate_stray_nodes(converted.graph)  # the Casts around a blocked node inside an If land in the main graph
    _sort_topologically(converted.graph)  # the converter appends its Casts at the end: invalid ONNX
    _drop_fp16_round_trips(converted, blocked=keep_fp32)
    source = {init.name: init for init in model.graph.initializer}
    data = {}
    for init in converted.graph.initializer:
        original = source.get(init.name)
        if original is None or init.HasField("raw_data") or not original.HasField("raw_data"):
            continue
        if init.data_type == onnx.TensorProto.FLOAT16 and original.data_type == onnx.TensorProto.FLOAT:
            data[init.name] = converter_float16(np.frombuffer(original.raw_data, np.dtype("<f4"))).tobytes()
        else:
            data[init.name] = original.raw_data
    return converted, data


@contextmanager
def _vectorised_weight_rounding():
    """The converter as is, two of its helpers swapped for twins that give the same result, put back on
    the way out: its per-weight rounding (``convert_np_to_float16``, a dozen numpy passes with fancy
    indexing: ~0.3 s for 30 MB of weights) for ``converter_float16``, the same bits in a few passes;
    ``make_value_info_from_tensor``, which loads a weight's data only to read its shape, for one that
    reads the shape from the tensor's dims (the weights' data is not in the graph it converts)."""
    from onnxruntime.transformers import float16

    originals = float16.convert_np_to_float16, float16.make_value_info_from_tensor
    float16.convert_np_to_float16, float16.make_value_info_from_tensor = converter_float16, _value_info_from_dims
    try:
        yield
    finally:
        float16.convert_np_to_float16, float16.make_value_info_from_tensor = originals


def _value_info_from_dims(tensor: onnx.TensorProto) -> onnx.ValueInfoProto:
    """``float16.make_value_info_from_tensor`` (``numpy_helper.to_array(tensor).shape`` is the dims)."""
    from onnx import helper

    return helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))


def converter_float16(data: np.ndarray, min_positive_val: float = 5.96e-08,
                      max_finite_val: float = 65504.0) -> np.ndarray:
    """``onnxruntime.transformers.float16.convert_np_to_float16`` (the converter's weight rounding) bit for
    bit, in a few vectorised passes instead of its dozen: nonzero magnitudes below ``min_positive_val``
    become it, finite ones past ``max_finite_val`` become it, signs kept; NaN, zeros and inf unchanged
    (tests/test_localize_offer_weights.py compares the two)."""
    data = np.asarray(data)  # float32 raw data, or float64 from a tensor's float_data: compared as given
    half = to_float16(data)
    if (min_positive_val, max_finite_val) == (5.96e-08, 65504.0):  # the defaults: fp16's own bounds
        return _to_bounds(data, half)
    if data.size and not (-max_finite_val <= data.min() and data.max() <= max_finite_val):  # NaN lands here too
        past = np.isinf(half) & np.isfinite(data)
        half[past] = np.copysign(np.float16(max_finite_val), data[past])
    tiny = (np.abs(data) < min_positive_val) & (data != 0)
    if tiny.any():
        half[tiny] = np.copysign(np.float16(min_positive_val), data[tiny])
    return half


def _to_bounds(data: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``converter_float16`` at its default bounds, fp16's own: told from the rounded result (two passes
    over its 16-bit codes, not six over the input). Only a finite value past 65504 rounds to inf, and
    only a nonzero one below the smallest subnormal rounds to zero (those between round to it already)."""
    codes = half.view(np.uint16).reshape(-1) & 0x7FFF
    flat, source = half.reshape(-1), data.reshape(-1)
    for found, bound in ((np.flatnonzero(codes == 0x7C00), 65504.0), (np.flatnonzero(codes == 0), 5.96e-08)):
        if found.size:
            values = source[found]
            changed = np.isfinite(values) if bound == 65504.0 else values != 0
            flat[found[changed]] = np.copysign(np.float16(bound), values[changed])
    return half


def _drop_fp16_round_trips(model: onnx.ModelProto, blocked: Collection[str] = ()) -> None:
    """Between two blocked nodes the converter still puts ``Cast(fp16) -> Cast(fp32)``: a sum of squares
    kept in fp32 for its range overflows there on its way to the next fp32 node (the repaired model
    outputs zeros). Consumers of such a pair read the fp32 value itself; a Cast to fp16 that nothing
    reads any more goes too. The same pair sits between a graph input and a blocked node reading it,
    and between a blocked node and the graph output it gives (``keep_io_types`` keeps both fp32): the
    blocked node reads the input as it came, and the output's final Cast reads the fp32 value (a Cast
    to the type it has: the output keeps its name). What ``keep_fp32`` means, and what the emulation
    verified. A tensor is known fp32 by shape inference, or as the output of a ``blocked`` node (inside
    an If branch inference records no types)."""
    from onnx import TensorProto

    try:
        types = weightless_infer_shapes(model, restore=False, strict_mode=False)
    except Exception:  # noqa: BLE001 - without types only the blocked nodes' outputs are known fp32
        types = None
    float32 = set() if types is None else {
        vi.name for g in _graphs(types.graph) for vi in [*g.input, *g.value_info, *g.output]
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT}
    if types is not None:
        float32 |= {t.name for g in _graphs(types.graph) for t in g.initializer if t.data_type == TensorProto.FLOAT}
    # subgraphs first: rewriting a graph replaces its nodes by copies, and a branch changed after its If
    # was copied would be changed in a node no longer in the model
    for graph in reversed(_graphs(model.graph)):
        producer = {t: node for node in graph.node for t in node.output}
        outputs = {o.name for o in graph.output}
        renames: dict[str, str] = {}
        rewired = False  # a graph output's final Cast now reads the fp32 value
        for node in graph.node:
            first = producer.get(node.input[0]) if node.op_type == "Cast" and node.input else None
            if first is None or first.op_type != "Cast" or not first.input:
                continue
            source = producer.get(first.input[0])
            fp32 = first.input[0] in float32 or source is not None and source.name in blocked
            if _cast_to(node) == TensorProto.FLOAT and _cast_to(first) == TensorProto.FLOAT16 and fp32:
                if node.output[0] in outputs:
                    node.input[0], rewired = first.input[0], True
                else:
                    renames[node.output[0]] = first.input[0]
        if not renames and not rewired:
            continue
        kept = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in renames)]
        _rename_inputs(kept, renames)
        read = {t for n in kept for t in n.input} | outputs | _reads_below(kept)
        kept = [n for n in kept if not (n.op_type == "Cast" and _cast_to(n) == TensorProto.FLOAT16
                                        and n.output[0] not in read)]
        copies = [onnx.NodeProto() for _ in kept]
        for copy, node in zip(copies, kept):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)


def _rename_inputs(nodes, renames: Mapping[str, str]) -> None:
    """Point every read of a renamed tensor at its new name, in ``nodes`` and in the If/Loop/Scan
    bodies below them (a blocked branch node reads the dropped Cast's output from the outer scope)."""
    for node in nodes:
        for i, tensor in enumerate(node.input):
            node.input[i] = renames.get(tensor, tensor)
        for _, sub in subgraphs(node):
            _rename_inputs(sub.node, renames)


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _graphs(graph: onnx.GraphProto):
    from accuracy.backends.onnxrt_fp16.emulate import all_graphs

    return list(all_graphs(graph))


def _reads_below(nodes) -> set[str]:
    from accuracy.localize.graph import _subgraph_reads

    return {t for node in nodes for t in _subgraph_reads(node)}


def _relocate_stray_nodes(graph: onnx.GraphProto) -> None:
    """Move each main-graph node that reads a tensor only a subgraph produces into that subgraph
    (the converter inserts the Casts of a blocked branch node at the top level, where ORT rejects them).
    Until none moves: a Cast reading what a moved Cast gives moves after it (two blocked nodes in a row)."""
    moved = True
    while moved:
        moved = False
        known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
        known |= {t for node in graph.node for t in node.output}
        for node in list(graph.node):
            stray = next((t for t in node.input if t not in known), None)
            home = None if stray is None else _producer_graph(graph, stray)
            if home is not None and home is not graph:
                graph.node.remove(node)
                home.node.append(node)
                known -= set(node.output)
                moved = True


def _producer_graph(graph: onnx.GraphProto, tensor: str) -> onnx.GraphProto | None:
    """The (deepest) subgraph below ``graph`` whose nodes or initializers (a branch's own constant that a
    blocked node reads through the converter's Cast) produce ``tensor``."""
    for node in graph.node:
        for _, sub in subgraphs(node):
            deeper = _producer_graph(sub, tensor)
            if deeper is not None:
                return deeper
            if any(tensor in inner.output for inner in sub.node) or any(i.name == tensor for i in sub.initializer):
                return sub
    return None


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` (and each subgraph's) so every node comes after the producers of what it
    reads (stable); names no node of the graph produces (inputs, initializers, outer scope) are ready."""
    from accuracy.localize.graph import _subgraph_reads

    for node in graph.node:
        for _, sub in subgraphs(node):
            _sort_topologically(sub)
    produced = {t for node in graph.node for t in node.output if t}
    available: set[str] = set()
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(t not in produced or t in available for t in [*node.input, *_subgraph_reads(node)]):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle: leave the order as it was
            return
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def plain_runtime_check(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                        thresholds: TensorThresholds) -> Callable[[bytes], dict[str, Any]]:
    """``check(repaired) -> {"passed", "outputs"}``: the repaired model (serialized) in plain ONNX Runtime against
    the fp32 model's outputs on ``feeds``, by ``thresholds`` (localize's own criterion)."""
    from accuracy.backends.onnxrt.loader import open_session
    from accuracy.localize.metrics import compare_tensor

    names = [o.name for o in model.graph.output]
    expected = open_session(model.SerializeToString(), model_path="<reference>",
                            graph_optimization_level="disable").run_outputs(names, dict(feeds))

    def check(repaired: bytes) -> dict[str, Any]:
        session = open_session(repaired, model_path="<repaired fp16 model>")
        obtained = session.run_outputs(names, dict(feeds))
        comparisons = {n: compare_tensor(e, o, thresholds) for n, e, o in zip(names, expected, obtained)}
        return {"passed": all(c.passed for c in comparisons.values()),
                "outputs": {n: c.to_dict() for n, c in comparisons.items()}}

    return check


def offer_repair(model: onnx.ModelProto, keep_fp32: Sequence[str], *, check: Callable[[bytes], dict],
                 op_types: Mapping[str, str], out_dir: Path | None = None, model_name: str | None = None) -> dict:
    """Convert ``model`` with the keep-list by the real converter, judge it with ``check`` and, with
    ``out_dir``, write keep_fp32.json, keep_fp32.toml, the converter snippets and -- only when it
    passed -- model_fp16_repaired.onnx. ``check`` is given the converted model serialized (the bytes that
    are written). Returns ``{"passed", "converter", "runtime", ..., "files"}``."""
    from accuracy.io import StagedWrite

    unnamed = unnamed_nodes(model.graph)
    staged = None
    try:
        try:
            repaired = repaired_fp16_bytes(model, keep_fp32)
        except Exception as exc:  # noqa: BLE001 - the converter refusing the model is a verdict
            repaired, verdict = None, {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
        if repaired is not None:
            if out_dir is not None:  # written while it is checked, kept only when it passes; a folder in
                staged = StagedWrite(Path(out_dir) / REPAIRED_MODEL, repaired)  # its place: the user's to fix
            try:
                verdict = dict(check(repaired))
            except Exception as exc:  # noqa: BLE001 - ORT refusing the result is a verdict
                verdict = {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
        offered = {"converter": CONVERTER, "runtime": RUNTIME, **verdict,
                   "unnamed": [n for n in keep_fp32 if n in unnamed]}
        if not verdict["passed"]:
            offered["note"] = ("the keep-list passes under fp16 emulation, but the model converted with it fails "
                               f"in {RUNTIME}: not offered")
        if out_dir is not None:
            offered["files"] = write_repair(Path(out_dir), keep_fp32, op_types, staged if verdict["passed"] else None,
                                            unnamed=[n for n in keep_fp32 if n in unnamed], model_name=model_name)
            if verdict["passed"]:
                staged = None  # committed; one not offered is discarded below
    finally:
        if staged is not None:
            staged.discard()
    return offered


def keep_fp32_table(lists: Mapping[str, Sequence[str]]) -> str:
    """The suite's ``[candidate.keep_fp32]`` table for per-model keep-lists (TOML)."""
    import json

    lines = ["[candidate.keep_fp32]"]
    lines += [f"{json.dumps(name) if not name.replace('_', '').replace('-', '').isalnum() else name} = "
              f"[{', '.join(json.dumps(n) for n in nodes)}]" for name, nodes in lists.items()]
    return "\n".join(lines) + "\n"


def converter_snippets(keep_fp32: Sequence[str], op_types: Mapping[str, str], *, unnamed: Sequence[str] = ()) -> str:
    """Config text for converters: the whole-model fix and the operator keep-list."""
    keep_lines = "\n".join(f"{name}=data_type:float32" for name in keep_fp32)
    keep_dtype = "\n".join(f"OpName::{name}" for name in keep_fp32)
    types = ", ".join(f"{n} ({op_types.get(n, '?')})" for n in keep_fp32)
    naming = ""
    if unnamed:
        naming = (f"\n# {', '.join(unnamed)}: unnamed in your file, named here by their first output tensor. Name them so "
                  "before converting\n# (for n in model.graph.node: n.name = n.name or n.output[0]); converters that "
                  "read the file unnamed\n# give them names of their own, which these lists would not match.\n")
    return f"""# Nodes to keep in fp32: {types or 'none'}
{naming}
# 1. MindSpore Lite (converter_lite --configFile=...): the whole model in fp32 (slow, always works)
[ascend_context]
precision_mode=enforce_fp32

# 2. MindSpore Lite mixed precision: only these operators in fp32 (Model.build_from_file config_path)
[execution_plan]
{keep_lines}

# 3. ATC / Ascend mixed precision: precision_mode=allow_mix_precision plus --keep_dtype=keep_dtype.cfg:
{keep_dtype}

# 4. ONNX fp16 conversion (onnxconverter-common / onnxruntime.transformers.float16):
# convert_float_to_float16(model, keep_io_types=True, node_block_list={list(keep_fp32)!r})
"""


def write_repair(out_dir: Path, keep_fp32: Sequence[str], op_types: Mapping[str, str],
                 repaired: StagedWrite | None, *, unnamed: Sequence[str] = (), model_name: str | None = None) -> dict:
    """keep_fp32.json, keep_fp32.toml (the suite table, with ``model_name``), converter_snippets.txt and
    the repaired model when there is one (staged already: committed here; a stale one from an earlier
    run is removed otherwise); returns their paths. The model is replaced atomically but not synced to
    disk: it is derived, and made again by a rerun."""
    from accuracy.io import writable_folder, write_bytes_atomic, write_json_atomic

    writable_folder(out_dir, what="output folder")
    paths = {"keep_fp32": out_dir / "keep_fp32.json", "snippets": out_dir / "converter_snippets.txt"}
    write_json_atomic(paths["keep_fp32"], {"keep_fp32": list(keep_fp32)}, overwrite=True)
    write_bytes_atomic(paths["snippets"], converter_snippets(keep_fp32, op_types, unnamed=unnamed).encode())
    if model_name is not None:
        paths["suite_table"] = out_dir / "keep_fp32.toml"
        write_bytes_atomic(paths["suite_table"], keep_fp32_table({model_name: keep_fp32}).encode())
    if repaired is not None:
        paths["model"] = repaired.commit()
    elif (out_dir / REPAIRED_MODEL).is_symlink() or (out_dir / REPAIRED_MODEL).is_file():
        (out_dir / REPAIRED_MODEL).unlink()  # an earlier run's; a folder of that name is not ours to remove
    return {k: str(v) for k, v in paths.items()}
