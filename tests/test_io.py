"""The one I/O layer: files people and baselines get the umask's mode; a killed writer's staging files are
removed by the next writer (only ours, only unlocked and old ones); reads take regular files only."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from accuracy import io
from accuracy.cli import main
from accuracy.errors import InputError
from tests.scores_data import summary_csv


@pytest.fixture
def umask():
    """Set a umask for the test, restore the old one after."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_get_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    written = io.write_bytes_atomic(tmp_path / "f.bin", b"x")
    assert mode(written) == 0o666 & ~mask  # mkstemp alone gives 0600


def test_every_file_the_commands_write_gets_the_umask_mode(tmp_path, umask):
    umask(0o027)
    summary_csv(tmp_path / "gpu.csv", [("mmlu", "v", "accuracy", "gen", "47.00")])
    summary_csv(tmp_path / "npu.csv", [("mmlu", "v", "accuracy", "gen", "46.00")])
    assert main(["baseline", "record", str(tmp_path / "gpu.csv"), "--out", str(tmp_path / "b.json")]) == 0
    (tmp_path / "s.toml").write_text('[scores]\ncandidate = "npu.csv"\n[baseline]\npath = "b.json"\n')
    main(["gate", str(tmp_path / "s.toml"), "--json", str(tmp_path / "gate.json"), "--junit",
          str(tmp_path / "junit.xml"), "--report", str(tmp_path / "report.html")])
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.float32))
    np.save(tmp_path / "b.npy", np.ones((8, 8), np.float32))
    main(["diff", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--diff-image", str(tmp_path / "diff.png"),
          "--json", str(tmp_path / "diff.json")])
    written = ["b.json", "gate.json", "junit.xml", "report.html", "diff.png", "diff.json"]
    assert {name: oct(mode(tmp_path / name)) for name in written} == {name: oct(0o640) for name in written}


def _writer(target: Path) -> subprocess.Popen:
    """A real writer process stopped inside ``write_bytes_atomic`` (its fsync never returns)."""
    code = ("import os, sys, time\nfrom accuracy import io\nos.fsync = lambda fd: time.sleep(600)\n"
            f"io.write_bytes_atomic({str(target)!r}, b'new')\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 60
    while not list(target.parent.glob(f".{target.name}.*.tmp")):
        assert process.poll() is None and time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.05)
    return process


def _age(path: Path, seconds: float = 3600) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_killed_writers_staging_file_is_removed_by_the_next_writer(tmp_path):
    target = tmp_path / "b.json"
    target.write_text("old")
    live = _writer(target)
    try:
        (staged,) = tmp_path.glob(".b.json.*.tmp")
        _age(staged)
        io.write_bytes_atomic(target, b"other writer")  # a live writer's file: locked, kept however old
        assert staged.exists()
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    assert staged.exists()  # the killed writer left it behind
    io.write_bytes_atomic(tmp_path / "other.json", b"x")  # any next writer in the folder
    assert not staged.exists()
    assert target.read_bytes() == b"other writer"


def test_only_old_staging_files_of_ours_are_removed(tmp_path):
    keep_young = tmp_path / ".a.png.abcdefgh.tmp"
    keep_young.write_text("")
    old_tmp, old_new = tmp_path / ".a.png.a1b2c3d4.tmp", tmp_path / ".C.png.new"
    not_ours = [tmp_path / "notes.tmp", tmp_path / ".notes.tmp", tmp_path / ".a.png.short.tmp", tmp_path / "a.new",
                tmp_path / ".a.png.ABCDEFGH.tmp"]
    for path in [old_tmp, old_new, *not_ours]:
        path.write_text("")
        _age(path)
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    _age(tmp_path / ".dir.abcdefgh.tmp")
    removed = io.remove_stale_staging(tmp_path)
    assert sorted(removed) == sorted([old_tmp, old_new])
    assert keep_young.exists() and all(path.exists() for path in not_ours)
    assert (tmp_path / ".dir.abcdefgh.tmp").is_dir()


def test_reading_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(InputError, match="named pipe"):
        io.read_json(tmp_path / "pipe.json")
    with pytest.raises(InputError, match="is a folder"):
        io.read_json(tmp_path)
    with pytest.raises(InputError, match="a device"):
        io.read_text("/dev/zero")
    (tmp_path / "ok.json").write_text(json.dumps({"a": [1, 2]}))
    os.symlink(tmp_path / "ok.json", tmp_path / "link.json")
    assert io.read_json(tmp_path / "link.json") == {"a": [1, 2]}  # a link to a regular file is fine


def test_a_pipe_or_device_is_written_through_never_replaced(tmp_path):
    """``--json /dev/stdout`` or ``>(jq .)`` names a pipe or device: a rename over it replaced the
    node itself (as root, ``--json /dev/full`` left a regular file at /dev/full)."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    io.write_json_atomic(fifo, {"verdict": "pass"})
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(got[0]) == {"verdict": "pass"}


def test_a_symlinked_file_is_replaced_behind_its_link(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    io.write_json_atomic(link, {"a": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}


def test_a_full_device_is_one_line_error(tmp_path):
    if not os.path.exists("/dev/full") or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full character device here")
    with pytest.raises(InputError, match="/dev/full.*cannot write: No space left"):
        io.write_json_atomic("/dev/full", {"a": 1})
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_json_with_a_key_twice_is_refused_naming_it(tmp_path, capsys):
    """json keeps the last of two equal keys silently: a baseline's second "scores" list won."""
    with pytest.raises(InputError, match="malformed JSON: the key 'scores' appears twice in one object"):
        io.loads_json('{"schema": 1, "scores": [], "scores": [{"x": 1}]}', path="b.json")
    baseline = tmp_path / "b.json"
    baseline.write_text('{"schema": 1, "model": "m", "scores": [{"dataset": "mmlu", "value": 1}], '
                        '"scores": [{"dataset": "mmlu", "value": 99}]}')
    assert main(["check", "--candidate", str(baseline), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b.json" in err[0] and "'scores' appears twice" in err[0]


def test_a_json_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    """A sparse 2 GiB baseline was read into memory whole (a MemoryError on a small machine)."""
    huge = tmp_path / "b.json"
    with open(huge, "wb") as handle:
        handle.truncate(2 << 30)  # sparse: no disk used
    with pytest.raises(InputError, match=r"b.json: 2048 MiB: over the 1024 MiB this JSON file may have"):
        io.read_json(huge)


def test_a_staged_write_appears_whole_on_commit_and_leaves_nothing_on_discard(tmp_path, umask):
    """The repaired model is written while it is checked: nothing at the target until commit, the umask's
    mode then; a discarded one leaves no staging file; a folder in the way is refused at once."""
    umask(0o027)
    target = tmp_path / "out" / "model.onnx"
    staged = io.StagedWrite(target, b"x" * (4 << 20))
    assert not target.exists()
    assert staged.commit() == target and target.read_bytes() == b"x" * (4 << 20)
    assert mode(target) == 0o666 & ~0o027
    staged = io.StagedWrite(target, b"other")
    staged.discard()
    assert target.read_bytes() == b"x" * (4 << 20) and sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]
    with pytest.raises(InputError, match="is a folder"):
        io.StagedWrite(tmp_path / "out", b"")


def test_a_staged_write_that_cannot_be_written_fails_at_commit_naming_the_file(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    staged = io.StagedWrite(blocked / "model.onnx", b"data")
    with pytest.raises(InputError, match="cannot write"):
        staged.commit()
