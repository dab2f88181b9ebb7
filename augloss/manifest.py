"""File digests and their verification: what a dataset or weights manifest records. Torch-free.

The datasets (:mod:`augloss.data`), the weights writers (:mod:`augloss.models`) and the
workflow's checks before a job all hash files the same way, so the code lives here, below all of
them, where none has to import another to reach it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence


class DataMismatch(ValueError):
    """A dataset file differs from the one its manifest recorded; the message names it."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digests(paths: Sequence[str], root: str | os.PathLike) -> dict[str, dict]:
    """``{path relative to root: {size, sha256}}`` of the files a dataset is read from."""
    root = Path(root).resolve()
    out = {}
    for p in sorted(set(paths)):
        path = Path(p).resolve()
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        out[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return out


def verify_files(recorded: dict[str, dict], root: str | os.PathLike, dataset: str) -> None:
    """Refuse a dataset whose files differ from ``recorded`` (:func:`file_digests`)."""
    for rel, want in sorted(recorded.items()):
        path = Path(rel) if Path(rel).is_absolute() else Path(root) / rel
        why = None
        if not path.is_file():
            why = "is missing"
        elif path.stat().st_size != want["size"]:
            why = f"has {path.stat().st_size} bytes, the manifest {want['size']}"
        else:
            got = file_digests([str(path)], path.parent)[path.name]["sha256"]
            if got != want["sha256"]:
                why = f"has SHA-256 {got[:12]}..., the manifest {want['sha256'][:12]}..."
        if why:
            raise DataMismatch(
                f"{dataset}: {path} {why}: it is not the file the dataset was prepared from. "
                f"Restore the original, or delete the manifest so prepare_dataset reads the "
                f"dataset afresh (and reruns everything trained on it).")
