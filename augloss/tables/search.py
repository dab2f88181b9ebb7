"""The search table (best evolved loss per augmentation, the fitness against the noise, the
random-search baseline) and the cross-augmentation rank correlation table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from augloss import names
from augloss.tables.collect import TableError
from augloss.tables.render import booktabs, html_page, write_formats

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
    tex = booktabs(headers, md_rows, raw={1: [f"${r.best_latex}$" for r in df.itertuples()]})
    return write_formats(prefix, md, df.to_csv(index=False, lineterminator="\n"), tex,
                         html_page(title, [(title, headers, md_rows, [note])]))


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
    return write_formats(prefix, md, df.to_csv(index=False, lineterminator="\n"),
                         booktabs(heads, body), html_page(title, [(title, heads, body, [])]))
