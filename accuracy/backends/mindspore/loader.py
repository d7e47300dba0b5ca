"""``mindspore`` backend: a MindIR file run by MindSpore's runtime (``mindspore.load`` + ``nn.GraphCell``).

MindIR carries no input names, so feeds are passed positionally in the order of the reference
model's inputs (``Backend.load(..., reference=session)``, as a pipeline suite does) or of the
``input_names`` option. Input/output specs are taken from the reference; an fp16 MindIR returns
fp16 tensors, which are cast to the reference's float dtype (option ``cast_outputs``, default
true) so a comparison sees values, not dtypes — an overflow stays ``inf``.

Options: ``device_target`` (default ``"CPU"``), ``input_names``, ``cast_outputs``.
mindspore is imported only when a model is loaded; it lives in the ``mindspore`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.base import Backend, Session, TensorSpec
from accuracy.errors import BackendError, ConfigError, MissingDependencyError

_KNOWN_OPTIONS = {"device_target", "input_names", "cast_outputs"}


def import_mindspore(feature: str = "the 'mindspore' backend"):
    try:
        import mindspore
    except ImportError:
        raise MissingDependencyError("mindspore", "mindspore", feature) from None
    return mindspore


class MindSporeSession(Session):
    backend_name = "mindspore"

    def __init__(self, model_path: Path, cell: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 *, cast_outputs: bool = True):
        super().__init__(model_path, inputs, outputs)
        self.cell = cell
        self.cast_outputs = cast_outputs

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        import mindspore

        args = [mindspore.Tensor(np.ascontiguousarray(feeds[spec.name])) for spec in self.inputs]
        try:
            result = self.cell(*args)
        except Exception as exc:  # noqa: BLE001 - MindSpore raises many types with long reports
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"mindspore failed to run the model: {first}", path=self.model_path) from None
        outputs = [t.asnumpy() for t in (result if isinstance(result, (tuple, list)) else [result])]
        if not self.outputs:
            self.outputs = [TensorSpec(f"output_{i}", o.shape, o.dtype) for i, o in enumerate(outputs)]
        if self.cast_outputs:
            outputs = [
                o.astype(spec.dtype) if np.issubdtype(o.dtype, np.floating)
                and np.issubdtype(spec.dtype, np.floating) and o.dtype != spec.dtype else o
                for o, spec in zip(outputs, self.outputs)
            ]
        return outputs


class MindSporeBackend(Backend):
    """Loads MindIR files with ``mindspore.load`` and runs them through ``nn.GraphCell``."""

    def check_available(self) -> None:
        import importlib.util

        if importlib.util.find_spec("mindspore") is None:  # importing it takes seconds; finding it does not
            raise MissingDependencyError("mindspore", "mindspore", f"the '{self.name}' backend")

    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        unknown = sorted(set(self.options) - _KNOWN_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} for backend '{self.name}'; "
                              f"known: {', '.join(sorted(_KNOWN_OPTIONS))}", where=self.name)
        ms = import_mindspore()
        from mindspore import nn

        device = str(self.options.get("device_target", "CPU"))
        if hasattr(ms, "set_device"):  # MindSpore >= 2.5; set_context(device_target=) is deprecated there
            ms.set_context(mode=ms.GRAPH_MODE)
            ms.set_device(device)
        else:
            ms.set_context(mode=ms.GRAPH_MODE, device_target=device)
        try:
            cell = nn.GraphCell(ms.load(str(model_path)))
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad model file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"mindspore cannot load the MindIR: {first}", path=model_path) from None
        names = self.options.get("input_names")
        if names is not None:
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise ConfigError("input_names must be a list of strings", where=f"{self.name}.input_names")
            by_name = {s.name: s for s in (reference.inputs if reference else [])}
            inputs = [by_name.get(n, TensorSpec(n, (), np.dtype(np.float32))) for n in names]
        elif reference is not None:
            inputs = list(reference.inputs)
        else:
            raise BackendError(
                "MindIR has no input names: load it with the reference model's session (a suite's "
                "[reference]) or give the backend option input_names = [...] in input order",
                path=model_path,
            )
        outputs = list(reference.outputs) if reference is not None else []
        session = MindSporeSession(model_path, cell, inputs, outputs,
                                   cast_outputs=bool(self.options.get("cast_outputs", True)))
        session.backend_name = self.name
        return session
