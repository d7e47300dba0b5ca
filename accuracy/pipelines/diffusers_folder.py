"""A diffusers ONNX folder as a pipeline entry, run by diffusers' own ONNX pipelines.

The folder is the guide's layout (``model_index.json`` + ``text_encoder/``, ``unet/``,
``vae_encoder/``, ``vae_decoder/``, ``safety_checker/`` when present, ``tokenizer/``,
``scheduler/``). Each model is a ``ModelProxy`` on whichever backend bisect chose for it, so the
pipeline code is diffusers' unmodified ``OnnxStableDiffusionImg2ImgPipeline`` (or the text-to-image
``OnnxStableDiffusionPipeline``) -- not a hand-edited copy per experiment as in the guide.

Inputs (``[pipeline.inputs]``): ``prompt`` (required), ``negative_prompt``, ``image`` (img2img),
``strength``, ``guidance_scale``, ``num_inference_steps``, ``seed`` (a ``numpy.random.RandomState``
seed, default 0), ``height``/``width`` (text-to-image). Output: ``{"image": (N, H, W, 3) float in 0..1}``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.errors import ConfigError, InputError, MissingDependencyError
from accuracy.io import read_json

IMG2IMG = "OnnxStableDiffusionImg2ImgPipeline"
TEXT2IMG = "OnnxStableDiffusionPipeline"
_CALL_KEYS = {"prompt", "negative_prompt", "image", "strength", "guidance_scale", "num_inference_steps",
              "height", "width", "eta"}


def diffusers_entry(folder: Path) -> Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, np.ndarray]]:
    """A ``run(models, inputs)`` entry for the folder; tokenizer and scheduler are loaded once."""
    try:
        import transformers

        transformers.logging.set_verbosity_error()  # e.g. "CLIPImageProcessor requires torchvision": noise here
        import diffusers
        from transformers import CLIPTokenizer
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "diffusers", "diffusers", "running a diffusers ONNX folder") from None
    diffusers.utils.logging.set_verbosity_error()  # the ONNX pipelines' deprecation notices, once per run
    index_path = folder / "model_index.json"
    try:
        index = read_json(index_path)  # a regular file, bounded (nesting, digits)
    except InputError as exc:
        raise ConfigError(f"cannot read model_index.json: {exc.message}", path=index_path) from None
    if not isinstance(index, dict):
        raise ConfigError("model_index.json must hold an object", path=index_path)
    class_name = index.get("_class_name", IMG2IMG)
    pipeline_class = getattr(diffusers, TEXT2IMG if class_name == TEXT2IMG else IMG2IMG)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    scheduler_name = (index.get("scheduler") or [None, "PNDMScheduler"])[1]
    scheduler_class = getattr(diffusers, scheduler_name, None)
    if scheduler_class is None:
        raise ConfigError(f"unknown scheduler {scheduler_name!r}", path=index_path, where="scheduler")
    scheduler_config = scheduler_class.load_config(str(folder / "scheduler"))
    feature_extractor = None
    if (folder / "feature_extractor").exists():
        from transformers import CLIPImageProcessor

        feature_extractor = CLIPImageProcessor.from_pretrained(str(folder / "feature_extractor"))

    def run(models: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        unknown = set(inputs) - _CALL_KEYS - {"seed"}
        if unknown:
            raise InputError(f"unknown diffusers pipeline inputs {sorted(unknown)}; known: {sorted(_CALL_KEYS | {'seed'})}")
        if "prompt" not in inputs:
            raise InputError("a diffusers pipeline needs a 'prompt' input")
        safety = models.get("safety_checker") if feature_extractor is not None else None
        components = {
            "vae_encoder": models.get("vae_encoder"), "vae_decoder": models["vae_decoder"],
            "text_encoder": models["text_encoder"], "tokenizer": tokenizer, "unet": models["unet"],
            "scheduler": scheduler_class.from_config(scheduler_config), "safety_checker": safety,
            "feature_extractor": feature_extractor, "requires_safety_checker": False,
        }
        pipe = pipeline_class(**components)
        pipe.set_progress_bar_config(disable=True)
        kwargs = {key: value for key, value in inputs.items() if key in _CALL_KEYS}
        if pipeline_class.__name__ == IMG2IMG and "image" not in kwargs:
            raise InputError("an img2img pipeline needs an 'image' input (a .png path in [pipeline.inputs])")
        if isinstance(kwargs.get("image"), np.ndarray):
            kwargs["image"] = _to_pil(kwargs["image"])
        generator = np.random.RandomState(int(inputs.get("seed", 0)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            result = pipe(**kwargs, generator=generator, output_type="np")
        return {"image": np.asarray(result.images, dtype=np.float32)}

    return run


def _to_pil(array: np.ndarray):
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(array)
