"""Hostile and broken input, one class of problem per test, parametrized over the commands that meet it:
every case is exit 2 and one line naming the file (and the key or line where known), never a
traceback, a hang or a false pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accuracy.cli import main
from accuracy.config import load_suite
from accuracy.llm.suite_config import read_llm_suite
from tests.scores_data import summary_csv, workdir
from tests.test_userguard import pipeline_suite

ROWS = [("mmlu", "v", "accuracy", "gen", "47.00"), ("ceval", "v", "accuracy", "gen", "40.00")]
LONG = "n" * 300  # a file name over the OS's 255-byte limit


@pytest.fixture
def scores(tmp_path):
    """gpu.csv / npu.csv (aligned), a recorded baseline b.json and a score suite judging npu against it."""
    summary_csv(tmp_path / "gpu.csv", ROWS)
    summary_csv(tmp_path / "npu.csv", ROWS)
    assert main(["baseline", "record", str(tmp_path / "gpu.csv"), "--out", str(tmp_path / "b.json")]) == 0
    (tmp_path / "s.toml").write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n')
    return tmp_path


def one_line_error(capsys, code: int, *names: str) -> str:
    """Exit 2, and one line (stderr, or the gate's [ERROR] line) that names each of ``names``."""
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines() or [line for line in captured.out.splitlines() if "[ERROR]" in line]
    assert len(lines) == 1, lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def gate_error(tmp_path, suite: Path, capsys, *names: str) -> str:
    """``accuracy gate SUITE --json``: exit 2, the suite's recorded error names ``names``."""
    code = main(["gate", str(suite), "--json", str(tmp_path / "gate.json")])
    line = one_line_error(capsys, code, *names)
    error = json.loads((tmp_path / "gate.json").read_text())["suites"][0]["error"]
    assert all(name in error for name in names)
    return line


# -- file names the OS refuses -------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["check --baseline", "check --candidate", "check --json", "record --out",
                                     "record source", "gate --json", "gate suite", "diff --diff-image"])
def test_file_names_over_255_characters(scores, capsys, command):
    long = str(scores / f"{LONG}.json")
    base, cand, out = str(scores / "b.json"), str(scores / "npu.csv"), []
    argv = {
        "check --baseline": ["check", "--baseline", long, "--candidate", cand],
        "check --candidate": ["check", "--baseline", base, "--candidate", long],
        "check --json": ["check", "--baseline", base, "--candidate", cand, "--json", long],
        "record --out": ["baseline", "record", cand, "--out", long],
        "record source": ["baseline", "record", long, "--out", str(scores / "x.json")],
        "gate --json": ["gate", str(scores / "s.toml"), "--json", long],
        "gate suite": ["gate", str(scores / f"{LONG}.toml")],
        "diff --diff-image": ["diff", cand, cand, "--diff-image", str(scores / f"{LONG}.png")],
    }[command]
    if command == "diff --diff-image":
        import numpy as np

        np.save(scores / "a.npy", np.zeros((4, 4), np.float32))
        argv[1:3] = [str(scores / "a.npy")] * 2
    capsys.readouterr()
    line = one_line_error(capsys, main(argv + out), "nnnnnnnn")
    assert "too long" in line


# -- only regular files: a named pipe is refused at once, never waited on ------------------------------

@pytest.mark.parametrize("command", ["check --baseline", "check --candidate", "record source", "gate baseline",
                                     "gate suite", "diff input", "pipeline input"])
