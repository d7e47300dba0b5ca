"""Benchmark: `accuracy run` against the same OpenCompass config run by hand, side by side.

Serves the tiny test LM with the real vLLM (fp32, 127.0.0.1; `.venv-vllm` from `.ci/install-vllm.sh` or
$ACCURACY_VLLM_PYTHON) behind a recording proxy, then
times, in alternating order, (a) `accuracy run SUITE` and (b) `opencompass CONFIG -w DIR
--dump-eval-details` on the config the harness wrote. Prints the wall-time ratio (target <= 1.05
plus a fixed start-up), that fixed start-up (preflight, config writing, reading and judging the
results), and the request rate each sustained at the server.

    python bench/bench_llm.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.llm_servers import Proxy, VLLMServer, vllm_python
from tests.fixtures.tiny_lm import MODEL_VERSION, build_tiny_lm


def timed(command: list[str], env: dict[str, str], proxy: Proxy, cwd: Path) -> tuple[float, float]:
    """Wall seconds of ``command`` and the request rate (requests/s) the proxy saw during it."""
    first = len(proxy.prompts)
    stamps_before = len(proxy.stamps)
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd, check=False)
    wall = time.monotonic() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    stamps = proxy.stamps[stamps_before:]
    requests = len(proxy.prompts) - first
    rate = requests / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else float("nan")
    return wall, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed pairs (alternating order)")
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        tmp = Path(tmp)
        cache_root = os.environ.get("ACCURACY_TINY_LM_CACHE")
        cache = Path(cache_root) / MODEL_VERSION if cache_root else tmp / "tiny-lm"  # as the test fixture keeps it
        model_dir = build_tiny_lm(cache)
        python = vllm_python()
        if python is None:
            raise SystemExit("no vLLM interpreter: run .ci/install-vllm.sh or set ACCURACY_VLLM_PYTHON")
        server = VLLMServer(python, model_dir, dtype="float32", served_name="tiny-lm", log=tmp / "serve.log")
        proxy = None
        try:
            server.wait_ready()
            proxy = Proxy(server.base_url)
            proxy.stamps = []
            record = proxy.fail
            proxy.fail = lambda prompt: (proxy.stamps.append(time.monotonic()), record(prompt))[1]
            suite_dir = tmp / "llm-tiny"
            shutil.copytree(ROOT / "suites" / "llm-tiny", suite_dir,
                            ignore=shutil.ignore_patterns(".accuracy-work", "baseline.json", "__pycache__"))
            suite = suite_dir / "llm-tiny.toml"
            text = re.sub(r"(?m)^base_url = .*$", f'base_url = "{proxy.base_url}"', suite.read_text())
            suite.write_text(text)  # model "tiny-lm" is vLLM's served name; the tokenizer, its model folder

            harness_runs, hand_runs, harness_rates, hand_rates, inner_runs = [], [], [], [], []
            config = None
            for pair in range(args.repeats):
                order = ("harness", "hand") if pair % 2 == 0 else ("hand", "harness")  # a b, b a, ...
                for which in order:
                    if which == "harness":
                        work = tmp / f"harness-{pair}"
                        result = tmp / f"harness-{pair}.json"
                        wall, rate = timed([sys.executable, "-m", "accuracy", "run", str(suite), "--work-dir",
                                            str(work), "--update-baselines", "--json", str(result)], env, proxy, tmp)
                        harness_runs.append(wall)
                        inner_runs.append(json.loads(result.read_text())["opencompass_seconds"])
                        harness_rates.append(rate)
                        config = work / "_accuracy" / "opencompass_config.py"
                    else:  # the same config, as a person would run it
                        hand_env = dict(env, PYTHONPATH=str(config.parent))
                        wall, rate = timed([sys.executable, "-m", "opencompass.cli.main", str(config), "-w",
                                            str(tmp / f"hand-{pair}"), "--dump-eval-details"], hand_env, proxy, tmp)
                        hand_runs.append(wall)
                        hand_rates.append(rate)
            from accuracy.config import load_suite
            from accuracy.llm.suite import prepare

            start = time.monotonic()
            prepare(load_suite(suite), work_dir=tmp / "preflight", update_baselines=True)
            preflight = time.monotonic() - start
        finally:
            if proxy:
                proxy.stop()
            server.stop()
    harness, hand = statistics.median(harness_runs), statistics.median(hand_runs)
    print("samples per run: 64 (2 custom datasets); server: vLLM fp32 on CPU")
    print(f"accuracy run        : {harness:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in harness_runs)})")
    print(f"opencompass by hand : {hand:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in hand_runs)})")
    print(f"ratio harness/hand  : {harness / hand:7.3f}  (machine shared: alternate order, compare medians)")
    overheads = [wall - inner for wall, inner in zip(harness_runs, inner_runs)]
    print(f"  of which opencompass: {statistics.median(inner_runs):5.1f} s  (the harness's subprocess, same config)")
    print(f"fixed start-up      : {statistics.median(overheads):7.1f} s  (harness wall minus its opencompass "
          f"subprocess: CLI start, preflight {preflight:.2f} s in-process, config, reading, judging)")
    print(f"ratio minus start-up: {(harness - statistics.median(overheads)) / hand:7.3f}  (target <= 1.05)")
    print(f"request rate        : harness {statistics.median(harness_rates):.1f} req/s, "
          f"by hand {statistics.median(hand_rates):.1f} req/s (at the server, first to last request)")


if __name__ == "__main__":
    main()
