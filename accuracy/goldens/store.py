"""Golden files: writing, reading back verified, and replacing a golden's image, latents and sidecar
(the layout is in ``accuracy.goldens``).

The sidecar is the commit point of a golden: its sha256s say which image and latents belong to it.
A replacement (``_replace_files``) stages every new file beside the old ones (``.C.png.new`` ...),
keeps the old image and latents as ``.C.png.prev`` / ``.C.latents.npy.prev``, moves the data files
into place and the sidecar last, and only then deletes a latents file the new golden no longer has
and the ``.prev`` copies. An error on the way puts the old files back; after a crash, where the old
sidecar still names the old data, ``load_golden`` reads the ``.prev`` copy that matches it and the
next ``record_golden`` restores it first. Either way the old golden stays loadable until the new
sidecar is in place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.compare.images import ImageComparison, compare_images
from accuracy.errors import InputError
from accuracy.imageio import encode_png, read_array, read_image, to_pixels
from accuracy.io import dumps_json, read_json, write_bytes_atomic
from accuracy.provenance import IMAGE_TOOLS, tool_versions

PROVENANCE_KEYS = ("prompt", "seed", "steps", "strength", "guidance", "size", "scheduler", "backend")
RECORD_HINT = "record it with `accuracy baseline record SUITE` or `pytest --accuracy-update-baselines`"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # case and output names: they name files


class GoldenMissing(InputError):
    """No golden output exists for a case yet; the message says how to record one."""


class GoldenChanged(InputError):
    """Recording would replace a different golden and ``force`` was not given."""


def default_artifacts_dir() -> Path:
    """Where comparison pictures go for CI to collect: ``$ACCURACY_ARTIFACTS`` or ``./accuracy-artifacts``."""
    return Path(os.environ.get("ACCURACY_ARTIFACTS", "accuracy-artifacts"))


@dataclass(frozen=True)
class GoldenPaths:
    folder: Path
    case: str

    @property
    def image(self) -> Path:
        return self.folder / f"{self.case}.png"

    @property
    def latents(self) -> Path:
        return self.folder / f"{self.case}.latents.npy"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.case}.json"


@dataclass(frozen=True)
class Golden:
    """One stored golden output, read back and checked against its sidecar's sha256."""

    paths: GoldenPaths
    image: np.ndarray
    data_range: float
    latents: np.ndarray | None
    sidecar: dict[str, Any]

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.sidecar.get("provenance", {}))


@dataclass(frozen=True)
class RecordOutcome:
    """What ``record_golden`` did: ``status`` is "new", "unchanged" or "replaced"."""

    status: str
    paths: GoldenPaths
    change_picture: Path | None = None
    comparison: ImageComparison | None = None


def golden_paths(folder: str | Path, case: str) -> GoldenPaths:
    if not isinstance(case, str) or not NAME_PATTERN.match(case):
        raise InputError(f"case name {case!r} must be letters, digits, '.', '_' or '-' (it names files)",
                         path=folder)
    return GoldenPaths(Path(folder), case)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _staged(path: Path) -> Path:
    """Where a replacement writes ``path``'s new content before moving it into place."""
    return path.with_name(f".{path.name}.new")


def _previous(path: Path) -> Path:
    """Where a replacement keeps ``path``'s old content until the new sidecar is in place."""
    return path.with_name(f".{path.name}.prev")


