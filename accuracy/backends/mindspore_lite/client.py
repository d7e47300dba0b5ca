"""The harness side of the MindSpore Lite worker: start it under the interpreter that has
``mindspore_lite``, send requests, own the timeouts, and turn a dead worker into a verdict.

A worker that exits (SIGSEGV in a native kernel, abort, killed) or stops answering within the
timeout raises ``WorkerFailed`` — a ``BackendError`` whose message is the per-model verdict
(``candidate failed: worker exited with SIGSEGV``) and which keeps the tail of the worker's
stderr; the harness goes on with the next model.
"""

from __future__ import annotations

import collections
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.mindspore_lite import worker as protocol
from accuracy.errors import BackendError, CandidateFailed, ConfigError
from accuracy.io import expand_user

PYTHON_ENV = "ACCURACY_MSLITE_PYTHON"
VENV = ".venv-mslite"  # where .ci/install-mindspore-lite.sh puts the cp37 venv, in the repository
DEFAULT_TIMEOUT = 600.0
MAX_TIMEOUT = 7 * 86400.0  # a week: longer is a typo, and select() refuses huge values
STDERR_LINES = 40


class WorkerFailed(CandidateFailed):
    """The worker died or timed out: the message is the verdict, ``stderr_tail`` what it last said."""

    def __init__(self, message: str, *, stderr_tail: Sequence[str] = (), path: str | Path | None = None):
        super().__init__(message, path=path)
        self.stderr_tail = list(stderr_tail)


def find_python(configured: str | None = None) -> tuple[str, str]:
    """The interpreter to run the worker with, and where that choice came from: the backend's
    ``python`` option, then ``$ACCURACY_MSLITE_PYTHON``, then ``<repo>/.venv-mslite/bin/python``,
    then this interpreter (which usually lacks ``mindspore_lite``: the worker then says so)."""
    if configured:
        return str(expand_user(configured)), "the backend's python option"
    if os.environ.get(PYTHON_ENV):
        return os.environ[PYTHON_ENV], f"${PYTHON_ENV}"
    venv_python = Path(__file__).resolve().parents[3] / VENV / "bin" / "python"
    if venv_python.exists():
        return str(venv_python), str(venv_python.parent.parent)
    return sys.executable, "this interpreter"


def signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


class Worker:
    """One worker process. ``request(header, arrays)`` -> ``(reply, arrays)``; ``close()`` ends it."""

    def __init__(self, python: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 env: dict[str, str] | None = None, label: str = "mindspore-lite worker"):
        self.python, self.python_source = find_python(python)
        if isinstance(timeout, bool) or not 0 < float(timeout) <= MAX_TIMEOUT:
            raise ConfigError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], not {timeout!r}",
                              where="timeout")
        self.timeout = float(timeout)
        self.label = label
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        argv = [self.python, str(Path(protocol.__file__).resolve())]
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        except OSError as exc:
            raise ConfigError(f"cannot start the MindSpore Lite worker with {self.python} "
                              f"(from {self.python_source}): {exc.strerror or exc}", where="python") from None
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        try:
            self.hello, _ = self._receive(what="start")
        except WorkerFailed as exc:  # no hello: the interpreter, not a model, is at fault
            said = next((line for line in reversed(exc.stderr_tail) if line.strip()), "")
            why = exc.message.removeprefix("candidate failed: ")
            raise ConfigError(f"the MindSpore Lite worker did not start with {self.python} (from {self.python_source}): "
                              f"{why}" + (f"; its last words: {said[:200]}" if said else ""), where="python") from None
        if self.hello.get("protocol") != protocol.PROTOCOL:
            self.kill()
            raise BackendError(f"{self.label} speaks protocol {self.hello.get('protocol')!r}, "
                               f"this harness {protocol.PROTOCOL}")

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    def _read_stderr(self) -> None:
        for raw in iter(self.process.stderr.readline, b""):
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    def request(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = (), *,
                timeout: float | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
        what = str(header.get("op"))
        try:
            protocol.write_message(self.process.stdin, header, arrays)
        except (BrokenPipeError, OSError):
            raise self._dead(what) from None
        return self._receive(what=what, timeout=timeout)

    def _receive(self, *, what: str, timeout: float | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        fd = self.process.stdout.fileno()

        def read_exact(count: int) -> bytes:
            chunks, left = [], count
            while left:
                remaining = deadline - time.monotonic()
                ready, _, _ = select.select([fd], [], [], max(remaining, 0))
                if not ready:
                    raise TimeoutError
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)

        try:
            message = protocol.read_message(read_exact)
        except TimeoutError:
            self.kill()
            raise WorkerFailed(f"candidate failed: {self.label} did not answer '{what}' within "
                               f"{self.timeout:g} s (killed)", stderr_tail=self.stderr_tail) from None
        except protocol.ProtocolError as exc:
            self.kill()
            raise WorkerFailed(f"candidate failed: {self.label} sent a malformed reply to '{what}' (killed): "
                               f"{exc}", stderr_tail=self.stderr_tail) from None
        except EOFError:
            raise self._dead(what) from None
        if message is None:
            raise self._dead(what)
        return message

    def _dead(self, what: str) -> WorkerFailed:
        try:
            returncode = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self.process.returncode
        self._drain.join(timeout=2)
        return WorkerFailed(f"candidate failed: {self.label} exited with {signal_name(returncode)} during '{what}'",
                            stderr_tail=self.stderr_tail)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within a few seconds."""
        if self.process.poll() is None:
            try:
                self.request({"op": "exit"}, timeout=5)
            except BackendError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
