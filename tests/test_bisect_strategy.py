"""The swap search apart from any model: driven by fake pass/fail functions."""

import pytest

from accuracy.bisect.strategy import SwapSearch, search

MODELS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"]


def test_fake_single_culprit_found_by_single_swaps_only():
    marker = search(MODELS, lambda combo: "unet" not in combo)
    assert marker.culprits == ["unet"]
    assert marker.smallest_failing == ("unet",)
    assert all(len(combo) == 1 for combo in marker.tried)


def test_fake_two_culprits_both_reported_in_pipeline_order():
    marker = search(MODELS, lambda combo: not ({"vae_decoder", "text_encoder"} & set(combo)))
    assert marker.culprits == ["text_encoder", "vae_decoder"]


def test_fake_no_single_fails_finds_smallest_failing_pair_and_stops_there():
    fails_with = {"unet", "vae_decoder"}
    marker = search(MODELS, lambda combo: not fails_with <= set(combo))
    assert marker.culprits == []
    assert marker.smallest_failing == ("unet", "vae_decoder")
    assert max(len(c) for c in marker.tried) == 2
    assert list(marker.tried)[-1] == ("unet", "vae_decoder")  # stopped at the first failing pair


def test_fake_only_all_models_together_fail():
    marker = search(["a", "b", "c"], lambda combo: len(combo) < 3)
    assert marker.smallest_failing == ("a", "b", "c")
    assert ("a", "b", "c") not in marker.tried  # known to fail, not re-run
    assert len(marker.tried) == 3 + 3


def test_fake_all_candidate_passing_tries_singles_only():
    marker = search(MODELS, lambda combo: True, all_fails=False)
    assert marker.culprits == [] and marker.smallest_failing is None
    assert len(marker.tried) == len(MODELS)


def test_fake_answers_drive_the_marker_protocol_remaining_and_stop():
    marker = SwapSearch(["a", "b", "c"])
    assert marker.remaining() == 3 + 3  # singles, then the pairs that may follow
    marker.step(True)
    assert marker.current == ("b",) and marker.remaining() == 2 + 3
    marker.step(False)
    marker.step(True)
    assert marker.stop() and marker.remaining() == 0 and marker.culprits == ["b"]
    with pytest.raises(RuntimeError):
        marker.step(True)


def test_empty_pipeline_stops_at_once():
    marker = SwapSearch([])
    assert marker.stop() and marker.current is None
