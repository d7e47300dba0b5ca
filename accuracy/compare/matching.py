"""Which candidate row goes with which baseline row, when the two runs come from different tools.

Identical (dataset, metric) names pair first; then a ``names`` mapping (a suite's ``[names]``:
baseline ``dataset`` or ``dataset/metric`` -> the candidate's); then names that mean the same
(lm-eval's ``acc,none`` is OpenCompass's ``accuracy``); then the only metric of a dataset on each
side. Every match that is not by identical names comes with a note saying how it was made.
"""

from __future__ import annotations

from collections.abc import Mapping

from accuracy.scores.model import Score, ScoreTable

NO_METRIC = "-"  # a summary row of a dataset without any result


def _normal_metric(metric: str) -> str:
    """``acc,none`` (lm-eval, no filter) and ``accuracy`` (OpenCompass) name the same thing."""
    name = metric.lower().removesuffix(",none")
    return {"acc": "accuracy"}.get(name, name)


def match_candidate(base: Score, baseline: ScoreTable, candidate: ScoreTable, names: Mapping[str, str]) -> tuple[Score | None, str | None]:
    """The candidate row for a baseline row, and a note when it was not matched by identical names.

    Order: ``names["dataset/metric"]``; the dataset renamed by ``names["dataset"]``, then the same
    metric; the same metric once normalised (``acc,none`` = ``accuracy``); the only metric of the
    dataset on each side.
    """
    full = f"{base.dataset}/{base.metric}"
    if full in names:
        dataset, _, metric = names[full].rpartition("/")
        found = candidate.get(dataset, metric) if dataset else None
        return found, f"matched by [names]: {full} -> {names[full]}" if found else f"[names] maps {full} to {names[full]}, which the candidate lacks"
    dataset = names.get(base.dataset, base.dataset)
    renamed = f"dataset named {dataset} in the candidate ([names]); " if dataset != base.dataset else ""
    exact = candidate.get(dataset, base.metric)
    if exact is not None:
        return exact, (renamed.rstrip("; ") or None)
    rows = [s for s in candidate.scores if s.dataset == dataset and s.metric != NO_METRIC]
    same = [s for s in rows if _normal_metric(s.metric) == _normal_metric(base.metric)]
    if len(same) == 1:
        return same[0], f"{renamed}metric {base.metric} matched to {same[0].metric}"
    base_rows = [s for s in baseline.scores if s.dataset == base.dataset and s.metric != NO_METRIC]
    if len(rows) == 1 and len(base_rows) == 1:
        return rows[0], f"{renamed}metric names differ ({base.metric} vs {rows[0].metric}): paired as the only metric of {base.dataset} on each side"
    if rows:
        return None, (
            f"{renamed}the candidate has {dataset} with metric {', '.join(s.metric for s in rows)} but not {base.metric}: "
            f"map it in the suite's [names] (\"{full}\" = \"{dataset}/<metric>\")"
        )
    if candidate.get(dataset, NO_METRIC) is not None:
        return candidate.get(dataset, NO_METRIC), f"{renamed}the candidate lists {dataset} without a result ('-' row)"
    return None, renamed.rstrip("; ") or None


def real_metric(base: Score, candidate: ScoreTable, names: Mapping[str, str]) -> str:
    """A baseline '-' row has no metric name; the candidate's only metric for it, if any, is the real one."""
    rows = [s for s in candidate.scores if s.dataset == names.get(base.dataset, base.dataset) and s.metric != NO_METRIC]
    return rows[0].metric if len(rows) == 1 else NO_METRIC
