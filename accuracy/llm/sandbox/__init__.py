"""The only place in the project where untrusted (model-generated) code runs.

Each program runs in a fresh process forked by a clean helper interpreter (``_server.py``, standard
library only), in its own session and its own PID and mount namespaces, without network (an empty
network namespace per helper), as a user id of its own when the harness is root (one per helper, so
the process limit counts only that program), with CPU, address-space, file-size, process and
open-file limits, a memory limit for the whole program (all its processes: a cgroup per run, v2 or v1,
where one can be made, else accounting by its keeper), no way into new namespaces (seccomp), an empty
size-capped private /tmp (also over /var/tmp and /dev/shm) as its working directory, /run, the
harness's virtual environment and any ``hidden`` folder (a problem set) under empty mounts, a
read-only view of the rest of the host, a minimal environment, no stdin and a capped output. On timeout or over memory the whole namespace is killed; no process of a
program is alive once its result exists.

Nothing the program says decides a verdict: a ``Session`` runs the source, then lets the harness call
one of its functions with plain data (``_wire``: numbers, strings, bytes, lists, tuples, dicts, sets,
None) and get plain data back, rebuilt as exact builtin objects. Whatever judges the answers (for
HumanEval: the problem's ``check``) runs in the harness, where the program cannot reach.

Without root, the namespaces come from a user namespace (the program keeps the harness's uid outside,
with no capabilities); where even that is refused, only a session, the limits and a sweep of leftover
descendants remain. Every result's ``isolation`` says which of these held.

``Sandbox`` keeps one helper per worker; ``run_programs`` is the one-call form of ``Sandbox.run``.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accuracy.errors import AccuracyError
from accuracy.llm.sandbox import _memory, _wire
from accuracy.llm.sandbox._wire import WireError
from accuracy.llm.sandbox.session import (  # noqa: F401 - the package's interface
    CandidateError,
    Ending,
    Session,
    SessionOver,
    _DeadSession,
    _ending,
)

SERVER = Path(__file__).with_name("_server.py")
RUN_STATUSES = ("completed", "raised", "timed out", "out of memory", "error")
UID_BASE = 0x40000000  # program uids (as root): UID_BASE + the helper's pid, a user no one else is
MAX_TIMEOUT = 24 * 3600.0


class SandboxError(AccuracyError):
    """The sandbox itself could not run (its helper did not start or died)."""


@dataclass(frozen=True)
class Limits:
    """What one program may use. ``timeout`` is wall-clock seconds for the whole run (the source and
    every call); the CPU limit sits above it. ``memory_bytes`` holds for all its processes together."""

    timeout: float = 5.0
    cpu_seconds: int = 10
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 16 * 1024**2
    tmp_bytes: int = 64 * 1024**2  # the private /tmp (working directory), in memory, where namespaces allow
    processes: int = 32
    open_files: int = 64
    output_bytes: int = 4096

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
                and 0 < self.timeout <= MAX_TIMEOUT):
            raise ValueError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {self.timeout}")
        for name in ("cpu_seconds", "memory_bytes", "file_bytes", "tmp_bytes", "processes", "open_files",
                     "output_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value < 2**62:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class RunResult:
    """How one program ran (``Sandbox.run``); ``status`` is one of ``RUN_STATUSES``. "completed" is
    the program's own word that its source returned: information, not a verdict."""

    status: str
    reason: str
    exception: str | None = None
    output: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    signal: int | None = None
    seconds: float | None = None
    isolation: dict = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = Limits()


class _Server:
    """One helper interpreter; it runs one program at a time."""

    def __init__(self, *, namespaces: bool = True, cgroups: bool = True) -> None:
        # Run directories live here; made and removed by us, so not even a killed helper leaves any.
        self.base_dir = tempfile.mkdtemp(prefix="accuracy-sandbox-")
        os.chmod(self.base_dir, 0o711)
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        flags = [*([] if namespaces else ["--no-namespaces"]), *([] if cgroups else ["--no-cgroups"])]
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SERVER), self.base_dir, str(theirs.fileno()), *flags],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        finally:
            theirs.close()
        self.uid = self.gid = UID_BASE + self.process.pid

    def start(self, job: dict) -> tuple[int, int]:
        """Send a job and the program's two pipe ends; ours (calls in, replies out) are returned."""
        calls_r, calls_w = os.pipe()
        replies_r, replies_w = os.pipe()
        try:
            _wire.write_frame(self.process.stdin.fileno(), _wire.encode(job))
            socket.send_fds(self.control, [b"j"], [calls_r, replies_w])
        except OSError:
            os.close(calls_w)
            os.close(replies_r)
            raise
        finally:
            os.close(calls_r)
            os.close(replies_w)
        return calls_w, replies_r

    def answer(self, wait: float) -> dict:
        """The helper's account of the last job; a ``server_error`` one if it is dead or silent."""
        fd = self.process.stdout.fileno()
        if not select.select([fd], [], [], wait)[0]:
            self.process.kill()
            return {"server_error": "the helper did not answer in time"}
        try:
            frame = _wire.read_frame(fd)
            return _wire.decode(frame) if frame is not None else {
                "server_error": f"helper exited (code {self.process.poll()})"}
        except (OSError, WireError) as exc:
            self.process.kill()
            return {"server_error": f"helper unreachable: {exc}"}

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.control.close()
        _memory.remove_leftovers(os.path.basename(self.base_dir))
        shutil.rmtree(self.base_dir, ignore_errors=True)


def harness_environment() -> list[str]:
    """Folders of the harness a program has no business reading: the virtual environment it runs in
    (its packages, and the problem sets they ship with tests and canonical solutions)."""
    return [sys.prefix] if sys.prefix != sys.base_prefix else []


