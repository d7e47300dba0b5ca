"""The pipeline suite schema (DESIGN.md "Pipeline suites"), validated so every error names file and key.

```toml
[pipeline]
entry = "pipeline.py:run"          # or "package.module:function"; or instead:
diffusers = "onnx_models"          # a diffusers ONNX folder (model_index.json + text_encoder/ ...); or:
builtin = "tiny-sd"                # a bundled pipeline, built once into the cache (accuracy.demo.tiny_sd)
[pipeline.models]                  # name -> model file (a diffusers folder finds its own)
[pipeline.inputs]                  # .npy/.npz arrays, .png images, or inline scalars/strings
[reference]                        # backend = "onnxruntime" + that backend's options
[candidate]                        # backend = "onnxruntime-fp16" + options
[candidate.models]                 # name -> the candidate's own file; unlisted models stay on the reference
[compare]                          # cosine_min, max_abs, rel_l2_max, max_rel, ssim_min, psnr_min, data_range,
                                   # cer_max, wer_max, exact; outputs = [...] limits the judged outputs
[compare.outputs.NAME]             # the same keys for one output, replacing [compare]'s for it
[converter]                        # name -> converter .ini file, or an inline table (shape gears)
[golden]                           # judge image outputs against stored goldens (accuracy.goldens)
folder = "../../baselines/name"    # default: <suite folder>/../../baselines/<suite name>
outputs = ["image"]                # the outputs that are images; latents = "name" keeps a tensor too
backend = "candidate"              # which run is judged: "candidate" (default) or "reference"
ssim_min = 0.98                    # and psnr_min, max_abs (pixel units): the image thresholds
[golden.cases.<name>]              # input overrides per case; none listed: one case, "default"
```
Full reference with examples: docs/pipeline-suites.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.compare.criteria import Criteria
from accuracy.compare.images import ImageThresholds
from accuracy.config.converter import ConverterConfig, converter_from_ini, converter_from_table
from accuracy.config.suite import Suite, TableReader
from accuracy.errors import ConfigError, InputError
from accuracy.goldens import NAME_PATTERN
from accuracy.io import read_json, regular_file

DIFFUSERS_MODELS = ("text_encoder", "unet", "vae_encoder", "vae_decoder", "safety_checker")
SECTIONS = ("suite", "pipeline", "reference", "candidate", "compare", "converter", "golden")
BOUND_KEYS = ("cosine_min", "max_abs", "rel_l2_max", "max_rel", "ssim_min", "psnr_min", "cer_max", "wer_max")
FLOAT_BOUND_KEYS = BOUND_KEYS[:6]  # cer_max / wer_max bound text only: floats keep their default check
CRITERIA_KEYS = (*BOUND_KEYS, "data_range", "exact")
COMPARE_KEYS = (*CRITERIA_KEYS, "outputs")
GOLDEN_KEYS = ("folder", "outputs", "latents", "backend", "ssim_min", "psnr_min", "max_abs", "cases")
GOLDEN_BACKENDS = ("candidate", "reference")
DEFAULT_CASE = "default"
GOLDEN_THRESHOLDS = ImageThresholds()  # accuracy diff's: ssim >= 0.98, psnr >= 30 dB
INPUT_FILES = (".npy", ".npz", ".png", ".jpg", ".jpeg", ".json")


@dataclass(frozen=True)
class BackendSpec:
    """A backend by name with its options; ``models`` are the candidate's own files, if any."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Path] = field(default_factory=dict)

    def options_for(self, model: str) -> dict[str, Any]:
        """The options one model's backend gets: a per-model ``keep_fp32`` table (``[candidate.keep_fp32]``
        ``model = ["node", ...]``) becomes that model's list (empty when the table does not name it);
        a flat list applies to every model."""
        keep = self.options.get("keep_fp32")
        if not isinstance(keep, dict):
            return self.options
        return {**self.options, "keep_fp32": list(keep.get(model, []))}


