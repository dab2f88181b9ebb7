"""Tables against cross-entropy, statistics, plots and the audit trail.

* :func:`collect` reads every ``metrics.json`` (with its ``provenance.json``) into one tidy
  DataFrame, one row per run, and refuses cells whose runs disagree in configuration or code
  version unless ``allow_mixed``.
* :func:`comparison` builds the transfer / fine-tune table: rows are losses (cross-entropy first,
  then baselines, then evolved losses by origin, e.g. ``evolved[cutout]#1``), columns are
  dataset x augmentation, cells are mean +- std of the metric over seeds with ``n``. The best
  mean of a column is bold; ``*`` marks a loss that beats cross-entropy with p < 0.05 after Holm
  correction over all comparisons of the table (paired t-test over matching seeds, Welch's
  t-test where the seeds do not pair). "wins" counts the columns where the loss's mean is above
  cross-entropy's, "sig. wins" those that are also significant.
* :func:`write_comparison` writes Markdown (tabulate, GitHub style), CSV (one row per cell, full
  precision) and LaTeX (booktabs); same inputs give byte-identical files.
* :func:`search_table`, :func:`correlation_table`, the ``plot_*`` functions and :func:`audit`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from augloss import names, stats
from augloss.io import atomic_path, atomic_write_text

BASELINE = "ce"
REQUIRED = ("stage", "dataset", "augmentation", "loss", "seed", "status", "config_hash",
            "code_version")
CELL = ["stage", "dataset", "augmentation", "loss"]


class TableError(ValueError):
    """Inputs that cannot make a trustworthy table; the message names the files."""


# --- collecting ---------------------------------------------------------------------------------

def collect(paths: Iterable[str | Path], allow_mixed: bool = False) -> pd.DataFrame:
    """One row per run from ``metrics.json`` files (or directories searched for them)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise TableError(f"{p}: no such file or directory")
        files.extend(sorted(p.rglob("metrics.json")) if p.is_dir() else [p])
    if not files:
        raise TableError("no metrics.json files found")
    rows = []
    for f in sorted(set(files)):
        try:
            m = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise TableError(f"{f}: unreadable metrics file ({exc})") from exc
        missing = [k for k in REQUIRED if k not in m]
        if missing:
            raise TableError(f"{f}: missing key(s) {', '.join(missing)}")
        prov_path = f.with_name("provenance.json")
        prov = {}
        if prov_path.exists():
            try:
                prov = json.loads(prov_path.read_text())
            except ValueError as exc:
                raise TableError(f"{prov_path}: unreadable ({exc})") from exc
        rows.append({
            **{k: m[k] for k in REQUIRED}, "expression": m.get("expression"),
            "loss_key": m.get("loss_key"), "model": m.get("model"),
            "test_acc": m.get("test_acc"), "final_val_acc": m.get("final_val_acc"),
            "best_val_acc": m.get("best_val_acc"), "diverged": bool(m.get("diverged")),
            "run_dir": str(f.parent), "git_commit": prov.get("git_commit", ""),
            "git_dirty": prov.get("git_dirty"), "device": prov.get("device", ""),
            "gpu_name": prov.get("gpu_name", ""),
            "preprocessing": describe_preprocessing(m.get("preprocessing")),
        })
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype(int)
    if not allow_mixed:
        check_consistency(df)
    return df.sort_values(CELL + ["seed", "run_dir"], kind="stable").reset_index(drop=True)


def describe_preprocessing(pre: dict | None) -> str:
    """One line for a fine-tune run's recorded preprocessing ('' for other stages)."""
    if not pre:
        return ""

    def triple(v):
        return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"

    source = f"file {pre['weights_file']} with {pre['tag']}'s config" if pre.get("weights_file") \
        else (pre.get("tag") or "?")
    over = ", ".join(pre.get("overridden") or []) or "none"
    return (f"{source}: {pre['image_size']} px, {pre['interpolation']}, crop_pct "
            f"{pre['crop_pct']:.4g}, mean {triple(pre['mean'])}, std {triple(pre['std'])}; "
            f"overridden by the config: {over}")


