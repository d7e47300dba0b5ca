"""One comparison rule per kind of output: what a pipeline may return, text with CER/WER, per-output
criteria, the worst output by name, and bounds that cannot apply to an output's kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from accuracy.compare.criteria import Criteria, compare_output, criteria_problems, judge_outputs
from accuracy.compare.outputs import UnsupportedOutput, as_output
from accuracy.compare.text import character_error_rate, compare_text, word_error_rate


@pytest.mark.parametrize("value, dtype, shape", [
    ("hello", "U", ()), (["a", "bc"], "U", (2,)), (3, "i", ()), (2.5, "f", ()), (True, "b", ()),
    (np.float16(1), "f", ()), ([[1, 2], [3, 4]], "i", (2, 2)), (np.array(["x", "yz"], dtype=object), "U", (2,)),
    (np.array([b"ab", b"c"]), "U", (2,)), (b"bytes", "U", ()),
    (Image.new("RGB", (8, 6)), "u", (6, 8, 3)),  # a PIL image: __array_interface__, no __array__
    (np.array([1.5, 2.0], dtype=object), "f", (2,)), ([np.array(["a"]), np.array(["b"])], "U", (2, 1)),
])
def test_supported_values_become_arrays_of_a_comparable_kind(value, dtype, shape):
    array = as_output(value)
    assert array.dtype.kind == dtype and array.shape == shape


@pytest.mark.parametrize("value, words", [
    (None, "is None"), ({"a": 1}, "is a dict"), ([1, [2, 3]], "ragged list"), (1 + 2j, "is a complex"),
    (object(), "is a object"), (np.array(["x", 1], dtype=object), "mixes or nests values"),
    (np.array([1 + 1j]), "holds complex128 values"),
    (["a", 1], "mixes text with int values"),  # numpy made it ["a", "1"]: 1 would equal "1"
    (torch.ones(2, dtype=torch.bfloat16), "Tensor of torch.bfloat16"),
])
def test_unsupported_values_say_what_they_are(value, words):
    with pytest.raises(UnsupportedOutput, match=words):
        as_output(value)


def test_error_rates_come_from_edit_distances():
    assert character_error_rate(["kitten"], ["sitting"]) == pytest.approx(3 / 6)
    assert word_error_rate(["the cat sat"], ["the cat sat down"]) == pytest.approx(1 / 3)
    assert character_error_rate(["ab", "cd"], ["ab", "cx"]) == pytest.approx(1 / 4)  # summed over lines


def test_text_is_exact_unless_a_rate_bound_is_given():
    strict = compare_text(["total 42.00"], ["total 42.0O"])
    assert not strict.passed and strict.mismatches == 1 and strict.first_index == 0
    assert "'total 42.00' -> 'total 42.0O'" in strict.failures[0] and strict.cer == pytest.approx(1 / 11)
    assert compare_text(["total 42.00"], ["total 42.0O"], cer_max=0.1).passed
    assert not compare_text(["total 42.00"], ["total 42.0O"], cer_max=0.05).passed
    assert not compare_text(["a b c"], ["a x c"], wer_max=0.3).passed


def test_a_different_line_count_fails_and_still_shows_the_rates():
    result = compare_text(["one", "two", "three", "four", "five"], ["one", "two", "three"], cer_max=1.0)
    assert not result.passed and result.lines_expected == 5 and result.lines_obtained == 3
    assert result.failures[0].startswith("3 lines, the reference has 5")
    assert 0 < result.cer < 1  # over the joined text, nothing cut off


def test_judge_text_output_reports_cer_and_wer():
    result = judge_outputs({"text": ["adeea", "ehaee"]}, {"text": ["aceea", "ehaee"]},
                           criteria=Criteria(cer_max=0.05))
    record = result.outputs["text"]
    assert not result.passed and record["kind"] == "text" and record["cer"] == pytest.approx(0.1)
    assert result.failures == ("text: cer 0.1 > 0.05",)


def test_per_output_criteria_replace_the_default_for_that_output_only():
    boxes = np.array([[10.0, 20.0, 300.0, 80.0]])
    scores = np.array([0.91, 0.42])
    criteria = Criteria(max_abs=1e-3, per_output={"boxes": Criteria(cosine_min=None, max_abs=0.5, named=("max_abs",))})
    result = judge_outputs({"boxes": boxes, "scores": scores},
                           {"boxes": boxes + 0.25, "scores": scores + 0.01}, criteria=criteria)
    assert result.outputs["boxes"]["passed"] and not result.outputs["scores"]["passed"]
    assert [f.split(":")[0] for f in result.failures] == ["scores"]
    assert result.worst_output()["output"] == "scores"


def test_a_failing_judgement_never_heads_with_a_passing_output():
    ref = {"image": np.ones((8, 8, 3)), "count": np.array(5)}
    result = judge_outputs(ref, {"image": ref["image"].copy(), "count": np.array(4)})
    worst = result.worst_output()
    assert not result.passed and worst["output"] == "count" and not worst["passed"]
    assert worst["text"].startswith("1 of 1 values differ")
    ok = judge_outputs(ref, {"image": ref["image"] * 1.001, "count": np.array(5)}).worst_output()
    assert ok["passed"] and ok["output"] == "image" and ok["text"].startswith("cosine")


def test_image_bounds_on_8_bit_pictures_judge_them_as_images_not_exactly():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    moved = np.clip(picture.astype(int) + 1, 0, 255).astype(np.uint8)
    assert not compare_output(picture, moved)["passed"]  # integers: exact by default
    judged = compare_output(picture, moved, criteria=Criteria(psnr_min=40, cosine_min=None))
    assert judged["passed"] and judged["psnr"] > 40 and judged["data_range"] == 255


def test_non_finite_image_values_that_agree_keep_ssim_and_psnr_finite():
    ref = np.random.default_rng(1).random((16, 16, 3))
    ref[0, 0, 0] = np.inf
    record = compare_output(ref, ref.copy(), criteria=Criteria(ssim_min=0.99, psnr_min=30))
    assert record["passed"] and record["ssim"] == pytest.approx(1.0) and not np.isnan(record["psnr"])


def test_criteria_problems_name_unknown_outputs_and_bounds_of_another_kind():
    criteria = Criteria(per_output={"txt": Criteria(cer_max=0.1, named=("cer_max",)),
                                    "boxes": Criteria(cer_max=0.1, named=("cer_max",)),
                                    "ids": Criteria(max_abs=1.0, named=("max_abs",)),
                                    "count": Criteria(exact=True, named=("exact",))})
    problems = dict(criteria_problems(criteria, {"text": ["a"], "boxes": np.ones(4), "ids": np.ones(2, np.int64),
                                                  "count": np.array(3)}))
    assert "no output 'txt'" in problems["outputs.txt"] and "(it returns text, boxes, ids, count)" in problems["outputs.txt"]
    assert "a float output" in problems["outputs.boxes.cer_max"]
    assert "an integer output" not in problems["outputs.ids.max_abs"] and "integer output" in problems["outputs.ids.max_abs"]
    assert "outputs.count" not in problems and "outputs.count.exact" not in problems


def test_image_bounds_on_a_wide_integer_output_are_a_config_problem_not_silently_dropped():
    criteria = Criteria(per_output={"mask": Criteria(ssim_min=0.9, named=("ssim_min",)),
                                    "photo": Criteria(ssim_min=0.9, named=("ssim_min",))})
    problems = dict(criteria_problems(criteria, {"mask": np.zeros((8, 8, 1), np.int64),
                                                  "photo": np.zeros((8, 8, 3), np.uint8)}))
    assert "ssim_min does not apply to 'mask'" in problems["outputs.mask.ssim_min"]
    assert "outputs.photo.ssim_min" not in problems
