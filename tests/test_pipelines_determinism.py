"""Seeded private copies of random graphs: written so that parallel processes never share a file."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.pipelines.determinism import random_nodes, seeded_copy


def _random_model(folder: Path, *, external: bool) -> Path:
    weight = numpy_helper.from_array(np.ones((16, 16), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                               helper.make_node("RandomNormalLike", ["m"], ["noise"]),
                               helper.make_node("Add", ["m", "noise"], ["y"])], "random",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [weight])
    source = folder / "model.onnx"
    folder.mkdir(parents=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    if external:
        onnx.save(model, str(source), save_as_external_data=True, location="weights.bin", size_threshold=0)
    else:
        onnx.save(model, str(source))
    return source


@pytest.mark.parametrize("external", [False, True])
def test_two_writers_at_once_both_get_a_whole_copy(tmp_path, monkeypatch, external):
    """Two writers that pass the "not there yet" check together: each saves into its own temporary
    place, so neither moves away the other's file (with one shared temporary name, the second
    ``replace`` found nothing to move) and neither writes into the other's ``.data``."""
    source = _random_model(tmp_path / "src", external=external)
    private = tmp_path / "private"
    both_saved = threading.Barrier(2, timeout=30)
    real_save = onnx.save
    written: list[str] = []

    def save_then_wait(model, path, *args, **kwargs):
        real_save(model, path, *args, **kwargs)
        written.append(str(path))
        both_saved.wait()

    monkeypatch.setattr(onnx, "save", save_then_wait)
    results: list[Path | BaseException] = []

    def write() -> None:
        try:
            results.append(seeded_copy(source, private))
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2 and all(isinstance(r, Path) for r in results), results
    assert len(set(written)) == 2  # two different temporary files
    target = results[0]
    expected = sorted([target.name, f"{target.name}.data"] if external else [target.name])
    assert sorted(p.name for p in private.iterdir()) == expected  # no temporary left behind
    assert random_nodes(target)[0].seeded
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.zeros((1, 16), np.float32)})
    assert y.shape == (1, 16) and np.isfinite(y).all()


def test_existing_copy_is_reused(tmp_path, monkeypatch):
    source = _random_model(tmp_path / "src", external=False)
    first = seeded_copy(source, tmp_path / "private")
    monkeypatch.setattr(onnx, "save", lambda *a, **k: pytest.fail("saved again"))
    assert seeded_copy(source, tmp_path / "private") == first
