"""The user cache folder for built and private model files: ``$ACCURACY_CACHE_DIR`` or ``~/.cache/accuracy``."""

from __future__ import annotations

import os
from pathlib import Path

from accuracy.errors import InputError
from accuracy.io import writable_folder

ENV = "ACCURACY_CACHE_DIR"


def cache_dir() -> Path:
    """Where built artefacts (the tiny pipeline, seeded private copies) live: made when missing; a
    file there or a folder that cannot be written is one ``InputError`` naming it and the variable."""
    override = os.environ.get(ENV)
    if override:
        what = f"cache folder (set {ENV} to a writable folder)"
        path = Path(os.path.expanduser(override))  # Path.expanduser raises RuntimeError for ~nosuchuser
        if str(path).startswith("~"):
            raise InputError(f"the {what}: {override.split('/')[0]} is no user's home here", path=override, where=ENV)
        # absolute: the paths it hands out (converted models, private copies) hold in any working folder
        return writable_folder(path.absolute(), what=what, where=ENV)
    return writable_folder(Path.home() / ".cache" / "accuracy", what=f"cache folder (set {ENV} to a writable one)")
