"""The comparison table against cross-entropy.

* :func:`comparison` builds the transfer / fine-tune table: rows are losses (cross-entropy first,
  then baselines, then evolved losses by origin, e.g. ``evolved[cutout]#1``), columns are
  dataset x augmentation, cells are mean +- std of the metric over seeds with ``n``. The best
  mean of a column is bold; ``*`` marks a loss that beats cross-entropy with p < 0.05 after Holm
  correction over all comparisons of the table (paired t-test over matching seeds, Welch's
  t-test where the seeds do not pair). "wins" counts the columns where the loss's mean is above
  cross-entropy's, "sig. wins" those that are also significant.
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

    def display(self, loss: str) -> str:
        """The loss's table name, with every other search that selected it."""
        return display_name(loss, self.aliases.get(loss, ()))

    def wins(self) -> pd.DataFrame:
        g = self.cells[self.cells["loss"] != BASELINE].groupby("loss", sort=False)
        out = pd.DataFrame({"wins": g["beats_ce"].sum().astype(int),
                            "significant_wins": g["significant"].sum().astype(int)})
        return out.reindex([l for l in self.losses if l != BASELINE]).fillna(0).astype(int)

    def detectable(self) -> tuple[float, float, float] | None:
        """(min, median, max) over testable cells of the smallest Δ their seeds could detect."""
        hw = ((self.cells["ci_high"] - self.cells["ci_low"]) / 2).dropna()
        return None if hw.empty else (float(hw.min()), float(hw.median()), float(hw.max()))


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


def comparison(df: pd.DataFrame, stage: str, metric: str = "test_acc",
               baseline: str = BASELINE, alpha: float = stats.ALPHA,
               aliases: dict[str, list[str]] | None = None) -> Comparison:
    """The comparison table of ``stage`` on ``metric`` against ``baseline`` (rules:
    :mod:`augloss.stats`; Holm within each loss's cells). ``aliases``: a trained loss's other
    names (:func:`augloss.workflow.evolved_losses`), shown beside it."""
    aliases = dict(aliases or {})
    runs = df[df["stage"] == stage]
    if runs.empty:
        raise TableError(f"no runs of stage {stage!r}")
    if metric not in runs:
        raise TableError(f"unknown metric {metric!r}")
    columns = sorted({(d, a) for d, a in zip(runs["dataset"], runs["augmentation"])},
                     key=_column_order)
    losses = sorted(set(runs["loss"]), key=_loss_order)
    rows = []
    for (dataset, a) in columns:
        col = runs[(runs["dataset"] == dataset) & (runs["augmentation"] == a)]
        base = run_values(col[col["loss"] == baseline], metric)
        for loss in losses:
            g = col[col["loss"] == loss]
            if not g.empty:
                rows.append(_cell(loss, display_name(loss, aliases.get(loss, ())),
                                  loss == baseline, dataset, a, g, run_values(g, metric),
                                  base or None, alpha))
    cells = pd.DataFrame(rows)
    cells["p_holm"] = None
    for loss, g in cells.groupby("loss", sort=False):
        cells.loc[g.index, "p_holm"] = pd.Series(holm(list(g["p_value"])), index=g.index,
                                                 dtype=object)
    cells["beats_ce"] = (cells["loss"] != baseline) & (cells["delta_vs_ce"] > 0)
    cells["significant"] = cells["beats_ce"] & cells["p_holm"].map(
        lambda p: p is not None and p < alpha)
    best = cells.groupby(["dataset", "augmentation"])["mean"].transform("max")
    cells["best"] = cells["mean"] == best
    return Comparison(stage, metric, cells, losses, columns,
                      {k: list(v) for k, v in aliases.items() if k in losses})


def _cell(loss, display, is_baseline, dataset, a, g, vals, base, alpha) -> dict:
    arr = np.array([vals[s] for s in sorted(vals)])
    nan = float("nan")
    d = stats.delta(vals, base, alpha) if base is not None and vals and not is_baseline \
        else None
    return {"loss": loss, "display": display, "dataset": dataset, "augmentation": a,
            "n": len(arr), "runs": len(g), "diverged": int(g["diverged"].sum()),
            "mean": float(arr.mean()) if len(arr) else nan,
            "std": float(arr.std(ddof=1)) if len(arr) >= 2 else nan,
            "delta_vs_ce": 0.0 if is_baseline else (d.delta if d else nan),
            "ci_low": d.low if d else nan, "ci_high": d.high if d else nan,
            "p_value": d.p if d else None, "test": d.test if d else "",
            "seeds": " ".join(str(s) for s in sorted(g["seed"]))}


def _fmt_cell(row) -> str:
    """A comparison cell in Markdown (``**best**``, ``*`` significant); :func:`booktabs` and
    :func:`html_page` turn the same text into LaTeX and HTML."""
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
    return f"**{text}**" if row["best"] else text


def notes(t: Comparison) -> list[str]:
    """The lines under a comparison table: what the marks mean, the Holm family, the seeds."""
    lines = ["**bold**: best mean of the column. (n): runs; a diverged run (div.) scores 0. "
             "*: beats cross-entropy with p < 0.05 after Holm's correction within the loss's "
             "own cells (the family \"does this loss beat CE?\"); t-test paired over matching "
             "seeds, else Welch's; cells with n < 2 or no variance are untestable (no p)."]
    d = t.detectable()
    if d is None:
        lines.append("Smallest Δ the seeds could detect: no cell is testable.")
    else:
        lines.append(f"Smallest Δ the seeds could detect at α = 0.05 (half-width of the 95 % "
                     f"interval): median {100 * d[1]:.2f} pp over the testable cells "
                     f"(range {100 * d[0]:.2f}–{100 * d[2]:.2f} pp).")
    return lines


def _grid(t: Comparison) -> tuple[list[str], list[list[str]]]:
    index = {(r["loss"], r["dataset"], r["augmentation"]): r for _, r in t.cells.iterrows()}
    wins = t.wins()
    headers = ["loss"] + [f"{d} / {a}" for d, a in t.columns] + ["wins vs CE", "sig. wins"]
    body = []
    for loss in t.losses:
        row = [t.display(loss)] + [_fmt_cell(index.get((loss, d, a))) for d, a in t.columns]
        if loss == BASELINE:
            row += ["—", "—"]
        else:
            row += [str(wins.loc[loss, "wins"]), str(wins.loc[loss, "significant_wins"])]
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
            "ci_low", "ci_high", "p_value", "p_holm", "test", "significant", "best", "runs",
            "diverged", "seeds"]
    return t.cells[cols].to_csv(index=False, lineterminator="\n")


def write_comparison(t: Comparison, prefix: str | Path) -> list[Path]:
    """Write ``prefix.md``, ``.csv``, ``.tex`` and ``.html``; return the paths."""
    return write_formats(prefix, to_markdown(t), to_csv(t), to_latex(t), to_html(t))
