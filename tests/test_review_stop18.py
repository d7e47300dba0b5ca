"""Review of the day's changes (stop 18): StagedWrite, file_sha256, offer_repair's output paths, the
in-memory fp16 conversions and the repaired model at the graph's edges, probed with hostile inputs."""

from __future__ import annotations

import hashlib
import os
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy import cache
from accuracy.errors import InputError
from accuracy.io import StagedWrite


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV, str(folder))
    return folder


def _mul_model(size: int = 600) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(size, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"], name="mul")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# --- StagedWrite ---------------------------------------------------------------------------------------

def test_StagedWrite_commit_twice_returns_the_file_and_a_later_discard_leaves_it(tmp_path):
    target = tmp_path / "model.onnx"
    staged = StagedWrite(target, b"new")
    assert staged.commit() == target
    assert staged.commit() == target  # was: "cannot write: No such file or directory"
    staged.discard()
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["model.onnx"]


def test_StagedWrite_commit_after_discard_is_refused_and_writes_nothing(tmp_path):
    staged = StagedWrite(tmp_path / "model.onnx", b"new")
    staged.discard()
    with pytest.raises(RuntimeError, match="discarded"):
        staged.commit()
    assert os.listdir(tmp_path) == []


def test_StagedWrite_a_failed_commit_is_not_reported_placed_by_a_second_one(tmp_path):
    folder = tmp_path / "out"
    staged = StagedWrite(folder / "model.onnx", b"new")
    staged._thread.join()
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()
    folder.write_text("a file where the folder was")
    with pytest.raises(InputError, match="cannot write"):
        staged.commit()
    with pytest.raises(RuntimeError, match="failed"):
        staged.commit()


def test_StagedWrite_a_failed_write_leaves_no_staging_file(tmp_path):
    """A full disk, as a file-size limit in a child process (no tmpfs can be mounted here)."""
    import subprocess
    import sys

    script = (
        "import resource, signal, sys\n"
        "from accuracy.io import StagedWrite\n"
        "from accuracy.errors import InputError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "staged = StagedWrite(sys.argv[1], b'x' * 100000)\n"
        "try:\n    staged.commit()\nexcept InputError as exc:\n    print('refused', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.onnx")], capture_output=True, check=False,
                            text=True, timeout=60)
    assert "refused" in result.stdout and "too large" in result.stdout, result.stderr
    assert os.listdir(tmp_path) == []


# --- offer_repair's output paths ------------------------------------------------------------------------

def test_offer_repair_a_folder_where_the_repaired_model_goes_is_an_input_error_not_a_verdict(tmp_path):
    from accuracy.localize.offer import REPAIRED_MODEL, offer_repair

    (tmp_path / REPAIRED_MODEL).mkdir()
    checked = []
    with pytest.raises(InputError, match="is a folder"):  # was: a raw IsADirectoryError
        offer_repair(_mul_model(), ["mul"], check=lambda b: checked.append(b) or {"passed": True},
                     op_types={"mul": "Mul"}, out_dir=tmp_path)
    assert (tmp_path / REPAIRED_MODEL).is_dir()


def test_offer_repair_an_output_folder_that_is_a_file_is_an_input_error(tmp_path):
    from accuracy.localize.offer import offer_repair

    blocked = tmp_path / "out"
    blocked.write_text("a file")
    with pytest.raises(InputError, match="is a file"):  # was: a raw FileExistsError
        offer_repair(_mul_model(), ["mul"], check=lambda b: {"passed": True}, op_types={"mul": "Mul"},
                     out_dir=blocked)
    assert os.listdir(tmp_path) == ["out"]


# --- file_sha256 -------------------------------------------------------------------------------------

