"""Atomic writes: a failed or killed writer never leaves a file that a rerun would trust."""

import os

import pytest

from augloss import io


def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    target = tmp_path / "sub" / "table.md"
    io.atomic_write_text(target, "first\n")
    io.atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.md"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"a": ')  # half-written
            raise RuntimeError("killed")
    assert io.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "transfer.md"
    (tmp_path / ".transfer.md.abc123.tmp").write_text("half")
    (tmp_path / ".transfer.md.abc123.tmp.paused").touch()
    (tmp_path / ".transfer.csv.xyz.tmp").write_text("another file's temp: kept")
    io.atomic_write_text(target, "done\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".transfer.csv.xyz.tmp",
                                                          "transfer.md"]


def test_crash_test_pause_point_only_for_the_named_file(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(io.time, "sleep", slept.append)
    monkeypatch.setenv(io.PAUSE_ENV, "transfer.md")
    io.atomic_write_text(tmp_path / "search.md", "x")
    assert slept == []
    io.atomic_write_text(tmp_path / "transfer.md", "y")
    assert slept == [3600] and (tmp_path / "transfer.md").read_text() == "y"
    assert list(tmp_path.glob(".transfer.md.*.paused"))


def test_a_live_writers_temp_file_of_the_same_path_is_kept(tmp_path):
    """Two processes may write one path at once (two searches caching the same entry): the
    second must not delete the first one's temp file mid-write; a dead writer's goes."""
    import subprocess
    import sys

    target = tmp_path / "entry.json"
    host = io._HOST
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        kept = tmp_path / f".entry.json.{host}-{live.pid}.k1.tmp"
        gone = tmp_path / f".entry.json.{host}-{dead.pid}.k2.tmp"
        far = tmp_path / ".entry.json.otherhost-1.k3.tmp"  # another node's, fresh: kept
        for p in (kept, gone, far):
            p.write_text("partial")
        io.write_json(target, {"a": 1})
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([kept.name, far.name, "entry.json"])
        os.utime(far, (0, 0))  # untouched for decades: abandoned
        io.write_json(target, {"a": 2})
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept.name, "entry.json"])
    finally:
        live.kill()
        live.wait()
