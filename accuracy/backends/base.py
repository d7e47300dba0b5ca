"""The one protocol every backend speaks: a loader turns a model file into a ``Session``.

Following Polygraphy's runner/loader split: the base class owns input checking and the
lifecycle; a backend writes short ``_load`` / ``_run`` methods. Heavy libraries are imported
inside the backend module, never here. Sessions never compare: they only run.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.errors import BackendError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` or a string for a dynamic dimension) and numpy dtype of a model input/output."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}]:{np.dtype(self.dtype).name}"


class Session(abc.ABC):
    """A loaded model. ``run`` takes feeds by input name and returns outputs in the model's order."""

    backend_name: str = "?"
    runs: int = 0  # calls so far: a session never run is as fresh as a reopened one

    def __init__(self, model_path: Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]):
        self.model_path = Path(model_path)
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        unknown = sorted(set(feeds) - set(self.input_names))
        missing = [name for name in self.input_names if name not in feeds]
        if unknown or missing:
            raise BackendError(
                f"feeds do not match the model's inputs (missing {missing}, unknown {unknown}); "
                f"the model takes {[s.describe() for s in self.inputs]}",
                path=self.model_path,
            )
        self.runs += 1
        outputs = self._run({name: np.asarray(feeds[name]) for name in self.input_names})
        return [np.asarray(out) for out in outputs]

    @abc.abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Run the model on checked feeds (ordered as ``self.inputs``)."""

    def close(self) -> None:
        """Release what the session holds; the default has nothing to release."""


@dataclass
class Backend(abc.ABC):
    """A loader: ``load(path)`` gives a ``Session``. Options come from the suite's backend table."""

    name: str = "?"
    options: dict[str, Any] = field(default_factory=dict)

    def check_available(self) -> None:
        """Raise ``MissingDependencyError`` (with the install hint) when this backend's package is
        missing, cheaply and before any model is loaded, so a run can refuse (or skip) up front
        instead of failing after its reference runs. The default has nothing to check."""

    def load(self, model_path: str | Path, *, reference: Session | None = None) -> Session:
        """Load ``model_path``. ``reference`` is the reference model's session, for backends whose
        files carry no input names (MindIR through ``nn.GraphCell``) or that replay recordings."""
        model_path = Path(model_path)
        if not model_path.exists():
            raise BackendError("model file not found", path=model_path)
        return self._load(model_path, reference=reference)

    @abc.abstractmethod
    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        ...
