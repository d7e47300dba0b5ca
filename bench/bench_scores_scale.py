"""Reading, recording and checking scores scale linearly with rows.

Builds OpenCompass summaries of 4,000 and 16,000 rows and times, side by side in one run,
``accuracy baseline record --force`` (over an existing baseline, so the old -> new diff runs too) and
``accuracy check`` of a candidate against that baseline. Prints each time and the 16k / 4k ratio:
linear work gives ~4, quadratic ~16.

    python bench/bench_scores_scale.py [--rows 4000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from accuracy.cli import main


def summary(path: Path, rows: int, *, shift: float) -> Path:
    lines = ["dataset,version,metric,mode,model"]
    lines += [f"set{i},v1,accuracy,gen,{50 + (i % 40) / 10 + shift:.2f}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    elapsed = time.perf_counter() - start
    if code not in (0, 1):
        raise SystemExit(f"accuracy {' '.join(argv[:2])} exited {code}")
    return elapsed


def measure(folder: Path, rows: int) -> dict[str, float]:
    gpu = summary(folder / f"gpu{rows}.csv", rows, shift=0.0)
    npu = summary(folder / f"npu{rows}.csv", rows, shift=0.1)
    baseline = folder / f"baseline{rows}.json"
    timed(["baseline", "record", str(npu), "--out", str(baseline)])
    return {
        "record --force": timed(["baseline", "record", str(gpu), "--out", str(baseline), "--force"]),
        "check": timed(["check", "--baseline", str(baseline), "--candidate", str(npu)]),
    }


def run(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(Path(tmp), rows)
        large = measure(Path(tmp), rows * 4)
    print(f"{'':16}{rows:>10} rows{rows * 4:>10} rows{'ratio':>10}")
    for name in small:
        print(f"{name:16}{small[name]:>14.3f}s{large[name]:>14.3f}s{large[name] / small[name]:>10.1f}")
    print("linear: ratio ~4; quadratic: ~16")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="rows of the small run (the large one has 4x)")
    run(parser.parse_args().rows)
