"""``onnxruntime-fp16`` backend: the stand-in for a converter's default fp16 precision mode.

An fp32 ONNX model is rewritten by ``emulate.emulate_fp16`` (every float tensor rounded to fp16
at op boundaries, fp32 accumulation inside ops, fp32 inputs/outputs) and run on ONNX Runtime, so
fp16 hazards — overflowing reductions, lost low bits — show on a CPU before anyone converts.

The rewritten model is cached by content hash (the model file, its external-data files, the
options and the rewrite's version) under ``$ACCURACY_CACHE_DIR/fp16`` (default
``~/.cache/accuracy/fp16``), so a second run converts nothing; ORT's optimised form of it is kept
beside it, so a second session skips the optimisation pass too (``open_emulated``).

Options: those of ``onnxruntime`` (``graph_optimization_level`` defaults to ``"basic"`` here and may
not be higher: ORT's extended fusions could fold the rounding pairs) plus ``keep_fp32`` (node names
to leave in fp32) and ``cache`` (``false`` converts in memory every time).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from accuracy.backends.base import Session
from accuracy.backends.onnxrt.loader import OnnxRuntimeBackend, open_session
from accuracy.backends.onnxrt_fp16.emulate import EMULATION_VERSION, emulate_fp16
from accuracy.backends.onnxrt_fp16.inmemory import InMemory, emulated_in_memory, loaded_model, prepared_names
from accuracy.cache import cache_dir, file_sha256
from accuracy.errors import BackendError, ConfigError
from accuracy.io import write_bytes_atomic

_SAFE_LEVELS = ("disable", "basic")
_TWO_GB = 2**31 - 1


def _external_files(model_path: Path) -> list[Path]:
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        proto = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise many types for a bad file
        raise BackendError(f"onnx cannot read the model: {exc}", path=model_path) from None
    found = set()
    for tensor in _get_all_tensors(proto):
        if uses_external_data(tensor):
            location = next(e.value for e in tensor.external_data if e.key == "location")
            found.add(model_path.parent / location)
    return sorted(found)


def content_hash(model_path: Path, *, keep_fp32: Collection[str] = ()) -> str:
    """sha256 over the model file, its external-data files, ``keep_fp32`` and the rewrite version."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": EMULATION_VERSION, "keep_fp32": sorted(keep_fp32)}).encode())
    # each file's sha256 (remembered by its stat, see cache.file_sha256); external data names its location
    file_digest, named = file_sha256(model_path, marker=b"location")
    digest.update(file_digest.encode())
    for path in _external_files(model_path) if named else ():  # else no parse of the whole model for nothing
        digest.update(file_sha256(path)[0].encode())
    return digest.hexdigest()


def convert(model_path: Path, *, keep_fp32: Collection[str] = (), use_cache: bool = True) -> Path | InMemory:
    """The emulated model: a cached file path, or with ``use_cache=False`` the graph in memory (see
    ``inmemory``)."""
    try:
        if not use_cache:
            return emulated_in_memory(model_path, keep_fp32)
        target = cache_dir() / "fp16" / content_hash(model_path, keep_fp32=keep_fp32) / "model.onnx"
        if target.exists():
            return target
        model, floats, rounded = loaded_model(model_path), *prepared_names(model_path)
        emulated = emulate_fp16(model, keep_fp32=keep_fp32, float_tensors=floats, rounded_cache=rounded)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} (a suite of several models names each model's nodes in a table: "
                          '[candidate.keep_fp32] model = ["node", ...])', path=model_path, where="keep_fp32") from None
    if _approximate_size(emulated) > _TWO_GB:
        return _save_with_external_data(emulated, target)
    write_bytes_atomic(target, emulated.SerializeToString())
    return target


def _approximate_size(model) -> int:
    """The serialized size, less the graph's structure: the weights' bytes (protobuf's ByteSize walks
    every field, a noticeable cost per conversion of a large model)."""
    from accuracy.backends.onnxrt_fp16.emulate import all_graphs

    return sum(len(t.raw_data) + 4 * len(t.float_data) + 8 * len(t.int64_data) + 4 * len(t.int32_data)
               for graph in all_graphs(model.graph) for t in graph.initializer) + (1 << 20)


def _save_with_external_data(model, target: Path) -> Path:
    """Save ``model`` and its ``.data`` file as one cache entry: written into a private folder that
    is renamed into place whole, so no reader sees a model without its data, and no two processes
    write the same file. When another process got there first, its entry is kept and ours discarded."""
    import onnx

    target.parent.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{target.parent.name}.", dir=target.parent.parent))
    try:
        onnx.save(model, str(private / target.name), save_as_external_data=True, location=f"{target.name}.data")
        try:
            os.rename(private, target.parent)  # replaces only an empty folder: the first complete entry wins
        except OSError as exc:
            if not target.exists():
                raise BackendError(f"cannot place the fp16 cache entry ({exc}); remove the folder {target.parent}",
                                   path=target.parent) from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return target


