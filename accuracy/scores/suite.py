"""Score suites: a stored result (``[scores]``) judged against its baseline (``[baseline]``) by the
suite's ``[tolerance]``. LLM suites (``accuracy.llm.suite``) produce a table, then call ``judge_suite``.

```toml
[scores]
candidate = "results/npu"          # OpenCompass summary CSV, work dir, or our JSON
model = "qwen-npu"                 # picks the column when the summary has several
[baseline]
path = "../../baselines/guide.json"
[tolerance]                        # defaults: the guide's two-sided 1 %
rel = 0.01
abs = 0.5                          # a check passes within either
allow_improvement = false
require_significance = false       # fail only when beyond tolerance AND McNemar-significant
alpha = 0.05
ignore_version = false
max_invalid = 0                    # failed/empty answers a dataset may have
[tolerance.datasets.gsm8k]         # per-dataset overrides of rel/abs/allow_improvement/max_invalid
rel = "2%"                         # a fraction (0.02) or a percentage string; a bare number >= 1 is refused
[names]                            # baseline "dataset[/metric]" -> the candidate's name (mixed tools)
"gsm8k/exact_match,strict-match" = "gsm8k/accuracy"
arc_easy = "ARC-e"
"arc_easy/acc_norm,none" = ""      # "" = not judged (the other tool has no such metric)
```
"""

from __future__ import annotations

from pathlib import Path

from accuracy.baselines import load_baseline, record_baseline
from accuracy.compare.scores import ScorePolicy, Tolerance, compare_scores, parse_rel_tol
from accuracy.config.suite import Suite, TableReader
from accuracy.report.table import score_table
from accuracy.results import CheckResult, SuiteResult
from accuracy.scores.model import ScoreTable
from accuracy.scores.readers import read_scores

_TOLERANCE_KEYS = ("rel", "abs", "allow_improvement", "max_invalid")


def _rel(table: TableReader, default: float | None) -> float | None:
    value = table.get("rel", (int, float, str), default)
    if value is None or value == default:
        return value
    try:
        return parse_rel_tol(value)
    except ValueError as exc:
        raise table.error("rel", str(exc)) from None


def _tolerance(table: TableReader, base: Tolerance) -> Tolerance:
    return Tolerance(
        rel=_rel(table, base.rel),
        abs=table.number("abs", base.abs, minimum=0),
        allow_improvement=table.get("allow_improvement", bool, base.allow_improvement),
        max_invalid=_count(table, "max_invalid", base.max_invalid),
    )


def _count(table: TableReader, name: str, default: int) -> int:
    value = table.get(name, int, default)
    if value < 0:
        raise table.error(name, f"must be >= 0, got {value}")
    return value


def _alpha(table: TableReader) -> float:
    alpha = table.number("alpha", 0.05)
    if not 0 < alpha < 1:
        raise table.error("alpha", f"must be between 0 and 1, got {alpha}")
    return alpha


def policy_from_suite(suite: Suite) -> ScorePolicy:
    """The suite's ``[tolerance]`` table as a policy; unknown keys are errors naming the key."""
    table = suite.table("tolerance", required=False)
    default = _tolerance(table, Tolerance())
    datasets = table.table("datasets")
    per_dataset = {}
    for name in datasets.data:
        sub = datasets.table(name, required=True)
        per_dataset[name] = _tolerance(sub, default)
        sub.reject_unknown(_TOLERANCE_KEYS)
    policy = ScorePolicy(
        default=default,
        per_dataset=per_dataset,
        require_significance=table.get("require_significance", bool, False),
        alpha=_alpha(table),
        ignore_version=table.get("ignore_version", bool, False),
        names=names_from_suite(suite),
    )
    table.reject_unknown(_TOLERANCE_KEYS + ("datasets", "require_significance", "alpha", "ignore_version"))
    return policy


def _malformed_name(name: str) -> bool:
    """Not ``dataset`` nor ``dataset/metric``: empty, or a part around the last ``/`` left blank."""
    return not name.strip() or ("/" in name and not all(part.strip() for part in name.rpartition("/")[::2]))


def names_from_suite(suite: Suite) -> dict[str, str]:
    """The suite's ``[names]``: baseline ``dataset`` or ``dataset/metric`` -> the candidate's name."""
    table = suite.table("names", required=False)
    names = {}
    for key in table.data:
        value = table.get(key, str)
        for side, name in (("name", key), ("value", value)):
            if _malformed_name(name) and (side == "name" or value != ""):
                raise table.error(key, f"the {side} {name!r} must be \"dataset\" or \"dataset/metric\" with both "
                                       "parts named")
        if "/" in key and value and "/" not in value:
            raise table.error(key, f"maps a dataset/metric, so its value must be dataset/metric too, got {value!r}")
        names[key] = value
    return names


def baseline_path(suite: Suite) -> Path:
    table = suite.table("baseline")
    path = table.path_to("path", suite.folder, must_exist=False)
    table.reject_unknown(("path", "label"))
    return path.resolve()  # "../../baselines/x.json" read as where it is


def judge_suite(suite: Suite, candidate: ScoreTable, *, update_baselines: bool = False) -> SuiteResult:
    """Compare ``candidate`` with the suite's baseline (or record it when ``update_baselines``)."""
    policy = policy_from_suite(suite)
    path = baseline_path(suite)
    details: dict = {"baseline": str(path), "candidate": candidate.source}
    if update_baselines:
        label = suite.table("baseline").get("label", str, None)
        changes = record_baseline(candidate, path, force=True, label=label)
        details["baseline_updated"] = [change.describe() for change in changes] or ["recorded"]
    baseline = load_baseline(path)
    comparison = compare_scores(baseline, candidate, policy)
    details["sources"] = {"baseline": baseline.origin(), "candidate": candidate.origin()}
    details["counts"] = comparison.counts
    checks = [
        CheckResult(
            name=f"{check.dataset}/{check.metric}",
            passed=check.passed,
            message=score_table([check]),
            details=check.to_dict(),
        )
        for check in comparison.checks
    ]
    read_from = [f"{side + ':':<10} {table.describe()}" + "".join(f"\n{'':<10} {note}" for note in table.notes)
                 for side, table in (("baseline", baseline), ("candidate", candidate))]
    details["table"] = "\n".join(read_from) + "\n" + score_table(comparison.checks)
    details["extra"] = comparison.extra
    return SuiteResult(suite=suite.name, kind=suite.kind, path=suite.path, checks=checks, details=details)


def candidate_of(suite: Suite) -> ScoreTable:
    table = suite.table("scores")
    source = table.path_to("candidate", suite.folder)
    model = table.string("model", None)
    table.reject_unknown(("candidate", "model"))
    return read_scores(source, model=model)


def run_suite(suite: Suite, *, update_baselines: bool = False) -> SuiteResult:
    return judge_suite(suite, candidate_of(suite), update_baselines=update_baselines)
