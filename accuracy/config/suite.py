"""Load a suite file and tell its kind; small validators that name the file and the key.

A suite's kind follows from its sections: ``[pipeline]`` (image/tensor pipelines, bisect),
``[llm]`` (OpenCompass against a served model), ``[scores]`` (a stored result checked against a
baseline). Each kind's own module reads its sections with a ``TableReader``.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from accuracy.errors import ConfigError, InputError
from accuracy.io import existing, expand_user, read_text

KINDS = ("pipeline", "llm", "scores")
# The sections each kind reads: any other is a typo (``[tolerances]``) and refused, never ignored.
SECTIONS = {
    "pipeline": ("suite", "pipeline", "reference", "candidate", "compare", "converter", "golden"),
    "llm": ("suite", "llm", "baseline", "tolerance", "names"),
    "scores": ("suite", "scores", "baseline", "tolerance", "names"),
}
SUITE_KEYS = ("name", "manual")
NON_FINITE_HINT = ("a threshold must be a finite number: inf or nan would pass (or fail) every value; "
                   "to not check this, leave the key out")
_MISSING = object()


@dataclass
class Suite:
    """A parsed suite file: its path, name, kind and raw tables (validated by each kind's reader)."""

    path: Path
    name: str
    kind: str
    data: dict[str, Any] = field(repr=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str | Path) -> Path:
        """Relative paths in a suite resolve against the suite file's folder."""
        candidate = expand_user(relative)
        return candidate if candidate.is_absolute() else (self.folder / candidate)

    def table(self, key: str, *, required: bool = True) -> TableReader:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise ConfigError(f"missing section [{key}]", path=self.path, where=key)
            value = {}
        if not isinstance(value, dict):
            raise ConfigError("must be a table", path=self.path, where=key)
        return TableReader(self.path, key, value)


class TableReader:
    """Typed access to one TOML table; every error names the file and the dotted key."""

    def __init__(self, path: Path, prefix: str, data: dict[str, Any]):
        self.path, self.prefix, self.data = path, prefix, data
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.path, where=self.key(name))

    def get(self, name: str, types: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        self._seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, "missing required key")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.error(name, f"must be {_type_names(types)}, got a boolean")
        if float in (types if isinstance(types, tuple) else (types,)) and isinstance(value, int):
            value = _to_float(value, lambda message: self.error(name, message))
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(name, f"got {value}: {NON_FINITE_HINT}")
        if not isinstance(value, types):
            raise self.error(name, f"must be {_type_names(types)}, got {type(value).__name__} {value!r}")
        return value

    def number(self, name: str, default: Any = _MISSING, *, minimum: float | None = None) -> float | None:
        value = self.get(name, (int, float), default)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(name, f"must be >= {minimum}, got {value}")
        return value

    def string(self, name: str, default: Any = _MISSING, *, choices: Iterable[str] | None = None) -> str | None:
        value = self.get(name, str, default)
        if value is not None and choices is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(sorted(choices))}, got {value!r}")
        return value

    def table(self, name: str, *, required: bool = False) -> TableReader:
        value = self.get(name, dict, _MISSING if required else {})
        return TableReader(self.path, self.key(name), value)

    def path_to(self, name: str, base: Path, default: Any = _MISSING, *, must_exist: bool = True) -> Path | None:
        value = self.get(name, str, default)
        if not isinstance(value, str):
            return value  # the caller's non-string default (e.g. None)
        resolved = expand_user(value)
        if not resolved.is_absolute():
            resolved = base / resolved
        try:
            found = existing(resolved)
        except InputError as exc:  # a name the OS refuses (too long ...)
            raise self.error(name, exc.message) from None
        if must_exist and found is None:
            raise self.error(name, f"file not found: {resolved}")
        return resolved

    def reject_unknown(self, allowed: Iterable[str] | None = None) -> None:
        """Unknown keys are an error, so typos do not silently fall back to defaults."""
        allowed = set(allowed) if allowed is not None else self._seen
        for name in self.data:
            if name not in allowed:
                raise self.error(name, f"unknown key; {unknown(name, allowed)}")


