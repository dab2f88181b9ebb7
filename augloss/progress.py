"""Progress lines: a rate from the work done in this run, and an ETA that shows days.

Shared by the search (one line per ``log_every`` evaluations in every phase) and the trainer (one
line per epoch). A resumed run counts its rate from its own start, so work a previous attempt
did never makes the ETA look short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def format_eta(seconds: float) -> str:
    """``HH:MM:SS``, with a day count past 24 h (``3d 04:05:06``)."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    clock = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


@dataclass
class Progress:
    """Rate and ETA of ``total`` units from the ones done in this run (``done_at_start`` were
    done before it started, e.g. by an attempt that was killed)."""

    total: int
    done_at_start: int = 0
    started: float = field(default_factory=time.perf_counter)

    def rate(self, done: int, now: float | None = None) -> float | None:
        """Units per second in this run, or None before the first unit."""
        elapsed = (time.perf_counter() if now is None else now) - self.started
        done_here = done - self.done_at_start
        if done_here <= 0 or elapsed <= 0:
            return None
        return done_here / elapsed

    def eta(self, done: int, now: float | None = None) -> float | None:
        """Seconds left at ``done`` of ``total``, or None before anything was done in this run."""
        rate = self.rate(done, now)
        return None if rate is None else max(0, self.total - done) / rate

    def eta_text(self, done: int, now: float | None = None) -> str:
        eta = self.eta(done, now)
        return "?" if eta is None else format_eta(eta)
