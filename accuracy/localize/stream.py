"""Streamed localisation: run the model segment by segment on both sides, compare every tensor as it
appears, run diverging nodes alone to tell introduced error from inherited error, then forget what
no later segment reads. Peak memory is one segment's tensors plus the live boundary, never every
intermediate at once; work is one inference per side plus single-node runs for flagged nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto

from accuracy.compare.tensors import TensorThresholds, compare_tensors
from accuracy.localize.graph import ModelGraph, Node
from accuracy.localize.sides import DumpSide, OnnxSide

DEFAULT_THRESHOLDS = TensorThresholds()  # cosine >= 0.99, as Ascend's compare tools
DEFAULT_SEGMENT_BYTES = 16 << 20  # bench/bench_localize.py: peak RSS ~1.7x a plain inference at 16 MiB


@dataclass
class LocalizeRun:
    """What the stream found: per-tensor records in topological order and the names it could not compare."""

    graph: ModelGraph
    records: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    single_node_runs: int = 0
    segments: int = 0


def _metrics(comparison) -> dict:
    data = comparison.to_dict()
    return {k: data[k] for k in ("cosine", "max_abs", "max_rel", "mean_abs", "rmse", "rel_l2",
                                 "nonfinite_expected", "nonfinite_obtained", "failures")}


def _align(expected: np.ndarray, obtained: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Same shape, or a reshape when only the layout of equal-size dumps differs; else a reason."""
    if expected.shape == obtained.shape:
        return obtained, None
    if expected.size == obtained.size:
        return obtained.reshape(expected.shape), f"reshaped from {obtained.shape}"
    return None, f"shapes differ: reference {expected.shape}, candidate {obtained.shape}"


def stream_localize(
    graph: ModelGraph,
    feeds: Mapping[str, np.ndarray],
    candidate: OnnxSide | DumpSide,
    *,
    thresholds: TensorThresholds = DEFAULT_THRESHOLDS,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    progress: Callable[[int, int], None] | None = None,
) -> LocalizeRun:
    """Compare every float tensor of ``graph`` between the fp32 reference and ``candidate``."""
    graph.check_feeds(feeds)
    reference = OnnxSide(label="reference")
    result = LocalizeRun(graph)
    live_ref = {n: np.asarray(feeds[n]) for n in graph.input_names}
    live_cand = dict(live_ref)
    floats = graph.float32_tensors
    passed: dict[str, bool] = {}
    if isinstance(candidate, OnnxSide) and candidate.fp16:
        _compare_inputs(graph, live_ref, thresholds, result)
    segments = graph.segments(segment_bytes)
    result.segments = len(segments)
    for number, segment in enumerate(segments):
        produced = {t for node in segment for t in node.outputs if t}
        boundary = [t for t in dict.fromkeys(t for n in segment for t in n.inputs)
                    if t and t not in produced and t not in graph.initializers]
        expose = [t for node in segment for t in node.outputs if t]
        last = segment[-1].index
        part = graph.submodel(segment, {t: live_ref[t] for t in boundary}, expose)
        ref_out = reference.run(part, {t: live_ref[t] for t in boundary}, expose, source=graph.path)
        cand_out: dict[str, np.ndarray] = {}
        if isinstance(candidate, OnnxSide):
            cand_out = candidate.run(part, {t: live_cand[t] for t in boundary}, expose,
                                     graph_inputs=[t for t in boundary if t in graph.input_names], source=graph.path,
                                     float_tensors=floats)
        del part
        for node in segment:
            _compare_node(node, graph, ref_out, cand_out, candidate, live_ref, passed, thresholds, result)
        for store, fresh in ((live_ref, ref_out), (live_cand, cand_out)):
            store.update({t: v for t, v in fresh.items() if graph.last_use.get(t, -1) > last})
            for t in [t for t in store if graph.last_use.get(t, -1) <= last]:
                del store[t]
        del ref_out, cand_out
        if progress:
            progress(number + 1, len(segments))
    return result


def _compare_node(node: Node, graph: ModelGraph, ref_out, cand_out, candidate, live_ref, passed, thresholds,
                  result: LocalizeRun) -> None:
    diverged = []
    for tensor in node.outputs:
        if not tensor or not graph.is_float(tensor):
            continue
        expected = ref_out[tensor]
        obtained = cand_out.get(tensor) if isinstance(candidate, OnnxSide) else candidate.get(tensor)
        record = {"tensor": tensor, "node": node.name, "op_type": node.op_type, "index": node.index,
                  "shape": list(expected.shape)}
        if obtained is None:
            result.missing.append(tensor)
            result.records.append({**record, "status": "missing", "passed": None, "metrics": None})
            continue
        aligned, note = _align(expected, np.asarray(obtained))
        if aligned is None:
            result.records.append({**record, "status": "shape-mismatch", "passed": None, "metrics": None,
                                   "note": note})
            continue
        comparison = compare_tensors(expected, aligned, thresholds=thresholds)
        passed[tensor] = comparison.passed
        record.update(status="ok" if comparison.passed else "diverged", passed=comparison.passed,
                      metrics=_metrics(comparison))
        if note:
            record["note"] = note
        result.records.append(record)
        if not comparison.passed:
            diverged.append(record)
    if not diverged:
        return
    if isinstance(candidate, OnnxSide):
        local = _run_alone(node, graph, candidate, live_ref, ref_out, thresholds)
        result.single_node_runs += 1
        for record in diverged:
            comparison = local[record["tensor"]]
            record["local"] = _metrics(comparison)
            record["local_method"] = "single-node run on the candidate with the reference's inputs"
            record["status"] = "inherited" if comparison.passed else "introduced"
    else:  # a dump cannot be re-run: error is introduced here when every float input still agreed
        upstream_ok = all(passed.get(t, True) for t in node.inputs if t in graph.producer)
        for record in diverged:
            record["local"] = None
            record["local_method"] = "inputs agree with the reference (dump: no re-run)"
            record["status"] = "introduced" if upstream_ok else "inherited"


def _compare_inputs(graph: ModelGraph, feeds, thresholds, result: LocalizeRun) -> None:
    """fp16 rounds the model's float inputs on entry: an input that does not fit fp16 is where error
    enters, before any node (recorded as node ``input:<name>``, op ``Input``, index -1)."""
    from accuracy.backends.onnxrt_fp16.emulate import round_to_fp16

    for name in graph.input_names:
        if graph.elem_type.get(name) != TensorProto.FLOAT:
            continue
        comparison = compare_tensors(feeds[name], round_to_fp16(feeds[name]), thresholds=thresholds)
        metrics = _metrics(comparison)
        result.records.append({
            "tensor": name, "node": f"input:{name}", "op_type": "Input", "index": -1,
            "shape": list(np.shape(feeds[name])), "passed": comparison.passed, "metrics": metrics,
            "status": "ok" if comparison.passed else "introduced",
            **({} if comparison.passed else {"local": metrics, "local_method": "fp16 rounding of the input"}),
        })


def _run_alone(node: Node, graph: ModelGraph, candidate: OnnxSide, live_ref, ref_out, thresholds) -> dict:
    """Run ``node`` alone on the candidate side, fed the reference's values of its inputs."""
    inputs = {t: (ref_out[t] if t in ref_out else live_ref[t]) for t in node.inputs
              if t and t not in graph.initializers}
    outputs = [t for t in node.outputs if t]
    single = graph.submodel([node], inputs, outputs)
    obtained = candidate.run(single, inputs, outputs, graph_inputs=(), source=graph.path)
    return {t: compare_tensors(ref_out[t], obtained[t], thresholds=thresholds)
            for t in outputs if graph.is_float(t)}
