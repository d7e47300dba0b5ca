"""The gate's runner for ``[pipeline]`` suites: reference against all-candidate, judged by ``[compare]``,
and, when the suite has ``[golden]``, the judged run's images against their stored golden outputs.

``run_suite(suite) -> SuiteResult`` with one check per compared output and one per golden image.
Each case of ``[golden.cases]`` runs the pipeline on both sides with its own inputs. Goldens are
read here and written only with ``update_baselines=True`` (``accuracy baseline record SUITE --force``,
``pytest --accuracy-update-baselines``): then the reference run records them, a changed one
leaves an old | new | difference picture, and ``details["baseline_updated"]`` says what happened
to each. Use ``accuracy bisect`` to find which model moved the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from accuracy.compare.criteria import headline, judge_outputs
from accuracy.config.pipeline import DEFAULT_CASE, GoldenSpec, PipelineSpec, load_pipeline_spec
from accuracy.config.suite import Suite
from accuracy.errors import ConfigError, InputError
from accuracy.goldens import check_golden, default_artifacts_dir, golden_paths
from accuracy.io import read_json
from accuracy.pipelines.runner import CANDIDATE, REFERENCE, PipelineRunner
from accuracy.results import CheckResult, SuiteResult

# Inputs whose values a golden's sidecar keeps under the names goldens.PROVENANCE_KEYS uses.
PROVENANCE_INPUTS = {"prompt": "prompt", "negative_prompt": "negative_prompt", "seed": "seed",
                     "num_inference_steps": "steps", "steps": "steps", "strength": "strength",
                     "guidance_scale": "guidance", "guidance": "guidance"}


def run_suite(suite: Suite, *, update_baselines: bool = False) -> SuiteResult:
    """Run every case on the reference and on the candidate; one ``CheckResult`` per output and golden."""
    spec = load_pipeline_spec(suite)
    golden = spec.golden
    if golden is not None and not update_baselines:
        require_goldens(spec)
    cases = golden.cases if golden is not None else {DEFAULT_CASE: {}}
    explicit = golden is not None and golden.explicit_cases
    checks: list[CheckResult] = []
    updated: list[str] = []
    runner = PipelineRunner(spec)
    try:
        for case, overrides in cases.items():
            inputs = {**spec.inputs, **overrides}
            reference = runner.run(inputs=inputs)
            candidate = runner.run({model: CANDIDATE for model in runner.models}, inputs=inputs)
            checks += compare_checks(spec, reference, candidate, prefix=f"{case}/" if explicit else "")
            if golden is None:
                continue
            if update_baselines:
                recorded = golden_checks(spec, case, reference, update=True)
                updated += [f"{check.name}: {check.message}" for check in recorded]
                checks += recorded
            else:
                judged = reference if golden.backend == REFERENCE else candidate
                checks += golden_checks(spec, case, judged, update=False)
    finally:
        runner.close()
    details: dict[str, Any] = {"reference_backend": spec.reference.name, "candidate_backend": spec.candidate.name}
    if golden is not None:
        details["golden_folder"] = str(golden.folder)
        details["golden_backend"] = golden.backend
        if update_baselines:
            details["baseline_updated"] = updated
    return SuiteResult(suite=spec.name, kind="pipeline", path=suite.path, checks=checks, details=details)


def compare_checks(spec: PipelineSpec, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                   *, prefix: str = "") -> list[CheckResult]:
    """The reference-against-candidate checks of ``[compare]`` (and ``[compare.outputs.NAME]``), one per
    output, named ``prefix + output``: ``compare.criteria.judge_outputs`` decides, as for bisect."""
    judgement = judge_outputs(reference, candidate, criteria=spec.compare)
    checks = []
    for name, record in judgement.outputs.items():
        message = headline(record) if record["passed"] else "; ".join(record["failures"]) + \
            f" (run `accuracy bisect {spec.path}` to find the model)"
        checks.append(CheckResult(name=prefix + name, passed=record["passed"], message=message, details=dict(record)))
    for failure in judgement.failures:  # outputs that could not be compared at all
        name = failure.split(":", 1)[0]
        if name not in judgement.outputs:
            checks.append(CheckResult(name=prefix + name, passed=False, message=failure))
    return checks


def golden_names(golden: GoldenSpec, case: str) -> dict[str, str]:
    """Output -> golden name for one case: the case itself, or ``case.output`` when several outputs are images."""
    if len(golden.outputs) == 1:
        return {golden.outputs[0]: case}
    return {output: f"{case}.{output}" for output in golden.outputs}


def record_hint(spec: PipelineSpec) -> str:
    return (f"record them with `accuracy baseline record {spec.path} --force` "
            f"or `pytest {spec.path} --accuracy-update-baselines`")


def require_goldens(spec: PipelineSpec) -> None:
    """Every case's golden exists before anything runs; else one ``InputError`` naming them all."""
    golden = spec.golden
    missing = [name for case in golden.cases for name in golden_names(golden, case).values()
               if not golden_paths(golden.folder, name).image.exists()]
    if missing:
        raise InputError(f"no golden output for {', '.join(repr(name) for name in missing)} in {golden.folder}; "
                         f"{record_hint(spec)}", path=spec.path)


