"""Streamed localisation: run the model segment by segment on both sides, compare every tensor as it
appears, run diverging nodes alone to tell introduced error from inherited error, then forget what
no later segment reads. Peak memory is one segment's tensors plus the live boundary, never every
intermediate at once; work is one inference per side plus single-node runs for flagged nodes.

Control flow: an ``If`` is expanded into the branch the reference takes (both sides take it when the
candidate's condition agrees), and that branch's nodes are compared like the main graph's, at any
depth. ``Loop`` and ``Scan`` bodies run inside their node (emulated there too) with every float body
tensor also returned stacked over the iterations (``loops``), compared per body node; deeper
subgraphs inside a body are counted as not compared one by one. Sequence- and
optional-typed values are never exposed or compared (a note says so); segments are cut only where
no such value crosses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto

from accuracy.backends.onnxrt_fp16.emulate import all_graphs, subgraphs
from accuracy.compare.tensors import TensorThresholds
from accuracy.localize.graph import ModelGraph, Node, is_expandable
from accuracy.localize.loops import expose_body
from accuracy.localize.metrics import compare_saturating, compare_tensor
from accuracy.localize.sides import DumpSide, OnnxSide

# cosine >= 0.99 as Ascend's compare tools, and relative L2 <= 0.15, which a direction error within
# the cosine bound never exceeds (rel_l2 = sqrt(2 (1 - cos)) at equal norms: 0.141) but a scale error
# past 15 % does; fp16 rounding noise is ~1e-3 (tests/test_localize_criteria.py, bench/bench_localize.py)
DEFAULT_THRESHOLDS = TensorThresholds(cosine_min=0.99, rel_l2_max=0.15)
DEFAULT_SEGMENT_BYTES = 16 << 20  # bench/bench_localize.py: peak RSS ~1.7x a plain inference at 16 MiB


@dataclass
class LocalizeRun:
    """What the stream found: per-tensor records in topological order and the names it could not compare."""

    graph: ModelGraph
    records: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"tensor", "kind"}: values localize does not compare
    expanded: list[dict] = field(default_factory=list)  # {"node", "branch", "nodes"}: If branches compared inside
    opaque_subgraph_nodes: dict[str, int] = field(default_factory=dict)  # Loop/Scan (or unexpanded If) -> body nodes
    single_node_runs: int = 0
    segments: int = 0


@dataclass
class _Stream:
    graph: ModelGraph
    candidate: OnnxSide | DumpSide
    thresholds: TensorThresholds
    result: LocalizeRun
    segment_bytes: int
    live_ref: dict[str, np.ndarray]
    live_cand: dict[str, np.ndarray]
    floats: set[str]
    passed: dict[str, bool] = field(default_factory=dict)
    reference: OnnxSide = field(default_factory=lambda: OnnxSide(label="reference"))
    shared: set[str] = field(default_factory=set)  # weights fp16 stores rounded: a node not kept reads them


_METRICS = ("cosine", "max_abs", "max_rel", "mean_abs", "rmse", "rel_l2", "nonfinite_expected", "nonfinite_obtained")


def _metrics(comparison) -> dict:
    """The JSON's metrics of one comparison (as ``to_dict`` gives them; read directly: one per tensor)."""
    return {**{k: getattr(comparison, k) for k in _METRICS}, "failures": list(comparison.failures)}


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
    result = LocalizeRun(graph)
    live_ref = {n: np.asarray(feeds[n]) for n in graph.input_names}
    stream = _Stream(graph, candidate, thresholds, result, segment_bytes, live_ref, dict(live_ref),
                     graph.float32_tensors)
    if isinstance(candidate, OnnxSide) and candidate.fp16:
        stream.shared = graph.stored_rounded(candidate.keep_fp32)
        _compare_inputs(graph, live_ref, thresholds, result)
    segments = graph.segments(segment_bytes)
    result.segments = len(segments)
    for number, segment in enumerate(segments):
        last = segment[-1].index
        _run_segment(stream, segment, keep=lambda t, last=last: graph.last_use.get(t, -1) > last)
        for store in (stream.live_ref, stream.live_cand):
            for t in [t for t in store if graph.last_use.get(t, -1) <= last]:
                del store[t]
        if progress:
            progress(number + 1, len(segments))
    return result


