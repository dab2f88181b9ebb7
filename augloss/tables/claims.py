"""The claims table: per stage and loss, does it beat cross-entropy over the stage's cells?

The **primary endpoint** is the pooled Δ over every cell of the stage (a mixed model with a
random effect per cell, :func:`augloss.stats.pooled`) with Holm's correction across the losses
of the stage. Wins / ties / losses, the sign test, the Wilcoxon test and the paper's
"majority" (with its probability under no effect) are secondary.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from augloss import stats
from augloss.tables.comparison import BASELINE, Comparison, power_note, resolution_note
from augloss.tables.render import booktabs, html_page, write_formats

COLUMNS = ["stage", "metric", "loss", "display", "pooled_delta", "pooled_ci_low",
           "pooled_ci_high", "pooled_p", "pooled_p_holm", "tau2", "i2", "pooled_cells",
           "pooled_pairs", "pooled_method", "cells", "wins", "ties", "losses",
           "significant_wins", "significant_harms", "majority", "majority_null_p",
           "mean_delta", "p_sign", "p_wilcoxon"]

CLAIMS_NOTE = (
    "**Primary endpoint** — pooled Δ: the loss's mean difference to cross-entropy over all "
    "cells of the stage, from a linear mixed model of the per-seed paired differences with a "
    "random intercept per cell (statsmodels MixedLM, REML; t with cells - 1 df), with its 95 % "
    "interval; p (Holm): Holm's correction across the losses of the stage. A loss beats "
    "cross-entropy on this stage when its Holm-adjusted pooled p is below 0.05 and its Δ is "
    "positive (‡ marks it; † marks a significant harm). τ²: the between-cell variance of the "
    "true Δ (pp²); I²: its share of one cell's observed Δ variance. Seeds run by only one side "
    "are left out of the pooled test; a diverged run enters it as 0, a large outlier that "
    "widens the interval. The model treats cells as exchangeable; cells of one dataset share "
    "its test set, so read the interval as conditional on these datasets. **Secondary** — "
    "wins / ties / losses: cells whose mean is above / equal to / below cross-entropy's, compared on counts of correct images (a "
    "diverged run scores 0); sig. wins / harms: cells significant after Holm within the loss "
    "(the comparison table's * and †); majority: wins in more than half of the cells, the "
    "paper's claim, with P(chance): its probability when the loss is no different (each "
    "non-tied cell a coin flip; '— (impossible)' when ties leave too few cells); sign test: "
    "exact two-sided binomial test of wins against "
    "losses (ties dropped); Wilcoxon: two-sided signed-rank test of the cell Δs (zero Δs "
    "dropped); — : untestable. The CSV holds accuracies and Δs as fractions (0-1), τ² in "
    "their squared units.")


def claims(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Per stage and loss: the pooled test (primary; :attr:`Comparison.pooled`) and wins,
    ties and losses against CE over the cells with the sign and Wilcoxon tests (secondary,
    :func:`augloss.stats.claim`)."""
    rows = []
    for t in comparisons:
        pooled = t.pooled.set_index("loss") if len(t.pooled) else pd.DataFrame()
        wins = t.wins()
        for loss in t.losses:
            if loss == BASELINE:
                continue
            c = stats.claim(list(t.cells.loc[t.cells["loss"] == loss, "delta_vs_ce"]))
            p = pooled.loc[loss] if loss in pooled.index else None
            rows.append({"stage": t.stage, "metric": t.metric, "loss": loss,
                         "display": t.display(loss),
                         "pooled_delta": p["delta"] if p is not None else math.nan,
                         "pooled_ci_low": p["low"] if p is not None else math.nan,
                         "pooled_ci_high": p["high"] if p is not None else math.nan,
                         "pooled_p": p["p"] if p is not None else None,
                         "pooled_p_holm": p["p_holm"] if p is not None else None,
                         "tau2": p["tau2"] if p is not None else math.nan,
                         "i2": p["i2"] if p is not None else math.nan,
                         "pooled_cells": int(p["cells"]) if p is not None else 0,
                         "pooled_pairs": int(p["pairs"]) if p is not None else 0,
                         "pooled_method": p["method"] if p is not None else stats.UNTESTABLE,
                         "cells": c.cells, "wins": c.wins, "ties": c.ties, "losses": c.losses,
                         "significant_wins": int(wins.loc[loss, "significant_wins"]),
                         "significant_harms": int(wins.loc[loss, "significant_harms"]),
                         "majority": c.majority, "majority_null_p": c.majority_null_p,
                         "mean_delta": c.mean_delta, "p_sign": c.p_sign,
                         "p_wilcoxon": c.p_wilcoxon})
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(row) -> str:
    """The primary endpoint's mark: ‡ beats CE, † worse than CE (Holm-adjusted pooled p <
    0.05), '' otherwise."""
    p = row.pooled_p_holm
    if p is None or (isinstance(p, float) and math.isnan(p)) or p >= stats.ALPHA:
        return ""
    return "‡" if row.pooled_delta > 0 else "†"