class OnnxRuntimeFp16Backend(OnnxRuntimeBackend):
    """Loads an fp32 ONNX file as its fp16-emulated copy (see the module docstring)."""

    def _extra_option_names(self) -> set[str]:
        return {"keep_fp32", "cache"}

    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        settings = self._settings()
        settings["graph_optimization_level"] = str(self.options.get("graph_optimization_level", "basic"))
        if settings["graph_optimization_level"] not in _SAFE_LEVELS:
            raise ConfigError(
                f"graph_optimization_level must be one of {', '.join(_SAFE_LEVELS)} for fp16 emulation "
                "(higher levels may fold the rounding casts)",
                where=f"{self.name}.graph_optimization_level",
            )
        keep = self.options.get("keep_fp32", [])
        if isinstance(keep, str) or not all(isinstance(k, str) for k in keep):
            raise ConfigError("keep_fp32 must be a list of node names", where=f"{self.name}.keep_fp32")
        use_cache = self.options.get("cache", True)
        if not isinstance(use_cache, bool):
            raise ConfigError(f"cache must be true or false, not {use_cache!r}", where=f"{self.name}.cache")
        model = convert(model_path, keep_fp32=list(keep), use_cache=use_cache)
        session = open_emulated(model, model_path=model_path, settings=settings)
        session.backend_name = self.name
        return session


def open_emulated(model: Path | bytes | InMemory, *, model_path: Path, settings: dict[str, Any]) -> Session:
    """A session on the emulated ``model``, from its ORT-optimised copy beside the cache entry.

    The emulated graph is twice the original's size, and ORT's "basic" pass over it (constant
    folding, redundant-node removal) costs more than the session itself. That pass gives the same
    graph every time, so the first session saves it (``optimized_model_filepath``) and later ones
    load it with no optimisation: the same graph, the same kernels, the same numbers, at a fraction
    of the cost (tiny SD's unet: 0.31 s -> 0.07 s). Keyed by the ORT version, providers and session
    options; entries with external data, in-memory models and read-only caches open as before.
    """
    if isinstance(model, InMemory):  # cache = false: the graph, its weights read in place or handed over
        if model.folder is not None:
            settings = {**settings, "graph_optimization_level": "disable"}  # see inmemory: the Casts run
        return open_session(model.serialized, model_path=model_path, external_initializers=model.arrays,
                            external_data_folder=model.folder, **settings)
    if isinstance(model, bytes) or settings["graph_optimization_level"] != "basic" \
            or model.with_name(f"{model.name}.data").exists():
        return open_session(model, model_path=model_path, **settings)
    import onnxruntime as ort

    key = json.dumps([ort.__version__, settings["providers"], sorted(settings["session_options_extra"].items())],
                     default=repr)
    optimized = model.with_name(f"{model.stem}.ort-basic-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx")
    if optimized.exists():
        try:
            return open_session(optimized, model_path=model_path, **{**settings, "graph_optimization_level": "disable"})
        except BackendError:  # damaged: made again below
            pass
    try:
        fd, private = tempfile.mkstemp(prefix=f".{optimized.name}.", suffix=".tmp", dir=model.parent)
    except OSError:  # a read-only cache: open as before
        return open_session(model, model_path=model_path, **settings)
    os.close(fd)
    extra = {**settings["session_options_extra"], "optimized_model_filepath": private}
    # its weights in a data file of their own (a name no other writer uses): ORT maps them on the next load
    # instead of parsing them out of the model file, a third faster for a model of tens of MB
    data = model.parent / f"{Path(private).name.removesuffix('.tmp').lstrip('.')}.data"
    config = {"session.optimized_model_external_initializers_file_name": data.name,
              "session.optimized_model_external_initializers_min_size_in_bytes": str(_EXTERNAL_MIN)}
    try:
        session = open_session(model, model_path=model_path, config=config,
                               **{**settings, "session_options_extra": extra})
        if Path(private).stat().st_size:
            os.replace(private, optimized)  # complete files only (its data first): never half of one
            data = None
    finally:
        Path(private).unlink(missing_ok=True)
        if data is not None:
            data.unlink(missing_ok=True)
    return session


_EXTERNAL_MIN = 1024  # bytes: smaller initializers stay in the optimised model file