def test_file_sha256_refuses_a_pipe_rather_than_give_every_pipe_the_empty_files_digest(tmp_path, private_cache):
    """A model given as ``<(cat model.onnx)``: its size says 0, so every pipe hashed as the empty file and
    shared one fp16 cache key (a later model through a pipe got an earlier one's conversion)."""
    pipe = tmp_path / "model.onnx"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: _feed(pipe, b"model bytes"), daemon=True)
    writer.start()
    try:
        with pytest.raises(InputError, match="not a regular file"):
            cache.file_sha256(pipe)
    finally:
        os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))  # lets a blocked writer finish
        writer.join(5)


def _feed(pipe, data: bytes) -> None:
    try:
        with open(pipe, "wb") as handle:
            handle.write(data)
    except OSError:
        pass


def test_file_sha256_of_a_folder_is_an_input_error(tmp_path, private_cache):
    with pytest.raises(InputError, match="not a regular file"):  # was: a raw IsADirectoryError
        cache.file_sha256(tmp_path)


def test_fp16_backend_on_a_folder_says_so_in_one_line(tmp_path, private_cache):
    from accuracy.backends import get_backend
    from accuracy.errors import AccuracyError

    folder = tmp_path / "model.onnx"
    folder.mkdir()
    with pytest.raises(AccuracyError, match="not a regular file"):
        get_backend("onnxruntime-fp16").load(folder)


def test_file_sha256_a_same_size_rewrite_of_a_settled_file_is_seen(tmp_path, private_cache, monkeypatch):
    monkeypatch.setattr(cache, "_SETTLED_NS", -1)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"A" * 4096)
    assert cache.file_sha256(path)[0] == hashlib.sha256(b"A" * 4096).hexdigest()
    before = os.stat(path)
    replacement = tmp_path / "other.onnx"
    replacement.write_bytes(b"B" * 4096)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)  # same size, same mtime, another inode
    assert cache.file_sha256(path)[0] == hashlib.sha256(b"B" * 4096).hexdigest()
    with open(path, "r+b") as handle:  # same inode, same size, mtime put back
        handle.write(b"C" * 4096)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.file_sha256(path)[0] == hashlib.sha256(b"C" * 4096).hexdigest()


# --- the in-memory fp16 conversions (inmemory) ------------------------------------------------------------

def _shared_weight_model(weight: np.ndarray) -> onnx.ModelProto:
    """``w`` read by a kept node and by another; both results are outputs."""
    size = weight.size
    nodes = [helper.make_node("Mul", ["x", "w"], ["a"], name="kept"),
             helper.make_node("Add", ["x", "w"], ["b"], name="plain"),
             helper.make_node("Add", ["a", "b"], ["y"], name="sum")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size]),
                               helper.make_tensor_value_info("a", TensorProto.FLOAT, [size])],
                              [numpy_helper.from_array(weight.astype(np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_inmemory_a_same_size_rewrite_with_its_mtime_put_back_is_read_afresh(tmp_path, private_cache):
    """The prepared graph and which weights fp16 holds were kept by (path, size, mtime): a rewrite keeping
    both (os.utime, or one tick of the file clock) reused the old range check -- a weight now past 65504
    went through the in-range Cast pair unclipped (inf and NaN where the converter saturates)."""
    from accuracy.backends import get_backend
    from accuracy.backends.onnxrt_fp16 import inmemory

    rng = np.random.default_rng(0)
    weight = rng.standard_normal(512)
    feeds = {"x": rng.standard_normal(512).astype(np.float32)}
    path = tmp_path / "model.onnx"
    onnx.save(_shared_weight_model(weight), path)
    before = os.stat(path)

    def run() -> list[np.ndarray]:
        return get_backend("onnxruntime-fp16", keep_fp32=["kept"], cache=False).load(path).run(feeds)

    run()
    weight[:8] = 70000.0
    onnx.save(_shared_weight_model(weight), path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    again = run()
    inmemory._PREPARED.clear()
    inmemory._LOADED.clear()
    fresh = run()
    cached = get_backend("onnxruntime-fp16", keep_fp32=["kept"]).load(path).run(feeds)
    for obtained, expected, converted in zip(again, fresh, cached):
        np.testing.assert_array_equal(obtained, expected)
        np.testing.assert_array_equal(obtained, converted)
