"""Recorded calls stay in memory up to the budget and spill to disk beyond it, unchanged."""

from __future__ import annotations

import numpy as np

from accuracy.pipelines.recording import ArrayStore, CallCache, Recording, feeds_digest


def test_calls_round_trip_in_memory_and_spilled():
    store = ArrayStore(budget_bytes=1000)
    recording = Recording(store)
    small = {"x": np.arange(10, dtype=np.float32)}  # 40 bytes: in memory
    big = {"x": np.arange(1000, dtype=np.float32)}  # 4000 bytes: over the budget, spilled
    first = recording.add("m", 0, small, [small["x"] * 2])
    second = recording.add("m", 1, big, [big["x"] * 2, big["x"][:3]])
    assert store.spilled == 2 and store.memory_bytes <= 1000
    folder = store._folder
    assert folder is not None and len(list(folder.glob("*.npz"))) == 2
    np.testing.assert_array_equal(recording.feeds(second)["x"], big["x"])
    outs = recording.outputs(second)
    assert len(outs) == 2 and outs[1].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(recording.outputs(first)[0], small["x"] * 2)
    assert [c.index for c in recording.of("m")] == [0, 1]
    recording.close()
    assert not folder.exists()


def test_recorded_arrays_are_copies():
    recording = Recording()
    feeds = {"x": np.zeros(3)}
    call = recording.add("m", 0, feeds, [feeds["x"]])
    feeds["x"][:] = 7
    assert recording.feeds(call)["x"].tolist() == [0, 0, 0]


def test_digest_sees_values_dtypes_shapes_and_names():
    base = feeds_digest({"x": np.zeros((2, 2), np.float32)})
    assert base == feeds_digest({"x": np.zeros((2, 2), np.float32)})
    for other in ({"x": np.zeros((4,), np.float32)}, {"x": np.zeros((2, 2), np.float64)},
                  {"y": np.zeros((2, 2), np.float32)}, {"x": np.eye(2, dtype=np.float32)}):
        assert feeds_digest(other) != base


def test_call_cache_keys_by_model_side_index_and_inputs():
    cache = CallCache()
    cache.put("m", "candidate", 0, "d", [np.ones(2)])
    assert cache.get("m", "candidate", 0, "d")[0].tolist() == [1, 1]
    assert cache.get("m", "reference", 0, "d") is None
    assert cache.get("m", "candidate", 1, "d") is None
    assert (cache.hits, cache.misses) == (1, 2)
