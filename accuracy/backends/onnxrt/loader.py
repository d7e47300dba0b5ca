"""``onnxruntime`` backend: an ONNX file becomes an ONNX Runtime ``InferenceSession``.

Options (the suite's backend table, or keywords to ``get_backend``):

``providers``
    Execution providers in priority order (default ``["CPUExecutionProvider"]``).
``graph_optimization_level``
    ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"`` (default ``"all"``, ORT's own default).
    ``localize`` uses ``"disable"`` so every intermediate tensor keeps its name.
``intra_op_num_threads`` / ``inter_op_num_threads``
    Thread pools (0, the default, lets ORT choose).
``allow_spinning``
    Whether a session's idle pool threads busy-wait for the next op (ORT's own default; default
    ``false`` here). The harness keeps several sessions open in one process (reference, candidate,
    localize's segments): the threads of a session that just ran spin on cores the next one needs.
    On 2 cores ``bisect --suggest-fp32`` ran about 10 % faster without it, and one pipeline run no
    slower (bench/bench_repair.py).
``session_options``
    Any further ``SessionOptions`` attributes by name, e.g. ``{"enable_mem_pattern": false}``.

onnxruntime is imported only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends.base import Backend, Session, TensorSpec
from accuracy.errors import BackendError, ConfigError

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
_KNOWN_OPTIONS = {
    "providers", "graph_optimization_level", "intra_op_num_threads", "inter_op_num_threads", "session_options",
    "allow_spinning",
}

# ORT reports types as "tensor(float)"; the numpy dtype each stands for.
_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_, "tensor(string)": np.str_,
}


def numpy_dtype(ort_type: str) -> np.dtype:
    """The numpy dtype of an ORT type string (``object`` for types numpy has no name for)."""
    return np.dtype(_ORT_TYPES.get(ort_type, object))


def tensor_specs(args: Sequence[Any]) -> list[TensorSpec]:
    """``TensorSpec`` list from ORT's ``NodeArg`` list (``get_inputs()`` / ``get_outputs()``)."""
    specs = []
    for arg in args:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in (arg.shape or ()))
        specs.append(TensorSpec(arg.name, shape, numpy_dtype(arg.type)))
    return specs


def session_options(
    *,
    graph_optimization_level: str = "all",
    intra_op_num_threads: int = 0,
    inter_op_num_threads: int = 0,
    extra: Mapping[str, Any] | None = None,
    allow_spinning: bool = False,
    config: Mapping[str, str] | None = None,
    source: str = "onnxruntime",
):
    """Build ``onnxruntime.SessionOptions``; unknown names or levels are a ``ConfigError``."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if graph_optimization_level not in levels:
        raise ConfigError(
            f"graph_optimization_level must be one of {', '.join(OPTIMIZATION_LEVELS)}, "
            f"not {graph_optimization_level!r}",
            where=f"{source}.graph_optimization_level",
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[graph_optimization_level]
    for key, value in (("intra_op_num_threads", intra_op_num_threads), ("inter_op_num_threads", inter_op_num_threads)):
        setattr(options, key, _thread_count(value, where=f"{source}.{key}"))
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    for key, value in (config or {}).items():  # ORT's session configuration entries, by their own names
        options.add_session_config_entry(key, value)
    for key, value in (extra or {}).items():
        if not hasattr(options, key):
            raise ConfigError(f"onnxruntime.SessionOptions has no attribute {key!r}",
                              where=f"{source}.session_options.{key}")
        try:
            setattr(options, key, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"onnxruntime.SessionOptions.{key} cannot be {value!r}: {exc}",
                              where=f"{source}.session_options.{key}") from None
    return options


def _thread_count(value: Any, *, where: str) -> int:
    """A thread-pool size: an integer >= 0 (0 lets ORT choose)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"must be a whole number >= 0 (0 lets onnxruntime choose), not {value!r}", where=where)
    return value