def _p(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def _pp(v, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) \
        else f"{100 * v:+.{digits}f}"


def _pooled_cell(r) -> str:
    if isinstance(r.pooled_delta, float) and math.isnan(r.pooled_delta):
        return "—"
    text = _pp(r.pooled_delta)
    if not (isinstance(r.pooled_ci_low, float) and math.isnan(r.pooled_ci_low)):
        text += f" [{_pp(r.pooled_ci_low)}, {_pp(r.pooled_ci_high)}]"
    return text + verdict(r)


def _tau2(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return "0.000" if 1e4 * v < 1e-4 else f"{1e4 * v:.3g}"  # below 1e-4 pp²: zero


def write_claims(df: pd.DataFrame, prefix: str | Path,
                 comparisons: Sequence[Comparison] = ()) -> list[Path]:
    """``claims.{md,csv,tex,html}``: one section per stage; ``comparisons`` (the stages'
    tables) add each stage's resolution and power lines."""
    from tabulate import tabulate

    headers = ["loss", "pooled Δ (pp) [95 % CI]", "p", "p (Holm)", "τ² (pp²)", "I²",
               "cells", "wins", "ties", "losses", "sig. wins", "sig. harms", "majority",
               "P(chance)", "sign test p", "Wilcoxon p"]
    by_stage = {t.stage: t for t in comparisons}
    md, tex, sections = [], [], []
    for stage, g in df.groupby("stage", sort=False):
        body = [[r.display, _pooled_cell(r), _p(r.pooled_p), _p(r.pooled_p_holm), _tau2(r.tau2),
                 "—" if math.isnan(r.i2) else f"{100 * r.i2:.0f} %", r.cells, r.wins, r.ties,
                 r.losses, r.significant_wins, r.significant_harms,
                 "yes" if r.majority else "no",
                 "— (impossible)" if r.majority_null_p is None else _p(r.majority_null_p),
                 _p(r.p_sign),
                 _p(r.p_wilcoxon)] for r in g.itertuples()]
        title = f"Claims, {stage}: does each loss beat cross-entropy ({g['metric'].iloc[0]})?"
        lines = [f"Primary endpoint: the pooled Δ, Holm-adjusted across the {len(g)} losses "
                 f"of this stage (evolved and baselines)." if len(g) > 1 else
                 "Primary endpoint: the pooled Δ; one loss in this stage, so no Holm "
                 "correction."]
        if stage in by_stage:
            lines += [resolution_note(by_stage[stage]), power_note(by_stage[stage])]
        md.append(f"### {title}\n\n"
                  + tabulate(body, headers, tablefmt="github", disable_numparse=True)
                  + "\n\n" + "\n\n".join(lines))
        tex.append(f"% {stage}\n" + booktabs(headers, body))
        sections.append((title, headers, body, lines))
    text = "\n\n".join(md) + f"\n\n{CLAIMS_NOTE}\n"
    if sections:
        sections[-1] = (*sections[-1][:3], [*sections[-1][3], CLAIMS_NOTE])
    return write_formats(prefix, text, df.to_csv(index=False, lineterminator="\n"),
                         "\n".join(tex), html_page("Claims", sections))
