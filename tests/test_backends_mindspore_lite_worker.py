"""The out-of-process worker's protocol and its failure modes, for real: frames with ``.npy`` blobs
(never pickle), the worker module under Python 3.7, and a worker that segfaults, aborts, is killed
mid-request or hangs becoming a clean verdict with its stderr tail while the harness goes on."""

from __future__ import annotations

import io
import os
import re
import signal
import struct
import sys
import threading
import time

import numpy as np
import pytest

from accuracy.backends.mindspore_lite import worker as protocol
from accuracy.backends.mindspore_lite.client import Worker, WorkerFailed
from accuracy.errors import ConfigError

HOOKS = {"ACCURACY_WORKER_TEST_HOOKS": "1"}


def _roundtrip(header, arrays):
    stream = io.BytesIO()
    protocol.write_message(stream, header, arrays)
    stream.seek(0)
    return protocol.read_message(lambda n: stream.read(n))


def test_frames_carry_arrays_of_every_kind_as_npy():
    arrays = [np.arange(6, dtype=np.int64).reshape(2, 3), np.float16([1.5, -2.0]), np.array([True, False]),
              np.zeros((0, 4), np.float32), np.asfortranarray(np.ones((3, 2), np.float64))]
    header, back = _roundtrip({"op": "run", "model": 7}, arrays)
    assert header == {"op": "run", "model": 7}
    for sent, got in zip(arrays, back):
        assert got.dtype == sent.dtype and got.shape == sent.shape
        np.testing.assert_array_equal(got, sent)


