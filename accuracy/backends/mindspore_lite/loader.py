"""``mindspore-lite`` backend: MindIR files through the real ``mindspore_lite`` runtime, in a worker
process under the interpreter that has it (the official wheel is tied to one Python and CANN
release: 2.0.0 on PyPI is cp37-only; the harness wants a current Python).

The worker (``worker.py``) builds each model with a ``Context`` for the target and precision mode
and runs it; this side owns the timeouts and turns a worker crash into a ``CandidateFailed`` whose
message is the model's verdict (``candidate failed: ... worker exited with SIGSEGV``). Each model
gets its own worker, so one model's crash never takes another's session with it. An ``.onnx`` file
is converted to MINDIR first by the real converter (``accuracy.convert``, cached by content hash).

Options:

``python``
    The interpreter with ``mindspore_lite`` (default: ``$ACCURACY_MSLITE_PYTHON``, then
    ``<repo>/.venv-mslite/bin/python`` as ``.ci/install-mindspore-lite.sh`` makes it).
``target``
    ``"cpu"`` (default), ``"ascend"`` or ``"gpu"``.
``device_id``
    The device index for Ascend/GPU (default 0).
``precision_mode``
    For Ascend the ``[ascend_context] precision_mode`` (``enforce_fp32``, ``force_fp16``, ...); for
    CPU/GPU the context's ``precision_mode`` (2.0: ``enforce_fp32``, ``preferred_fp16``). Empty keeps
    the model's own.
``config_path``
    A MindSpore Lite config file handed to ``build_from_file`` (mixed precision plans and the like).
``thread_num``
    CPU threads of the runtime (default: the library's).
``timeout``
    Seconds one request (build, run, convert) may take before the worker is killed (default 600).
``rewrites``
    For an ``.onnx`` file: apply ``accuracy.convert.rewrites`` before converting (default true).

Inputs: names from the model, or the reference's in input order when conversion lost them; a feed
whose dtype the converter changed (int64 ``input_ids`` become int32) is cast to the model's; a feed
whose shape differs from the model's is applied with ``Model.resize`` (dynamic shapes, gears).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.base import Backend, Session, TensorSpec
from accuracy.backends.mindspore_lite.client import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    Worker,
    WorkerFailed,
    find_python,
)
from accuracy.errors import CandidateFailed, ConfigError, MissingDependencyError

TARGETS = ("cpu", "ascend", "gpu")
KNOWN_OPTIONS = ("python", "target", "device_id", "precision_mode", "config_path", "thread_num", "timeout", "rewrites")
INSTALL_HINT = (
    "mindspore_lite cannot be imported by {python} (from {source}: {why}); install the wheel that "
    "matches your device and Python into that interpreter (here: bash .ci/install-mindspore-lite.sh "
    "makes .venv-mslite with mindspore-lite==2.0.0 for Python 3.7) and point the backend's python "
    "option or $ACCURACY_MSLITE_PYTHON at it"
)


def start_worker(python: str | None, *, timeout: float = DEFAULT_TIMEOUT, label: str = "mindspore-lite worker") -> Worker:
    """A worker whose interpreter imports ``mindspore_lite`` (else ``MissingDependencyError``)."""
    worker = Worker(python, timeout=timeout, label=label)
    if worker.hello.get("mindspore_lite") is None:
        worker.close()
        hint = INSTALL_HINT.format(python=worker.python, source=worker.python_source,
                                   why=worker.hello.get("import_error", "?"))
        error = MissingDependencyError("mindspore_lite", "mindspore-lite", "the 'mindspore-lite' backend")
        error.message, error.args = hint, (hint,)
        raise error
    return worker


def describe_failure(reply: dict[str, Any]) -> str:
    """The library's exception, the first of its own error lines in short (the one that says why:
    ``InferSubgraph index: 0 failed, ret: -500``), then all of them in full on the next lines."""
    lines = [line for line in reply.get("log", []) if line]
    first = next((short_log_line(line) for line in lines if "[ERROR]" in line), None)
    head = reply.get("error", "?").rstrip(".") + (f": {first}" if first else "")
    return head + "".join(f"\n  {line}" for line in lines)


def short_log_line(line: str) -> str:
    """``[ERROR] LITE(..) [file.cc:642] Run] InferSubgraph index: 0 failed`` -> the message itself."""
    return line.rsplit("] ", 1)[-1].strip()


class MindSporeLiteSession(Session):
    backend_name = "mindspore-lite"

    def __init__(self, model_path: Path, worker: Worker, handle: int, inputs: Sequence[TensorSpec],
                 outputs: Sequence[TensorSpec], model_dtypes: Sequence[np.dtype]):
        super().__init__(model_path, inputs, outputs)
        self.worker, self.handle, self.model_dtypes = worker, handle, list(model_dtypes)

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        arrays = [np.ascontiguousarray(feeds[spec.name], dtype=dtype)
                  for spec, dtype in zip(self.inputs, self.model_dtypes)]
        try:
            reply, outputs = self.worker.request({"op": "run", "model": self.handle}, arrays)
        except WorkerFailed as exc:
            exc.path = str(self.model_path)
            raise
        if not reply.get("ok"):
            raise CandidateFailed(f"candidate failed: mindspore_lite failed to run the model: {describe_failure(reply)}",
                               path=self.model_path)
        return outputs

    def close(self) -> None:
        self.worker.close()


class MindSporeLiteBackend(Backend):
    """Builds a MindIR (or an ONNX model, converted first) in a MindSpore Lite worker."""

    accepts_converter_config = True  # the runner hands over the suite's [converter.<model>] config

    def _request(self) -> dict[str, Any]:
        unknown = sorted(set(self.options) - set(KNOWN_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} for backend '{self.name}'; "
                              f"known: {', '.join(KNOWN_OPTIONS)}", where=self.name)
        target = str(self.options.get("target", "cpu"))
        if target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}, not {target!r}", where=f"{self.name}.target")
        return {"target": target, "device_id": int(self.options.get("device_id", 0)),
                "precision_mode": str(self.options.get("precision_mode", "")),
                "config_path": str(self.options.get("config_path", "")),
                "thread_num": int(self.options.get("thread_num", 0))}

    def check_available(self) -> None:
        """Cheap: the interpreter exists, and (when it is this one) can find ``mindspore_lite``; a
        configured interpreter is asked only when a model loads (starting it takes a second)."""
        import importlib.util
        import sys

        python, source = find_python(self.options.get("python"))
        missing = None
        if not Path(python).exists():
            missing = f"{python} does not exist"
        elif python == sys.executable and importlib.util.find_spec("mindspore_lite") is None:
            missing = "ModuleNotFoundError: No module named 'mindspore_lite'"
        if missing:
            hint = INSTALL_HINT.format(python=python, source=source, why=missing)
            error = MissingDependencyError("mindspore_lite", "mindspore-lite", f"the '{self.name}' backend")
            error.message, error.args = hint, (hint,)
            raise error

    @property
    def timeout(self) -> float:
        value = self.options.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT:
            # nan and inf too: select() refuses them with a traceback, or nan never times out
            raise ConfigError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], not {value!r}",
                              where=f"{self.name}.timeout")
        return float(value)

    def load(self, model_path: str | Path, *, reference: Session | None = None, converter: Any = None) -> Session:
        model_path = Path(model_path)
        if model_path.suffix.lower() == ".onnx" and model_path.exists():
            from accuracy.convert import convert_one

            self._request()  # bad options are reported before a conversion
            result = convert_one(model_path.parent.name if model_path.stem == "model" else model_path.stem,
                                 model_path, converter, python=self.options.get("python"),
                                 target=str(self.options.get("target", "cpu")), timeout=self.timeout,
                                 rewrites=bool(self.options.get("rewrites", True)))
            if result.status == "failed":
                raise CandidateFailed(f"candidate failed: the converter could not convert it: {result.error}",
                                   path=model_path)
            model_path = result.mindir
        return super().load(model_path, reference=reference)

    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        request = dict(self._request(), op="build", path=str(model_path.resolve()))
        worker = start_worker(self.options.get("python"), timeout=self.timeout, label=f"mindspore-lite worker ({model_path.name})")
        try:
            reply, _ = worker.request(request)
        except WorkerFailed as exc:
            exc.path = str(model_path)
            raise
        if not reply.get("ok") and reply.get("bad_option"):
            worker.close()
            raise ConfigError(f"mindspore_lite refuses the context: {reply['error']}", where=self.name)
        if not reply.get("ok"):
            worker.close()
            raise CandidateFailed(f"candidate failed: mindspore_lite cannot build the model: {describe_failure(reply)}",
                               path=model_path)
        model_inputs = [_spec(item) for item in reply["inputs"]]
        inputs = model_inputs
        if reference is not None and len(reference.inputs) == len(inputs):
            # the reference's names in input order when conversion lost them; the reference's dtypes
            # as the feeds' (the model's own, e.g. int32 for int64 input_ids, is cast to on each run)
            if {s.name for s in inputs} != set(reference.input_names):
                inputs = [TensorSpec(ref.name, spec.shape, ref.dtype) for ref, spec in zip(reference.inputs, inputs)]
            else:
                by_name = {ref.name: ref for ref in reference.inputs}
                inputs = [TensorSpec(spec.name, spec.shape, by_name[spec.name].dtype) for spec in inputs]
        if reference is not None and len(reply["outputs"]) in (0, len(reference.outputs)):
            outputs = list(reference.outputs)
        else:
            outputs = [_spec(item) for item in reply["outputs"]]
        session = MindSporeLiteSession(model_path, worker, reply["model"], inputs, outputs,
                                       [spec.dtype for spec in model_inputs])
        session.backend_name = self.name
        return session


def _spec(item: dict[str, Any]) -> TensorSpec:
    shape = tuple(None if int(d) < 0 else int(d) for d in item["shape"])
    return TensorSpec(item["name"], shape, np.dtype(item["dtype"]))
