"""Reading OpenCompass summaries, work dirs and our JSON; bad files name the file and line."""

import json

import pytest

from accuracy.errors import InputError
from accuracy.scores.readers import read_scores
from tests.scores_data import summary_csv, workdir


def test_summary_csv_with_dash_cell(tmp_path):
    path = summary_csv(tmp_path / "s.csv", [("mmlu", "abc123", "accuracy", "gen", "47.00"), ("ceval", "def456", "accuracy", "gen", "-")])
    table = read_scores(path)
    assert table.model == "m"
    assert table.get("mmlu", "accuracy").value == 47.0 and table.get("mmlu", "accuracy").version == "abc123"
    assert table.get("ceval", "accuracy").value is None


def test_several_model_columns_need_a_pick(tmp_path):
    path = summary_csv(tmp_path / "s.csv", [("mmlu", "v", "accuracy", "gen", "47", "46.6")], models=("gpu", "npu"))
    with pytest.raises(InputError, match="several model columns \\(gpu, npu\\)"):
        read_scores(path)
    assert read_scores(path, model="npu").get("mmlu", "accuracy").value == 46.6
    with pytest.raises(InputError, match="no model column 'tpu'"):
        read_scores(path, model="tpu")


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "file is empty"),
        ("a,b,c\n1,2,3\n", "not an OpenCompass summary"),
        ("dataset,version,metric,mode,m\n", "no scores"),
        ("dataset,version,metric,mode,m\nmmlu,v,accuracy,gen,47\nceval,v,accuracy,gen,abc\n", "line 3"),
        ("dataset,version,metric,mode,m\nmmlu,v,accuracy,gen\n", "line 2"),
        ("dataset,version,metric,mode,m\nmmlu,v,acc,gen,1\nmmlu,v,acc,gen,2\n", "appears twice"),
    ],
)
def test_malformed_summaries_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_scores(path)
    assert "bad.csv" in str(info.value)


def test_workdir_takes_the_newest_run_and_its_sample_flags(tmp_path):
    workdir(tmp_path, "20260101_000000", [("mmlu", "v", "accuracy", "gen", "10.00")])
    workdir(tmp_path, "20260102_000000", [("mmlu", "v", "accuracy", "gen", "75.00")], details={"mmlu": [True, True, False, True]})
    table = read_scores(tmp_path)
    score = table.get("mmlu", "accuracy")
    assert score.value == 75.0
    assert score.samples == {"mmlu_0": True, "mmlu_1": True, "mmlu_2": False, "mmlu_3": True}
    assert table.provenance["opencompass_run"] == "20260102_000000"


def test_a_folder_that_is_not_a_workdir(tmp_path):
    with pytest.raises(InputError, match="not an OpenCompass work dir"):
        read_scores(tmp_path)


def test_json_round_trip_and_errors(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"model": "m", "scores": [{"dataset": "mmlu", "metric": "accuracy", "value": 47, "samples": {"a": True}}]}))
    score = read_scores(path).get("mmlu", "accuracy")
    assert score.value == 47.0 and score.samples == {"a": True}
    path.write_text('{"scores": [{"dataset": "mmlu", "metric": "accuracy", "value": "high"}]}')
    with pytest.raises(InputError, match=r"scores\[0\]"):
        read_scores(path)
    path.write_text('{"scores": [\n  {"dataset": }]}')
    with pytest.raises(InputError, match="line 2"):
        read_scores(path)
    with pytest.raises(InputError, match="not found"):
        read_scores(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "item,where",
    [
        ({"dataset": "mmlu", "metric": "acc", "value": 1, "invalid": 5}, "scores[0]"),
        ({"dataset": "mmlu", "metric": "acc", "value": 1, "version": 3}, "scores[0]"),
    ],
)
def test_json_fields_of_the_wrong_type_name_the_row(tmp_path, item, where):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"model": "m", "scores": [item]}))
    with pytest.raises(InputError) as info:
        read_scores(path)
    assert where in str(info.value) and "r.json" in str(info.value)
