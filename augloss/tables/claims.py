"""The claims table: per stage and loss, wins / ties / losses against cross-entropy over the
cells, with the sign and Wilcoxon signed-rank tests of the cell Δs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from augloss import stats
from augloss.tables.comparison import BASELINE, Comparison
from augloss.tables.render import booktabs, html_page, write_formats

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
        tex.append(f"% {stage}\n" + booktabs(headers, body))
        sections.append((title, headers, body, []))
    text = "\n\n".join(md) + f"\n\n{CLAIMS_NOTE}\n"
    if sections:
        sections[-1] = (*sections[-1][:3], [CLAIMS_NOTE])
    return write_formats(prefix, text, df.to_csv(index=False, lineterminator="\n"),
                         "\n".join(tex), html_page("Claims", sections))
