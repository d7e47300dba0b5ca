"""``localize``: the operator inside a model where error enters, and the smallest fp32 fix.

``localize_model(model_path, feeds, candidate=...)`` compares every float tensor of an ONNX model
between the fp32 reference (ONNX Runtime, CPU, optimisations off so names survive) and a candidate
— ``"onnxruntime-fp16"`` (device fp16 emulated), ``"onnxruntime"``, or a folder of ``.npy`` tensors
dumped on the device — streaming segment by segment (see ``stream``). Diverging nodes are run
alone on the candidate fed the reference's inputs: error *introduced* there versus *inherited*.
``first_divergent`` is the first node in topological order whose own (local) error fails.
``bisect --localize`` calls this with a culprit model's recorded inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from accuracy.compare.tensors import TensorThresholds
from accuracy.errors import InputError, UsageError
from accuracy.localize.graph import ModelGraph
from accuracy.localize.sides import DumpSide, OnnxSide
from accuracy.localize.stream import DEFAULT_SEGMENT_BYTES, DEFAULT_THRESHOLDS, stream_localize

if TYPE_CHECKING:
    import onnx

CANDIDATE_BACKENDS = ("onnxruntime-fp16", "onnxruntime")
_REPAIR_LIMIT = 2**31 - (64 << 20)  # protobuf's 2 GB, less room for the graph itself


def _candidate_side(candidate: str | Path, graph: ModelGraph, name_map: str | Path | None,
                    keep_fp32: Sequence[str]) -> OnnxSide | DumpSide:
    if str(candidate) in CANDIDATE_BACKENDS:
        if name_map is not None:
            raise UsageError("--map applies to a dump folder candidate, not to a backend")
        return OnnxSide(fp16=str(candidate) == "onnxruntime-fp16", keep_fp32=keep_fp32, label=str(candidate))
    folder = Path(candidate)
    if folder.is_dir():
        known = {t for node in graph.nodes for t in node.outputs}
        return DumpSide(folder, name_map=name_map, known=known)
    raise UsageError(f"candidate {str(candidate)!r} is neither a backend ({', '.join(CANDIDATE_BACKENDS)}) "
                     "nor a dump folder")


def localize_model(
    model_path: str | Path,
    feeds: Mapping[str, np.ndarray],
    candidate: str | Path = "onnxruntime-fp16",
    *,
    feeds_source: str | Path | None = None,
    name_map: str | Path | None = None,
    thresholds: TensorThresholds = DEFAULT_THRESHOLDS,
    suggest_fp32: bool = False,
    out_dir: str | Path | None = None,
    keep_fp32: Sequence[str] = (),
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    progress: Callable[[int, int], None] | None = None,
    repair_criterion: Callable[[Sequence[str]], bool] | None = None,
    deploy_check: Callable | None = None,
    graph: ModelGraph | None = None,
) -> dict:
    """Localize where ``candidate`` departs from the fp32 reference; the JSON of DESIGN.md as a dict.

    ``suggest_fp32`` adds ``repair`` (a verified keep-fp32 node list, and with ``out_dir`` the
    repaired fp16 model and converter snippets); ``repair_criterion(keep_fp32) -> bool`` judges a
    keep-list instead of the model's own outputs (``bisect --localize`` passes the pipeline's check).
    ``feeds_source`` is the file the feeds came from, named when they do not fit the model. Raises
    ``InputError`` for such feeds and when nothing could be compared, ``UsageError`` for ``keep_fp32``
    names the model does not have or a ``segment_bytes`` below 1.
    """
    if segment_bytes < 1:
        raise UsageError(f"the segment size must be at least 1 byte, not {segment_bytes}")
    if graph is None:  # (a caller that reads the same model on, e.g. the repair's trials, passes its own)
        graph = ModelGraph(model_path, feeds=feeds, fp16=str(candidate) == "onnxruntime-fp16")
    graph.check_feeds(feeds, source=feeds_source)
    from accuracy.backends.onnxrt_fp16.emulate import all_node_names

    unknown = sorted(set(keep_fp32) - all_node_names(graph.model.graph))
    if unknown:
        raise UsageError(f"keep-fp32 names node(s) the model does not have: {unknown} "
                         f"(its nodes: {_preview([node.name for node in graph.nodes])})", path=graph.path)
    side = _candidate_side(candidate, graph, name_map, keep_fp32)
    run = stream_localize(graph, feeds, side, thresholds=thresholds, segment_bytes=segment_bytes, progress=progress)
    compared = [r for r in run.records if r["passed"] is not None]
    if not compared:
        raise InputError(f"no tensor could be compared: the candidate lacks all {len(run.records)} of them "
                         f"(e.g. {[r['tensor'] for r in run.records[:5]]})", path=str(candidate))
    warnings = []
    if run.missing:
        warnings.append(f"candidate lacks {len(run.missing)} tensor(s), compared the rest: {run.missing}")
    if isinstance(side, DumpSide) and side.unknown_in_map:
        warnings.append(f"name map {side.map_path} names tensors the model does not have: {side.unknown_in_map}")
    warnings += [f"{r['tensor']}: {r['note']}" for r in run.records if r.get("note")]
    warnings += run.notes
    if run.skipped:
        kinds = sorted({s["kind"] for s in run.skipped})
        warnings.append(f"skipped {len(run.skipped)} {'/'.join(kinds)} value(s) (localize compares tensors): "
                        f"{_preview([s['tensor'] for s in run.skipped])}")
    for node, count in run.opaque_subgraph_nodes.items():
        warnings.append(f"{node}: its body's {count} node(s) run inside it (emulated there) and are compared "
                        "only at its outputs")
    emulation = None
    if isinstance(side, OnnxSide) and side.fp16:
        from accuracy.backends.onnxrt_fp16.emulate import emulation_coverage

        emulation = emulation_coverage(graph.model, keep_fp32=keep_fp32, types=graph.elem_type).to_dict()
        if emulation["not_emulated"]:
            warnings.append(f"fp16 emulation could not round {emulation['not_emulated']} node(s) whose output types "
                            f"are unknown: {emulation['by_op_type']['not_emulated']}")
    diverged = [r for r in compared if not r["passed"]]
    introduced = [r for r in diverged if r["status"] == "introduced"]
    first = introduced[0] if introduced else None
    result = {
        "verdict": "fail" if diverged else "pass",
        "model": str(model_path),
        "candidate": str(candidate),
        "thresholds": {"cosine_min": thresholds.cosine_min, "max_abs": thresholds.max_abs,
                       "rel_l2_max": thresholds.rel_l2_max, "max_rel": thresholds.max_rel},
        "first_divergent": None if first is None else {
            "node": first["node"], "op_type": first["op_type"], "tensor": first["tensor"],
            "metrics": first["metrics"], "local_metrics": first.get("local"),
        },
        "introduced": [r["node"] for r in introduced],
        "tensors": run.records,
        "missing": run.missing,
        "warnings": warnings,
        "work": {"segments": run.segments, "single_node_runs": run.single_node_runs},
        "emulation": emulation,
        "control_flow": {"expanded": run.expanded, "compared_inside": sum(e["nodes"] for e in run.expanded),
                         "not_compared_inside": run.opaque_subgraph_nodes},
        "skipped": run.skipped,
    }
    if suggest_fp32:
        repair = suggest_repair(graph, feeds, run.records, thresholds=thresholds, keep_fp32=keep_fp32,
                                criterion=repair_criterion)
        if repair["passed"] and repair["keep_fp32"]:
            _offer(repair, graph, feeds, thresholds, out_dir, deploy_check)
        result["repair"] = repair
    return result


def _offer(repair: dict, graph: ModelGraph, feeds, thresholds, out_dir, deploy_check) -> None:
    """The real converter's model with the keep-list, judged in plain ONNX Runtime before it is offered."""
    import onnx

    from accuracy.localize.offer import offer_repair, plain_runtime_check

    model = onnx.load(str(graph.path))
    check = deploy_check or plain_runtime_check(model, feeds, thresholds)
    offered = offer_repair(model, repair["keep_fp32"], check=check, op_types=op_types(graph, repair["keep_fp32"]),
                           out_dir=None if out_dir is None else Path(out_dir))
    repair["repaired_model"] = {k: v for k, v in offered.items() if k != "files"}
    repair["files"] = offered.get("files", {})
    if not offered["passed"]:
        repair.update(passed=False, note=offered["note"])


