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
        ("dataset,version,metric,mode,m,m\nmmlu,v,acc,gen,47,12\n", "model column 'm' appears twice"),
        ("dataset,version,metric,mode,total_count,m\ngsm8k,v,accuracy,gen,40,75.00 (50/40)\n", "line 2.*more right"),
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


# --- The files users really bring, written by the tools' own writer code (tests/scores_writers.py) ---

from tests.scores_writers import aisbench_summary, gen_details, lmeval_run, opencompass_run, ppl_details


@pytest.fixture(scope="module")
def oc_run(tmp_path_factory):
    """One OpenCompass run: a GEN dataset, two PPL subsets of an `mmlu` summary group, a partial-credit
    dataset (exact-match flags plus a `score` metric), a section header and a dataset without a result."""
    root = tmp_path_factory.mktemp("oc")
    opencompass_run(
        root,
        "20260101_000000",
        {
            "gsm8k": {"accuracy": 75.0, "details": gen_details("gsm8k", [True, True, False, True])},
            "mmlu-a": {"accuracy": 50.0, "details": ppl_details([True, False])},
            "mmlu-b": {"accuracy": 100.0, "details": ppl_details([True, True])},
            "squad": {"accuracy": 50.0, "score": 62.5, "details": gen_details("squad", [True, False])},
        },
        modes={"mmlu-a": "ppl", "mmlu-b": "ppl"},
        groups=[{"name": "mmlu", "subsets": ["mmlu-a", "mmlu-b"]}],
        dataset_abbrs=["--------- Exam ---------", "gsm8k", "mmlu", "mmlu-a", ("squad", "accuracy"), ("squad", "score"), "ceval"],
    )
    return root


def test_ppl_details_typed_object_gives_flags(oc_run):
    # {"type": "PPL", "0": {..., "correct": ...}}: the string under "type" is a label, not a sample.
    assert read_scores(oc_run).get("mmlu-a", "accuracy").samples == {"0": True, "1": False}


def test_flags_belong_to_the_metric_they_reproduce_not_to_partial_credit(oc_run):
    table = read_scores(oc_run)
    assert table.get("squad", "accuracy").samples == {"squad_0": True, "squad_1": False}
    assert table.get("squad", "score").samples is None


def test_group_row_gets_its_subsets_flags_pooled(oc_run):
    mmlu = read_scores(oc_run).get("mmlu", "accuracy")
    assert mmlu.samples == {"mmlu-a/0": True, "mmlu-a/1": False, "mmlu-b/0": True, "mmlu-b/1": True}


def test_section_headers_are_dropped_and_dash_rows_keep_no_made_up_metric(oc_run):
    table = read_scores(oc_run)
    assert not any(s.dataset.startswith("---") for s in table.scores)
    ceval = [s for s in table.scores if s.dataset == "ceval"]
    assert [(s.metric, s.value) for s in ceval] == [("-", None)]


def test_txt_and_md_summaries_read_like_the_csv(oc_run):
    summary = oc_run / "20260101_000000" / "summary"
    from_csv = read_scores(next(summary.glob("*.csv")))
    for suffix in ("txt", "md"):
        other = read_scores(next(summary.glob(f"*.{suffix}")))
        assert [(s.dataset, s.metric, s.value, s.version) for s in other.scores] == [
            (s.dataset, s.metric, s.value, s.version) for s in from_csv.scores
        ]


def test_a_work_dir_whose_only_summary_is_the_txt(tmp_path, oc_run):
    import shutil

    run = tmp_path / "20260101_000000"
    shutil.copytree(oc_run / "20260101_000000", run)
    for path in (run / "summary").glob("*"):
        if path.suffix != ".txt":
            path.unlink()
    table = read_scores(tmp_path)
    assert table.get("gsm8k", "accuracy").value == 75.0 and table.source.endswith(".txt")