def check_consistency(df: pd.DataFrame) -> None:
    """Raise :class:`TableError` naming the files of any cell with mixed configs or code."""
    problems = []
    for cell, g in df.groupby(CELL, sort=True):
        for col, what in (("config_hash", "configurations"), ("code_version", "code versions"),
                          ("git_commit", "git commits")):
            values = sorted(set(g[col].astype(str)))
            if len(values) > 1:
                files = ", ".join(f"{r}/metrics.json ({v})" for r, v in zip(g["run_dir"], g[col]))
                problems.append(f"cell {'/'.join(map(str, cell))} mixes {what}: {files}")
        dup = g["seed"][g["seed"].duplicated()]
        if len(dup):
            files = ", ".join(f"{r}/metrics.json" for r in g["run_dir"][g["seed"].isin(dup)])
            problems.append(f"cell {'/'.join(map(str, cell))} has seed(s) "
                            f"{sorted(set(dup))} more than once: {files}")
    if problems:
        raise TableError("inconsistent runs (pass allow_mixed=True / --allow-mixed to accept):\n"
                         + "\n".join(problems))


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
    """A comparison cell in Markdown (``**best**``, ``*`` significant); :func:`_booktabs` and
    :func:`_html_page` turn the same text into LaTeX and HTML."""
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
    return _booktabs(*_grid(t))


def to_html(t: Comparison) -> str:
    return _html_page(_title(t), [(_title(t), *_grid(t), notes(t))])


# --- LaTeX and HTML from the Markdown cells ----------------------------------------------------

#: Unicode in table cells and the LaTeX for it (tabulate escapes only LaTeX's special characters).
_TEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "ρ": r"$\rho$", "τ": r"$\tau$", "—": "---",
                "–": "--", "≥": r"$\geq$", "≤": r"$\leq$"}


def _markup(cell) -> tuple[str, bool, bool, bool]:
    """``(text, bold, code, significant)`` of a Markdown cell: ``**x**``, `` `x` ``, ``x*``."""
    text = str(cell)
    bold = len(text) > 4 and text.startswith("**") and text.endswith("**")
    if bold:
        text = text[2:-2]
    code = len(text) > 2 and text.startswith("`") and text.endswith("`")
    if code:
        text = text[1:-1]
    sig = not code and text.endswith("*") and not text.endswith("**")
    return (text[:-1] if sig else text), bold, code, sig


def _booktabs(headers: list[str], body: list[list], raw: dict[int, list[str]] | None = None
              ) -> str:
    """A LaTeX booktabs table through tabulate, which escapes every special character of the
    cells; bold, significance marks and the symbols in :data:`_TEX_SYMBOLS` become LaTeX.
    ``raw`` maps a column to LaTeX that goes in unescaped (a loss formula, as ``$...$``)."""
    from tabulate import tabulate

    marks = {"@@B@@": r"\textbf{", "@@E@@": "}", "@@S@@": "$^{*}$"}
    raw_cells: dict[str, str] = {}
    rows = []
    for i, row in enumerate(body):
        out = []
        for j, cell in enumerate(row):
            if raw and j in raw:
                key = f"@@R{len(raw_cells)}@@"
                raw_cells[key] = raw[j][i]
                out.append(key)
                continue
            text, bold, _, sig = _markup(cell)
            text += "@@S@@" if sig else ""
            out.append(f"@@B@@{text}@@E@@" if bold else text)
        rows.append(out)
    grid = tabulate(rows, headers, tablefmt="latex_booktabs", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))
    for key, value in {**marks, **raw_cells}.items():
        grid = grid.replace(key, value)
    for char, tex in _TEX_SYMBOLS.items():
        grid = grid.replace(char, tex)
    return grid + "\n"


def _html_cell(cell) -> str:
    import html

    text, bold, code, sig = _markup(cell)
    text = html.escape(text)
    text = f"<code>{text}</code>" if code else text
    text += "<sup>*</sup>" if sig else ""
    return f"<b>{text}</b>" if bold else text


