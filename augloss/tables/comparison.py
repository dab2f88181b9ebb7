"""The comparison table against cross-entropy.

* :func:`comparison` builds the transfer / fine-tune table: rows are losses (cross-entropy first,
  then baselines, then evolved losses by origin, e.g. ``evolved[cutout]#1``), columns are
  dataset x augmentation, cells are mean +- std of the metric over seeds with ``n``. Means are
  compared at the metric's resolution (counts of correct images, :mod:`augloss.stats`): the
  best mean of a column is bold (every tied one); ``*`` marks a loss above cross-entropy and
  ``†`` one below it, each with p < 0.05 after Holm's correction within the loss's cells
  (paired t-test over matching seeds, Welch's t-test where the seeds do not pair). "wins"
  counts the columns where the loss's mean is above cross-entropy's, "sig. wins" / "sig.
  harms" those also significant. Per loss, :attr:`Comparison.pooled` holds the pooled Δ over
  all cells (mixed model, Holm across the losses): the primary endpoint of the claims table.
* :func:`write_comparison` writes Markdown (tabulate, GitHub style), CSV (one row per cell, full
  precision) and LaTeX (booktabs); same inputs give byte-identical files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from augloss import names, stats
from augloss.tables import collect
from augloss.tables.collect import TableError
from augloss.tables.render import booktabs, html_page, write_formats

BASELINE = "ce"

# --- naming and ordering ---------------------------------------------------------------------

display_name = names.display


def _loss_order(loss: str) -> tuple:
    if loss == BASELINE:
        return (0, 0, 0, loss)
    parsed = names.parse_loss(loss)
    if parsed.kind == "evolved":
        return (2, names.technique_order(parsed.augmentation), parsed.rank, loss)
    return (1, 0, 0, loss)


def _column_order(col: tuple[str, str]) -> tuple:
    dataset, a = col
    return (dataset, names.technique_order(a), a)


# --- comparison tables -----------------------------------------------------------------------------

holm = stats.holm


@dataclass
class Comparison:
    """A comparison table: ``cells`` has one row per (loss, dataset, augmentation)."""

    stage: str
    metric: str
    cells: pd.DataFrame
    losses: list[str]
    columns: list[tuple[str, str]]
    aliases: dict[str, list[str]] = field(default_factory=dict)
    alpha: float = stats.ALPHA
    #: per loss (not CE): the pooled Δ over the stage's cells (:func:`augloss.stats.pooled`)
    #: with Holm across the losses (``p_holm``), the primary endpoint.
    pooled: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per dataset: the training split(s) its runs used and their image counts
    #: (:func:`training_note`).
    training: dict[str, str] = field(default_factory=dict)

    def display(self, loss: str) -> str:
        """The loss's table name, with every other search that selected it."""
        return display_name(loss, self.aliases.get(loss, ()))

    def wins(self) -> pd.DataFrame:
        g = self.cells[self.cells["loss"] != BASELINE].groupby("loss", sort=False)
        out = pd.DataFrame({"wins": g["beats_ce"].sum().astype(int),
                            "significant_wins": g["significant"].sum().astype(int),
                            "significant_harms": g["significant_harm"].sum().astype(int)})
        return out.reindex([l for l in self.losses if l != BASELINE]).fillna(0).astype(int)

    def items(self) -> list[int]:
        """The distinct numbers of images behind the metric over the table's cells."""
        return sorted({int(n) for n in self.cells["n_items"].dropna()})

    def power(self) -> dict:
        """The Δ detectable with 80 % power from the observed spread: per cell (paired t over
        the cell's seeds at Holm's first step within a loss, α / cells; median over the
        testable cells) and pooled (t over cell means at α / losses, with the observed τ²
        and σ²; median over the losses)."""
        cells = self.cells[self.cells["loss"] != BASELINE]
        per_cell = []
        for loss, g in cells.groupby("loss", sort=False):
            m = int(g["p_value"].notna().sum())
            for sd, n, p in zip(g["sd_diff"], g["pairs"], g["p_value"]):
                # untestable cells (no spread, n < 2) say nothing about power
                if m and pd.notna(p) and not pd.isna(sd) and sd > 0 and n >= 2:
                    per_cell.append(stats.detectable(float(sd), int(n), self.alpha / m))
        per_cell = [x for x in per_cell if not math.isnan(x)]
        n_losses = max(1, int(self.pooled["p"].notna().sum())) if len(self.pooled) else 1
        pooled_mde = [stats.detectable(float(r.se_cell), int(r.cells), self.alpha / n_losses)
                      for r in self.pooled.itertuples() if r.p is not None
                      and not pd.isna(r.se_cell)] if len(self.pooled) else []
        pooled_mde = [x for x in pooled_mde if not math.isnan(x)]
        med = (lambda v: float(np.median(v)) if v else float("nan"))
        return {"per_cell": med(per_cell), "per_cell_range": (min(per_cell), max(per_cell))
                if per_cell else None, "testable": len(per_cell),
                "untestable": int(len(cells) - len(per_cell)),
                "pooled": med(pooled_mde), "losses": n_losses,
                "seeds": int(cells["pairs"].median()) if len(cells) else 0}