def test_newest_run_without_a_summary_is_skipped_and_said(tmp_path, oc_run):
    import shutil

    shutil.copytree(oc_run / "20260101_000000", tmp_path / "20260101_000000")
    opencompass_run(tmp_path, "20260102_000000", {"gsm8k": {"accuracy": 10.0}}, summarize=False)
    table = read_scores(tmp_path)
    assert table.provenance["opencompass_run"] == "20260101_000000"
    assert table.notes == ["newer run 20260102_000000 has no summary (incomplete?): read run 20260101_000000 instead"]
    assert "run 20260101_000000" in table.describe()


def test_lmeval_results_with_filter_metrics_stderr_and_sample_flags(tmp_path):
    lmeval_run(
        tmp_path,
        {
            "gsm8k": {
                "metrics": {
                    "exact_match,strict-match": 0.5,
                    "exact_match_stderr,strict-match": 0.2887,
                    "exact_match,flexible-extract": 0.75,
                    "exact_match_stderr,flexible-extract": "N/A",
                },
                "samples": [{"doc_id": i, "filter": "strict-match", "exact_match": float(f)} for i, f in enumerate([1, 0, 1, 0])]
                + [{"doc_id": i, "filter": "flexible-extract", "exact_match": float(f)} for i, f in enumerate([1, 1, 1, 0])],
            },
            "squad": {"metrics": {"f1,none": 0.62}, "samples": [{"doc_id": 0, "f1": 0.62}]},
        },
    )
    table = read_scores(tmp_path)  # the output folder: OUT/<model>/results_<date>.json
    assert table.tool == "lm-eval" and table.model == "org/tiny-gpu"
    strict = table.get("gsm8k", "exact_match,strict-match")
    assert strict.value == pytest.approx(50.0) and strict.stderr == pytest.approx(28.87)
    assert strict.samples == {"0": True, "1": False, "2": True, "3": False}
    flexible = table.get("gsm8k", "exact_match,flexible-extract")
    assert flexible.stderr is None and flexible.samples == {"0": True, "1": True, "2": True, "3": False}
    assert table.get("squad", "f1,none").samples is None  # partial credit: no flags


def test_lmeval_group_pools_its_tasks_flags(tmp_path):
    def task(flags):
        return {"metrics": {"acc,none": sum(flags) / len(flags)}, "samples": [{"doc_id": i, "acc": float(f)} for i, f in enumerate(flags)]}

    path = lmeval_run(
        tmp_path,
        {"mmlu": {"metrics": {"acc,none": 0.75}}, "mmlu_a": task([1, 0]), "mmlu_b": task([1, 1])},
        groups={"mmlu": ["mmlu_a", "mmlu_b"]},
    )
    mmlu = read_scores(path).get("mmlu", "acc,none")
    assert mmlu.samples == {"mmlu_a/0": True, "mmlu_a/1": False, "mmlu_b/0": True, "mmlu_b/1": True}


def test_a_json_that_is_neither_says_what_it_accepts(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"accuracy": 47}')
    with pytest.raises(InputError, match="lm-evaluation-harness results"):
        read_scores(path)


def test_aisbench_total_count_summary(tmp_path):
    path = aisbench_summary(
        tmp_path / "summary_20260101_000000.csv",
        [("gsm8k", "1d7fe4", "accuracy", "gen", "40", "75.00 (30/40)"), ("ceval", "-", "-", "-", "-", "-")],
    )
    table = read_scores(path)
    gsm8k = table.get("gsm8k", "accuracy")
    assert (gsm8k.value, gsm8k.counts, table.model, table.tool) == (75.0, (30, 40), "vllm-api-general-chat", "aisbench")
    two = aisbench_summary(tmp_path / "two.csv", [("gsm8k", "v", "accuracy", "gen", "40", "75.00 (30/40)", "70.00 (28/40)")], models=("a", "b"))
    with pytest.raises(InputError, match=r"several model columns \(a, b\)"):
        read_scores(two)
    assert read_scores(two, model="b").get("gsm8k", "accuracy").counts == (28, 40)
