"""The model proxy: a backend ``Session`` with the call contract of diffusers' ``OnnxRuntimeModel``.

``proxy(**feeds) -> list[np.ndarray]`` (keyword feeds in, outputs in the model's order out), and
``proxy.model.get_inputs()`` / ``get_outputs()`` with ORT-style ``name``/``type``/``shape``, which
diffusers' img2img pipeline reads for the unet's timestep dtype. Every call goes through an optional
``hook(name, index, feeds, run) -> outputs`` so bisect can record, replay or count calls without the
pipeline knowing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from accuracy.backends.base import Session, TensorSpec
from accuracy.errors import BackendError

_NP_TO_ORT = {
    np.dtype(np.float32): "tensor(float)", np.dtype(np.float16): "tensor(float16)",
    np.dtype(np.float64): "tensor(double)", np.dtype(np.int8): "tensor(int8)", np.dtype(np.int16): "tensor(int16)",
    np.dtype(np.int32): "tensor(int32)", np.dtype(np.int64): "tensor(int64)", np.dtype(np.uint8): "tensor(uint8)",
    np.dtype(np.bool_): "tensor(bool)",
}

Runner = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]
CallHook = Callable[[str, int, dict[str, np.ndarray], Runner], list[np.ndarray]]


@dataclass(frozen=True)
class NodeArgInfo:
    """What ``onnxruntime.NodeArg`` tells a pipeline: name, ORT type string, shape."""

    name: str
    type: str
    shape: list


class ModelInfo:
    """Stands in for ``OnnxRuntimeModel.model`` (an ``InferenceSession``) where pipelines inspect it."""

    def __init__(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]):
        self._inputs = [_node_arg(spec) for spec in inputs]
        self._outputs = [_node_arg(spec) for spec in outputs]

    def get_inputs(self) -> list[NodeArgInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArgInfo]:
        return list(self._outputs)


def _node_arg(spec: TensorSpec) -> NodeArgInfo:
    return NodeArgInfo(spec.name, _NP_TO_ORT.get(np.dtype(spec.dtype), "tensor(float)"), list(spec.shape))


class ModelProxy:
    """``OnnxRuntimeModel``'s contract over any backend session.

    ``reference`` is the reference model's session: a candidate without input names (MindIR through
    ``nn.GraphCell``) takes the feeds in the reference's input order, and the pipeline sees the
    reference's input/output metadata either way.
    """

    def __init__(self, name: str, session: Session, *, reference: Session | None = None,
                 hook: CallHook | None = None):
        self.name = name
        self.session = session
        self.reference = reference or session
        self.hook = hook
        self.calls = 0
        self.model = ModelInfo(self.reference.inputs, self.reference.outputs)

    def __call__(self, **kwargs) -> list[np.ndarray]:
        feeds = {key: np.asarray(value) for key, value in kwargs.items()}
        index, self.calls = self.calls, self.calls + 1
        if self.hook is None:
            return self.run(feeds)
        return self.hook(self.name, index, feeds, self.run)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run the session on ``feeds`` (renamed positionally when the candidate's names differ)."""
        session = self.session
        if session is not self.reference and set(feeds) != set(session.input_names):
            order = [feeds[name] for name in self.reference.input_names if name in feeds]
            if len(order) != len(session.input_names):
                raise BackendError(
                    f"{self.name}: the candidate takes {len(session.input_names)} inputs, "
                    f"the pipeline gave {len(feeds)}", path=session.model_path)
            feeds = dict(zip(session.input_names, order))
        return list(session.run(feeds))

    # diffusers' pipelines call .to() / read .model_save_dir on their components in places
    model_save_dir = None

    def to(self, *args, **kwargs) -> ModelProxy:
        return self
