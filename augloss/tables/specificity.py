"""The specificity table: does a loss found under augmentation A do relatively better under A
than under the other augmentations, once trained on the large models?

Per stage and dataset, from the runs' ``metrics.json``:

* each evolved loss's Δ vs cross-entropy in every cell (loss mean − CE mean in the same dataset
  and augmentation, :func:`augloss.tables.comparison.comparison`);
* its **diagonal advantage**: Δ under its own augmentation − the mean Δ under the others, on the
  **double-centred** Δs (each augmentation's mean over the tested losses subtracted: an
  augmentation that helps or hurts every loss, and cross-entropy's noise in a cell, which every
  Δ of that cell subtracts, are not specificity), averaged over the losses (a loss that two
  searches selected has two own augmentations); the uncentred advantage is shown beside it;
* a **permutation p-value**, one-sided (is the advantage larger than by chance?): the origin
  labels permuted **across the losses** (which loss was found under which augmentation), exact
  under "a loss's origin is irrelevant"; every distinct assignment enumerated when there are at
  most :data:`MAX_EXACT` of them (p = the share at least as large as the observed), else
  ``permutations`` random ones from ``default_rng(seed)`` (p = (1 + #≥) / (1 + N)). The
  smallest attainable p is 1 / (distinct assignments): 1/L! for L losses of distinct origins.
  (Permuting each loss's augmentation labels within the loss, the earlier test, assumed a
  loss's Δs exchangeable across augmentations; a shared augmentation effect or CE's noise in a
  cell breaks that, and with unequal origins it rejected ~12 % of the time at α = 0.05);
* the **two-way ANOVA** loss × augmentation on the per-seed values of the same losses
  (statsmodels ``ols`` + ``anova_lm``, type II): the interaction F and p, a test of *any*
  difference in the losses' augmentation profiles, not of the diagonal in particular.

The test needs every tested loss under every augmentation of the table (a loss with a Δ
missing somewhere is listed, not tested). A loss's origin is its name (``evolved-<aug>-<k>``)
with the other searches that selected it (``evolved.json``), in every stage (fine-tuning trains
the selected losses under their own names). A stage without a resolvable origin says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from augloss import names
from augloss.tables.collect import TableError
from augloss.tables.comparison import BASELINE, comparison, run_values
from augloss.tables.render import booktabs, html_page, missing, p_text, write_formats

#: Random permutations when the assignments are too many to enumerate.
PERMUTATIONS = 10_000
#: The permutations' seed (recorded in the table).
SEED = 0
#: Enumerate every distinct assignment of the origins to the losses up to this many.
MAX_EXACT = 200_000

SUMMARY_COLUMNS = ["stage", "dataset", "metric", "losses", "augmentations",
                   "diagonal_advantage", "diagonal_advantage_raw", "p_permutation",
                   "permutation_method", "permutations", "assignments",
                   "permutation_seed", "smallest_p", "anova_F",
                   "anova_df_num", "anova_df_den", "anova_p", "reason"]
LOSS_COLUMNS = ["stage", "dataset", "loss", "display", "origin", "augmentations",
                "delta_own", "delta_others", "advantage", "advantage_centred", "excluded"]


# --- origins ---------------------------------------------------------------------------------

def origin_maps(evolved: dict | None) -> dict[str, set[str]]:
    """``{name: augmentations}``: the augmentations whose searches selected each evolved loss of
    ``evolved.json`` (:func:`augloss.workflow.evolved_losses`), under each of its names."""
    by_name: dict[str, set[str]] = {}
    for e in (evolved or {}).get("losses", []):
        selected = e.get("selected_by") or [e["name"]]
        augs = {names.parse_loss(n).augmentation for n in selected
                if names.parse_loss(n).kind == "evolved"}
        for n in selected:
            by_name[n] = augs
    return by_name


def loss_origins(runs: pd.DataFrame, evolved: dict | None) -> dict[str, set[str]]:
    """The origin augmentations of each evolved loss of ``runs`` (CE and the baselines have
    none): every search that selected it (``evolved.json``), else its own name's."""
    by_name = origin_maps(evolved)
    out = {}
    for loss in sorted(set(runs["loss"])):
        parsed = names.parse_loss(loss)
        if parsed.kind == "evolved":
            out[loss] = set(by_name.get(loss, {parsed.augmentation}))
    return out


