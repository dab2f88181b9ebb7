"""The surrogate-validity table: does the surrogate rank the losses as the large models do?

The paper starts from "a lack of correlation between smaller surrogate functions and large
convolutional neural networks"; the runs hold both numbers for every loss that reached the
transfer stage (evolved losses, cross-entropy and the baselines). Per dataset and augmentation:
Spearman's ρ between each loss's surrogate fitness on the correlation study's fresh seeds (its
mean over them, ``correlation.json``) and its transfer accuracy (mean over the seeds), with a
bootstrap interval over the losses; and per dataset one pooled row over the augmentations (the
within-augmentation ranks, centred and stacked: :func:`augloss.rankstats.grouped_rank_ci`).

A ρ is bounded by the two rankings' reliabilities, so each augmentation's row also shows: the
surrogate's reliability (the Spearman–Brown reliability of the seed mean, from the study's
loss x augmentation x seed matrix over the row's losses), the transfer side's split-seed
reliability (Spearman ρ between the losses' ranking on one transfer seed and another, mean over
seed pairs, Spearman–Brown to the mean of the seeds every loss has; — with fewer than 2), ρ
corrected for attenuation (ρ / sqrt(rel_surrogate rel_transfer), — where a reliability is ≤ 0,
capped at ±1 and flagged), and Holm's adjustment of p over the augmentation rows of a dataset.
A low ρ supports the paper's premise only where both reliabilities are high.

Losses are matched by expression key and label smoothing (``loss_key`` and
``label_smoothing`` in ``metrics.json``; the study's rows carry both), else by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from augloss import names, rankstats, stats
from augloss.tables.collect import TableError
from augloss.tables.comparison import run_values
from augloss.tables.render import booktabs, html_page, missing, p_text, write_formats

POOLED = "pooled"

SUMMARY_COLUMNS = ["stage", "dataset", "augmentation", "metric", "losses", "rho", "ci_low",
                   "ci_high", "p", "p_holm", "reliability_surrogate", "surrogate_seeds",
                   "reliability_transfer", "transfer_seeds", "corrected", "corrected_raw",
                   "corrected_flag", "resamples", "bootstrap_seed", "reason"]
LOSS_COLUMNS = ["stage", "dataset", "augmentation", "loss", "kind", "surrogate_fitness",
                "transfer_mean", "seeds"]


def _label_smoothing(runs: pd.DataFrame, loss: str) -> float:
    g = runs[runs["loss"] == loss]
    if "label_smoothing" in g and g["label_smoothing"].notna().any():
        return float(g["label_smoothing"].dropna().iloc[0])
    try:
        m = json.loads((Path(g["run_dir"].iloc[0]) / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise TableError(f"{g['run_dir'].iloc[0]}/metrics.json: unreadable ({exc})") from exc
    return float(m.get("label_smoothing") or 0.0)


def match(study: dict, runs: pd.DataFrame, evolved: dict | None = None
          ) -> tuple[dict[str, int], list[str]]:
    """``({trained loss: study row}, unmatched losses)``: by (``loss_key``, label smoothing),
    else by name (a row's name, the searches that selected it, ``evolved.json``'s aliases)."""
    by_key = {(r["key"], float(r.get("label_smoothing", 0.0))): i
              for i, r in enumerate(study["losses"])}
    by_name: dict[str, int] = {}
    for i, r in enumerate(study["losses"]):
        for n in [r["name"], *r.get("selected_by", [])]:
            by_name.setdefault(n, i)
    for first, others in (evolved or {}).get("aliases", {}).items():
        for n in others:
            if n in by_name:
                by_name.setdefault(first, by_name[n])
    found, missing = {}, []
    for loss in sorted(set(runs["loss"])):
        keys = sorted({k for k in runs.loc[runs["loss"] == loss, "loss_key"]
                       if isinstance(k, str) and k})
        i = by_key.get((keys[0], _label_smoothing(runs, loss))) if len(keys) == 1 else None
        if i is None:
            i = by_name.get(loss)
        if i is None:
            missing.append(loss)
        else:
            found[loss] = i
    return found, missing


def validity(study: dict, df: pd.DataFrame, stage: str = "transfer", metric: str = "test_acc",
             evolved: dict | None = None, resamples: int = rankstats.RESAMPLES,
             seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(summary, per loss, unmatched)``: per dataset and augmentation (and pooled over the
    augmentations) Spearman's ρ of surrogate fitness and ``stage``'s ``metric``, with a
    bootstrap interval (``resamples`` resamples of the losses from ``seed``)."""
    if "fitness" not in study or "seeds" not in study:
        raise TableError("correlation.json has no fresh-seed fitness: rerun correlation_study")
    runs = df[df["stage"] == stage]
    if runs.empty:
        raise TableError(f"no runs of stage {stage!r}")
    augs = list(study["augmentations"])
    fit = np.asarray(study["fitness"], dtype=float)
    by_seed = (np.asarray(study["fitness_by_seed"], dtype=float)
               if "fitness_by_seed" in study else None)
    found, unmatched = match(study, runs, evolved)
    summary, per_loss = [], []
    for dataset in sorted(set(runs["dataset"])):
        d = runs[runs["dataset"] == dataset]
        losses = [x for x in sorted(found, key=_order) if x in set(d["loss"])]
        x = np.full((len(losses), len(augs)), np.nan)
        y = np.full_like(x, np.nan)
        rows = []
        for j, a in enumerate(augs):
            seeds_of = {}
            for i, loss in enumerate(losses):
                vals = run_values(d[(d["augmentation"] == a) & (d["loss"] == loss)], metric)
                if not vals:
                    continue
                seeds_of[i] = vals
                x[i, j] = fit[found[loss], j]
                y[i, j] = float(np.mean(list(vals.values())))
                per_loss.append({"stage": stage, "dataset": dataset, "augmentation": a,
                                 "loss": loss, "kind": study["losses"][found[loss]].get("kind"),
                                 "surrogate_fitness": x[i, j], "transfer_mean": y[i, j],
                                 "seeds": len(vals)})
            ok = np.isfinite(x[:, j]) & np.isfinite(y[:, j])
            if not ok.any() and a not in set(d["augmentation"]):
                continue
            row = _summary(stage, dataset, a, metric, rankstats.spearman_ci(
                x[ok, j], y[ok, j], resamples, seed), resamples, seed)
            members = [i for i in range(len(losses)) if ok[i]]
            row.update(_reliabilities(
                study, by_seed, [found[losses[i]] for i in members], j,
                [seeds_of[i] for i in members], row["rho"]))
            rows.append(row)
        for row, adj in zip(rows, stats.holm([r["p"] for r in rows])):
            row["p_holm"] = adj
        summary += rows
        summary.append(_summary(stage, dataset, POOLED, metric, rankstats.grouped_rank_ci(
            x, y, resamples, seed), resamples, seed))
    return (pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
            pd.DataFrame(per_loss, columns=LOSS_COLUMNS), unmatched)


