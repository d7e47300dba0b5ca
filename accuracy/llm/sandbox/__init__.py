"""The only place in the project where untrusted (model-generated) code runs.

Each program runs in a fresh process forked by a clean helper interpreter (``_server.py``, standard
library only), in its own session and its own PID and mount namespaces, without network (an empty
network namespace, one per helper, with nothing in it that outlives a program), as an unprivileged
user when the harness is root, with CPU, address-space, file-size, process and open-file limits, an
empty temporary working directory removed afterwards (with a mount namespace: a size-capped tmpfs at
/tmp, also over /var/tmp and /dev/shm, that vanishes with the program's namespace), a minimal environment, no stdin and a capped output. On timeout the whole namespace is killed; no process
of a program is alive once its result exists.

A pass is decided by a per-run secret that the trusted wrapper writes on a private descriptor only
after the program's source (for HumanEval: the tests' ``check(...)`` call, its last statement) has
returned; exit codes and printed text mean nothing. What this does not defend against: a program that
deliberately reads the wrapper's memory in its own process to find the secret, or that rigs the
check itself (an object equal to everything); those are cheats of the test, not escapes.

Without root, the namespaces come from a user namespace (the program keeps the harness's uid outside,
with no capabilities); where even that is refused, only a session, the limits and a sweep of leftover
descendants remain. Every result's ``isolation`` says which of these held. Programs can read what is
world-readable on the host; with a mount namespace they see it read-only (Linux 5.12+) except for their
own directory, and with a network namespace they reach no network.

``Sandbox`` keeps one helper per worker; ``run_programs`` is the one-call form.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accuracy.errors import AccuracyError

SERVER = Path(__file__).with_name("_server.py")
STATUSES = ("passed", "failed", "timed out", "error")


class SandboxError(AccuracyError):
    """The sandbox itself could not run (its helper did not start or died)."""


@dataclass(frozen=True)
class Limits:
    """What one program may use. ``timeout`` is wall-clock seconds; the CPU limit sits above it."""

    timeout: float = 5.0
    cpu_seconds: int = 10
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 16 * 1024**2
    tmp_bytes: int = 64 * 1024**2  # the private /tmp (working directory), in memory, where namespaces allow
    processes: int = 32
    open_files: int = 64
    output_bytes: int = 4096

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")


@dataclass
class RunResult:
    """How one program ended. ``status`` is one of ``STATUSES``; ``passed`` only from the secret."""

    status: str
    passed: bool
    reason: str
    exception: str | None = None
    output: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    signal: int | None = None
    seconds: float | None = None
    isolation: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = Limits()


def _user_ids(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _request(source: str, secret: str, limits: Limits, *, uid: int, gid: int, filename: str = "<program>") -> dict:
    """One line of the helper protocol (``_server.py``): what to run, with which limits and secret."""
    return {
        "source": source,
        "filename": filename,
        "secret": secret,
        "timeout": limits.timeout,
        "output_bytes": limits.output_bytes,
        "uid": uid,
        "gid": gid,
        "limits": {
            "cpu_seconds": max(limits.cpu_seconds, int(limits.timeout) + 1),
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "tmp_bytes": limits.tmp_bytes,
            "processes": limits.processes,
            "open_files": limits.open_files,
        },
    }


def _judge(answer: dict, secret: str) -> RunResult:
    """Turn the helper's answer into a result. Only the exact secret on the report channel passes."""
    common = {
        "output": answer.get("output", ""),
        "output_truncated": bool(answer.get("output_truncated")),
        "exit_code": answer.get("exit_code"),
        "signal": answer.get("signal"),
        "seconds": answer.get("seconds"),
        "isolation": answer.get("isolation", {}),
    }
    if "server_error" in answer:
        return RunResult("error", False, f"sandbox failure: {answer['server_error']}", **common)
    if "setup_error" in answer:
        return RunResult("error", False, f"sandbox setup failed: {answer['setup_error']}", **common)
    report = answer.get("report", "")
    if report == secret + "\n":
        return RunResult("passed", True, "check returned", **common)
    if answer.get("timed_out"):
        return RunResult("timed out", False, "wall-clock timeout: the whole process tree was killed", **common)
    lines = report.splitlines()
    last = lines[-1] if lines else ""
    if last.startswith("setup "):
        return RunResult("error", False, f"sandbox setup failed ({last[6:]})", **common)
    if last.startswith("raised "):
        name = last[7:].strip()[:100]
        if name == "AssertionError":
            return RunResult("failed", False, "a test assertion failed", name, **common)
        return RunResult("error", False, f"the program raised {name}", name, **common)
    if common["signal"] is not None:
        return RunResult("error", False, f"killed by signal {common['signal']} (a resource limit?)", **common)
    return RunResult("error", False, f"ended without its tests returning (exit code {common['exit_code']})", **common)


