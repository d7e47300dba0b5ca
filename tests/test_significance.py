import math

import pytest
from scipy.stats import binomtest

from accuracy.compare.significance import (
    flags_reproduce,
    mcnemar_exact_p,
    pair_samples,
    paired_flips,
    standard_error,
)


@pytest.mark.parametrize("to_wrong,to_right", [(0, 0), (1, 0), (5, 1), (10, 2), (3, 3), (0, 12)])
def test_mcnemar_matches_scipys_exact_binomial_test(to_wrong, to_right):
    n = to_wrong + to_right
    expected = 1.0 if n == 0 else binomtest(to_wrong, n, 0.5).pvalue
    assert mcnemar_exact_p(to_wrong, to_right) == pytest.approx(expected)


def test_paired_flips_only_counts_common_samples():
    flips = paired_flips({"a": True, "b": False, "c": True}, {"a": False, "b": True, "d": True})
    assert flips.common == 2 and flips.to_wrong == ("a",) and flips.to_right == ("b",)


def test_standard_error_is_binomial():
    flags = {str(i): i < 30 for i in range(100)}
    assert standard_error(flags) == pytest.approx(100 * math.sqrt(0.3 * 0.7 / 100))
    assert math.isnan(standard_error({}))


def test_ids_that_never_match_pair_by_the_number_they_end_in_and_say_so():
    # OpenCompass names samples gsm8k_test_N, AISBench '0'...'39' (here in a different order).
    base = {f"gsm8k_test_{i}": i % 2 == 0 for i in range(6)}
    cand = {str(i): True for i in reversed(range(6))}
    pairing = pair_samples(base, cand)
    assert pairing.by == "number" and "paired by the number" in pairing.note
    flips = paired_flips(base, cand)
    assert flips.common == 6 and flips.to_right == ("gsm8k_test_1", "gsm8k_test_3", "gsm8k_test_5")
    assert flips.paired_by == "number"


def test_same_count_without_numbers_pairs_by_position():
    base = {"a": True, "b": False}
    cand = {"x": False, "y": False}
    pairing = pair_samples(base, cand)
    assert pairing.by == "position" and pairing.pairs == (("a", "x"), ("b", "y")) and "by position" in pairing.note


def test_nothing_paired_is_no_result_not_p_equal_1():
    base = {f"gsm8k_test_{i}": True for i in range(40)}
    cand = {str(i): i < 29 for i in range(39)}  # different counts, no ids in common
    assert paired_flips(base, cand) is None
    assert "nothing can be paired" in pair_samples(base, cand).note


def test_flags_reproduce_only_their_own_metric():
    flags = {"0": True, "1": False, "2": True}
    assert flags_reproduce(66.67, flags) and flags_reproduce(2 / 3, flags)
    assert not flags_reproduce(70.0, flags) and not flags_reproduce(None, flags)