def _matching(path: Path, sha256: Any) -> Path | None:
    """``path`` when it holds the content ``sha256`` names, else its ``.prev`` copy when that one does
    (a replacement stopped before its sidecar moved in), else None."""
    for candidate in (path, _previous(path)):
        if candidate.is_file() and _sha256(candidate.read_bytes()) == sha256:
            return candidate
    return None


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def load_golden(folder: str | Path, case: str) -> Golden:
    """Read a golden; a missing one is ``GoldenMissing`` (saying how to record it), a file that no
    longer matches its sidecar's sha256 is an ``InputError`` (it was edited outside this tool)."""
    paths = golden_paths(folder, case)
    if not paths.image.exists():
        raise GoldenMissing(f"no golden output for case '{case}'; {RECORD_HINT}", path=paths.image)
    if not paths.sidecar.exists():
        raise GoldenMissing(f"golden image has no sidecar {paths.sidecar.name}; {RECORD_HINT}", path=paths.image)
    sidecar = read_json(paths.sidecar)
    if not isinstance(sidecar, dict):
        raise InputError("a golden sidecar must be a JSON object", path=paths.sidecar)
    image_file = _matching(paths.image, sidecar.get("image_sha256"))
    if image_file is None:
        raise InputError(f"golden image does not match the sha256 in {paths.sidecar.name} "
                         f"(edited outside accuracy?); {RECORD_HINT}", path=paths.image)
    loaded = read_image(image_file)
    latents = None
    if sidecar.get("latents"):
        if not paths.latents.exists() and not _previous(paths.latents).exists():
            raise InputError(f"sidecar names latents but the file is missing; {RECORD_HINT}", path=paths.latents)
        latents_file = _matching(paths.latents, sidecar.get("latents_sha256"))
        if latents_file is None:
            raise InputError(f"golden latents do not match the sha256 in {paths.sidecar.name}; {RECORD_HINT}",
                             path=paths.latents)
        latents = read_array(latents_file)
    return Golden(paths=paths, image=loaded.array, data_range=loaded.data_range, latents=latents, sidecar=sidecar)


def _read_existing(paths: GoldenPaths, *, force: bool) -> tuple[Golden | None, bool]:
    """The golden being replaced and whether its files agree with its sidecar: what ``load_golden``
    reads when they do, else the files as they lie; (None, False) when they are unreadable and
    ``force`` allows that."""
    try:
        return load_golden(paths.folder, paths.case), True
    except InputError:
        pass
    try:
        old = read_image(paths.image)
        latents = read_array(paths.latents) if paths.latents.exists() else None
        return Golden(paths=paths, image=old.array, data_range=old.data_range, latents=latents, sidecar={}), False
    except InputError as exc:
        if force:
            return None, False
        raise InputError(f"existing golden is unreadable ({exc.message}); pass --force (or force=True) "
                         "to overwrite it", path=exc.path) from None


def _restore_interrupted(paths: GoldenPaths) -> None:
    """Put back the ``.prev`` copies that the sidecar in place still names (a replacement crashed
    after moving a data file in and before moving its sidecar in)."""
    if not paths.sidecar.is_file():
        return
    try:
        sidecar = read_json(paths.sidecar)
    except InputError:
        return
    if not isinstance(sidecar, dict):
        return
    for path, key in ((paths.image, "image_sha256"), (paths.latents, "latents_sha256")):
        if _matching(path, sidecar.get(key)) == _previous(path):
            try:
                os.replace(_previous(path), path)
            except OSError as exc:
                raise InputError(f"cannot restore the golden's kept copy: {exc.strerror or exc}", path=path) from None


def _replace_files(paths: GoldenPaths, png: bytes, latents: bytes | None, sidecar: Mapping[str, Any]) -> None:
    """Write a golden's files so that the old golden stays loadable until the new sidecar is in place
    (see the module docstring): stage all, keep the old data files, move the data in, the sidecar
    last, then tidy up. An error while moving puts the kept files back."""
    files = [(paths.image, png)]
    if latents is not None:
        files.append((paths.latents, latents))
    files.append((paths.sidecar, dumps_json(sidecar).encode()))
    for target, data in files:
        write_bytes_atomic(_staged(target), data)
    kept = [target for target, _ in files[:-1] if target.is_file()]
    moved: list[Path] = []
    target = paths.image
    try:
        for target in kept:
            _keep_copy(target)
        for target, _ in files:
            os.replace(_staged(target), target)
            moved.append(target)
    except BaseException as exc:
        _roll_back(files, moved, kept)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write: {exc.strerror or exc}", path=target) from None
        raise
    if latents is None:
        paths.latents.unlink(missing_ok=True)  # the new sidecar names no latents: a stale file goes now
    for target in kept:
        _previous(target).unlink(missing_ok=True)


