"""``mindspore-lite`` backend: MindIR files through the ``mindspore_lite`` runtime (Ascend, CPU or GPU).

This is how converted models run on an Ascend host: a ``Context`` with a target and a precision
mode, ``Model.build_from_file``, ``predict``. ``mindspore_lite`` is imported only when a model is
loaded; where it is missing the error says how to install it (its wheels come with the Ascend
toolkit or from the MindSpore Lite download page, not from PyPI for every platform).

Options:

``target``
    ``"ascend"`` (default), ``"cpu"`` or ``"gpu"``.
``device_id``
    The device index for Ascend/GPU (default 0).
``precision_mode``
    Passed to the device: for Ascend the ``[ascend_context] precision_mode`` of a config
    (``enforce_fp32``, ``force_fp16``, ``allow_fp32_to_fp16``, ...); for CPU/GPU the context's
    ``precision_mode`` (``must_fp32``, ``preferred_fp16``, ...). Empty keeps the model's own.
``config_path``
    A MindSpore Lite config file handed to ``build_from_file`` (mixed precision plans and the like).

Input names come from the model itself (``Model.get_inputs()``), or, when they differ from the
reference model's, the reference's names in input order; feeds whose shape differs from the
model's are applied with ``Model.resize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.base import Backend, Session, TensorSpec
from accuracy.errors import BackendError, ConfigError, MissingDependencyError

TARGETS = ("ascend", "cpu", "gpu")
_KNOWN_OPTIONS = {"target", "device_id", "precision_mode", "config_path"}
INSTALL_HINT = (
    "mindspore_lite is not installed: install the MindSpore Lite wheel matching your device and "
    "Python (e.g. pip install mindspore-lite, or the wheel shipped with the Ascend toolkit; see "
    "https://www.mindspore.cn/lite)"
)


def import_mindspore_lite():
    try:
        import mindspore_lite
    except ImportError:
        error = MissingDependencyError("mindspore_lite", "mindspore-lite", "the 'mindspore-lite' backend")
        error.message = INSTALL_HINT
        error.args = (INSTALL_HINT,)
        raise error from None
    return mindspore_lite


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MindSporeLiteSession(Session):
    backend_name = "mindspore-lite"

    def __init__(self, model_path: Path, model: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]):
        super().__init__(model_path, inputs, outputs)
        self.model = model

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        try:
            tensors = self.model.get_inputs()
            shapes = [list(feeds[spec.name].shape) for spec in self.inputs]
            if shapes != [list(t.shape) for t in tensors]:
                self.model.resize(tensors, shapes)
                tensors = self.model.get_inputs()
            for tensor, spec in zip(tensors, self.inputs):
                tensor.set_data_from_numpy(np.ascontiguousarray(feeds[spec.name]))
            outputs = self.model.predict(tensors)
            return [out.get_data_to_numpy() for out in outputs]
        except Exception as exc:  # noqa: BLE001 - mindspore_lite raises many types with device reports
            raise BackendError(f"mindspore_lite failed to run the model: {_first_line(exc)}",
                               path=self.model_path) from None


class MindSporeLiteBackend(Backend):
    """Builds a MindIR with ``mindspore_lite`` under the configured target and precision mode."""

    def _context(self, mslite: Any) -> tuple[Any, dict[str, dict[str, str]]]:
        unknown = sorted(set(self.options) - _KNOWN_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} for backend '{self.name}'; "
                              f"known: {', '.join(sorted(_KNOWN_OPTIONS))}", where=self.name)
        target = str(self.options.get("target", "ascend"))
        if target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}, not {target!r}", where=f"{self.name}.target")
        context = mslite.Context()
        context.target = [target]
        device = getattr(context, target)
        if target != "cpu":
            device.device_id = int(self.options.get("device_id", 0))
        precision = str(self.options.get("precision_mode", ""))
        config: dict[str, dict[str, str]] = {}
        if precision and target == "ascend":
            config["ascend_context"] = {"precision_mode": precision}
        elif precision:
            device.precision_mode = precision
        return context, config

    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        mslite = import_mindspore_lite()
        context, config = self._context(mslite)
        config_path = self.options.get("config_path", "")
        model = mslite.Model()
        try:
            model.build_from_file(str(model_path), mslite.ModelType.MINDIR, context,
                                  config_path=str(config_path), config_dict=config or None)
        except Exception as exc:  # noqa: BLE001 - any build failure is reported with its first line
            raise BackendError(f"mindspore_lite cannot build the model: {_first_line(exc)}", path=model_path) from None
        inputs = [TensorSpec(t.name, tuple(t.shape), _numpy_dtype(t.dtype)) for t in model.get_inputs()]
        if reference is not None and len(reference.inputs) == len(inputs) and \
                {s.name for s in inputs} != set(reference.input_names):
            # names lost in conversion: the reference's names, in input order (as for MindIR on MindSpore)
            inputs = [TensorSpec(ref.name, spec.shape, spec.dtype) for ref, spec in zip(reference.inputs, inputs)]
        if reference is not None and len(reference.outputs) == len(model.get_outputs()):
            outputs = list(reference.outputs)
        else:
            outputs = [TensorSpec(t.name, tuple(t.shape), _numpy_dtype(t.dtype)) for t in model.get_outputs()]
        session = MindSporeLiteSession(model_path, model, inputs, outputs)
        session.backend_name = self.name
        return session


def _numpy_dtype(data_type: Any) -> np.dtype:
    """numpy dtype of a ``mindspore_lite.DataType`` (its enum names end in the numpy name)."""
    name = str(getattr(data_type, "name", data_type)).rsplit(".", 1)[-1].lower()
    try:
        return np.dtype(name)
    except TypeError:
        return np.dtype(np.float32)