def _run_segment(stream: _Stream, segment: list[Node], *, keep: Callable[[str], bool]) -> None:
    graph, result = stream.graph, stream.result
    if len(segment) == 1 and is_expandable(segment[0]) and _expand_if(stream, segment[0]):
        return
    bodies: dict[str, list] = {}
    for position, node in enumerate(segment):
        exposed = expose_body(node, graph) if isinstance(stream.candidate, OnnxSide) else None
        if exposed is not None:
            segment = [*segment[:position], exposed[0], *segment[position + 1:]]
            bodies[node.name] = exposed[1]
    produced = {t for node in segment for t in node.outputs if t}
    boundary = [t for t in dict.fromkeys(t for n in segment for t in n.inputs)
                if t and t not in produced and t not in graph.initializers]
    expose = []
    for node in segment:
        _note_subgraphs(stream, node, deeper_only=node.name in bodies)
        for t in node.outputs:
            if not t:
                continue
            if graph.is_tensor(t):
                expose.append(t)
            else:
                result.skipped.append({"tensor": t, "node": node.name, "kind": graph.kind(t)})
    part = graph.submodel(segment, {t: stream.live_ref[t] for t in boundary}, expose)
    ref_out = stream.reference.run(part, {t: stream.live_ref[t] for t in boundary}, expose, source=graph.data_source)
    cand_out: dict[str, np.ndarray] = {}
    if isinstance(stream.candidate, OnnxSide):
        rounded, names = _rounded(stream)
        if rounded:
            part = graph.submodel(segment, {t: stream.live_ref[t] for t in boundary}, expose, replace=rounded)
        cand_out = stream.candidate.run(part, {t: stream.live_cand[t] for t in boundary}, expose,
                                        graph_inputs=[t for t in boundary if t in graph.input_names],
                                        source=graph.data_source, float_tensors=stream.floats, pre_rounded=names,
                                        in_range=graph.in_range, shared=stream.shared)
    del part
    for node in segment:
        inside = None
        if node.name in bodies:
            inside = _compare_body(stream, node, bodies[node.name], ref_out, cand_out)
            node = _without(node, bodies[node.name])
        start = len(stream.result.records)
        _compare_node(stream, node, ref_out, cand_out)
        for record in stream.result.records[start:] if inside else ():
            if record.get("status") == "introduced":  # its body's node brings the error in, the node carries it
                record.update(status="inherited", local_method=f"its body node {inside} introduces the error")
    for store, fresh in ((stream.live_ref, ref_out), (stream.live_cand, cand_out)):
        store.update({t: v for t, v in fresh.items() if keep(t)})


def _without(node: Node, exposed) -> Node:
    """``node`` with only its own outputs (the body's stacked tensors compared apart)."""
    extra = {b.outer for b in exposed}
    return Node(node.index, node.name, node.op_type, node.inputs, tuple(t for t in node.outputs if t not in extra),
                node.proto, scope=node.scope)


