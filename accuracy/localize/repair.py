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
