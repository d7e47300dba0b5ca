"""The one place that writes files: atomic writes, JSON with non-finite numbers, no silent overwrite."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from accuracy.errors import InputError


class OverwriteRefused(InputError):
    """A file exists and the caller did not ask to replace it."""


def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    With ``overwrite=False`` an existing file is an error (``OverwriteRefused``).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OverwriteRefused("exists; pass --force to replace it", path=path)
    if path.is_dir():
        raise InputError("is a folder; give a file path", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path=path) from None
    try:
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
            raise InputError(f"cannot write: {exc.strerror or exc}", path=path) from None
        raise
    return path


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
    """Read a JSON file; a missing or malformed file is an ``InputError`` naming line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None
    if not text.strip():
        raise InputError("file is empty", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path=path, where=f"line {exc.lineno}, column {exc.colno}") from None
