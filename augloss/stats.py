"""Statistics of the comparison tables: Δ vs cross-entropy with a confidence interval, Holm
within a family, the pooled test over a stage's cells (the primary endpoint), power, and the
claims' secondary tests (sign and Wilcoxon signed-rank over cells). Torch-free.

Rules, stated once (and under every table):

* **Resolution.** An accuracy is a count of correct predictions over ``n_items`` images, so
  every value is first rounded to a multiple of ``1 / n_items`` and means are compared as exact
  fractions (:func:`exact_mean`): 579 vs 579 correct is a tie, never Δ = -1.1e-16. Without a
  recorded ``n_items`` the resolution is :data:`FALLBACK_ITEMS` (1e-9).
* A cell compares one loss with cross-entropy over seeds: paired over seeds when both ran the
  same seeds (``paired t``), else Welch's t. Fewer than 2 values on a side, or differences (or
  both groups) without variance: **untestable** (no p-value), never p = 0.
* Holm's correction runs within one loss's cells (the family "does this loss beat CE in this
  cell?").
* **Pooled (the primary endpoint).** Over all cells of a stage, the per-seed paired differences
  (loss minus CE, seeds both ran) are fitted with a linear mixed model: a fixed mean Δ and a
  random intercept per cell (statsmodels ``MixedLM``, REML). τ² is the between-cell variance of
  the true Δ, σ² the seed-to-seed variance of a difference, I² = τ² / (τ² + σ²/n̄) the share of
  a cell's Δ variance that is real heterogeneity. The test and the interval use Student's t with
  cells - 1 degrees of freedom (the cells are the replicates of a random-effects mean; with few
  cells a normal reference would reject too often). Holm runs across the losses of a stage.
* **Power.** The detectable Δ is the difference a two-sided t-test finds with 80 % power at
  Holm's first step (α / m: the level the strongest of m tests must reach), from the observed
  spread (statsmodels ``TTestPower``); :func:`plan` turns it around into seeds per cell.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

ALPHA = 0.05
POWER = 0.8
UNTESTABLE = "untestable"
#: The resolution assumed for a metric whose number of items is not recorded.
FALLBACK_ITEMS = 10 ** 9


def items(n_items: int | None) -> int:
    """The metric's number of items, or :data:`FALLBACK_ITEMS` when unknown."""
    return int(n_items) if n_items else FALLBACK_ITEMS


def quantize(value: float, n_items: int | None) -> float:
    """``value`` rounded to the metric's resolution (a multiple of ``1 / n_items``)."""
    n = items(n_items)
    return round(float(value) * n) / n


def exact_mean(values: Sequence[float], n_items: int | None) -> Fraction:
    """The mean of ``values`` as an exact fraction of counts (each value rounded to
    ``1 / n_items``): equal counts give equal means, whatever the float arithmetic."""
    n = items(n_items)
    return Fraction(sum(round(float(v) * n) for v in values), n * len(values))


def exact_delta(values: Sequence[float], baseline: Sequence[float],
                n_items: int | None) -> float:
    """mean(values) - mean(baseline) at the metric's resolution: exactly 0.0 for a tie."""
    if not len(values) or not len(baseline):
        return float("nan")
    return float(exact_mean(values, n_items) - exact_mean(baseline, n_items))


def binomial_se(accuracy: float, n_items: int | None) -> float:
    """One run's binomial standard error of an accuracy over ``n_items`` images."""
    if not n_items or accuracy is None or math.isnan(accuracy):
        return float("nan")
    return math.sqrt(max(0.0, accuracy * (1 - accuracy)) / n_items)


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