# --- the permutation test --------------------------------------------------------------------

def centre(deltas: np.ndarray) -> np.ndarray:
    """``deltas`` (losses x augmentations) double-centred: each augmentation's mean over the
    losses and each loss's mean over the augmentations subtracted (the loss × augmentation
    interaction). What every loss shares in a cell (an augmentation that helps or hurts every
    loss, cross-entropy's own noise in that cell, which every Δ subtracts) is gone; a loss's
    own level never counts in the advantage anyway."""
    d = np.asarray(deltas, dtype=float)
    d = d - d.mean(axis=0, keepdims=True)
    return d - d.mean(axis=1, keepdims=True)


def _advantages(d: np.ndarray, origin_sets: np.ndarray) -> np.ndarray:
    """``(losses, groups)``: each loss's advantage (mean over the group's own augmentations
    minus the mean over the others) if its origin were each distinct origin set."""
    own = origin_sets.astype(float)  # (groups, augmentations)
    rest = 1.0 - own
    return d @ (own / own.sum(axis=1, keepdims=True)).T \
        - d @ (rest / rest.sum(axis=1, keepdims=True)).T


def assignments(labels: Sequence[int]) -> int:
    """The number of distinct assignments of ``labels`` (origin groups) to the losses: the
    multinomial L! / Π m_g! (m_g: how many losses share group g)."""
    counts = np.bincount(np.asarray(labels, dtype=int))
    return math.factorial(int(counts.sum())) // math.prod(math.factorial(int(m)) for m in counts)


def _every_assignment(labels: Sequence[int]) -> np.ndarray:
    """``(assignments, losses)``: every distinct arrangement of ``labels`` (a multiset), the
    observed one among them, in a fixed order."""
    remaining = np.bincount(np.asarray(labels, dtype=int))[None, :]
    seqs = np.zeros((1, 0), dtype=np.int64)
    for _ in range(len(labels)):
        parts, rems = [], []
        for g in range(remaining.shape[1]):
            ok = remaining[:, g] > 0
            if ok.any():
                parts.append(np.hstack([seqs[ok], np.full((int(ok.sum()), 1), g)]))
                r = remaining[ok].copy()
                r[:, g] -= 1
                rems.append(r)
        seqs, remaining = np.vstack(parts), np.vstack(rems)
    return seqs


