"""``bisect --suggest-fp32``: the keep-fp32 list that makes the whole pipeline pass, found fast and
proved three ways.

1. The search (``accuracy.localize.suggest_repair``: localize's ranking, a passing seed, delta
   debugging) judges each trial on the culprit model alone -- the fp16 emulation with the keep-list
   fed every recorded call of the model, compared with the recorded reference outputs by the
   isolated phase's bounds. That costs the model's own calls, never a pipeline run.
2. The whole pipeline confirms the result (the culprit on ``onnxruntime-fp16`` with the list, the
   other models as in the failing run, judged by the suite's ``[compare]`` beyond the reference's
   noise). When the isolated judgement and the pipeline disagree, the search runs again judged by
   the pipeline, seeded with the isolated list.
3. The list is applied by the real converter (``onnxruntime.transformers.float16``,
   ``node_block_list``) and that model, in plain ONNX Runtime, must pass the same pipeline check
   before it is offered. The combined lists are verified by one fresh all-candidate run.

Culprits are repaired in order: earlier ones keep their verified lists, later ones wait on the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.base import Session
from accuracy.bisect.swaps import JudgedRuns, beyond_noise, isolated_thresholds, summary
from accuracy.compare.criteria import Judgement
from accuracy.compare.tensors import TensorThresholds
from accuracy.localize.graph import ModelGraph
from accuracy.localize.metrics import compare_tensor
from accuracy.localize.suffix import SuffixTrials
from accuracy.pipelines.recording import Recording, feeds_digest
from accuracy.pipelines.runner import CANDIDATE, REFERENCE, PipelineRunner

FP16 = "onnxruntime-fp16"


def fp16_session(runner: PipelineRunner, model: str, model_file: Path | None, keep: Sequence[str]):
    """``model`` on ``onnxruntime-fp16`` with ``keep`` in fp32 (converted in memory: trials leave no cache)."""
    from accuracy.backends import get_backend

    native = runner.candidate_backend_name(model) == FP16
    options = dict(runner.spec.candidate.options_for(model)) if native else {}
    options.update(keep_fp32=list(keep), cache=False)
    path = model_file if model_file is not None else (
        runner.model_file(model, CANDIDATE) if native else runner.model_file(model, REFERENCE))
    return get_backend(FP16, **options).load(path, reference=runner.session(model, REFERENCE))


def with_suite_list(target, keep: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*target.keep_fp32, *keep]))


class SessionPool:
    """The culprit's fp16 sessions by keep-list, the last few kept open: the isolated judgement, the
    pipeline's confirmation and the final verification of one list share one session. With
    ``trials`` (the isolated judgement's runs from the cut) a session answers a recorded call's
    inputs from there (``FromCutSession``) and opens the whole model only for other inputs."""

    def __init__(self, runner: PipelineRunner, model: str, target, keep: int = 2):
        self.runner, self.model, self.target, self.keep = runner, model, target, keep
        self.sessions: dict[tuple[str, ...], Any] = {}
        self.trials: Callable[[], SuffixTrials | None] = lambda: None
        self.recorded: list[str] = []  # digests of the recorded calls' feeds, in call order

    def get(self, keep: Sequence[str]):
        key = with_suite_list(self.target, keep)
        if key not in self.sessions:
            while len(self.sessions) >= self.keep:
                self.sessions.pop(next(iter(self.sessions))).close()
            whole = lambda: fp16_session(self.runner, self.model, self.target.model_file, key)
            trials = self.trials()
            self.sessions[key] = whole() if trials is None else FromCutSession(
                self.runner.session(self.model, REFERENCE), trials, key, self.recorded, whole)
        return self.sessions[key]

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()


class FromCutSession(Session):
    """The culprit with a keep-list, as a session: a call whose feeds are a recorded call's (the same
    digest) gets that call's outputs from the run from the cut (``SuffixTrials``: the same emulation,
    the same inputs, so a pipeline's confirmation of the list costs no whole model); any other call
    opens the whole emulated model, once."""

    backend_name = FP16

    def __init__(self, like: Session, trials: SuffixTrials, keep: Sequence[str], recorded: Sequence[str],
                 whole: Callable[[], Session]):
        super().__init__(like.model_path, like.inputs, like.outputs)
        self.trials, self.keep, self.recorded, self.make_whole = trials, list(keep), list(recorded), whole
        self.whole: Session | None = None

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        digest = feeds_digest(feeds)
        if digest in self.recorded:
            found = self.trials.outputs(self.keep)
            if found is not None:
                return found[self.recorded.index(digest)]
        if self.whole is None:
            self.whole = self.make_whole()
        return self.whole.run(feeds)

    def close(self) -> None:
        if self.whole is not None:
            self.whole.close()


class IsolatedCheck:
    """``keep_fp32 -> bool`` on the culprit alone: its fp16 emulation with the list, fed every recorded
    call, against the recorded reference outputs by the isolated phase's bounds."""

    def __init__(self, runs: JudgedRuns, recording: Recording, model: str, target, pool: SessionPool, *,
                 graph: ModelGraph | None = None):
        self.runs, self.recording, self.model, self.target, self.pool = runs, recording, model, target, pool
        self.graph = graph
        bounds = isolated_thresholds(runs.criteria)
        self.thresholds = TensorThresholds(cosine_min=bounds.cosine_min, rel_l2_max=bounds.rel_l2_max)
        self.calls = recording.of(model)
        self.judged: dict[tuple[str, ...], bool] = {}
        self.model_runs = 0
        self._suffix: SuffixTrials | None | bool = None  # made on the first list (False: not for this model)

    def __call__(self, keep: Sequence[str]) -> bool:

        key = tuple(sorted(keep))
        if key not in self.judged:
            self.judged[key] = self._judge(list(keep))
        return self.judged[key]

    def _judge(self, keep: list[str]) -> bool:
        cache, runner = self.runs.cache, self.runs.runner
        native = runner.candidate_backend_name(self.model) == FP16 and self.model not in runner.random
        from_cut = self._from_cut(keep) if keep else None
        if from_cut is not None:  # the model run from the first kept node on (``localize.suffix``)
            return all(compare_tensor(np.asarray(e), np.asarray(o), self.thresholds).passed
                       for call, obtained in zip(self.calls, from_cut)
                       for e, o in zip(self.recording.outputs(call), obtained))
        session = None
        for call in self.calls:
            # the suite's own list alone is what the isolated phase ran: its outputs are in the call cache
            obtained = cache.get(self.model, CANDIDATE, call.index, call.digest) if native and not keep else None
            if obtained is None:
                if session is None:
                    session = self.pool.get(keep)
                self.model_runs += 1
                obtained = session.run(self.recording.feeds(call))
            if not all(compare_tensor(np.asarray(e), np.asarray(o), self.thresholds).passed
                       for e, o in zip(self.recording.outputs(call), obtained)):
                return False
        return True


    def trials(self) -> SuffixTrials | None:
        """The runs from the cut for this model's recorded calls, made once (``None`` for a model with
        random nodes, which runs whole)."""
        if self._suffix is None:
            random = self.model in self.runs.runner.random or self.target.model_file is None
            self._suffix = False if random else SuffixTrials(self.target.model_file,
                                                             [self.recording.feeds(c) for c in self.calls],
                                                             graph=self.graph)
        return self._suffix or None

    def _from_cut(self, keep: list[str]) -> list[list[np.ndarray]] | None:
        """Each call's outputs with ``keep``, from the first kept node on; ``None`` to run the model whole."""
        trials = self.trials()
        if trials is None:
            return None
        before = trials.runs
        found = trials.outputs(list(with_suite_list(self.target, keep)))
        self.model_runs += trials.runs - before
        return found