def test_a_named_pipe_is_refused_without_hanging(scores, command):
    fifo = scores / "pipe.json"
    base, cand = str(scores / "b.json"), str(scores / "npu.csv")
    if command == "pipeline input":
        pipeline_suite(scores / "p", "p", "def run(models, inputs):\n    return {}\n")
        (scores / "p" / "x.npy").unlink()
        fifo = scores / "p" / "x.npy"
    if command == "diff input":
        fifo = scores / "pipe.npy"
    os.mkfifo(fifo)
    if command == "gate baseline":
        (scores / "s.toml").write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "pipe.json"\n')
    if command == "gate suite":
        fifo.rename(scores / "pipe.toml")
        fifo = scores / "pipe.toml"
    argv = {
        "check --baseline": ["check", "--baseline", str(fifo), "--candidate", cand],
        "check --candidate": ["check", "--baseline", base, "--candidate", str(fifo)],
        "record source": ["baseline", "record", str(fifo), "--out", str(scores / "x.json")],
        "gate baseline": ["gate", str(scores / "s.toml")],
        "gate suite": ["gate", str(fifo)],
        "diff input": ["diff", str(fifo), str(fifo)],
        "pipeline input": ["gate", str(scores / "p" / "p.toml")],
    }[command]
    done = subprocess.run([sys.executable, "-m", "accuracy", *argv], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines() or [line for line in done.stdout.splitlines() if "[ERROR]" in line]
    assert len(lines) == 1 and fifo.name in lines[0] and "named pipe" in lines[0], done


# -- bounded parsers --------------------------------------------------------------------------------------

def _deep(levels: int = 100_000) -> str:
    return '{"scores": ' + "[" * levels + "]" * levels + "}"


def _digits(count: int) -> str:
    return '{"schema": 1, "model": "m", "scores": [{"dataset": "mmlu", "metric": "accuracy", "value": 4' + "0" * count + "}]}"


@pytest.mark.parametrize("content,said", [
    (_deep(), "nested too deeply"),
    (_deep(80), "more than 64 levels"),
    (_digits(5000), "5001 digits"),  # past Python's int limit: ValueError before
    (_digits(400), "401 digits"),  # past a float: OverflowError before
])
@pytest.mark.parametrize("where", ["check --baseline", "check --candidate", "gate baseline", "record source"])
def test_deep_json_and_huge_integers_are_one_line(scores, capsys, content, said, where):
    bad = scores / "bad.json"
    bad.write_text(content)
    base, cand = str(scores / "b.json"), str(scores / "npu.csv")
    if where == "gate baseline":
        (scores / "s.toml").write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "bad.json"\n')
        gate_error(scores, scores / "s.toml", capsys, "bad.json", said)
        return
    argv = {
        "check --baseline": ["check", "--baseline", str(bad), "--candidate", cand],
        "check --candidate": ["check", "--baseline", base, "--candidate", str(bad)],
        "record source": ["baseline", "record", str(bad), "--out", str(scores / "x.json")],
    }[where]
    one_line_error(capsys, main(argv), "bad.json", said)


def test_deep_json_in_a_work_dirs_results_is_one_line(scores, capsys):
    runs = workdir(scores / "wd", "20240101_000000", [("mmlu", "v", "accuracy", "gen", "47.00")],
                   details={"mmlu": [True, False]})
    details = runs / "20240101_000000" / "results" / "m" / "mmlu.json"
    details.write_text('{"details": ' + "[" * 50_000 + "]" * 50_000 + "}")
    one_line_error(capsys, main(["check", "--baseline", str(runs), "--candidate", str(runs)]), "mmlu.json",
                   "nested too deeply")


@pytest.mark.parametrize("cell,said", [("4" * 2_000_000, "field larger than field limit"),
                                       ("4" * 200_000, "not a finite number")])
@pytest.mark.parametrize("where", ["check --baseline", "check --candidate", "record source"])
def test_huge_csv_cells_are_one_line(scores, capsys, cell, said, where):
    big = summary_csv(scores / "big.csv", [("mmlu", "v", "accuracy", "gen", cell)])
    argv = {
        "check --baseline": ["check", "--baseline", str(big), "--candidate", str(scores / "npu.csv")],
        "check --candidate": ["check", "--baseline", str(scores / "b.json"), "--candidate", str(big)],
        "record source": ["baseline", "record", str(big), "--out", str(scores / "x.json")],
    }[where]
    one_line_error(capsys, main(argv), "big.csv", "line 2", said)


def test_huge_integers_and_deep_nesting_in_a_suite_are_one_line(scores, capsys):
    suite = scores / "s.toml"
    suite.write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerance]\nabs = 1'
                     + "0" * 5000 + "\n")
    gate_error(scores, suite, capsys, "s.toml", "malformed TOML")
    suite.write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerance]\nabs = '
                     + "[" * 5000 + "]" * 5000 + "\n")
    gate_error(scores, suite, capsys, "s.toml", "nested too deeply")