def permutation_test(deltas, own=None, permutations: int = PERMUTATIONS, seed: int = SEED,
                     max_exact: int = MAX_EXACT) -> dict:
    """The diagonal advantage of ``deltas`` (losses x augmentations, Δ vs CE) given ``own``
    (the same shape: which augmentations each loss was found for) and its one-sided
    permutation p-value. ``deltas`` may also be a list of ``(Δ per augmentation, own)`` pairs
    of equal length (one per loss), ``own`` then ``None``.

    The Δs are double-centred (:func:`centre`), so an augmentation effect shared by the losses
    and cross-entropy's noise in a cell cancel; the statistic is the mean over the losses of
    (centred Δ under its own augmentations − under the others). Under "a loss's origin is
    irrelevant" every assignment of the origins to the losses is equally likely, so the
    **origin labels are permuted across the losses** (which loss was found under which
    augmentation): every distinct assignment when there are at most ``max_exact`` (p = the
    share at least as large as the observed, exact), else ``permutations`` random
    permutations from ``default_rng(seed)`` (p = (1 + #≥) / (1 + N)).

    Returns ``{"statistic", "raw", "p", "method", "permutations", "assignments",
    "smallest_p", "seed"}``: ``raw`` the advantage before centring; ``assignments`` the
    number of distinct assignments (L! / Π m! for m losses sharing an origin);
    ``smallest_p`` the smallest p the design can give (1 / assignments: 1/L! for L losses
    of distinct origins; 1 when all share one origin).
    """
    if own is None:
        pairs = list(deltas)
        deltas = np.array([np.asarray(d, dtype=float) for d, _ in pairs])
        own = np.array([np.asarray(o, dtype=bool) for _, o in pairs])
    d = np.asarray(deltas, dtype=float)
    own = np.asarray(own, dtype=bool)
    if d.ndim != 2 or own.shape != d.shape:
        raise ValueError(f"deltas and own must be losses x augmentations of one shape, got "
                         f"{d.shape} and {own.shape}")
    if not np.isfinite(d).all():
        raise ValueError("every loss needs a Δ under every augmentation")
    if (own.sum(axis=1) == 0).any() or own.all(axis=1).any():
        raise ValueError("every loss needs an own augmentation and another one")
    n = d.shape[0]
    groups, labels = np.unique(own, axis=0, return_inverse=True)
    labels = np.asarray(labels).reshape(-1)
    rows = np.arange(n)
    raw = float(_advantages(d, groups)[rows, labels].mean())
    adv = _advantages(centre(d), groups)  # (losses, groups)
    stat = float(adv[rows, labels].mean())
    tol = 1e-12 * max(1.0, abs(stat))
    total = assignments(labels)
    out = {"statistic": stat, "raw": raw, "assignments": int(total),
           "smallest_p": 1.0 / total}
    if total <= max_exact:
        dist = adv[rows, _every_assignment(labels)].mean(axis=1)
        p = float((dist >= stat - tol).sum() / total)
        return {**out, "p": p, "method": "exact", "permutations": int(total), "seed": None}
    rng = np.random.default_rng(int(seed))
    draws = np.empty(int(permutations))
    for c in range(0, int(permutations), 4096):
        m = min(4096, int(permutations) - c)
        perm = rng.permuted(np.tile(labels, (m, 1)), axis=1)
        draws[c:c + m] = adv[rows, perm].mean(axis=1)
    ge = int((draws >= stat - tol).sum())
    return {**out, "p": (1 + ge) / (1 + int(permutations)), "method": "Monte Carlo",
            "permutations": int(permutations),
            "smallest_p": max(1.0 / total, 1.0 / (1 + int(permutations))), "seed": int(seed)}


# --- the ANOVA -------------------------------------------------------------------------------

def interaction_anova(values: pd.DataFrame) -> dict:
    """The loss × augmentation interaction of a two-way ANOVA (type II) on ``values`` (columns
    ``loss``, ``augmentation``, ``value``: one row per run): ``{"F", "df_num", "df_den", "p",
    "reason"}``; F and p are ``None`` with the reason where the design cannot give them."""
    none = {"F": None, "df_num": None, "df_den": None, "p": None}
    if values["loss"].nunique() < 2 or values["augmentation"].nunique() < 2:
        return {**none, "reason": "needs 2 losses and 2 augmentations"}
    cells = values.groupby(["loss", "augmentation"]).size()
    if len(values) <= len(cells):
        return {**none, "reason": "no replicate seeds (no residual variance)"}
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    try:
        fit = ols("value ~ C(loss) * C(augmentation)", data=values).fit()
        row = anova_lm(fit, typ=2).loc["C(loss):C(augmentation)"]
    except (ValueError, KeyError, np.linalg.LinAlgError) as exc:
        return {**none, "reason": f"ANOVA failed: {exc}"[:200]}
    f, p = float(row["F"]), float(row["PR(>F)"])
    if not (math.isfinite(f) and math.isfinite(p)):
        return {**none, "reason": "no residual variance"}
    return {"F": f, "df_num": float(row["df"]), "df_den": float(fit.df_resid), "p": p,
            "reason": ""}


