"""The trusted side inside the sandbox: a fork server that runs one untrusted program per request.

Started by ``accuracy.llm.sandbox`` as ``python -I -S _server.py BASE`` (standard library only, no
site-packages, nothing of the harness imported). It reads one request per frame on stdin (``_wire``:
length-prefixed, plain data, no pickle), and with it, over the unix socket whose descriptor is its
second argument, the two
pipe ends the program will use to talk to the harness directly (calls in, replies out). For every
request it forks a *keeper* (root, its own session) that moves into a cgroup of the run (``_memory``),
unshares mount and PID namespaces, turns the host file system read-only, hides /run and the
world-writable places under fresh private mounts, and forks the *program* (``_program.py``), PID 1 of
the new PID namespace. The helper itself sits in an empty network namespace of its own, inherited by
every program. The keeper enforces the wall-clock timeout and the whole-program memory limit; when PID 1
exits or is killed the kernel kills every process left in its namespace before the keeper can reap it,
and the keeper reports only after that, so nothing of the program is alive once an answer exists.
The server drains the program's output meanwhile and answers one frame per request on stdout.

Without root the namespaces come from a user namespace where the system allows one (the program keeps
the harness's uid outside, with every capability dropped); where none can be had, the keeper becomes a
child subreaper and kills whatever descendants remain. The answer says which containment held.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _linux as linux
import _memory as memory
import _program as program
import _wire as wire

sys.path.pop(0)  # the programs get the standard library's path, nothing of ours

# What the helper established once, at start (``_prepare``): who it is and what it may unshare.
_HOST = {"as_root": False, "namespaces": False, "network": False, "limiter": None}


def _prepare(wanted: bool, base_dir: str, cgroups: bool) -> None:
    """Once per helper: without root, enter a user namespace (where allowed) so that namespaces can be
    made at all; then move into a fresh, empty network namespace that every program of this helper
    inherits. Programs of one helper run one after another and none survives its run, so sharing it
    costs nothing in isolation and saves making (and the kernel tearing down) one per program."""
    as_root = os.geteuid() == 0
    able = wanted and (as_root or linux.enter_user_namespace())
    network = False
    if able:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            network = True
        except OSError:
            pass
    limiter = memory.Limiter(os.path.basename(base_dir), allowed=cgroups and as_root)
    _HOST.update(as_root=as_root, namespaces=able, network=network, limiter=limiter)


def _isolation_attempts() -> list[tuple[int, dict]]:
    """PID and mount namespace sets to try per program, strongest first, with what each one gives."""
    none = {"pid_namespace": False, "mount_namespace": False}
    if not _HOST["namespaces"]:
        return [(0, none)]
    return [
        (linux.CLONE_NEWNS | linux.CLONE_NEWPID, {"pid_namespace": True, "mount_namespace": True}),
        (linux.CLONE_NEWPID, {"pid_namespace": True, "mount_namespace": False}),
        (0, none),
    ]


def _wait(pid: int, pidfd: int, job: dict, folders: list[str], started: float) -> tuple[bool, bool]:
    """Until the program ends, its wall-clock time is up or it goes over its memory: (timed out, memory)."""
    limiter = _HOST["limiter"]
    deadline = started + float(job["timeout"])
    memory_bytes = int(job["limits"]["memory_bytes"])
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True, False
        if select.select([pidfd], [], [], min(left, limiter.tick))[0]:
            return False, limiter.exceeded(folders, os.getpid(), memory_bytes)
        if limiter.exceeded(folders, os.getpid(), memory_bytes):
            return False, True


def _keeper(job: dict, run_dir: str, fds: dict, status_w: int, folders: list[str]) -> None:
    """Forked per request: join the run's cgroup, unshare, fork the program, enforce the timeout and the
    memory limit, report how it ended."""
    os.setsid()
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    as_root = _HOST["as_root"]
    user_namespace = _HOST["namespaces"] and not as_root
    limiter = _HOST["limiter"]
    if folders:
        limiter.join(folders)
    else:
        limiter.open_proc()
    isolation = {}
    for flags, isolation in _isolation_attempts():
        try:
            if flags:
                linux.unshare(flags)
            break
        except OSError:
            continue
    isolation = dict(isolation, network=_HOST["network"], unprivileged_user=as_root, read_only_host=False,
                     host_sockets_hidden=False, harness_files_hidden=False, user_namespaces_forbidden=linux._arch() is not None,
                     memory=limiter.version if folders else "accounting",
                     processes=("own uid" if as_root or user_namespace else "shared uid")
                     + (f" + {limiter.version} pids" if folders else ""))
    job["forbid_namespaces"] = isolation["user_namespaces_forbidden"]
    if isolation["mount_namespace"]:
        try:
            isolation["read_only_host"] = linux.private_mounts(int(job["limits"]["tmp_bytes"]))
            isolation["host_sockets_hidden"] = True
            hidden = [linux.hide(place) for place in job.get("hidden") or []]
            isolation["harness_files_hidden"] = all(hidden)
        except OSError as exc:
            os.write(status_w, wire.encode({"setup_error": str(exc), "isolation": isolation}))
            os._exit(0)
    if not isolation["pid_namespace"]:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(status_w)
        program.run(job, run_dir, fds["out"], fds["calls"], fds["replies"], mounts=isolation["mount_namespace"],
                    as_root=as_root, user_namespace=user_namespace)
    for fd in fds.values():
        os.close(fd)
    job["source"] = None
    pidfd = os.pidfd_open(pid)
    timed_out, memory_exceeded = _wait(pid, pidfd, job, folders, started)
    if timed_out or memory_exceeded:
        os.kill(pid, signal.SIGKILL)  # from the parent namespace: PID 1 cannot ignore it
    _, status = os.waitpid(pid, 0)  # returns once the kernel has emptied the PID namespace
    if not isolation["pid_namespace"]:
        linux.sweep_descendants()
    memory_exceeded = memory_exceeded or (bool(folders) and limiter.exceeded(folders, os.getpid(), 0))
    answer = {
        "timed_out": timed_out,
        "memory_exceeded": memory_exceeded,
        "seconds": round(time.monotonic() - started, 4),
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "isolation": isolation,
    }
    os.write(status_w, wire.encode(answer))
    os._exit(0)


def _read_all(out_r: int, status_r: int, output_cap: int, deadline: float) -> tuple[bytes, int, bytes]:
    """Drain the program's output (keeping ``output_cap`` bytes, closing the pipe past 64 times that)
    and the keeper's status until every writer is gone."""
    kept = bytearray()
    total = 0
    status = bytearray()
    open_fds = {out_r, status_r}
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            for fd in open_fds:
                os.close(fd)
            raise TimeoutError("the keeper did not finish")
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
                os.close(fd)
                continue
            if fd == out_r:
                total += len(chunk)
                if len(kept) < output_cap:
                    kept += chunk[: output_cap - len(kept)]
                if total > 64 * output_cap:  # an output flood: the writer gets EPIPE from now on
                    open_fds.discard(fd)
                    os.close(fd)
            else:
                status += chunk
    return bytes(kept), total, bytes(status)