def golden_checks(spec: PipelineSpec, case: str, outputs: dict[str, np.ndarray], *, update: bool) -> list[CheckResult]:
    """Judge (or, with ``update``, record) each image output of one run against its golden."""
    golden = spec.golden
    latents = None
    if golden.latents is not None:
        latents = _output(spec, outputs, golden.latents, key="golden.latents")
    artifacts = default_artifacts_dir() if update else default_artifacts_dir() / spec.name
    checks = []
    for output, name in golden_names(golden, case).items():
        image = _single_image(spec, _output(spec, outputs, output, key="golden.outputs"), output)
        check = check_golden(golden.folder, name, image, latents=latents, provenance=provenance(spec, case),
                             update=update, thresholds=golden.thresholds, artifacts_dir=artifacts,
                             latent_criteria=spec.compare.for_output(golden.latents or ""))
        if not check.passed and "diff" in check.details.get("images", {}):
            check.message += f" (expected | obtained | difference: {check.details['images']['diff']})"
        check.name = f"golden/{name}"
        check.details["judged_backend"] = spec.reference.name if update or golden.backend == REFERENCE \
            else spec.candidate.name
        checks.append(check)
    return checks


def provenance(spec: PipelineSpec, case: str) -> dict[str, Any]:
    """What made a golden: the case's inputs as written, the scheduler, the recording backend."""
    inputs = {**spec.raw_inputs, **spec.golden.raw_cases.get(case, {})}
    made: dict[str, Any] = {key: inputs[name] for name, key in PROVENANCE_INPUTS.items() if name in inputs}
    made.update({
        "backend": spec.reference.name,
        "scheduler": _scheduler(spec.diffusers) if spec.diffusers is not None else inputs.get("scheduler"),
        "suite": spec.name,
        "case": case,
        "pipeline": f"builtin:{spec.builtin}" if spec.builtin else str(spec.diffusers or spec.entry),
        "inputs": {key: value for key, value in inputs.items() if isinstance(value, (str, int, float, bool))},
    })
    return made


def _scheduler(folder: Path) -> str | None:
    try:
        index = read_json(folder / "model_index.json")
    except InputError:
        return None
    entry = index.get("scheduler") if isinstance(index, dict) else None
    return entry[1] if isinstance(entry, list) and len(entry) == 2 else None


def _output(spec: PipelineSpec, outputs: dict[str, np.ndarray], name: str, *, key: str) -> np.ndarray:
    if name not in outputs:
        raise ConfigError(f"the pipeline has no output {name!r} (it returns {', '.join(outputs)})",
                          path=spec.path, where=key)
    return outputs[name]


def _single_image(spec: PipelineSpec, array: np.ndarray, output: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[0] != 1:
        raise InputError(f"output {output!r} holds a batch of {array.shape[0]} images; a golden case holds one "
                         "image: list one [golden.cases.<name>] per image instead", path=spec.path)
    return array
