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


def file_sha256(path: Path, *, marker: bytes = b"") -> tuple[str, bool]:
    """The sha256 of a file's bytes and whether ``marker`` occurs in them, remembered in the cache
    folder under the file's identity and stat (device, inode, size, mtime and ctime in ns: what git's
    index trusts), so an unchanged file is not read again on the next run. The file is read through a
    memory map. A file changed in the last seconds is not remembered: file times tick in steps of a
    few milliseconds, so a second edit of the same size could keep them (git's "racy clean" case). A
    cache folder that cannot be written only means hashing again next time."""
    import hashlib
    import mmap
    import stat
    import time

    path = Path(path)
    try:
        before = os.stat(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if not stat.S_ISREG(before.st_mode):  # a pipe's bytes are gone once read, and its size says 0: no digest
        raise InputError("is not a regular file (a folder, pipe or device); give the file itself", path=path)
    identity = "\0".join(map(str, (os.path.realpath(path), before.st_dev, before.st_ino, before.st_size,
                                   before.st_mtime_ns, before.st_ctime_ns, marker.hex())))
    try:
        memo: Path | None = cache_dir() / "digests" / hashlib.sha256(identity.encode()).hexdigest()[:40]
    except InputError:
        memo = None
    try:
        remembered = memo.read_text(encoding="ascii").split() if memo is not None else []
    except (OSError, UnicodeDecodeError):
        remembered = []
    if len(remembered) == 2 and len(remembered[0]) == 64 and remembered[1] in ("0", "1"):
        return remembered[0], remembered[1] == "1"
    digest, found = hashlib.sha256(), False
    try:
        with open(path, "rb") as handle:
            if before.st_size:
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    digest.update(data)
                    found = bool(marker) and data.find(marker) >= 0
    except (OSError, ValueError) as exc:  # ValueError: emptied since the stat (mmap of 0 bytes)
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path=path) from None
    value = digest.hexdigest()
    after = os.stat(path)
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (before.st_size, before.st_mtime_ns,
                                                                        before.st_ctime_ns)
    settled = time.time_ns() - max(before.st_mtime_ns, before.st_ctime_ns) > _SETTLED_NS
    if memo is not None and unchanged and settled:
        from accuracy.io import write_bytes_atomic

        try:
            write_bytes_atomic(memo, f"{value} {int(found)}\n".encode(), sync=False)
        except InputError:
            pass
    return value, found


_SETTLED_NS = 2_000_000_000  # a file untouched this long has times no later same-size edit can repeat
