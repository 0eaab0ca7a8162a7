"""flchain.atomic.write_atomic: the old content or the whole new one, never a part, and no temporary files left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flchain.atomic import write_atomic


def test_write_creates_directories_and_replaces_the_file_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    write_atomic(path, b"one")
    inode_before = os.stat(path).st_ino

    write_atomic(path, b"two")

    assert path.read_bytes() == b"two"
    assert os.stat(path).st_ino != inode_before  # a new file renamed over the old one, not rewritten in place
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("flchain.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, b"new")

    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