class _Server:
    """One helper interpreter; it runs one program at a time."""

    def __init__(self, *, namespaces: bool = True) -> None:
        # Run directories live here; made and removed by us, so not even a killed helper leaves any.
        self.base_dir = tempfile.mkdtemp(prefix="accuracy-sandbox-")
        os.chmod(self.base_dir, 0o711)
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SERVER), self.base_dir, *([] if namespaces else ["--no-namespaces"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )

    def ask(self, request: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            return {"server_error": f"helper unreachable: {exc}"}
        if not line:
            return {"server_error": f"helper exited (code {self.process.poll()})"}
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)


class Sandbox:
    """A pool of ``workers`` helpers (cores by default); ``run`` is safe to call from many threads.

    Use as a context manager so the helpers stop with it.
    """

    def __init__(self, *, workers: int | None = None, limits: Limits = DEFAULT_LIMITS, user: str = "nobody",
                 namespaces: bool = True):
        if not sys.platform.startswith("linux"):
            raise SandboxError(f"the sandbox needs Linux (namespaces, pidfd); this is {sys.platform}")
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.limits = limits
        self.namespaces = namespaces  # False: only the fallback (session, subreaper sweep), as without root
        self.uid, self.gid = _user_ids(user)
        self._idle: queue.Queue[_Server] = queue.Queue()
        self._all: list[_Server] = []
        self._lock = threading.Lock()
        for _ in range(self.workers):
            self._add()

    def _add(self) -> None:
        try:
            server = _Server(namespaces=self.namespaces)
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox helper {SERVER}: {exc}") from None
        with self._lock:
            self._all.append(server)
        self._idle.put(server)

    def run(self, source: str, *, limits: Limits | None = None, filename: str = "<program>") -> RunResult:
        """Run ``source`` once; it passes only if its last statement returns."""
        secret = secrets.token_hex(24)
        request = _request(source, secret, limits or self.limits, uid=self.uid, gid=self.gid, filename=filename)
        server = self._idle.get()
        try:
            answer = server.ask(request)
        finally:
            if server.alive():
                self._idle.put(server)
            else:
                server.close()
                self._add()
        return _judge(answer, secret)

    def run_many(self, sources: Sequence[str], *, progress: bool = True, description: str = "sandbox",
                 filenames: Iterable[str] | None = None) -> list[RunResult]:
        """Run every source with ``workers`` in parallel, results in the input order; a progress bar on
        stderr when ``progress``."""
        names = list(filenames) if filenames is not None else ["<program>"] * len(sources)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(sources), desc=description, unit="program", file=sys.stderr, leave=False)

        def one(index: int) -> RunResult:
            result = self.run(sources[index], filename=names[index])
            if bar is not None:
                bar.update(1)
            return result

        executor = ThreadPoolExecutor(max_workers=self.workers)
        try:
            return list(executor.map(one, range(len(sources))))
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


def run_programs(sources: Sequence[str], *, workers: int | None = None, limits: Limits = DEFAULT_LIMITS,
                 progress: bool = False) -> list[RunResult]:
    """Run each source in the sandbox (``workers`` in parallel) and return their results in order."""
    with Sandbox(workers=workers, limits=limits) as sandbox:
        return sandbox.run_many(sources, progress=progress)
