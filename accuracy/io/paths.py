"""Paths as the OS takes them: a name it refuses (too long, a file used as a folder) is an
``InputError`` naming it (long names cut in the middle), never an ``OSError`` traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from accuracy.errors import InputError


def expand_user(path: str | Path) -> Path:
    """``~`` and ``~user`` expanded where they name a home; else the path as written (``Path.expanduser``
    raises ``RuntimeError`` for ``~nosuchuser``: a traceback from one character of a suite)."""
    return Path(os.path.expanduser(str(path)))


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


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long (the limit is 255 bytes per name, 4096 per path)"
    return exc.strerror or str(exc)


def _short(path: str | Path) -> str:
    """A path as an error names it: very long names are cut in the middle."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:80]}...{text[-60:]} ({len(text)} characters)"
