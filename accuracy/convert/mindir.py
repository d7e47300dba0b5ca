"""ONNX -> MINDIR with the real converter (``mindspore_lite.Converter``, the Python face of
``converter_lite``), run in the MindSpore Lite worker, cached by content hash.

The cache key is the ONNX model's bytes (and its folder's other files: external weights), the
converter request and the interpreter that converts; a hit costs no worker start. A model the
converter rejects is a ``failed`` result carrying the converter's own error lines; a worker that
dies converting one model is that model's verdict, and the next model gets a fresh worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accuracy.backends.mindspore_lite.client import DEFAULT_TIMEOUT, Worker, WorkerFailed, find_python
from accuracy.cache import cache_dir
from accuracy.config.converter import ConverterConfig
from accuracy.convert.options import converter_options

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ConvertJob:
    """One model to convert: its name, ONNX file and converter config (``None``: the model's own shapes)."""

    name: str
    onnx: Path
    config: ConverterConfig | None = None


@dataclass
class ConvertResult:
    """``status`` is ``converted``, ``cached`` or ``failed``; ``log`` the converter's own error lines."""

    name: str
    onnx: Path
    status: str
    mindir: Path | None = None
    seconds: float = 0.0
    error: str = ""
    log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    config: str | None = None
    rewrites: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "onnx": str(self.onnx), "status": self.status,
                "mindir": None if self.mindir is None else str(self.mindir), "seconds": round(self.seconds, 3),
                "error": self.error, "log": self.log, "notes": self.notes, "not_applied": self.not_applied,
                "config": self.config, "rewrites": self.rewrites}


def content_key(onnx: Path, request: dict, python: str) -> str:
    digest = hashlib.sha256()
    files = [onnx]
    if onnx.stem == "model":  # a diffusers model folder: external weights live beside model.onnx
        files += sorted(p for p in onnx.parent.iterdir() if p.is_file() and p != onnx)
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(request, sort_keys=True).encode())
    digest.update(str(Path(python).resolve() if Path(python).exists() else python).encode())
    return digest.hexdigest()[:20]


def convert_models(jobs: Sequence[ConvertJob], *, python: str | None = None, target: str = "cpu",
                   timeout: float = DEFAULT_TIMEOUT, use_cache: bool = True, rewrites: bool = True,
                   progress: Progress = lambda text: None) -> list[ConvertResult]:
    """Convert each job (one worker for all, a fresh one after a crash); never raises per model.

    ``rewrites`` (CPU/GPU targets): first apply ``accuracy.convert.rewrites`` where a model has what
    MindSpore Lite 2.0's CPU route cannot take; each applied rewrite is named in the result."""
    from accuracy.backends.mindspore_lite.loader import describe_failure, start_worker
    from accuracy.convert.rewrites import REWRITES, rewrite_for_mslite

    interpreter, _ = find_python(python)
    worker: Worker | None = None
    results = []
    try:
        for position, job in enumerate(jobs, 1):
            options = converter_options(job.config, target=target)
            request = dict(options.request, op="convert", model_file=str(job.onnx.resolve()))
            rewrite = rewrites and target != "ascend"
            key = content_key(job.onnx, {**request, "model_file": job.name,  # the rewrite set is part of the key
                                         "rewrites": list(REWRITES) if rewrite else []}, interpreter)
            folder = cache_dir() / "mindir" / key
            mindir = folder / f"{job.name}.mindir"
            result = ConvertResult(job.name, job.onnx, "cached", mindir, notes=list(options.notes),
                                   not_applied=list(options.not_applied),
                                   config=None if job.config is None else job.config.source)
            applied = folder / "rewrites.json"
            unknown = _unknown_inputs(job)
            if unknown:  # the converter ignores a name the model lacks: the config would silently not apply
                result.status, result.mindir = "failed", None
                result.error = unknown
                results.append(result)
                continue
            if use_cache and mindir.exists():
                progress(f"convert {position}/{len(jobs)}: {job.name} (cached)")
                result.rewrites = _cached_rewrites(applied)
                result.notes += _rewrite_notes(result.rewrites)
                results.append(result)
                continue
            progress(f"convert {position}/{len(jobs)}: {job.name} ({job.onnx})")
            started = time.perf_counter()
            # this process's own staging folder: another converting the same model at once keeps its own
            staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}-{threading.get_ident()}")
            _remove_dead_staging(folder)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            request["output_file"] = str(staging / job.name)
            try:
                if rewrite:
                    rewritten = staging / "rewritten" / "model.onnx"
                    rewritten.parent.mkdir()
                    try:
                        result.rewrites = rewrite_for_mslite(job.onnx, rewritten)
                    except Exception:  # noqa: BLE001 - not readable as ONNX here: the converter will say why
                        result.rewrites = {}
                    if result.rewrites:
                        request["model_file"] = str(rewritten)
                        result.notes += _rewrite_notes(result.rewrites)
                    (staging / "rewrites.json").write_text(json.dumps(result.rewrites))
                if worker is None or not worker.alive:
                    worker = start_worker(python, timeout=timeout, label="mindspore-lite converter worker")
                reply, _ = worker.request(request)
            except WorkerFailed as exc:
                reply = {"ok": False, "error": exc.message, "log": exc.stderr_tail[-10:]}
                worker = None
            result.seconds = time.perf_counter() - started
            result.log = [line for line in reply.get("log", []) if line]
            if reply.get("ok"):
                shutil.rmtree(staging / "rewritten", ignore_errors=True)
                _publish(staging, folder, mindir, replace=not use_cache)
                result.status = "converted"
            else:
                shutil.rmtree(staging, ignore_errors=True)
                result.status, result.mindir = "failed", None
                result.error = describe_failure({"error": reply.get("error", "?")})
            results.append(result)
    finally:
        if worker is not None:
            worker.close()
    return results


