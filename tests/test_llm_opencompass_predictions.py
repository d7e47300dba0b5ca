"""Finding failed and empty answers in OpenCompass's prediction files (final, split, checkpoint)."""

from __future__ import annotations

import json

import pytest

from accuracy.errors import InputError
from accuracy.llm.opencompass.predictions import FAILED_PREFIX, check_predictions, classify


def entry(prediction, gold="A"):
    return {"origin_prompt": [{"role": "HUMAN", "prompt": "q"}], "prediction": prediction, "gold": gold}


@pytest.mark.parametrize(
    ("prediction", "kind"),
    [("A", None), (" B\n", None), ("", "empty"), ("  \n", "empty"), (None, "empty"),
     (f"{FAILED_PREFIX}: HTTP 500]", "failed"), (["A", ""], "empty"), ([], "empty"), ("0", None)],
)
def test_classify(prediction, kind):
    assert classify(prediction) == kind


def test_final_predictions_name_failed_and_empty_samples(tmp_path):
    folder = tmp_path / "predictions" / "m"
    folder.mkdir(parents=True)
    data = {"0": entry("A"), "1": entry(""), "2": entry(f"{FAILED_PREFIX}: timeout]"), "10": entry("C")}
    (folder / "add.json").write_text(json.dumps(data))
    report = check_predictions(tmp_path, "m", "add")
    assert (report.total, report.failed, report.empty, report.complete) == (4, ["2"], ["1"], True)
    assert report.invalid == ["1", "2"]
    assert report.describe() == "add: 1 failed request, 1 empty answer"


def test_split_parts_are_numbered_on(tmp_path):
    folder = tmp_path / "predictions" / "m"
    folder.mkdir(parents=True)
    (folder / "add_0.json").write_text(json.dumps({"0": entry("A"), "1": entry("B")}))
    (folder / "add_1.json").write_text(json.dumps({"0": entry(""), "1": entry("D")}))
    (folder / "add_more.json").write_text(json.dumps({"0": entry("")}))  # another dataset: not a part
    report = check_predictions(tmp_path, "m", "add")
    assert report.total == 4 and report.empty == ["2"]


def test_an_interrupted_dataset_reads_its_checkpoint(tmp_path):
    folder = tmp_path / "predictions" / "m"
    folder.mkdir(parents=True)
    lines = [dict(entry("A"), idx=0), dict(entry(""), idx=1)]
    (folder / "tmp_add.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = check_predictions(tmp_path, "m", "add")
    assert (report.total, report.empty, report.complete) == (2, ["1"], False)
    assert "inference did not finish" in report.describe()


def test_no_predictions_at_all(tmp_path):
    report = check_predictions(tmp_path, "m", "add")
    assert report.total == 0 and not report.complete


def test_unreadable_predictions_name_the_file(tmp_path):
    folder = tmp_path / "predictions" / "m"
    folder.mkdir(parents=True)
    (folder / "add.json").write_text("{broken")
    with pytest.raises(InputError, match="add.json: cannot read OpenCompass predictions"):
        check_predictions(tmp_path, "m", "add")


def test_an_accuracy_is_rescored_over_valid_samples_only():
    from accuracy.llm.opencompass.predictions import exclude_invalid
    from accuracy.scores.model import Score

    flags = {"add_0": True, "add_1": False, "add_2": True, "add_3": False}  # add_3 was a failed request
    score = Score("add", "accuracy", 50.0, samples=dict(flags), invalid=["add_3"])
    assert exclude_invalid(score)
    assert score.value == pytest.approx(200 / 3) and "add_3" not in score.samples and score.invalid == ["add_3"]


def test_other_metrics_and_clean_scores_are_left_alone():
    from accuracy.llm.opencompass.predictions import exclude_invalid
    from accuracy.scores.model import Score

    bleu = Score("wmt", "bleu", 31.2, samples={"wmt_0": True, "wmt_1": False}, invalid=["wmt_1"])
    clean = Score("add", "accuracy", 50.0, samples={"add_0": True, "add_1": False})
    assert not exclude_invalid(bleu) and bleu.value == 31.2 and len(bleu.samples) == 2
    assert not exclude_invalid(clean) and clean.value == 50.0


def test_failure_reasons_are_read_back_per_sample(tmp_path):
    folder = tmp_path / "predictions" / "m"
    folder.mkdir(parents=True)
    (folder / "add.json").write_text(json.dumps({
        "0": {"prediction": "B"},
        "1": {"prediction": "[accuracy: request failed: HTTP 400: too long]"},
        "2": {"prediction": "[accuracy: request failed]"},
    }))
    report = check_predictions(tmp_path, "m", "add")
    assert report.failed == ["1", "2"] and report.reasons == {"1": "HTTP 400: too long"}