_CSS = ("body{font-family:sans-serif;font-size:14px;margin:1em}"
        "table{border-collapse:collapse;margin:.5em 0 1em}"
        "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right;"
        "white-space:nowrap}th:first-child,td:first-child{text-align:left}"
        "th{border-bottom:2px solid #444}p{max-width:60em}code{font-size:13px}")


def _html_page(title: str, sections: Sequence[tuple[str, list[str], list[list], Sequence[str]]]
               ) -> str:
    """A self-contained HTML page (what ``snakemake --report`` shows inline): per section a
    heading, the table (cells as in the Markdown, bold and code rendered) and its notes."""
    import html

    from tabulate import tabulate

    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body>"]
    for heading, headers, body, notes_ in sections:
        grid = tabulate([[_html_cell(c) for c in row] for row in body],
                        [html.escape(h) for h in headers], tablefmt="unsafehtml",
                        disable_numparse=True)
        parts.append(f"<h3>{html.escape(heading)}</h3>\n{grid}")
        parts += [f"<p>{_inline_html(n)}</p>" for n in notes_]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    """Escape ``text`` and render its inline Markdown (``**bold**``, `` `code` ``)."""
    import html
    import re

    out = html.escape(str(text))
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def to_csv(t: Comparison) -> str:
    cols = ["loss", "display", "dataset", "augmentation", "n", "mean", "std", "delta_vs_ce",
            "ci_low", "ci_high", "p_value", "p_holm", "test", "significant", "best", "runs",
            "diverged", "seeds"]
    return t.cells[cols].to_csv(index=False, lineterminator="\n")


def write_comparison(t: Comparison, prefix: str | Path) -> list[Path]:
    """Write ``prefix.md``, ``.csv``, ``.tex`` and ``.html``; return the paths."""
    return _write_formats(prefix, to_markdown(t), to_csv(t), to_latex(t), to_html(t))


def _write_formats(prefix: str | Path, md: str, csv: str, tex: str, html: str) -> list[Path]:
    """Write ``prefix.md``, ``.csv``, ``.tex`` and ``.html`` atomically; return the paths."""
    prefix = Path(prefix)
    paths = []
    for suffix, text in ((".md", md), (".csv", csv), (".tex", tex), (".html", html)):
        path = prefix.with_name(prefix.name + suffix)
        atomic_write_text(path, text)
        paths.append(path)
    return paths


# --- the claims table -------------------------------------------------------------------------

CLAIMS_NOTE = (
    "wins / ties / losses: cells whose mean is above / equal to / below cross-entropy's "
    "(a diverged run scores 0). majority: wins in more than half of the cells, the paper's "
    "claim \"outperforms cross-entropy in the majority of experiments\". sign test: exact "
    "two-sided binomial test of wins against losses (ties dropped); Wilcoxon: two-sided "
    "signed-rank test of the cell Δs (zero Δs dropped); — : untestable (no non-tied cell).")