class OnnxRuntimeSession(Session):
    """A loaded ``InferenceSession``; ``output_names`` may be narrowed to run only some outputs."""

    backend_name = "onnxruntime"

    def __init__(self, model_path: Path, ort_session: Any):
        super().__init__(model_path, tensor_specs(ort_session.get_inputs()), tensor_specs(ort_session.get_outputs()))
        self.ort_session = ort_session

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        try:
            return self.ort_session.run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for bad feeds and kernels
            raise BackendError(f"onnxruntime failed to run the model: {exc}", path=self.model_path) from None

    def run_outputs(self, output_names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run and fetch only ``output_names`` (feeds are not re-checked: callers own them)."""
        self.runs += 1
        try:
            return list(self.ort_session.run(list(output_names), dict(feeds)))
        except Exception as exc:  # noqa: BLE001 - as in _run
            raise BackendError(f"onnxruntime failed to run the model: {exc}", path=self.model_path) from None


def open_session(
    model: str | Path | bytes,
    *,
    model_path: str | Path | None = None,
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    graph_optimization_level: str = "all",
    intra_op_num_threads: int = 0,
    inter_op_num_threads: int = 0,
    session_options_extra: Mapping[str, Any] | None = None,
    allow_spinning: bool = False,
    config: Mapping[str, str] | None = None,
    external_data_folder: str | Path | None = None,
    external_initializers: Mapping[str, np.ndarray] | None = None,
    source: str = "onnxruntime",
) -> OnnxRuntimeSession:
    """Open an ONNX model (a path, or serialized bytes) as an ``OnnxRuntimeSession``.

    ``model_path`` names the model in messages when ``model`` is bytes. A path is handed to ORT as
    a path so external-data files (models over 2 GB) are found beside it; for bytes whose
    initializers point at external data, ``external_data_folder`` says where those files are.
    ``external_initializers`` (name -> array) are the data of initializers the model marks external,
    handed to ORT in memory (``SessionOptions.add_external_initializers``; the arrays must outlive the
    session). ``source`` (the backend's name) prefixes the option names in a ``ConfigError``.
    """
    import onnxruntime as ort

    options = session_options(
        graph_optimization_level=graph_optimization_level,
        intra_op_num_threads=intra_op_num_threads,
        inter_op_num_threads=inter_op_num_threads,
        extra=session_options_extra,
        allow_spinning=allow_spinning,
        config=config,
        source=source,
    )
    if external_data_folder is not None:
        options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                         str(external_data_folder))
    if external_initializers:
        names = list(external_initializers)
        options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(external_initializers[n])
                                                  for n in names])
    unavailable = [p for p in providers if p not in ort.get_available_providers()]
    if unavailable:
        raise ConfigError(f"execution provider(s) {', '.join(unavailable)} not available in this onnxruntime; "
                          f"available: {', '.join(ort.get_available_providers())}", where=f"{source}.providers")
    shown = Path(model_path if model_path is not None else (model if not isinstance(model, bytes) else "<memory>"))
    loadable = model if isinstance(model, bytes) else str(model)
    try:
        inner = ort.InferenceSession(loadable, sess_options=options, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types for unloadable models
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"onnxruntime cannot load the model: {first_line}", path=shown) from None
    return OnnxRuntimeSession(shown, inner)


class OnnxRuntimeBackend(Backend):
    """Loads ONNX files on ONNX Runtime with the options described in the module docstring."""

    def _settings(self) -> dict[str, Any]:
        unknown = sorted(set(self.options) - _KNOWN_OPTIONS - self._extra_option_names())
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for backend '{self.name}'; "
                f"known: {', '.join(sorted(_KNOWN_OPTIONS | self._extra_option_names()))}",
                where=f"{self.name}.{unknown[0]}",
            )
        providers = self.options.get("providers", list(DEFAULT_PROVIDERS))
        if isinstance(providers, str):
            providers = [providers]
        if not isinstance(providers, Sequence) or not all(isinstance(p, str) for p in providers):
            raise ConfigError(f"must be a list of execution provider names, not {providers!r}",
                              where=f"{self.name}.providers")
        level = self.options.get("graph_optimization_level", "all")
        if not isinstance(level, str):
            raise ConfigError(f"must be one of {', '.join(OPTIMIZATION_LEVELS)}, not {level!r}",
                              where=f"{self.name}.graph_optimization_level")
        extra = self.options.get("session_options", {})
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise ConfigError('must be a table of SessionOptions attributes, e.g. {enable_mem_pattern = false}, '
                              f"not {extra!r}", where=f"{self.name}.session_options")
        threads = {key: _thread_count(self.options.get(key, 0), where=f"{self.name}.{key}")
                   for key in ("intra_op_num_threads", "inter_op_num_threads")}
        spinning = self.options.get("allow_spinning", False)
        if not isinstance(spinning, bool):
            raise ConfigError(f"must be true or false, not {spinning!r}", where=f"{self.name}.allow_spinning")
        return {
            "providers": list(providers),
            "graph_optimization_level": level,
            **threads,
            "allow_spinning": spinning,
            "session_options_extra": dict(extra),
            "source": self.name,
        }

    def _extra_option_names(self) -> set[str]:
        """Options a subclass adds on top of ORT's own."""
        return set()

    def _load(self, model_path: Path, *, reference: Session | None) -> Session:
        session = open_session(model_path, **self._settings())
        session.backend_name = self.name
        return session
