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
    assert not c.passed and c.nonfinite_obtained == 1 and np.isnan(c.cosine)
    assert c.max_abs == 0.0  # the error metrics leave the non-finite element out


def test_zero_tensors_and_empty():
    z = np.zeros(4)
    assert t.compare_tensors(z, z).cosine == 1.0 and t.compare_tensors(z, z).rel_l2 == 0.0
    assert t.compare_tensors(z, np.ones(4)).rel_l2 == float("inf")
    assert t.compare_tensors(np.zeros(0), np.zeros(0)).passed


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        t.compare_tensors(np.zeros(3), np.zeros(4))