def _reliabilities(study: dict, by_seed, rows: list[int], j: int,
                   transfer: list[dict[int, float]], rho) -> dict:
    """The surrogate's and the transfer side's reliability over the losses ``rows`` (study rows)
    under augmentation ``j``, and ``rho`` corrected for attenuation by them."""
    rel_s, s_seeds = None, None
    if by_seed is not None and by_seed.ndim == 3 and by_seed.shape[2] >= 2:
        s_seeds = int(by_seed.shape[2])
        r, _ = rankstats.test_retest(by_seed[rows, j, :]) if len(rows) else (None, [])
        rel_s = rankstats.spearman_brown(r, s_seeds)
    elif by_seed is None:
        a = study["augmentations"][j]
        entry = study.get("reliability", {}).get(a, {})
        rel_s, s_seeds = entry.get("spearman_brown"), entry.get("seeds")
    common = sorted(set.intersection(*(set(v) for v in transfer))) if transfer else []
    rel_t = None
    if len(common) >= 2:
        r, _ = rankstats.test_retest(np.array([[v[s] for s in common] for v in transfer]))
        rel_t = rankstats.spearman_brown(r, len(common))
    corr = rankstats.attenuation(rho, rel_s, rel_t)
    return {"reliability_surrogate": rel_s, "surrogate_seeds": s_seeds,
            "reliability_transfer": rel_t, "transfer_seeds": len(common),
            "corrected": corr["value"], "corrected_raw": corr["raw"],
            "corrected_flag": corr["flag"] if rho is not None else ""}


