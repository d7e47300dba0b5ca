"""A folder run skips a suite whose backend's optional package is missing (visibly, with the install
hint, like pytest's importorskip) and still gates the rest; a suite named explicitly is exit 2.
``accuracy bisect`` refuses such a suite before any model runs. The package is made unavailable the
standard way: ``sys.modules[name] = None`` makes ``import`` raise and ``find_spec`` return None."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from accuracy.cli import main
from tests.fixtures.tiny_sd import SUITE, chain_pipeline
from tests.test_gate import make_suite

pytest_plugins = ["pytester"]

HIDE_MINDSPORE = 'import sys\nsys.modules["mindspore"] = None  # as if the mindspore extra were not installed\n'


def _suites(root: Path) -> tuple[Path, Path]:
    """A passing score suite and a pipeline suite whose candidate runs on the ``mindspore`` backend."""
    make_suite(root / "scores", "aligned", "46.60")
    pipeline = chain_pipeline(root / "mindir", hazard=False,
                              suite_text=SUITE.replace('backend = "onnxruntime-fp16"', 'backend = "mindspore"'))
    return root / "scores" / "aligned.toml", pipeline


@pytest.fixture
def no_mindspore(monkeypatch):
    monkeypatch.setitem(sys.modules, "mindspore", None)


def test_folder_gate_skips_the_suite_with_the_hint_and_gates_the_rest(tmp_path, capsys, no_mindspore):
    _, pipeline = _suites(tmp_path / "suites")
    report, junit = tmp_path / "gate.json", tmp_path / "junit.xml"
    assert main(["gate", str(tmp_path / "suites"), "--json", str(report), "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    skipped_line = next(line for line in out.splitlines() if line.startswith("[SKIPPED]"))
    assert f"{pipeline} [candidate.backend]" in skipped_line and "pip install 'accuracy[mindspore]'" in skipped_line
    assert "[PASS] aligned (scores)" in out
    assert "gate: PASS (1 suite gated, 1 skipped" in out
    data = json.loads(report.read_text())
    verdicts = {Path(s["path"]).name: s["verdict"] for s in data["suites"]}
    assert verdicts == {"aligned.toml": "pass", pipeline.name: "skipped"}
    assert '<skipped message="' in junit.read_text()


def test_named_suite_with_a_missing_package_is_exit_2(tmp_path, capsys, no_mindspore):
    _, pipeline = _suites(tmp_path / "suites")
    assert main(["gate", str(pipeline)]) == 2
    out = capsys.readouterr().out
    assert f"[ERROR] suite: {pipeline} [candidate.backend]" in out and "pip install 'accuracy[mindspore]'" in out


def test_a_folder_of_only_skipped_suites_gates_nothing_and_is_exit_2(tmp_path, capsys, no_mindspore):
    _, pipeline = _suites(tmp_path / "suites")
    assert main(["gate", str(pipeline.parent)]) == 2
    assert "nothing was gated" in capsys.readouterr().err


def test_bisect_checks_every_backend_before_any_work(tmp_path, capsys, no_mindspore):
    _, pipeline = _suites(tmp_path / "suites")
    assert main(["bisect", str(pipeline)]) == 2
    captured = capsys.readouterr()
    assert "reference run" not in captured.err  # nothing ran first
    assert captured.err.count("\n") == 1 and "pip install 'accuracy[mindspore]'" in captured.err
    assert f"{pipeline} [candidate.backend]" in captured.err


def test_pytest_skips_in_a_folder_and_fails_when_named(pytester):
    root = pytester.path / "suites"
    _, pipeline = _suites(root)
    pytester.makeconftest(HIDE_MINDSPORE)
    result = pytester.runpytest("suites", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*mindir/suite.toml*pip install 'accuracy?mindspore?'"])  # ? : fnmatch's [ ]
    pytester.runpytest(str(pipeline)).assert_outcomes(failed=1)
