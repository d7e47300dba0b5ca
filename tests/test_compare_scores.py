"""The score gate's rule, on the guide's numbers and the edges."""

import pytest

from accuracy.compare.scores import ScorePolicy, Tolerance, compare_scores, parse_rel_tol
from accuracy.errors import InputError
from accuracy.scores.model import Score, ScoreTable


def table(*scores: Score, model: str = "m") -> ScoreTable:
    return ScoreTable(model=model, scores=list(scores), source="mem")


DEFAULT = ScorePolicy()


def one(baseline: float | None, candidate: float | None, policy: ScorePolicy = DEFAULT, **kwargs):
    result = compare_scores(
        table(Score("mmlu", "accuracy", baseline, **kwargs)),
        table(Score("mmlu", "accuracy", candidate, **kwargs)),
        policy,
    )
    return result.checks[0], result


def test_guide_example_is_aligned_with_signed_rel_diff():
    check, result = one(47.0, 46.6)
    assert check.passed and result.verdict == "pass"
    assert check.rel_diff == pytest.approx(-0.0085106, abs=1e-6)


def test_exactly_one_percent_passes_and_just_beyond_fails():
    assert one(50.0, 49.5)[0].passed
    assert one(50.0, 50.5)[0].passed
    assert not one(50.0, 49.49)[0].passed


def test_improvement_beyond_tolerance_fails_two_sided_unless_allowed():
    check, _ = one(47.0, 50.0)
    assert not check.passed and "allow-improvement" in " ".join(check.notes)
    allowed = ScorePolicy(default=Tolerance(allow_improvement=True))
    assert one(47.0, 50.0, allowed)[0].passed
    assert not one(47.0, 44.0, allowed)[0].passed  # a drop is still judged


def test_absolute_tolerance_passes_within_either_bound():
    policy = ScorePolicy(default=Tolerance(rel=0.01, abs=1.0))
    assert one(47.0, 46.1, policy)[0].passed
    assert not one(47.0, 45.9, policy)[0].passed


def test_missing_dataset_and_dash_cell_fail():
    result = compare_scores(
        table(Score("mmlu", "accuracy", 47.0), Score("ceval", "accuracy", 40.0)),
        table(Score("mmlu", "accuracy", None)),
    )
    statuses = {c.dataset: c.status for c in result.checks}
    assert statuses == {"mmlu": "missing", "ceval": "missing"}
    assert result.verdict == "fail"


def test_version_mismatch_refuses_unless_ignored():
    base = table(Score("mmlu", "accuracy", 47.0, version="aaa111"))
    cand = table(Score("mmlu", "accuracy", 47.0, version="bbb222"))
    with pytest.raises(InputError, match="prompt version of mmlu differs"):
        compare_scores(base, cand)
    assert compare_scores(base, cand, ScorePolicy(ignore_version=True)).verdict == "pass"


def test_zero_baseline_uses_the_absolute_rule_and_says_so():
    check, _ = one(0.0, 0.3)
    assert not check.passed and "baseline is 0" in check.notes[0]
    assert one(0.0, 0.3, ScorePolicy(default=Tolerance(abs=0.5)))[0].passed
    assert one(0.0, 0.0)[0].passed


def test_per_dataset_tolerance_overrides_default():
    policy = ScorePolicy(per_dataset={"gsm8k": Tolerance(rel=0.05)})
    result = compare_scores(
        table(Score("mmlu", "accuracy", 50.0), Score("gsm8k", "accuracy", 50.0)),
        table(Score("mmlu", "accuracy", 48.0), Score("gsm8k", "accuracy", 48.0)),
        policy,
    )
    assert [c.passed for c in result.checks] == [False, True]


def test_extra_candidate_datasets_are_listed_not_judged():
    result = compare_scores(table(Score("mmlu", "accuracy", 47.0)), table(Score("mmlu", "accuracy", 47.0), Score("x", "acc", 1.0)))
    assert result.extra == ["x/acc"] and len(result.checks) == 1


def _flags(n_right: int, n: int) -> dict[str, bool]:
    return {f"s{i}": i < n_right for i in range(n)}