def _keep_copy(path: Path) -> None:
    kept = _previous(path)
    kept.unlink(missing_ok=True)
    try:
        os.link(path, kept)
    except OSError:  # a file system without hard links
        shutil.copyfile(path, kept)


def _roll_back(files: list[tuple[Path, bytes]], moved: list[Path], kept: list[Path]) -> None:
    """Best effort: the old data files back in place, the new ones gone. What cannot be undone here is
    harmless: the old sidecar is still in place and ``load_golden`` reads the ``.prev`` copies."""
    for target in moved:
        try:
            if target in kept:
                os.replace(_previous(target), target)
            else:
                target.unlink()
        except OSError:
            pass
    for target, _ in files:
        try:
            _staged(target).unlink(missing_ok=True)
        except OSError:
            pass


def record_golden(
    folder: str | Path,
    case: str,
    image: Any,
    *,
    latents: np.ndarray | None = None,
    provenance: Mapping[str, Any],
    force: bool = False,
    changes_dir: str | Path | None = None,
) -> RecordOutcome:
    """Store ``image`` (PIL image, uint8/uint16 array, or floats in 0..1) as the golden of ``case``.

    An identical golden is left alone ("unchanged"). A different one is replaced only with
    ``force=True``; either way an old | new | difference picture is written first to
    ``changes_dir`` (default: ``default_artifacts_dir()``) and named in the outcome or the error.
    """
    from accuracy.report.pictures import png_bytes, triptych

    paths = golden_paths(folder, case)
    try:
        pixels = to_pixels(image)
    except ValueError as exc:
        raise InputError(f"cannot record case '{case}': {exc}", path=paths.image) from None
    _restore_interrupted(paths)
    png = encode_png(pixels)
    latents_bytes = None if latents is None else _npy_bytes(latents)
    status, picture, comparison = "new", None, None
    if paths.image.exists():
        status = "replaced"
        old, consistent = _read_existing(paths, force=force)
        if old is not None:  # None: unreadable and force given, so nothing to compare
            same_image = old.image.shape == pixels.shape and np.array_equal(old.image, pixels)
            same_latents = (latents is None and old.latents is None) or (
                latents is not None and old.latents is not None
                and np.shape(old.latents) == np.shape(latents) and np.array_equal(old.latents, latents))
            if same_image and same_latents and consistent:
                return RecordOutcome(status="unchanged", paths=paths)
            if not same_image and old.image.shape == pixels.shape and old.image.dtype == pixels.dtype:
                where = Path(changes_dir) if changes_dir is not None else default_artifacts_dir()
                picture = where / paths.folder.name / f"{case}.golden-change.png"
                comparison = compare_images(old.image, pixels, data_range=old.data_range)
                write_bytes_atomic(picture, png_bytes(triptych(
                    old.image, pixels, data_range=old.data_range, labels=("old golden", "new", "|difference|"))))
            if not force and not (same_image and same_latents):  # same content: only the sidecar is rewritten
                what = "latents" if same_image else "image"
                seen = f"; old | new | difference: {picture}" if picture else ""
                raise GoldenChanged(f"golden for case '{case}' differs from the new output ({what}){seen}; "
                                    "pass --force (or force=True) to replace it", path=paths.image)
    size = list(pixels.shape[1::-1])
    sidecar = {
        "case": case,
        "image": paths.image.name,
        "image_sha256": _sha256(png),
        "shape": list(pixels.shape),
        "dtype": str(pixels.dtype),
        "latents": None if latents is None else paths.latents.name,
        "latents_sha256": None if latents_bytes is None else _sha256(latents_bytes),
        "provenance": {**{key: None for key in PROVENANCE_KEYS}, "size": size, **dict(provenance)},
        "tool_versions": tool_versions(IMAGE_TOOLS),
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _replace_files(paths, png, latents_bytes, sidecar)
    return RecordOutcome(status=status, paths=paths, change_picture=picture, comparison=comparison)
