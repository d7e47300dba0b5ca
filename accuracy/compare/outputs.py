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
    except Exception as exc:  # noqa: BLE001 -- numpy raises ValueError/TypeError for ragged or odd input
        if not isinstance(value, (list, tuple)):  # a torch bfloat16 tensor, an object whose __array__ fails
            dtype = f" of {value.dtype}" if hasattr(value, "dtype") else ""
            raise UnsupportedOutput(f"is a {type(value).__name__}{dtype} numpy cannot read ({_first_line(exc)}); "
                                    f"return float, integer, bool or text values") from None
        raise UnsupportedOutput(f"is a ragged {type(value).__name__} (its items differ in length or kind); "
                                f"return {SUPPORTED} of one shape") from None
    if array.dtype.kind == "U" and isinstance(value, (list, tuple)):
        kinds = sorted({type(item).__name__ for item in _leaves(value) if not isinstance(item, (str, bytes))})
        if kinds:  # numpy turned ["a", 1] into ["a", "1"]: a number would compare equal to its text
            raise UnsupportedOutput(f"mixes text with {', '.join(kinds)} values; return {SUPPORTED} of one kind")
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
    if items and all(isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(item, bool)
                     for item in items):
        return np.array(items).reshape(array.shape)  # numbers held as objects (an object-dtype column)
    kinds = sorted({type(item).__name__ for item in items})
    raise UnsupportedOutput(f"mixes or nests values ({', '.join(kinds)}); return {SUPPORTED} of one kind and shape")


def _leaves(value):
    for item in value:
        if isinstance(item, (list, tuple)):
            yield from _leaves(item)
        elif isinstance(item, np.ndarray):
            yield from item.ravel().tolist()
        else:
            yield item


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
