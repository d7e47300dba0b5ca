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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.recorded.loader import load_arrays
from accuracy.bisect.swaps import JudgedRuns, beyond_noise, summary
from accuracy.compare.criteria import Judgement
from accuracy.compare.tensors import TensorThresholds
from accuracy.errors import AccuracyError
from accuracy.localize.stream import DEFAULT_THRESHOLDS
from accuracy.pipelines.recording import Recording
from accuracy.pipelines.runner import CANDIDATE, REFERENCE, PipelineRunner

FP16 = "onnxruntime-fp16"
SHOWN = 12  # diverging tensors summarised in the bisect JSON; the whole record goes to localize.json


@dataclass
class LocalizeRequest:
    """What ``bisect_pipeline(..., localize=...)`` does after the swap search.

    ``out_dir`` receives ``<model>/localize.json`` and, with ``suggest_fp32``, the repair's files
    (keep_fp32.json, converter_snippets.txt, model_fp16_repaired.onnx). ``full`` is filled with each
    culprit's whole localize JSON (for reports); the bisect JSON carries a summary.
    """

    suggest_fp32: bool = False
    out_dir: Path | None = None
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
    from accuracy.io import write_json_atomic
    from accuracy.localize import localize_model

    runner = runs.runner
    found: dict[str, dict[str, Any]] = {}
    repaired: dict[str, tuple[str, ...]] = {}  # culprit -> its verified keep-list (suite's own list included)
    targets: dict[str, Target] = {}
    for position, model in enumerate(culprits, 1):
        progress(f"localize {position}/{len(culprits)}: which operator of {model} departs first")
        target = culprit_target(runner, recording, model)
        if isinstance(target, str):
            found[model] = {"verdict": "skipped", "reason": target}
            continue
        targets[model] = target
        check = None
        if request.suggest_fp32:
            check = PipelineCheck(runs, model, target, culprits=culprits, repaired=repaired, noise=noise)
        out = None if request.out_dir is None else Path(request.out_dir) / safe_name(model)
        try:
            full = localize_model(target.model_file, target.feeds, target.candidate, name_map=target.name_map,
                                  thresholds=request.thresholds, keep_fp32=target.keep_fp32,
                                  suggest_fp32=request.suggest_fp32, out_dir=out,
                                  repair_criterion=check)
        except AccuracyError as exc:
            found[model] = {"verdict": "error", "error": str(exc), "stand_in": target.stand_in}
            continue
        full["inputs"] = target.inputs
        full["stand_in"] = target.stand_in
        file = None
        if out is not None:
            file = str(out / "localize.json")
            write_json_atomic(file, full, overwrite=True)
        request.full[model] = full
        found[model] = summarize(full, target, file=file)
        if check is not None:
            repair = found[model]["repair"] = _repair_summary(full, check)
            if repair["passed"] and not repair["keep_fp32"] and not check.native:
                repair.update(passed=False, files={}, note=(
                    f"{model} on the {FP16} stand-in already passes the pipeline's check: its failure on "
                    f"{runner.candidate_backend_name(model)} is not fp16 rounding that a keep-list could fix"))
                repair.pop("snippets", None)
            if repair["passed"]:
                repaired[model] = _with_suite_list(target, repair["keep_fp32"])
    combined = None
    if request.suggest_fp32 and targets:
        combined = _verify_all(runs, found, repaired, targets, noise=noise, progress=progress)
    return found, combined


def culprit_target(runner: PipelineRunner, recording: Recording, model: str) -> Target | str:
    """The localize run for ``model``, or why there is none (a string)."""
    reference_file = runner.model_file(model, REFERENCE)
    if reference_file.suffix.lower() != ".onnx":
        return f"the reference model {reference_file} is not ONNX: localize reads ONNX graphs"
    calls = recording.of(model)
    if not calls:
        return f"the reference run never called {model}"
    feeds = dict(recording.feeds(calls[0]))
    first = f"recorded reference call {calls[0].index} of {len(calls)}"
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
        "file": file,
    }


