"""What made a baseline or a golden output: the versions of the tools that shape the numbers."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

SCORE_TOOLS = ("accuracy", "opencompass", "onnxruntime", "mindspore", "transformers", "diffusers", "vllm")
IMAGE_TOOLS = ("accuracy", "numpy", "pillow", "scikit-image", "onnx", "onnxruntime", "diffusers",
               "transformers", "torch", "mindspore", "mindspore-lite")


def tool_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``names`` (read from package metadata, nothing imported), plus Python."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
