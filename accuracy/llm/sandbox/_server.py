"""The trusted side inside the sandbox: a fork server that runs one untrusted program per request.

Started by ``accuracy.llm.sandbox`` as ``python -I -S _server.py`` (standard library only, no
site-packages, nothing of the harness imported), it reads one JSON request per line on stdin and
answers one JSON line on stdout. For every request it forks a *keeper* (root, its own session) that
unshares mount and PID namespaces, turns the host file system read-only except for a fresh, size-capped
tmpfs at /tmp (the program's working directory, also over the other world-writable places) and forks
the *program* process, PID 1 of the new PID namespace. The helper itself sits in an empty network
namespace of its own, inherited by every program. The program process mounts its /proc, sets resource limits, drops to an
unprivileged user, closes every inherited descriptor and executes the source. Only when the source
returns does it write the run's secret on the report descriptor; the harness, not the program, decides
what counts as a pass. When PID 1 exits or is killed at the timeout, the kernel kills every process
left in its namespace, setsid'd double forks included, before the keeper can reap it; the keeper
reports after that, so nothing of the program is alive once a result exists.

Without root the namespaces come from a user namespace where the system allows one (the program keeps
the harness's uid outside, with every capability dropped); where none can be had, the keeper becomes a
child subreaper and kills whatever descendants remain. The answer says which isolation was in force.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _linux as linux

sys.path.pop(0)  # the programs get the standard library's path, nothing of ours

REPORT_FD = 3
# What the helper established once, at start (``_prepare``): who it is and what it may unshare.
_HOST = {"as_root": False, "namespaces": False, "network": False}


def _prepare(wanted: bool) -> None:
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
    _HOST.update(as_root=as_root, namespaces=able, network=network)


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


def _program(job: dict, secret: str, run_dir: str, out_w: int, report_w: int, mounts: bool, as_root: bool,
             user_namespace: bool) -> None:
    """The program process: confine itself, run the source, report the secret only if it returned."""
    try:
        if mounts:  # made by the keeper; /proc has to be mounted from inside the new PID namespace
            linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
            os.chdir("/tmp")
        else:
            os.chdir(run_dir)
        limits = job["limits"]
        linux.set_limit(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
        linux.set_limit(resource.RLIMIT_AS, int(limits["memory_bytes"]))
        linux.set_limit(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
        linux.set_limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))
        linux.set_limit(resource.RLIMIT_CORE, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(report_w, REPORT_FD)
        os.closerange(REPORT_FD + 1, 1 << 16)
        if as_root or user_namespace:  # otherwise the count would include all of the harness user's processes
            linux.set_limit(resource.RLIMIT_NPROC, int(limits["processes"]))
        if as_root:
            uid, gid = int(job["uid"]), int(job["gid"])
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        elif user_namespace:
            linux.drop_capabilities()
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)  # no setuid binary (su, mount ...) gives anything back
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # credentials changed: set again, after setuid
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.getcwd(), "LANG": "C.UTF-8",
                           "TMPDIR": os.getcwd()})
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the program's streams, for its whole life
        sys.stdout = open(1, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
        source, filename = job["source"], job.get("filename", "<program>")
    except BaseException as exc:  # noqa: BLE001 - a confinement step failed: never run the source
        os.write(2, f"sandbox setup failed: {type(exc).__name__}: {exc}\n".encode(errors="replace"))
        _report(f"setup {type(exc).__name__}")
        os._exit(70)
    job = None  # the program gets neither the request nor, by name, the secret
    namespace = {"__name__": "__program__", "__builtins__": __builtins__}
    try:
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - confined above: the point
    except BaseException as exc:  # noqa: BLE001 - whatever the program raised is its failure
        _flush()
        with contextlib.suppress(BaseException):  # the program may have broken stderr or traceback
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next, limit=-5, file=sys.stderr)
        _flush()
        _report(f"raised {type(exc).__name__}")
        os._exit(1)
    _flush()
    _report(secret)
    os._exit(0)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a closed or broken stream is the program's doing
            stream.flush()


def _report(text: str) -> None:
    try:
        os.write(REPORT_FD, text.encode() + b"\n")
    except OSError:
        pass


def _keeper(job: dict, run_dir: str, out_w: int, report_w: int, status_w: int) -> None:
    """Forked per request: unshare, fork the program, enforce the wall-clock timeout, report how it ended."""
    os.setsid()
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    as_root = _HOST["as_root"]
    user_namespace = _HOST["namespaces"] and not as_root
    isolation = {}
    for flags, isolation in _isolation_attempts():
        try:
            if flags:
                linux.unshare(flags)
            break
        except OSError:
            continue
    isolation = dict(isolation, network=_HOST["network"], unprivileged_user=as_root, read_only_host=False)
    if isolation["mount_namespace"]:
        try:
            isolation["read_only_host"] = linux.private_mounts(int(job["limits"]["tmp_bytes"]))
        except OSError as exc:
            os.write(status_w, json.dumps({"setup_error": str(exc), "isolation": isolation}).encode())
            os._exit(0)
    if not isolation["pid_namespace"]:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(status_w)
        _program(job, job["secret"], run_dir, out_w, report_w, isolation["mount_namespace"], as_root,
                 user_namespace)
    job["secret"] = None
    os.close(out_w)
    os.close(report_w)
    timed_out = False
    pidfd = os.pidfd_open(pid)
    if not select.select([pidfd], [], [], float(job["timeout"]))[0]:
        timed_out = True
        os.kill(pid, signal.SIGKILL)  # from the parent namespace: PID 1 cannot ignore it
    _, status = os.waitpid(pid, 0)  # returns once the kernel has emptied the PID namespace
    if not isolation["pid_namespace"]:
        linux.sweep_descendants()
    answer = {
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 4),
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "isolation": isolation,
    }
    os.write(status_w, json.dumps(answer).encode())
    os._exit(0)


def _read_all(out_r: int, report_r: int, status_r: int, output_cap: int, deadline: float) -> tuple[bytes, int, bytes, bytes]:
    """Drain the program's output (keeping ``output_cap`` bytes, closing the pipe past 64 times that),
    its report and the keeper's status until every writer is gone."""
    kept = bytearray()
    total = 0
    report = bytearray()
    status = bytearray()
    open_fds = {out_r, report_r, status_r}
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
            elif fd == report_r:
                if len(report) < 4096:
                    report += chunk
            else:
                status += chunk
    return bytes(kept), total, bytes(report), bytes(status)


