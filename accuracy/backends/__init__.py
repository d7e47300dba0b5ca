"""Backends: a model file becomes a callable ``Session``. One plain registry by name, plus the
``accuracy.backends`` entry-point group for third parties.

Names: ``onnxruntime``, ``onnxruntime-fp16``, ``recorded``, ``mindspore``, ``mindspore-lite``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from accuracy.backends.base import Backend, Session, TensorSpec
from accuracy.errors import ConfigError

# name -> "module:Class"; modules are imported only when the backend is asked for.
_BUILTIN: dict[str, str] = {
    "onnxruntime": "accuracy.backends.onnxrt.loader:OnnxRuntimeBackend",
    "onnxruntime-fp16": "accuracy.backends.onnxrt_fp16.loader:OnnxRuntimeFp16Backend",
    "recorded": "accuracy.backends.recorded.loader:RecordedBackend",
    "mindspore": "accuracy.backends.mindspore.loader:MindSporeBackend",
    "mindspore-lite": "accuracy.backends.mindspore_lite.loader:MindSporeLiteBackend",
}
_REGISTERED: dict[str, Callable[..., Backend]] = {}


def register(name: str, factory: Callable[..., Backend]) -> None:
    """Register a backend factory (called with the backend's options as keywords)."""
    _REGISTERED[name] = factory


def names() -> list[str]:
    from importlib.metadata import entry_points

    found = set(_BUILTIN) | set(_REGISTERED)
    found |= {ep.name for ep in entry_points(group="accuracy.backends")}
    return sorted(found)


def _resolve(name: str) -> Callable[..., Backend]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group="accuracy.backends"):
            if ep.name == name:
                return ep.load()
        raise ConfigError(f"unknown backend '{name}'; known: {', '.join(names())}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name``, configured with ``options`` (from the suite's table)."""
    factory = _resolve(name)
    return factory(name=name, options=dict(options))


__all__ = ["Backend", "Session", "TensorSpec", "get_backend", "names", "register"]