def _compare_body(stream: _Stream, node: Node, exposed, ref_out, cand_out) -> str | None:
    """Records for the body tensors of a Loop/Scan, stacked over its iterations (see ``loops``); the
    first body node that introduces error, if any."""
    first = None
    stream.result.expanded.append({"node": node.name, "branch": "body", "nodes": len({b.node for b in exposed})})
    first_bad: dict[str, int] = {}  # diverging body tensor -> the first iteration where it diverges
    compared = []
    for body in exposed:
        expected = ref_out[body.outer]
        record = {"tensor": body.tensor, "node": body.node, "op_type": body.op_type, "index": node.index,
                  "scope": node.name, "shape": list(expected.shape), "iterations": int(expected.shape[0])
                  if expected.ndim else 1}
        obtained = cand_out.get(body.outer) if isinstance(stream.candidate, OnnxSide) else None
        if obtained is None or obtained.shape != expected.shape:
            compared.append(({**record, "status": "missing", "passed": None, "metrics": None}, body))
            continue
        comparison, _ = compare_saturating(expected, obtained, stream.thresholds)
        record.update(passed=comparison.passed, metrics=_metrics(comparison), local=None, status="ok")
        if not comparison.passed:
            first_bad[body.tensor] = _first_bad_iteration(expected, obtained, stream.thresholds)
        compared.append((record, body))
    for record, body in compared:  # a carried state may be fed by a later body node: judged once all are compared
        if record["passed"] is False:
            at = first_bad[body.tensor]
            carried = body.carried or (False,) * len(body.reads)
            clean = all(first_bad.get(t, at + 1) >= (at if was_carried else at + 1)
                        for t, was_carried in zip(body.reads, carried))
            record.update(status="introduced" if clean else "inherited", first_iteration=at,
                          local_method="body tensors it reads agree with the reference up to the iteration where "
                                       "it diverges (a body node is not re-run)")
            if clean and first is None:
                first = body.node
        stream.result.records.append(record)
    return first


def _first_bad_iteration(expected: np.ndarray, obtained: np.ndarray, thresholds) -> int:
    """The first iteration (axis 0 of a stacked body tensor) whose values fail alone; the last one when
    only the whole stack fails."""
    for index in range(expected.shape[0] if expected.ndim else 0):
        if not compare_saturating(expected[index], obtained[index], thresholds)[0].passed:
            return index
    return max((expected.shape[0] if expected.ndim else 1) - 1, 0)


def _rounded(stream: _Stream) -> tuple[dict, set[str]]:
    """The spilled weights rounded once for an fp16 candidate (none for other candidates)."""
    candidate = stream.candidate
    if not (isinstance(candidate, OnnxSide) and candidate.fp16 and stream.graph.spilled):
        return {}, set()
    return stream.graph.rounded(candidate.keep_fp32)


def _expand_if(stream: _Stream, node: Node) -> bool:
    """Run the taken branch of ``node`` node by node; False (run it whole) when the sides disagree."""
    condition_name = node.proto.input[0]
    condition = bool(np.asarray(stream.live_ref[condition_name]).reshape(-1)[0])
    if isinstance(stream.candidate, OnnxSide):
        candidate_condition = bool(np.asarray(stream.live_cand[condition_name]).reshape(-1)[0])
        if candidate_condition != condition:
            stream.result.notes.append(
                f"If {node.name}: the candidate takes the {'then' if candidate_condition else 'else'} branch, the "
                f"reference the other; compared at its outputs only")
            return False
    expanded = stream.graph.expand_if(node, condition)
    branch = "then_branch" if condition else "else_branch"
    stream.result.expanded.append({"node": node.name, "branch": branch, "nodes": len(expanded) - len(node.outputs)})
    inner = {t for n in expanded for t in n.outputs if t} - set(node.outputs)
    for segment in stream.graph.segments(stream.segment_bytes, expanded):
        _run_segment(stream, segment, keep=lambda t: True)
    for store in (stream.live_ref, stream.live_cand):
        for t in inner & set(store):
            del store[t]
    return True


def _note_subgraphs(stream: _Stream, node: Node, *, deeper_only: bool = False) -> None:
    """A node run whole with a body (an If not expanded; subgraphs inside a Loop/Scan body, with
    ``deeper_only``): the nodes of those bodies are not compared one by one."""
    bodies = [graph for _, sub in subgraphs(node.proto) for graph in all_graphs(sub)]
    if deeper_only:
        bodies = [g for _, sub in subgraphs(node.proto) for inner in sub.node
                  for _, deeper in subgraphs(inner) for g in all_graphs(deeper)]
    if bodies:
        stream.result.opaque_subgraph_nodes[node.name] = sum(len(g.node) for g in bodies)


