"""The user cache folder for built and private model files: ``$ACCURACY_CACHE_DIR`` or ``~/.cache/accuracy``."""

from __future__ import annotations

import os
from pathlib import Path

from accuracy.io import writable_folder

ENV = "ACCURACY_CACHE_DIR"


def cache_dir() -> Path:
    """Where built artefacts (the tiny pipeline, seeded private copies) live: made when missing; a
    file there or a folder that cannot be written is one ``InputError`` naming it and the variable."""
    override = os.environ.get(ENV)
    if override:
        return writable_folder(Path(override).expanduser(), what=f"cache folder (set {ENV} to a writable folder)",
                               where=ENV)
    return writable_folder(Path.home() / ".cache" / "accuracy", what=f"cache folder (set {ENV} to a writable one)")
