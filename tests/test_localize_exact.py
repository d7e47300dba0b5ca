"""localize compares non-float tensors too, exactly: a bool that flips and an int64 whose shape
changes under fp16 are divergences, on a real onnxruntime session of a graph built here."""

from __future__ import annotations

import onnx

from accuracy.localize import localize_model
from tests.fixtures.output_kinds import THRESHOLD_X, threshold_hits


def test_integer_and_bool_tensors_diverge_exactly_and_a_changed_shape_is_a_divergence(tmp_path):
    path = tmp_path / "hits.onnx"
    onnx.save(threshold_hits(), str(path))
    result = localize_model(path, {"x": THRESHOLD_X}, "onnxruntime-fp16")
    assert result["verdict"] == "fail"  # the float tensors alone all pass: scaled differs by 2e-4
    records = {r["tensor"]: r for r in result["tensors"]}
    assert records["scaled"]["passed"] is True
    assert records["over"]["passed"] is False  # bool: exact
    assert records["over"]["metrics"]["failures"] == ["3 of 8 values differ (37.50%), first at index (0, 0): True -> False"]
    hits = records["hits"]  # int64 NonZero rows: 6 on the reference, 3 under fp16
    assert hits["passed"] is False
    assert hits["metrics"]["failures"] == ["shape (3, 2) differs from the reference's (6, 2) (3 rows, the reference has 6)"]


def test_the_cli_says_an_exact_result_flips_not_that_error_accumulates(tmp_path, capsys):
    import numpy as np

    from accuracy.cli import main

    path = tmp_path / "hits.onnx"
    onnx.save(threshold_hits(), str(path))
    np.savez(tmp_path / "x.npz", x=THRESHOLD_X)
    assert main(["localize", str(path), "--inputs", str(tmp_path / "x.npz")]) == 1
    out = capsys.readouterr().out
    assert "over (" in out and "changes (exact values or shape)" in out and "accumulates" not in out


def test_a_cosine_bound_above_1_is_a_usage_error(tmp_path, capsys):
    import numpy as np
    import pytest

    from accuracy.cli import main

    path = tmp_path / "hits.onnx"
    onnx.save(threshold_hits(), str(path))
    np.savez(tmp_path / "x.npz", x=THRESHOLD_X)
    with pytest.raises(SystemExit) as stopped:  # it blamed the model's input for every run
        main(["localize", str(path), "--inputs", str(tmp_path / "x.npz"), "--cosine-min", "2"])
    assert stopped.value.code == 2 and "outside [-1, 1]" in capsys.readouterr().err
