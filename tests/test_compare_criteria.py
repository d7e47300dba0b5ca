"""Judging pipeline outputs against a suite's [compare]: tensor bounds and image bounds."""

from __future__ import annotations

import numpy as np

from accuracy.compare.criteria import Criteria, judge_outputs


def image(seed=0):
    return np.random.default_rng(seed).random((1, 16, 16, 3)).astype(np.float32)


def test_identical_outputs_pass_with_infinite_psnr():
    ref = {"image": image()}
    result = judge_outputs(ref, {"image": ref["image"].copy()}, criteria=Criteria(ssim_min=0.99, psnr_min=30))
    assert result.passed and result.verdict == "pass"
    assert result.outputs["image"]["psnr"] == float("inf") and result.outputs["image"]["ssim"] == 1.0


def test_image_bounds_fail_where_cosine_alone_would_pass():
    ref = image()
    moved = np.clip(ref + np.random.default_rng(1).normal(0, 0.05, ref.shape).astype(np.float32), 0, 1)
    assert judge_outputs({"image": ref}, {"image": moved}).passed  # cosine 0.99 passes
    strict = judge_outputs({"image": ref}, {"image": moved}, criteria=Criteria(psnr_min=40))
    assert not strict.passed and "psnr" in strict.failures[0] and strict.outputs["image"]["psnr"] < 40


def test_non_finite_output_is_its_own_verdict():
    ref = {"y": np.ones(4)}
    result = judge_outputs(ref, {"y": np.array([1, np.inf, 1, 1.0])})
    assert not result.passed and result.verdict == "non-finite"


def test_missing_and_misshapen_outputs_fail_with_a_message():
    ref = {"a": np.ones(3), "b": np.ones(3)}
    result = judge_outputs(ref, {"a": np.ones(4)})
    assert not result.passed
    assert any("shape" in f for f in result.failures) and any("missing" in f for f in result.failures)


def test_outputs_limits_what_is_judged():
    ref = {"a": np.ones(3), "b": np.ones(3)}
    result = judge_outputs(ref, {"a": np.ones(3), "b": -np.ones(3)}, criteria=Criteria(outputs=("a",)))
    assert result.passed and list(result.outputs) == ["a"]


def test_worst_metric_over_outputs():
    ref = {"a": np.arange(1, 5.0), "b": np.arange(1, 5.0)}
    result = judge_outputs(ref, {"a": ref["a"], "b": ref["b"] * 1.5}, criteria=Criteria(rel_l2_max=0.1))
    assert result.worst("rel_l2") > 0.4 and result.worst("cosine") > 0.999


def test_a_wide_integer_image_shaped_output_stays_exact_under_image_bounds():
    mask = np.zeros((1, 16, 16, 1), np.int64)
    moved = mask.copy()
    moved[0, 3, 3, 0] = 7
    judgement = judge_outputs({"mask": mask}, {"mask": moved}, criteria=Criteria(ssim_min=0.9, psnr_min=30))
    assert not judgement.passed and "1 of 256 values differ" in judgement.failures[0]
    picture = np.zeros((16, 16, 3), np.uint8)
    assert judge_outputs({"p": picture}, {"p": picture + 1}, criteria=Criteria(ssim_min=0.5)).passed
