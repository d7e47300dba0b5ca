"""``accuracy gate`` on score suites: exit codes, JSON, JUnit, and agreement with ``pytest suites/``."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from accuracy.cli import main
from tests.scores_data import summary_csv

pytest_plugins = ["pytester"]


def make_suite(folder: Path, name: str, candidate_value: str, *, baseline_value: str = "47.00", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    summary_csv(folder / "npu.csv", [("mmlu", "v", "accuracy", "gen", candidate_value), ("ceval", "v", "accuracy", "gen", "40.00")])
    gpu = summary_csv(folder / "gpu.csv", [("mmlu", "v", "accuracy", "gen", baseline_value), ("ceval", "v", "accuracy", "gen", "40.00")])
    assert main(["baseline", "record", str(gpu), "--out", str(folder / f"{name}.json")]) == 0
    suite = folder / f"{name}.toml"
    suite.write_text(
        f'[suite]\nname = "{name}"\n[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "{name}.json"\n{extra}'
    )
    return suite


def test_gate_passes_fails_and_writes_json_and_junit(tmp_path, capsys):
    make_suite(tmp_path / "suites" / "a", "aligned", "46.60")
    make_suite(tmp_path / "suites" / "b", "drifted", "45.00")
    report, junit = tmp_path / "gate.json", tmp_path / "junit.xml"
    code = main(["gate", str(tmp_path / "suites"), "--json", str(report), "--junit", str(junit)])
    assert code == 1
    data = json.loads(report.read_text())
    assert data["verdict"] == "fail"
    assert {s["suite"]: s["verdict"] for s in data["suites"]} == {"aligned": "pass", "drifted": "fail"}
    cases = ET.parse(junit).getroot().findall(".//testcase")
    failures = [c.get("name") for c in cases if c.find("failure") is not None]
    assert len(cases) == 4 and failures == ["mmlu/accuracy"]
    assert main(["gate", str(tmp_path / "suites" / "a")]) == 0


@pytest.mark.parametrize(
    "body,where",
    [
        ('[scores]\ncandidate = "npu.csv"\n', "[baseline]"),
        ('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerance]\nrel = "one"\n', "tolerance.rel"),
        ('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerance]\nrell = 0.1\n', "tolerance.rell"),
        ('[scores]\ncandidate = "missing.csv"\n[baseline]\npath = "b.json"\n', "scores.candidate"),
        ("[scores\n", "malformed TOML"),
    ],
)
def test_bad_suites_exit_2_and_name_file_and_key(tmp_path, capsys, body, where):
    summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    main(["baseline", "record", str(tmp_path / "gpu.csv"), "--out", str(tmp_path / "b.json")])
    suite = tmp_path / "bad.toml"
    suite.write_text(body)
    capsys.readouterr()
    assert main(["gate", str(suite)]) == 2
    out = capsys.readouterr().out
    assert "bad.toml" in out and where in out


def test_missing_baseline_is_exit_2_and_says_how_to_record(tmp_path, capsys):
    summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    (tmp_path / "s.toml").write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n')
    assert main(["gate", str(tmp_path / "s.toml")]) == 2
    assert "accuracy baseline record" in capsys.readouterr().out


def test_pytest_and_gate_agree_on_the_same_suites(tmp_path, pytester):
    suites = pytester.path / "suites"
    make_suite(suites / "a", "aligned", "46.60")
    make_suite(suites / "b", "drifted", "45.00")
    make_suite(suites / "c", "tolerant", "45.00", extra="[tolerance]\nrel = 0.05\n")
    gate_json = tmp_path / "gate.json"
    main(["gate", str(suites), "--json", str(gate_json)])
    gate = {
        f"{s['suite']}::{c['name']}": c["passed"] for s in json.loads(gate_json.read_text())["suites"] for c in s["checks"]
    }
    result = pytester.runpytest("suites", "-rA")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == sum(gate.values()) and outcomes["failed"] == len(gate) - sum(gate.values())
    result.stdout.fnmatch_lines(["*FAILED*drifted.toml::mmlu/accuracy*"])
    # the failure message is the table
    result.stdout.fnmatch_lines(["*mmlu*accuracy*47.00*45.00*NOT ALIGNED*"])


def test_only_the_update_flag_writes_baselines_in_pytest(pytester):
    suites = pytester.path / "suites"
    make_suite(suites / "a", "s", "45.00")
    baseline = suites / "a" / "s.json"
    before = baseline.read_bytes()
    pytester.runpytest("suites").assert_outcomes(passed=1, failed=1)
    assert baseline.read_bytes() == before
    pytester.runpytest("suites", "--accuracy-update-baselines").assert_outcomes(passed=2)
    assert json.loads(baseline.read_text())["scores"][0]["value"] == 45.0
    pytester.runpytest("suites").assert_outcomes(passed=2)


def test_shipped_guide_suite_passes(capsys):
    root = Path(__file__).resolve().parent.parent
    assert main(["gate", str(root / "suites" / "guide-scores")]) == 0
    assert "-0.85%" in capsys.readouterr().out


def test_manual_suites_run_only_when_named(tmp_path, pytester, capsys):
    suites = pytester.path / "suites"
    make_suite(suites / "a", "aligned", "46.60")
    manual = suites / "live" / "live.toml"
    manual.parent.mkdir(parents=True)
    # a suite whose candidate needs something live: here, a result file that does not exist yet
    manual.write_text('[suite]\nname = "live"\nmanual = true\n[scores]\ncandidate = "later.csv"\n[baseline]\npath = "b.json"\n')
    assert main(["gate", str(suites)]) == 0
    assert "live" not in capsys.readouterr().out
    assert main(["gate", str(manual)]) == 2
    pytester.runpytest("suites").assert_outcomes(passed=2)
    pytester.runpytest(str(manual)).assert_outcomes(failed=1)


@pytest.mark.parametrize("tolerance,key", [("max_invalid = -1", "tolerance.max_invalid"), ("alpha = 1.5", "tolerance.alpha")])
def test_tolerance_bounds_are_checked(tmp_path, capsys, tolerance, key):
    summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "47")])
    main(["baseline", "record", str(tmp_path / "npu.csv"), "--out", str(tmp_path / "b.json")])
    (tmp_path / "s.toml").write_text(f'[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerance]\n{tolerance}\n')
    capsys.readouterr()
    assert main(["gate", str(tmp_path / "s.toml")]) == 2
    assert key in capsys.readouterr().out


def test_gate_counts_only_the_rows_it_compared(tmp_path, capsys):
    # ceval has no GPU score ('-'): never compared, so never counted as a passing check
    make_suite(tmp_path / "s", "partial", "46.60")
    summary_csv(tmp_path / "s" / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00"), ("ceval", "v", "accuracy", "gen", "-")])
    assert main(["baseline", "record", str(tmp_path / "s" / "gpu.csv"), "--out", str(tmp_path / "s" / "partial.json"),
                 "--force"]) == 0
    capsys.readouterr()
    assert main(["gate", str(tmp_path / "s" / "partial.toml")]) == 0
    out = capsys.readouterr().out
    assert "1/1 compared checks pass, 1 not compared" in out
