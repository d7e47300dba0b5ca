"""``accuracy check`` end to end as a user types it: exit codes, the table, --json."""

import json
import subprocess
import sys

import pytest

from accuracy.cli import main
from tests.scores_data import summary_csv, workdir


@pytest.fixture
def guide(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "cd1ae1", "accuracy", "gen", "47.00")])
    npu = summary_csv(tmp_path / "npu.csv", [("mmlu", "cd1ae1", "accuracy", "gen", "46.60")])
    return gpu, npu


def test_guide_numbers_pass_with_json(guide, tmp_path, capsys):
    gpu, npu = guide
    out = tmp_path / "r.json"
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mmlu" in text and "-0.85%" in text and "aligned" in text
    result = json.loads(out.read_text())
    assert result["verdict"] == "pass"
    assert result["checks"][0]["rel_diff"] == pytest.approx(-0.0085106, abs=1e-6)


def test_beyond_tolerance_exits_1(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    npu = summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "46.00")])
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu)]) == 1
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--rel-tol", "0.03"]) == 0
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--abs-tol", "1"]) == 0


def test_improvement_needs_the_flag(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    npu = summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "49.00")])
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu)]) == 1
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--allow-improvement"]) == 0


def test_version_mismatch_is_exit_2_unless_ignored(tmp_path, capsys):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "aaa111", "accuracy", "gen", "47.00")])
    npu = summary_csv(tmp_path / "npu.csv", [("mmlu", "bbb222", "accuracy", "gen", "47.00")])
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu)]) == 2
    assert "--ignore-version" in capsys.readouterr().err
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--ignore-version"]) == 0


def test_workdir_against_csv_with_model_pick(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47", "30")], models=("gpu", "other"))
    workdir(tmp_path / "npu_out", "20260101_000000", [("mmlu", "v", "accuracy", "gen", "46.8")], model="npu")
    assert main(["check", "--baseline", str(gpu), "--baseline-model", "gpu", "--candidate", str(tmp_path / "npu_out")]) == 0


def test_suite_tolerances_per_dataset(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "50"), ("gsm8k", "v", "accuracy", "gen", "50")])
    npu = summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "49.6"), ("gsm8k", "v", "accuracy", "gen", "49")])
    suite = tmp_path / "s.toml"
    suite.write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerance.datasets.gsm8k]\nrel = 0.02\n')
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu)]) == 1
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--suite", str(suite)]) == 0


@pytest.mark.parametrize("content", ["", "not,a,summary\n", "dataset,version,metric,mode,m\nmmlu,v,accuracy,gen,x\n"])
def test_bad_input_is_one_line_and_exit_2_without_traceback(tmp_path, content):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "accuracy", "check", "--baseline", str(gpu), "--candidate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "bad.csv" in proc.stderr


def test_usage_error_is_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--baseline", "x.csv"])
    assert info.value.code == 2


def test_suite_and_tolerance_flags_do_not_mix_and_nan_is_refused(tmp_path, capsys):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    suite = tmp_path / "s.toml"
    suite.write_text('[scores]\ncandidate = "gpu.csv"\n[baseline]\npath = "b.json"\n')
    assert main(["check", "--baseline", str(gpu), "--candidate", str(gpu), "--suite", str(suite), "--rel-tol", "0.5"]) == 2
    assert "--rel-tol and --suite" in capsys.readouterr().err
    assert main(["check", "--baseline", str(gpu), "--candidate", str(gpu), "--rel-tol", "nan"]) == 2