def claims(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Per stage and loss: wins, ties and losses against CE over the cells, and the sign and
    Wilcoxon signed-rank tests of the cell Δs (:func:`augloss.stats.claim`)."""
    rows = []
    for t in comparisons:
        for loss in t.losses:
            if loss == BASELINE:
                continue
            c = stats.claim(list(t.cells.loc[t.cells["loss"] == loss, "delta_vs_ce"]))
            rows.append({"stage": t.stage, "metric": t.metric, "loss": loss,
                         "display": t.display(loss), "cells": c.cells, "wins": c.wins,
                         "ties": c.ties, "losses": c.losses, "majority": c.majority,
                         "mean_delta": c.mean_delta, "p_sign": c.p_sign,
                         "p_wilcoxon": c.p_wilcoxon})
    return pd.DataFrame(rows, columns=["stage", "metric", "loss", "display", "cells", "wins",
                                       "ties", "losses", "majority", "mean_delta", "p_sign",
                                       "p_wilcoxon"])


def _p(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def write_claims(df: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``claims.{md,csv,tex,html}``: one section per stage."""
    from tabulate import tabulate

    headers = ["loss", "cells", "wins", "ties", "losses", "majority", "mean Δ (pp)",
               "sign test p", "Wilcoxon p"]
    md, tex, sections = [], [], []
    for stage, g in df.groupby("stage", sort=False):
        body = [[r.display, r.cells, r.wins, r.ties, r.losses, "yes" if r.majority else "no",
                 f"{100 * r.mean_delta:+.2f}" if not math.isnan(r.mean_delta) else "—",
                 _p(r.p_sign), _p(r.p_wilcoxon)] for r in g.itertuples()]
        title = f"Claims, {stage}: does each loss beat cross-entropy ({g['metric'].iloc[0]})?"
        md.append(f"### {title}\n\n"
                  + tabulate(body, headers, tablefmt="github", disable_numparse=True))
        tex.append(f"% {stage}\n" + _booktabs(headers, body))
        sections.append((title, headers, body, []))
    text = "\n\n".join(md) + f"\n\n{CLAIMS_NOTE}\n"
    if sections:
        sections[-1] = (*sections[-1][:3], [CLAIMS_NOTE])
    return _write_formats(prefix, text, df.to_csv(index=False, lineterminator="\n"),
                          "\n".join(tex), _html_page("Claims", sections))


# --- search and correlation tables --------------------------------------------------------------

def _search_outputs(d: str | Path) -> tuple[dict, dict]:
    d = Path(d)
    try:
        return (json.loads((d / "best.json").read_text()),
                json.loads((d / "summary.json").read_text()))
    except (OSError, ValueError) as exc:
        raise TableError(f"{d}: unreadable search output ({exc})") from exc


def search_table(search_dirs: dict[str, str | Path],
                 random_dirs: dict[str, str | Path] | None = None) -> pd.DataFrame:
    """Per augmentation: best expression (text and LaTeX), fitness, CE fitness, evaluations and
    rejections, from each search's best.json / summary.json, and the random-search baseline's
    best fitness where it ran. The signal against the noise: the winner's and CE's mean
    fitness over ``noise_seeds`` seeds, ``fitness_noise`` (CE's sd over those seeds) and
    ``candidate_sd`` (the sd of the fitness among the search's scored candidates). Cache hits
    stay out (they differ between a fresh and a resumed search; see cache_stats.json), so the
    table is reproducible."""
    rows = []
    for a in sorted(search_dirs, key=lambda x: (names.technique_order(x), x)):
        best, summary = _search_outputs(search_dirs[a])
        top = best["losses"][0] if best["losses"] else {}
        noise = summary.get("noise") or {}
        spread = summary.get("candidates") or {}
        row = {"augmentation": a, "seed": summary["seed"],
               "best_expression": top.get("expression", ""),
               "best_latex": top.get("latex", ""), "fitness": top.get("fitness"),
               "ce_fitness": best["reference"]["ce"]["fitness"],
               "noise_seeds": len(noise.get("seeds", [])) or None,
               "winner_mean": noise.get("winner_mean"), "winner_sd": noise.get("winner_sd"),
               "ce_mean": noise.get("ce_mean"), "fitness_noise": noise.get("fitness_noise"),
               "candidates": spread.get("n"), "candidate_sd": spread.get("sd"),
               "children": summary["children"], "evaluations": summary["evaluations"],
               "rejections": sum(summary["rejections"].values())}
        if random_dirs:
            r_best = _search_outputs(random_dirs[a])[0]["losses"] if a in random_dirs else []
            row["random_fitness"] = r_best[0]["fitness"] if r_best else None
        rows.append(row)
    return pd.DataFrame(rows)


def write_search_table(df: pd.DataFrame, prefix: str | Path) -> list[Path]:
    from tabulate import tabulate

    prefix = Path(prefix)
    random = "random_fitness" in df
    noisy = df["noise_seeds"].notna().any() if "noise_seeds" in df else False
    md_rows = [[r.augmentation, f"`{r.best_expression}`", _pct(r.fitness), _pct(r.ce_fitness)]
               + ([_pm(r.winner_mean, r.winner_sd), _pm(r.ce_mean, r.fitness_noise)]
                  if noisy else [])
               + [_pct(r.fitness_noise), _pct(r.candidate_sd)]
               + ([_pct(r.random_fitness)] if random else []) + [r.evaluations, r.rejections]
               for r in df.itertuples()]
    seeds = int(df["noise_seeds"].max()) if noisy else 0
    headers = (["augmentation", "best loss", "fitness", "CE fitness"]
               + ([f"winner ({seeds} seeds)", f"CE ({seeds} seeds)"] if noisy else [])
               + ["fitness_noise", "candidate sd"]
               + (["random search"] if random else []) + ["evaluations", "rejections"])
    title = "Search: best evolved loss per augmentation (surrogate validation accuracy, %)"
    note = SEARCH_NOTE.format(seeds=seeds or "several")
    md = (f"### {title}\n\n"
          + tabulate(md_rows, headers, tablefmt="github", disable_numparse=True)
          + "\n\n" + note + "\n")
    # LaTeX: the loss as a formula, unescaped; every other cell escaped by tabulate.
    tex = _booktabs(headers, md_rows, raw={1: [f"${r.best_latex}$" for r in df.itertuples()]})
    return _write_formats(prefix, md, df.to_csv(index=False, lineterminator="\n"), tex,
                          _html_page(title, [(title, headers, md_rows, [note])]))


def _pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def _pm(mean, sd) -> str:
    return "—" if _pct(mean) == "—" else f"{_pct(mean)} ± {_pct(sd)}"


SEARCH_NOTE = ("fitness, CE fitness: the search seed's. winner / CE ({seeds} seeds): mean ± sd "
               "of the winner and of cross-entropy scored again under {seeds} seeds. "
               "fitness_noise: cross-entropy's sd over those seeds, how far one loss's fitness "
               "moves with the seed alone; candidate sd: the sd of the fitness among the "
               "search's scored candidates. A winner whose lead over CE is within a few "
               "fitness_noise is not distinguishable from it.")


def correlation_table(study: dict) -> pd.DataFrame:
    rows = []
    for pair in sorted(study["spearman"], key=lambda p: [
            names.technique_order(x) for x in p.split("|")]):
        a, b = pair.split("|")
        s, k = study["spearman"][pair], study["kendall"][pair]
        rows.append({"augmentation_a": a, "augmentation_b": b, "spearman_rho": s["rho"],
                     "spearman_p": s["p"], "kendall_tau": k["tau"], "kendall_p": k["p"],
                     "n_losses": len(study["losses"])})
    return pd.DataFrame(rows)


def write_correlation_table(df: pd.DataFrame, prefix: str | Path) -> list[Path]:
    from tabulate import tabulate

    prefix = Path(prefix)

    def f(v):
        return "—" if v is None or pd.isna(v) else f"{v:.3f}"

    body = [[r.augmentation_a, r.augmentation_b, f(r.spearman_rho), f(r.spearman_p),
             f(r.kendall_tau), f(r.kendall_p)] for r in df.itertuples()]
    heads = ["a", "b", "Spearman ρ", "p", "Kendall τ", "p"]
    n = int(df["n_losses"].iloc[0]) if len(df) else 0
    title = f"Cross-augmentation rank correlation of surrogate fitness ({n} losses)"
    md = (f"### {title}\n\n"
          + tabulate(body, heads, tablefmt="github", disable_numparse=True) + "\n")
    return _write_formats(prefix, md, df.to_csv(index=False, lineterminator="\n"),
                          _booktabs(heads, body), _html_page(title, [(title, heads, body, [])]))


# --- plots -------------------------------------------------------------------------------------------

def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "augloss", "figure.dpi": 100})
    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def learning_curves(metrics_files: Iterable[str | Path], stage: str) -> pd.DataFrame:
    """Validation accuracy per epoch of every run of ``stage``: one row per (run, epoch)."""
    rows = []
    for f in sorted(map(str, metrics_files)):
        m = json.loads(Path(f).read_text())
        if m.get("stage") != stage:
            continue
        for epoch, acc in enumerate(m.get("curves", {}).get("val_acc", []), start=1):
            rows.append({"dataset": m["dataset"], "augmentation": m["augmentation"],
                         "loss": m["loss"], "seed": m["seed"], "epoch": epoch, "val_acc": acc})
    return pd.DataFrame(rows, columns=["dataset", "augmentation", "loss", "seed", "epoch",
                                       "val_acc"])


