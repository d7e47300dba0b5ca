"""Which models ``accuracy convert`` converts, each with its converter config.

A source is a diffusers ONNX folder (``model_index.json`` + ``text_encoder/model.onnx`` ...), a
pipeline suite (its ONNX models, configs from its ``[converter]`` table), or one ``.onnx`` file.
``--config-dir`` is the guide's configs folder: ``<model>.ini`` per model, used where the suite
names none.
"""

from __future__ import annotations

from pathlib import Path

from accuracy.config.converter import ConverterConfig, converter_from_ini
from accuracy.convert.mindir import ConvertJob
from accuracy.errors import InputError
from accuracy.io import regular_file

DIFFUSERS_MODELS = ("text_encoder", "unet", "vae_encoder", "vae_decoder", "safety_checker")


def jobs_from_source(source: str | Path, *, config_dir: str | Path | None = None,
                     only: tuple[str, ...] = ()) -> list[ConvertJob]:
    source = Path(source)
    configs = Path(config_dir) if config_dir else None
    if configs is not None and not configs.is_dir():
        raise InputError("not a folder of <model>.ini converter configs", path=configs)
    if source.is_dir():
        if not (source / "model_index.json").exists():
            raise InputError("not a diffusers ONNX folder (no model_index.json): give the folder, a suite "
                             ".toml or an .onnx file", path=source)
        models = {name: source / name / "model.onnx" for name in DIFFUSERS_MODELS
                  if (source / name / "model.onnx").exists()}
        suite_configs: dict[str, ConverterConfig] = {}
    elif source.suffix.lower() == ".toml":
        from accuracy.config import load_suite
        from accuracy.config.pipeline import load_pipeline_spec

        suite = load_suite(source)
        if suite.kind != "pipeline":
            raise InputError(f"convert needs a [pipeline] suite, this one is a {suite.kind} suite", path=source)
        spec = load_pipeline_spec(suite)
        models = {name: path for name, path in spec.models.items() if path.suffix.lower() == ".onnx"}
        suite_configs = dict(spec.converter)
    elif source.suffix.lower() == ".onnx":
        if not source.exists():
            raise InputError("model file not found", path=source)
        models, suite_configs = {source.stem: source}, {}
    else:
        raise InputError("give a diffusers ONNX folder, a pipeline suite .toml or an .onnx file", path=source)
    if only:
        unknown = [name for name in only if name not in models]
        if unknown:
            raise InputError(f"no model called {', '.join(unknown)} here (there are: {', '.join(models) or 'none'})",
                             path=source)
        models = {name: models[name] for name in only}
    if not models:
        raise InputError("no ONNX models found", path=source)
    jobs = []
    for name, onnx in models.items():
        regular_file(onnx, what="ONNX model file")  # a named pipe would hang the hashing, a folder be a traceback
        config = suite_configs.get(name)
        if config is None and configs is not None and (configs / f"{name}.ini").exists():
            config = converter_from_ini(configs / f"{name}.ini")
        jobs.append(ConvertJob(name, onnx, config))
    return jobs
