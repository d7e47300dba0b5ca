"""Linux primitives for the sandbox helper: namespaces, mounts, capabilities, limits, reaping.

Standard library only (ctypes), because the helper runs as ``python -I -S`` with nothing of the
harness importable; ``_server.py`` loads this file from its own folder.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MOUNT_ATTR_RDONLY = 1
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
SYS_MOUNT_SETATTR = 442  # one number on all architectures but alpha (the unified syscall table)
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
SECBIT_NOROOT = 1
SECBIT_NOROOT_LOCKED = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
SOCKET_PLACES = ("/run", "/var/run")  # where host daemons keep their unix sockets: hidden under empty mounts


libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    check(libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()
    check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def prctl(option: int, value: int) -> None:
    check(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), 0, 0, 0), "prctl")


def enter_user_namespace() -> bool:
    """Without root: a user namespace in which this process is root (mapped to its own uid outside),
    which allows the other namespaces. False where the system forbids it."""
    uid, gid = os.getuid(), os.getgid()
    try:
        unshare(CLONE_NEWUSER)
    except OSError:
        return False
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    except OSError:  # e.g. an LSM that allows the namespace but no mapping: carry on without namespaces
        return False
    return True


def drop_capabilities() -> None:
    """In a user namespace the program is uid 0 there: take away every capability, for good (also
    across exec), so it cannot undo its mounts or regain anything."""
    prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED)
    for capability in range(64):
        if libc.prctl(ctypes.c_int(PR_CAPBSET_DROP), ctypes.c_ulong(capability), 0, 0, 0) != 0:
            break
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), "capset")


def blocking_ancestor(path: str) -> str | None:
    """The highest directory above ``path`` that other users cannot enter (e.g. /root, mode 700)."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    current = ""
    for part in parts:
        current += os.sep + part
        try:
            if not os.stat(current).st_mode & 0o001:
                return current
        except OSError:
            return None
    return None


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def set_read_only(path: str, read_only: bool, *, recursive: bool) -> bool:
    """mount_setattr(2) (Linux 5.12+): flip the read-only attribute of the mount(s) at ``path``."""
    attr = MountAttr(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    return libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), flags, ctypes.byref(attr),
                         ctypes.sizeof(attr)) == 0


def private_mounts(tmp_bytes: int) -> bool:
    """In the keeper, in the new mount namespace (before the program exists): the whole host file
    system becomes read-only; /tmp becomes a fresh tmpfs of ``tmp_bytes`` (the program's working
    directory and its one writable place, gone with the namespace), also mounted over the other
    world-writable places; the interpreter's own files stay reachable for the dropped user. Returns
    whether the read-only view could be had (it needs Linux 5.12)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    prefix = sys.base_prefix
    blocker = blocking_ancestor(prefix)
    if blocker is not None and blocker != prefix:
        # e.g. /root/.pyenv/...: lay an empty tmpfs over /root and bring back only the interpreter.
        keep = os.open(prefix, os.O_PATH | os.O_DIRECTORY)
        mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        os.makedirs(prefix, exist_ok=True)
        mount(f"/proc/self/fd/{keep}", prefix, None, MS_BIND | MS_REC)
        os.close(keep)
    read_only = set_read_only("/", True, recursive=True)
    for place in SOCKET_PLACES:  # an empty, read-only tmpfs: no host socket (a /var/run link follows /run)
        if os.path.isdir(place) and not os.path.islink(place):
            mount("tmpfs", place, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0755")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(tmp_bytes)},mode=1777")
    for place in WORLD_WRITABLE[1:]:
        if os.path.isdir(place):
            mount("/tmp", place, None, MS_BIND)  # a bind keeps the tmpfs's own (writable) flags
    return read_only


def hideable(place: str) -> bool:
    """Whether an empty mount over ``place`` leaves the program its interpreter: not "/", nor a folder
    holding the interpreter's prefix or its standard library (``--problems /usr/lib/x.jsonl`` must not
    hide /usr/lib, where the program's imports come from)."""
    place = os.path.realpath(place).rstrip("/") + "/"
    needed = {sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.__file__), os.path.dirname(resource.__file__)}
    return place != "/" and not any((os.path.realpath(path).rstrip("/") + "/").startswith(place) for path in needed)


def hide(place: str) -> bool:
    """In the keeper, after ``private_mounts``: an empty read-only tmpfs over the folder ``place`` (the
    harness's environment, the problem set with its tests and canonical solutions), unless it holds the
    interpreter the program runs on. Whether it is hidden now."""
    place = os.path.realpath(place)
    if not hideable(place):
        return False
    if not os.path.isdir(place):  # nothing there in this view (e.g. under the fresh /tmp)
        return True
    mount("tmpfs", place, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0755")
    return True


# seccomp: refuse every way into a new namespace (unshare, clone with namespace flags, setns) and
# clone3, whose flags a filter cannot read (libc falls back to clone on ENOSYS).
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
NAMESPACE_FLAGS = 0x7E020080  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
# audit arch -> (unshare, clone, setns, clone3)
SYSCALLS = {0xC000003E: (272, 56, 308, 435),  # x86_64
            0xC00000B7: (97, 220, 268, 435)}  # aarch64


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def _arch() -> int | None:
    machine = os.uname().machine
    return {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(machine)


def forbid_namespaces() -> bool:
    """Install the seccomp filter (needs no_new_privs first); False on an architecture it does not know."""
    arch = _arch()
    if arch is None:
        return False
    unshare_nr, clone_nr, setns_nr, clone3_nr = SYSCALLS[arch]
    ld_w_abs, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    eperm, enosys = SECCOMP_RET_ERRNO | 1, SECCOMP_RET_ERRNO | 38
    # jump offsets count from the next instruction
    program = [
        (ld_w_abs, 0, 0, 4),                  # 0: arch
        (jeq, 1, 0, arch),                    # 1: our ABI -> 3
        (ret, 0, 0, eperm),                   # 2: another ABI (i386/x32 calls): refused
        (ld_w_abs, 0, 0, 0),                  # 3: syscall number
        (jeq, 6, 0, unshare_nr),              # 4: -> 11
        (jeq, 5, 0, setns_nr),                # 5: -> 11
        (jeq, 6, 0, clone3_nr),               # 6: -> 13
        (jeq, 0, 4, clone_nr),                # 7: clone -> 8, anything else -> 12
        (ld_w_abs, 0, 0, 16),                 # 8: clone flags (args[0], low word)
        (jset, 1, 0, NAMESPACE_FLAGS),        # 9: a namespace flag -> 11
        (ret, 0, 0, SECCOMP_RET_ALLOW),       # 10
        (ret, 0, 0, eperm),                   # 11
        (ret, 0, 0, SECCOMP_RET_ALLOW),       # 12
        (ret, 0, 0, enosys),                  # 13
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*instruction) for instruction in program])
    prog = SockFprog(len(program), filters)
    check(libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0),
          "seccomp")
    return True


def set_limit(kind: int, value: int) -> None:
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        _soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY and value > hard:
            resource.setrlimit(kind, (hard, hard))


def sweep_descendants() -> None:
    """Without a PID namespace: kill every process that was reparented to this subreaper."""
    me = os.getpid()
    while True:
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found = True
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        try:
            while os.waitpid(-1, os.WNOHANG if found else 0)[0] > 0:
                pass
        except ChildProcessError:
            if not found:
                return