class PipelineCheck:
    """``keep_fp32 -> bool``: does the pipeline pass with the culprit on ``onnxruntime-fp16`` keeping
    those nodes in fp32, the other models as in the failing run? Judged by the suite's ``[compare]``
    (and, as bisect blames, only beyond the reference's own noise). Each keep-list runs once."""

    def __init__(self, runs: JudgedRuns, model: str, target, *, culprits: Sequence[str],
                 repaired: dict[str, tuple[str, ...]], noise: Judgement, pool: SessionPool | None = None):
        self.runs, self.model, self.target, self.noise = runs, model, target, noise
        self.pool = pool
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
        if self.pool is not None:
            return self.judge_with(self.pool.get(keep), close=False)
        session = fp16_session(self.runs.runner, self.model, self.target.model_file, with_suite_list(self.target, keep))
        return self.judge_with(session)

    def judge_with(self, session, *, close: bool = True) -> Judgement:
        """One pipeline run with the culprit on ``session`` (closed after unless pooled), earlier culprits
        on their lists."""
        sessions = {self.model: session}
        for other, other_keep in self.fixed.items():
            sessions[other] = fp16_session(self.runs.runner, other, None, other_keep)
        try:
            self.pipeline_runs += 1
            return self.runs.judge_with(self.on_candidate, sessions)
        finally:
            for name, opened in sessions.items():
                if close or name != self.model:
                    opened.close()

    def deployed(self, repaired: bytes) -> dict[str, Any]:
        """The converted fp16 model (serialized) in plain ONNX Runtime in the culprit's place: the same
        pipeline check."""
        from accuracy.backends.onnxrt.loader import open_session

        session = open_session(repaired, model_path=f"<{self.model} repaired fp16>")
        judgement = self.judge_with(session)
        return {"passed": not beyond_noise(judgement, self.noise), "pipeline": summary(judgement)}


