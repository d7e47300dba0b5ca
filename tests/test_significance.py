import math

import pytest
from scipy.stats import binomtest

from accuracy.compare.significance import mcnemar_exact_p, paired_flips, standard_error


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
