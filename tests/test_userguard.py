"""The guard around user code: a pipeline entry that exits, interrupts or raises never loses the gate's
verdict (exit 2 overall, JSON and JUnit written, the other suites judged), in ``accuracy gate``,
``accuracy bisect`` and the pytest plugin alike; a real Ctrl-C still stops the run."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy import userguard
from accuracy.cli import main
from tests.test_gate import make_suite

pytest_plugins = ["pytester"]

HOSTILE = {
    "exit0": ("import sys\ndef run(models, inputs):\n    sys.exit(0)\n", "called sys.exit(0)"),
    "exit3": ("import sys\ndef run(models, inputs):\n    sys.exit(3)\n", "called sys.exit(3)"),
    "interrupt": ("def run(models, inputs):\n    raise KeyboardInterrupt\n", "raised KeyboardInterrupt"),
    "import_exit": ("import sys\nsys.exit(0)\ndef run(models, inputs):\n    pass\n", "sys.exit(0)"),
    "import_interrupt": ("raise KeyboardInterrupt\ndef run(models, inputs):\n    pass\n", "KeyboardInterrupt"),
    "base_exception": ("def run(models, inputs):\n    raise GeneratorExit('odd')\n", "raised GeneratorExit"),
    "sigterm": ("import signal\ndef run(models, inputs):\n    signal.raise_signal(signal.SIGTERM)\n",
                "received SIGTERM"),
    "import_sigterm": ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\ndef run(models, inputs):\n    pass\n",
                       "received SIGTERM"),
    "exec_true": ("import os\ndef run(models, inputs):\n    os.execl('/bin/true', 'true')\n",
                  "tried to be replaced by os.execv('/bin/true'"),
    "posix_exit": ("import posix\ndef run(models, inputs):\n    posix._exit(0)\n", "called os._exit(0)"),
    "os_exit": ("import os\ndef run(models, inputs):\n    os._exit(0)\n", "called os._exit(0)"),
    "os_exit_forked": (("import os\ndef run(models, inputs):\n    pid = os.fork()\n    if pid == 0:\n"
                       "        os._exit(7)\n    _, status = os.waitpid(pid, 0)\n"
                       "    raise RuntimeError(f'child exit {os.waitstatus_to_exitcode(status)}')\n"),
                       "child exit 7"),  # a forked child still exits for real
}


def pipeline_suite(folder: Path, name: str, body: str) -> Path:
    """A one-model pipeline suite whose entry is ``body``; the entry writes a marker file first, so a
    test can prove the hostile code really ran."""
    folder.mkdir(parents=True, exist_ok=True)
    k = numpy_helper.from_array(np.array(1.0, np.float32), "k")
    graph = helper.make_graph([helper.make_node("Mul", ["h", "k"], ["out"])], "g",
                              [helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4])], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "a.onnx"))
    np.save(folder / "x.npy", np.ones((2, 4), np.float32))
    marker = f"open({str(folder / 'ran.marker')!r}, 'w').close()\n"
    (folder / "pipeline.py").write_text(marker + body)
    suite = folder / f"{name}.toml"
    suite.write_text(f'[suite]\nname = "{name}"\n[pipeline]\nentry = "pipeline.py:run"\n[pipeline.models]\n'
                     'a = "a.onnx"\n[pipeline.inputs]\nx = "x.npy"\n[reference]\nbackend = "onnxruntime"\n'
                     '[candidate]\nbackend = "onnxruntime"\n')
    return suite


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_gate_keeps_every_verdict_when_an_entry_exits_or_interrupts(tmp_path, capsys, hostile):
    body, said = HOSTILE[hostile]
    suites = tmp_path / "suites"
    pipeline_suite(suites / "p", hostile, body)
    make_suite(suites / "s", "drifted", "45.00")  # a score suite that fails
    report, junit = tmp_path / "gate.json", tmp_path / "junit.xml"
    code = main(["gate", str(suites), "--json", str(report), "--junit", str(junit)])
    assert (suites / "p" / "ran.marker").exists()  # the hostile code ran
    assert code == 2
    data = json.loads(report.read_text())
    verdicts = {s["suite"]: s["verdict"] for s in data["suites"]}
    assert verdicts == {hostile: "error", "drifted": "fail"}
    error = next(s["error"] for s in data["suites"] if s["suite"] == hostile)
    assert said in error and f"{hostile}.toml" in error
    assert data["verdict"] == "error"
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert any(c.find("error") is not None for c in cases) and any(c.find("failure") is not None for c in cases)
    out = capsys.readouterr().out
    assert f"[ERROR] {hostile}" in out and "[FAIL] drifted" in out


def test_bisect_turns_an_exiting_entry_into_one_line_and_exit_2(tmp_path, capsys):
    suite = pipeline_suite(tmp_path, "exit0", HOSTILE["exit0"][0])
    assert main(["bisect", str(suite), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "called sys.exit(0)" in err[0] and "exit0.toml" in err[0]


def test_pytest_plugin_reports_an_exiting_entry_as_that_suite_failing(pytester):
    pipeline_suite(pytester.path / "suites" / "p", "exit0", HOSTILE["exit0"][0])
    make_suite(pytester.path / "suites" / "s", "aligned", "46.60")
    result = pytester.runpytest_subprocess("suites")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*called sys.exit(0)*"])


REAL_CTRL_C = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever the parent left
from accuracy import userguard
try:
    with userguard.guarded("user code"):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1_000_000):  # the handler runs between bytecodes
            pass
except KeyboardInterrupt:
    print("interrupted", userguard._sigint["received"])
except userguard.UserCodeError as exc:
    print("swallowed:", exc)
"""