def op_types(graph, names: Sequence[str]) -> dict[str, str]:
    """Op type of each named node, main graph and subgraphs (of a ``ModelGraph`` or an ONNX model)."""
    from accuracy.backends.onnxrt_fp16.emulate import node_names, subgraphs

    found: dict[str, str] = {}

    def walk(g, scope: str) -> None:
        for name, node in zip(node_names(g, scope=scope), g.node):
            found[name] = node.op_type
            for attr, sub in subgraphs(node):
                walk(sub, f"{name}/{attr}/")

    walk(graph.model.graph if isinstance(graph, ModelGraph) else graph.graph, "")
    return {n: found.get(n, "?") for n in names}


def _preview(names: Sequence[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def suggest_repair(model: onnx.ModelProto | ModelGraph, feeds, records, *,
                   thresholds: TensorThresholds = DEFAULT_THRESHOLDS, keep_fp32: Sequence[str] = (),
                   criterion: Callable[[Sequence[str]], bool] | None = None, first_try: Sequence[str] = ()) -> dict:
    """The keep-fp32 search seeded by localize's ``records``: the nodes that introduce error first (most
    severe first), then those that inherit it; ``criterion`` judges a keep-list (default: the model's
    outputs under fp16 emulation against fp32). ``first_try`` is tried before anything else. ``model``
    is the loaded model (or localize's graph of it, whose file is then loaded)."""
    import onnx

    from accuracy.localize.repair import suggest_fp32

    def severity(record: dict) -> tuple:
        local = record.get("local") or record["metrics"]
        cosine, rel_l2 = local.get("cosine"), local.get("rel_l2")
        return (-(local["nonfinite_obtained"] or 0), -(rel_l2 if isinstance(rel_l2, float) else 0.0),
                cosine if isinstance(cosine, float) and not math.isnan(cosine) else -2.0)

    # nodes, not inputs; an If/Loop/Scan whose body nodes were compared is left to them: keeping it keeps
    # its whole body in fp32 (the converter leaves a blocked node's subgraphs alone), the last resort
    containers = {r["scope"] for r in records if r.get("scope")}
    diverged = [r for r in records if r["passed"] is False and r["index"] >= 0 and r["node"] not in containers]
    ranked = sorted((r for r in diverged if r["status"] == "introduced"), key=severity)
    ranking = list(dict.fromkeys([*keep_fp32, *(r["node"] for r in ranked), *(r["node"] for r in diverged)]))
    if isinstance(model, ModelGraph):
        weight_bytes = sum(model.initializer_bytes(name) for name in model.initializers)
        loaded = None
    else:
        weight_bytes = sum(int(np.prod(i.dims, dtype=np.int64)) * 4 for i in model.graph.initializer)
        loaded = model
    if weight_bytes > _REPAIR_LIMIT:
        return {"keep_fp32": [], "passed": False, "trials": 0, "outputs": {}, "criterion": "none",
                "note": f"the repair search rebuilds the whole model in memory and is limited to models under 2 GB "
                        f"(this one has {weight_bytes / 2**30:.2f} GiB of weights); try the 'introduced' nodes with "
                        "the onnxruntime-fp16 backend's keep_fp32 option"}
    if loaded is None:
        loaded = onnx.load(str(model.path))
    introduced = [r["node"] for r in ranked]
    seed = list(dict.fromkeys([*keep_fp32, *first_try])) or \
        list(dict.fromkeys([*keep_fp32, *_with_readers(loaded, introduced, records)]))
    found = suggest_fp32(loaded, feeds, ranking, first_try=seed, thresholds=thresholds, criterion=criterion)
    return {"keep_fp32": found.keep_fp32, "passed": found.passed, "trials": found.trials,
            "outputs": found.outputs, "note": found.note,
            "criterion": "model outputs, fp16 emulation" if criterion is None else "caller's check"}


def _with_readers(model: onnx.ModelProto, nodes: Sequence[str], records) -> list[str]:
    """``nodes`` and, for each tensor they give that holds values fp16 cannot hold (``past_fp16`` in
    localize's records), the nodes that read it, and so on: a node kept in fp32 hands its value to an
    fp16 reader through a Cast to fp16, where such a value becomes inf (a sum of squares kept alone
    overflows in the Sqrt's input), so its readers start in fp32 too. Main graph only."""
    from accuracy.backends.onnxrt_fp16.emulate import node_names

    past = {r["tensor"] for r in records if r.get("past_fp16")}
    names = node_names(model.graph)
    outputs = {name: list(node.output) for name, node in zip(names, model.graph.node)}
    readers: dict[str, list[str]] = {}
    for name, node in zip(names, model.graph.node):
        for tensor in node.input:
            readers.setdefault(tensor, []).append(name)
    chosen = list(dict.fromkeys(nodes))
    for name in chosen:  # grows while it is walked
        for tensor in outputs.get(name, ()):
            if tensor in past:
                chosen += [r for r in readers.get(tensor, ()) if r not in chosen]
    return chosen


__all__ = ["CANDIDATE_BACKENDS", "localize_model", "op_types", "suggest_repair"]
