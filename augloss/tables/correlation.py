"""The cross-augmentation correlation table: how alike the surrogate ranks the losses under two
augmentations, against how alike it ranks them under one augmentation on two seeds (the noise
ceiling), from the study's ``correlation.json`` (:mod:`augloss.search.correlation`).

Two sections: per pair of augmentations Spearman's ρ **across seeds** (one augmentation on seed
s against the other on seed t ≠ s, so a loss's luck on a seed, shared by its scores under every
augmentation, is not counted as agreement) with its bootstrap interval, permutation p, Holm's p
over the pairs and ρ corrected for attenuation by the single-seed test–retest ρ's (beside it
the share of bootstrap resamples where that correction is defined, and, for comparison, the ρ
of the seed means); per augmentation the noise ceiling (test–retest ρ between seeds and the
Spearman–Brown reliability of the seed mean).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from augloss import names
from augloss.tables.collect import TableError
from augloss.tables.render import booktabs, html_page, p_text, write_formats

COLUMNS = ["section", "augmentation_a", "augmentation_b", "n_losses", "rho", "ci_low",
           "ci_high", "p", "p_method", "p_holm", "corrected", "corrected_raw",
           "corrected_ci_low", "corrected_ci_high", "corrected_flag", "corrected_defined",
           "rho_seed_means", "rho_same_seed", "kendall_tau", "kendall_p", "seeds",
           "test_retest", "test_retest_ci_low", "test_retest_ci_high", "reliability",
           "reliability_ci_low", "reliability_ci_high"]


def _check(study: dict) -> None:
    if "reliability" not in study or "fitness_by_seed" not in study:
        raise TableError("correlation.json predates the fresh-seed study (no noise ceiling): "
                         "rerun the correlation_study rule")
    if any("rho_seed_means" not in s for s in study["spearman"].values()):
        raise TableError("correlation.json predates the cross-seed ρ (its ρ on same-seed means "
                         "counts a loss's luck on a seed as agreement): rerun the "
                         "correlation_study rule")


def correlation_table(study: dict) -> pd.DataFrame:
    """One row per pair of augmentations (``section`` ``pair``), then one per augmentation
    (``section`` ``noise ceiling``)."""
    _check(study)
    n = len(study["losses"])
    rows = []
    for pair in sorted(study["spearman"], key=lambda p: [
            names.technique_order(x) for x in p.split("|")]):
        a, b = pair.split("|")
        s = study["spearman"][pair]
        k = study.get("kendall", {}).get(pair, {})
        rows.append({"section": "pair", "augmentation_a": a, "augmentation_b": b,
                     "n_losses": n, "rho": s["rho"], "ci_low": s["ci_low"],
                     "ci_high": s["ci_high"], "p": s["p"], "p_method": s["p_method"],
                     "p_holm": s["p_holm"],
                     "corrected": s["corrected"], "corrected_raw": s["corrected_raw"],
                     "corrected_ci_low": s["corrected_ci_low"],
                     "corrected_ci_high": s["corrected_ci_high"],
                     "corrected_flag": s["corrected_flag"],
                     "corrected_defined": s["corrected_defined"],
                     "rho_seed_means": s["rho_seed_means"], "rho_same_seed": s["rho_same_seed"],
                     "kendall_tau": k.get("tau"),
                     "kendall_p": k.get("p")})
    for a in study["augmentations"]:
        r = study["reliability"][a]
        rows.append({"section": "noise ceiling", "augmentation_a": a, "n_losses": n,
                     "seeds": r["seeds"], "test_retest": r["test_retest"],
                     "test_retest_ci_low": r["test_retest_ci"][0],
                     "test_retest_ci_high": r["test_retest_ci"][1],
                     "reliability": r["spearman_brown"],
                     "reliability_ci_low": r["spearman_brown_ci"][0],
                     "reliability_ci_high": r["spearman_brown_ci"][1]})
    return pd.DataFrame(rows, columns=COLUMNS)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v)


def _f(v, digits: int = 2) -> str:
    return "—" if _missing(v) else f"{v:.{digits}f}"



def _ci(v, low, high) -> str:
    if _missing(v):
        return "—"
    if _missing(low) or _missing(high):
        return f"{_f(v)} (—)"
    return f"{_f(v)} ({_f(low)}, {_f(high)})"


def _reliability(v, low, high) -> str:
    """A Spearman–Brown reliability: below 0 it has no meaning (the seeds disagree), so a
    negative value or bound reads "< 0" instead of a number such as -9.99."""
    def one(x):
        return "< 0" if not _missing(x) and x < 0 else _f(x)

    if _missing(v):
        return "—"
    if _missing(low) or _missing(high):
        return f"{one(v)} (—)"
    return f"{one(v)} ({one(low)}, {one(high)})"


def _corrected(r) -> str:
    if r.corrected_flag == "reliability ≤ 0":
        return "— (reliability ≤ 0)"
    if _missing(r.corrected):
        return "—"
    if r.corrected_flag == "capped":  # an estimate above 1 is no interval of certainty
        return f"≥ 1 (capped; raw {_f(r.corrected_raw)}; interval not shown)"
    return _ci(r.corrected, r.corrected_ci_low, r.corrected_ci_high)


def notes(study: dict) -> list[str]:
    """What each column means, over which losses, and when a low ρ says anything."""
    kinds = [row.get("kind", "evolved") for row in study["losses"]]
    b = study["bootstrap"]
    counts = (f"{len(kinds)} losses: {kinds.count('ce')} cross-entropy, "
              f"{kinds.count('baseline')} baseline(s), {kinds.count('evolved')} evolved")
    pairs = len(study["spearman"])
    k = len(study["seeds"])
    methods = sorted({s.get("p_method") or "" for s in study["spearman"].values()} - {""})
    pp = study.get("rho", {}).get("p", {})
    perm = (f"exact up to {pp.get('exact_up_to')} losses, else {pp.get('permutations'):,} "
            f"random permutations from seed {pp.get('seed')}; here: "
            f"{', '.join(methods) or 'none'}") if pp else ", ".join(methods)
    lines = [
        f"Every statistic runs over all {counts} (the losses each search selected are "
        "included; each row's kind is in correlation.json, whose loss x augmentation x seed "
        "matrix lets any subset be recomputed). Fitness: the surrogate's "
        f"{study.get('metric', '')} validation accuracy on each of {len(study['seeds'])} "
        f"fresh seeds ({', '.join(map(str, study['seeds']))}), none of which any search selected "
        "on (no winner's curse).",
        "ρ across seeds: Spearman's rank correlation over the losses of one augmentation's "
        "fitness on seed s with the other's on seed t ≠ s, mean over the "
        f"{k * (k - 1)} ordered seed pairs. The same fresh seeds serve every augmentation and "
        "a seed fixes a loss's initialisation and batch order, so a loss's luck on a seed "
        "is shared by its scores under every augmentation on that seed: a ρ of same-seed "
        "scores or of seed means (ρ of seed means, shown for comparison) counts that luck "
        "as agreement between augmentations, while the test–retest ρ (two seeds) never sees "
        "it, which biased the corrected ρ upward. Across seeds it enters neither. "
        f"(95 % CI): percentile bootstrap over the losses ({b['resamples']} resamples, "
        f"seed {b['seed']}, all of a loss's seeds and augmentations together); p: two-sided "
        "permutation p of ρ across seeds, the losses of one augmentation permuted (all their "
        f"seeds together) against the other's ({perm}); it is exact when a loss's two "
        "scores are independent given the losses' true rankings, and a little too small "
        "when seed luck is shared (≈ 6 % rejections at α = 0.05 in simulation, 9 losses, "
        f"2 seeds); p_holm: Holm's adjustment over the {pairs} pairs.",
        "Noise ceiling: test–retest ρ between two seeds' rankings under one augmentation "
        "(with more than 2 seeds, the mean over seed pairs): the ceiling of ρ across seeds, "
        "which also compares one seed with another; and the Spearman–Brown reliability of "
        "the seed mean (the surrogate-validity table's reliability). corrected ρ = ρ across "
        "seeds / sqrt(r_a r_b) with r the single-seed test–retest ρ's, the correlation the "
        "two rankings would have without seed noise; — where a test–retest ρ is ≤ 0 (that "
        "ranking is noise), capped at ±1 where the estimate exceeds 1; \"defined in\": the "
        "share of bootstrap resamples in which it is defined (its interval needs half). At "
        "9 losses and 2 seeds it keeps a small upward bias (+0.02 to +0.05 in simulation "
        "under no correlation, against ≈ +0.26 for the same-seed version): the chance agreement of "
        "two seeds' luck enters both ρ across seeds and the test–retest ρ's.",
        "**A low ρ is evidence of augmentation-specific losses only when the noise ceiling is "
        "high** (test–retest ρ near 1) and the corrected ρ's interval stays below 1: where "
        "the ceiling is low, a low ρ is what seed noise alone produces."]
    for s in study.get("skipped", []):
        lines.append(f"Not scored: {s['name']} ({s['reason']}).")
    return lines


def _grids(df: pd.DataFrame) -> tuple[list[str], list[list], list[str], list[list]]:
    pairs = df[df["section"] == "pair"]
    ceil = df[df["section"] == "noise ceiling"]
    ph = ["pair", "ρ across seeds (95 % CI)", "p", "p_holm", "corrected ρ (95 % CI)",
          "defined in", "ρ of seed means"]
    pb = [[f"{r.augmentation_a} – {r.augmentation_b}", _ci(r.rho, r.ci_low, r.ci_high),
           p_text(r.p), p_text(r.p_holm), _corrected(r),
           "—" if _missing(r.corrected_defined) else f"{100 * r.corrected_defined:.0f} %",
           _f(r.rho_seed_means)] for r in pairs.itertuples()]
    seeds = int(ceil["seeds"].max()) if len(ceil) else 0
    ch = ["augmentation", "test–retest ρ, one seed (95 % CI)",
          f"reliability of the {seeds}-seed mean (95 % CI)"]
    cb = [[r.augmentation_a, _ci(r.test_retest, r.test_retest_ci_low, r.test_retest_ci_high),
           _reliability(r.reliability, r.reliability_ci_low, r.reliability_ci_high)]
          for r in ceil.itertuples()]
    return ph, pb, ch, cb


def write_correlation_table(df: pd.DataFrame, study: dict, prefix: str | Path) -> list[Path]:
    """``prefix.{md,csv,tex,html}``: the pairs, the noise ceiling and the notes."""
    from tabulate import tabulate

    ph, pb, ch, cb = _grids(df)
    n = len(study["losses"])
    title = (f"Cross-augmentation rank correlation of surrogate fitness across seeds ({n} "
             f"losses, {len(study['seeds'])} fresh seeds)")
    ceiling = "Noise ceiling per augmentation (seed-to-seed agreement of the ranking)"
    lines = notes(study)
    md = (f"### {title}\n\n" + tabulate(pb, ph, tablefmt="github", disable_numparse=True)
          + f"\n\n### {ceiling}\n\n" + tabulate(cb, ch, tablefmt="github", disable_numparse=True)
          + "\n\n" + "\n\n".join(lines) + "\n")
    tex = f"% {title}\n" + booktabs(ph, pb) + f"% {ceiling}\n" + booktabs(ch, cb)
    return write_formats(prefix, md, df.to_csv(index=False, lineterminator="\n"), tex,
                         html_page(title, [(title, ph, pb, []), (ceiling, ch, cb, lines)]))