def run_values(g: pd.DataFrame, metric: str) -> dict[int, float]:
    """``seed -> value`` of a cell's runs; a diverged run scores 0 (it never earns credit), a
    run without a value (not diverged) is left out."""
    out = {}
    for seed, value, diverged in zip(g["seed"], g[metric], g["diverged"]):
        if diverged:
            out[int(seed)] = 0.0
        elif value is not None and not pd.isna(value):
            out[int(seed)] = float(value)
    return out


def n_items(g: pd.DataFrame, metric: str) -> int | None:
    """The number of images behind ``metric`` in a cell's runs (its resolution), None when the
    runs do not record it (older runs) or disagree."""
    col = collect.ITEMS.get(metric)
    if col is None or col not in g:
        return None
    values = {int(v) for v in g[col].dropna()}
    return values.pop() if len(values) == 1 else None


def comparison(df: pd.DataFrame, stage: str, metric: str = "test_acc",
               baseline: str = BASELINE, alpha: float = stats.ALPHA,
               aliases: dict[str, list[str]] | None = None) -> Comparison:
    """The comparison table of ``stage`` on ``metric`` against ``baseline`` (rules:
    :mod:`augloss.stats`; Holm within each loss's cells; the pooled test per loss with Holm
    across the losses). ``aliases``: a trained loss's other names
    (:func:`augloss.workflow.evolved_losses`), shown beside it."""
    aliases = dict(aliases or {})
    runs = df[df["stage"] == stage]
    if runs.empty:
        raise TableError(f"no runs of stage {stage!r}")
    if metric not in runs:
        raise TableError(f"unknown metric {metric!r}")
    columns = sorted({(d, a) for d, a in zip(runs["dataset"], runs["augmentation"])},
                     key=_column_order)
    losses = sorted(set(runs["loss"]), key=_loss_order)
    rows, paired = [], {}
    for (dataset, a) in columns:
        col = runs[(runs["dataset"] == dataset) & (runs["augmentation"] == a)]
        n = n_items(col, metric)
        base = run_values(col[col["loss"] == baseline], metric)
        for loss in losses:
            g = col[col["loss"] == loss]
            if g.empty:
                continue
            vals = run_values(g, metric)
            rows.append(_cell(loss, display_name(loss, aliases.get(loss, ())),
                              loss == baseline, dataset, a, g, vals, base or None, alpha, n))
            if loss != baseline and vals and base:
                q = {s: stats.quantize(v, n) for s, v in vals.items()}
                paired.setdefault(loss, []).append(
                    (q, {s: stats.quantize(v, n) for s, v in base.items()}))
    cells = pd.DataFrame(rows)
    cells["p_holm"] = None
    for loss, g in cells.groupby("loss", sort=False):
        cells.loc[g.index, "p_holm"] = pd.Series(holm(list(g["p_value"])), index=g.index,
                                                 dtype=object)
    not_base = cells["loss"] != baseline
    significant = cells["p_holm"].map(lambda p: p is not None and p < alpha)
    cells["beats_ce"] = not_base & (cells["delta_vs_ce"] > 0)
    cells["below_ce"] = not_base & (cells["delta_vs_ce"] < 0)
    cells["significant"] = cells["beats_ce"] & significant
    cells["significant_harm"] = cells["below_ce"] & significant
    best = cells.groupby(["dataset", "augmentation"])["exact_mean"].transform("max")
    cells["best"] = cells["exact_mean"] == best
    pooled = _pooled(paired, [l for l in losses if l != baseline], alpha)
    return Comparison(stage, metric, cells, losses, columns,
                      {k: list(v) for k, v in aliases.items() if k in losses}, alpha, pooled,
                      _training(runs))


