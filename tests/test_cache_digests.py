"""``cache.file_sha256``: a file's sha256 remembered by its stat, never trusted for a file just written."""

from __future__ import annotations

import hashlib

import pytest

from accuracy import cache


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV, str(folder))
    return folder


def test_the_digest_is_the_files_sha256_and_tells_whether_the_marker_occurs(tmp_path, private_cache):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights ... location: w.bin ...")
    assert cache.file_sha256(path, marker=b"location") == (hashlib.sha256(path.read_bytes()).hexdigest(), True)
    assert cache.file_sha256(path, marker=b"nowhere")[1] is False
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert cache.file_sha256(empty) == (hashlib.sha256(b"").hexdigest(), False)


def test_a_file_just_written_is_hashed_every_time(tmp_path, private_cache):
    """File times tick in steps of milliseconds: a same-size edit right after the first hash could keep
    them, so a fresh file is never remembered -- the edit shows at once."""
    path = tmp_path / "model.onnx"
    path.write_bytes(b"A" * 4096)
    first = cache.file_sha256(path)[0]
    path.write_bytes(b"B" * 4096)
    assert cache.file_sha256(path)[0] != first
    assert not (private_cache / "digests").exists() or not any((private_cache / "digests").iterdir())


def test_a_settled_file_is_remembered_and_an_edit_is_seen(tmp_path, private_cache, monkeypatch):
    monkeypatch.setattr(cache, "_SETTLED_NS", -1)  # as if the file had been untouched for long
    path = tmp_path / "model.onnx"
    path.write_bytes(b"A" * 4096)
    digest = cache.file_sha256(path)[0]
    memos = list((private_cache / "digests").iterdir())
    assert len(memos) == 1 and memos[0].read_text().split()[0] == digest
    read = []
    monkeypatch.setattr("mmap.mmap", lambda *a, **k: read.append(a) or pytest.fail("read again"))
    assert cache.file_sha256(path)[0] == digest and not read  # from the memo
    monkeypatch.undo()
    monkeypatch.setenv(cache.ENV, str(private_cache))
    path.write_bytes(b"B" * 4097)  # new size and times: a new identity, hashed afresh
    assert cache.file_sha256(path)[0] == hashlib.sha256(b"B" * 4097).hexdigest()


def test_a_corrupt_memo_or_an_unwritable_cache_only_means_hashing_again(tmp_path, private_cache, monkeypatch):
    monkeypatch.setattr(cache, "_SETTLED_NS", -1)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"A" * 4096)
    digest = cache.file_sha256(path)[0]
    memo, = (private_cache / "digests").iterdir()
    memo.write_text("not a digest")
    assert cache.file_sha256(path)[0] == digest
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(cache.ENV, str(blocked))
    assert cache.file_sha256(path)[0] == digest