def _job(source: str, entry: str | None, limits: Limits, server: _Server, filename: str,
         hidden: Sequence[str] = ()) -> dict:
    return {
        "source": source,
        "hidden": [str(place) for place in hidden],
        "filename": filename,
        "entry": entry,
        "timeout": float(limits.timeout),
        "output_bytes": limits.output_bytes,
        "uid": server.uid,
        "gid": server.gid,
        "limits": {
            "cpu_seconds": max(limits.cpu_seconds, int(limits.timeout) + 1),
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "tmp_bytes": limits.tmp_bytes,
            "processes": limits.processes,
            "open_files": limits.open_files,
        },
    }


class Sandbox:
    """A pool of ``workers`` helpers (cores by default); ``session`` and ``run`` are safe to call from
    many threads. Use as a context manager so the helpers stop with it. ``namespaces=False`` and
    ``cgroups=False`` force the weaker fallbacks (as on hosts without them), for tests. ``hidden``
    folders (and the harness's virtual environment) lie under empty mounts in every program's view."""

    def __init__(self, *, workers: int | None = None, limits: Limits = DEFAULT_LIMITS, namespaces: bool = True,
                 cgroups: bool = True, hidden: Sequence[str | os.PathLike] = ()):
        if not sys.platform.startswith("linux"):
            raise SandboxError(f"the sandbox needs Linux (namespaces, pidfd); this is {sys.platform}")
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.limits = limits
        self.namespaces = namespaces
        self.cgroups = cgroups
        self.hidden = [*harness_environment(), *map(os.fspath, hidden)]  # empty mounts over them, where mounts exist
        self._idle: queue.Queue[_Server] = queue.Queue()
        self._all: list[_Server] = []
        self._lock = threading.Lock()
        for _ in range(self.workers):
            self._add()

    def _add(self) -> None:
        try:
            server = _Server(namespaces=self.namespaces, cgroups=self.cgroups)
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox helper {SERVER}: {exc}") from None
        with self._lock:
            self._all.append(server)
        self._idle.put(server)

    @contextlib.contextmanager
    def session(self, source: str, entry: str | None, *, limits: Limits | None = None,
                filename: str = "<program>") -> Iterator[Session]:
        """Run ``source`` in a fresh program and yield its ``Session`` (already started: ``over`` is
        set if the source did not run to its end). ``session.ending`` holds how it ended afterwards."""
        limits = limits or self.limits
        server = self._idle.get()
        try:
            try:
                calls_w, replies_r = server.start(_job(source, entry, limits, server, filename, self.hidden))
            except OSError as exc:
                yield _DeadSession(_ending({"server_error": f"helper unreachable: {exc}"}))
                return
            session = Session(server, calls_w, replies_r, limits)
            with contextlib.suppress(SessionOver):
                session.start()
            try:
                yield session
            finally:
                session.ending = session.finish()
        finally:
            if server.alive():
                self._idle.put(server)
            else:
                with self._lock:
                    if server in self._all:
                        self._all.remove(server)
                server.close()
                self._add()

    def run(self, source: str, *, limits: Limits | None = None, filename: str = "<program>") -> RunResult:
        """Run ``source`` once (no calls) and say how it ended."""
        with self.session(source, None, limits=limits, filename=filename) as session:
            pass
        return run_result(session)

    def run_many(self, sources: Sequence[str], *, progress: bool = True, description: str = "sandbox",
                 filenames: Iterable[str] | None = None) -> list[RunResult]:
        """``run`` every source with ``workers`` in parallel, results in the input order."""
        names = list(filenames) if filenames is not None else ["<program>"] * len(sources)
        return self.map(lambda index: self.run(sources[index], filename=names[index]), len(sources),
                        progress=progress, description=description)

    def map(self, task, count: int, *, progress: bool = True, description: str = "sandbox") -> list:
        """``task(i)`` for i in range(count) on ``workers`` threads, in order, with a progress bar on
        stderr when ``progress``."""
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=count, desc=description, unit="program", file=sys.stderr, leave=False)

        def one(index: int):
            result = task(index)
            if bar is not None:
                bar.update(1)
            return result

        executor = ThreadPoolExecutor(max_workers=self.workers)
        try:
            return list(executor.map(one, range(count)))
        finally:  # on Ctrl-C: programs not started yet are dropped, running ones end within their timeout
            executor.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()

    def close(self) -> None:
        with self._lock:
            servers, self._all = self._all, []
        for server in servers:
            server.close()

    def __enter__(self) -> Sandbox:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def run_result(session: Session) -> RunResult:
    """How a session's program ended, as a ``RunResult``."""
    ending = session.ending
    common = {"output": ending.output, "output_truncated": ending.output_truncated, "exit_code": ending.exit_code,
              "signal": ending.signal, "seconds": ending.seconds, "isolation": ending.isolation}
    if ending.error:
        return RunResult("error", f"sandbox failure: {ending.error}", **common)
    if ending.memory_exceeded:
        return RunResult("out of memory", "over its memory limit: the whole process tree was killed", **common)
    if ending.timed_out:
        return RunResult("timed out", "wall-clock timeout: the whole process tree was killed", **common)
    if session.raised is not None:
        return RunResult("raised", f"the program raised {session.raised[0]}", session.raised[0], **common)
    if session.over is not None:
        return RunResult("error", session.over, **common)
    return RunResult("completed", "the source ran to its end", **common)


def run_programs(sources: Sequence[str], *, workers: int | None = None, limits: Limits = DEFAULT_LIMITS,
                 progress: bool = False) -> list[RunResult]:
    """Run each source in the sandbox (``workers`` in parallel) and return their results in order."""
    with Sandbox(workers=workers, limits=limits) as sandbox:
        return sandbox.run_many(sources, progress=progress)