def plot_learning_curves(metrics_files: Iterable[str | Path], stage: str, path: str | Path,
                         aliases: dict[str, list[str]] | None = None) -> Path:
    """One panel per (dataset, augmentation): each loss's validation accuracy per epoch, mean
    over seeds (the band spans the seeds' min to max); cross-entropy drawn black."""
    plt = _figure()
    curves = learning_curves(metrics_files, stage)
    if curves.empty:
        raise TableError(f"no {stage} run has a validation curve")
    datasets = sorted(curves["dataset"].unique())
    augs = sorted(curves["augmentation"].unique(), key=names.technique_order)
    losses = sorted(curves["loss"].unique(), key=lambda n: (n != BASELINE, n))
    fig, axes = plt.subplots(len(datasets), len(augs), squeeze=False, sharey=True,
                             figsize=(2.8 * len(augs) + 1.5, 2.4 * len(datasets) + 0.6))
    colours = plt.get_cmap("tab10")
    for i, d in enumerate(datasets):
        for j, a in enumerate(augs):
            ax = axes[i][j]
            cell = curves[(curves["dataset"] == d) & (curves["augmentation"] == a)]
            for k, loss in enumerate(losses):
                g = cell[cell["loss"] == loss].groupby("epoch")["val_acc"]
                if not len(g):
                    continue
                mean, lo, hi = (100 * g.mean(), 100 * g.min(), 100 * g.max())
                colour = "black" if loss == BASELINE else colours(k % 10)
                ax.plot(mean.index, mean.values, color=colour, lw=1.4 if loss == BASELINE
                        else 1.0, label=display_name(loss, (aliases or {}).get(loss, ())))
                ax.fill_between(mean.index, lo.values, hi.values, color=colour, alpha=0.12,
                                lw=0)
            ax.set_title(f"{d} / {a}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(datasets) - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel("validation accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{stage}: learning curves (mean over seeds; band: min-max)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def ce_fitness(search_dir: str | Path) -> float | None:
    """Cross-entropy's fitness under a search's own fitness (its reference line)."""
    return json.loads((Path(search_dir) / "summary.json").read_text()).get("ce_fitness")


def plot_evolution(search_dirs: dict[str, str | Path], path: str | Path,
                   random_dirs: dict[str, str | Path] | None = None) -> Path:
    """Best-so-far (monotone) and population median fitness vs children evaluated, one colour
    per augmentation, from the scored population before the first child (0); cross-entropy's
    fitness as a dash-dot reference line; the random-search baseline's best-so-far dotted
    where it ran."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.2))

    def curve(d):
        c = json.loads((Path(d) / "summary.json").read_text())["curve"]
        return [p["children"] for p in c], [100 * p.get("best_so_far", p["best"]) for p in c], c

    for i, a in enumerate(sorted(search_dirs, key=names.technique_order)):
        x, best, points = curve(search_dirs[a])
        colour = f"C{i}"
        ax.plot(x, best, "-o", color=colour, label=f"{a} best so far", markersize=3)
        ax.plot(x, [100 * p["median"] for p in points], "--", color=colour,
                label=f"{a} median")
        ce = ce_fitness(search_dirs[a])
        if ce is not None:
            ax.axhline(100 * ce, color=colour, ls="-.", lw=1, alpha=0.7,
                       label=f"{a} cross-entropy")
        if random_dirs and a in random_dirs:
            rx, rbest, _ = curve(random_dirs[a])
            ax.plot(rx, rbest, ":", color=colour, lw=2, label=f"{a} random search")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("children evaluated")
    ax.set_ylabel("surrogate validation accuracy (%)")
    ax.set_title("Regularized evolution per augmentation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_delta_heatmap(t: Comparison, path: str | Path) -> Path:
    """Accuracy difference to cross-entropy (percentage points), loss x dataset/augmentation."""
    plt = _figure()
    losses = [l for l in t.losses if l != BASELINE]
    m = np.full((max(1, len(losses)), len(t.columns)), np.nan)
    sig = np.zeros_like(m, dtype=bool)
    for _, r in t.cells.iterrows():
        if r["loss"] == BASELINE:
            continue
        i, j = losses.index(r["loss"]), t.columns.index((r["dataset"], r["augmentation"]))
        m[i, j], sig[i, j] = 100 * r["delta_vs_ce"], r["significant"]
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * len(t.columns), 1.5 + 0.45 * len(m)))
    lim = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
    im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                dark = abs(m[i, j]) > 0.6 * lim
                ax.text(j, i, f"{m[i, j]:+.2f}{'*' if sig[i, j] else ''}", ha="center",
                        va="center", fontsize=8, color="w" if dark else "k")
    ax.set_xticks(range(len(t.columns)), [f"{d}\n{a}" for d, a in t.columns], fontsize=8)
    ax.set_yticks(range(len(losses)), [t.display(l) for l in losses], fontsize=8)
    fig.colorbar(im, ax=ax, label="Δ accuracy vs CE (pp)")
    ax.set_title(f"{t.stage}: {t.metric} minus cross-entropy\n(* significant after Holm)",
                 fontsize=10)
    return _save(fig, path)


def plot_correlation(study: dict, path: str | Path) -> Path:
    """Spearman rank correlation between augmentations (surrogate fitness of shared losses)."""
    plt = _figure()
    augs = study["augmentations"]
    m = np.eye(len(augs))
    for pair, v in study["spearman"].items():
        a, b = pair.split("|")
        i, j = augs.index(a), augs.index(b)
        m[i, j] = m[j, i] = np.nan if v["rho"] is None else v["rho"]
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * len(augs), 1.5 + 0.8 * len(augs)))
    im = ax.imshow(m, cmap="viridis", vmin=-1, vmax=1)
    for i in range(len(augs)):
        for j in range(len(augs)):
            ax.text(j, i, "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center",
                    va="center", color="k" if np.isnan(m[i, j]) or m[i, j] >= 0.5 else "w")
    ax.set_xticks(range(len(augs)), augs)
    ax.set_yticks(range(len(augs)), augs)
    fig.colorbar(im, ax=ax, label="Spearman ρ")
    ax.set_title(f"Rank correlation of surrogate fitness\nbetween augmentations "
                 f"({len(study['losses'])} losses)", fontsize=10)
    return _save(fig, path)


def plot_probe_curves(expressions: dict[str, str], path: str | Path) -> Path:
    """Normalised loss on the 2-class integrity probe vs the wrong-class probability."""
    from augloss import losses as L

    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    _, p = L.probe()
    q = p[:, 0].numpy()
    items = [("ce", L.REGISTRY["ce"])] + [(k, v) for k, v in expressions.items() if k != "ce"]
    for i, (name, text) in enumerate(items):
        r = L.integrity(L.parse(text))
        ph = r.phenotype if r.phenotype.size == q.size else np.full_like(q, np.nan)
        ax.plot(q, ph, color="k" if name == "ce" else f"C{i}", lw=2.2 if name == "ce" else 1.4,
                label=f"{display_name(name)}: {text}"[:70])
    ax.set_xlabel("probability of the wrong class (q)")
    ax.set_ylabel("normalised loss")
    ax.set_title("Winning losses on the 2-class probe")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


# --- audit ---------------------------------------------------------------------------------------------

def audit(df: pd.DataFrame, expected_seeds: dict[str, Sequence[int]] | None = None,
          aliases: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per table cell: its runs, seeds, config hash, code version, device, and flags
    (``aliases``: other names of a trained loss, as in the tables)."""
    aliases = aliases or {}
    rows = []
    for cell, g in df.groupby(CELL, sort=True):
        stage = cell[0]
        seeds = sorted(int(s) for s in g["seed"])
        flags = []
        if expected_seeds and stage in expected_seeds:
            missing = sorted(set(expected_seeds[stage]) - set(seeds))
            if missing:
                flags.append(f"missing seeds {missing}")
        if g["diverged"].any():
            flags.append(f"{int(g['diverged'].sum())} diverged run(s): "
                         + ", ".join(g["run_dir"][g["diverged"]]))
        other = g[(g["status"] != "completed") & ~g["diverged"]]
        if len(other):
            flags.append("status " + ", ".join(f"{s} ({r})" for s, r in
                                                 zip(other["status"], other["run_dir"])))
        for col, what in (("code_version", "mixed code versions"),
                          ("git_commit", "mixed git commits"),
                          ("config_hash", "mixed configurations"),
                          ("preprocessing", "mixed preprocessing")):
            if len(set(g[col].astype(str))) > 1:
                flags.append(what)
        if g["git_dirty"].fillna(False).astype(bool).any():
            flags.append("uncommitted changes in the code")
        rows.append({"stage": stage, "dataset": cell[1], "augmentation": cell[2],
                     "loss": cell[3], "display": display_name(cell[3], aliases.get(cell[3], ())),
                     "n_runs": len(g), "seeds": " ".join(map(str, seeds)),
                     "config_hash": " ".join(sorted(set(g["config_hash"].astype(str)))),
                     "code_version": " ".join(sorted(set(g["code_version"].astype(str)))),
                     "git_commit": " ".join(sorted(set(g["git_commit"].astype(str)))),
                     "device": " ".join(sorted(set(
                         (g["device"] + g["gpu_name"].map(lambda x: f" ({x})" if x else ""))
                         .astype(str)))),
                     "preprocessing": " | ".join(sorted(set(g["preprocessing"].astype(str)))),
                     "run_dirs": " ".join(g["run_dir"]), "flags": "; ".join(flags)})
    return pd.DataFrame(rows)


AUDIT_COLUMNS = [("stage", "stage"), ("dataset", "dataset"), ("augmentation", "augmentation"),
                 ("display", "loss"), ("seeds", "seeds"), ("n_runs", "runs"),
                 ("config_hash", "config hash"), ("code_version", "code"),
                 ("git_commit", "git commit"), ("device", "device"),
                 ("preprocessing", "preprocessing"), ("flags", "flags")]


def write_audit(a: pd.DataFrame, md_path: str | Path, csv_path: str | Path,
                html_path: str | Path | None = None) -> None:
    """``audit.md`` (a section per cell), ``audit.csv`` and, given ``html_path``, an HTML table
    (one row per cell, flagged cells first) for the report."""
    atomic_write_text(csv_path, a.to_csv(index=False, lineterminator="\n"))
    flagged = int((a["flags"] != "").sum()) if len(a) else 0
    if html_path is not None:
        rows = a.sort_values("flags", key=lambda f: f == "", kind="stable") if len(a) else a
        body = [[f"**{v}**" if col == "flags" and v else str(v) for col, _ in AUDIT_COLUMNS
                 for v in [getattr(r, col)]] for r in rows.itertuples()]
        title = "Audit: where every number comes from"
        atomic_write_text(html_path, _html_page(title, [(
            title, [h for _, h in AUDIT_COLUMNS], body,
            [f"{len(a)} table cells; {flagged} flagged. Each cell's run directories are in "
             "audit.csv (run_dirs) and audit.md."])]))
    lines = ["# Audit: where every number comes from", "",
             f"{len(a)} table cells; {flagged} flagged.", ""]
    for r in a.itertuples():
        lines.append(f"## {r.stage} / {r.dataset} / {r.augmentation} / {r.display}")
        lines.append("")
        lines.append(f"- seeds: {r.seeds} ({r.n_runs} runs)")
        lines.append(f"- config hash: `{r.config_hash}`; code: {r.code_version} "
                     f"(git {r.git_commit or 'unknown'})")
        lines.append(f"- device: {r.device or 'unknown'}")
        if r.preprocessing:
            lines.append(f"- preprocessing: {r.preprocessing}")
        lines.append(f"- runs: {', '.join(f'`{d}`' for d in r.run_dirs.split())}")
        lines.append(f"- **flags: {r.flags}**" if r.flags else "- flags: none")
        lines.append("")
    atomic_write_text(md_path, "\n".join(lines))