def _training(runs: pd.DataFrame) -> dict[str, str]:
    """``{dataset: "train (45000 images)"}``: each dataset's training split(s) and size(s)."""
    out = {}
    split = runs["train_split"] if "train_split" in runs else pd.Series("train", runs.index)
    size = runs["train_n"] if "train_n" in runs else pd.Series(None, runs.index, dtype=object)
    for dataset, g in runs.assign(_split=split, _n=size).groupby("dataset", sort=True):
        parts = []
        for s, h in g.groupby("_split", sort=True):
            sizes = sorted({int(n) for n in h["_n"].dropna()})
            parts.append(s + (f" ({', '.join(map(str, sizes))} images)" if sizes else ""))
        out[dataset] = " and ".join(parts)
    return out


def training_note(t: Comparison) -> str:
    """Which split every dataset's runs trained on; more than one is flagged."""
    if not t.training:
        return "Training split: not recorded."
    mixed = [d for d, s in t.training.items() if " and " in s]
    return ("Trained on: " + "; ".join(f"{d}: {s}" for d, s in t.training.items()) + "."
            + (f" MIXED training splits in {', '.join(mixed)}: these cells compare runs "
               f"trained on different images." if mixed else ""))


POOLED_COLUMNS = ["loss", "delta", "low", "high", "p", "p_holm", "tau2", "sigma2", "i2",
                  "cells", "pairs", "method", "se_cell"]


def _pooled(paired: dict[str, list], losses: list[str], alpha: float) -> pd.DataFrame:
    rows = []
    for loss in losses:
        r = stats.pooled(paired.get(loss, []), alpha)
        rows.append({"loss": loss, "delta": r.delta, "low": r.low, "high": r.high, "p": r.p,
                     "tau2": r.tau2, "sigma2": r.sigma2, "i2": r.i2, "cells": r.cells,
                     "pairs": r.pairs, "method": r.method, "se_cell": r.se_cell})
    out = pd.DataFrame(rows, columns=[c for c in POOLED_COLUMNS if c != "p_holm"])
    out["p"] = out["p"].astype(object).where(out["p"].notna(), None)
    out["p_holm"] = pd.Series(holm(list(out["p"])), index=out.index, dtype=object)
    return out[POOLED_COLUMNS]


def _cell(loss, display, is_baseline, dataset, a, g, vals, base, alpha, n) -> dict:
    arr = np.array([stats.quantize(vals[s], n) for s in sorted(vals)])
    nan = float("nan")
    d = stats.delta(vals, base, alpha, n) if base is not None and vals and not is_baseline \
        else None
    common = sorted(set(vals) & set(base or {})) if not is_baseline else []
    diffs = [stats.quantize(vals[s], n) - stats.quantize(base[s], n) for s in common]
    return {"loss": loss, "display": display, "dataset": dataset, "augmentation": a,
            "n": len(arr), "runs": len(g), "diverged": int(g["diverged"].sum()),
            "n_items": n,
            "exact_mean": stats.exact_mean(arr, n) if len(arr) else None,
            "mean": float(stats.exact_mean(arr, n)) if len(arr) else nan,
            "std": float(arr.std(ddof=1)) if len(arr) >= 2 else nan,
            "delta_vs_ce": 0.0 if is_baseline else (d.delta if d else nan),
            "ci_low": d.low if d else nan, "ci_high": d.high if d else nan,
            "p_value": d.p if d else None, "test": d.test if d else "",
            "pairs": len(diffs),
            "sd_diff": float(np.std(diffs, ddof=1)) if len(diffs) >= 2 else nan,
            "seeds": " ".join(str(s) for s in sorted(g["seed"]))}


def _fmt_cell(row) -> str:
    """A comparison cell in Markdown (``**best**``, ``*`` significant win, ``†`` significant
    harm); :func:`booktabs` and :func:`html_page` turn the same text into LaTeX and HTML."""
    if row is None:
        return "—"
    if math.isnan(row["mean"]):
        return f"— ({row['runs']} runs, no value)"
    text = f"{100 * row['mean']:.2f}"
    if not math.isnan(row["std"]):
        text += f" ± {100 * row['std']:.2f}"
    text += f" ({row['n']}, {row['diverged']} div.)" if row["diverged"] else f" ({row['n']})"
    if row["significant"]:
        text += "*"
    elif row["significant_harm"]:
        text += "†"
    return f"**{text}**" if row["best"] else text


