"""The three views of one model that bisect reports, built on recorded reference calls.

- ``isolated``: the candidate fed the recorded reference inputs, compared call by call with the
  recorded outputs. No pipeline re-run; once per converter gear when the model has gears.
- ``swap_in`` / ``leave_out``: end-to-end runs with some models on the candidate, through a
  ``CallCache`` hook: a deterministic model called with inputs it has already seen (same side, same
  call index) replays its outputs instead of running again.
- the noise floor: two reference runs, compared end to end and call by call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accuracy.backends.base import Session
from accuracy.compare.criteria import Criteria, Judgement, compare_output, headline, judge_outputs
from accuracy.config.converter import ConverterConfig, Shape
from accuracy.errors import BackendError
from accuracy.pipelines.proxy import ModelProxy
from accuracy.pipelines.recording import CallCache, Recording, feeds_digest
from accuracy.pipelines.runner import CANDIDATE, REFERENCE, PipelineRunner

SUMMARY_KEYS = ("cosine", "max_abs", "rel_l2", "ssim", "psnr", "cer", "wer", "mismatches")
OUTPUT_KEYS = SUMMARY_KEYS + ("kind", "shape_expected", "shape_obtained", "lines_expected", "lines_obtained",
                              "first_index", "nonfinite_expected", "nonfinite_obtained")
NOISE_FACTOR = 2.0  # a deviation counts when it exceeds this many times the reference's own


@dataclass
class CallStats:
    """Worst metrics over a model's calls and outputs (cosine: lowest; errors: highest), each output
    judged by ``compare.criteria.compare_output`` (the rule of its kind), and the worst output by name:
    the first that failed, else the one with the lowest cosine."""

    calls: int = 0
    cosine: float = 1.0
    max_abs: float = 0.0
    rel_l2: float = 0.0
    nonfinite: int = 0
    mismatches: int = 0
    failures: list[str] = field(default_factory=list)
    worst: dict[str, Any] | None = None

    def add(self, label: str, expected: np.ndarray, obtained: np.ndarray, criteria: Criteria, *,
            output: str | None = None, call: int | None = None) -> None:
        """Judge one output of one call; ``label`` prefixes its failures, ``output``/``call`` name it in ``worst``."""
        record = compare_output(expected, obtained, criteria=criteria)
        if record.get("cosine") is not None:
            self.cosine = min(self.cosine, record["cosine"])
        self.max_abs = max(self.max_abs, record.get("max_abs") or 0.0)
        self.rel_l2 = max(self.rel_l2, record.get("rel_l2") or 0.0)
        self.mismatches += int(record.get("mismatches") or 0) if record["kind"] != "float" else 0
        self.nonfinite += max(record.get("nonfinite_obtained", 0) - record.get("nonfinite_expected", 0), 0)
        if record["failures"] and len(self.failures) < 3:
            self.failures.append(f"{label}: {'; '.join(record['failures'])}")
        failed_before = self.worst is not None and not self.worst["passed"]
        lower = record.get("cosine") is not None and (self.worst is None or record["cosine"] < self.worst.get("cosine", 2.0))
        if not failed_before and (record["failures"] or lower or self.worst is None):
            self.worst = {"output": output or label, "call": call, "passed": not record["failures"],
                          "kind": record["kind"],
                          "text": record["failures"][0] if record["failures"] else headline(record)}
            if record.get("cosine") is not None:
                self.worst["cosine"] = record["cosine"]

    @property
    def verdict(self) -> str:
        if self.nonfinite:
            return "non-finite"
        return "fail" if self.failures else "pass"

    def to_dict(self) -> dict[str, Any]:
        worst = None if self.worst is None else {k: v for k, v in self.worst.items() if k != "cosine"}
        return {"verdict": self.verdict, "calls": self.calls, "cosine": self.cosine, "max_abs": self.max_abs,
                "rel_l2": self.rel_l2, "nonfinite": self.nonfinite, "mismatches": self.mismatches,
                "failures": self.failures, "worst": worst}


def isolated_thresholds(criteria: Criteria) -> Criteria:
    """Per-model outputs have their own scales: only scale-free bounds apply (cosine, relative L2);
    integer, bool and text outputs are compared exactly, as everywhere."""
    return Criteria(cosine_min=criteria.cosine_min if criteria.cosine_min is not None else 0.99,
                    rel_l2_max=criteria.rel_l2_max)


def isolated(runner: PipelineRunner, recording: Recording, model: str, *, criteria: Criteria,
             cache: CallCache | None = None) -> dict[str, Any]:
    """The candidate on every recorded input of ``model``, compared with the recorded outputs."""
    thresholds = isolated_thresholds(criteria)
    random = model in runner.random
    session = runner.fresh_session(model, CANDIDATE) if random else runner.session(model, CANDIDATE)
    proxy = ModelProxy(model, session, reference=runner.session(model, REFERENCE))
    stats = CallStats()
    seen: dict[int, list[np.ndarray]] = {}
    for call in recording.of(model):
        feeds = recording.feeds(call)
        expected = recording.outputs(call)
        obtained = seen[call.index] = proxy.run(feeds)
        check_outputs_match(model, expected, obtained, session, proxy.reference)
        stats.calls += 1
        for position, (ref, got) in enumerate(zip(expected, obtained)):
            name = _output_name(runner, model, position)
            stats.add(f"call {call.index} output {name}", ref, got, thresholds, output=name, call=call.index)
        if cache is not None:
            digest = random_digest(recording, call) if random else call.digest
            cache.put(model, CANDIDATE, call.index, digest, obtained)
    result = stats.to_dict()
    gears = runner.spec.converter.get(model)
    if gears and gears.gears:
        result["gears"] = isolated_gears(runner, recording, model, gears, thresholds=thresholds,
                                         known=None if random else seen)
        failed = [g["verdict"] for g in result["gears"] if g["verdict"] in ("fail", "non-finite")]
        if failed and result["verdict"] == "pass":
            result["verdict"] = failed[0]
    return result


def isolated_gears(runner: PipelineRunner, recording: Recording, model: str, config: ConverterConfig, *,
                   thresholds: Criteria, known: Mapping[int, list[np.ndarray]] | None = None,
                   ) -> list[dict[str, Any]]:
    """The isolated comparison once per gear: each recorded input sliced or edge-padded to the gear's
    shape, run on the reference and on the candidate (the reference has no recording at that shape).
    A gear that is the recorded shape reuses the recording and ``known`` candidate outputs by call index.
    A gear the reference model cannot run is reported ``skipped`` with the reason, not blamed."""
    results = []
    reference, candidate = runner.session(model, REFERENCE), runner.session(model, CANDIDATE)
    ref_proxy = ModelProxy(model, reference)
    cand_proxy = ModelProxy(model, candidate, reference=reference)
    for gear in config.gears:
        stats, skipped = CallStats(), None
        for call in recording.of(model):
            feeds = fit_to_gear(recording.feeds(call), gear)
            if known is not None and call.index in known and feeds_digest(feeds) == call.digest:
                expected, obtained = recording.outputs(call), known[call.index]
            else:
                try:
                    expected = ref_proxy.run(feeds)
                except BackendError as exc:
                    skipped = f"the reference model cannot run this gear: {exc.message}"
                    break
                obtained = cand_proxy.run(feeds)
                check_outputs_match(model, expected, obtained, candidate, reference)
            stats.calls += 1
            for position, (ref, got) in enumerate(zip(expected, obtained)):
                name = _output_name(runner, model, position)
                stats.add(f"call {call.index} output {name}", ref, got, thresholds, output=name, call=call.index)
        record = {"gear": config.describe_gear(gear), "precision_mode": config.precision_mode, **stats.to_dict()}
        if skipped:
            record.update(verdict="skipped", reason=skipped)
        results.append(record)
    return results


def fit_to_gear(feeds: Mapping[str, np.ndarray], gear: Mapping[str, Shape]) -> dict[str, np.ndarray]:
    """Each named input cut or edge-padded to the gear's shape (inputs the gear does not name stay)."""
    fitted = dict(feeds)
    for name, shape in gear.items():
        if name not in feeds:
            continue
        array = np.asarray(feeds[name])
        if array.ndim != len(shape):
            raise BackendError(f"gear shape {shape} for {name!r} has {len(shape)} dims, the input has {array.ndim}")
        array = array[tuple(slice(0, min(have, want)) for have, want in zip(array.shape, shape))]
        pads = [(0, max(want - have, 0)) for have, want in zip(array.shape, shape)]
        fitted[name] = np.pad(array, pads, mode="edge") if any(p[1] for p in pads) else array
    return fitted