def repair_culprit(runs: JudgedRuns, recording: Recording, model: str, target, full: dict[str, Any], *,
                   culprits: Sequence[str], repaired: dict[str, tuple[str, ...]], noise: Judgement,
                   thresholds: TensorThresholds, out_dir: Path | None,
                   confirmed: dict[str, tuple] | None = None, graph: ModelGraph | None = None) -> dict[str, Any]:
    """The keep-list for one culprit (module docstring), as the bisect JSON's ``repair``; ``confirmed``
    receives the confirming run when it was the all-candidate configuration (see ``verify_all``).
    ``graph``: localize's reading of the culprit's fp16 model, reused by the trials from the cut."""
    runner = runs.runner
    pool = SessionPool(runner, model, target)
    pipeline = PipelineCheck(runs, model, target, culprits=culprits, repaired=repaired, noise=noise, pool=pool)
    isolated = IsolatedCheck(runs, recording, model, target, pool, graph=graph)
    pool.trials, pool.recorded = isolated.trials, [call.digest for call in isolated.calls]
    try:
        result = _repair(runs, model, target, full, pipeline, isolated, thresholds=thresholds, out_dir=out_dir)
    finally:
        pool.close()
    key = tuple(sorted(result["keep_fp32"]))
    if (confirmed is not None and result["passed"] and key in pipeline.judged and not pipeline.fixed
            and not runner.random and pipeline.on_candidate == tuple(runner.candidate_models)):
        confirmed[model] = (tuple(sorted(with_suite_list(target, result["keep_fp32"]))), pipeline.judged[key])
    return result


