"""ONNX rewrites (the same numbers, to float rounding) for what MindSpore Lite 2.0's CPU converter or
runtime cannot take, applied before converting (``accuracy convert`` names each one it applied;
``--no-rewrites`` / the backend's ``rewrites = false`` turn them off).

- ``groupnorm-decomposed``: diffusers' GroupNorm is exported as ``Reshape(N, G, -1) ->
  InstanceNormalization -> Reshape back``; the Lite CPU InstanceNorm kernel takes 4-D tensors only
  (``Unsupported tensor shape: 3``, ``gamma_tensor->ElementsNum() must be equal to channel`` at
  ``predict``). The InstanceNorm becomes its formula, ``(x - mean) / sqrt(var + eps) * scale + bias``
  over the last axis, in ReduceMean/Sub/Mul/Sqrt/Div/Add (ONNX Runtime agrees with the original to
  ~1e-6; Lite then runs the VAE decoder within 2e-6 of ONNX Runtime).

Not a rewrite, because none was found: the tiny UNet's build failure (``InferSubgraph index: 0
failed, ret: -500``, the converter's shape inference run by ``build_from_file``). At ``GLOG_v=1`` it
first stops at the ``Expand`` of ``timestep`` to the batch (``broadcast_to has not shape const
tensor``); with that Expand replaced by an ``Add`` of zeros and the GroupNorms decomposed, it stops
at a channel-wise ``Mul`` / ``Conv`` after a ``Reshape`` back to 4-D (``norm1/Mul`` with static input
shapes, ``attentions.0/proj_out/Conv`` with dynamic ones), with every converter ``optimize`` mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

REWRITES = ("groupnorm-decomposed",)


def rewrite_for_mslite(source: Path, target: Path) -> dict[str, int]:
    """Write ``source`` with the rewrites applied to ``target``; returns how often each applied."""
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    model = onnx.load(str(source), load_external_data=False)
    external = any(uses_external_data(tensor) for tensor in model.graph.initializer)
    if external:
        load_external_data_for_model(model, str(source.parent))
    graph = model.graph
    counts = {"groupnorm-decomposed": _groupnorm_decomposed(graph)}
    counts = {name: count for name, count in counts.items() if count}
    if counts:
        if external:  # a large model keeps its weights beside it
            onnx.save_model(model, str(target), save_as_external_data=True, location=f"{target.name}.data")
        else:
            onnx.save(model, str(target))
    return counts


def _constant(graph: onnx.GraphProto, name: str) -> tuple[np.ndarray, object] | None:
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init), init
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t), attr
    return None


def _groupnorm_decomposed(graph: onnx.GraphProto) -> int:
    """InstanceNormalization on a 3-D (N, G, L) tensor -> its formula in ReduceMean/Sub/Mul/Div ops."""
    producers = {out: node for node in graph.node for out in node.output}
    nodes, count = [], 0
    for node in graph.node:
        reshape = producers.get(node.input[0]) if node.op_type == "InstanceNormalization" else None
        found = _constant(graph, reshape.input[1]) if reshape is not None and reshape.op_type == "Reshape" else None
        scale = _constant(graph, node.input[1]) if found is not None else None
        bias = _constant(graph, node.input[2]) if found is not None else None
        if found is None or found[0].shape != (3,) or scale is None or bias is None:
            nodes.append(node)
            continue
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        x, y, p = node.input[0], node.output[0], f"{node.name or node.output[0]}__gn"
        graph.initializer.extend([
            numpy_helper.from_array(scale[0].reshape(1, -1, 1).astype(np.float32), f"{p}_scale"),
            numpy_helper.from_array(bias[0].reshape(1, -1, 1).astype(np.float32), f"{p}_bias"),
            numpy_helper.from_array(np.array(eps, np.float32), f"{p}_eps")])
        nodes += [
            helper.make_node("ReduceMean", [x], [f"{p}_mean"], axes=[2], keepdims=1, name=f"{p}_mean"),
            helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_d"], name=f"{p}_sub"),
            helper.make_node("Mul", [f"{p}_d", f"{p}_d"], [f"{p}_d2"], name=f"{p}_sq"),
            helper.make_node("ReduceMean", [f"{p}_d2"], [f"{p}_var"], axes=[2], keepdims=1, name=f"{p}_var"),
            helper.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_ve"], name=f"{p}_addeps"),
            helper.make_node("Sqrt", [f"{p}_ve"], [f"{p}_std"], name=f"{p}_sqrt"),
            helper.make_node("Div", [f"{p}_d", f"{p}_std"], [f"{p}_n"], name=f"{p}_div"),
            helper.make_node("Mul", [f"{p}_n", f"{p}_scale"], [f"{p}_s"], name=f"{p}_mulscale"),
            helper.make_node("Add", [f"{p}_s", f"{p}_bias"], [y], name=f"{p}_addbias")]
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        _drop_shapes(graph)
    return count


def _drop_shapes(graph: onnx.GraphProto) -> None:
    """Inner value_info shapes no longer hold after a reshape changed; the converter infers them."""
    del graph.value_info[:]