def run_job(job: dict, base_dir: str) -> dict:
    """Run one request to completion and describe how it ended; nothing of it is alive afterwards."""
    run_dir = tempfile.mkdtemp(prefix="run-", dir=base_dir)
    if _HOST["as_root"]:
        os.chown(run_dir, int(job["uid"]), int(job["gid"]))
    out_r, out_w = os.pipe()
    report_r, report_w = os.pipe()
    status_r, status_w = os.pipe()
    keeper = os.fork()
    if keeper == 0:
        try:
            os.close(out_r)
            os.close(report_r)
            os.close(status_r)
            _keeper(job, run_dir, out_w, report_w, status_w)
        except BaseException as exc:  # noqa: BLE001 - the keeper must always answer
            with contextlib.suppress(OSError):
                os.write(status_w, json.dumps({"setup_error": f"keeper: {type(exc).__name__}: {exc}"}).encode())
        finally:
            os._exit(71)
    for fd in (out_w, report_w, status_w):
        os.close(fd)
    deadline = time.monotonic() + float(job["timeout"]) + 30.0
    try:
        output, total, report, status = _read_all(out_r, report_r, status_r, int(job["output_bytes"]), deadline)
    except TimeoutError:
        os.killpg(keeper, signal.SIGKILL)
        output, total, report, status = b"", 0, b"", b""
    os.waitpid(keeper, 0)
    shutil.rmtree(run_dir, ignore_errors=True)
    answer = json.loads(status) if status else {"setup_error": "the keeper ended without an answer"}
    answer.update(
        output=output.decode("utf-8", errors="replace"),
        output_bytes=total,
        output_truncated=total > len(output),
        report=report.decode("utf-8", errors="replace")[:4096],
    )
    return answer


def serve(base_dir: str, *, namespaces: bool = True) -> None:
    """Answer requests until stdin closes, with run directories under ``base_dir`` (the harness made it
    and removes it). The server itself never runs untrusted code. It stops when stdin closes, which
    the kernel does when the harness dies (a parent-death signal would follow the harness *thread*
    that started it, and worker threads come and go)."""
    _prepare(namespaces)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        if not line.strip():
            continue
        try:
            answer = run_job(json.loads(line), base_dir)
        except Exception as exc:  # noqa: BLE001 - report the failure, keep serving
            answer = {"server_error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when we stop (stdin closes)
    try:
        serve(sys.argv[1], namespaces="--no-namespaces" not in sys.argv[2:])
    except BrokenPipeError:
        pass
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
