"""Recorded model calls (inputs and outputs) within a memory budget, spilling to disk beyond it.

The reference run records every call of every model; ``bisect`` then feeds those inputs to the
candidate (``isolated``) and replays outputs whose inputs it has already seen, instead of running
the models again. Arrays stay in memory up to ``budget_bytes`` (default 2 GiB); beyond that each
call is written to an ``.npz`` file in a private temp folder, removed by ``close()``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_BUDGET = 2 << 30  # 2 GiB


def feeds_digest(feeds: Mapping[str, np.ndarray]) -> str:
    """A content hash of named arrays (names, dtypes, shapes and bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(feeds):
        array = np.ascontiguousarray(feeds[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()


class ArrayStore:
    """Lists of named arrays kept in memory up to a byte budget, then spilled to ``.npz`` files."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET):
        self.budget_bytes = int(budget_bytes)
        self.memory_bytes = 0
        self.spilled = 0
        self._memory: dict[int, dict[str, np.ndarray]] = {}
        self._files: dict[int, Path] = {}
        self._folder: Path | None = None
        self._next = 0

    def put(self, arrays: Mapping[str, np.ndarray]) -> int:
        """Keep ``arrays`` (copied); return a handle for ``get``. Object arrays (onnxruntime's string
        tensors) stay in memory: spilled ``.npz`` files are read back without pickle."""
        handle, self._next = self._next, self._next + 1
        copied = {name: np.array(value, copy=True) for name, value in arrays.items()}
        size = sum(a.nbytes for a in copied.values())
        text = any(a.dtype == object for a in copied.values())  # onnxruntime's string tensors: never pickled
        if text or self.memory_bytes + size <= self.budget_bytes:
            self._memory[handle] = copied
            self.memory_bytes += size
        else:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="accuracy-recording-"))
            path = self._folder / f"{handle}.npz"
            np.savez(path, **copied)
            self._files[handle] = path
            self.spilled += 1
        return handle

    def get(self, handle: int) -> dict[str, np.ndarray]:
        if handle in self._memory:
            return self._memory[handle]
        with np.load(self._files[handle], allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def close(self) -> None:
        self._memory.clear()
        self._files.clear()
        self.memory_bytes = 0
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


@dataclass(frozen=True)
class Call:
    """One recorded call: which model, its index among that model's calls in the run, and handles."""

    model: str
    index: int
    digest: str
    feeds_handle: int
    outputs_handle: int


class Recording:
    """Every model call of one pipeline run, in order, its arrays held by an ``ArrayStore``."""

    def __init__(self, store: ArrayStore | None = None):
        self.store = store if store is not None else ArrayStore()
        self.calls: list[Call] = []

    def add(self, model: str, index: int, feeds: Mapping[str, np.ndarray], outputs: Sequence[np.ndarray]) -> Call:
        call = Call(model, index, feeds_digest(feeds), self.store.put(feeds),
                    self.store.put({str(i): out for i, out in enumerate(outputs)}))
        self.calls.append(call)
        return call

    def of(self, model: str) -> list[Call]:
        return [call for call in self.calls if call.model == model]

    def feeds(self, call: Call) -> dict[str, np.ndarray]:
        return self.store.get(call.feeds_handle)

    def outputs(self, call: Call) -> list[np.ndarray]:
        stored = self.store.get(call.outputs_handle)
        return [stored[str(i)] for i in range(len(stored))]

    def close(self) -> None:
        self.store.close()


class CallCache:
    """Outputs already computed, by (model, side, call index, input digest): what bisect never re-runs.

    Only for deterministic models: the same inputs at the same call index give the same outputs.
    """

    def __init__(self, store: ArrayStore | None = None):
        self.store = store if store is not None else ArrayStore()
        self._entries: dict[tuple[str, str, int, str], int] = {}
        self.hits = 0
        self.misses = 0

    def get(self, model: str, side: str, index: int, digest: str) -> list[np.ndarray] | None:
        handle = self._entries.get((model, side, index, digest))
        if handle is None:
            self.misses += 1
            return None
        self.hits += 1
        stored = self.store.get(handle)
        return [stored[str(i)] for i in range(len(stored))]

    def put(self, model: str, side: str, index: int, digest: str, outputs: Sequence[np.ndarray]) -> None:
        key = (model, side, index, digest)
        if key not in self._entries:
            self._entries[key] = self.store.put({str(i): out for i, out in enumerate(outputs)})

    def close(self) -> None:
        self.store.close()
