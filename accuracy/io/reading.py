"""Reading files: only regular files (a named pipe or a device would block or never end), and bounded
parsers (CSV field size, JSON nesting depth, integer digits); every failure is an ``InputError``
naming the file."""

from __future__ import annotations

import csv
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from accuracy.errors import InputError
from accuracy.io.paths import _reason, _short

MAX_JSON_DEPTH = 64  # our files nest a handful of levels; deeper is not data we wrote or read
MAX_INT_DIGITS = 300  # a float holds at most 309 digits (1.8e308): past that a number is not a score
MAX_JSON_BYTES = 1 << 30  # 1 GiB: a sparse or runaway file is refused, not read into memory (MemoryError)
MAX_CSV_FIELD = 1 << 20  # 1 MiB per cell: a summary cell is a few characters


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


def read_bytes(path: str | Path, *, what: str = "file", max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (see ``regular_file``); opened without blocking, checked again
    once open (a file swapped for a pipe meanwhile is refused too); a file over ``max_bytes`` is
    refused before it is read."""
    path = regular_file(path, what=what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"cannot read: {_reason(exc)}", path=path) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InputError("is not a regular file: only regular files are read", path=path)
        if max_bytes is not None and info.st_size > max_bytes:
            raise InputError(f"{info.st_size / 2**20:.0f} MiB: over the {max_bytes >> 20} MiB this {what} may have",
                             path=path)
        try:
            return handle.read()
        except OSError as exc:
            raise InputError(f"cannot read: {_reason(exc)}", path=path) from None


def read_text(path: str | Path, *, what: str = "file", encoding: str = "utf-8", max_bytes: int | None = None) -> str:
    """The text of a regular file; undecodable bytes are an ``InputError`` naming the file."""
    data = read_bytes(path, what=what, max_bytes=max_bytes)
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


def read_json(path: str | Path) -> Any:
    """Read a JSON file (a regular file only); missing, malformed, nested deeper than
    ``MAX_JSON_DEPTH`` or holding an integer of more than ``MAX_INT_DIGITS`` digits: an
    ``InputError`` naming the file (and line and column where known)."""
    path = Path(path)
    text = read_text(path, what="JSON file", max_bytes=MAX_JSON_BYTES)
    if not text.strip():
        raise InputError("file is empty", path=path)
    return loads_json(text, path=path)


class _TooManyDigits(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose key appears twice is refused (``json`` keeps the last silently: an edited
    baseline's ``"scores"`` could hide behind a second one)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return data


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _TooManyDigits(f"an integer with {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def loads_json(text: str, *, path: str | Path) -> Any:
    """``json.loads`` with the bounds of ``read_json``; ``path`` names the source in errors."""
    try:
        data = json.loads(text, parse_int=_bounded_int, object_pairs_hook=_unique_keys)
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