@dataclass(frozen=True)
class GoldenSpec:
    """``[golden]``: which outputs are judged against stored goldens, from which run, how strictly.

    ``cases`` maps a case name to the inputs it changes (``{"default": {}}`` when none are listed);
    ``raw_cases`` keeps them as written (file paths, not loaded arrays) for the goldens' sidecars.
    """

    folder: Path
    outputs: tuple[str, ...] = ("image",)
    latents: str | None = None
    backend: str = "candidate"
    thresholds: ImageThresholds = GOLDEN_THRESHOLDS
    cases: dict[str, dict[str, Any]] = field(default_factory=lambda: {DEFAULT_CASE: {}})
    raw_cases: dict[str, dict[str, Any]] = field(default_factory=lambda: {DEFAULT_CASE: {}})

    @property
    def explicit_cases(self) -> bool:
        return list(self.cases) != [DEFAULT_CASE]


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
    compare: Criteria
    converter: dict[str, ConverterConfig] = field(default_factory=dict)
    golden: GoldenSpec | None = None
    builtin: str | None = None
    raw_inputs: dict[str, Any] = field(default_factory=dict)

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
    builtin = _builtin(pipeline)
    if sum(value is not None for value in (entry, diffusers, builtin)) != 1:
        raise pipeline.error("entry", "give exactly one of entry = \"file.py:function\", diffusers = \"folder\" "
                             "or builtin = \"tiny-sd\"")
    if builtin is not None:
        from accuracy.demo.tiny_sd import builtin_pipeline

        diffusers = builtin_pipeline(builtin)
    models = _model_files(pipeline.table("models"), base)
    if diffusers is not None:
        if not (diffusers / "model_index.json").exists():
            raise pipeline.error("diffusers", f"not a diffusers folder (no model_index.json in {diffusers})")
        for name in DIFFUSERS_MODELS:
            if name not in models and (diffusers / name / "model.onnx").exists():
                models[name] = diffusers / name / "model.onnx"
    if not models:
        raise pipeline.error("models", "no models: list them as name = \"file.onnx\"")
    raw_inputs = dict(pipeline.table("inputs").data)
    inputs = _inputs(pipeline.table("inputs"), base)
    pipeline.reject_unknown({"entry", "diffusers", "builtin", "models", "inputs"})

    reference = _backend(suite.table("reference"), base, allow_models=False)
    candidate = _backend(suite.table("candidate"), base, allow_models=True)
    for name in candidate.models:
        if name not in models:
            raise ConfigError(f"no model called {name!r} in the pipeline (it has {', '.join(models)})",
                              path=suite.path, where=f"candidate.models.{name}")
    _check_keep_fp32(candidate.options.get("keep_fp32"), models, suite.path)
    compare = _compare(suite.table("compare", required=False))
    converter = _converter(suite.table("converter", required=False), base, models)
    golden = _golden(suite.table("golden"), suite) if "golden" in suite.data else None
    for section in suite.data:
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}] in a pipeline suite; expected: "
                              f"{', '.join(f'[{name}]' for name in SECTIONS)}", path=suite.path, where=section)
    return PipelineSpec(name=suite.name, path=suite.path, entry=entry, diffusers=diffusers, models=models,
                        inputs=inputs, reference=reference, candidate=candidate, compare=compare,
                        converter=converter, golden=golden, builtin=builtin,
                        raw_inputs=raw_inputs)


def _builtin(pipeline: TableReader) -> str | None:
    from accuracy.demo.tiny_sd import BUILTINS

    return pipeline.string("builtin", None, choices=BUILTINS)


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


def _check_keep_fp32(keep: Any, models: dict[str, Path], path: Path) -> None:
    """``keep_fp32``: a list of node names (every model), or a table ``model = ["node", ...]``."""
    if keep is None:
        return
    if isinstance(keep, dict):
        for name, nodes in keep.items():
            if name not in models:
                raise ConfigError(f"no model called {name!r} in the pipeline (it has {', '.join(models)})",
                                  path=path, where=f"candidate.keep_fp32.{name}")
            if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
                raise ConfigError("must be a list of node names", path=path, where=f"candidate.keep_fp32.{name}")
        return
    if not isinstance(keep, list) or not all(isinstance(n, str) for n in keep):
        raise ConfigError('must be a list of node names, or a table [candidate.keep_fp32] model = ["node", ...]',
                          path=path, where="candidate.keep_fp32")


def _compare(table: TableReader) -> Criteria:
    """``[compare]``, and its ``[compare.outputs.NAME]`` tables (or ``outputs = [names]``, which limits
    the judged outputs). Whether each NAME is an output of the pipeline is checked on its first run
    (``accuracy.pipelines.runner``), where the outputs are known."""
    outputs, per_output = table.data.get("outputs", []), {}
    if isinstance(outputs, dict):
        listed = table.table("outputs")
        per_output = {name: _criteria(listed.table(name, required=True), own=True) for name in list(listed.data)}
        outputs = []
    else:
        outputs = table.get("outputs", list, [])
        if not all(isinstance(item, str) for item in outputs):
            raise table.error("outputs", "must be a list of output names, or [compare.outputs.NAME] tables")
    criteria = _criteria(table, own=False)
    table.reject_unknown(COMPARE_KEYS)
    return replace(criteria, outputs=tuple(outputs), per_output=per_output)


