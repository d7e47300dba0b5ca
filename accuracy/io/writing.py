"""Writing files: atomic (a staged ``.NAME.XXXXXXXX.tmp`` beside the target, renamed over it), with
the umask's mode like any other file a person writes (``mkstemp`` alone gives 0600), no silent
overwrite, and the stale staging files of a killed writer removed by the next writer."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from accuracy.errors import InputError
from accuracy.io.paths import _lstat, _reason, _short

STALE_AFTER = 600.0  # seconds: a staging file this old, not locked by a live writer, is a killed writer's
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?:[a-z0-9_]{8}\.tmp|new)$")
_umask_lock = threading.Lock()


class OverwriteRefused(InputError):
    """A file exists and the caller did not ask to replace it."""


def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = True, sync: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    With ``overwrite=False`` an existing file is an error (``OverwriteRefused``). ``sync=False`` skips
    the fsync before the rename, for large derived files a rerun makes again: still never half-read,
    but after a power cut the file may be empty.
    """
    path, through = _target(path, overwrite=overwrite)
    if through:
        return _write_through(path, data)
    return _commit(_stage(path, data, sync=sync), path, overwrite=overwrite)


class StagedWrite:
    """``write_bytes_atomic`` in two steps, the first in a background thread: the bytes go to a private
    staging file beside ``path`` while the caller works on (a file write leaves Python's lock free),
    then ``commit()`` renames it into place or ``discard()`` removes it. For a large file whose fate is
    decided meanwhile (the repaired model, written while it is checked). Never synced to disk (see
    ``write_bytes_atomic``'s ``sync``); ``path`` must be a regular file or not exist."""

    def __init__(self, path: str | Path, data: bytes):
        self.path, through = _target(path, overwrite=True)
        if through:
            raise InputError("is not a regular file; give a file path", path=self.path)
        self._staged: str | None = None
        self._error: BaseException | None = None
        self._state = "staging"  # then "committed", "discarded" or "failed"
        self._thread = threading.Thread(target=self._write, args=(data,), name="accuracy-staged-write", daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        try:
            self._staged = _stage(self.path, data, sync=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in commit()
            self._error = exc

    def commit(self) -> Path:
        """The file in place; a second call returns it again (the first one placed it)."""
        self._thread.join()
        if self._state == "committed":
            return self.path
        if self._state != "staging":
            raise RuntimeError(f"{self.path}: the staged write was {self._state}; nothing to commit")
        self._state = "failed"  # until placed: a failed write or commit removed the staging file already
        if self._error is not None:
            raise self._error
        placed = _commit(self._staged, self.path, overwrite=True)
        self._state = "committed"
        return placed

    def discard(self) -> None:
        """The staging file removed; after ``commit()`` the file in place is left alone."""
        self._thread.join()
        if self._state != "staging":
            return
        self._state = "discarded"
        if self._staged is not None and os.path.exists(self._staged):
            os.unlink(self._staged)


def _target(path: str | Path, *, overwrite: bool) -> tuple[Path, bool]:
    """The file to replace (a link's target when it names a regular file) and whether it is a device,
    pipe or socket to write through; a folder, or an existing file without ``overwrite``, is an error."""
    path = Path(path)
    existing = _lstat(path)
    if not overwrite and existing is not None:
        raise OverwriteRefused("exists; pass --force to replace it", path=path)
    if existing is not None and stat.S_ISLNK(existing.st_mode):
        followed = _stat(path)
        if followed is not None and stat.S_ISREG(followed.st_mode):
            path = Path(os.path.realpath(path))  # the file the link names is replaced, the link kept
        existing = followed
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise InputError("is a folder; give a file path", path=path)
    return path, existing is not None and not stat.S_ISREG(existing.st_mode)


def _stage(path: Path, data: bytes, *, sync: bool) -> str:
    """``data`` in a new staging file beside ``path``, with the umask's mode; its name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write: {_reason(exc)}", path=path) from None
    with _removed_on_failure(tmp, path):
        _lock(fd)  # "a live writer": the next writer leaves its staging file alone
        os.fchmod(fd, 0o666 & ~current_umask())  # the mode any other file written here would get
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    return tmp


def _commit(tmp: str, path: Path, *, overwrite: bool) -> Path:
    """The staging file ``tmp`` renamed to ``path`` (linked, when ``path`` must not exist yet)."""
    with _removed_on_failure(tmp, path):
        if not overwrite:
            # link() fails if the target appeared meanwhile: no race can clobber it.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OverwriteRefused("exists; pass --force to replace it", path=path) from None
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    return path


@contextmanager
def _removed_on_failure(tmp: str, path: Path):
    """On any failure inside, the staging file ``tmp`` goes; an OS error is one ``InputError`` naming ``path``."""
    try:
        yield
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write: {_reason(exc)}", path=path) from None
        raise


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _write_through(path: Path, data: bytes) -> Path:
    """A device, pipe or socket (``/dev/stdout``, ``>(jq .)``, ``/dev/full``) is written to, never
    renamed over: a rename would put a regular file where the device node was."""
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise InputError(f"cannot write: {_reason(exc)}", path=path) from None
    return path


def current_umask() -> int:
    """The process umask: from ``/proc/self/status`` on Linux; elsewhere reading it means setting it,
    so briefly and under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def remove_stale_staging(folder: str | Path, *, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete the staging files a killed writer left in ``folder``: ours only (``.NAME.XXXXXXXX.tmp``
    from ``write_bytes_atomic``, ``.NAME.new`` from a golden replacement), regular files only, older
    than ``older_than`` seconds, and never one a live writer holds locked. Returns what was removed."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _STAGING.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < older_than:
                continue
            if entry.name.endswith(".tmp") and _locked(entry.path):
                continue
            os.unlink(entry.path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove
        removed.append(Path(entry.path))
    return removed


def _lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # a file system without flock: the age rule alone protects (our file is fresh anyway)


def _locked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths, dataclasses and non-finite floats into plain JSON values.

    Infinity and NaN become the strings ``"inf"``, ``"-inf"`` and ``"nan"`` so the file stays
    valid JSON (PSNR of identical images is infinite, and that is reported, not an error).
    """
    import dataclasses

    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # most of a report: as they are
        return value
    if kind is float:
        return _number(value)
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return jsonable(value.to_dict())
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        return jsonable(value.tolist())
    if isinstance(value, float) or hasattr(value, "__float__") and not isinstance(value, int):
        return _number(float(value))
    return value


def _number(number: float) -> float | str:
    """A finite float as it is; inf, -inf and NaN as the words JSON can hold."""
    if math.isfinite(number):
        return number
    return "nan" if math.isnan(number) else "inf" if number > 0 else "-inf"


def dumps_json(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, sort_keys=False) + "\n"


def write_json_atomic(path: str | Path, value: Any, *, overwrite: bool = True) -> Path:
    return write_bytes_atomic(path, dumps_json(value).encode(), overwrite=overwrite)


def writable_folder(path: str | Path, *, what: str = "folder", where: str | None = None) -> Path:
    """``path`` as a folder this process can write in, made when missing; a file there, a part of
    the path that is a file, or no permission: an ``InputError`` naming it (and ``where``, e.g. the
    environment variable or flag that chose it)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"the {what} is a file, not a folder", path=_short(path), where=where) from None
    except NotADirectoryError:
        raise InputError(f"the {what} cannot be made: a part of its path is a file", path=_short(path),
                         where=where) from None
    except OSError as exc:
        raise InputError(f"the {what} cannot be made: {_reason(exc)}", path=_short(path), where=where) from None
    try:
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        with tempfile.TemporaryFile(dir=path):  # the real test (root passes access(), not a read-only mount)
            pass
    except OSError as exc:
        raise InputError(f"the {what} is not writable: {_reason(exc)}", path=path, where=where) from None
    return path