def test_a_pickled_blob_is_refused():
    blob = io.BytesIO()
    np.save(blob, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = b'{"op": "run", "blobs": [%d]}' % len(blob.getvalue())
    stream = io.BytesIO(struct.pack(">I", len(data)) + data + blob.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        protocol.read_message(lambda n: stream.read(n))
    with pytest.raises(ValueError):
        protocol.write_message(io.BytesIO(), {"op": "run"}, [np.array([object()], dtype=object)])


def test_worker_module_runs_under_python37(python37):
    """The worker is written for the oldest interpreter it must serve: it starts and speaks there."""
    worker = Worker(python37, timeout=60)
    try:
        assert worker.hello["protocol"] == protocol.PROTOCOL
        assert worker.hello["python"].startswith("3.7.")
        reply, _ = worker.request({"op": "nonsense"})
        assert reply == {"ok": False, "error": "unknown request 'nonsense'"}
    finally:
        worker.close()
    assert worker.process.returncode == 0


@pytest.mark.parametrize("name", ["SIGSEGV", "SIGABRT"])
def test_worker_that_crashes_is_a_verdict_with_its_stderr(name):
    worker = Worker(sys.executable, timeout=30, env=HOOKS)
    with pytest.raises(WorkerFailed) as caught:
        worker.request({"op": "signal", "signal": name})
    assert f"candidate failed: mindspore-lite worker exited with {name} during 'signal'" in caught.value.message
    assert any(f"raising {name}" in line for line in caught.value.stderr_tail)
    assert not worker.alive
    worker.close()  # closing a dead worker is quiet
    # the harness goes on: a new worker serves
    again = Worker(sys.executable, timeout=30, env=HOOKS)
    assert again.request({"op": "sleep", "seconds": 0})[0] == {"ok": True}
    again.close()


def test_worker_killed_mid_request_is_a_verdict():
    worker = Worker(sys.executable, timeout=60, env=HOOKS)
    killer = threading.Timer(0.5, os.kill, (worker.process.pid, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    with pytest.raises(WorkerFailed, match="worker exited with SIGKILL during 'sleep'"):
        worker.request({"op": "sleep", "seconds": 30})
    assert time.monotonic() - started < 20
    killer.join()


def test_worker_that_hangs_is_killed_at_the_timeout():
    worker = Worker(sys.executable, timeout=1, env=HOOKS)
    with pytest.raises(WorkerFailed, match=r"did not answer 'sleep' within 1 s \(killed\)"):
        worker.request({"op": "sleep", "seconds": 30})
    assert not worker.alive


@pytest.mark.parametrize("program", ["/bin/false", "/bin/cat"])
def test_an_interpreter_that_cannot_run_the_worker_is_a_config_error(program):
    """It was 'candidate failed' for each model in turn (a per-model verdict for a setup mistake)."""
    with pytest.raises(ConfigError, match=f"did not start with {program} \\(from the backend's python option\\)"):
        Worker(program, timeout=30)


def test_test_hooks_are_off_unless_asked_for():
    worker = Worker(sys.executable, timeout=30)
    try:
        reply, _ = worker.request({"op": "signal", "signal": "SIGSEGV"})
        assert reply["ok"] is False and "unknown request" in reply["error"]
        assert worker.alive
    finally:
        worker.close()


def test_an_interpreter_without_mindspore_lite_says_how_to_install(tmp_path):
    from accuracy.backends import get_backend
    from accuracy.errors import MissingDependencyError

    mindir = tmp_path / "m.mindir"
    mindir.write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match="mindspore_lite cannot be imported by .*install-mindspore-lite.sh"):
        get_backend("mindspore-lite", python=sys.executable).load(mindir)
    with pytest.raises(MissingDependencyError, match="does not exist"):
        get_backend("mindspore-lite", python=str(tmp_path / "nope" / "python")).check_available()


_HELLO = ("h = json.dumps({'op': 'hello', 'protocol': 1, 'mindspore_lite': 'fake'}).encode()\n"
          "out.write(struct.pack('>I', len(h)) + h); out.flush(); sys.stdin.buffer.read(4)\n")
_NPY = "b = io.BytesIO(); np.save(b, {array}, allow_pickle=True); v = b.getvalue(){cut}\n"
_REPLY = "h = json.dumps({{'ok': True, 'blobs': {blobs}}}).encode(); out.write(struct.pack('>I', len(h)) + h{tail})\n"
MALFORMED = {
    "garbage": ("out.write(b'Loading model...\\n' * 50)\n", "a header of .* bytes .*not a frame"),
    "huge length prefix": ("out.write(struct.pack('>I', 0xFFFFFFF0))\n", "a header of 4294967280 bytes"),
    "header is a list": ("out.write(struct.pack('>I', 5) + b'[1,2]')\n", "not a JSON object: list"),
    "header not utf-8": ("out.write(struct.pack('>I', 2) + b'\\xff\\xfe')\n", "header that is not JSON"),
    "negative blob size": (_HELLO + _REPLY.format(blobs="[-5]", tail=""), r"blob list .*\[-5\]"),
    "blob size a string": (_HELLO + _REPLY.format(blobs="['7']", tail=""), "blob list"),
    "truncated npy": (_HELLO + _NPY.format(array="np.arange(10)", cut="[:60]")
                      + _REPLY.format(blobs="[len(v)]", tail=" + v"), "not .npy of a plain dtype: EOF"),
    "object dtype npy": (_HELLO + _NPY.format(array="np.array([{'a': 1}], dtype=object)", cut="")
                         + _REPLY.format(blobs="[len(v)]", tail=" + v"), "allow_pickle=False"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_fake_worker_sending_a_malformed_frame_is_refused_at_once(tmp_path, case):
    """A worker (or something its library prints) that puts garbage on the protocol stream is a
    verdict at once, never a traceback, a wait for a 4 GiB header, or an unpickled object."""
    body, expected = MALFORMED[case]
    script = tmp_path / "python"
    script.write_text(f"#!{sys.executable}\nimport io, json, struct, sys, time\nimport numpy as np\n"
                      "out = sys.stdout.buffer\n" + body + "out.flush(); time.sleep(60)\n")
    script.chmod(0o755)
    started = time.monotonic()
    # before the hello it is the interpreter's fault (ConfigError, exit 2), after it the model's verdict
    with pytest.raises((WorkerFailed, ConfigError)) as caught:
        worker = Worker(str(script), timeout=30)
        worker.request({"op": "run", "model": 1})
    assert re.search("sent a malformed reply to '(start|run)' \\(killed\\): .*" + expected, caught.value.message)
    assert isinstance(caught.value, ConfigError) == ("_HELLO" not in body and "h = json.dumps" not in body)
    assert time.monotonic() - started < 20  # not the 30 s timeout


def test_a_frame_with_a_truncated_or_object_blob_is_a_protocol_error():
    for array, cut in ((np.arange(10), 60), (np.array([{"a": 1}], dtype=object), None)):
        blob = io.BytesIO()
        np.save(blob, array, allow_pickle=True)
        data = blob.getvalue()[:cut]
        header = b'{"ok": true, "blobs": [%d]}' % len(data)
        stream = io.BytesIO(struct.pack(">I", len(header)) + header + data)
        with pytest.raises(protocol.ProtocolError, match="not .npy of a plain dtype"):
            protocol.read_message(stream.read)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), True, 1e300, 0, "60"])
def test_a_timeout_that_is_no_number_of_seconds_is_a_config_error(value):
    from accuracy.backends import get_backend

    with pytest.raises(ConfigError, match=r"timeout must be a number of seconds in \(0, 604800\]"):
        get_backend("mindspore-lite", python=sys.executable, timeout=value).timeout  # noqa: B018
