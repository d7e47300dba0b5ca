"""Golden outputs: the reference's images (and latents) that later runs are judged against.

A golden for case ``C`` lives in its suite's folder ``baselines/<suite>/``:

- ``C.png``          the image (8- or 16-bit PNG);
- ``C.latents.npy``  optional latents or any tensor worth keeping;
- ``C.json``         a sidecar saying what made it: prompt, seed, steps, strength, guidance, size,
                     scheduler, backend (and anything else the caller passes), tool versions, the
                     sha256 of each file, the time it was recorded.

Goldens are written only by an explicit ``record_golden`` call (``accuracy baseline record``,
``--accuracy-update-baselines``), never as a side effect of a comparison. Replacing a golden that
changed needs ``force=True`` and first writes an old | new | difference picture, so the person
who replaces it has seen what changed. ``compare_with_golden`` returns a ``CheckResult`` that a
suite runner can put straight into its ``SuiteResult``.

``store`` writes, reads and replaces the files (how a replacement stays safe is in its docstring);
``judge`` compares a fresh output with a golden.
"""

from __future__ import annotations

from accuracy.goldens.judge import (
    DEFAULT_IMAGE_THRESHOLDS,
    DEFAULT_LATENT_CRITERIA,
    check_golden,
    compare_with_golden,
    write_artifacts,
)
from accuracy.goldens.store import (
    NAME_PATTERN,
    PROVENANCE_KEYS,
    RECORD_HINT,
    Golden,
    GoldenChanged,
    GoldenMissing,
    GoldenPaths,
    RecordOutcome,
    default_artifacts_dir,
    golden_paths,
    load_golden,
    record_golden,
)

__all__ = [
    "DEFAULT_IMAGE_THRESHOLDS",
    "DEFAULT_LATENT_CRITERIA",
    "NAME_PATTERN",
    "PROVENANCE_KEYS",
    "RECORD_HINT",
    "Golden",
    "GoldenChanged",
    "GoldenMissing",
    "GoldenPaths",
    "RecordOutcome",
    "check_golden",
    "compare_with_golden",
    "default_artifacts_dir",
    "golden_paths",
    "load_golden",
    "record_golden",
    "write_artifacts",
]