def _order(loss: str) -> tuple:
    parsed = names.parse_loss(loss)
    if loss == names.CE:
        return (0, 0, 0, loss)
    if parsed.kind == "evolved":
        return (2, names.technique_order(parsed.augmentation), parsed.rank, loss)
    return (1, 0, 0, loss)


def _summary(stage, dataset, aug, metric, r: dict, resamples, seed) -> dict:
    reason = ""
    if r["rho"] is None:
        reason = (f"fewer than {rankstats.MIN_LOSSES} losses ({r['n']})"
                  if r["n"] < rankstats.MIN_LOSSES else "no variation in a ranking")
    return {**{c: None for c in SUMMARY_COLUMNS},
            "stage": stage, "dataset": dataset, "augmentation": aug, "metric": metric,
            "losses": r["n"], "rho": r["rho"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "p": r["p"], "corrected_flag": "", "resamples": resamples, "bootstrap_seed": seed,
            "reason": reason}


def _csv(summary: pd.DataFrame, per_loss: pd.DataFrame) -> str:
    """One CSV: the correlations (``level`` ``correlation``), then each loss's values."""
    frames = [summary.assign(level="correlation")]
    if len(per_loss):
        frames.append(per_loss.assign(level="loss"))
    out = pd.concat(frames, ignore_index=True)
    for col in ("losses", "surrogate_seeds", "transfer_seeds", "resamples", "bootstrap_seed",
                "seeds"):
        out[col] = out[col].astype("Int64")
    out = out[["level"] + [c for c in out.columns if c != "level"]]
    return out.to_csv(index=False, lineterminator="\n")



def _f(v) -> str:
    return "—" if missing(v) else f"{v:.2f}"



def _rho(r) -> str:
    if missing(r.rho):
        return f"— ({r.reason})" if r.reason else "—"
    ci = "—" if missing(r.ci_low) else f"{_f(r.ci_low)}, {_f(r.ci_high)}"
    return f"{_f(r.rho)} ({ci})"


def _corrected(r) -> str:
    if missing(r.rho) or r.augmentation == POOLED:
        return "—"
    if r.corrected_flag == "reliability ≤ 0":
        return "— (reliability ≤ 0)"
    if missing(r.corrected):
        return "—"
    return _f(r.corrected) + (f" [capped; raw {_f(r.corrected_raw)}]"
                              if r.corrected_flag == "capped" else "")


def _rel(v, seeds) -> str:
    if missing(v):
        return "—" if missing(seeds) or seeds >= 2 else f"— ({int(seeds)} seed(s))"
    return f"{_f(v)} ({int(seeds)})"


def notes(study: dict, summary: pd.DataFrame, unmatched: list[str], stage: str,
          resamples: int, seed: int) -> list[str]:
    seeds = len(study["seeds"])
    lines = [
        f"ρ: Spearman's rank correlation, over the losses that reached the {stage} stage "
        "(evolved, cross-entropy and the baselines), of each loss's surrogate fitness (mean "
        f"over the correlation study's {seeds} fresh seeds, none used by a search to select) "
        f"and its {stage} {summary['metric'].iloc[0] if len(summary) else ''} (mean over "
        "seeds; a diverged run scores 0). One row per dataset and augmentation: datasets are "
        "not pooled.",
        "pooled: per dataset over every augmentation, on within-augmentation ranks (each "
        "augmentation's losses ranked among themselves, centred and stacked; an augmentation's "
        "level never counts); its interval resamples losses with all their augmentations; no "
        "p-value (the stacked rows are not independent).",
        f"(95 % CI): percentile bootstrap over the losses ({resamples} resamples, seed {seed}); "
        f"p: two-sided permutation p (exact up to {rankstats.EXACT_P_MAX} losses, Monte Carlo "
        f"with {rankstats.P_PERMUTATIONS:,} permutations from seed {rankstats.P_SEED} up to "
        f"{rankstats.MC_P_MAX}, scipy's t approximation above); p_holm: Holm's adjustment over "
        "the augmentation rows of a dataset. With fewer than "
        f"{rankstats.MIN_LOSSES} losses ρ is —.",
        "Reliabilities (each with its number of seeds): surrogate, the Spearman–Brown "
        "reliability of the surrogate's seed mean over the row's losses (test–retest ρ "
        "between the correlation study's seeds, from correlation.json); transfer, the "
        f"split-seed reliability of the {stage} ranking (Spearman ρ between the losses' "
        "ranking on one seed and on another, mean over seed pairs, Spearman–Brown to the mean "
        "of the seeds every loss of the row has; — with fewer than 2). corrected ρ = ρ / "
        "sqrt(rel_surrogate rel_transfer), the correlation without seed noise on either side; "
        "— where a reliability is ≤ 0 or unknown, capped at ±1 where the estimate exceeds 1.",
        "**A low ρ is evidence for the paper's premise (the surrogate does not rank losses as "
        "the large model does) only when both reliabilities are high**: where either is low, "
        "a low ρ is what seed noise alone produces, and the row says nothing about the "
        "premise. A high ρ means the surrogate ranks the losses as the large model does; with "
        "few losses the interval says how little either is known. The evolved rows are search "
        "winners, selected for high surrogate fitness: their restricted range pulls ρ toward "
        "0 even for a faithful surrogate, so a low ρ among them is weaker evidence still."]
    if unmatched:
        lines.append("Trained but not in the correlation study, so left out (a baseline the "
                     "surrogate cannot score, or an evolved loss below correlation.top_n): "
                     + ", ".join(unmatched) + ".")
    return lines


def write_validity(summary: pd.DataFrame, per_loss: pd.DataFrame, study: dict,
                   unmatched: list[str], prefix: str | Path, stage: str = "transfer"
                   ) -> list[Path]:
    """``prefix.{md,csv,tex,html}``: ρ per dataset and augmentation and pooled, with notes
    (the bootstrap's resamples and seed are the summary's); the CSV also holds each loss's two
    numbers (``level`` ``loss``)."""
    from tabulate import tabulate

    if summary.empty:
        raise TableError(f"no {stage} runs to compare with the surrogate")
    resamples = int(summary["resamples"].iloc[0])
    seed = int(summary["bootstrap_seed"].iloc[0])

    heads = ["dataset", "augmentation", "losses", "ρ (95 % CI)", "p", "p_holm",
             "reliability: surrogate (seeds)", f"reliability: {stage} (seeds)", "corrected ρ"]
    body = [[r.dataset, r.augmentation, str(r.losses), _rho(r), p_text(r.p), p_text(r.p_holm),
             _rel(r.reliability_surrogate, r.surrogate_seeds),
             _rel(r.reliability_transfer, r.transfer_seeds), _corrected(r)]
            for r in summary.itertuples()]
    metric = summary["metric"].iloc[0] if len(summary) else ""
    title = f"Surrogate validity: surrogate fitness vs {stage} {metric} (Spearman ρ)"
    lines = notes(study, summary, unmatched, stage, resamples, seed)
    md = (f"### {title}\n\n" + tabulate(body, heads, tablefmt="github", disable_numparse=True)
          + "\n\n" + "\n\n".join(lines) + "\n")
    return write_formats(prefix, md, _csv(summary, per_loss),
                         f"% {title}\n" + booktabs(heads, body),
                         html_page(title, [(title, heads, body, lines)]))