def _criteria(table: TableReader, *, own: bool) -> Criteria:
    """The criterion keys of one table. ``[compare]`` naming no bound keeps DESIGN's default check
    (cosine >= 0.99); an output's own table must name at least one (``exact = true`` counts)."""
    values: dict[str, Any] = {}
    for key in BOUND_KEYS + ("data_range",):
        values[key] = table.number(key, None, minimum=0.0 if key != "cosine_min" else -1.0)
        if key in ("cosine_min", "ssim_min") and values[key] is not None and values[key] > 1:
            raise table.error(key, f"must be <= 1 ({key.split('_')[0]} is at most 1: every output would fail), "
                                   f"got {values[key]}")
    values["exact"] = table.get("exact", bool, False)
    if values["data_range"] is not None and values["data_range"] <= 0:
        raise table.error("data_range", f"must be > 0 (the span of pixel values, e.g. 1.0 or 255), "
                                        f"got {values['data_range']}")
    if own:
        table.reject_unknown(CRITERIA_KEYS)
    named = tuple(key for key in CRITERIA_KEYS if key in table.data)
    if own and not any(values[key] is not None for key in BOUND_KEYS) and not values["exact"]:
        raise ConfigError(f"name at least one criterion for this output ({', '.join(BOUND_KEYS)} or "
                          "exact = true)", path=table.path, where=table.prefix)
    if not own and not any(values[key] is not None for key in FLOAT_BOUND_KEYS) and not values["exact"]:
        values["cosine_min"] = Criteria.cosine_min  # no float bound named: DESIGN's default check for floats
    return Criteria(**values, named=named)


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


def _golden(table: TableReader, suite: Suite) -> GoldenSpec:
    default_folder = f"../../baselines/{suite.name}"
    folder = table.path_to("folder", suite.folder, default_folder, must_exist=False).resolve()
    outputs = tuple(_names(table, "outputs", ["image"]))
    if not outputs:
        raise table.error("outputs", "name at least one image output, e.g. outputs = [\"image\"]")
    latents = table.string("latents", None)
    if latents is not None and latents in outputs:
        raise table.error("latents", f"{latents!r} is listed in outputs too: an output is an image or latents")
    backend = table.string("backend", "candidate", choices=GOLDEN_BACKENDS)
    if table.number("ssim_min", None, minimum=-1.0) is not None and table.data["ssim_min"] > 1:
        raise table.error("ssim_min", f"must be <= 1 (SSIM is at most 1: every image would fail), "
                                      f"got {table.data['ssim_min']}")
    thresholds = ImageThresholds(ssim_min=table.number("ssim_min", GOLDEN_THRESHOLDS.ssim_min, minimum=-1.0),
                                 psnr_min=table.number("psnr_min", GOLDEN_THRESHOLDS.psnr_min, minimum=0.0),
                                 max_abs=table.number("max_abs", None, minimum=0.0))
    cases, raw_cases = {DEFAULT_CASE: {}}, {DEFAULT_CASE: {}}
    if "cases" in table.data:
        listed = table.table("cases")
        if not listed.data:
            raise table.error("cases", "list at least one case as [golden.cases.<name>], or leave cases out")
        cases, raw_cases = {}, {}
        for name in list(listed.data):
            if not NAME_PATTERN.match(name):
                raise listed.error(name, "a case name is letters, digits, '.', '_' or '-' (it names golden files)")
            case = listed.table(name, required=True)
            cases[name] = _inputs(case, suite.folder)
            raw_cases[name] = dict(case.data)
    table.reject_unknown(GOLDEN_KEYS)
    return GoldenSpec(folder=folder, outputs=outputs, latents=latents, backend=backend, thresholds=thresholds,
                      cases=cases, raw_cases=raw_cases)


def _names(table: TableReader, key: str, default: list[str]) -> list[str]:
    names = table.get(key, list, default)
    for name in names:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise table.error(key, f"must be a list of output names (letters, digits, '.', '_', '-'), got {name!r}")
    return names


def _inputs(table: TableReader, base: Path) -> dict[str, Any]:
    """Inline scalars/strings stay as they are; ``.npy``/``.npz``/``.png``/``.jpg`` strings are loaded."""
    inputs: dict[str, Any] = {}
    for name, value in table.data.items():
        if isinstance(value, str) and Path(value).suffix.lower() in INPUT_FILES:
            inputs[name] = _load_input(table, name, table.path_to(name, base))
        else:
            inputs[name] = value
    return inputs


def _load_input(table: TableReader, name: str, path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        regular_file(path)  # a named pipe would block np.load / PIL forever
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            from accuracy.imageio import read_npz

            return read_npz(path)
        if suffix == ".json":
            return read_json(path)
        from PIL import Image

        with Image.open(path) as image:
            return image.convert("RGB")
    except InputError as exc:
        raise table.error(name, f"cannot read {path}: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 -- numpy/PIL raise many types for unreadable files
        raise table.error(name, f"cannot read {path}: {exc}") from None
