"""Atomic file writes, canonical JSON and config hashes shared by every stage."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash leaves the old file (or none) in place, never a half-written one; the temp file it
    leaves is removed by the next write of ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp files a killed writer left behind. A path can have writers in several processes
    # at once (two searches caching the same entry), so a temp file of a live writer stays.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        if _abandoned(stale, path.name):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _pause_for_crash_test(path, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: This host's part of a writer's mark in its temp files' names (``<host>-<pid>``).
_HOST = socket.gethostname().split(".")[0].replace("-", "_") or "host"
#: A temp file of a writer on another host (a shared file system) is taken as abandoned when
#: it has not changed for this long (no write of one file takes an hour).
_FOREIGN_STALE_S = 3600


def _abandoned(tmp: Path, name: str) -> bool:
    """Whether ``tmp``, a temp file of ``name``, was left by a writer that is gone: one of
    this host whose process no longer runs, one of another host untouched for an hour, or one
    with no writer mark (a name of another format)."""
    mark = tmp.name[len(name) + 2:].split(".", 1)[0]  # .<name>.<host>-<pid>.<random>.tmp
    host, _, pid = mark.rpartition("-")
    if not host or not pid.isdigit():
        return True
    if host == _HOST:
        if int(pid) == os.getpid():
            return False  # this process's own (another thread's write of the same path)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False
    try:
        return time.time() - tmp.stat().st_mtime > _FOREIGN_STALE_S
    except FileNotFoundError:
        return False


PAUSE_ENV = "AUGLOSS_TEST_PAUSE_BEFORE_RENAME"


def _pause_for_crash_test(path: Path, tmp: str) -> None:
    """Crash tests only: stop between writing and renaming a file named in ``PAUSE_ENV``.

    The process leaves ``<tmp>.paused`` and sleeps, so a test can SIGKILL the workflow at the
    worst moment for an atomic write (the data written, the rename not done).
    """
    if os.environ.get(PAUSE_ENV) == path.name:
        Path(f"{tmp}.paused").touch()
        time.sleep(3600)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def dumps(obj: Any) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=True) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps(obj))


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (first 16 hex digits)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataclass_from_dict(cls, d: dict, section: str):
    """``cls(**d)``, refusing keys the dataclass does not have and naming the config section."""
    from dataclasses import fields

    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {', '.join(unknown)}")
    return cls(**d)
