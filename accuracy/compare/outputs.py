"""What a pipeline output may be, as one array of a comparable kind.

A Python entry returns a dict whose values may be numpy arrays, numbers, strings, lists of them,
or objects with ``__array__`` (a torch tensor, a PIL image). ``as_output`` turns each into an array
of one of the kinds ``compare`` has a rule for -- float, integer, bool or text (numpy ``str``) --
and raises ``UnsupportedOutput`` (a ``ValueError`` whose message says what was found and what
would do) for anything else: ``None``, dicts, ragged lists, complex numbers, arbitrary objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SUPPORTED = "an array, a number, a string, or a list of them"


class UnsupportedOutput(ValueError):
    """A value no comparison rule applies to."""


def as_output(value: Any) -> np.ndarray:
    """``value`` as a float, integer, bool or ``str`` array; ``UnsupportedOutput`` otherwise."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiubU":
        return value
    if value is None:
        raise UnsupportedOutput(f"is None; return {SUPPORTED}")
    if isinstance(value, (dict, set, frozenset)):
        raise UnsupportedOutput(f"is a {type(value).__name__}; return {SUPPORTED} (one output per name)")
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, (np.ndarray, np.generic, str, bool, int, float, list, tuple)) \
            and not hasattr(value, "__array__") and not hasattr(value, "__array_interface__"):
        raise UnsupportedOutput(f"is a {type(value).__name__}; return {SUPPORTED}")
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 -- numpy raises ValueError/TypeError for ragged or odd input
        raise UnsupportedOutput(f"is a ragged {type(value).__name__} (its items differ in length or kind); "
                                f"return {SUPPORTED} of one shape") from None
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8", errors="replace")
    if array.dtype.kind == "O":
        return _object_array(array)
    if array.dtype.kind not in "fiubU":
        raise UnsupportedOutput(f"holds {array.dtype} values; return float, integer, bool or text values")
    return array


def _object_array(array: np.ndarray) -> np.ndarray:
    """Object arrays (onnxruntime's string tensors, lists mixing types): all strings, or an error."""
    items = array.ravel().tolist()
    if all(isinstance(item, str) for item in items):
        return np.array(items, dtype=str).reshape(array.shape)
    if all(isinstance(item, bytes) for item in items):
        return np.array([item.decode("utf-8", errors="replace") for item in items], dtype=str).reshape(array.shape)
    kinds = sorted({type(item).__name__ for item in items})
    raise UnsupportedOutput(f"mixes or nests values ({', '.join(kinds)}); return {SUPPORTED} of one kind and shape")
