"""The two sides localize compares: where reference and candidate tensors come from.

``OnnxSide`` runs sub-models on ONNX Runtime (fp32 reference with optimisations off so every tensor
keeps its name, or the candidate: fp16 emulation / plain ORT with other options). ``DumpSide`` reads
tensors a device dumped as ``.npy`` files keyed by tensor name, through an optional name map.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import onnx

from accuracy.backends.onnxrt.loader import open_session
from accuracy.errors import InputError
from accuracy.io import read_json


class OnnxSide:
    """Runs sub-models on ONNX Runtime; ``fp16=True`` applies device fp16 emulation first."""

    def __init__(self, *, fp16: bool = False, keep_fp32: Collection[str] = (), providers: Sequence[str] =
                 ("CPUExecutionProvider",), label: str = "onnxruntime"):
        self.fp16, self.keep_fp32, self.providers, self.label = fp16, frozenset(keep_fp32), list(providers), label
        self._rounded: dict[str, onnx.TensorProto] = {}  # small weights in the graph, rounded once per run

    def prepare(self, model: onnx.ModelProto, *, graph_inputs: Collection[str] = (),
                float_tensors: Collection[str] | None = None, pre_rounded: Collection[str] = (),
                in_range: Collection[str] = (), shared: Collection[str] = ()) -> onnx.ModelProto:
        if not self.fp16:
            return model
        from accuracy.backends.onnxrt_fp16.emulate import all_node_names, emulate_fp16

        keep = self.keep_fp32 & all_node_names(model.graph)
        return emulate_fp16(model, keep_fp32=keep, round_inputs=set(graph_inputs), float_tensors=float_tensors,
                            pre_rounded=pre_rounded, in_range=in_range, shared=shared, rounded_cache=self._rounded)

    def run(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], outputs: Sequence[str], *,
            graph_inputs: Collection[str] = (), source: Path | None = None,
            float_tensors: Collection[str] | None = None, pre_rounded: Collection[str] = (),
            in_range: Collection[str] = (), shared: Collection[str] = ()) -> dict[str, np.ndarray]:
        """Run ``model`` (a segment) and fetch ``outputs``; ``float_tensors`` are the float32 names
        when known (fp16 emulation then skips its own shape inference). ``source`` is the model file
        the segment came from: its external-data files are read from its folder. ``pre_rounded``: the
        segment's initializers that hold fp16 values already (see ``ModelGraph.rounded``); ``in_range``:
        external ones within fp16's finite range (see ``ModelGraph.in_range``); ``shared``: weights a node
        outside the segment reads without being kept (fp16 stores them rounded for every reader)."""
        prepared = self.prepare(model, graph_inputs=graph_inputs, float_tensors=float_tensors, pre_rounded=pre_rounded,
                                in_range=in_range, shared=shared)
        session = open_session(prepared.SerializeToString(), model_path=source or Path("<segment>"),
                               providers=self.providers, graph_optimization_level="disable",
                               # no arena: a segment's buffers go back to the allocator when it ends
                               session_options_extra={"enable_cpu_mem_arena": False},
                               external_data_folder=None if source is None else Path(source).parent)
        values = session.run_outputs(list(outputs), feeds)
        return dict(zip(outputs, values))


class DumpSide:
    """Tensors dumped by a device: ``DIR/<name>.npy`` (URL-quoted name), or the file the map names.

    The map is a JSON object ``{"onnx tensor name": "dump file or name"}``; names it gives that the
    model does not have are reported (``unknown_in_map``), not fatal.
    """

    label = "dump"

    def __init__(self, folder: str | Path, *, name_map: str | Path | None = None, known: Collection[str] = ()):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError("dump folder not found", path=self.folder)
        self.map: dict[str, str] = {}
        self.map_path = None if name_map is None else Path(name_map)
        if self.map_path is not None:
            data = read_json(self.map_path)
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise InputError('must be a JSON object {"tensor name": "dump file"}', path=self.map_path)
            self.map = dict(data)
        self.unknown_in_map = sorted(set(self.map) - set(known)) if known else []

    def path_for(self, tensor: str) -> Path:
        target = self.map.get(tensor)
        if target is None:
            return self.folder / f"{quote(tensor, safe='')}.npy"
        path = self.folder / target
        return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")

    def get(self, tensor: str) -> np.ndarray | None:
        path = self.path_for(tensor)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the dumped tensor: {exc}", path=path) from None