# -- finite numbers only -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
@pytest.mark.parametrize("tolerance,key", [
    ("[tolerance]\nrel = {v}\n", "tolerance.rel"),
    ("[tolerance]\nabs = {v}\n", "tolerance.abs"),
    ("[tolerance.datasets.mmlu]\nrel = {v}\n", "tolerance.datasets.mmlu.rel"),
])
def test_non_finite_score_tolerances_are_refused(scores, capsys, value, tolerance, key):
    """`rel = inf` passed a score 79 % off: now the suite cannot be judged, and says why."""
    summary_csv(scores / "npu.csv", [("mmlu", "v", "accuracy", "gen", "10.00"), ("ceval", "v", "accuracy", "gen", "40.00")])
    suite = scores / "s.toml"
    suite.write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n' + tolerance.format(v=value))
    line = gate_error(scores, suite, capsys, "s.toml", key)
    assert "finite" in line
    assert main(["check", "--baseline", str(scores / "b.json"), "--candidate", str(scores / "npu.csv"),
                 "--suite", str(suite)]) == 2


@pytest.mark.parametrize("key", ["max_abs", "cosine_min", "psnr_min", "rel_l2_max"])
def test_non_finite_pipeline_thresholds_are_refused(tmp_path, capsys, key):
    suite = pipeline_suite(tmp_path, "p", "def run(models, inputs):\n    return {'y': models['a'](h=inputs['x'])[0]}\n")
    suite.write_text(suite.read_text() + f"[compare]\n{key} = nan\n")
    gate_error(tmp_path, suite, capsys, "p.toml", f"compare.{key}", "finite")


def test_non_finite_golden_thresholds_and_temperature_are_refused(tmp_path):
    from accuracy.config.pipeline import load_pipeline_spec
    from accuracy.errors import ConfigError

    suite = pipeline_suite(tmp_path, "p", "def run(models, inputs):\n    return {}\n")
    suite.write_text(suite.read_text() + "[golden]\nssim_min = inf\n")
    with pytest.raises(ConfigError, match=r"\[golden.ssim_min\].*finite"):
        load_pipeline_spec(load_suite(suite))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "add.jsonl").write_text('{"question": "1+1", "answer": "2"}\n')
    llm = tmp_path / "llm.toml"
    llm.write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\ntokenizer = "."\n[llm.generation]\n'
                   'temperature = nan\n[llm.datasets]\ncustom = ["data/add.jsonl"]\n[baseline]\npath = "b.json"\n')
    with pytest.raises(ConfigError, match=r"\[llm.generation.temperature\].*finite"):
        read_llm_suite(load_suite(llm))


