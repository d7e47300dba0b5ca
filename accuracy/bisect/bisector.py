"""``bisect``: which model of a pipeline moves its output when converted, and by how much.

The guide's method, automated: the all-reference pipeline is the golden run; each model is looked
at in isolation (its recorded reference calls replayed on the candidate), swapped in alone, and left
out of the all-candidate pipeline. The reference runs twice so its own noise is measured and never
blamed on a model. Work already done is never redone: the reference run's calls and the isolated
phase's candidate outputs feed a ``CallCache`` that later runs replay from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accuracy.bisect.localize import LocalizeRequest, localize_culprits
from accuracy.bisect.strategy import SwapSearch
from accuracy.bisect.swaps import (
    NOISE_FACTOR,
    JudgedRuns,
    beyond_noise,
    call_noise,
    fill_cache,
    isolated,
    summary,
)
from accuracy.compare.criteria import Judgement, judge_outputs
from accuracy.config.pipeline import PipelineSpec
from accuracy.errors import CandidateFailed
from accuracy.pipelines.recording import DEFAULT_BUDGET, ArrayStore, CallCache, Recording
from accuracy.pipelines.runner import CANDIDATE, REFERENCE, PipelineRunner

Progress = Callable[[str], None]


def bisect_pipeline(spec: PipelineSpec, *, progress: Progress = lambda text: None,
                    budget_bytes: int = DEFAULT_BUDGET, runner: PipelineRunner | None = None,
                    full: bool = False, localize: LocalizeRequest | None = None,
                    pictures_dir: Path | None = None) -> dict[str, Any]:
    """Bisect ``spec``'s pipeline; returns DESIGN.md's bisect JSON (plus timings and cache counts).

    ``localize`` goes on from each culprit to the operator inside it (``models[name]["localize"]``)
    and, when it asks for ``suggest_fp32``, to a keep-fp32 list the whole pipeline passes with
    (``repair``); see ``accuracy.bisect.localize``.

    ``leave_out`` runs for every model when no single swap fails (the combination search needs
    them) and for the culprits (does the rest pass without it?). When culprits exist, leaving out
    any other model still leaves a failing culprit on the candidate, so those runs are skipped
    (``{"verdict": "skipped", "reason": ...}``) unless ``full``.

    Every run, the all-candidate one included, is judged by one rule (``swaps.beyond_noise``): a
    failure counts only when it exceeds the reference's own noise. So when the reference fails the
    check against itself (``noise_floor``) and the all-candidate run fails by no more than that, the
    verdict is ``"inconclusive"`` (exit 1: the check still fails), with no culprits, no smallest
    failing set and a note in ``notes`` saying why and what to do.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    owned = runner is None  # a runner passed in stays open for the caller
    runner = runner or PipelineRunner(spec)
    criteria = spec.compare
    store = ArrayStore(budget_bytes)
    models = runner.candidate_models  # the others have no candidate: they stay on the reference
    try:
        first, second = Recording(store), Recording(store)
        clock = time.perf_counter()
        progress(f"reference run 1/2 ({spec.reference.name}), recording every model call")
        reference = runner.record(first)
        timings["reference_run"] = time.perf_counter() - clock
        clock = time.perf_counter()
        progress("reference run 2/2, for the noise floor")
        again = runner.record(second)
        timings["noise_run"] = time.perf_counter() - clock
        noise = judge_outputs(reference, again, criteria=criteria)

        cache = CallCache(store)
        fill_cache(cache, first, REFERENCE, random=runner.random)
        report_models: dict[str, dict[str, Any]] = {}
        clock = time.perf_counter()
        progress(f"opening the candidate models ({spec.candidate.name})")
        for model in models:
            try:
                runner.session(model, CANDIDATE)
            except CandidateFailed as exc:  # cannot convert/build: stays on the reference, with its verdict
                report_models[model] = _candidate_failed(runner, model, exc, progress)
        timings["candidate_load"] = time.perf_counter() - clock
        clock = time.perf_counter()
        for position, model in enumerate(runner.candidate_models, 1):
            calls = len(first.of(model))
            progress(f"isolated {position}/{len(models)}: {model} on {runner.candidate_backend_name(model)}, "
                     f"{calls} recorded call{'' if calls == 1 else 's'}")
            try:
                report_models[model] = {"isolated": isolated(runner, first, model, criteria=criteria, cache=cache)}
            except CandidateFailed as exc:  # e.g. its worker died mid-run (SIGSEGV): the same
                report_models[model] = _candidate_failed(runner, model, exc, progress)
                continue
            if model in runner.random:
                report_models[model]["random_ops"] = _random_ops(runner, model)
        timings["isolated"] = time.perf_counter() - clock
        models = runner.candidate_models  # the rest are bisected

        runs = JudgedRuns(runner, cache, reference, criteria)
        clock = time.perf_counter()
        progress(f"all models on the candidate ({spec.candidate.name})")
        everything = runs.judge(tuple(models))
        all_fails = beyond_noise(everything, noise)
        for position, model in enumerate(models, 1):
            progress(f"swap in {position}/{len(models)}: only {model} on the candidate")
            report_models[model]["swap_in"] = summary(runs.judge((model,)))
        single_culprits = [m for m in models if beyond_noise(runs.judge((m,)), noise)]
        for position, model in enumerate(models, 1):
            report_models[model]["leave_out"] = _leave_out(runs, model, single_culprits, full=full, progress=progress,
                                                           label=f"{position}/{len(models)}")
        search = SwapSearch(models, all_fails=all_fails)
        while not search.stop():
            combo = search.current
            if len(combo) > 1 and tuple(combo) not in runs.judged:
                progress(f"combination: {', '.join(combo)} on the candidate")
            search.step(not beyond_noise(runs.judge(combo), noise))
        timings["swaps"] = time.perf_counter() - clock
        repair = None
        if localize is not None and search.culprits:
            clock = time.perf_counter()
            found, repair = localize_culprits(runs, first, search.culprits, noise=noise, request=localize,
                                              progress=progress)
            for model, record in found.items():
                report_models[model]["localize"] = record
            timings["localize"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - started
        smallest = search.smallest_failing if all_fails else None
        result = {
            "suite": spec.name,
            "verdict": "fail" if runner.failed else  # a model that cannot run on the candidate fails the move
                       "pass" if everything.passed else "fail" if all_fails else "inconclusive",
            "notes": noise_notes(everything, noise, all_fails=all_fails) + [
                f"{m}: {report_models[m]['verdict']}; kept on the reference, the others bisected" for m in runner.failed],
            "candidate_failed": list(runner.failed),
            "culprits": search.culprits,
            "smallest_failing": list(smallest) if smallest else None,
            "reference_backend": spec.reference.name,
            "candidate_backend": spec.candidate.name,
            "models": report_models,
            "unchanged": [m for m in runner.models if m not in models],
            "all_candidate": {**summary(everything), "beyond_noise": all_fails},
            "noise_floor": {**summary(noise), "calls": call_noise(first, second)},
            "pipeline_runs": 2 + runs.count,
            "cache": {"hits": cache.hits, "misses": cache.misses, "spilled_calls": store.spilled},
            "timings": timings,
        }
        if repair is not None:
            result["repair"] = repair
        if pictures_dir is not None:
            result["pictures"] = write_pictures(Path(pictures_dir), reference, runs, models, search.culprits)
        return result
    finally:
        store.close()
        if owned:
            runner.close()


def _candidate_failed(runner: PipelineRunner, model: str, error: CandidateFailed, progress: Progress) -> dict[str, Any]:
    """``model``'s candidate cannot be converted, built or run: its verdict, and it stays on the reference."""
    runner.candidate_failed(model, error)
    verdict = error.message.splitlines()[0]
    progress(f"{model}: {verdict} (kept on the reference)")
    verdict = verdict if verdict.startswith("candidate failed") else f"candidate failed: {verdict}"
    not_run = {"verdict": "candidate failed", "passed": False, "failures": [verdict.removeprefix("candidate failed: ")]}
    return {"verdict": verdict, "error": str(error), "stderr_tail": list(getattr(error, "stderr_tail", [])),
            "isolated": not_run, "swap_in": not_run, "leave_out": not_run}


def noise_notes(everything: Judgement, noise: Judgement, *, all_fails: bool) -> list[str]:
    """What a reference that disagrees with itself means for this result, for people."""
    if noise.passed:
        return []
    if everything.passed:
        note = "the all-candidate pipeline passes all the same"
    elif all_fails:
        note = f"a run is blamed only where its error exceeds {NOISE_FACTOR:g}x the reference's own"
    else:
        note = (f"inconclusive: the all-candidate pipeline fails the check, but by no more than {NOISE_FACTOR:g}x "
                "the reference's own error, so no model can be blamed; seed the pipeline's random draws or "
                "loosen [compare], then bisect again")
    return [f"the reference fails the check against itself (see noise_floor); {note}"]


def _leave_out(runs: JudgedRuns, model: str, culprits: list[str], *, full: bool, progress: Progress,
               label: str) -> dict[str, Any]:
    """All models but ``model`` on the candidate -- skipped when a culprit that fails alone would stay."""
    models = runs.runner.candidate_models
    others = tuple(m for m in models if m != model)
    if not others:  # a one-model pipeline: leaving it out is the reference itself
        return summary(judge_outputs(runs.reference, runs.reference, criteria=runs.criteria))
    if culprits and model not in culprits and not full:
        return {"verdict": "skipped", "passed": None,
                "reason": f"{', '.join(culprits)} stays on the candidate and fails alone (--full runs it)"}
    progress(f"leave out {label}: all but {model} on the candidate")
    return summary(runs.judge(others))


def _random_ops(runner: PipelineRunner, model: str) -> list[dict[str, Any]]:
    return [{"node": n.name, "op_type": n.op_type, "seed_in_file": n.seeded, "seeded_here": True}
            for n in runner.random[model]]


def write_pictures(folder: Path, reference: dict, runs: JudgedRuns, models: list[str],
                   culprits: list[str]) -> dict[str, dict[str, str]]:
    """The image outputs a person would look at, as PNG files: the reference run, the all-candidate run
    and each culprit's swap-in. ``{output: {"reference": path, "all_candidate": path, "swap_in:<m>": path}}``;
    outputs that are not images are left out."""
    from accuracy.imageio import to_pixels, write_png

    runs_to_show = {"all_candidate": tuple(models)}
    runs_to_show.update({f"swap_in:{m}": (m,) for m in culprits})
    written: dict[str, dict[str, str]] = {}
    for output, array in reference.items():
        try:
            pixels = {"reference": to_pixels(array)}
            for label, key in runs_to_show.items():
                if key in runs.outputs:
                    pixels[label] = to_pixels(runs.outputs[key][output])
        except (ValueError, KeyError):
            continue  # not an image (latents, logits), or non-finite: the tables tell
        if pixels["reference"].ndim not in (2, 3) or min(pixels["reference"].shape[:2]) < 8:
            continue
        written[output] = {}
        for label, image in pixels.items():
            path = folder / f"{output}.{label.replace(':', '-')}.png"
            write_png(path, image)
            written[output][label] = str(path)
    return written
