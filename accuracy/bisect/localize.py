"""``bisect --localize``: from the culprit model to the operator inside it, in the same command.

Each culprit is localized (``accuracy.localize.localize_model``) on its ONNX reference file, fed
the culprit's first recorded reference call: the inputs come from the recording, nothing re-runs.
The candidate side follows the suite:

- ``onnxruntime-fp16``: the same emulation on the candidate's file, with the suite's ``keep_fp32``;
- ``recorded`` with tensor dumps: ``<recording>/call_NNNN/dump/<tensor>.npy`` (names URL-quoted, or
  mapped by an optional ``call_NNNN/dump_map.json``), compared on that call's own recorded inputs;
- anything else (MindIR on MindSpore or MindSpore Lite, a recording without dumps): those runtimes
  expose no intermediate tensors here, so the reference ONNX runs under ``onnxruntime-fp16`` as a
  stand-in for the device's fp16, and the result says so (``stand_in``).

With ``suggest_fp32`` the keep-fp32 search is judged by the whole pipeline's check: the culprit on
``onnxruntime-fp16`` with the keep-list, every other model as in the failing (all-candidate) run,
judged by the suite's ``[compare]`` against the recorded reference outputs (upstream calls replay from
the call cache). Culprits are repaired in order: earlier ones keep their verified lists, later ones
wait on the reference. The combined lists are verified by one fresh all-candidate run before the
repair is reported as passing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.recorded.loader import load_arrays
from accuracy.bisect.swaps import JudgedRuns
from accuracy.compare.criteria import Judgement
from accuracy.compare.tensors import TensorThresholds, compare_tensors
from accuracy.errors import AccuracyError, UsageError
from accuracy.localize.stream import DEFAULT_THRESHOLDS
from accuracy.pipelines.recording import Call, CallCache, Recording
from accuracy.pipelines.runner import CANDIDATE, REFERENCE, PipelineRunner

FP16 = "onnxruntime-fp16"
SHOWN = 12  # diverging tensors summarised in the bisect JSON; the whole record goes to localize.json


@dataclass
class LocalizeRequest:
    """What ``bisect_pipeline(..., localize=...)`` does after the swap search.

    ``call`` picks the recorded call localized (``--call N``); by default it is the call whose
    candidate outputs are furthest from the recorded reference in the isolated phase (a streaming
    model's first call is its zero state, often the least informative). ``out_dir`` receives ``<model>/localize.json`` and, with ``suggest_fp32``, the repair's files
    (keep_fp32.json, converter_snippets.txt, model_fp16_repaired.onnx). ``full`` is filled with each
    culprit's whole localize JSON (for reports); the bisect JSON carries a summary.
    """

    suggest_fp32: bool = False
    out_dir: Path | None = None
    call: int | None = None  # which recorded call to localize (its index); None: the worst in isolation
    thresholds: TensorThresholds = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    full: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What localize runs for one culprit: the ONNX file, the feeds, and the candidate side."""

    model_file: Path
    feeds: dict[str, np.ndarray]
    inputs: str  # where the feeds came from, for people
    candidate: str | Path  # a backend name or a dump folder
    name_map: Path | None = None
    keep_fp32: tuple[str, ...] = ()
    stand_in: str | None = None


def localize_culprits(runs: JudgedRuns, recording: Recording, culprits: Sequence[str], *, noise: Judgement,
                      request: LocalizeRequest, progress: Callable[[str], None] = lambda text: None,
                      ) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Localize (and with ``request.suggest_fp32`` repair) each culprit.

    Returns (model -> summary for ``models[model]["localize"]``, the combined repair or ``None``).
    """
    from accuracy.bisect.repair import repair_culprit, verify_all, with_suite_list
    from accuracy.io import write_json_atomic
    from accuracy.localize import localize_model
    from accuracy.localize.graph import ModelGraph

    runner = runs.runner
    found: dict[str, dict[str, Any]] = {}
    repaired: dict[str, tuple[str, ...]] = {}  # culprit -> its verified keep-list (suite's own list included)
    targets: dict[str, Target] = {}
    confirmed: dict[str, tuple] = {}  # culprit -> its confirming all-candidate run (verify_all reuses it)
    for position, model in enumerate(culprits, 1):
        progress(f"localize {position}/{len(culprits)}: which operator of {model} departs first")
        target = culprit_target(runner, recording, model, call=request.call, cache=runs.cache)
        if isinstance(target, str):
            found[model] = {"verdict": "skipped", "reason": target}
            continue
        targets[model] = target
        out = None if request.out_dir is None else Path(request.out_dir) / safe_name(model)
        try:  # the fp16 candidate's graph, read once for localize and the repair's trials from the cut
            graph = ModelGraph(target.model_file, feeds=target.feeds, fp16=True) if target.candidate == FP16 else None
            full = localize_model(target.model_file, target.feeds, target.candidate, name_map=target.name_map,
                                  thresholds=request.thresholds, keep_fp32=target.keep_fp32, graph=graph)
        except AccuracyError as exc:
            found[model] = {"verdict": "error", "error": str(exc), "stand_in": target.stand_in}
            continue
        full["inputs"] = target.inputs
        full["stand_in"] = target.stand_in
        if request.suggest_fp32:
            progress(f"repair {model}: keep-fp32 trials judged on {model}'s recorded calls, the pipeline confirms")
            full["repair"] = repair_culprit(runs, recording, model, target, full, culprits=culprits,
                                            repaired=repaired, noise=noise, thresholds=request.thresholds, out_dir=out,
                                            confirmed=confirmed, graph=graph)
        file = None
        if out is not None:
            file = str(out / "localize.json")
            write_json_atomic(file, full, overwrite=True)
        request.full[model] = full
        found[model] = summarize(full, target, file=file)
        if request.suggest_fp32:
            repair = found[model]["repair"] = full["repair"]
            if repair["passed"]:
                repaired[model] = with_suite_list(target, repair["keep_fp32"])
    combined = None
    if request.suggest_fp32 and targets:
        combined = verify_all(runs, found, repaired, targets, noise=noise, progress=progress, confirmed=confirmed)
    return found, combined


def culprit_target(runner: PipelineRunner, recording: Recording, model: str, *, call: int | None = None,
                   cache: CallCache | None = None) -> Target | str:
    """The localize run for ``model``, or why there is none (a string)."""
    reference_file = runner.model_file(model, REFERENCE)
    if reference_file.suffix.lower() != ".onnx":
        return f"the reference model {reference_file} is not ONNX: localize reads ONNX graphs"
    calls = recording.of(model)
    if not calls:
        return f"the reference run never called {model}"
    chosen, why = choose_call(recording, calls, model, call=call, cache=cache)
    feeds = dict(recording.feeds(chosen))
    first = f"recorded reference call {chosen.index} of {len(calls)} ({why})"
    backend = runner.candidate_backend_name(model)
    if backend == FP16:
        keep = runner.spec.candidate.options.get("keep_fp32", [])
        return Target(runner.model_file(model, CANDIDATE), feeds, first, FP16, keep_fp32=tuple(keep))
    reason = f"the candidate backend {backend!r} exposes no intermediate tensors here"
    if backend == "recorded":
        dump = first_dump(runner.spec.candidate_file(model))
        if dump is not None:
            call = dump.parent
            name_map = call / "dump_map.json"
            return Target(reference_file, load_arrays(call / "inputs"), f"the recording's {call.name} (its tensor dump)",
                          dump, name_map=name_map if name_map.exists() else None)
        reason += " (its recording has no call_*/dump/ folder of tensors)"
    stand_in = (f"{reason}: localized the reference ONNX under {FP16} emulation instead, a stand-in for the "
                "device's fp16 (it shows fp16 hazards, not other differences of the candidate)")
    return Target(reference_file, feeds, first, FP16, stand_in=stand_in)


def choose_call(recording: Recording, calls: Sequence[Call], model: str, *, call: int | None,
                cache: CallCache | None) -> tuple[Call, str]:
    """The recorded call to localize and why: ``call`` when given (``--call N``), else the one whose
    candidate outputs (from the isolated phase's cache) are worst against the recorded reference —
    most outputs failing, then most one-sided non-finite values, then the largest relative L2."""
    if call is not None:
        found = next((c for c in calls if c.index == call), None)
        if found is None:
            raise UsageError(f"--call {call}: {model} was called {len(calls)} time(s), indices "
                             f"{calls[0].index}..{calls[-1].index}")
        return found, "chosen by --call"
    if len(calls) == 1:
        return calls[0], "its only call"
    scored = []
    for candidate in calls:
        obtained = None if cache is None else cache.get(model, CANDIDATE, candidate.index, candidate.digest)
        if obtained is None:
            continue
        comparisons = [compare_tensors(e, o, thresholds=DEFAULT_THRESHOLDS)
                       for e, o in zip(recording.outputs(candidate), obtained)]
        rel_l2 = max((c.rel_l2 for c in comparisons if c.rel_l2 is not None), default=0.0)
        score = (sum(not c.passed for c in comparisons), sum(getattr(c, "mismatches", c.nonfinite_obtained) for c in comparisons),
                 rel_l2 if not math.isnan(rel_l2) else float("inf"))
        scored.append((score, -candidate.index, candidate))
    if not scored:
        return calls[0], "the first call: no isolated outputs to rank the calls by"
    (failed, _, rel_l2), _, worst = max(scored, key=lambda item: (item[0], item[1]))
    return worst, (f"the worst of {len(scored)} in isolation: {failed} output(s) failing, rel_l2 {rel_l2:.3g}; "
                   "--call N picks another")


def first_dump(recording_folder: Path) -> Path | None:
    """``call_NNNN/dump`` of the first recorded call that has one."""
    if not recording_folder.is_dir():
        return None
    return next((call / "dump" for call in sorted(recording_folder.glob("call_*")) if (call / "dump").is_dir()), None)


def summarize(full: dict[str, Any], target: Target, *, file: str | None) -> dict[str, Any]:
    """The bisect JSON's view of a localize run: the operator, counts, the first few diverging tensors."""
    compared = [r for r in full["tensors"] if r["passed"] is not None]
    diverged = [r for r in compared if not r["passed"]]
    return {
        "verdict": full["verdict"],
        "model_file": str(target.model_file),
        "inputs": target.inputs,
        "candidate": str(target.candidate),
        "stand_in": target.stand_in,
        "first_divergent": full["first_divergent"],
        "introduced": full["introduced"][:SHOWN],
        "tensors": {"compared": len(compared), "diverged": len(diverged), "missing": len(full["missing"]),
                    "introduced": sum(r["status"] == "introduced" for r in diverged),
                    "inherited": sum(r["status"] == "inherited" for r in diverged)},
        "diverged": [{"node": r["node"], "op_type": r["op_type"], "status": r["status"],
                      "cosine": r["metrics"]["cosine"], "local_cosine": (r.get("local") or {}).get("cosine"),
                      "nonfinite": r["metrics"]["nonfinite_obtained"]} for r in diverged[:SHOWN]],
        "warnings": full["warnings"][:SHOWN],
        "emulation": full.get("emulation"),
        "control_flow": full.get("control_flow"),
        "file": file,
    }


def safe_name(name: str, *, fallback: str = "model") -> str:
    """``name`` as a file or folder name: characters other than letters, digits, ``-_.`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or fallback
