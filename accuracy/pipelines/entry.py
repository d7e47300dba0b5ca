"""Import a pipeline entry: ``"pipeline.py:run"`` (a file beside the suite) or ``"pkg.mod:func"``.

The entry is ``run(models, inputs) -> dict[str, output]``, an output being an array, a number, a
string or a list of them (see ``accuracy.compare.outputs``). Every way this can go wrong
(no colon, a missing file, an import that raises, a missing or non-callable attribute) is a
``ConfigError`` naming the suite and ``pipeline.entry``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.errors import ConfigError, InputError
from accuracy.userguard import UserCodeError, guarded

Entry = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, np.ndarray]]
WHERE = "pipeline.entry"


def load_entry(spec: str, *, base: Path, suite_path: Path | None = None) -> Entry:
    """The callable named by ``spec``; files resolve against ``base`` (the suite's folder)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"entry must look like \"pipeline.py:run\" or \"package.module:function\", got {spec!r}",
                          path=suite_path, where=WHERE)
    if target.endswith(".py") or "/" in target:
        module = _import_file(base / target, suite_path)
    else:
        try:
            with guarded(f"importing {target!r}"):
                module = importlib.import_module(target)
        except UserCodeError as exc:  # its imports may raise anything, exit or interrupt included
            raise ConfigError(f"cannot import {target!r}: {_short(exc)}", path=suite_path, where=WHERE) from None
    function = getattr(module, attr, None)
    if function is None:
        raise ConfigError(f"{target!r} has no attribute {attr!r}", path=suite_path, where=WHERE)
    if not callable(function):
        raise ConfigError(f"{target}:{attr} is not callable", path=suite_path, where=WHERE)
    return function


def _import_file(path: Path, suite_path: Path | None):
    if not path.exists():
        raise ConfigError(f"entry file not found: {path}", path=suite_path, where=WHERE)
    name = f"accuracy_entry_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}", path=suite_path, where=WHERE)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the entry may import its neighbours
    try:
        with guarded(f"importing {path.name}"):
            spec.loader.exec_module(module)
    except UserCodeError as exc:  # the user's code may raise anything, sys.exit and KeyboardInterrupt included
        raise ConfigError(f"importing {path.name} failed{_user_frame(exc.original, path)}: {_short(exc)}",
                          path=suite_path, where=WHERE) from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _short(exc: UserCodeError) -> str:
    """``ValueError: boom`` or ``sys.exit(0)`` (the line is said once, before)."""
    return exc.how.removeprefix("raised ").removeprefix("called ")


def _user_frame(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" (line {frames[-1].lineno})" if frames else ""


def check_outputs(outputs: Any, *, entry: str, path: Path | None = None) -> dict[str, np.ndarray]:
    """The entry must return a non-empty dict; each value becomes an array of a kind ``compare`` has a
    rule for (``accuracy.compare.outputs``). Anything else is one ``InputError`` naming the output."""
    from accuracy.compare.outputs import UnsupportedOutput, as_output

    if not isinstance(outputs, Mapping) or not outputs:
        raise InputError(f"the pipeline entry {entry!r} must return a non-empty dict of outputs (name -> array, "
                         f"number, string or list), got {_describe(outputs)}", path=path)
    checked = {}
    for name, value in outputs.items():
        try:
            checked[str(name)] = as_output(value)
        except UnsupportedOutput as exc:
            raise InputError(f"output {str(name)!r} of the pipeline entry {entry!r} {exc}", path=path) from None
    return checked


def _describe(value: Any) -> str:
    return "an empty dict" if isinstance(value, Mapping) else "None" if value is None else type(value).__name__
