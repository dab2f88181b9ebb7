"""A search's resumable state: ``state.json`` plus the append-only ``history.jsonl``.

The state records how many history lines it accounts for; a kill between appending to the
history and saving the state leaves extra lines, which :meth:`StateStore.load` cuts off. Both
files are written so that a killed search resumes where it stopped and ends with the same bytes
as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from augloss.io import atomic_path, read_json, write_json

log = logging.getLogger("augloss.search")

#: 2: per-evaluation seeds (the state counts the evaluations drawn) and a stream per augmentation.
STATE_VERSION = 2


class SearchStateError(RuntimeError):
    """The saved search state or history cannot be used (corrupted, or another config)."""


def count(state: dict, key: str, n: int = 1) -> None:
    """Add ``n`` to the state's counter ``key``."""
    state["counters"][key] = state["counters"].get(key, 0) + n


class StateStore:
    """Load, save, append to and truncate the state of the search in ``out``."""

    def __init__(self, out: str | Path, config_hash: str, seed: int | list[int]):
        """``seed``: the entropy of the search's random stream (an int, or the list
        :func:`augloss.search.seeds.stream_entropy` gives)."""
        self.out = Path(out)
        self.config_hash = config_hash
        self.seed = int(seed) if isinstance(seed, int) else [int(s) for s in seed]

    @property
    def history_path(self) -> Path:
        return self.out / "history.jsonl"

    def fresh(self) -> dict:
        return {"version": STATE_VERSION, "config_hash": self.config_hash, "phase": "pool",
                "rng": np.random.default_rng(self.seed).bit_generator.state,
                "pool": [], "pool_scores": [], "population": [], "rescore_index": 0,
                "iteration": 0, "history_len": 0, "counters": {}, "curve": [],
                # the index of the next evaluation (one per training call): its seed is
                # augloss.search.seeds.evaluation_seed(search seed, augmentation, index)
                "evaluations_drawn": 0}

    def load(self) -> dict:
        """The saved state (history truncated to match it), or a fresh one with an empty history."""
        path = self.out / "state.json"
        if not path.exists():
            self.out.mkdir(parents=True, exist_ok=True)
            self.history_path.write_text("")
            return self.fresh()
        try:
            state = read_json(path)
        except (OSError, ValueError) as exc:
            raise SearchStateError(f"{path} is unreadable ({exc}); delete {self.out} to start "
                                   f"this search again") from exc
        if state.get("config_hash") != self.config_hash or state.get("version") != STATE_VERSION:
            raise SearchStateError(f"{path} belongs to another search configuration; delete "
                                   f"{self.out} to start again with this one")
        self.truncate(state["history_len"])
        log.info("resuming search from %s (phase %s, child %d)", path, state["phase"],
                 state["iteration"])
        return state

    def set_aside_foreign(self) -> Path | None:
        """Move a state of another configuration out of the way, kept whole as
        ``<out>.previous-<its hash>``; None when there is none. The workflow calls it: Snakemake
        reruns a search whose configuration changed, and the old state must not block it
        (its evaluations stay in the cache, so starting again costs only what changed)."""
        path = self.out / "state.json"
        try:
            old = read_json(path)
        except (OSError, ValueError):  # absent, or unreadable: load() says so
            return None
        if old.get("config_hash") == self.config_hash and old.get("version") == STATE_VERSION:
            return None
        dest = self.out.with_name(f"{self.out.name}.previous-{str(old.get('config_hash'))[:12]}")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(self.out, dest)
        log.warning("%s held the state of another search configuration; moved it to %s and "
                    "starting this one afresh", self.out, dest)
        return dest

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` history lines (those the state accounts for); check they parse."""
        path = self.history_path
        raw = path.read_bytes() if path.exists() else b""
        lines = raw.split(b"\n")
        if len(lines) - 1 < n and not (len(lines) == n and lines[-1]):
            raise SearchStateError(f"{path} has fewer lines than the saved state records ({n}); "
                                   f"delete {self.out} to start this search again")
        for i, line in enumerate(lines[:n]):
            try:
                json.loads(line)
            except ValueError as exc:
                raise SearchStateError(f"{path} line {i + 1} is corrupted ({exc}); delete "
                                       f"{self.out} to start this search again") from exc
        keep = b"".join(line + b"\n" for line in lines[:n])
        if keep != raw:
            with atomic_path(path) as tmp:
                tmp.write_bytes(keep)

    def save(self, state: dict, rng: np.random.Generator) -> None:
        state["rng"] = rng.bit_generator.state
        write_json(self.out / "state.json", state)

    def append(self, state: dict, entries: list[dict]) -> None:
        """Append ``entries`` to the history (synced to disk) and count them in the state."""
        with open(self.history_path, "a") as f:
            for e in entries:
                f.write(json.dumps(e, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        state["history_len"] += len(entries)

    def history(self) -> Iterator[dict]:
        with open(self.history_path) as f:
            for line in f:
                yield json.loads(line)