@pytest.mark.parametrize("argv", [
    ["localize", "m.onnx", "--inputs", "f.npz", "--cosine-min", "nan"],
    ["localize", "m.onnx", "--inputs", "f.npz", "--max-abs", "inf"],
    ["localize", "m.onnx", "--inputs", "f.npz", "--rel-l2-max", "inf"],
    ["diff", "a.png", "b.png", "--psnr-min", "inf"],
    ["diff", "a.png", "b.png", "--ssim-min", "nan"],
    ["check", "--baseline", "b", "--candidate", "c", "--abs-tol", "inf"],
])
def test_non_finite_flags_are_refused(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as stopped:  # argparse refuses the flag's value
        code = stopped.code
    assert code == 2
    err = capsys.readouterr().err
    assert "finite" in err and argv[-2] in err and "Traceback" not in err


# -- unknown sections and keys -------------------------------------------------------------------------

@pytest.mark.parametrize("text,where,hint", [
    ('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[tolerances]\nrel = 0.5\n', "tolerances",
     "did you mean 'tolerance'"),
    ('[suite]\nnme = "x"\n[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n', "suite.nme",
     "did you mean 'name'"),
    ('[suite]\nmanual = "yes"\n[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n', "suite.manual",
     "true or false"),
    ('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n[compare]\ncosine_min = 0.9\n', "compare",
     "unknown section"),
])
def test_unknown_sections_and_keys_are_refused(scores, capsys, text, where, hint):
    (scores / "s.toml").write_text(text)
    gate_error(scores, scores / "s.toml", capsys, "s.toml", f"[{where}]", hint)


def test_unknown_section_in_llm_and_pipeline_suites(tmp_path):
    from accuracy.errors import ConfigError

    (tmp_path / "l.toml").write_text('[llm]\nmodel = "m"\n[tolerence]\nrel = 0.1\n')
    with pytest.raises(ConfigError, match=r"\[tolerence\].*did you mean 'tolerance'"):
        load_suite(tmp_path / "l.toml")
    suite = pipeline_suite(tmp_path, "p", "def run(models, inputs):\n    return {}\n")
    suite.write_text(suite.read_text() + "[compares]\ncosine_min = 0.9\n")
    with pytest.raises(ConfigError, match=r"\[compares\].*did you mean 'compare'"):
        load_suite(suite)


# -- baselines that would pass anything ----------------------------------------------------------------

@pytest.mark.parametrize("baseline,said", [
    ({"schema": 1, "model": "m", "scores": []}, "holds no scores"),
    ({"schema": 1, "model": "m", "scores": [{"dataset": "mmlu", "metric": "accuracy", "value": None}]}, "null"),
    ({"schema": 9, "model": "m", "scores": [{"dataset": "mmlu", "metric": "accuracy", "value": 47}]}, "schema 9"),
    ({"schema": 1, "model": "m", "scores": [{"dataset": "mmlu", "metric": "accuracy", "value": "nan"}]}, "finite"),
    ({"schema": 1, "model": "m", "scores": [{"dataset": "mmlu", "metric": "accuracy", "vaule": 47},
                                            {"dataset": "ceval", "metric": "accuracy", "value": 40}]},
     "did you mean 'value'"),
    ({"schema": 1, "model": "m", "scorez": [], "scores": [{"dataset": "mmlu", "metric": "accuracy", "value": 47}]},
     "unknown key 'scorez'"),
])
@pytest.mark.parametrize("command", ["check", "gate"])
def test_empty_null_and_foreign_schema_baselines_are_refused_by_check_and_gate(scores, capsys, baseline, said,
                                                                               command):
    summary_csv(scores / "npu.csv", [("mmlu", "v", "accuracy", "gen", "10.00")])  # 79 % off
    (scores / "b.json").write_text(json.dumps(baseline))
    if command == "gate":
        gate_error(scores, scores / "s.toml", capsys, "b.json", said)
    else:
        code = main(["check", "--baseline", str(scores / "b.json"), "--candidate", str(scores / "npu.csv")])
        one_line_error(capsys, code, "b.json", said)


@pytest.mark.parametrize("cell", ["nan", "inf", "-"])
def test_nothing_that_would_pass_anything_is_ever_recorded(tmp_path, capsys, cell):
    source = summary_csv(tmp_path / "r.csv", [("mmlu", "v", "accuracy", "gen", cell)])
    out = tmp_path / "b.json"
    code = main(["baseline", "record", str(source), "--out", str(out)])
    one_line_error(capsys, code, "r.csv")
    assert not out.exists()


# -- folders that cannot be used -----------------------------------------------------------------------

def test_cache_dir_naming_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    suite = pipeline_suite(tmp_path / "p", "p", "def run(models, inputs):\n    return {'y': models['a'](h=inputs['x'])[0]}\n")
    suite.write_text(suite.read_text().replace('[candidate]\nbackend = "onnxruntime"', '[candidate]\nbackend = "onnxruntime-fp16"'))
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "afile"))
    gate_error(tmp_path, suite, capsys, "afile", "ACCURACY_CACHE_DIR", "not a folder")


def test_cache_dir_relative_or_of_an_unknown_user(tmp_path, monkeypatch):
    """A relative ACCURACY_CACHE_DIR handed out relative paths (converted models listed as rel/x/...,
    wrong from any other folder); ~nosuchuser/x was a RuntimeError traceback."""
    from accuracy.cache import cache_dir
    from accuracy.errors import InputError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACCURACY_CACHE_DIR", "rel/x")
    assert cache_dir() == tmp_path / "rel" / "x" and cache_dir().is_dir()
    monkeypatch.setenv("ACCURACY_CACHE_DIR", "~nosuchuser-accuracy/x")
    with pytest.raises(InputError, match=r"\[ACCURACY_CACHE_DIR\].*~nosuchuser-accuracy is no user's home"):
        cache_dir()
    assert not (tmp_path / "~nosuchuser-accuracy").exists()


