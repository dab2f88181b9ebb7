"""Rank statistics of the surrogate studies: Spearman's ρ with a bootstrap interval over losses,
the test–retest reliability of a ranking across seeds (its noise ceiling), the Spearman–Brown
reliability of a seed mean and the correction for attenuation. Torch-free (numpy, scipy).

Every random draw comes from ``numpy.random.default_rng(seed)`` with a seed the caller records,
so the same inputs give the same numbers. Undefined values (fewer than 3 losses, a ranking
without variation, a reliability ≤ 0) are ``None``, never NaN.

The cross-augmentation ρ is taken **across seeds** (augmentation a on seed s against b on seed
t ≠ s): the same seed fixes a loss's initialisation and batch order under every augmentation, so
a loss's luck on a seed would otherwise count as agreement between augmentations, which the
test–retest reliability (two seeds) never sees; it is corrected for attenuation by the
single-seed test–retest ρ's, which are on the same footing (one seed against another).

The bootstrap resamples **losses** (rows) with replacement; every statistic of one resample is
computed on the same rows, so an attenuation-corrected ρ and its reliabilities stay coherent.
Intervals are percentile intervals over the resamples where the statistic is defined; where it
is defined in fewer than half of them the interval is ``None``.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from augloss.stats import holm

#: The coverage of every bootstrap interval.
LEVEL = 0.95
#: Resamples (of losses) of every bootstrap, unless the config says otherwise.
RESAMPLES = 2000
#: An interval needs the statistic defined in at least this share of the resamples.
MIN_DEFINED = 0.5
#: Fewer losses than this: no rank correlation.
MIN_LOSSES = 3
#: Up to this many pairs a rank correlation's p-value is exact (8! = 40,320 permutations).
EXACT_P_MAX = 8
#: Above :data:`EXACT_P_MAX` and up to this many pairs the p-value is a seeded Monte Carlo
#: permutation one (scipy's t approximation is poor for few pairs); above, the t approximation.
MC_P_MAX = 20
#: Random permutations behind a Monte Carlo p-value.
P_PERMUTATIONS = 10_000
#: Their generator's seed (``default_rng``), so a p-value is the same on every run.
P_SEED = 0


def _finite(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def spearman(x: Sequence[float], y: Sequence[float], p_value: bool = True
             ) -> tuple[float | None, float | None]:
    """``(ρ, two-sided p)`` of Spearman's rank correlation (scipy); ``(None, None)`` with fewer
    than :data:`MIN_LOSSES` pairs or a side without variation.

    p: exact (every permutation of the pairs, :data:`EXACT_P_MAX` pairs at most); up to
    :data:`MC_P_MAX` pairs a Monte Carlo permutation p (:data:`P_PERMUTATIONS` permutations
    from ``default_rng(P_SEED)``, two-sided: twice the smaller of (1 + #≥) / (1 + N) and
    (1 + #≤) / (1 + N), at most 1); above, scipy's t approximation. The t approximation is far
    too small for a handful of pairs (ρ = 1 over 5 losses: exact 2/5! ≈ 0.017, t
    approximation ~1e-24). ``p_value=False``: ρ only."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_LOSSES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    r = stats.spearmanr(x, y)
    if not p_value:
        return _finite(r.statistic), None
    if len(x) <= EXACT_P_MAX:
        every = stats.PermutationMethod(n_resamples=math.factorial(len(x)))
        exact = stats.pearsonr(stats.rankdata(x), stats.rankdata(y), method=every)
        return _finite(r.statistic), _finite(min(1.0, exact.pvalue))
    if len(x) <= MC_P_MAX:
        rx, ry = _standardised(stats.rankdata(x)), _standardised(stats.rankdata(y))
        rng = np.random.default_rng(P_SEED)
        draws = np.concatenate([
            rx[rng.permuted(np.tile(np.arange(len(x)), (m, 1)), axis=1)] @ ry
            for m in _chunks(P_PERMUTATIONS)])
        return _finite(r.statistic), _two_sided(float(rx @ ry), draws)
    return _finite(r.statistic), _finite(r.pvalue)


def _chunks(total: int, size: int = 4096) -> list[int]:
    return [min(size, total - c) for c in range(0, int(total), size)]


def _standardised(v: np.ndarray, axis: int = 0) -> np.ndarray:
    """``v`` centred and scaled to unit norm along ``axis`` (so a dot product is Pearson's r);
    0 where it has no variation."""
    c = v - v.mean(axis=axis, keepdims=True)
    norm = np.sqrt((c ** 2).sum(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, c / norm, 0.0)


def _two_sided(stat: float, draws: np.ndarray, exact: bool = False) -> float:
    """The two-sided permutation p of ``stat`` against ``draws``: every permutation
    (``exact``: twice the smaller tail share) or random ones (twice the smaller of
    (1 + #≥) / (1 + N) and (1 + #≤) / (1 + N)); at most 1."""
    tol = 1e-12 * max(1.0, abs(stat))
    ge, le = int((draws >= stat - tol).sum()), int((draws <= stat + tol).sum())
    n = len(draws)
    tail = min(ge, le) / n if exact else (1 + min(ge, le)) / (1 + n)
    return float(min(1.0, 2 * tail))


def kendall(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """``(τ_b, two-sided p)`` of Kendall's rank correlation (scipy); as :func:`spearman`."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_LOSSES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    r = stats.kendalltau(x, y)
    return _finite(r.statistic), _finite(r.pvalue)


def spearman_brown(r: float | None, k: int) -> float | None:
    """The reliability of the mean of ``k`` replicates whose pairwise correlation is ``r``:
    k r / (1 + (k − 1) r); ``None`` where undefined (r is None, or the denominator ≤ 0)."""
    if r is None:
        return None
    den = 1.0 + (k - 1) * r
    return None if den <= 1e-12 else k * r / den


def test_retest(replicates: np.ndarray) -> tuple[float | None, list[float | None]]:
    """``(mean, each)`` Spearman ρ between the columns of ``replicates`` (losses x seeds), over
    every pair of seeds: the test–retest correlation of one seed's ranking. The mean is over
    the defined pairs; ``None`` if none is."""
    rep = np.asarray(replicates, dtype=float)
    each = [spearman(rep[:, s], rep[:, t], p_value=False)[0]
            for s, t in itertools.combinations(range(rep.shape[1]), 2)]
    defined = [r for r in each if r is not None]
    return (float(np.mean(defined)) if defined else None), each


def attenuation(rho: float | None, rel_a: float | None, rel_b: float | None) -> dict:
    """ρ corrected for attenuation, ρ / sqrt(rel_a rel_b): ``{"value", "raw", "flag"}``.

    ``raw`` is the quotient; ``value`` is it capped to [−1, 1] (flag ``"capped"``: the noise
    ceiling estimate is below the observed ρ, itself a sign of too few losses or seeds);
    ``None`` where a reliability is ≤ 0 or undefined (flag ``"reliability ≤ 0"``) or ρ is
    undefined (flag ``"undefined"``)."""
    if rho is None:
        return {"value": None, "raw": None, "flag": "undefined"}
    if rel_a is None or rel_b is None or rel_a <= 0 or rel_b <= 0:
        return {"value": None, "raw": None, "flag": "reliability ≤ 0"}
    raw = rho / math.sqrt(rel_a * rel_b)
    if abs(raw) > 1:
        return {"value": math.copysign(1.0, raw), "raw": raw, "flag": "capped"}
    return {"value": raw, "raw": raw, "flag": ""}


# --- the bootstrap over losses ---------------------------------------------------------------

def resample(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` row indices drawn with replacement from ``default_rng(seed)``."""
    return np.random.default_rng(int(seed)).integers(0, n, size=(int(resamples), n))


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks along axis 1 (the losses), as Spearman's ρ ranks them."""
    from scipy import stats

    return stats.rankdata(a, axis=1)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r along axis 1; NaN where a side has no variation."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / np.sqrt((xc ** 2).sum(axis=1) * (yc ** 2).sum(axis=1))
    return np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), np.nan)


def _spearman_brown_array(r: np.ndarray, k: int) -> np.ndarray:
    den = 1.0 + (k - 1) * r
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, k * r / den, np.nan)


def percentile_ci(values: np.ndarray, level: float = LEVEL,
                  min_defined: float = MIN_DEFINED) -> dict:
    """``{"low", "high", "defined"}``: the percentile interval of the finite ``values``;
    ``low``/``high`` are ``None`` where fewer than ``min_defined`` of them are finite."""
    v = np.asarray(values, dtype=float)
    ok = v[np.isfinite(v)]
    if v.size == 0 or ok.size < min_defined * v.size or ok.size == 0:
        return {"low": None, "high": None, "defined": int(ok.size)}
    lo, hi = np.quantile(ok, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"low": float(lo), "high": float(hi), "defined": int(ok.size)}


def spearman_ci(x: Sequence[float], y: Sequence[float], resamples: int = RESAMPLES,
                seed: int = 0, level: float = LEVEL) -> dict:
    """Spearman's ρ of ``x`` and ``y`` with its p-value and a bootstrap interval over the
    pairs: ``{"n", "rho", "p", "ci_low", "ci_high", "defined"}``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rho, p = spearman(x, y)
    out = {"n": int(len(x)), "rho": rho, "p": p, "ci_low": None, "ci_high": None, "defined": 0}
    if rho is None:
        return out
    idx = resample(len(x), resamples, seed)
    ci = percentile_ci(_pearson(_ranks(x[idx]), _ranks(y[idx])), level)
    return {**out, "ci_low": ci["low"], "ci_high": ci["high"], "defined": ci["defined"]}


def grouped_rank_ci(x: np.ndarray, y: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                    level: float = LEVEL) -> dict:
    """The pooled rank correlation of ``x`` and ``y`` (losses x groups, NaN = absent): each
    group's values ranked among its own losses, centred on the group's mean rank, stacked,
    and correlated (Pearson on the within-group ranks). A group's level never counts, only the
    order inside it. The interval resamples losses (all of a loss's groups together); ``n``
    counts the losses (``None`` below :data:`MIN_LOSSES`), ``pairs`` the stacked pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def pooled(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Per resample (axis 0) the pooled within-group rank correlation."""
        num = np.zeros(xs.shape[0])
        sx, sy = np.zeros(xs.shape[0]), np.zeros(xs.shape[0])
        for g in range(xs.shape[2]):
            ok = np.isfinite(xs[:, :, g]) & np.isfinite(ys[:, :, g])
            rx = _masked_centred_ranks(xs[:, :, g], ok)
            ry = _masked_centred_ranks(ys[:, :, g], ok)
            num += (rx * ry).sum(axis=1)
            sx += (rx ** 2).sum(axis=1)
            sy += (ry ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num / np.sqrt(sx * sy)
        return np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), np.nan)

    both = np.isfinite(x) & np.isfinite(y)
    n = int(both.any(axis=1).sum())
    point = float(pooled(x[None], y[None])[0])
    out = {"n": n, "pairs": int(both.sum()), "rho": _finite(point), "p": None,
           "ci_low": None, "ci_high": None, "defined": 0}
    if out["rho"] is None or n < MIN_LOSSES:
        return {**out, "rho": None}
    idx = resample(x.shape[0], resamples, seed)
    ci = percentile_ci(pooled(x[idx], y[idx]), level)
    return {**out, "ci_low": ci["low"], "ci_high": ci["high"], "defined": ci["defined"]}


def _masked_centred_ranks(a: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per row, the average ranks of the entries where ``ok``, minus their mean; 0 elsewhere."""
    from scipy import stats

    out = np.zeros(a.shape)
    for i in range(a.shape[0]):
        if ok[i].sum() >= 2:
            r = stats.rankdata(a[i, ok[i]])
            out[i, ok[i]] = r - r.mean()
    return out


# --- the cross-augmentation study ------------------------------------------------------------

def _seed_pairs(k: int) -> list[tuple[int, int]]:
    """The ordered pairs (s, t), s ≠ t, of ``k`` seeds."""
    return list(itertools.permutations(range(k), 2))


def cross_seed(a: np.ndarray, b: np.ndarray, rank=spearman) -> tuple[float | None, list]:
    """``(mean, each)``: the rank correlation of ``a`` (losses x seeds, one augmentation) on
    seed s with ``b`` (another augmentation) on seed t ≠ s, over every ordered pair (s, t);
    the mean over the defined pairs (``None`` if none is). ``rank``: :func:`spearman` or
    :func:`kendall`.

    A seed fixes a loss's initialisation and batch order under every augmentation, so a loss's
    luck on a seed is shared by its scores under two augmentations on that seed: ρ of the
    same-seed scores (or their seed means) counts it as agreement, while the test–retest ρ
    (two seeds) never sees it. Across seeds it enters neither."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    each = [rank(a[:, s], b[:, t], p_value=False)[0] if rank is spearman
            else rank(a[:, s], b[:, t])[0] for s, t in _seed_pairs(a.shape[1])]
    defined = [r for r in each if r is not None]
    return (float(np.mean(defined)) if defined else None), each


def cross_seed_p(a: np.ndarray, b: np.ndarray, permutations: int = P_PERMUTATIONS,
                 seed: int = P_SEED) -> tuple[float | None, str]:
    """``(p, method)``: the two-sided permutation p of :func:`cross_seed`'s mean Spearman ρ,
    the losses of ``b`` permuted (all its seeds together) against ``a``: every permutation
    up to :data:`EXACT_P_MAX` losses (``"exact"``), else ``permutations`` random ones from
    ``default_rng(seed)`` (``"Monte Carlo"``, p = twice the smaller of (1 + #≥) / (1 + N) and
    (1 + #≤) / (1 + N)). ``(None, "")`` where the ρ is undefined.

    It is exact when a loss's scores under the two augmentations are independent given the
    losses' true rankings. Shared seeds tie a loss's two scores on one seed, which the
    permutation breaks; the statistic never pairs them, but they make its two halves (s, t)
    and (t, s) vary together a little more than the permutation assumes, so the p may be
    slightly too small: simulated under no correlation (9 losses, 2 seeds, 2,000 draws),
    5.9–6.1 % rejections at α = 0.05 with seed luck as large as the other noise, 5.2 %
    without shared luck."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n, k = a.shape
    rho, _ = cross_seed(a, b)
    if rho is None:
        return None, ""
    za = _standardised(stats.rankdata(a, axis=0), axis=0)  # (n, k); 0 without variation
    zb = _standardised(stats.rankdata(b, axis=0), axis=0)
    pairs = [(s, t) for s, t in _seed_pairs(k) if za[:, s].any() and zb[:, t].any()]

    def stat(perm: np.ndarray) -> np.ndarray:  # perm: (N, n) -> (N,)
        zp = zb[perm]  # (N, n, k)
        return sum(zp[:, :, t] @ za[:, s] for s, t in pairs) / len(pairs)

    observed = float(stat(np.arange(n)[None])[0])
    if n <= EXACT_P_MAX:
        every = np.array(list(itertools.permutations(range(n))))
        return _two_sided(observed, stat(every), exact=True), "exact"
    rng = np.random.default_rng(int(seed))
    draws = np.concatenate([stat(rng.permuted(np.tile(np.arange(n), (m, 1)), axis=1))
                            for m in _chunks(int(permutations))])
    return _two_sided(observed, draws), "Monte Carlo"


def study_statistics(fitness_by_seed, augmentations: Sequence[str],
                     resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL,
                     permutations: int = P_PERMUTATIONS) -> dict:
    """The statistics of a loss x augmentation x seed fitness matrix (all its rows).

    ``reliability``, per augmentation: the test–retest Spearman ρ between seed replicates
    (with more than 2 seeds the mean over seed pairs: one seed's reliability) and the
    Spearman–Brown reliability of the seed mean, each with a bootstrap interval.

    ``spearman``, per pair ``"a|b"`` of augmentations: ``rho``, the **cross-seed** ρ (a on seed
    s vs b on seed t ≠ s, mean over the ordered pairs: :func:`cross_seed`), its permutation p
    (:func:`cross_seed_p`, ``p_method``), Holm's adjustment over the pairs
    (:func:`augloss.stats.holm`) and a bootstrap interval; ``corrected``, the cross-seed ρ
    corrected for attenuation by the two single-seed test–retest ρ's (:func:`attenuation`:
    numerator and denominators are all one seed against another) with its interval and the
    share of resamples in which it is defined (``corrected_defined``). For comparison:
    ``rho_seed_means`` (ρ of the seed means, the earlier headline) and ``rho_same_seed`` (a
    and b on the same seed, mean over seeds), both inflated by a loss's luck on a seed, which
    carries across augmentations. ``kendall``: the cross-seed mean τ_b (no p).
    """
    x = np.asarray(fitness_by_seed, dtype=float)
    augs = list(augmentations)
    if x.ndim != 3 or x.shape[1] != len(augs):
        raise ValueError(f"fitness_by_seed must be losses x {len(augs)} augmentations x seeds, "
                         f"got shape {x.shape}")
    n, _, k = x.shape
    means = x.mean(axis=2)
    boot = n >= MIN_LOSSES and k >= 1
    if boot:
        idx = resample(n, resamples, seed)
        ranks_seed = _ranks(x[idx])  # (B, n, A, S)

    reliability, retest_boot = {}, {}
    for i, a in enumerate(augs):
        r, each = test_retest(x[:, i, :]) if k >= 2 else (None, [])
        rel = spearman_brown(r, k)
        entry = {"test_retest": r, "pairs": each, "spearman_brown": rel, "seeds": k,
                 "test_retest_ci": [None, None], "spearman_brown_ci": [None, None]}
        if boot and k >= 2:
            rs = _nanmean0(np.stack([_pearson(ranks_seed[:, :, i, s], ranks_seed[:, :, i, t])
                                     for s, t in itertools.combinations(range(k), 2)]))
            retest_boot[a] = rs
            tr_ci = percentile_ci(rs, level)
            sb_ci = percentile_ci(_spearman_brown_array(rs, k), level)
            entry["test_retest_ci"] = [tr_ci["low"], tr_ci["high"]]
            entry["spearman_brown_ci"] = [sb_ci["low"], sb_ci["high"]]
        reliability[a] = entry

    spear, kend = {}, {}
    for i, j in itertools.combinations(range(len(augs)), 2):
        a, b = augs[i], augs[j]
        pair = f"{a}|{b}"
        rho, each = cross_seed(x[:, i, :], x[:, j, :]) if k >= 2 else (None, [])
        p, method = cross_seed_p(x[:, i, :], x[:, j, :], permutations, P_SEED) \
            if rho is not None else (None, "")
        tau, _ = cross_seed(x[:, i, :], x[:, j, :], kendall) if k >= 2 else (None, [])
        same = [spearman(x[:, i, s], x[:, j, s], p_value=False)[0] for s in range(k)]
        same = [r for r in same if r is not None]
        corr = attenuation(rho, reliability[a]["test_retest"], reliability[b]["test_retest"])
        entry = {"n": n, "rho": rho, "p": p, "p_method": method, "pairs": each,
                 "ci_low": None, "ci_high": None, "defined": 0,
                 "corrected": corr["value"], "corrected_raw": corr["raw"],
                 "corrected_flag": corr["flag"], "corrected_ci_low": None,
                 "corrected_ci_high": None, "corrected_defined": None,
                 "rho_seed_means": spearman(means[:, i], means[:, j], p_value=False)[0],
                 "rho_same_seed": float(np.mean(same)) if same else None}
        if boot and rho is not None:
            rb = _nanmean0(np.stack([_pearson(ranks_seed[:, :, i, s], ranks_seed[:, :, j, t])
                                     for s, t in _seed_pairs(k)]))
            ci = percentile_ci(rb, level)
            entry.update(ci_low=ci["low"], ci_high=ci["high"], defined=ci["defined"])
            if a in retest_boot and b in retest_boot:
                ra, rbb = retest_boot[a], retest_boot[b]
                with np.errstate(invalid="ignore", divide="ignore"):
                    cb = np.where((ra > 0) & (rbb > 0), rb / np.sqrt(ra * rbb), np.nan)
                cci = percentile_ci(np.clip(cb, -1.0, 1.0), level)
                entry.update(corrected_ci_low=cci["low"], corrected_ci_high=cci["high"],
                             corrected_defined=cci["defined"] / int(resamples))
        spear[pair] = entry
        kend[pair] = {"tau": tau, "p": None}
    for pair, adj in zip(spear, holm([spear[q]["p"] for q in spear])):
        spear[pair]["p_holm"] = adj
    return {"reliability": reliability, "spearman": spear, "kendall": kend,
            "rho": {"across": "seeds: augmentation a on seed s vs b on seed t ≠ s, mean over "
                              "the ordered pairs",
                    "corrected_by": "the single-seed test–retest ρ of each augmentation",
                    "p": {"method": "two-sided permutation of the losses (all seeds "
                                    "together)", "exact_up_to": EXACT_P_MAX,
                          "permutations": int(permutations), "seed": P_SEED}},
            "bootstrap": {"resamples": int(resamples), "seed": int(seed), "level": level,
                          "unit": "losses (rows), with replacement",
                          "method": "percentile, over the resamples where defined"}}


def _nanmean0(a: np.ndarray) -> np.ndarray:
    """The mean over axis 0 of the finite entries (NaN where none is), without a warning."""
    ok = np.isfinite(a)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, a, 0.0).sum(axis=0) / count, np.nan)