def test_one_flipped_humaneval_problem_is_beyond_tolerance_but_not_significant():
    base_flags = _flags(82, 164)  # 50.0
    cand_flags = dict(base_flags, s0=False)  # one problem flips: 81/164 = 49.39, -1.2 %
    base = Score("humaneval", "humaneval_pass@1", 100 * 82 / 164, samples=base_flags)
    cand = Score("humaneval", "humaneval_pass@1", 100 * 81 / 164, samples=cand_flags)
    plain = compare_scores(table(base), table(cand)).checks[0]
    assert not plain.passed
    assert plain.flipped["to_wrong"] == ["s0"] and plain.flipped["p_value"] == 1.0
    assert plain.stderr["baseline"] == pytest.approx(100 * (0.25 / 164) ** 0.5)
    lenient = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert lenient.passed and "not significant" in " ".join(lenient.notes)


def test_many_flips_in_one_direction_are_significant():
    base_flags = _flags(100, 164)
    cand_flags = {k: (v and int(k[1:]) >= 20) for k, v in base_flags.items()}  # 20 right -> wrong
    base = Score("humaneval", "pass@1", 100 * 100 / 164, samples=base_flags)
    cand = Score("humaneval", "pass@1", 100 * 80 / 164, samples=cand_flags)
    check = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert not check.passed and check.flipped["p_value"] < 1e-5


def test_failed_requests_fail_the_check_unless_allowed():
    base = Score("mmlu", "accuracy", 47.0)
    cand = Score("mmlu", "accuracy", 47.0, invalid=["mmlu_3", "mmlu_9"])
    check = compare_scores(table(base), table(cand)).checks[0]
    assert check.status == "invalid" and not check.passed and "mmlu_3" in check.notes[-1]
    allowed = ScorePolicy(default=Tolerance(max_invalid=2))
    assert compare_scores(table(base), table(cand), allowed).checks[0].passed


def test_unpaired_samples_are_no_evidence_and_the_plain_rule_decides():
    # The false pass: no ids in common, different counts -> McNemar used to say p = 1, "not significant".
    base = Score("gsm8k", "accuracy", 75.0, samples={f"gsm8k_test_{i}": i < 30 for i in range(40)})
    cand = Score("gsm8k", "accuracy", 55.0, samples={str(i): i < 21 for i in range(39)})
    check = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert not check.passed and check.flipped is None
    notes = " ".join(check.notes)
    assert "nothing can be paired" in notes and "judged by the plain rule" in notes


def test_renamed_samples_of_the_same_count_pair_by_number_and_a_big_drop_is_significant():
    base = Score("gsm8k", "accuracy", 75.0, samples={f"gsm8k_test_{i}": i < 30 for i in range(40)})
    cand = Score("gsm8k", "accuracy", 55.0, samples={str(i): i < 22 for i in range(40)})  # -26.67 %
    check = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert check.flipped["paired_by"] == "number" and check.flipped["common"] == 40
    assert check.flipped["p_value"] < 0.01 and not check.passed
    assert any("paired by the number" in note for note in check.notes)


def test_rows_not_compared_are_not_counted_as_aligned():
    base = table(Score("mmlu", "accuracy", 47.0), Score("ceval", "-", None), Score("gsm8k", "accuracy", None))
    cand = table(Score("mmlu", "accuracy", 47.0), Score("ceval", "accuracy", 40.0), Score("gsm8k", "accuracy", 50.0))
    result = compare_scores(base, cand)
    assert result.counts == {"compared": 1, "aligned": 1, "not_compared": 2}
    assert result.summary() == "PASS: 1 of 1 compared checks aligned; not compared (2): ceval/accuracy, gsm8k/accuracy"


def test_a_dash_row_takes_the_real_metric_name_or_none():
    base = table(Score("ceval", "-", None), Score("cmmlu", "-", None))
    cand = table(Score("ceval", "accuracy", 40.0))
    checks = compare_scores(base, cand).checks
    assert [(c.dataset, c.metric, c.status) for c in checks] == [("ceval", "accuracy", "skipped"), ("cmmlu", "-", "skipped")]


def test_metric_names_of_another_tool_are_matched_and_said():
    base = table(Score("arc_easy", "acc,none", 80.0), Score("gsm8k", "exact_match,strict-match", 50.0))
    cand = table(Score("arc_easy", "accuracy", 79.5), Score("gsm8k", "accuracy", 49.8))
    checks = compare_scores(base, cand).checks
    assert [c.status for c in checks] == ["pass", "pass"]
    assert checks[0].candidate_name == "arc_easy/accuracy" and "matched to accuracy" in checks[0].notes[0]
    assert "only metric of gsm8k" in checks[1].notes[0]