def check_outputs_match(model: str, expected: list[np.ndarray], obtained: list[np.ndarray], candidate: Session,
                        reference: Session) -> None:
    """The candidate must be the same model: as many outputs, of the same kind, and where both
    sessions declare an output's dimensions, the same ones -- else a clear error. A shape that
    differs only at run time (a detector's box count, non-max suppression) is a verdict instead:
    the comparison fails and shows both shapes."""
    path = candidate.model_path
    if len(expected) != len(obtained):
        raise BackendError(f"{model}: the candidate returned {len(obtained)} outputs, the reference {len(expected)}",
                           path=path)
    for position, (ref, got) in enumerate(zip(expected, obtained)):
        if ref.shape != got.shape and _declared_differ(reference, candidate, position):
            raise BackendError(f"{model}: output {position} has shape {got.shape} on the candidate, "
                               f"{ref.shape} on the reference", path=path)
        if ref.dtype != got.dtype and not (ref.dtype.kind == got.dtype.kind == "f"):
            raise BackendError(f"{model}: output {position} is {got.dtype} on the candidate, {ref.dtype} on the "
                               "reference", path=path)


def _declared_differ(reference: Session, candidate: Session, position: int) -> bool:
    """Whether both sessions declare output ``position`` with fixed dimensions that disagree (or with
    another rank): then the files are different models, not one model with a data-dependent shape."""
    try:
        ref, cand = reference.outputs[position].shape, candidate.outputs[position].shape
    except (IndexError, AttributeError):
        return False
    if len(ref) != len(cand):
        return True
    return any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(ref, cand))


