"""The pipeline suite schema (DESIGN.md "Pipeline suites"), validated so every error names file and key.

```toml
[pipeline]
entry = "pipeline.py:run"          # or "package.module:function"; or instead:
diffusers = "onnx_models"          # a diffusers ONNX folder (model_index.json + text_encoder/ ...)
[pipeline.models]                  # name -> model file (a diffusers folder finds its own)
[pipeline.inputs]                  # .npy/.npz arrays, .png images, or inline scalars/strings
[reference]                        # backend = "onnxruntime" + that backend's options
[candidate]                        # backend = "onnxruntime-fp16" + options
[candidate.models]                 # name -> the candidate's own file; unlisted models stay on the reference
[compare]                          # cosine_min, max_abs, rel_l2_max, max_rel, ssim_min, psnr_min, data_range
[converter]                        # name -> converter .ini file, or an inline table (shape gears)
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.config.converter import ConverterConfig, converter_from_ini, converter_from_table
from accuracy.config.suite import Suite, TableReader
from accuracy.errors import ConfigError

DIFFUSERS_MODELS = ("text_encoder", "unet", "vae_encoder", "vae_decoder", "safety_checker")
SECTIONS = ("suite", "pipeline", "reference", "candidate", "compare", "converter")
COMPARE_KEYS = ("cosine_min", "max_abs", "rel_l2_max", "max_rel", "ssim_min", "psnr_min", "data_range", "outputs")


@dataclass(frozen=True)
class BackendSpec:
    """A backend by name with its options; ``models`` are the candidate's own files, if any."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareSpec:
    """What the pipeline's outputs must meet (``None`` disables a bound); ``outputs`` limits which."""

    cosine_min: float | None = 0.99
    max_abs: float | None = None
    rel_l2_max: float | None = None
    max_rel: float | None = None
    ssim_min: float | None = None
    psnr_min: float | None = None
    data_range: float | None = None
    outputs: tuple[str, ...] = ()


@dataclass
class PipelineSpec:
    """A validated pipeline suite: what to run, with which backends, judged how."""

    name: str
    path: Path
    entry: str | None
    diffusers: Path | None
    models: dict[str, Path]
    inputs: dict[str, Any]
    reference: BackendSpec
    candidate: BackendSpec
    compare: CompareSpec
    converter: dict[str, ConverterConfig] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def candidate_file(self, model: str) -> Path:
        """The candidate's file for ``model`` (the reference's own file when not listed)."""
        return self.candidate.models.get(model, self.models[model])


def load_pipeline_spec(suite: Suite) -> PipelineSpec:
    """Read and check a ``[pipeline]`` suite. Missing files and unknown keys are ``ConfigError``s."""
    base = suite.folder
    pipeline = suite.table("pipeline")
    entry = pipeline.string("entry", None)
    diffusers = pipeline.path_to("diffusers", base, None)
    if (entry is None) == (diffusers is None):
        raise pipeline.error("entry", "give exactly one of entry = \"file.py:function\" or diffusers = \"folder\"")
    models = _model_files(pipeline.table("models"), base)
    if diffusers is not None:
        if not (diffusers / "model_index.json").exists():
            raise pipeline.error("diffusers", f"not a diffusers folder (no model_index.json in {diffusers})")
        for name in DIFFUSERS_MODELS:
            if name not in models and (diffusers / name / "model.onnx").exists():
                models[name] = diffusers / name / "model.onnx"
    if not models:
        raise pipeline.error("models", "no models: list them as name = \"file.onnx\"")
    inputs = _inputs(pipeline.table("inputs"), base)
    pipeline.reject_unknown({"entry", "diffusers", "models", "inputs"})

    reference = _backend(suite.table("reference"), base, allow_models=False)
    candidate = _backend(suite.table("candidate"), base, allow_models=True)
    for name in candidate.models:
        if name not in models:
            raise ConfigError(f"no model called {name!r} in the pipeline (it has {', '.join(models)})",
                              path=suite.path, where=f"candidate.models.{name}")
    compare = _compare(suite.table("compare", required=False))
    converter = _converter(suite.table("converter", required=False), base, models)
    for section in suite.data:
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}] in a pipeline suite; expected: "
                              f"{', '.join(f'[{name}]' for name in SECTIONS)}", path=suite.path, where=section)
    return PipelineSpec(name=suite.name, path=suite.path, entry=entry, diffusers=diffusers, models=models,
                        inputs=inputs, reference=reference, candidate=candidate, compare=compare,
                        converter=converter)


def _model_files(table: TableReader, base: Path) -> dict[str, Path]:
    return {name: table.path_to(name, base) for name in list(table.data)}


def _backend(table: TableReader, base: Path, *, allow_models: bool) -> BackendSpec:
    from accuracy.backends import names

    name = table.string("backend", choices=names())
    models: dict[str, Path] = {}
    if allow_models and "models" in table.data:
        models = _model_files(table.table("models"), base)
    options = {key: value for key, value in table.data.items() if key not in ("backend", "models")}
    if "models" in table.data and not allow_models:
        raise table.error("models", "only [candidate] may list its own model files")
    return BackendSpec(name=name, options=options, models=models)


def _compare(table: TableReader) -> CompareSpec:
    values: dict[str, Any] = {}
    for key in COMPARE_KEYS[:-1]:
        values[key] = table.number(key, None, minimum=0.0 if key != "cosine_min" else -1.0)
    if not any(values[key] is not None for key in COMPARE_KEYS[:-2]):
        values["cosine_min"] = CompareSpec.cosine_min  # no bound named: DESIGN's default check
    outputs = table.get("outputs", list, [])
    if not all(isinstance(item, str) for item in outputs):
        raise table.error("outputs", "must be a list of output names")
    table.reject_unknown(COMPARE_KEYS)
    return CompareSpec(**values, outputs=tuple(outputs))


def _converter(table: TableReader, base: Path, models: dict[str, Path]) -> dict[str, ConverterConfig]:
    configs: dict[str, ConverterConfig] = {}
    for name, value in table.data.items():
        if name not in models:
            raise table.error(name, f"no model called {name!r} in the pipeline")
        if isinstance(value, str):
            configs[name] = converter_from_ini(table.path_to(name, base))
        elif isinstance(value, dict):
            configs[name] = converter_from_table(table.table(name))
        else:
            raise table.error(name, "must be a converter .ini file or a table")
    return configs


def _inputs(table: TableReader, base: Path) -> dict[str, Any]:
    """Inline scalars/strings stay as they are; ``.npy``/``.npz``/``.png``/``.jpg`` strings are loaded."""
    inputs: dict[str, Any] = {}
    for name, value in table.data.items():
        if isinstance(value, str) and Path(value).suffix.lower() in (".npy", ".npz", ".png", ".jpg", ".jpeg", ".json"):
            inputs[name] = _load_input(table, name, table.path_to(name, base))
        else:
            inputs[name] = value
    return inputs


def _load_input(table: TableReader, name: str, path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        if suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        from PIL import Image

        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as exc:  # noqa: BLE001 -- numpy/PIL raise many types for unreadable files
        raise table.error(name, f"cannot read {path}: {exc}") from None