def _repair(runs: JudgedRuns, model: str, target, full: dict[str, Any], pipeline: PipelineCheck,
            isolated: IsolatedCheck, *, thresholds: TensorThresholds, out_dir: Path | None) -> dict[str, Any]:
    from accuracy.backends.onnxrt_fp16.inmemory import loaded_model
    from accuracy.localize import op_types, suggest_repair
    from accuracy.localize.offer import converter_snippets, offer_repair

    runner = runs.runner
    graph = loaded_model(target.model_file)  # the trials' fp16 sessions convert this same loaded copy (read only)
    search = suggest_repair(graph, target.feeds, full["tensors"], thresholds=thresholds, keep_fp32=target.keep_fp32,
                            criterion=isolated)
    judged_by = "isolated"
    if not (search["passed"] and search["keep_fp32"] and pipeline(search["keep_fp32"])):
        seed = search["keep_fp32"] if search["passed"] else ()
        first_trials = search["trials"]
        search = suggest_repair(graph, target.feeds, full["tensors"], thresholds=thresholds,
                                keep_fp32=target.keep_fp32, criterion=pipeline, first_try=seed)
        search["trials"] += first_trials
        judged_by = "pipeline"
    keep = search["keep_fp32"]
    others = [m for m in pipeline.on_candidate if m != model]
    described = (f"the pipeline's [compare] with {model} on {FP16} keep_fp32=[...], "
                 + (f"{', '.join(others)} on {runner.spec.candidate.name}" if others else "no other model on the candidate")
                 + (f"; {', '.join(pipeline.waiting)} on the reference (repaired separately)" if pipeline.waiting else ""))
    types = op_types(graph, keep)
    result: dict[str, Any] = {
        "keep_fp32": keep, "passed": search["passed"], "trials": search["trials"],
        "model_runs": isolated.model_runs, "pipeline_runs": pipeline.pipeline_runs,
        "searched_by": ("trials judged on the model's recorded calls, confirmed by the pipeline" if judged_by == "isolated"
                        else "trials judged by the pipeline (the isolated judgement did not carry over)"),
        "criterion": described, "note": search.get("note", ""), "files": {}, "op_types": types,
    }
    if not pipeline.native:
        result["stand_in"] = (f"verified with {model} on {FP16} (the stand-in), not on "
                              f"{runner.candidate_backend_name(model)}")
    if result["passed"] and not keep and not pipeline.native:
        result.update(passed=False, note=(
            f"{model} on the {FP16} stand-in already passes the pipeline's check: its failure on "
            f"{runner.candidate_backend_name(model)} is not fp16 rounding that a keep-list could fix"))
    if result["passed"] and keep:
        if pipeline.last is not None:
            result["pipeline"] = summary(pipeline.judged[tuple(sorted(keep))]) \
                if tuple(sorted(keep)) in pipeline.judged else summary(pipeline.last[1])
        offered = offer_repair(graph, list(with_suite_list(target, keep)),
                               check=pipeline.deployed, op_types=types, out_dir=out_dir, model_name=model)
        result["files"] = offered.pop("files", {})
        result["repaired_model"] = offered
        if offered["passed"]:
            result["snippets"] = converter_snippets(keep, types, unnamed=offered.get("unnamed", []))
        else:
            result.update(passed=False, note=offered["note"])
    result["pipeline_runs"] = pipeline.pipeline_runs
    return result


def verify_all(runs: JudgedRuns, found: dict[str, dict[str, Any]], repaired: dict[str, tuple[str, ...]],
               targets: dict, *, noise: Judgement, progress: Callable[[str], None],
               confirmed: dict[str, tuple] | None = None) -> dict[str, Any]:
    """One all-candidate run with every culprit on its keep-list: the proof behind ``passed``. With one
    culprit whose confirming run (``confirmed``: model -> (sorted keep-list, judgement)) had exactly this
    configuration, that run is the proof and is not repeated."""
    from accuracy.localize.offer import keep_fp32_table

    failed = [m for m in targets if m not in repaired]
    lists = {m: list(k) for m, k in repaired.items()}
    if failed:
        return {"passed": False, "keep_fp32": lists,
                "note": f"no keep-list found for {', '.join(failed)}: convert it with precision_mode=enforce_fp32"}
    progress(f"verifying the repair: all models on the candidate, {', '.join(repaired)} keeping fp32 nodes")
    runner = runs.runner
    (model, keep), = repaired.items() if len(repaired) == 1 else ((None, None),)
    same = confirmed.get(model) if confirmed and model is not None else None
    if same is not None and same[0] == tuple(sorted(keep)):
        judgement = same[1]  # the search's confirming run was this very configuration (deterministic models)
    else:
        sessions = {m: fp16_session(runner, m, targets[m].model_file, keep) for m, keep in repaired.items()}
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
    return {"passed": passed, "keep_fp32": lists, "suite_table": keep_fp32_table(lists),
            "pipeline": summary(judgement),
            "configuration": f"all candidate models on {runner.spec.candidate.name}; "
                             + ", ".join(f"{m} on {FP16} keeping {len(k)} node(s) in fp32" for m, k in repaired.items())}
