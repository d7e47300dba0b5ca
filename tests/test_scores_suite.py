"""Score suites as the gate runs them: a recorded baseline from one tool, a candidate from another."""

import json

import pytest

from accuracy.baselines import record_baseline
from accuracy.config import load_suite
from accuracy.errors import ConfigError
from accuracy.gate import run_suite
from accuracy.scores.readers import read_scores
from tests.scores_writers import lmeval_run, opencompass_run


@pytest.fixture
def mixed(tmp_path):
    lmeval_run(tmp_path / "lm", {"arc_easy": {"metrics": {"acc,none": 0.80, "acc_norm,none": 0.78}}})
    record_baseline(read_scores(tmp_path / "lm"), tmp_path / "gpu.json")
    opencompass_run(tmp_path / "oc", "20260101_000000", {"ARC-e": {"accuracy": 79.4}})
    return tmp_path


def _suite(folder, body):
    path = folder / "s.toml"
    path.write_text('[scores]\ncandidate = "oc"\n[baseline]\npath = "gpu.json"\n' + body)
    return load_suite(path)


def test_names_mapping_in_a_score_suite_judges_a_mixed_pair(mixed):
    result = run_suite(_suite(mixed, '[tolerance]\nrel = "1%"\n[names]\narc_easy = "ARC-e"\n"arc_easy/acc_norm,none" = ""\n'))
    assert result.error is None and result.verdict == "pass"
    assert result.details["counts"] == {"compared": 1, "aligned": 1, "not_compared": 1}
    assert result.details["sources"]["baseline"]["tool"] == "lm-eval"  # kept through the recorded baseline
    assert result.details["sources"]["candidate"]["run"] == "20260101_000000"
    assert "(model npu, opencompass, run 20260101_000000)" in result.details["table"]  # what the gate prints
    json.dumps(result.details)


def test_without_the_mapping_the_other_tools_dataset_is_missing(mixed):
    result = run_suite(_suite(mixed, ""))
    assert result.error is None and result.verdict == "fail"


@pytest.mark.parametrize(
    "body,where",
    [('[names]\n"arc_easy/acc,none" = "ARC-e"\n', "names.arc_easy/acc,none"), ("[tolerance]\nrel = 1\n", "tolerance.rel"),
     # names that can match nothing were silently ignored
     ('[names]\n"arc_easy/" = "ARC-e/accuracy"\n', "names.arc_easy/"), ('[names]\n"/acc,none" = "ARC-e/accuracy"\n', "names./acc"),
     ('[names]\n"" = "ARC-e"\n', "names."), ('[names]\n"arc_easy/acc,none" = "/"\n', "names.arc_easy/acc,none")],
)
def test_bad_names_and_a_bare_rel_of_one_name_the_key(mixed, body, where):
    from accuracy.scores.suite import policy_from_suite

    with pytest.raises(ConfigError) as info:
        policy_from_suite(_suite(mixed, body))
    assert where in str(info.value) and "s.toml" in str(info.value)