# --- the table -------------------------------------------------------------------------------

def specificity(df: pd.DataFrame, stages: Sequence[str], metric: str = "test_acc",
                evolved: dict | None = None, permutations: int = PERMUTATIONS,
                seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, per loss)``: per stage and dataset the diagonal advantage, its permutation
    p-value and the ANOVA interaction; per evolved loss its Δ under its own and the other
    augmentations (``evolved``: ``evolved.json``, for aliases and fine-tune origins)."""
    aliases = (evolved or {}).get("aliases", {})
    summary, per_loss = [], []
    for stage in stages:
        runs = df[df["stage"] == stage]
        if runs.empty:
            summary.append(_row(stage, "", metric, reason="no runs of this stage"))
            continue
        t = comparison(df, stage, metric, aliases=aliases)
        origins = loss_origins(runs, evolved)
        for dataset in sorted(set(runs["dataset"])):
            if not origins:
                summary.append(_row(stage, dataset, metric, reason=(
                    "no loss of this stage has a resolvable origin augmentation")))
                continue
            s, rows = _dataset(t, runs[runs["dataset"] == dataset], dataset, origins, metric,
                               permutations, seed)
            summary.append(s)
            per_loss += rows
    return (pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
            pd.DataFrame(per_loss, columns=LOSS_COLUMNS))


def _row(stage, dataset, metric, **values) -> dict:
    return {**{c: None for c in SUMMARY_COLUMNS}, "stage": stage, "dataset": dataset,
            "metric": metric, "reason": "", **values}


def _dataset(t, runs, dataset, origins, metric, permutations, seed) -> tuple[dict, list[dict]]:
    cells = t.cells[(t.cells["dataset"] == dataset) & (t.cells["loss"] != BASELINE)]
    rows, candidates = [], []
    for loss in [x for x in t.losses if x in origins]:
        c = cells[(cells["loss"] == loss) & cells["delta_vs_ce"].notna()]
        augs = list(c["augmentation"])
        own = [a in origins[loss] for a in augs]
        row = {"stage": t.stage, "dataset": dataset, "loss": loss, "display": t.display(loss),
               "origin": ", ".join(sorted(origins[loss], key=names.technique_order)),
               "augmentations": len(augs), "delta_own": None, "delta_others": None,
               "advantage": None, "advantage_centred": None, "excluded": ""}
        if len(augs) < 2:
            row["excluded"] = "fewer than 2 augmentations with a Δ vs CE"
        elif not any(own):
            row["excluded"] = "its own augmentation has no Δ vs CE here"
        elif all(own):
            row["excluded"] = "found under every augmentation of the table"
        else:
            deltas = dict(zip(augs, c["delta_vs_ce"].astype(float)))
            d_own = float(np.mean([v for a, v in deltas.items() if a in origins[loss]]))
            d_oth = float(np.mean([v for a, v in deltas.items() if a not in origins[loss]]))
            row.update(delta_own=d_own, delta_others=d_oth, advantage=d_own - d_oth)
            candidates.append((loss, row, deltas))
        rows.append(row)
    # The test's columns: every augmentation with a Δ; its losses: those with a Δ in each.
    columns = sorted({a for _, _, d in candidates for a in d}, key=names.technique_order)
    profiles, used = [], []
    for loss, row, deltas in candidates:
        missing = [a for a in columns if a not in deltas]
        own = [a in origins[loss] for a in columns]
        if missing:
            row["excluded"] = ("not in the permutation test: no Δ vs CE under "
                               + ", ".join(missing))
        elif all(own):
            row["excluded"] = "found under every augmentation of the test"
        else:
            profiles.append(([deltas[a] for a in columns], own))
            used.append((loss, row))
    n_augs = len(set(cells["augmentation"]))
    if not profiles:
        return _row(t.stage, dataset, metric, losses=0, augmentations=n_augs,
                    reason="no evolved loss with its own and another augmentation"), rows
    perm = permutation_test(profiles, permutations=permutations, seed=seed)
    centred = centre(np.array([d for d, _ in profiles]))
    for (loss, row), c, (_, own) in zip(used, centred, profiles):
        o = np.asarray(own)
        row["advantage_centred"] = float(c[o].mean() - c[~o].mean())
    names_used = [loss for loss, _ in used]
    values = pd.DataFrame([{"loss": loss, "augmentation": a, "value": v}
                           for (loss, a), g in runs[runs["loss"].isin(names_used)
                                                    & runs["augmentation"].isin(columns)]
                           .groupby(["loss", "augmentation"], sort=True)
                           for v in run_values(g, metric).values()],
                          columns=["loss", "augmentation", "value"])
    anova = interaction_anova(values)
    reasons = []
    untestable = perm["assignments"] == 1
    if untestable:  # untestable: no p (never a p of 1 that reads like evidence)
        reasons.append("every tested loss has the same origin: the permutation test has "
                       "nothing to permute (untestable)")
        perm = {**perm, "p": None, "smallest_p": None, "statistic": None}
    if anova["reason"]:
        reasons.append(f"ANOVA: {anova['reason']}")
    return _row(t.stage, dataset, metric, losses=len(profiles), augmentations=len(columns),
                diagonal_advantage=perm["statistic"], diagonal_advantage_raw=perm["raw"],
                p_permutation=perm["p"], permutation_method=perm["method"],
                permutations=perm["permutations"], assignments=perm["assignments"],
                permutation_seed=perm["seed"], smallest_p=perm["smallest_p"],
                anova_F=anova["F"], anova_df_num=anova["df_num"],
                anova_df_den=anova["df_den"], anova_p=anova["p"],
                reason="; ".join(reasons)), rows



def _pp(v) -> str:
    return "—" if missing(v) else f"{100 * v:+.2f}"



def notes(summary: pd.DataFrame, permutations: int = PERMUTATIONS, seed: int = SEED
          ) -> list[str]:
    """What the columns mean and what the test can and cannot say."""
    lines = [
        "Δ: a loss's mean minus cross-entropy's in the same dataset and augmentation "
        "(percentage points; a diverged run scores 0). Diagonal advantage: Δ under the "
        "augmentation the loss was found for minus its mean Δ under the other augmentations, "
        "averaged over the tested losses (a loss two searches selected counts both as its "
        "own), on double-centred Δs: each augmentation's mean Δ over the tested losses is "
        "subtracted first, so an augmentation that helps or hurts every loss, and "
        "cross-entropy's own seed noise in a cell (every loss's Δ in that cell subtracts the "
        "same CE mean), are not counted as specificity. (uncentred) is the plain advantage, "
        "which such shared effects move whenever the augmentations are not the origin of "
        "equally many losses.",
        "Permutation p (one-sided, larger than chance): the origin labels are permuted across "
        "the losses (which loss was found under which augmentation), each loss keeping its "
        "own Δs; exact under \"a loss's origin is irrelevant\" whatever the augmentation "
        "effects. Every distinct assignment is enumerated when there are at most "
        f"{MAX_EXACT:,} (exact: p = share of assignments at least as large), else "
        f"{permutations:,} random permutations from seed {seed} (p = (1 + #≥) / (1 + N)). "
        "The test needs each tested loss under every augmentation of the test; a loss with "
        "a Δ missing is listed below, not tested.",
        "Interaction F: two-way ANOVA loss × augmentation (type II, statsmodels) on the "
        "per-seed values of the same losses; it tests whether the losses' augmentation "
        "profiles differ at all, in any direction, not the diagonal in particular.",
        "What it can say: a small p means the losses do relatively better where they were "
        "found than elsewhere, beyond the seeds' noise and beyond what every loss shares. "
        "What it cannot: with L losses of distinct origins there are only L! assignments "
        "(L! / Π m! when m losses share an origin), so p cannot go below their inverse "
        "whatever the effect (L = 3: 0.17, L = 4: 0.042, L = 5: 0.0083, L = 10: 2.8e-07; "
        "the number of assignments and the smallest attainable p are in each row; losses "
        "that all share one origin cannot be tested). A large p with few losses is no "
        "evidence against specificity; neither test says why a loss is specific, and Δ is "
        "relative to cross-entropy and centred on the other losses in each cell, so a loss "
        "that is good everywhere, or a specificity every loss shares, shows no advantage."]
    reasons = [f"{r.stage} / {r.dataset or 'all'}: {r.reason}" for r in summary.itertuples()
               if r.reason]
    if reasons:
        lines.append("Not testable or incomplete: " + "; ".join(reasons) + ".")
    return lines


def write_specificity(summary: pd.DataFrame, per_loss: pd.DataFrame, prefix: str | Path,
                      permutations: int = PERMUTATIONS, seed: int = SEED) -> list[Path]:
    """``prefix.{md,csv,tex,html}``: the summary per stage and dataset, each loss's own and
    other Δ, and the notes; the CSV holds both (``level``: ``dataset`` or ``loss``)."""
    from tabulate import tabulate

    if summary.empty:
        raise TableError("no stage to test for specificity")
    sh = ["stage", "dataset", "losses", "diagonal advantage (pp)", "(uncentred)",
          "permutation p", "assignments", "smallest p", "interaction F (df)", "interaction p"]
    sb = [[r.stage, r.dataset or "—", "—" if missing(r.losses) else str(int(r.losses)),
           _pp(r.diagonal_advantage), _pp(r.diagonal_advantage_raw),
           "—" if missing(r.p_permutation) else f"{p_text(r.p_permutation)} ({r.permutation_method})",
           "—" if missing(r.assignments) else f"{int(r.assignments):,}", p_text(r.smallest_p),
           "—" if missing(r.anova_F) else
           f"{r.anova_F:.2f} ({r.anova_df_num:g}, {r.anova_df_den:g})", p_text(r.anova_p)]
          for r in summary.itertuples()]
    lh = ["stage", "dataset", "loss", "found under", "Δ own (pp)", "Δ others (pp)",
          "advantage (pp)", "centred (pp)", "note"]
    lb = [[r.stage, r.dataset, r.display, r.origin, _pp(r.delta_own), _pp(r.delta_others),
           _pp(r.advantage), _pp(r.advantage_centred), r.excluded or ""]
          for r in per_loss.itertuples()]
    metric = summary["metric"].dropna().iloc[0] if summary["metric"].notna().any() else ""
    title = f"Specificity: do losses do relatively better under their own augmentation ({metric})?"
    per = "Each evolved loss under its own and the other augmentations"
    lines = notes(summary, permutations, seed)
    md = (f"### {title}\n\n" + tabulate(sb, sh, tablefmt="github", disable_numparse=True)
          + f"\n\n### {per}\n\n"
          + (tabulate(lb, lh, tablefmt="github", disable_numparse=True) if lb else "(none)")
          + "\n\n" + "\n\n".join(lines) + "\n")
    frames = [summary.assign(level="dataset")]
    if len(per_loss):
        frames.append(per_loss.assign(level="loss"))
    csv = pd.concat(frames, ignore_index=True)
    for col in ("losses", "augmentations", "permutations", "assignments", "permutation_seed"):
        csv[col] = csv[col].astype("Int64")
    csv = csv[["level"] + [c for c in csv.columns if c != "level"]]
    tex = f"% {title}\n" + booktabs(sh, sb) + (f"% {per}\n" + booktabs(lh, lb) if lb else "")
    return write_formats(prefix, md, csv.to_csv(index=False, lineterminator="\n"), tex,
                         html_page(title, [(title, sh, sb, []), (per, lh, lb, lines)]))
