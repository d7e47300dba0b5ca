"""Plain data across the sandbox boundary: one small binary codec and length-prefixed frames.

Standard library only: the harness, the fork server (``python -I -S``) and the program process all
load this file. What crosses is only None, bool, int, float, complex, str, bytes, list, tuple, dict,
set and frozenset, nested at most ``MAX_DEPTH`` deep and at most ``MAX_ITEMS`` values in all
(and, from the harness to the program only, a function of the harness's, sent as a number: the
program calls it back with plain data).
``decode`` builds exact builtin objects, so nothing that arrives can carry behaviour of the sender's
(an ``__eq__``, a ``__hash__``, a descriptor), nor a flood of numbers crafted to share one hash. ``encode`` accepts subclasses of those types and sends
their builtin value (a ``Counter`` crosses as a ``dict``); anything else is ``WireError``. No pickle.
"""

from __future__ import annotations

import os
import struct

MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
MAX_FRAME = 64 * 1024 * 1024
MAX_INT_BYTES = 1024 * 1024  # 8 million bits: arithmetic on anything larger can hold the harness for hours
MAX_SAME_HASH = 32  # unequal values sharing one hash in one container: past this, a collision flood
_LENGTH = struct.Struct("<I")
_FLOAT = struct.Struct("<d")
_COMPLEX = struct.Struct("<dd")
_CONTAINERS = ((list, b"l"), (tuple, b"t"), (set, b"S"), (frozenset, b"Z"))
_BUILD = {b"l": list, b"t": tuple, b"S": set, b"Z": frozenset}


class WireError(ValueError):
    """A value that cannot cross, or bytes that are not a well-formed message."""


def encode(value: object, functions: list | None = None) -> bytes:
    """``value`` as bytes; ``WireError`` for a type that cannot cross or past the depth/size caps.

    With a ``functions`` list, a function in ``value`` is appended to it and sent as its index (the
    receiver gets a stub that calls back, see ``decode``); without, a function cannot cross."""
    out: list[bytes] = []
    budget = [MAX_ITEMS, functions]
    _encode(value, out, 0, budget)
    return b"".join(out)