def test_names_map_what_cannot_be_matched():
    base = table(Score("gsm8k", "exact_match,strict-match", 50.0), Score("gsm8k", "exact_match,flexible-extract", 60.0),
                 Score("arc_easy", "acc,none", 80.0))
    cand = table(Score("gsm8k", "accuracy", 59.9), Score("ARC-e", "accuracy", 80.0))
    unmapped = compare_scores(base, cand).checks
    assert [c.status for c in unmapped] == ["missing", "missing", "missing"]
    assert "[names]" in unmapped[0].notes[0]
    names = {"gsm8k/exact_match,flexible-extract": "gsm8k/accuracy", "gsm8k/exact_match,strict-match": "gsm8k/none",
             "arc_easy": "ARC-e"}
    mapped = compare_scores(base, cand, ScorePolicy(names=names)).checks
    assert [c.status for c in mapped] == ["missing", "pass", "pass"]
    assert "which the candidate lacks" in mapped[0].notes[0]


def test_versions_of_different_tools_are_not_compared():
    base = ScoreTable(model="gpu", scores=[Score("gsm8k", "acc,none", 50.0, version="3.0")], provenance={"tool": "lm-eval"})
    cand = table(Score("gsm8k", "accuracy", 50.0, version="1d7fe4"))
    assert compare_scores(base, cand).verdict == "pass"


@pytest.mark.parametrize("text,expected", [("1%", 0.01), ("0.01", 0.01), ("2.5%", 0.025), ("0", 0.0), ("150%", 1.5)])
def test_rel_tol_takes_a_percentage_or_a_fraction(text, expected):
    assert parse_rel_tol(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,hint", [("1", "write 1% for a percentage or 0.01 for a fraction"), ("abc", "not a number"),
                                       ("-1%", ">= 0"), ("nan", "finite")])
def test_rel_tol_refuses_what_would_silently_mislead(text, hint):
    with pytest.raises(ValueError, match=hint):
        parse_rel_tol(text)


def test_ids_numbered_differently_on_each_side_are_different_samples_never_paired_by_position():
    # Same count, numbered 0..39 against 40..79: other questions. Paired by position, 20 right->wrong and
    # 10 wrong->right read as "not significant" (p = 0.10) and a -33 % drop passed.
    base = Score("gsm8k", "accuracy", 75.0, samples={f"gsm8k_test_{i}": i < 30 for i in range(40)})
    cand = Score("gsm8k", "accuracy", 50.0, samples={str(40 + i): i < 10 or i >= 30 for i in range(40)})
    check = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert not check.passed and check.flipped is None
    assert "different samples" in " ".join(check.notes)


def test_samples_paired_only_in_part_cannot_excuse_a_drop():
    # 10 of 40 ids in common: the scores are over different samples, and McNemar on the 10 shared ones
    # (2 flips, p = 0.5) says nothing about a -33 % drop.
    base = Score("gsm8k", "accuracy", 75.0, samples={str(i): i < 30 for i in range(40)})
    cand_flags = {str(i): i >= 2 for i in range(10)} | {str(100 + i): i < 10 for i in range(30)}
    cand = Score("gsm8k", "accuracy", 50.0, samples=cand_flags)
    check = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert check.flipped["common"] == 10 and check.flipped["p_value"] == 0.5
    assert not check.passed and "judged by the plain rule" in " ".join(check.notes)


def test_flags_that_do_not_account_for_the_score_change_cannot_excuse_it():
    # Both sides' flags say 30 of 40 right (no flip, p = 1), the scores say 75 -> 50: the flags were
    # written for other scores (an edited result), and "not significant" passed a -33 % drop.
    flags = {str(i): i < 30 for i in range(40)}
    base = Score("gsm8k", "accuracy", 75.0, samples=dict(flags))
    cand = Score("gsm8k", "accuracy", 50.0, samples=dict(flags))
    check = compare_scores(table(base), table(cand), ScorePolicy(require_significance=True)).checks[0]
    assert check.flipped["p_value"] == 1.0
    assert not check.passed and "do not account for the difference" in " ".join(check.notes)
