"""Statistics of the comparison tables: Δ vs cross-entropy with a confidence interval, Holm
within a family, and the claims test (sign and Wilcoxon signed-rank over cells). Torch-free.

Rules, stated once (and under every table):

* A cell compares one loss with cross-entropy over seeds: paired over seeds when both ran the
  same seeds (``paired t``), else Welch's t. Fewer than 2 values on a side, or differences (or
  both groups) without variance: **untestable** (no p-value), never p = 0.
* Holm's correction runs within one loss's cells (the family "does this loss beat CE?").
* The smallest detectable Δ of a cell is the half-width of its 95 % interval: a difference
  smaller than that cannot reach p < 0.05 with these seeds and this spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

ALPHA = 0.05
UNTESTABLE = "untestable"


@dataclass(frozen=True)
class Delta:
    """A loss's difference to the baseline in one cell (loss minus baseline)."""

    delta: float  # difference of the means (nan if a side has no value)
    low: float  # the 1 - alpha confidence interval (nan when untestable)
    high: float
    p: float | None  # two-sided; None when untestable
    test: str  # "paired t", "Welch t" or "untestable"
    n: int  # pairs (paired) or the smaller group

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


def delta(values: dict[int, float], baseline: dict[int, float], alpha: float = ALPHA) -> Delta:
    """Δ of ``values`` vs ``baseline`` (seed -> value) with its interval and p-value."""
    from scipy import stats

    nan = float("nan")
    a = np.array([values[s] for s in sorted(values)], dtype=float)
    b = np.array([baseline[s] for s in sorted(baseline)], dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else nan
    if set(values) == set(baseline) and len(a) >= 2:
        d = a - b
        if _constant(d):
            return Delta(diff, nan, nan, None, UNTESTABLE, len(d))
        se = float(d.std(ddof=1)) / math.sqrt(len(d))
        df = len(d) - 1
        test = "paired t"
    elif len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        if va + vb <= 0 or (_constant(a) and _constant(b)):
            return Delta(diff, nan, nan, None, UNTESTABLE, min(len(a), len(b)))
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
        test = "Welch t"
    else:
        return Delta(diff, nan, nan, None, UNTESTABLE, min(len(a), len(b)))
    t = diff / se
    p = float(2 * stats.t.sf(abs(t), df))
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return Delta(diff, diff - q * se, diff + q * se, p, test,
                 len(a) if test == "paired t" else min(len(a), len(b)))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values; None (untestable) entries stay None, uncounted."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: (pvalues[i], i))):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class Claim:
    """Does a loss beat the baseline across cells? Wins, ties, losses and two tests."""

    cells: int
    wins: int
    ties: int
    losses: int
    p_sign: float | None  # exact two-sided sign test of wins vs losses (ties dropped)
    p_wilcoxon: float | None  # Wilcoxon signed-rank test of the cell Δs (zeros dropped)
    mean_delta: float

    @property
    def majority(self) -> bool:
        """Beats the baseline in more than half of the cells (the paper's claim)."""
        return self.wins * 2 > self.cells


def claim(deltas: Sequence[float]) -> Claim:
    """The claims test over one loss's cell Δs (nan cells are left out)."""
    from scipy import stats

    d = np.array([x for x in deltas if x is not None and not math.isnan(x)], dtype=float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    ties = len(d) - wins - losses
    p_sign = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else None
    nonzero = d[d != 0]
    p_wil = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 1 else None
    return Claim(len(d), wins, ties, losses, p_sign, p_wil,
                 float(d.mean()) if len(d) else float("nan"))
