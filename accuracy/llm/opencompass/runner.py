"""Run the real ``opencompass`` CLI as a subprocess and report progress per dataset while it runs.

OpenCompass pins numpy<2, so it may live in its own venv: every call takes the interpreter that has
it (``[llm] python``). Its output goes to a log file in the work dir; stderr gets one line per
dataset whenever its count of finished predictions changes (read from OpenCompass's own
``predictions/<model>/tmp_<dataset>.jsonl`` checkpoints, the files ``-r`` resumes from).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from accuracy.errors import BackendError, ConfigError, MissingDependencyError

TIMESTAMP_GLOB = "[0-9]" * 8 + "_" + "[0-9]" * 6


@dataclass
class RunOutcome:
    """One finished OpenCompass invocation."""

    run_dir: Path          # <work_dir>/<timestamp>
    returncode: int
    seconds: float
    log: Path
    resumed: bool


def opencompass_root(python: str, *, path=None) -> Path:
    """The installed ``opencompass`` package folder as the given interpreter sees it."""
    code = "import opencompass, os; print(os.path.dirname(opencompass.__file__))"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise ConfigError(f"interpreter not found: {python}", path=path, where="llm.python") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{python} took over 120 s to import opencompass", path=path, where="llm.python") from None
    if done.returncode != 0:
        if "No module named 'opencompass'" in done.stderr:
            raise MissingDependencyError("opencompass", "llm", f"LLM suites (interpreter {python})")
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{python} cannot import opencompass: {last}", path=path, where="llm.python")
    return Path(done.stdout.strip().splitlines()[-1])


def find_dataset_configs(root: Path, names: list[str], *, path=None) -> dict[str, Path]:
    """Map each dataset config name (``mmlu_gen``) to its file, as ``opencompass --datasets`` finds it."""
    folders = [root / "configs" / "datasets", root / "configs" / "dataset_collections"]
    found: dict[str, Path] = {}
    known: list[str] | None = None
    for index, name in enumerate(names):
        matches = sorted(p for folder in folders for p in folder.rglob(f"{name}.py"))
        if not matches:
            if known is None:
                known = sorted({p.stem for folder in folders for p in folder.rglob("*.py") if p.stem != "__init__"})
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"OpenCompass has no dataset config {name!r}{hint}", path=path,
                              where=f"llm.datasets.configs[{index}]")
        found[name] = matches[0]
    return found


def run_dirs(work_dir: Path) -> list[Path]:
    """OpenCompass's ``<timestamp>`` folders in a work dir, oldest first."""
    return sorted(p for p in work_dir.glob(TIMESTAMP_GLOB) if p.is_dir())


def run_opencompass(
    config: Path,
    work_dir: Path,
    *,
    python: str,
    model_abbr: str,
    resume: bool = False,
    totals: dict[str, int | None] | None = None,
    progress: Callable[[str], None] | None = None,
    poll_seconds: float = 1.0,
) -> RunOutcome:
    """Run ``opencompass CONFIG -w WORK_DIR --dump-eval-details [-r TIMESTAMP]`` and wait for it.

    ``totals`` maps dataset abbreviations to their sample counts (None when unknown) for the
    progress lines. With ``resume`` the newest run folder is continued; OpenCompass then skips
    finished datasets and, inside an unfinished one, the samples its checkpoint already holds.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    before = run_dirs(work_dir)
    command = [python, "-m", "opencompass.cli.main", str(config), "-w", str(work_dir), "--dump-eval-details"]
    resumed = bool(resume and before)
    if resumed:
        command += ["-r", before[-1].name]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(config.parent), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    log = work_dir / "_accuracy" / "opencompass.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "ab") as sink:
        sink.write(f"\n$ {' '.join(command)}\n".encode())
        sink.flush()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   cwd=work_dir, stdin=subprocess.DEVNULL)
        watcher = _Progress(work_dir, before[-1] if resumed else None, before, model_abbr, totals or {}, progress)
        try:
            while True:
                watcher.poll()
                try:
                    process.wait(timeout=poll_seconds)  # returns as soon as OpenCompass exits
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
        watcher.poll()
    seconds = time.monotonic() - start
    run_dir = watcher.run_dir or (run_dirs(work_dir) or [None])[-1]
    if process.returncode != 0 or run_dir is None:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise BackendError(
            f"opencompass exited with code {process.returncode}: {' | '.join(tail)} (full log: {log})",
            path=config,
        )
    return RunOutcome(run_dir=run_dir, returncode=process.returncode, seconds=seconds, log=log, resumed=resumed)


class _Progress:
    """Watches a run folder's prediction checkpoints and reports changed counts per dataset."""

    def __init__(self, work_dir: Path, run_dir: Path | None, before: list[Path], model_abbr: str,
                 totals: dict[str, int | None], report: Callable[[str], None] | None):
        self.work_dir, self.run_dir, self.before = work_dir, run_dir, set(before)
        self.model_abbr, self.totals, self.report = model_abbr, totals, report
        self.shown: dict[str, int] = {}

    def poll(self) -> None:
        if self.run_dir is None:
            fresh = [p for p in run_dirs(self.work_dir) if p not in self.before]
            if not fresh:
                return
            self.run_dir = fresh[-1]
        if self.report is None:
            return
        folder = self.run_dir / "predictions" / self.model_abbr
        for dataset in self.totals:
            done = _count_done(folder, dataset)
            if done is not None and done != self.shown.get(dataset):
                self.shown[dataset] = done
                total = self.totals[dataset]
                self.report(f"  {dataset}: {done}/{total} predicted" if total else f"  {dataset}: {done} predicted")


def _count_done(folder: Path, dataset: str) -> int | None:
    """Finished predictions of one dataset: the final file's entries, else its checkpoint's lines."""
    import json

    final = folder / f"{dataset}.json"
    if final.exists():
        try:
            return len(json.loads(final.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
    checkpoint = folder / f"tmp_{dataset}.jsonl"
    if checkpoint.exists():
        try:
            return sum(1 for line in checkpoint.read_text(encoding="utf-8").splitlines() if line.strip())
        except OSError:
            return None
    return None