def _encode(value: object, out: list, depth: int, budget: list) -> None:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise WireError(f"nested deeper than {MAX_DEPTH} or more than {MAX_ITEMS} values")
    if value is None:
        out.append(b"N")
    elif isinstance(value, bool):
        out.append(b"T" if value else b"F")
    elif isinstance(value, int):
        raw = int.to_bytes(value, (int.bit_length(value) + 8) // 8, "little", signed=True)
        out += (b"i", _LENGTH.pack(len(raw)), raw)
    elif isinstance(value, float):
        out += (b"f", _FLOAT.pack(value))
    elif isinstance(value, complex):
        out += (b"c", _COMPLEX.pack(complex.__complex__(value).real, complex.__complex__(value).imag))
    elif isinstance(value, str):
        raw = str.encode(value, "utf-8", "surrogatepass")
        out += (b"s", _LENGTH.pack(len(raw)), raw)
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        out += (b"b", _LENGTH.pack(len(raw)), raw)
    elif isinstance(value, dict):
        items = list(dict.items(value))
        out += (b"d", _LENGTH.pack(len(items)))
        for key, item in items:
            _encode(key, out, depth + 1, budget)
            _encode(item, out, depth + 1, budget)
    else:
        for kind, tag in _CONTAINERS:
            if isinstance(value, kind):
                items = list(kind.__iter__(value))
                out += (tag, _LENGTH.pack(len(items)))
                for item in items:
                    _encode(item, out, depth + 1, budget)
                return
        if budget[1] is not None and callable(value) and not isinstance(value, type):
            out += (b"@", _LENGTH.pack(len(budget[1])))
            budget[1].append(value)
            return
        raise WireError(f"a value of type {type(value).__name__} cannot cross the sandbox boundary")


def decode(data: bytes, function=None) -> object:
    """The value ``encode`` made, as exact builtin objects; ``WireError`` for anything malformed.

    A function sent by index becomes ``function(index)`` where a ``function`` factory is given (the
    program's side); without one (the harness's side) it is malformed."""
    view = memoryview(data)
    try:
        value, end = _decode(view, 0, 0, [MAX_ITEMS, function])
    except (IndexError, struct.error, UnicodeDecodeError, TypeError, OverflowError, MemoryError) as exc:
        raise WireError(f"malformed message: {type(exc).__name__}") from None
    if end != len(view):
        raise WireError("malformed message: trailing bytes")
    return value


def _take(view: memoryview, at: int, size: int) -> bytes:
    if at + size > len(view):
        raise WireError("malformed message: truncated")
    return bytes(view[at:at + size])


def _decode(view: memoryview, at: int, depth: int, budget: list) -> tuple[object, int]:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise WireError(f"message nested deeper than {MAX_DEPTH} or with more than {MAX_ITEMS} values")
    tag = bytes(view[at:at + 1])
    at += 1
    if tag == b"N":
        return None, at
    if tag in (b"T", b"F"):
        return tag == b"T", at
    if tag == b"f":
        return _FLOAT.unpack(_take(view, at, 8))[0], at + 8
    if tag == b"c":
        real, imag = _COMPLEX.unpack(_take(view, at, 16))
        return complex(real, imag), at + 16
    if tag == b"@" and budget[1] is not None:
        (index,) = _LENGTH.unpack(_take(view, at, 4))
        return budget[1](index), at + 4
    if tag in (b"i", b"s", b"b"):
        (size,) = _LENGTH.unpack(_take(view, at, 4))
        raw = _take(view, at + 4, size)
        at += 4 + size
        if tag == b"i":
            if size > MAX_INT_BYTES:
                raise WireError(f"an integer of {size} bytes (at most {MAX_INT_BYTES})")
            return int.from_bytes(raw, "little", signed=True), at
        return (raw.decode("utf-8", "surrogatepass") if tag == b"s" else raw), at
    if tag == b"d" or tag in _BUILD:
        (count,) = _LENGTH.unpack(_take(view, at, 4))
        at += 4
        if count > budget[0]:
            raise WireError("malformed message: too many values")
        items = []
        for _ in range(count * 2 if tag == b"d" else count):
            item, at = _decode(view, at, depth + 1, budget)
            items.append(item)
        if tag == b"d":
            _refuse_hash_flood(items[0::2])
            return dict(zip(items[0::2], items[1::2])), at
        _refuse_hash_flood(items if tag in (b"S", b"Z") else [v for v in items if type(v) in _NUMBERS])
        return _BUILD[tag](items), at
    raise WireError(f"malformed message: unknown tag {tag!r}")


_NUMBERS = (int, float, complex)


def _refuse_hash_flood(values: list) -> None:
    """``WireError`` when more than ``MAX_SAME_HASH`` unequal ``values`` share one hash.

    Numbers hash without a secret (``n`` and ``n + 2**61 - 1`` collide, and so do ``complex(1000003 * k,
    -k)`` for every k): a set, a dict or a list later put into one, of a million such values, costs a
    million squared comparisons in C with the interpreter lock held, freezing the whole harness for
    hours. The values are grouped by hash by sorting (no hashing of hashes), each group checked in
    linear time."""
    if len(values) <= MAX_SAME_HASH:
        return
    hashes = [hash(value) for value in values]  # TypeError (unhashable) reads as malformed
    order = sorted(range(len(values)), key=hashes.__getitem__)
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and hashes[order[end]] == hashes[order[start]]:
            end += 1
        if end - start > MAX_SAME_HASH:  # as many values as a collision flood: how many unequal ones?
            distinct: list = []
            for index in order[start:end]:
                if not any(values[index] == seen for seen in distinct):
                    distinct.append(values[index])
                    if len(distinct) > MAX_SAME_HASH:
                        raise WireError(f"more than {MAX_SAME_HASH} unequal values share one hash (a collision flood)")
        start = end


def write_frame(fd: int, payload: bytes) -> None:
    """One message: its length (4 bytes, little-endian), then the bytes."""
    data = memoryview(_LENGTH.pack(len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from a blocking descriptor; None at end of file."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = MAX_FRAME) -> bytes | None:
    """The next message from a blocking descriptor; None at end of file; ``WireError`` past ``limit``."""
    head = read_exactly(fd, 4)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    if size > limit:
        raise WireError(f"a message of {size} bytes is over the limit of {limit}")
    return read_exactly(fd, size)
