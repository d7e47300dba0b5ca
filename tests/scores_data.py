"""Small OpenCompass-shaped files for the score tests, written into a tmp folder."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = "dataset,version,metric,mode"


def summary_csv(path: Path, rows: list[tuple], models: tuple[str, ...] = ("m",)) -> Path:
    """rows: (dataset, version, metric, mode, value per model...)."""
    lines = [",".join((HEADER,) + models)]
    lines += [",".join(str(v) for v in row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def workdir(root: Path, stamp: str, rows: list[tuple], model: str = "m", details: dict | None = None) -> Path:
    """An OpenCompass work dir run: <root>/<stamp>/summary/summary_<stamp>.csv and, optionally,
    results/<model>/<dataset>.json with per-sample `correct` flags ({dataset: [bool, ...]})."""
    run = root / stamp
    summary_csv(run / "summary" / f"summary_{stamp}.csv", rows, (model,))
    for dataset, flags in (details or {}).items():
        out = run / "results" / model / f"{dataset}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        score = 100 * sum(flags) / len(flags)
        out.write_text(
            json.dumps(
                {
                    "accuracy": score,
                    "details": [
                        {"example_abbr": f"{dataset}_{i}", "pred": ["A"], "answer": ["A"], "correct": [flag]}
                        for i, flag in enumerate(flags)
                    ],
                }
            )
        )
    return root
