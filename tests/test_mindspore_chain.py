"""suites/mindspore-chain: the guide's ONNX -> MindIR swap for real. Three MindSpore networks exported
to ONNX (reference) and MINDIR fp32/fp16 (candidates); ``mid`` overflows fp16. Swapping in the
fp16 MindIR of ``mid`` alone breaks the pipeline, the others do not; fp32 MindIR breaks nothing.
Run through the suite loader and the pipeline runner, and through ``accuracy bisect`` once present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mindspore")

from accuracy.compare.tensors import TensorThresholds, compare_tensors
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.config.suite import load_suite
from accuracy.pipelines.runner import CANDIDATE, PipelineRunner

CHAIN = Path(__file__).resolve().parents[1] / "suites" / "mindspore-chain"
MODELS = ("encode", "mid", "decode")


def _runner(precision: str) -> PipelineRunner:
    return PipelineRunner(load_pipeline_spec(load_suite(CHAIN / f"mindir-{precision}.toml")))


def _passes(reference: dict, obtained: dict) -> bool:
    return all(compare_tensors(reference[k], obtained[k], thresholds=TensorThresholds(cosine_min=0.99)).passed
               for k in reference)


@pytest.mark.parametrize("precision, culprits", [("fp16", ["mid"]), ("fp32", [])])
def test_swapping_one_model_at_a_time_blames_the_hazard(precision, culprits):
    runner = _runner(precision)
    reference = runner.run()
    assert list(reference) == ["y"]
    failing = [m for m in MODELS if not _passes(reference, runner.run({m: CANDIDATE}))]
    assert failing == culprits
    all_candidate = runner.run({m: CANDIDATE for m in MODELS})
    assert _passes(reference, all_candidate) == (not culprits)


def _bisect_available() -> bool:
    try:
        import accuracy.cli.bisect  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _bisect_available(), reason="accuracy bisect has not landed")
@pytest.mark.parametrize("precision, culprits, code", [("fp16", ["mid"], 1), ("fp32", [], 0)])
def test_accuracy_bisect_finds_mid_for_fp16_and_nothing_for_fp32(tmp_path, precision, culprits, code):
    out = tmp_path / "bisect.json"
    proc = subprocess.run([sys.executable, "-m", "accuracy", "bisect", str(CHAIN / f"mindir-{precision}.toml"),
                           "--json", str(out)], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr
    result = json.loads(out.read_text())
    assert result["culprits"] == culprits
    assert set(result["models"]) == set(MODELS)
