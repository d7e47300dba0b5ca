"""Domain exceptions. The CLI turns every one of them into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class AccuracyError(Exception):
    """Base of every error the user can fix by changing their input.

    ``path`` names the file, ``where`` the key, line or node inside it.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.where = where

    def __str__(self) -> str:
        location = ""
        if self.path:
            location = self.path
            if self.where:
                location += f" [{self.where}]"
            location += ": "
        elif self.where:
            location = f"[{self.where}]: "
        return location + self.message


class ConfigError(AccuracyError):
    """A suite, baseline or converter config file is malformed or names something missing."""


class InputError(AccuracyError):
    """An input file (scores, images, arrays, samples) cannot be read or does not fit."""


class BackendError(AccuracyError):
    """A model cannot be loaded, converted or run by a backend."""


class CandidateFailed(BackendError):
    """The candidate's own converter or runtime refused a model (conversion, build or run failed, its
    worker crashed or hung): a verdict for that model, not bad input. ``bisect`` keeps the model on
    the reference and records the message; elsewhere it is a ``BackendError`` like any other."""


class MissingDependencyError(AccuracyError):
    """An optional package is needed for this feature; the message says how to install it."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the '{package}' package: pip install 'accuracy[{extra}]'"
        )
        self.package = package
        self.extra = extra


class UsageError(AccuracyError):
    """Command-line arguments that do not fit together."""