def _to_float(value: int, error) -> float:
    try:
        return float(value)
    except OverflowError:
        raise error(f"{value:.3e} is too large for a number") from None


def unknown(name: str, allowed: Iterable[str]) -> str:
    """``expected one of: a, b`` plus ``did you mean 'x'?`` when a name is close."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"expected one of: {', '.join(allowed) or '(none)'}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table", list: "a list"}
    seq = types if isinstance(types, tuple) else (types,)
    if float in seq:
        seq = tuple(t for t in seq if t is not int)
    return " or ".join(names.get(t, t.__name__) for t in seq)


def load_suite(path: str | Path) -> Suite:
    """Parse a suite file and tell its kind. Malformed TOML names the line."""
    path = Path(path)
    try:
        text = read_text(path, what="suite file")
    except InputError as exc:
        raise ConfigError(exc.message, path=exc.path, where=exc.where) from None
    data = _parse_toml(text, path)
    if not data:
        raise ConfigError("suite file is empty", path=path)
    kinds = [kind for kind in KINDS if kind in data]
    if len(kinds) != 1:
        found = ", ".join(f"[{k}]" for k in kinds) or "none"
        raise ConfigError(
            f"a suite has exactly one of [pipeline], [llm], [scores]; found {found}", path=path
        )
    kind = kinds[0]
    for section in data:
        if section not in SECTIONS[kind]:
            raise ConfigError(f"unknown section [{section}] in a {kind} suite; "
                              f"{unknown(section, SECTIONS[kind])}", path=path, where=section)
    meta = data.get("suite", {})
    if not isinstance(meta, dict):
        raise ConfigError("must be a table", path=path, where="suite")
    for key in meta:
        if key not in SUITE_KEYS:
            raise ConfigError(f"unknown key; {unknown(key, SUITE_KEYS)}", path=path, where=f"suite.{key}")
    if not isinstance(meta.get("manual", False), bool):
        raise ConfigError("must be true or false", path=path, where="suite.manual")
    name = meta.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError("must be a non-empty string", path=path, where="suite.name")
    return Suite(path=path.resolve(), name=name, kind=kind, data=data)


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    """TOML with bounds: nesting that exhausts the recursion limit, integers beyond Python's digit
    limit: a ``ConfigError`` naming the file, like any malformed TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", path=path) from None
    except RecursionError:
        raise ConfigError("malformed TOML: nested too deeply", path=path) from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ConfigError(f"malformed TOML: {str(exc)[:120]}", path=path) from None


def discover_suites(paths: Iterable[str | Path]) -> list[Path]:
    """Suite files named directly, or every ``*.toml`` suite found below the given folders.

    In a folder, ``*.toml`` files that are not suites (converter configs) are skipped, and so are
    suites marked ``[suite] manual = true`` (they need something live, such as a served model):
    name such a file to run it.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            os.stat(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(f"cannot use this path: {exc.strerror}", path=path) from None
        if path.is_dir():
            for candidate in sorted(path.rglob("*.toml")):
                if is_suite_file(candidate) and not is_manual_suite(candidate):
                    found.append(candidate)
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError("no such suite or folder", path=path)
    return found


def _peek(path: Path) -> dict[str, Any] | None:
    try:
        return _parse_toml(read_text(path), path)
    except (InputError, ConfigError):
        return None


def is_suite_file(path: Path) -> bool:
    """A ``.toml`` file is a suite when it has one of the kind sections at its top level
    (a malformed one counts, so that loading it reports what is wrong)."""
    data = _peek(path)
    return data is None or any(kind in data for kind in KINDS)


def is_manual_suite(path: Path) -> bool:
    """``[suite] manual = true``: run only when named, never by a folder run."""
    data = _peek(path) or {}
    meta = data.get("suite")
    return isinstance(meta, dict) and meta.get("manual") is True