def cached_run(runner: PipelineRunner, sides: Mapping[str, str], cache: CallCache, *,
               sessions: Mapping[str, Session] | None = None) -> dict[str, np.ndarray]:
    """A pipeline run that replays what ``cache`` already holds.

    A model with (seeded) random nodes draws, at call k of a run, what a fresh session draws at its
    k-th call after the run's earlier calls. So its outputs are replayable under the same key too,
    and a miss is computed on a fresh session fed this run's earlier calls first.

    ``sessions`` puts a model on a session of the caller's (a candidate with a keep-fp32 list, say):
    its calls always run there and are not cached (the cache knows only the runner's sides).
    """
    history: dict[str, list[dict[str, np.ndarray]]] = {}
    own = {name: ModelProxy(name, session, reference=runner.session(name, REFERENCE))
           for name, session in (sessions or {}).items()}

    def hook(name: str, index: int, feeds: dict[str, np.ndarray], run: Callable) -> list[np.ndarray]:
        if name in own:
            return own[name].run(feeds)
        side = sides.get(name, REFERENCE)
        digest = feeds_digest(feeds)
        earlier = history.setdefault(name, [])
        earlier.append(feeds)
        if name in runner.random:
            digest = feeds_digest({f"{i}:{k}": v for i, f in enumerate(earlier) for k, v in f.items()})
        outputs = cache.get(name, side, index, digest)
        if outputs is None:
            if name in runner.random:
                proxy = ModelProxy(name, runner.fresh_session(name, side), reference=runner.session(name, REFERENCE))
                for past in earlier[:-1]:
                    proxy.run(past)
                outputs = proxy.run(feeds)
            else:
                outputs = run(feeds)
            cache.put(name, side, index, digest, outputs)
        return outputs

    return runner.run(sides, hook=hook, fresh_random=False)


@dataclass
class JudgedRuns:
    """Judged end-to-end runs by the set of models on the candidate, so none runs twice."""

    runner: PipelineRunner
    cache: CallCache
    reference: dict
    criteria: Criteria
    judged: dict[tuple[str, ...], Judgement] = field(default_factory=dict)
    outputs: dict[tuple[str, ...], dict] = field(default_factory=dict)  # pipeline outputs of judged runs
    count: int = 0

    def judge(self, on_candidate: Iterable[str]) -> Judgement:
        chosen = set(on_candidate)
        key = tuple(m for m in self.runner.models if m in chosen)
        if key not in self.judged:
            self.judged[key] = self.judge_with(key, keep=key)
        return self.judged[key]

    def judge_with(self, on_candidate: Iterable[str], sessions: Mapping[str, Session] | None = None,
                   keep: tuple[str, ...] | None = None) -> Judgement:
        """One run (not memoised) with ``on_candidate`` on the candidate and ``sessions`` on the caller's
        sessions (see ``cached_run``), judged against the recorded reference outputs; ``keep`` stores
        the outputs under that key (for pictures)."""
        outputs = cached_run(self.runner, {m: CANDIDATE for m in on_candidate}, self.cache, sessions=sessions)
        self.count += 1
        if keep is not None:
            self.outputs[keep] = outputs
        return judge_outputs(self.reference, outputs, criteria=self.criteria)


