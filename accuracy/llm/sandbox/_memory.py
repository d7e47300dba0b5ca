"""Whole-program limits for the sandbox helper: memory and process count over *all* of a program's
processes, by a control group for the helper's runs where one can be made, else by accounting in
the keeper.

Standard library only (loaded by ``_server.py`` under ``python -I -S``). Probed once per helper, in
this order: cgroup v2 (our cgroup's children get the ``memory``/``pids`` controllers), cgroup v1 (the
``memory`` and ``pids`` hierarchies are mounted and writable), else none: the keeper then sums the
resident memory of the program's process tree a few times a second and kills the tree past the
limit (the per-process address-space limit and a per-program uid's process limit still hold).
"""

from __future__ import annotations

import os

TICK_CGROUP = 0.05
TICK_ACCOUNTING = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _mounts() -> list[tuple[str, str, set]]:
    """(mount point, file system type, super options) of each cgroup mount."""
    found = []
    for line in _read("/proc/self/mountinfo").splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """Controller (or "" for cgroup v2) -> this process's cgroup path."""
    paths = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _probe_v2(name: str) -> list[str] | None:
    own = _own_paths().get("")
    for point, kind, _ in _mounts():
        if kind != "cgroup2" or own is None:
            continue
        parent = os.path.join(point, own.lstrip("/"))
        try:
            enabled = _read(os.path.join(parent, "cgroup.subtree_control")).split()
            if "memory" not in enabled or "pids" not in enabled:
                return None
            folder = os.path.join(parent, name)
            os.makedirs(folder, exist_ok=True)
            _write(os.path.join(folder, "cgroup.subtree_control"), "+memory +pids")
            return [folder]
        except OSError:
            return None
    return None


def _probe_v1(name: str) -> list[str] | None:
    own = _own_paths()
    folders = []
    for controller in ("memory", "pids"):
        point = next((p for p, kind, options in _mounts() if kind == "cgroup" and controller in options), None)
        if point is None or controller not in own:
            return None
        folder = os.path.join(point, own[controller].lstrip("/"), name)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            return None
        folders.append(folder)
    return folders


class Limiter:
    """One per helper: makes, joins, watches and removes a cgroup per run (or accounts without one)."""

    def __init__(self, name: str, *, allowed: bool = True) -> None:
        self.name = name
        self.version = None
        self.parents: list[str] = []
        if allowed:
            for version, probe in (("cgroup v2", _probe_v2), ("cgroup v1", _probe_v1)):
                parents = probe(name)
                if parents:
                    self.version, self.parents = version, parents
                    break
        self.tick = TICK_CGROUP if self.version else TICK_ACCOUNTING
        self.proc = -1  # the host's /proc, for accounting: opened by each keeper (``open_proc``)
        self.limits: tuple[int, int] | None = None  # what the run group is set to now
        self.baseline = 0  # its OOM count when the current run began

    def open_proc(self) -> None:
        """In the keeper, before the program mounts its /proc over the keeper's view."""
        self.proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)

    @property
    def kind(self) -> str:
        return self.version or "accounting"

    def make(self, memory_bytes: int, processes: int) -> list[str]:
        """The helper's run cgroup with these limits, for the next program; [] when there are no
        cgroups (or setting them failed). One group serves the helper's runs one after another (no
        process of a run outlives it), which saves making and tearing one down per program; what
        counts as this run's OOM is measured from here."""
        if not self.version:
            return []
        folders = [os.path.join(parent, "run") for parent in self.parents]
        try:
            for folder in folders:
                if not os.path.isdir(folder):
                    os.mkdir(folder)
            if self.limits != (memory_bytes, processes):
                self.limits = None
                if self.version == "cgroup v2":
                    _write(os.path.join(folders[0], "memory.max"), str(memory_bytes))
                    if os.path.exists(os.path.join(folders[0], "memory.swap.max")):
                        _write(os.path.join(folders[0], "memory.swap.max"), "0")
                    _write(os.path.join(folders[0], "pids.max"), str(processes))
                else:
                    memsw = os.path.join(folders[0], "memory.memsw.limit_in_bytes")
                    if os.path.exists(memsw):  # the pair must stay memsw >= mem while both change
                        _write(memsw, "-1")
                    _write(os.path.join(folders[0], "memory.limit_in_bytes"), str(memory_bytes))
                    if os.path.exists(memsw):
                        _write(memsw, str(memory_bytes))
                    _write(os.path.join(folders[1], "pids.max"), str(processes))
                self.limits = (memory_bytes, processes)
            self.baseline = self._oom_count(folders)
        except (OSError, ValueError):
            return []
        return folders

    @staticmethod
    def join(folders: list[str]) -> None:
        """Move the calling process (the keeper, before it forks the program) into the run's cgroup."""
        for folder in folders:
            _write(os.path.join(folder, "cgroup.procs"), str(os.getpid()))

    def _oom_count(self, folders: list[str]) -> int:
        """OOM kills in the group so far (v1 kernels before 4.13: times the limit was hit)."""
        if self.version == "cgroup v2":
            events = _read(os.path.join(folders[0], "memory.events"))
        else:
            events = _read(os.path.join(folders[0], "memory.oom_control"))
            if "oom_kill " not in events:
                return int(_read(os.path.join(folders[0], "memory.failcnt")))
        for line in events.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def exceeded(self, folders: list[str], root_pid: int, memory_bytes: int) -> bool:
        """Whether the program went over its memory: an OOM kill in its cgroup since ``make``, or
        (accounting) the resident memory of every process below ``root_pid`` (the keeper) above the
        limit."""
        if folders:
            try:
                return self._oom_count(folders) > self.baseline
            except (OSError, ValueError):
                return False
        return sum(tree_rss(self.proc, child) for child in _children(self.proc, root_pid)) > memory_bytes

    @staticmethod
    def remove(folders: list[str]) -> None:
        for folder in folders:
            try:
                os.rmdir(folder)
            except OSError:
                pass

    def close(self) -> None:
        self.remove([os.path.join(parent, "run") for parent in self.parents])
        self.remove(self.parents)


def _read_at(proc: int, path: str) -> str:
    fd = os.open(path, os.O_RDONLY, dir_fd=proc)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _children(proc: int, pid: int) -> list[int]:
    found = []
    try:
        tasks_fd = os.open(f"{pid}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc)
        try:
            tasks = os.listdir(tasks_fd)
        finally:
            os.close(tasks_fd)
        for task in tasks:
            found += [int(child) for child in _read_at(proc, f"{pid}/task/{task}/children").split()]
    except OSError:
        pass
    return found


def tree_rss(proc: int, root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and all its descendants, read through ``proc``, a descriptor of
    the host's /proc opened before the program mounted its own over it."""
    total, stack, seen = 0, [root_pid], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += int(_read_at(proc, f"{pid}/statm").split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        stack += _children(proc, pid)
    return total


def remove_leftovers(name: str) -> None:
    """From the harness, after its helper ended: remove that helper's cgroups if any are left (a
    killed helper cannot); only empty groups can go, and only ours are named ``name``."""
    own = _own_paths()
    for point, kind, options in _mounts():
        key = "" if kind == "cgroup2" else next((c for c in ("memory", "pids") if c in options), None)
        if key is None or key not in own:
            continue
        parent = os.path.join(point, own[key].lstrip("/"), name)
        if os.path.isdir(parent):
            for entry in os.listdir(parent):
                if entry.startswith("run"):
                    try:
                        os.rmdir(os.path.join(parent, entry))
                    except OSError:
                        pass
            try:
                os.rmdir(parent)
            except OSError:
                pass