class PipelineCheck:
    """``keep_fp32 -> bool``: does the pipeline pass with the culprit on ``onnxruntime-fp16`` keeping
    those nodes in fp32, the other models as in the failing run? Judged by the suite's ``[compare]``
    (and, as bisect blames, only beyond the reference's own noise). Each keep-list runs once."""

    def __init__(self, runs: JudgedRuns, model: str, target: Target, *, culprits: Sequence[str],
                 repaired: dict[str, tuple[str, ...]], noise: Judgement):
        self.runs, self.model, self.target, self.noise = runs, model, target, noise
        self.fixed = dict(repaired)  # earlier culprits, on their verified lists
        waiting = set(culprits) - set(repaired) - {model}  # later (or unrepaired) culprits: on the reference
        self.on_candidate = tuple(m for m in runs.runner.candidate_models if m not in waiting)
        self.waiting = sorted(waiting)
        self.native = runs.runner.candidate_backend_name(model) == FP16  # else fp16 emulation stands in
        self.judged: dict[tuple[str, ...], Judgement] = {}
        self.last: tuple[list[str], Judgement] | None = None
        self.pipeline_runs = 0

    def __call__(self, keep: Sequence[str]) -> bool:
        key = tuple(sorted(keep))
        if key not in self.judged:
            self.judged[key] = self._judge(list(keep))
        self.last = (list(keep), self.judged[key])
        return not beyond_noise(self.judged[key], self.noise)

    def _judge(self, keep: list[str]) -> Judgement:
        if not keep and self.native and not self.fixed:
            return self.runs.judge(self.on_candidate)  # the failing run itself: judged already
        sessions = {self.model: fp16_session(self.runs.runner, self.model, self.target,
                                             _with_suite_list(self.target, keep))}
        for other, other_keep in self.fixed.items():
            sessions[other] = fp16_session(self.runs.runner, other, None, other_keep)
        try:
            self.pipeline_runs += 1
            return self.runs.judge_with(self.on_candidate, sessions)
        finally:
            for session in sessions.values():
                session.close()


def fp16_session(runner: PipelineRunner, model: str, target: Target | None, keep: Sequence[str]):
    """``model`` on ``onnxruntime-fp16`` with ``keep`` in fp32 (converted in memory: trials leave no cache)."""
    from accuracy.backends import get_backend

    native = runner.candidate_backend_name(model) == FP16
    options = dict(runner.spec.candidate.options) if native else {}
    options.update(keep_fp32=list(keep), cache=False)
    path = target.model_file if target is not None else (
        runner.model_file(model, CANDIDATE) if native else runner.model_file(model, REFERENCE))
    return get_backend(FP16, **options).load(path, reference=runner.session(model, REFERENCE))


def _with_suite_list(target: Target, keep: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*target.keep_fp32, *keep]))


def _repair_summary(full: dict[str, Any], check: PipelineCheck) -> dict[str, Any]:
    from accuracy.localize.repair import converter_snippets

    repair = full["repair"]
    runner = check.runs.runner
    others = [m for m in check.on_candidate if m != check.model]
    described = (f"the pipeline's [compare] with {check.model} on {FP16} keep_fp32=[...], "
                 + (f"{', '.join(others)} on {runner.spec.candidate.name}" if others else "no other model on the candidate")
                 + (f"; {', '.join(check.waiting)} on the reference (repaired separately)" if check.waiting else ""))
    op_types = {r["node"]: r["op_type"] for r in full["tensors"] if r.get("index", -1) >= 0}
    result = {
        "keep_fp32": repair["keep_fp32"],
        "passed": repair["passed"],
        "trials": repair["trials"],
        "pipeline_runs": check.pipeline_runs,
        "criterion": described,
        "note": repair.get("note", ""),
        "files": repair.get("files", {}),
    }
    result["op_types"] = {node: op_types.get(node, "?") for node in repair["keep_fp32"]}
    if not check.native:
        result["stand_in"] = (f"verified with {check.model} on {FP16} (the stand-in), not on "
                              f"{runner.candidate_backend_name(check.model)}")
    if check.last is not None:
        result["pipeline"] = summary(check.last[1])
    if repair["passed"]:
        result["snippets"] = converter_snippets(repair["keep_fp32"], op_types)
    return result


def _verify_all(runs: JudgedRuns, found: dict[str, dict[str, Any]], repaired: dict[str, tuple[str, ...]],
                targets: dict[str, Target], *, noise: Judgement, progress: Callable[[str], None]) -> dict[str, Any]:
    """One fresh all-candidate run with every culprit on its keep-list: the proof behind ``passed``."""
    failed = [m for m in targets if m not in repaired]
    if failed:
        return {"passed": False, "keep_fp32": {m: list(k) for m, k in repaired.items()},
                "note": f"no keep-list found for {', '.join(failed)}: convert it with precision_mode=enforce_fp32"}
    progress(f"verifying the repair: all models on the candidate, {', '.join(repaired)} keeping fp32 nodes")
    runner = runs.runner
    sessions = {m: fp16_session(runner, m, targets[m], keep) for m, keep in repaired.items()}
    try:
        judgement = runs.judge_with(runner.candidate_models, sessions)
    finally:
        for session in sessions.values():
            session.close()
    passed = not beyond_noise(judgement, noise)
    for model in repaired:
        repair = found[model]["repair"]
        repair["verified"] = passed
        if not passed:
            repair["passed"] = False
            repair["note"] = "the keep-lists together failed the final all-candidate run"
    return {"passed": passed, "keep_fp32": {m: list(k) for m, k in repaired.items()},
            "pipeline": summary(judgement),
            "configuration": f"all candidate models on {runner.spec.candidate.name}; "
                             + ", ".join(f"{m} on {FP16} keeping {len(k)} node(s) in fp32" for m, k in repaired.items())}


def safe_name(name: str, *, fallback: str = "model") -> str:
    """``name`` as a file or folder name: characters other than letters, digits, ``-_.`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or fallback
