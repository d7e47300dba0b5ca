"""The user cache folder for built and private model files: ``$ACCURACY_CACHE_DIR`` or ``~/.cache/accuracy``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where built artefacts (the tiny pipeline, seeded private copies) live."""
    override = os.environ.get("ACCURACY_CACHE_DIR")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "accuracy"
