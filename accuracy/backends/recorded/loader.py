"""``recorded`` backend: replays outputs that were dumped elsewhere, e.g. on an Ascend host.

A user runs the model on the NPU, saves each call's inputs and outputs as ``.npy`` files, copies
the folder here, and compares without the NPU. The "model file" of a suite's
``[candidate.models]`` entry is that folder::

    unet/                          # one folder per model
      manifest.json                # optional: {"inputs": [names in order], "outputs": [names in order]}
      call_0000/
        inputs/sample.npy          # one file per input, named after the input
        inputs/timestep.npy
        outputs/out_sample.npy     # one file per output, named after the output (URL-quoted:
                                   # a name "a/b:0" is the file "a%2Fb%3A0.npy")
      call_0001/
        ...

Outputs are returned in the order of the reference model's outputs (``reference=``), else the
manifest's ``outputs``, else file-name order. A call is answered by the recording whose inputs
match its feeds (option ``match``):

``"exact"`` (default)
    Same dtype, shape and bytes.
``"close"``
    Same shape and ``numpy.allclose`` within ``rtol`` (default 1e-3) and ``atol`` (default 1e-5):
    for feeds that went through a slightly different upstream pipeline.
``"order"``
    The n-th call gets the n-th recording, inputs unchecked (a pipeline whose inputs drift).

A call whose inputs have no recording is an error that says which folder was searched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from accuracy.backends.base import Backend, Session, TensorSpec
from accuracy.errors import BackendError, ConfigError, InputError

_KNOWN_OPTIONS = {"match", "rtol", "atol"}
_MATCHES = ("exact", "close", "order")


def _digest(feeds: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(feeds):
        array = np.ascontiguousarray(feeds[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_arrays(folder: Path) -> dict[str, np.ndarray]:
    """``folder/*.npy`` by tensor name (file names URL-quoted); an unreadable file is an ``InputError``."""
    arrays = {}
    for path in sorted(folder.glob("*.npy")):
        try:
            arrays[unquote(path.stem)] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the array: {exc}", path=path) from None
    return arrays


class RecordedSession(Session):
    backend_name = "recorded"

    def __init__(self, folder: Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 calls: list[Path], *, match: str = "exact", rtol: float = 1e-3, atol: float = 1e-5):
        super().__init__(folder, inputs, outputs)
        self.calls = calls
        self.match, self.rtol, self.atol = match, rtol, atol
        self._next = 0
        self._by_digest: dict[str, Path] | None = None

    def _recorded_inputs(self, call: Path) -> dict[str, np.ndarray]:
        return load_arrays(call / "inputs")

    def _find(self, feeds: dict[str, np.ndarray]) -> Path:
        if self.match == "order":
            if self._next >= len(self.calls):
                raise BackendError(f"call {self._next + 1} has no recording: only {len(self.calls)} calls were "
                                   "recorded", path=self.model_path)
            self._next += 1
            return self.calls[self._next - 1]
        if self.match == "exact":
            if self._by_digest is None:
                self._by_digest = {_digest(self._recorded_inputs(c)): c for c in self.calls}
            found = self._by_digest.get(_digest(feeds))
        else:
            found = next((c for c in self.calls if self._close(self._recorded_inputs(c), feeds)), None)
        if found is None:
            shapes = {k: tuple(v.shape) for k, v in feeds.items()}
            raise BackendError(
                f"no recording matches these inputs (match = {self.match!r}, shapes {shapes}) among "
                f"{len(self.calls)} call(s); record this call on the device or use match = \"close\" / \"order\"",
                path=self.model_path,
            )
        return found

    def _close(self, recorded: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> bool:
        if set(recorded) != set(feeds):
            return False
        for name, value in feeds.items():
            if recorded[name].shape != value.shape:
                return False
            if not np.allclose(recorded[name].astype(np.float64), value.astype(np.float64),
                               rtol=self.rtol, atol=self.atol, equal_nan=True):
                return False
        return True

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        call = self._find(feeds)
        outputs = load_arrays(call / "outputs")
        missing = [spec.name for spec in self.outputs if spec.name not in outputs]
        if missing:
            raise BackendError(f"recording lacks output(s) {missing}; it has {sorted(outputs)}",
                               path=call / "outputs")
        return [outputs[spec.name] for spec in self.outputs]


class RecordedBackend(Backend):
    """Replays a folder of recorded calls (layout in the module docstring)."""

    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        unknown = sorted(set(self.options) - _KNOWN_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} for backend '{self.name}'; "
                              f"known: {', '.join(sorted(_KNOWN_OPTIONS))}", where=self.name)
        match = str(self.options.get("match", "exact"))
        if match not in _MATCHES:
            raise ConfigError(f"match must be one of {', '.join(_MATCHES)}, not {match!r}", where=f"{self.name}.match")
        if not model_path.is_dir():
            raise BackendError("a recording is a folder of call_*/ folders (see docs/backends.md)", path=model_path)
        calls = sorted(p for p in model_path.glob("call_*") if p.is_dir())
        if not calls:
            raise BackendError("no call_*/ folders in this recording (see docs/backends.md)", path=model_path)
        manifest = self._manifest(model_path)
        first_in, first_out = load_arrays(calls[0] / "inputs"), load_arrays(calls[0] / "outputs")
        if reference is not None:
            inputs, outputs = list(reference.inputs), list(reference.outputs)
        else:
            in_names = manifest.get("inputs") or sorted(first_in)
            out_names = manifest.get("outputs") or sorted(first_out)
            inputs = [_spec(n, first_in.get(n)) for n in in_names]
            outputs = [_spec(n, first_out.get(n)) for n in out_names]
        session = RecordedSession(model_path, inputs, outputs, calls, match=match,
                                  rtol=float(self.options.get("rtol", 1e-3)), atol=float(self.options.get("atol", 1e-5)))
        session.backend_name = self.name
        return session

    @staticmethod
    def _manifest(folder: Path) -> dict[str, Any]:
        path = folder / "manifest.json"
        if not path.exists():
            return {}
        from accuracy.io import read_json

        data = read_json(path)
        if not isinstance(data, dict):
            raise ConfigError('must be an object {"inputs": [...], "outputs": [...]}', path=path)
        for key in ("inputs", "outputs"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError("must be a list of tensor names", path=path, where=key)
        return data


def _spec(name: str, example: np.ndarray | None) -> TensorSpec:
    if example is None:
        return TensorSpec(name, (), np.dtype(np.float32))
    return TensorSpec(name, tuple(example.shape), example.dtype)


def record_call(folder: str | Path, index: int, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Path:
    """Write one call in the layout above (what a dump script on the device does)."""
    call = Path(folder) / f"call_{index:04d}"
    for sub, arrays in (("inputs", feeds), ("outputs", outputs)):
        (call / sub).mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(call / sub / f"{quote(name, safe='')}.npy", np.asarray(array))
    return call
