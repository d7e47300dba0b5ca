"""The score gate: every (dataset, metric) of the baseline against the candidate.

The guide's rule is the default: aligned when |baseline - candidate| / |baseline| <= 1 %
(mmlu 47 vs 46.6 -> 0.85 % -> aligned); exactly 1 % passes. Tolerances can be relative, absolute
(a check passes within either), per dataset, and one-sided (``allow_improvement``). Where both sides
carry per-sample correctness, each row also reports standard errors and a McNemar test on the
flipped samples; ``require_significance`` then fails a row only when it is beyond tolerance *and*
significant. Flags are paired by sample id (or, when the ids differ, by number or position, and the
check says so); no pairs is no evidence, and the plain rule decides.

Baseline and candidate may come from different tools (lm-eval against OpenCompass): rows are matched
by dataset and metric name (``acc,none`` matches ``accuracy``; a dataset with one metric on each side
pairs them), and ``ScorePolicy.names`` maps the rest (``"gsm8k/exact_match,strict-match" =
"gsm8k/accuracy"``, or a whole dataset ``"arc_easy" = "ARC-e"``); a name mapped to ``""`` is not
judged (a metric the other tool does not have).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accuracy.compare.matching import NO_METRIC, match_candidate, real_metric
from accuracy.compare.significance import pair_samples, paired_flips, score_scale, standard_error
from accuracy.errors import InputError
from accuracy.scores.model import Score, ScoreTable

# Scores are printed with two decimals by OpenCompass; a hair of slack keeps "exactly 1 %" exact.
_EPS = 1e-9


def parse_rel_tol(text: str) -> float:
    """A relative tolerance as a fraction: ``"1%"`` and ``"0.01"`` are both 1 %.

    A bare number >= 1 is refused (``1`` would silently mean ±100 %): write ``1%`` or ``0.01``.
    Raises ``ValueError`` with the hint.
    """
    raw = str(text).strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number; write 1% or 0.01") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0, got {raw}")
    if percent:
        return value / 100
    if value >= 1:
        raise ValueError(f"{raw} would mean ±{value * 100:g}%; write {value:g}% for a percentage or {value / 100:g} for a fraction")
    return value


@dataclass(frozen=True)
class Tolerance:
    """How far a candidate score may move from the baseline.

    ``rel`` is a fraction of |baseline| (0.01 = the guide's 1 %), ``abs`` is in score units; a check
    passes within either. ``max_invalid`` is how many failed/empty requests a dataset may have.
    """

    rel: float | None = 0.01
    abs: float | None = None
    allow_improvement: bool = False
    max_invalid: int = 0

    def describe(self) -> str:
        parts = []
        if self.rel is not None:
            parts.append(f"±{self.rel * 100:g}%")
        if self.abs is not None:
            parts.append(f"±{self.abs:g}")
        text = " or ".join(parts) or "exact"
        return text + (" (+any)" if self.allow_improvement else "")


@dataclass(frozen=True)
class ScorePolicy:
    default: Tolerance = Tolerance()
    per_dataset: Mapping[str, Tolerance] = field(default_factory=dict)
    require_significance: bool = False
    alpha: float = 0.05
    ignore_version: bool = False
    names: Mapping[str, str] = field(default_factory=dict)  # baseline "dataset[/metric]" -> candidate's

    def for_dataset(self, dataset: str) -> Tolerance:
        return self.per_dataset.get(dataset, self.default)


@dataclass
class ScoreCheck:
    """One judged (dataset, metric). ``status``: pass, fail, missing, invalid, skipped."""

    dataset: str
    metric: str
    baseline: float | None
    candidate: float | None
    tolerance: Tolerance
    passed: bool
    status: str
    rel_diff: float | None = None
    abs_diff: float | None = None
    notes: list[str] = field(default_factory=list)
    stderr: dict[str, float] | None = None
    flipped: dict[str, Any] | None = None
    invalid: list[str] = field(default_factory=list)
    candidate_name: str | None = None  # "dataset/metric" of the candidate row, when it differs

    @property
    def compared(self) -> bool:
        """Whether two values were compared (or the candidate's was missing): not a baseline '-'."""
        return self.status != "skipped"

    def to_dict(self) -> dict[str, Any]:
        data = {
            "dataset": self.dataset,
            "metric": self.metric,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "rel_diff": self.rel_diff,
            "abs_diff": self.abs_diff,
            "passed": self.passed,
            "status": self.status,
            "tolerance": {
                "rel": self.tolerance.rel,
                "abs": self.tolerance.abs,
                "allow_improvement": self.tolerance.allow_improvement,
            },
            "notes": self.notes,
        }
        if self.stderr is not None:
            data["stderr"] = self.stderr
        if self.flipped is not None:
            data["flipped"] = self.flipped
        if self.invalid:
            data["invalid"] = self.invalid
        if self.candidate_name is not None:
            data["candidate_name"] = self.candidate_name
        return data


@dataclass
class ScoreComparison:
    checks: list[ScoreCheck]
    extra: list[str] = field(default_factory=list)  # candidate datasets the baseline does not judge

    @property
    def verdict(self) -> str:
        return "pass" if all(check.passed for check in self.checks) else "fail"

    @property
    def counts(self) -> dict[str, int]:
        """Checks compared, aligned among them, and rows not compared (a baseline '-')."""
        compared = [c for c in self.checks if c.compared]
        return {
            "compared": len(compared),
            "aligned": sum(c.passed for c in compared),
            "not_compared": len(self.checks) - len(compared),
        }

    def summary(self) -> str:
        """One line for people: ``PASS: 4 of 4 compared checks aligned; ...``."""
        counts = self.counts
        failed = [c for c in self.checks if not c.passed]
        line = f"{self.verdict.upper()}: {counts['aligned']} of {counts['compared']} compared checks aligned"
        if failed:
            line += f"; failing: {', '.join(f'{c.dataset}/{c.metric}' for c in failed)}"
        skipped = [c.dataset if c.metric == NO_METRIC else f"{c.dataset}/{c.metric}" for c in self.checks if not c.compared]
        if skipped:
            line += f"; not compared ({len(skipped)}): {', '.join(skipped)}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "checks": [c.to_dict() for c in self.checks],
            "extra": self.extra,
            "counts": self.counts,
        }


def check_versions(baseline: ScoreTable, candidate: ScoreTable) -> None:
    """Refuse to compare scores made with different prompts (OpenCompass's ``version`` hash).

    Versions mean different things in different tools (a prompt hash, lm-eval's task version), so
    they are compared only between tables of one tool.
    """
    if baseline.tool != candidate.tool and "lm-eval" in (baseline.tool, candidate.tool):
        return
    for base in baseline.scores:
        cand = candidate.get(base.dataset, base.metric)
        if cand and base.version and cand.version and base.version != cand.version:
            raise InputError(
                f"prompt version of {base.dataset} differs: baseline {base.version}, candidate {cand.version} "
                "(the scores come from different prompts; pass --ignore-version to compare anyway)",
                path=candidate.source,
                where=f"{base.dataset}/{base.metric}",
            )


def judge_score(base: Score, cand: Score | None, tolerance: Tolerance, policy: ScorePolicy) -> ScoreCheck:
    """Judge one baseline score against its candidate (``None`` when the candidate has no row)."""
    check = ScoreCheck(
        dataset=base.dataset,
        metric=base.metric,
        baseline=base.value,
        candidate=None if cand is None else cand.value,
        tolerance=tolerance,
        passed=False,
        status="fail",
    )
    if base.value is None:
        check.passed, check.status = True, "skipped"
        check.notes.append("the baseline has no value ('-'): nothing to compare against")
        return check
    if cand is None or cand.value is None:
        check.status = "missing"
        check.notes.append("missing in the candidate" if cand is None else "candidate cell is '-' (no result)")
        return check

    b, c = base.value, cand.value
    check.abs_diff = c - b
    within = False
    if b != 0:
        check.rel_diff = (c - b) / abs(b)
        if tolerance.rel is not None and abs(check.rel_diff) <= tolerance.rel + _EPS:
            within = True
    elif tolerance.rel is not None:
        check.notes.append(
            f"baseline is 0: a relative tolerance cannot apply; judged by the absolute tolerance ({tolerance.abs or 0:g})"
        )
    abs_bound = tolerance.abs if tolerance.abs is not None else (0.0 if b == 0 else None)
    if abs_bound is not None and abs(c - b) <= abs_bound + _EPS:
        within = True
    improved = c > b
    if improved and tolerance.allow_improvement:
        within = True
        if check.rel_diff is not None and tolerance.rel is not None and check.rel_diff > tolerance.rel:
            check.notes.append("improved beyond tolerance (allowed)")
    elif improved and not within:
        check.notes.append("improved beyond tolerance; pass --allow-improvement to accept improvements")

    if base.samples and cand.samples:
        _add_significance(check, base, cand)
    elif base.stderr is not None and cand.stderr is not None:
        check.stderr = {"baseline": base.stderr, "candidate": cand.stderr}
    beyond = not within
    if beyond and policy.require_significance:
        if check.flipped is None:
            check.notes.append("no paired per-sample results: significance cannot be tested; judged by the plain rule")
        elif check.flipped["common"] < max(len(base.samples), len(cand.samples)):
            check.notes.append(
                f"only {check.flipped['common']} of {max(len(base.samples), len(cand.samples))} samples paired: the "
                "scores cover other samples too, so McNemar cannot excuse the difference; judged by the plain rule")
        elif (unexplained := _unexplained(base, cand, tolerance)) is not None:
            check.notes.append(unexplained)
        elif check.flipped["p_value"] >= policy.alpha:
            beyond = False
            check.notes.append(f"beyond tolerance but not significant (McNemar p={check.flipped['p_value']:.3g})")

    check.invalid = list(cand.invalid)
    if len(cand.invalid) > tolerance.max_invalid:
        check.status = "invalid"
        check.notes.append(
            f"{len(cand.invalid)} failed or empty answers (allowed {tolerance.max_invalid}): "
            + ", ".join(cand.invalid[:10])
            + (" ..." if len(cand.invalid) > 10 else "")
        )
        return check
    check.passed = not beyond
    check.status = "pass" if check.passed else "fail"
    return check


def _unexplained(base: Score, cand: Score, tolerance: Tolerance) -> str | None:
    """Why the per-sample flags cannot speak for the score change, or None when they can.

    McNemar tests the change in the flags; it may excuse the change in the scores only where the one
    accounts for the other: within the row's tolerance (or one sample's worth), as a pooled group's
    flags do for its average. Flags that say "no change" beside scores 25 points apart were written
    for other scores (an edited result, another run's samples)."""
    scale = score_scale(base.value, base.samples)
    flags_change = scale * (sum(cand.samples.values()) / len(cand.samples) - sum(base.samples.values()) / len(base.samples))
    scores_change = cand.value - base.value
    slack = max(tolerance.abs or 0.0, (tolerance.rel or 0.0) * abs(base.value),
                scale / min(len(base.samples), len(cand.samples)))
    if abs(flags_change - scores_change) <= slack + _EPS:
        return None
    return (f"the per-sample results change the score by {flags_change:+.2f}, the scores by {scores_change:+.2f}: they "
            "do not account for the difference, so McNemar cannot excuse it; judged by the plain rule")


def _add_significance(check: ScoreCheck, base: Score, cand: Score) -> None:
    scale = score_scale(base.value, base.samples)
    check.stderr = {
        "baseline": standard_error(base.samples, scale=scale),
        "candidate": standard_error(cand.samples, scale=scale),
    }
    pairing = pair_samples(base.samples, cand.samples)
    if pairing.note:
        check.notes.append(pairing.note)
    flips = paired_flips(base.samples, cand.samples, pairing)
    if flips is None:
        return  # no pairs: no evidence either way
    check.flipped = flips.to_dict()
    if flips.to_wrong or flips.to_right:
        n = len(flips.to_wrong) + len(flips.to_right)
        check.notes.append(
            f"{n} of {flips.common} samples flipped ({len(flips.to_wrong)} right->wrong, "
            f"{len(flips.to_right)} wrong->right), McNemar p={flips.p_value:.3g}"
        )


def compare_scores(baseline: ScoreTable, candidate: ScoreTable, policy: ScorePolicy = ScorePolicy()) -> ScoreComparison:
    """Judge every (dataset, metric) present in the baseline. Raises ``InputError`` on a prompt
    version mismatch unless ``policy.ignore_version``."""
    if not policy.ignore_version:
        check_versions(baseline, candidate)
    checks = []
    used: set[tuple[str, str]] = set()
    for base in baseline.scores:
        if base.metric == NO_METRIC:
            check = judge_score(base, None, policy.for_dataset(base.dataset), policy)
            check.metric = real_metric(base, candidate, policy.names)
            checks.append(check)
            used.update(s.key for s in candidate.scores if s.dataset == policy.names.get(base.dataset, base.dataset))
            continue
        if "" in (policy.names.get(f"{base.dataset}/{base.metric}"), policy.names.get(base.dataset)):
            check = judge_score(Score(base.dataset, base.metric, None), None, policy.for_dataset(base.dataset), policy)
            check.baseline = base.value
            check.notes = ["not judged: [names] maps it to \"\" (no counterpart in the candidate's tool)"]
            checks.append(check)
            continue
        cand, note = match_candidate(base, baseline, candidate, policy.names)
        check = judge_score(base, cand, policy.for_dataset(base.dataset), policy)
        if cand is not None:
            used.add(cand.key)
            if cand.key != base.key:
                check.candidate_name = f"{cand.dataset}/{cand.metric}"
        if note:
            if cand is None and check.notes == ["missing in the candidate"]:
                check.notes = []  # the matcher's note says more
            check.notes.insert(0, note)
        checks.append(check)
    extra = [f"{s.dataset}/{s.metric}" for s in candidate.scores if s.key not in used and s.metric != NO_METRIC]
    return ScoreComparison(checks=checks, extra=extra)
