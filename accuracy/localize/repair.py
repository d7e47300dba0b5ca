"""Precision repair: the smallest set of nodes that, kept in fp32, makes the fp16 model pass.

Seeded with localize's ranking (nodes that introduce error first, then those that inherit it),
in the spirit of onnxconverter-common's ``auto_convert_mixed_precision`` but on the CPU through
the fp16 emulation: find a passing keep-list, shrink it by delta debugging (drop halves, then
quarters, ... of the list while the model still passes), and check the final list once more
before saying so. Each trial is one whole-model inference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from accuracy.backends.onnxrt.loader import open_session
from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16, node_names
from accuracy.compare.tensors import TensorThresholds, compare_tensors
from accuracy.localize.stream import DEFAULT_THRESHOLDS  # one default for localize and its repair

MAX_TRIALS = 64


@dataclass
class RepairResult:
    keep_fp32: list[str]
    passed: bool
    trials: int
    outputs: dict[str, dict] = field(default_factory=dict)  # output name -> metrics of the final check
    note: str = ""


class _Criterion:
    """Whether the fp16-emulated model with a keep-list passes against the fp32 reference outputs."""

    def __init__(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], thresholds: TensorThresholds):
        self.model, self.feeds, self.thresholds = model, dict(feeds), thresholds
        self.output_names = [o.name for o in model.graph.output]
        session = open_session(model.SerializeToString(), model_path="<reference>", graph_optimization_level="disable")
        self.expected = session.run_outputs(self.output_names, self.feeds)
        self.trials = 0
        self.last: dict[str, dict] = {}

    def __call__(self, keep: Sequence[str]) -> bool:
        self.trials += 1
        emulated = emulate_fp16(self.model, keep_fp32=list(keep))
        session = open_session(emulated.SerializeToString(), model_path="<repair>", graph_optimization_level="disable")
        obtained = session.run_outputs(self.output_names, self.feeds)
        comparisons = [compare_tensors(e, o, thresholds=self.thresholds) for e, o in zip(self.expected, obtained)]
        self.last = {n: c.to_dict() for n, c in zip(self.output_names, comparisons)}
        return all(c.passed for c in comparisons)


class _External:
    """A caller's pass/fail function, counted like the default criterion."""

    def __init__(self, check: Callable[[Sequence[str]], bool]):
        self.check, self.trials, self.last = check, 0, {}

    def __call__(self, keep: Sequence[str]) -> bool:
        self.trials += 1
        return bool(self.check(list(keep)))


def _shrink(keep: list[str], passes: Callable[[Sequence[str]], bool], budget: Callable[[], bool]) -> list[str]:
    """Delta debugging: remove chunks (halves, then smaller) while the rest still passes."""
    chunk = max(1, len(keep) // 2)
    while keep and budget():
        removed_any = False
        for start in range(0, len(keep), chunk):
            trial = keep[:start] + keep[start + chunk:]
            if not budget():
                break
            if passes(trial):
                keep, removed_any = trial, True
                break
        if not removed_any:
            if chunk == 1:
                break
            chunk = max(1, chunk // 2)
    return keep


def suggest_fp32(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    ranking: Sequence[str],
    *,
    first_try: Sequence[str] = (),
    thresholds: TensorThresholds = DEFAULT_THRESHOLDS,
    max_trials: int = MAX_TRIALS,
    criterion: Callable[[Sequence[str]], bool] | None = None,
) -> RepairResult:
    """Search a small keep-fp32 list: ``first_try`` (the nodes that introduce error), then
    ``ranking`` (every suspect, most suspicious first), then every node; then shrink it.

    ``criterion(keep_fp32) -> bool`` replaces the default check (the model's own outputs under fp16
    emulation): with a suite, the whole pipeline's check with this model on the candidate.
    """
    passes = _Criterion(model, feeds, thresholds) if criterion is None else _External(criterion)
    budget = lambda: passes.trials < max_trials
    if passes([]):
        return RepairResult([], True, passes.trials, passes.last, "the fp16 model already passes")
    names = node_names(model.graph)
    ranked = list(dict.fromkeys([*first_try, *ranking]))
    # last: everything; if even that fails, the fp16 rounding of inputs/initializers is the problem
    seeds = [list(first_try), ranked, ranked + [n for n in names if n not in ranked]]
    keep = None
    for seed in seeds:
        if seed and passes(seed):
            keep = seed
            break
    if keep is None:
        return RepairResult([], False, passes.trials, passes.last,
                            "no keep-list makes the model pass: use precision_mode=enforce_fp32 for the whole model")
    keep = _shrink(list(keep), passes, budget)
    verified = passes(keep)  # the final list, checked once more before it is reported
    note = "" if verified else "the shrunk list failed its final check"
    return RepairResult(list(keep), verified, passes.trials, passes.last, note)


def repaired_fp16_model(model: onnx.ModelProto, keep_fp32: Sequence[str]) -> onnx.ModelProto:
    """A real fp16 model (onnxruntime.transformers.float16) with ``keep_fp32`` blocked in fp32,
    fp32 inputs/outputs: what a user deploys or hands to a converter."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    named = onnx.ModelProto()
    named.CopyFrom(model)
    for name, node in zip(node_names(named.graph), named.graph.node):
        node.name = name
    converted = convert_float_to_float16(named, keep_io_types=True, node_block_list=list(keep_fp32))
    _sort_topologically(converted.graph)  # the converter appends its Casts at the end: invalid ONNX
    return converted


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of what it reads (stable)."""
    from accuracy.localize.graph import _subgraph_reads

    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(t in available for t in [*node.input, *_subgraph_reads(node)]):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # reads something nothing produces: leave the order as it was
            return
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def converter_snippets(keep_fp32: Sequence[str], op_types: Mapping[str, str]) -> str:
    """Config text for converters: the whole-model fix and the operator keep-list."""
    keep_lines = "\n".join(f"{name}=data_type:float32" for name in keep_fp32)
    keep_dtype = "\n".join(f"OpName::{name}" for name in keep_fp32)
    types = ", ".join(f"{n} ({op_types.get(n, '?')})" for n in keep_fp32)
    return f"""# Nodes to keep in fp32: {types or 'none'}

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


def write_repair(out_dir: Path, model: onnx.ModelProto, result: RepairResult, op_types: Mapping[str, str]) -> dict:
    """Write keep_fp32.json, the repaired fp16 model and the converter snippets; return their paths."""
    from accuracy.io import write_bytes_atomic, write_json_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"keep_fp32": out_dir / "keep_fp32.json", "snippets": out_dir / "converter_snippets.txt",
             "model": out_dir / "model_fp16_repaired.onnx"}
    write_json_atomic(paths["keep_fp32"], {"keep_fp32": result.keep_fp32, "passed": result.passed}, overwrite=True)
    write_bytes_atomic(paths["snippets"], converter_snippets(result.keep_fp32, op_types).encode())
    repaired = repaired_fp16_model(model, result.keep_fp32)
    write_bytes_atomic(paths["model"], repaired.SerializeToString())
    return {k: str(v) for k, v in paths.items()}