def test_a_real_ctrl_c_still_interrupts():
    # In a fresh interpreter: a runtime used earlier in this process (MindSpore) installs a C-level
    # SIGINT handler that terminates the whole process, so a real SIGINT cannot be sent in-process.
    done = subprocess.run([sys.executable, "-c", REAL_CTRL_C], check=False, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted True", done.stdout + done.stderr


def test_user_raised_interrupt_and_exit_become_user_code_errors(monkeypatch):
    monkeypatch.setitem(userguard._sigint, "received", False)
    for raised, said in ((KeyboardInterrupt(), "raised KeyboardInterrupt"), (SystemExit(0), "called sys.exit(0)"),
                         (ValueError("boom"), "raised ValueError: boom")):
        with pytest.raises(userguard.UserCodeError) as caught, userguard.guarded("the entry"):
            raise raised
        assert said in str(caught.value)
    assert sys.exc_info() == (None, None, None)


def test_an_entry_that_changes_folder_or_streams_loses_no_output(tmp_path, capsys, monkeypatch):
    """An entry's os.chdir sent a relative --json elsewhere, and its sys.stdout swap swallowed the
    verdict lines: the guard puts both back."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    body = (f"import io, os, sys\ndef run(models, inputs):\n    os.chdir({str(elsewhere)!r})\n"
            "    sys.stdout = io.StringIO()\n    return {'y': models['a'](h=inputs['x'])[0]}\n")
    suites = tmp_path / "suites"
    pipeline_suite(suites / "p", "moves", body)
    make_suite(suites / "s", "drifted", "45.00")
    monkeypatch.chdir(tmp_path)
    code = main(["gate", "suites", "--json", "gate.json"])
    assert (suites / "p" / "ran.marker").exists()
    assert code == 1
    assert (tmp_path / "gate.json").exists() and not (elsewhere / "gate.json").exists()
    out = capsys.readouterr().out
    assert "[FAIL] drifted" in out and "gate: FAIL" in out


@pytest.mark.parametrize("late", [
    "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "import atexit, sys\natexit.register(lambda: sys.exit(0))\n",
    "import os\nclass Late:\n    def __del__(self):\n        os._exit(0)\nkeep = [Late()]\n",
])
def test_user_code_left_to_run_at_exit_cannot_change_the_exit_code(tmp_path, late):
    """An entry's atexit handler or a finalizer calling os._exit(0) ran after the guard: a gate with a
    failing suite exited 0 (its JSON said fail)."""
    import subprocess

    suites = tmp_path / "suites"
    pipeline_suite(suites / "p", "late", late + "def run(models, inputs):\n    return {'y': models['a'](h=inputs['x'])[0]}\n")
    make_suite(suites / "s", "drifted", "45.00")
    done = subprocess.run([sys.executable, "-m", "accuracy", "gate", str(suites), "--json", str(tmp_path / "g.json")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert (suites / "p" / "ran.marker").exists()
    assert done.returncode == 1, done.stderr
    assert json.loads((tmp_path / "g.json").read_text())["verdict"] == "fail"
    assert "gate: FAIL" in done.stdout


def test_held_exits_stay_refused_between_user_code_until_the_verdict(monkeypatch):
    """The CLI holds exits: a thread an entry left running that calls os._exit(0) after the entry
    returned (while the harness compares or writes) cannot end the gate with exit 0."""
    import os
    import posix

    real = posix._exit
    monkeypatch.setitem(userguard._exits, "held", True)
    try:
        with userguard.guarded("x"):
            pass
        for exit_function in (os._exit, posix._exit):
            with pytest.raises(userguard.ProcessExit):
                exit_function(0)
        with pytest.raises(userguard.ProcessExit):
            os.execv("/bin/true", ["true"])
    finally:
        userguard._allow_exits()
    assert os._exit is real and posix._exit is real and os.execv is posix.execv
