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
