"""The audit trail: one row per table cell with its runs, seeds, config hash, code version,
device, preprocessing and flags (:func:`audit`), written as ``audit.md``, ``audit.csv`` and an
HTML page (:func:`write_audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from augloss.io import atomic_write_text
from augloss.tables.collect import CELL
from augloss.tables.comparison import display_name
from augloss.tables.render import html_page

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
        atomic_write_text(html_path, html_page(title, [(
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
