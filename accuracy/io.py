"""The one place that reads and writes files.

Writing: atomic (a staged ``.NAME.XXXXXXXX.tmp`` beside the target, renamed over it), with the
umask's mode like any other file a person writes (``mkstemp`` alone gives 0600), no silent
overwrite, and the stale staging files of a killed writer removed by the next writer. Reading: only
regular files (a named pipe or a device would block or never end), file names the OS can take, and
bounded parsers (CSV field size, JSON nesting depth, integer digits): every failure is an
``InputError`` naming the file.
"""

from __future__ import annotations

import csv
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
from pathlib import Path
from typing import Any

from accuracy.errors import InputError

MAX_JSON_DEPTH = 64  # our files nest a handful of levels; deeper is not data we wrote or read
MAX_INT_DIGITS = 300  # a float holds at most 309 digits (1.8e308): past that a number is not a score
MAX_CSV_FIELD = 1 << 20  # 1 MiB per cell: a summary cell is a few characters
STALE_AFTER = 600.0  # seconds: a staging file this old, not locked by a live writer, is a killed writer's
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?:[a-z0-9_]{8}\.tmp|new)$")
_umask_lock = threading.Lock()


class OverwriteRefused(InputError):
    """A file exists and the caller did not ask to replace it."""


def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    With ``overwrite=False`` an existing file is an error (``OverwriteRefused``).
    """
    path = Path(path)
    existing = _lstat(path)
    if not overwrite and existing is not None:
        raise OverwriteRefused("exists; pass --force to replace it", path=path)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise InputError("is a folder; give a file path", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write: {_reason(exc)}", path=path) from None
    try:
        _lock(fd)  # "a live writer": the next writer leaves its staging file alone
        os.fchmod(fd, 0o666 & ~current_umask())  # the mode any other file written here would get
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not overwrite:
            # link() fails if the target appeared meanwhile: no race can clobber it.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OverwriteRefused("exists; pass --force to replace it", path=path) from None
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write: {_reason(exc)}", path=path) from None
        raise
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


def _lstat(path: Path) -> os.stat_result | None:
    """``os.lstat`` or None when nothing is there; a name the OS refuses is an ``InputError``."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return None
        raise InputError(f"cannot use this path: {_reason(exc)}", path=_short(path)) from None


def existing(path: str | Path) -> os.stat_result | None:
    """``os.stat(path)``, or None when nothing is there; a name the OS refuses (too long, a file used
    as a folder) is an ``InputError`` naming it."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot use this path: {_reason(exc)}", path=_short(path)) from None


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


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long (the limit is 255 bytes per name, 4096 per path)"
    return exc.strerror or str(exc)


def _short(path: str | Path) -> str:
    """A path as an error names it: very long names are cut in the middle."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:80]}...{text[-60:]} ({len(text)} characters)"


def regular_file(path: str | Path, *, what: str = "file") -> Path:
    """``path`` when it is a regular file (or a link to one); else an ``InputError`` saying what it is.

    Checked with ``os.stat`` before anything opens it: a named pipe would block a reader forever,
    a device would never end."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=_short(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {_reason(exc)}", path=_short(path)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"is a folder; give a {what}", path=path)
    if not stat.S_ISREG(info.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) \
            else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file"
        raise InputError(f"is {kind}, not a regular file: only regular files are read", path=path)
    return path


def read_bytes(path: str | Path, *, what: str = "file") -> bytes:
    """The bytes of a regular file (see ``regular_file``); opened without blocking, checked again
    once open (a file swapped for a pipe meanwhile is refused too)."""
    path = regular_file(path, what=what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"cannot read: {_reason(exc)}", path=path) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InputError("is not a regular file: only regular files are read", path=path)
        try:
            return handle.read()
        except OSError as exc:
            raise InputError(f"cannot read: {_reason(exc)}", path=path) from None


def read_text(path: str | Path, *, what: str = "file", encoding: str = "utf-8") -> str:
    """The text of a regular file; undecodable bytes are an ``InputError`` naming the file."""
    data = read_bytes(path, what=what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"not {encoding} text (byte {exc.start})", path=path) from None


def csv_rows(text: str, *, path: str | Path, first_line: int = 1) -> list[list[str]]:
    """CSV rows of ``text`` (from ``path``); a field over ``MAX_CSV_FIELD`` characters or a malformed
    row is an ``InputError`` naming the file and line."""
    import io

    previous = csv.field_size_limit(MAX_CSV_FIELD)
    reader = csv.reader(io.StringIO(text))
    try:
        return list(reader)
    except csv.Error as exc:
        line = f"line {reader.line_num + first_line - 1}"
        raise InputError(f"malformed CSV: {exc}", path=path, where=line) from None
    finally:
        csv.field_size_limit(previous)


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths, dataclasses and non-finite floats into plain JSON values.

    Infinity and NaN become the strings ``"inf"``, ``"-inf"`` and ``"nan"`` so the file stays
    valid JSON (PSNR of identical images is infinite, and that is reported, not an error).
    """
    import dataclasses

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
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number
    return value


def dumps_json(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, sort_keys=False) + "\n"


def write_json_atomic(path: str | Path, value: Any, *, overwrite: bool = True) -> Path:
    return write_bytes_atomic(path, dumps_json(value).encode(), overwrite=overwrite)


def read_json(path: str | Path) -> Any:
    """Read a JSON file (a regular file only); missing, malformed, nested deeper than
    ``MAX_JSON_DEPTH`` or holding an integer of more than ``MAX_INT_DIGITS`` digits: an
    ``InputError`` naming the file (and line and column where known)."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise InputError("file is empty", path=path)
    return loads_json(text, path=path)


class _TooManyDigits(ValueError):
    pass


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _TooManyDigits(f"an integer with {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def loads_json(text: str, *, path: str | Path) -> Any:
    """``json.loads`` with the bounds of ``read_json``; ``path`` names the source in errors."""
    try:
        data = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path=path, where=f"line {exc.lineno}, column {exc.colno}") from None
    except _TooManyDigits as exc:
        raise InputError(f"malformed JSON: {exc}", path=path) from None
    except RecursionError:
        raise InputError(f"malformed JSON: nested too deeply (at most {MAX_JSON_DEPTH} levels)", path=path) from None
    except (ValueError, OverflowError) as exc:
        raise InputError(f"malformed JSON: {str(exc)[:120]}", path=path) from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InputError(f"malformed JSON: nested more than {MAX_JSON_DEPTH} levels deep", path=path)
    return data


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest

