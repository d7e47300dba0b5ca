"""The program process of a sandbox run: confine itself, run the untrusted source, then serve calls.

Forked by the keeper (``_server.py``); standard library only. Descriptors: 0 is /dev/null, 1 and 2
the captured output, ``CALLS`` the harness's requests, ``REPLIES`` the answers. After the source
has run, each request is an encoded ``("call", arguments)`` for the function named ``entry``; each
reply is an encoded tuple: ``("ready",)``, ``("ok", value)``, ``("raised", name, message)``,
``("unsupported", message)`` or ``("setup", message)``. A function among the arguments (a key
function the tests pass) arrives as a stub: calling it sends ``("callback", index, arguments)`` and
waits for ``("return", value)`` or ``("raise", name, message)`` from the harness, which runs it. Everything here runs beside untrusted code
and may be tampered with by it: the harness treats every reply as claims in plain data, and decides
nothing from it but the value a call returned.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import traceback

import _linux as linux
import _wire as wire

CALLS, REPLIES = 3, 4


def _reply(*message: object) -> None:
    try:
        payload = wire.encode(message)
    except BaseException as exc:  # noqa: BLE001 - a value that cannot cross (or a hostile one)
        payload = wire.encode(("unsupported", _describe(exc)[1]))
    try:
        wire.write_frame(REPLIES, payload)
    except OSError:
        os._exit(1)


def _exception(name: str, message: str) -> Exception:
    import builtins

    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        with contextlib.suppress(Exception):
            return kind(message)
    return RuntimeError(f"{name}: {message}")


def _callback(index: int):
    """A stub for the harness's function ``index``: each call goes back to the harness."""

    def function(*args):
        try:
            payload = wire.encode(("callback", index, args))
        except wire.WireError as exc:
            raise TypeError(f"a callback argument cannot cross: {exc}") from None
        wire.write_frame(REPLIES, payload)
        frame = wire.read_frame(CALLS)
        if frame is None:
            _flush()
            os._exit(0)
        answer = wire.decode(frame, _callback)
        if answer[0] == "return":
            return answer[1]
        raise _exception(answer[1], answer[2])

    return function


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a closed or broken stream is the program's doing
            stream.flush()


def _describe(exc: BaseException) -> tuple[str, str]:
    try:
        return type(exc).__name__[:100], str(exc)[:300]
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "Exception", ""


def _confine(job: dict, run_dir: str, out_w: int, calls_r: int, replies_w: int, *, mounts: bool, as_root: bool,
             user_namespace: bool) -> None:
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
    for source, target in ((null, 0), (out_w, 1), (out_w, 2), (calls_r, 50), (replies_w, 51)):
        os.dup2(source, target)
    os.dup2(50, CALLS)
    os.dup2(51, REPLIES)
    os.closerange(REPLIES + 1, 1 << 16)
    if as_root or user_namespace:  # a uid of its own: the count is this program's processes only
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
    if job["forbid_namespaces"] and not linux.forbid_namespaces():
        raise OSError("no seccomp filter for this architecture")
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.getcwd(), "LANG": "C.UTF-8",
                       "TMPDIR": os.getcwd()})
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the program's streams, for its whole life
    sys.stdout = open(1, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115


def run(job: dict, run_dir: str, out_w: int, calls_r: int, replies_w: int, **where: bool) -> None:
    """Never returns: confine, run the source, serve calls of ``job["entry"]`` until the harness hangs up."""
    try:
        _confine(job, run_dir, out_w, calls_r, replies_w, **where)
        source, filename, entry = job["source"], job["filename"], job["entry"]
    except BaseException as exc:  # noqa: BLE001 - a confinement step failed: never run the source
        with contextlib.suppress(OSError):
            os.dup2(replies_w, REPLIES)
            os.write(2, f"sandbox setup failed: {type(exc).__name__}: {exc}\n".encode(errors="replace"))
        _reply("setup", f"{type(exc).__name__}: {exc}")
        os._exit(70)
    job = None
    namespace = {"__name__": "__program__", "__builtins__": __builtins__}
    try:
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - confined above: the point
    except BaseException as exc:  # noqa: BLE001 - whatever the program raised is its failure
        _flush()
        with contextlib.suppress(BaseException):  # the program may have broken stderr or traceback
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next, limit=-5, file=sys.stderr)
        _flush()
        _reply("raised", *_describe(exc))
        os._exit(1)
    _reply("ready")
    while entry is not None:
        try:
            frame = wire.read_frame(CALLS)
        except (OSError, wire.WireError):
            break
        if frame is None:
            break
        try:
            _, args = wire.decode(frame, _callback)
            result = namespace[entry](*args)
        except BaseException as exc:  # noqa: BLE001 - the candidate's exception is its answer
            _reply("raised", *_describe(exc))
            continue
        _reply("ok", result)
    _flush()
    os._exit(0)
