"""``Loop`` and ``Scan`` bodies compared like the main graph: every float tensor a body node produces is
also made a scan output of the body (through an ``Identity``), so the node returns it stacked over
the iterations next to its own outputs, on both sides. Each such tensor becomes a record of the body
node that produced it (``scope``: the Loop/Scan, ``iterations``: how many), compared over all
iterations at once. A body node cannot be re-run alone; its error is ``introduced`` when every body
tensor it reads still agreed at the first iteration where its own output diverges (a carried state
counts as the body output that feeds it, one iteration earlier: an accumulator that overflows at
iteration 4 introduces the error itself), else ``inherited``, as for a device dump.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from accuracy.backends.onnxrt_fp16.emulate import node_names
from accuracy.localize.graph import ModelGraph, Node

EACH = "__each"


@dataclass(frozen=True)
class BodyTensor:
    outer: str  # the stacked output of the Loop/Scan node
    tensor: str  # the body tensor
    node: str  # the body node that produces it
    op_type: str
    reads: tuple[str, ...]  # body tensors the node reads, carried states mapped to what feeds them
    carried: tuple[bool, ...] = ()  # per read: a carried state (last iteration's value of that output)


def expose_body(node: Node, graph: ModelGraph) -> tuple[Node, list[BodyTensor]] | None:
    """A copy of the Loop/Scan ``node`` that also outputs its body's float tensors, stacked; ``None``
    when the node is not one or its outputs do not follow the body's (then it is compared whole)."""
    if node.op_type not in ("Loop", "Scan") or node.proto.op_type != node.op_type:
        return None
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    body = next((a.g for a in proto.attribute if a.name == "body"), None)
    if body is None:
        return None
    expected_outputs = len(body.output) - 1 if node.op_type == "Loop" else len(body.output)
    if len(proto.output) != expected_outputs:
        return None
    if node.op_type == "Loop":  # body inputs: iteration, condition, carried...; outputs: condition, carried..., scans
        carried = {body.input[2 + i].name: body.output[1 + i].name for i in range(len(body.input) - 2)}
    else:  # Scan body inputs: states..., scan inputs; outputs: states..., scans
        states = len(body.input) - _scan_inputs(proto)
        carried = {body.input[i].name: body.output[i].name for i in range(states)}
    exposed: list[BodyTensor] = []
    for name, inner in zip(node_names(body, scope=f"{node.name}/body/"), list(body.node)):
        for tensor in inner.output:
            if not tensor or graph.elem_type.get(tensor) != TensorProto.FLOAT:
                continue
            body.node.append(helper.make_node("Identity", [tensor], [tensor + EACH], name=f"{tensor}{EACH}"))
            body.output.append(helper.make_tensor_value_info(tensor + EACH, TensorProto.FLOAT, None))
            outer = f"{node.name}/{tensor}"
            proto.output.append(outer)
            graph.elem_type[outer] = TensorProto.FLOAT
            reads = [t for t in inner.input if t]
            exposed.append(BodyTensor(outer, tensor, name, inner.op_type, tuple(carried.get(t, t) for t in reads),
                                      tuple(t in carried for t in reads)))
    if not exposed:
        return None
    if node.op_type == "Scan":
        for attr in proto.attribute:
            if attr.name in ("scan_output_axes", "scan_output_directions"):
                attr.ints.extend([0] * len(exposed))
    return Node(node.index, node.name, node.op_type, node.inputs, (*node.outputs, *(b.outer for b in exposed)),
                proto, scope=node.scope), exposed


def _scan_inputs(proto: onnx.NodeProto) -> int:
    return next(a.i for a in proto.attribute if a.name == "num_scan_inputs")