def run_job(job: dict, base_dir: str, calls_r: int, replies_w: int) -> dict:
    """Run one request to completion and describe how it ended; nothing of it is alive afterwards."""
    run_dir = tempfile.mkdtemp(prefix="run-", dir=base_dir)
    if _HOST["as_root"]:
        os.chown(run_dir, int(job["uid"]), int(job["gid"]))
    limits = job["limits"]
    # +1: the keeper is in the group too
    folders = _HOST["limiter"].make(int(limits["memory_bytes"]), int(limits["processes"]) + 1)
    out_r, out_w = os.pipe()
    status_r, status_w = os.pipe()
    keeper = os.fork()
    if keeper == 0:
        try:
            os.close(out_r)
            os.close(status_r)
            _keeper(job, run_dir, {"out": out_w, "calls": calls_r, "replies": replies_w}, status_w, folders)
        except BaseException as exc:  # noqa: BLE001 - the keeper must always answer
            with contextlib.suppress(OSError):
                os.write(status_w, wire.encode({"setup_error": f"keeper: {type(exc).__name__}: {exc}"}))
        finally:
            os._exit(71)
    for fd in (out_w, status_w, calls_r, replies_w):
        os.close(fd)
    deadline = time.monotonic() + float(job["timeout"]) + 30.0
    try:
        output, total, status = _read_all(out_r, status_r, int(job["output_bytes"]), deadline)
    except TimeoutError:
        os.killpg(keeper, signal.SIGKILL)
        output, total, status = b"", 0, b""
    os.waitpid(keeper, 0)
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        answer = wire.decode(status) if status else {"setup_error": "the keeper ended without an answer"}
    except wire.WireError:
        answer = {"setup_error": "the keeper's answer was cut short"}
    answer.update(output=output.decode("utf-8", errors="replace"), output_bytes=total,
                  output_truncated=total > len(output))
    return answer


def serve(base_dir: str, control_fd: int, *, namespaces: bool = True, cgroups: bool = True) -> None:
    """Answer requests until stdin closes, with run directories under ``base_dir`` (the harness made it
    and removes it). The server itself never runs untrusted code. It stops when stdin closes, which
    the kernel does when the harness dies (a parent-death signal would follow the harness *thread*
    that started it, and worker threads come and go)."""
    _prepare(namespaces, base_dir, cgroups)
    control = socket.socket(fileno=control_fd)
    try:
        while True:
            frame = wire.read_frame(0)
            if frame is None:
                return
            fds: list[int] = []
            try:
                _, fds, _, _ = socket.recv_fds(control, 1, 2)
                job = wire.decode(frame)
                if len(fds) != 2 or not isinstance(job, dict):
                    raise OSError("a request needs a job and its two pipe ends")
            except Exception as exc:  # noqa: BLE001 - report the failure, keep serving
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                wire.write_frame(1, wire.encode({"server_error": f"{type(exc).__name__}: {exc}"}))
                continue
            try:
                answer = run_job(job, base_dir, fds[0], fds[1])
            except Exception as exc:  # noqa: BLE001 - report the failure, keep serving
                answer = {"server_error": f"{type(exc).__name__}: {exc}"}
            wire.write_frame(1, wire.encode(answer))
    finally:
        _HOST["limiter"].close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when we stop (stdin closes)
    try:
        serve(sys.argv[1], int(sys.argv[2]), namespaces="--no-namespaces" not in sys.argv[3:],
              cgroups="--no-cgroups" not in sys.argv[3:])
    except BrokenPipeError:
        pass
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