def _publish(staging: Path, folder: Path, mindir: Path, *, replace: bool) -> None:
    """Move a finished conversion into the cache. When another process finished the same one first,
    its copy is kept (one reading it is not pulled from under) and ours dropped; a stale folder
    without a model (a killed writer's), or any with ``replace`` (``--no-cache``), is replaced."""
    try:
        staging.rename(folder)
        return
    except OSError:
        pass
    if mindir.exists() and not replace:
        shutil.rmtree(staging, ignore_errors=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def _unknown_inputs(job: ConvertJob) -> str:
    """Why the config's ``input_shape`` does not fit the model (it names inputs the model lacks), or ''."""
    if job.config is None or not job.config.input_shape:
        return ""
    try:
        import onnx

        model = onnx.load(str(job.onnx), load_external_data=False)
    except Exception:  # noqa: BLE001 - not readable here: the converter will say why
        return ""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    missing = [name for name in job.config.input_shape if name not in inputs]
    if not missing:
        return ""
    return (f"the converter config {job.config.source} gives input_shape for {', '.join(missing)}, which the "
            f"model does not have (its inputs: {', '.join(inputs) or 'none'})")


def _remove_dead_staging(folder: Path) -> None:
    """Staging folders of ``folder`` whose process is gone (a killed ``accuracy convert``)."""
    if not folder.parent.is_dir():
        return
    for staging in folder.parent.glob(f"{folder.name}.partial-*"):
        pid = staging.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass  # alive under another user: not ours to judge


def _cached_rewrites(applied: Path) -> dict[str, int]:
    """The rewrites a cached conversion applied; an unreadable record (a damaged cache) is none."""
    try:
        data = json.loads(applied.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _rewrite_notes(rewrites: dict[str, int]) -> list[str]:
    if not rewrites:
        return []
    done = ", ".join(f"{name} x{count}" for name, count in rewrites.items())
    note = (f"rewritten before converting, for MindSpore Lite 2.0's CPU kernels (same numbers to ~1e-6; "
            f"--no-rewrites converts the model as it is): {done}")
    return [note]


def convert_one(name: str, onnx: Path, config: ConverterConfig | None, *, python: str | None = None,
                target: str = "cpu", timeout: float = DEFAULT_TIMEOUT, rewrites: bool = True) -> ConvertResult:
    """One model, for a suite's on-the-fly conversion (``[candidate] backend = "mindspore-lite"``)."""
    return convert_models([ConvertJob(name, Path(onnx), config)], python=python, target=target, timeout=timeout,
                          rewrites=rewrites)[0]