def _compare_node(stream: _Stream, node: Node, ref_out, cand_out) -> None:
    graph, candidate, result = stream.graph, stream.candidate, stream.result
    diverged = []
    for tensor in node.outputs:
        if not tensor or tensor not in ref_out:
            continue
        exact = not graph.is_float(tensor)  # integer, bool, text: compared exactly, a changed shape diverges
        expected = ref_out[tensor]
        obtained = cand_out.get(tensor) if isinstance(candidate, OnnxSide) else candidate.get(tensor)
        if obtained is None and exact:
            continue  # dumps hold the float tensors
        record = {"tensor": tensor, "node": node.name, "op_type": node.op_type, "index": node.index,
                  "shape": list(expected.shape)}
        if node.scope:
            record["scope"] = node.scope
        if obtained is None:
            result.missing.append(tensor)
            result.records.append({**record, "status": "missing", "passed": None, "metrics": None})
            continue
        # the same graph ran on the candidate: another shape diverges (compare's rule fails it showing both
        # shapes); only a dump may hold a tensor in another layout of the same size
        same_graph = exact or isinstance(candidate, OnnxSide)
        aligned, note = (np.asarray(obtained), None) if same_graph else _align(expected, np.asarray(obtained))
        if aligned is None:
            result.records.append({**record, "status": "shape-mismatch", "passed": None, "metrics": None,
                                   "note": note})
            continue
        comparison, saturated = compare_saturating(expected, aligned, stream.thresholds)
        stream.passed[tensor] = comparison.passed
        record.update(status="ok" if comparison.passed else "diverged", passed=comparison.passed,
                      metrics=_metrics(comparison))
        if saturated:
            record["metrics"]["saturated"] = saturated
        if note:
            record["note"] = note
        result.records.append(record)
        if not comparison.passed:
            diverged.append(record)
            if not exact:  # values fp16 cannot hold at all: the repair keeps this tensor's readers too
                with np.errstate(invalid="ignore"):
                    past = int(np.count_nonzero(np.abs(expected) > 65504.0) - np.count_nonzero(np.isinf(expected)))
                if past:
                    record["past_fp16"] = past
    if not diverged:
        return
    if isinstance(candidate, OnnxSide):
        local = _run_alone(stream, node, ref_out)
        result.single_node_runs += 1
        for record in diverged:
            comparison = local[record["tensor"]]
            record["local"] = _metrics(comparison)
            record["local_method"] = "single-node run on the candidate with the reference's inputs"
            record["status"] = "inherited" if comparison.passed else "introduced"
    else:  # a dump cannot be re-run: error is introduced here when every float input still agreed
        upstream_ok = all(stream.passed.get(t, True) for t in node.inputs)
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
        comparison = compare_tensor(feeds[name], round_to_fp16(feeds[name]), thresholds)
        metrics = _metrics(comparison)
        result.records.append({
            "tensor": name, "node": f"input:{name}", "op_type": "Input", "index": -1,
            "shape": list(np.shape(feeds[name])), "passed": comparison.passed, "metrics": metrics,
            "status": "ok" if comparison.passed else "introduced",
            **({} if comparison.passed else {"local": metrics, "local_method": "fp16 rounding of the input"}),
        })


def _run_alone(stream: _Stream, node: Node, ref_out) -> dict:
    """Run ``node`` alone on the candidate side, fed the reference's values of its inputs."""
    graph = stream.graph
    inputs = {t: (ref_out[t] if t in ref_out else stream.live_ref[t]) for t in node.inputs
              if t and t not in graph.initializers}
    outputs = [t for t in node.outputs if t and graph.is_tensor(t)]
    rounded, names = _rounded(stream)
    single = graph.submodel([node], inputs, outputs, replace=rounded)
    obtained = stream.candidate.run(single, inputs, outputs, graph_inputs=(), source=graph.data_source,
                                    pre_rounded=names, in_range=graph.in_range, shared=stream.shared)
    return {t: compare_tensor(ref_out[t], obtained[t], stream.thresholds) for t in outputs if t in obtained}