def test_json_that_cannot_be_written_is_exit_2(tmp_path, capsys):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    assert main(["check", "--baseline", str(gpu), "--candidate", str(gpu), "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["check", "--baseline", str(gpu), "--candidate", str(gpu), "--json", "/proc/nope/r.json"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_rel_tol_as_percentage_and_a_bare_one_is_refused_with_a_hint(tmp_path, capsys):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    npu = summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "46.20")])  # -1.70 %
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--rel-tol", "2%"]) == 0
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--rel-tol", "0.02"]) == 0
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--rel-tol", "1%"]) == 1
    capsys.readouterr()
    assert main(["check", "--baseline", str(gpu), "--candidate", str(npu), "--rel-tol", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1%" in err and "0.01" in err


def test_counts_only_compared_rows_and_says_which_run_was_read(tmp_path, capsys):
    from tests.scores_writers import opencompass_run

    gpu = summary_csv(
        tmp_path / "gpu.csv",
        [("--------- Exam ---------", "-", "-", "-", "-"), ("gsm8k", "v", "accuracy", "gen", "75.00"),
         ("ceval", "-", "-", "-", "-"), ("mmlu", "v", "accuracy", "gen", "47.00")],
    )
    work = tmp_path / "npu_out"
    opencompass_run(work, "20260101_000000", {"gsm8k": {"accuracy": 75.0}, "mmlu": {"accuracy": 46.8}, "ceval": {"accuracy": 40.0}})
    opencompass_run(work, "20260102_000000", {"gsm8k": {"accuracy": 1.0}}, summarize=False)  # killed before its summary
    out = tmp_path / "r.json"
    assert main(["check", "--baseline", str(gpu), "--candidate", str(work), "--ignore-version", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PASS: 2 of 2 compared checks aligned; not compared (1): ceval/accuracy" in text
    assert f"baseline:  {gpu} (model m, opencompass)" in text
    assert "(model npu, opencompass, run 20260101_000000)" in text
    assert "newer run 20260102_000000 has no summary (incomplete?): read run 20260101_000000 instead" in text
    result = json.loads(out.read_text())
    assert result["counts"] == {"compared": 2, "aligned": 2, "not_compared": 1}
    assert result["candidate"]["run"] == "20260101_000000" and result["candidate"]["source"].endswith(".csv")
    assert result["candidate"]["notes"][0].startswith("newer run 20260102_000000")
    assert result["baseline"] == {"source": str(gpu), "model": "m", "tool": "opencompass"}
    ceval = next(c for c in result["checks"] if c["dataset"] == "ceval")
    assert ceval["metric"] == "accuracy" and ceval["status"] == "skipped"


def test_aisbench_without_model_lists_only_model_columns(tmp_path, capsys):
    from tests.scores_writers import aisbench_summary

    path = aisbench_summary(tmp_path / "ais.csv", [("gsm8k", "v", "accuracy", "gen", "40", "75.00 (30/40)", "72.50 (29/40)")],
                            models=("gpu", "npu"))
    assert main(["check", "--baseline", str(path), "--candidate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "(gpu, npu)" in err and "total_count" not in err
    assert main(["check", "--baseline", str(path), "--baseline-model", "gpu", "--candidate", str(path), "--model", "npu",
                 "--rel-tol", "4%"]) == 0


def test_lmeval_baseline_against_opencompass_candidate_with_a_names_mapping(tmp_path, capsys):
    """The README's example: a GPU baseline from lm-eval, the NPU run from OpenCompass."""
    from tests.scores_writers import gen_details, lmeval_run, opencompass_run

    flags_gpu = [i < 30 for i in range(40)]
    flags_npu = [i < 29 for i in range(40)]
    lmeval_run(
        tmp_path / "lm_eval_out",
        {
            "gsm8k": {
                "metrics": {"exact_match,strict-match": 0.75, "exact_match_stderr,strict-match": 0.0693,
                            "exact_match,flexible-extract": 0.775, "exact_match_stderr,flexible-extract": 0.0669},
                "samples": [{"doc_id": i, "filter": "strict-match", "exact_match": float(f)} for i, f in enumerate(flags_gpu)],
            },
            "arc_easy": {"metrics": {"acc,none": 0.80, "acc_stderr,none": 0.02, "acc_norm,none": 0.78}},
        },
    )
    opencompass_run(
        tmp_path / "oc_out",
        "20260101_000000",
        {"gsm8k": {"accuracy": 72.5, "details": gen_details("gsm8k", flags_npu)}, "ARC-e": {"accuracy": 80.2}},
    )
    suite = tmp_path / "mixed.toml"
    suite.write_text(
        '[scores]\ncandidate = "oc_out"\n[baseline]\npath = "lm_eval_out"\n'
        '[tolerance]\nrel = "4%"\nrequire_significance = true\n'
        '[names]\n"gsm8k/exact_match,strict-match" = "gsm8k/accuracy"\n"gsm8k/exact_match,flexible-extract" = ""\n'
        'arc_easy = "ARC-e"\n"arc_easy/acc_norm,none" = ""\n'
    )
    out = tmp_path / "r.json"
    args = ["check", "--baseline", str(tmp_path / "lm_eval_out"), "--candidate", str(tmp_path / "oc_out"), "--json", str(out)]
    assert main(args) == 1  # without the mapping: flexible-extract, acc_norm and ARC-e cannot be matched
    capsys.readouterr()
    assert main([*args, "--suite", str(suite)]) == 0
    text = capsys.readouterr().out
    assert "(model org/tiny-gpu, lm-eval, run" in text
    assert "PASS: 2 of 2 compared checks aligned; not compared (2): gsm8k/exact_match,flexible-extract, arc_easy/acc_norm,none" in text
    result = json.loads(out.read_text())
    checks = {(c["dataset"], c["metric"]): c for c in result["checks"]}
    strict = checks[("gsm8k", "exact_match,strict-match")]
    assert strict["passed"] and strict["candidate_name"] == "gsm8k/accuracy"
    assert strict["flipped"]["paired_by"] == "number" and strict["flipped"]["common"] == 40
    assert checks[("arc_easy", "acc,none")]["passed"] and checks[("arc_easy", "acc,none")]["candidate_name"] == "ARC-e/accuracy"
    assert checks[("arc_easy", "acc_norm,none")]["status"] == "skipped"
    assert result["baseline"]["tool"] == "lm-eval" and result["candidate"]["tool"] == "opencompass"


def test_check_points_to_the_suite_whose_tolerances_the_gate_uses(monkeypatch, capsys):
    """The guide's data: gsm8k moves 1.54 %; the suite allows 2 % for it. ``check`` alone fails, says
    which suite judges this baseline otherwise, and with that --suite agrees with ``accuracy gate``."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    argv = ["check", "--baseline", "baselines/guide-scores.json",
            "--candidate", "suites/guide-scores/results/summary_npu.csv"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert ("note: suites/guide-scores/suite.toml judges this baseline with its own tolerances "
            "(default ±1 %, gsm8k ±2 %)") in out and "add --suite suites/guide-scores/suite.toml" in out
    assert main([*argv, "--suite", "suites/guide-scores/suite.toml"]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["gate", "suites/guide-scores/suite.toml"]) == 0
