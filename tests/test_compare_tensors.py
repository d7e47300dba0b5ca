"""Tensor metrics: the one-pass ``compare_tensors`` agrees with the single-metric definitions."""

import numpy as np
import pytest

from accuracy.compare import tensors as t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compare_tensors_matches_the_single_metrics(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, 17)).astype(np.float32)
    b = (a + rng.normal(scale=0.05, size=a.shape)).astype(np.float16)
    c = t.compare_tensors(a, b)
    assert c.cosine == pytest.approx(t.cosine_similarity(a, b), rel=1e-12)
    assert c.max_abs == pytest.approx(t.max_abs_error(a, b), rel=1e-12)
    assert c.mean_abs == pytest.approx(t.mean_abs_error(a, b), rel=1e-12)
    assert c.rmse == pytest.approx(t.root_mean_squared_error(a, b), rel=1e-12)
    assert c.max_rel == pytest.approx(t.max_relative_error(a, b), rel=1e-12)
    assert c.rel_l2 == pytest.approx(t.relative_l2_error(a, b), rel=1e-12)


def test_thresholds_and_failures():
    a = np.linspace(-1, 1, 100)
    assert t.compare_tensors(a, a).passed
    flipped = t.compare_tensors(a, -a)
    assert not flipped.passed and flipped.cosine == pytest.approx(-1.0)
    loose = t.compare_tensors(a, a + 0.01, thresholds=t.TensorThresholds(cosine_min=None, max_abs=0.001))
    assert not loose.passed and loose.failures[0].startswith("max_abs")


def test_new_non_finite_values_fail_and_are_counted():
    a = np.ones(8, dtype=np.float32)
    b = a.copy()
    b[3] = np.inf
    c = t.compare_tensors(a, b)
    assert not c.passed and c.nonfinite_obtained == 1 and c.mismatches == 1 and c.first_index == (3,)
    assert "1 non-finite values on one side only" in c.failures[0] and "index (3)" in c.failures[0]
    assert c.max_abs == 0.0 and c.cosine == pytest.approx(1.0)  # metrics over the finite rest, never NaN


def test_zero_tensors_and_empty():
    z = np.zeros(4)
    assert t.compare_tensors(z, z).cosine == 1.0 and t.compare_tensors(z, z).rel_l2 == 0.0
    assert t.compare_tensors(z, np.ones(4)).rel_l2 == float("inf")
    assert t.compare_tensors(np.zeros(0), np.zeros(0)).passed


def test_shape_mismatch_is_a_failure_showing_both_shapes_and_counts():
    c = t.compare_tensors(np.zeros((5, 4)), np.zeros((3, 4)))
    assert not c.passed and c.shape_expected == (5, 4) and c.shape_obtained == (3, 4)
    assert c.failures == ("shape (3, 4) differs from the reference's (5, 4) (3 rows, the reference has 5)",)
    assert c.cosine is None  # no metric across shapes, and none pretending to pass
    boxes = t.compare_tensors(np.zeros(5, np.int64), np.zeros(3, np.int64))
    assert boxes.failures == ("shape (3,) differs from the reference's (5,) (3 values, the reference has 5)",)


def test_non_finite_on_both_sides_at_the_same_places_agrees():
    a = np.array([1.0, -np.inf, np.nan, 2.0, np.inf], dtype=np.float32)
    b = a.copy()
    b[0] = 1.001
    c = t.compare_tensors(a, b)
    assert c.passed and c.mismatches == 0 and c.nonfinite_expected == c.nonfinite_obtained == 3
    assert c.max_abs == pytest.approx(0.001, rel=1e-3) and not np.isnan(c.cosine)


@pytest.mark.parametrize("obtained, count", [
    ([1.0, np.inf, np.nan, 2.0], 1),   # -inf became +inf
    ([1.0, -np.inf, 3.0, 2.0], 1),     # NaN on the reference side only
    ([np.nan, -np.inf, np.nan, np.nan], 2),
])
def test_non_finite_on_one_side_only_fails_with_its_count(obtained, count):
    a = np.array([1.0, -np.inf, np.nan, 2.0])
    c = t.compare_tensors(a, np.array(obtained))
    assert not c.passed and c.mismatches == count
    assert c.failures[0].startswith(f"{count} non-finite values on one side only")
    assert all(v is None or not np.isnan(v) for v in (c.cosine, c.max_abs, c.rel_l2, c.rmse))


def test_all_non_finite_and_equal_passes():
    a = np.full((2, 3), -np.inf)
    c = t.compare_tensors(a, a.copy())
    assert c.passed and c.cosine == 1.0 and c.max_abs == 0.0


def test_integers_and_bools_are_compared_exactly():
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    b = a.copy()
    b[1, 2] = 7
    c = t.compare_tensors(a, b, thresholds=t.TensorThresholds(cosine_min=0.0))
    assert not c.passed and c.kind == "integer" and c.mismatches == 1 and c.first_index == (1, 2)
    assert c.mismatch_fraction == pytest.approx(1 / 6) and "6 -> 7" in c.failures[0]
    assert t.compare_tensors(a, a.copy()).passed
    flags = t.compare_tensors(np.array([True, False]), np.array([True, True]))
    assert not flags.passed and flags.kind == "bool" and flags.first_index == (1,)


def test_exact_floats_need_equal_bits_and_nan_where_nan_is():
    a = np.array([1.0, np.nan])
    assert t.compare_tensors(a, a.copy(), thresholds=t.TensorThresholds(exact=True)).passed
    moved = t.compare_tensors(a, np.array([1.0 + 1e-12, np.nan]), thresholds=t.TensorThresholds(exact=True))
    assert not moved.passed and moved.mismatches == 1


@pytest.mark.parametrize("scale", [1e200, 1e-160, 1e-310])
def test_metrics_hold_at_the_ends_of_float64_never_nan_nor_a_false_one(scale):
    same = np.array([1.0, 2.0, -3.0]) * scale
    c = t.compare_tensors(same, same.copy(), thresholds=t.TensorThresholds(rel_l2_max=1e-6))
    assert c.passed and c.cosine == pytest.approx(1.0) and c.rel_l2 == 0.0
    crossed = t.compare_tensors(np.array([1.0, 0.0]) * scale, np.array([0.0, 1.0]) * scale)
    assert not crossed.passed and crossed.cosine == pytest.approx(0.0, abs=1e-12)
    doubled = t.compare_tensors(same, 2 * same, thresholds=t.TensorThresholds(cosine_min=None, rel_l2_max=0.1))
    assert not doubled.passed and doubled.rel_l2 == pytest.approx(1.0)
    assert doubled.rmse == pytest.approx(scale * float(np.sqrt(np.mean((same / scale) ** 2))), rel=1e-9)


def test_an_integer_reference_is_matched_exactly_even_against_floats():
    c = t.compare_tensors(np.array([1, 2, 300], dtype=np.int64), np.array([1.0, 2.0, 300.5]))
    assert not c.passed and c.kind == "integer" and c.first_index == (2,)
    assert t.compare_tensors(np.array([1, 2], dtype=np.int32), np.array([1.0, 2.0])).passed


def test_text_none_is_not_the_string_none():
    a = np.array(["a", None, b"c"], dtype=object)
    assert t.compare_tensors(a, np.array(["a", None, "c"], dtype=object)).passed
    c = t.compare_tensors(a, np.array(["a", "None", "c"], dtype=object))
    assert not c.passed and c.first_index == (1,)