def delta(values: dict[int, float], baseline: dict[int, float], alpha: float = ALPHA,
          n_items: int | None = None) -> Delta:
    """Δ of ``values`` vs ``baseline`` (seed -> value) with its interval and p-value; values
    are compared at the resolution ``1 / n_items`` (:func:`exact_mean`)."""
    from scipy import stats

    nan = float("nan")
    a = np.array([quantize(values[s], n_items) for s in sorted(values)], dtype=float)
    b = np.array([quantize(baseline[s], n_items) for s in sorted(baseline)], dtype=float)
    diff = exact_delta(a, b, n_items)
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
    t = diff / se if diff else 0.0
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
    """Does a loss beat the baseline across cells? Wins, ties, losses and two tests (the
    claims' secondary evidence; the pooled test is the primary one)."""

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

    @property
    def majority_null_p(self) -> float | None:
        """The probability of ``majority`` by chance: with no effect each non-tied cell is a
        win with probability 1/2 (ties stay ties), P(wins > cells / 2)."""
        from scipy import stats

        if not self.cells or (self.wins + self.losses) * 2 <= self.cells:
            return None  # no cell, or too many ties for a majority to be possible
        return float(stats.binom.sf(self.cells // 2, self.wins + self.losses, 0.5))


def claim(deltas: Sequence[float]) -> Claim:
    """The claims test over one loss's cell Δs (nan cells are left out). Δs are expected at
    the metric's resolution (:func:`exact_delta`): a tie is exactly 0."""
    from scipy import stats

    d = np.array([x for x in deltas if x is not None and not math.isnan(x)], dtype=float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    ties = len(d) - wins - losses
    p_sign = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else None
    nonzero = d[d != 0]
    p_wil = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 1 else None
    return Claim(len(d), wins, ties, losses, p_sign, p_wil,
                 float(d.mean()) if len(d) else float("nan"))


# --- the pooled test over a stage's cells (the primary endpoint) ------------------------------

MIXED = "mixed model"
CELL_MEANS = "t over cell means"


@dataclass(frozen=True)
class Pooled:
    """A loss's mean Δ vs the baseline over the cells of a stage (random effect per cell)."""

    delta: float  # the pooled mean Δ (nan without a paired seed)
    low: float  # its 1 - alpha interval (nan when untestable)
    high: float
    p: float | None  # two-sided, t with cells - 1 df; None when untestable
    tau2: float  # between-cell variance of the true Δ (nan when untestable)
    sigma2: float  # seed-to-seed variance of one paired difference
    i2: float  # tau2 / (tau2 + sigma2 / mean seeds per cell)
    cells: int  # cells with at least one paired seed
    pairs: int  # paired differences used
    method: str  # MIXED, CELL_MEANS or UNTESTABLE

    @property
    def se_cell(self) -> float:
        """The sd of one cell's observed Δ: sqrt(τ² + σ²/n̄), what the pooled test's power
        depends on."""
        n = self.pairs / self.cells if self.cells else float("nan")
        return math.sqrt(self.tau2 + self.sigma2 / n) if self.cells else float("nan")


def paired_differences(cells: Sequence[tuple[dict[int, float], dict[int, float]]],
                       n_items: int | None = None) -> list[np.ndarray]:
    """Per cell, the loss-minus-baseline differences of the seeds both ran (at the metric's
    resolution); cells without a common seed are left out."""
    out = []
    for values, baseline in cells:
        common = sorted(set(values) & set(baseline))
        if common:
            out.append(np.array([quantize(values[s], n_items) - quantize(baseline[s], n_items)
                                 for s in common], dtype=float))
    return out


def pooled(cells: Sequence[tuple[dict[int, float], dict[int, float]]], alpha: float = ALPHA,
           n_items: int | None = None) -> Pooled:
    """The pooled Δ of one loss over a stage's cells: each cell is ``(values, baseline)``
    (seed -> metric). See the module's rules: MixedLM with a random intercept per cell on the
    paired differences, t with cells - 1 df; when the mixed model cannot be fitted (every
    cell has one pair, or it fails to converge) the same t-test over the cell means."""
    from scipy import stats

    nan = float("nan")
    diffs = paired_differences(cells, n_items)
    k, pairs = len(diffs), int(sum(len(d) for d in diffs))
    if not k:
        return Pooled(nan, nan, nan, None, nan, nan, nan, 0, 0, UNTESTABLE)
    means = np.array([d.mean() for d in diffs])
    center = float(means.mean())
    flat = np.concatenate(diffs)
    within = [d for d in diffs if len(d) >= 2]
    sigma2 = float(sum(((d - d.mean()) ** 2).sum() for d in within)
                   / max(1, sum(len(d) - 1 for d in within))) if within else nan
    if k < 2 or _constant(flat):
        return Pooled(center, nan, nan, None, nan, sigma2, nan, k, pairs, UNTESTABLE)
    fit = _mixed(diffs) if within else None
    if fit is not None:
        est, se, tau2, sigma2 = fit
        method = MIXED
    else:
        est = center
        se = float(means.std(ddof=1)) / math.sqrt(k)
        n_bar = pairs / k
        tau2 = max(0.0, float(means.var(ddof=1)) - (sigma2 / n_bar if within else 0.0)) \
            if not math.isnan(sigma2) else nan
        method = CELL_MEANS
    if not se > 0:
        return Pooled(est, nan, nan, None, tau2, sigma2, nan, k, pairs, UNTESTABLE)
    df = k - 1
    p = float(2 * stats.t.sf(abs(est / se), df))
    q = float(stats.t.ppf(1 - alpha / 2, df))
    n_bar = pairs / k
    i2 = tau2 / (tau2 + sigma2 / n_bar) if not (math.isnan(tau2) or math.isnan(sigma2)) \
        and tau2 + sigma2 > 0 else nan
    return Pooled(est, est - q * se, est + q * se, p, tau2, sigma2, i2, k, pairs, method)


def _mixed(diffs: list[np.ndarray]) -> tuple[float, float, float, float] | None:
    """(mean, its se, τ², σ²) of the random-intercept model, or None when it cannot be fitted."""
    import statsmodels.api as sm

    y = np.concatenate(diffs)
    groups = np.repeat(np.arange(len(diffs)), [len(d) for d in diffs])
    # Scaled to unit spread: REML's optimiser works at any scale, tiny accuracy differences
    # (1e-3) included; the estimates are scaled back.
    scale = float(y.std()) or 1.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.MixedLM(y / scale, np.ones((len(y), 1)), groups=groups).fit(reml=True)
    except (ValueError, np.linalg.LinAlgError):
        return None
    est, se = float(res.fe_params[0]) * scale, float(res.bse_fe[0]) * scale
    tau2 = float(np.asarray(res.cov_re)[0, 0]) * scale ** 2
    sigma2 = float(res.scale) * scale ** 2
    if not all(math.isfinite(v) for v in (est, se, tau2, sigma2)) or not res.converged:
        return None
    return est, se, max(0.0, tau2), sigma2


# --- power and planning --------------------------------------------------------------------------

def detectable(sd: float, nobs: int, alpha: float, power: float = POWER) -> float:
    """The Δ a two-sided one-sample t-test over ``nobs`` values of spread ``sd`` detects with
    ``power`` at level ``alpha`` (statsmodels ``TTestPower``); nan when it cannot (nobs < 2,
    no spread)."""
    from statsmodels.stats.power import TTestPower

    if nobs < 2 or not sd > 0 or not 0 < alpha < 1:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            es = TTestPower().solve_power(effect_size=None, nobs=nobs, alpha=alpha,
                                          power=power, alternative="two-sided")
        except (ValueError, RuntimeError):
            return float("nan")
    es = float(np.asarray(es).ravel()[0])
    return es * sd if math.isfinite(es) and es > 0 else float("nan")


def power_of(delta_: float, sd: float, nobs: int, alpha: float) -> float:
    """The power of a two-sided one-sample t-test over ``nobs`` values of spread ``sd`` to
    detect ``delta_`` at level ``alpha``."""
    from statsmodels.stats.power import TTestPower

    if nobs < 2 or not sd > 0:
        return float("nan")
    return float(TTestPower().power(effect_size=abs(delta_) / sd, nobs=nobs, alpha=alpha,
                                    alternative="two-sided"))


@dataclass(frozen=True)
class Plan:
    """Seeds per cell that a target Δ needs (:func:`plan`)."""

    delta: float
    seed_sd: float
    tau: float
    cells: int
    losses: int
    alpha: float
    power: float
    per_cell_seeds: int | None  # None: more than max_seeds
    pooled_seeds: int | None  # None: unreachable (heterogeneity) or more than max_seeds
    pooled_limit: float  # the pooled test's power with infinitely many seeds
    max_seeds: int


def plan(delta_: float, seed_sd: float, cells: int, losses: int, tau: float = 0.0,
         alpha: float = ALPHA, power: float = POWER, max_seeds: int = 1000) -> Plan:
    """Seeds per cell for a true Δ of ``delta_`` when one run's accuracy varies by ``seed_sd``
    over seeds (a paired difference of two independent runs then varies by sd·√2):

    * per cell: the paired t-test of one cell at Holm's first step over the loss's ``cells``
      (α / cells);
    * pooled: the t-test over ``cells`` cell means (the pooled endpoint) at Holm's first step
      over ``losses`` (α / losses), with between-cell sd ``tau`` of the true Δ.
    """
    d_sd = seed_sd * math.sqrt(2)

    def first(f) -> int | None:
        for n in range(2, max_seeds + 1):
            if f(n) >= power:
                return n
        return None

    per_cell = first(lambda n: power_of(delta_, d_sd, n, alpha / max(1, cells)))
    a_pool = alpha / max(1, losses)
    limit = power_of(delta_, tau, cells, a_pool) if tau > 0 else 1.0
    pooled_n = first(lambda n: power_of(delta_, math.sqrt(tau ** 2 + d_sd ** 2 / n), cells,
                                        a_pool)) if cells >= 2 else None
    return Plan(delta_, seed_sd, tau, cells, losses, alpha, power, per_cell, pooled_n,
                limit if cells >= 2 else float("nan"), max_seeds)
