"""localize's fast per-tensor comparison gives compare's verdict (accuracy.compare.tensors) on float32 pairs."""

from __future__ import annotations

import numpy as np
import pytest

from accuracy.compare.tensors import TensorThresholds, compare_tensors
from accuracy.localize.metrics import compare_tensor

DEFAULT = TensorThresholds(cosine_min=0.99, rel_l2_max=0.15)


def _pairs():
    rng = np.random.default_rng(7)
    a = rng.normal(size=64).astype(np.float32)
    yield "rounded", a, a.astype(np.float16).astype(np.float32)
    yield "scaled", a, 2 * a
    yield "zeros", np.zeros(8, np.float32), np.zeros(8, np.float32)
    for tiny in (1e-23, 1e-30, 1e-38):  # float32 squares of these underflow to 0
        yield f"flushed {tiny}", np.full(16, tiny, np.float32), np.zeros(16, np.float32)
        yield f"crossed {tiny}", np.array([tiny, 0], np.float32), np.array([0, tiny], np.float32)
        yield f"same {tiny}", np.full(4, tiny, np.float32), np.full(4, tiny, np.float32)


@pytest.mark.parametrize("name, expected, obtained", list(_pairs()), ids=[p[0] for p in _pairs()])
def test_the_fast_path_gives_compares_verdict(name, expected, obtained):
    fast, full = compare_tensor(expected, obtained, DEFAULT), compare_tensors(expected, obtained, thresholds=DEFAULT)
    assert fast.passed == full.passed, (fast.failures, full.failures)
    assert fast.cosine == pytest.approx(full.cosine, abs=1e-6)