def _pp(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def resolution_note(t: Comparison) -> str:
    """The test-set size (the metric's resolution) and one run's binomial standard error."""
    ns = t.items()
    if not ns:
        return (f"Images behind {t.metric}: not recorded by these runs; ties are decided at "
                f"a resolution of 1e-9.")
    ce = t.cells[t.cells["loss"] == BASELINE]["mean"].dropna()
    acc = float(ce.mean()) if len(ce) else float(t.cells["mean"].dropna().mean())
    ses = [stats.binomial_se(acc, n) for n in ns]
    sizes = ", ".join(str(n) for n in ns)
    return (f"{t.metric} is counted over {sizes} images per run (its resolution: ties are "
            f"exact equalities of correct counts); one run's binomial standard error at "
            f"cross-entropy's mean accuracy ({100 * acc:.1f} %) is "
            + ", ".join(f"{100 * se:.2f} pp" for se in ses) + ".")


def power_note(t: Comparison) -> str:
    """The power statement: what Δ these seeds and this spread could detect."""
    pw = t.power()
    parts = []
    if math.isnan(pw["per_cell"]):
        parts.append("per cell: no cell is testable (fewer than 2 paired seeds, or no spread)")
    else:
        lo, hi = pw["per_cell_range"]
        parts.append(f"per cell (paired t over {pw['seeds']} seeds at α / cells, Holm's "
                     f"first step): {_pp(pw['per_cell'])} pp (median over {pw['testable']} "
                     f"testable cells; {_pp(lo)}–{_pp(hi)} pp"
                     + (f"; {pw['untestable']} untestable cells left out" if pw["untestable"]
                        else "") + ")")
    if math.isnan(pw["pooled"]):
        parts.append("pooled: untestable (fewer than 2 cells with paired seeds)")
    else:
        parts.append(f"pooled over the stage's cells (at α / {pw['losses']} losses): "
                     f"{_pp(pw['pooled'])} pp (median over losses)")
    return ("Power: the Δ detected with 80 % probability from the observed seed spread, "
            + "; ".join(parts) + ". A smaller true Δ will usually show no mark: an absent "
            "mark is not evidence of no effect. `augloss plan` gives the seeds a target Δ "
            "needs.")


def notes(t: Comparison) -> list[str]:
    """The lines under a comparison table: what the marks mean, the Holm family, the
    resolution and the power."""
    return ["**bold**: best mean of the column (ties all bold). (n): runs; a diverged run "
            "(div.) scores 0. *: above cross-entropy, †: below it, each with p < 0.05 after "
            "Holm's correction within the loss's own cells (the family \"does this loss "
            "differ from CE in this cell?\"); t-test paired over matching seeds, else "
            "Welch's; cells with n < 2 or no variance are untestable (no p). The CSV's "
            "ci_low / ci_high are each cell's unadjusted 95 % interval; the marks use "
            "p_holm. The pooled answer per loss (the primary endpoint) is in the claims "
            "table.", resolution_note(t), training_note(t), power_note(t)]


def _grid(t: Comparison) -> tuple[list[str], list[list[str]]]:
    index = {(r["loss"], r["dataset"], r["augmentation"]): r for _, r in t.cells.iterrows()}
    wins = t.wins()
    headers = ["loss"] + [f"{d} / {a}" for d, a in t.columns] + ["wins vs CE", "sig. wins",
                                                                 "sig. harms"]
    body = []
    for loss in t.losses:
        row = [t.display(loss)] + [_fmt_cell(index.get((loss, d, a))) for d, a in t.columns]
        if loss == BASELINE:
            row += ["—", "—", "—"]
        else:
            row += [str(wins.loc[loss, c]) for c in ("wins", "significant_wins",
                                                      "significant_harms")]
        body.append(row)
    return headers, body


def _title(t: Comparison) -> str:
    return f"{t.stage}: {t.metric} (%), mean ± std over seeds (n)"


def to_markdown(t: Comparison) -> str:
    from tabulate import tabulate

    headers, body = _grid(t)
    grid = tabulate(body, headers, tablefmt="github", disable_numparse=True)
    return f"### {_title(t)}\n\n{grid}\n\n" + "\n\n".join(notes(t)) + "\n"


def to_latex(t: Comparison) -> str:
    return booktabs(*_grid(t))


def to_html(t: Comparison) -> str:
    return html_page(_title(t), [(_title(t), *_grid(t), notes(t))])


def to_csv(t: Comparison) -> str:
    cols = ["loss", "display", "dataset", "augmentation", "n", "mean", "std", "delta_vs_ce",
            "ci_low", "ci_high", "p_value", "p_holm", "test", "significant",
            "significant_harm", "best", "runs", "diverged", "n_items", "seeds"]
    return t.cells[cols].to_csv(index=False, lineterminator="\n")


def write_comparison(t: Comparison, prefix: str | Path) -> list[Path]:
    """Write ``prefix.md``, ``.csv``, ``.tex`` and ``.html``; return the paths."""
    return write_formats(prefix, to_markdown(t), to_csv(t), to_latex(t), to_html(t))