def test_a_suite_path_of_an_unknown_users_home_is_one_line(tmp_path, capsys):
    """``path = "~nosuchuser/b.json"`` was a RuntimeError traceback (Path.expanduser)."""
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nname = "s"\n[scores]\ncandidate = "~nosuchuser-accuracy/npu.csv"\n'
                     '[baseline]\npath = "b.json"\n')
    gate_error(tmp_path, suite, capsys, "s.toml", "scores.candidate", "~nosuchuser-accuracy")


def test_cache_dir_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    """A read-only folder: mode 0555 for a normal user; as root (who writes through modes) /sys, which
    root cannot create files in either."""
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    if os.geteuid() == 0:
        readonly = Path("/sys")
    suite = pipeline_suite(tmp_path / "p", "p", "def run(models, inputs):\n    return {'y': models['a'](h=inputs['x'])[0]}\n")
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(readonly))
    gate_error(tmp_path, suite, capsys, str(readonly), "ACCURACY_CACHE_DIR", "not writable")


def test_work_dir_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "add.jsonl").write_text('{"question": "1+1", "answer": "2"}\n')
    llm = tmp_path / "llm.toml"
    llm.write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\ntokenizer = "."\n'
                   '[llm.datasets]\ncustom = ["data/add.jsonl"]\n[baseline]\npath = "b.json"\n')
    (tmp_path / "wd").write_text("")
    code = main(["run", str(llm), "--work-dir", str(tmp_path / "wd")])
    one_line_error(capsys, code, "wd", "--work-dir", "not a folder")


def test_a_non_finite_score_made_in_memory_is_never_recorded(tmp_path):
    from accuracy.baselines import record_baseline
    from accuracy.errors import InputError
    from accuracy.scores.model import Score, ScoreTable

    table = ScoreTable(model="m", scores=[Score("humaneval", "pass@1", float("nan")), Score("mmlu", "acc", 47.0)],
                       source="run")
    with pytest.raises(InputError, match="humaneval/pass@1 is nan"):
        record_baseline(table, tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("body,code,said", [
    ("def run(models, inputs):\n    return 'hello'\n", 2, "must return a non-empty dict"),
    ("def run(models, inputs):\n    return {'y': 'hello'}\n", None, ""),  # text outputs are compared (issue 10)
    ("def run(models, inputs):\n    return {'y': object()}\n", None, ""),
])
def test_whatever_an_entry_returns_is_never_a_traceback(tmp_path, capsys, body, code, said):
    suite = pipeline_suite(tmp_path, "p", body)
    result = main(["gate", str(suite), "--json", str(tmp_path / "gate.json")])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert (tmp_path / "gate.json").exists()
    if code is not None:
        assert result == code and said in captured.out
    else:
        assert result in (0, 1, 2)


def test_keep_fp32_that_is_not_a_list_is_one_line(tmp_path, capsys):
    suite = pipeline_suite(tmp_path, "p", "def run(models, inputs):\n    return {'y': models['a'](h=inputs['x'])[0]}\n")
    suite.write_text(suite.read_text().replace('[candidate]\nbackend = "onnxruntime"',
                                               '[candidate]\nbackend = "onnxruntime-fp16"\nkeep_fp32 = 5'))
    gate_error(tmp_path, suite, capsys, "p.toml", "candidate.keep_fp32")


def test_a_deeply_nested_model_index_is_one_line(tmp_path, capsys):
    folder = tmp_path / "sd"
    pipeline_suite(folder / "text_encoder", "unused", "")
    (folder / "text_encoder" / "a.onnx").rename(folder / "text_encoder" / "model.onnx")
    (folder / "model_index.json").write_text("[" * 100_000 + "]" * 100_000)
    np_inputs = tmp_path / "x.npy"
    (folder / "text_encoder" / "x.npy").rename(np_inputs)
    suite = tmp_path / "sd.toml"
    suite.write_text('[pipeline]\ndiffusers = "sd"\n[pipeline.inputs]\nx = "x.npy"\n[reference]\n'
                     'backend = "onnxruntime"\n[candidate]\nbackend = "onnxruntime"\n')
    gate_error(tmp_path, suite, capsys, "model_index.json", "nested too deeply")
