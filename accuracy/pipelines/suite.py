"""The gate's runner for ``[pipeline]`` suites: reference against all-candidate, judged by ``[compare]``.

``run_suite(suite) -> SuiteResult`` with one check per judged output. The reference is recomputed
on every run (it is the golden run), so ``update_baselines`` has nothing to store here. Use
``accuracy bisect`` to find which model moved the output.
"""

from __future__ import annotations

from accuracy.compare.criteria import Criteria, judge_outputs
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.config.suite import Suite
from accuracy.pipelines.runner import CANDIDATE, PipelineRunner
from accuracy.results import CheckResult, SuiteResult


def run_suite(suite: Suite, *, update_baselines: bool = False) -> SuiteResult:
    """Run the pipeline on the reference and on the candidate; one ``CheckResult`` per output."""
    spec = load_pipeline_spec(suite)
    runner = PipelineRunner(spec)
    try:
        reference = runner.run()
        candidate = runner.run({model: CANDIDATE for model in runner.models})
    finally:
        runner.close()
    judgement = judge_outputs(reference, candidate, criteria=Criteria.from_spec(spec.compare))
    checks = []
    for name, record in judgement.outputs.items():
        message = "; ".join(record["failures"]) + ("" if record["passed"] else " (run `accuracy bisect "
                                                   f"{suite.path}` to find the model)")
        checks.append(CheckResult(name=name, passed=record["passed"], message=message, details=dict(record)))
    for failure in judgement.failures:  # outputs that could not be compared at all
        name = failure.split(":", 1)[0]
        if name not in judgement.outputs:
            checks.append(CheckResult(name=name, passed=False, message=failure))
    return SuiteResult(suite=spec.name, kind="pipeline", path=suite.path, checks=checks,
                       details={"reference_backend": spec.reference.name, "candidate_backend": spec.candidate.name})