def random_digest(recording: Recording, call) -> str:
    """The key of a random model's call: its inputs and those of its earlier calls in the run."""
    earlier = [recording.feeds(c) for c in recording.of(call.model) if c.index <= call.index]
    return feeds_digest({f"{i}:{k}": v for i, f in enumerate(earlier) for k, v in f.items()})


def fill_cache(cache: CallCache, recording: Recording, side: str, *, random: Iterable[str] = ()) -> None:
    """Make a recorded run's calls replayable."""
    random_models = set(random)
    for call in recording.calls:
        digest = random_digest(recording, call) if call.model in random_models else call.digest
        cache.put(call.model, side, call.index, digest, recording.outputs(call))


def call_noise(first: Recording, second: Recording) -> dict[str, dict[str, Any]]:
    """Per model: calls whose inputs were identical in both reference runs, compared output by output."""
    noise: dict[str, dict[str, Any]] = {}
    seconds = {(c.model, c.index): c for c in second.calls}
    exact = Criteria(cosine_min=None)
    exact_rule = Criteria(cosine_min=None, exact=True)
    for call in first.calls:
        twin = seconds.get((call.model, call.index))
        stats = noise.setdefault(call.model, {"stats": CallStats(), "identical": True, "compared": 0})
        if twin is None or twin.digest != call.digest:
            continue
        a, b = first.outputs(call), second.outputs(twin)
        stats["compared"] += 1
        for ref, got in zip(a, b):
            stats["stats"].add("", ref, got, exact)
            stats["identical"] &= ref.shape == got.shape and compare_output(ref, got, criteria=exact_rule)["passed"]
    return {model: {"identical": v["identical"], "calls_compared": v["compared"], "max_abs": v["stats"].max_abs,
                    "rel_l2": v["stats"].rel_l2} for model, v in noise.items()}


def summary(judgement: Judgement) -> dict[str, Any]:
    """A run's judgement, compact: verdict, failures, the worst output by name (``worst``: the first
    failing output and why, or the passing one with the lowest cosine), the worst headline metrics over
    the outputs (``metrics``) and each output's own (``outputs``: kind, metrics, shapes, verdict)."""
    worst = {key: judgement.worst(key) for key in SUMMARY_KEYS}
    return {"verdict": judgement.verdict, "passed": judgement.passed, "failures": list(judgement.failures),
            "worst": judgement.worst_output(),
            "metrics": {key: value for key, value in worst.items() if value is not None},
            "outputs": {name: {**{key: record[key] for key in OUTPUT_KEYS if record.get(key) is not None},
                               "passed": record["passed"]}
                        for name, record in judgement.outputs.items()}}


def beyond_noise(judgement: Judgement, noise: Judgement, *, factor: float = NOISE_FACTOR) -> bool:
    """Whether a run fails for a reason of its own: it fails the check and, when the reference fails the
    check against itself (``noise``), some output fails where the reference agreed with itself, or some
    output's relative L2 error exceeds ``factor`` times the reference's own. bisect judges every run by
    this rule, the all-candidate one included."""
    if judgement.passed:
        return False
    if noise.passed or judgement.nonfinite:
        return True
    failing = {failure.split(":", 1)[0] for failure in judgement.failures}
    noisy = {failure.split(":", 1)[0] for failure in noise.failures}
    if failing - noisy:  # an output that fails where the reference agreed with itself
        return True
    for name, record in judgement.outputs.items():
        own = noise.outputs.get(name, {})
        if (record.get("rel_l2") or 0.0) > factor * (own.get("rel_l2") or 0.0) + 1e-12:
            return True
    return False


def _output_name(runner: PipelineRunner, model: str, position: int) -> str:
    names = runner.session(model, REFERENCE).output_names
    return names[position] if position < len(names) else str(position)
