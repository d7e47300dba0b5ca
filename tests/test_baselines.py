"""Baselines are written on purpose only: atomically, never over a file without --force."""

import json
import os

import pytest

from accuracy.baselines import load_baseline, record_baseline
from accuracy.cli import main
from accuracy.errors import InputError
from accuracy.io import OverwriteRefused
from accuracy.scores.readers import read_scores
from tests.scores_data import summary_csv


def test_record_writes_schema_scores_and_provenance(tmp_path, capsys):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "cd1ae1", "accuracy", "gen", "47.00")])
    out = tmp_path / "baselines" / "b.json"
    assert main(["baseline", "record", str(gpu), "--out", str(out), "--label", "GPU A100 / vLLM"]) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == 1 and data["scores"][0]["value"] == 47.0
    prov = data["provenance"]
    assert prov["label"] == "GPU A100 / vLLM" and prov["prompt_versions"] == {"mmlu": "cd1ae1"}
    assert "accuracy" in prov["tool_versions"] and prov["recorded_at"] and "generation" in prov
    assert load_baseline(out).get("mmlu", "accuracy").value == 47.0


def test_never_overwrites_without_force_and_prints_old_to_new(tmp_path, capsys):
    first = summary_csv(tmp_path / "a.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    second = summary_csv(tmp_path / "b.csv", [("mmlu", "v", "accuracy", "gen", "48.00")])
    out = tmp_path / "b.json"
    assert main(["baseline", "record", str(first), "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["baseline", "record", str(second), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["baseline", "record", str(second), "--out", str(out), "--force"]) == 0
    assert "mmlu/accuracy: 47.00 -> 48.00" in capsys.readouterr().out
    assert load_baseline(out).get("mmlu", "accuracy").value == 48.0


def test_record_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    out = tmp_path / "b.json"
    record_baseline(read_scores(gpu), out)
    before = out.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(InputError, match="cannot write: disk full"):
        record_baseline(read_scores(gpu), out, force=True)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_overwrite_refused_from_the_library(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    out = tmp_path / "b.json"
    record_baseline(read_scores(gpu), out)
    with pytest.raises(OverwriteRefused):
        record_baseline(read_scores(gpu), out)


def test_missing_baseline_says_how_to_record(tmp_path):
    with pytest.raises(Exception, match="accuracy baseline record"):
        load_baseline(tmp_path / "nope.json")


def test_unsupported_schema_is_refused(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": 99, "model": "m", "scores": []}))
    with pytest.raises(Exception, match="schema 99"):
        load_baseline(path)


def test_baseline_json_flag_after_record_is_honoured(tmp_path):
    gpu = summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    out, report = tmp_path / "b.json", tmp_path / "r.json"
    assert main(["baseline", "record", str(gpu), "--out", str(out), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["baseline"] == str(out)
    report2 = tmp_path / "r2.json"
    assert main(["baseline", "--json", str(report2), "record", str(gpu), "--out", str(tmp_path / "c.json")]) == 0
    assert json.loads(report2.read_text())["replaced"] is False


def test_recording_a_pipeline_suite_without_goldens_is_refused(tmp_path, capsys):
    suite = tmp_path / "p.toml"
    suite.write_text('[pipeline]\nentry = "pipeline.py:run"\n')
    assert main(["baseline", "record", str(suite), "--force"]) == 2
    assert "no [golden] section" in capsys.readouterr().err


def test_a_schema_written_as_a_string_is_named_as_one(tmp_path):
    """'schema "1" is not supported (this version reads schema 1)' read as nonsense: the value is quoted."""
    from accuracy.scores.readers import check_schema

    with pytest.raises(InputError, match=r"schema '1' is not supported \(this version of accuracy reads schema 1\)"):
        check_schema({"schema": "1"}, path=tmp_path / "b.json")
