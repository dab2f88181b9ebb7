"""Plots (PNG): learning curves, the search's evolution, the Δ heatmap against cross-entropy,
the rank correlation between augmentations and the losses on the integrity probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from augloss import names
from augloss.io import atomic_path
from augloss.tables.collect import TableError
from augloss.tables.comparison import BASELINE, Comparison, display_name

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
    """Validation and training accuracy per epoch of every run of ``stage``: one row per (run,
    epoch); a run without validation (``train_split: trainval``) has NaN validation accuracy."""
    rows = []
    for f in sorted(map(str, metrics_files)):
        m = json.loads(Path(f).read_text())
        if m.get("stage") != stage:
            continue
        curves = m.get("curves", {})
        train = curves.get("train_acc", [])
        for epoch, acc in enumerate(curves.get("val_acc", []), start=1):
            rows.append({"dataset": m["dataset"], "augmentation": m["augmentation"],
                         "loss": m["loss"], "seed": m["seed"], "epoch": epoch, "val_acc": acc,
                         "train_acc": train[epoch - 1] if epoch <= len(train) else None})
    out = pd.DataFrame(rows, columns=["dataset", "augmentation", "loss", "seed", "epoch",
                                      "val_acc", "train_acc"])
    for col in ("val_acc", "train_acc"):  # JSON null (no validation set) -> NaN
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


def curve_column(curves: pd.DataFrame) -> tuple[str, str]:
    """The column a learning-curve plot draws and its label: validation accuracy, or training
    accuracy where no run of the stage has a validation set (``train_split: trainval``)."""
    if curves["val_acc"].notna().any():
        return "val_acc", "validation accuracy"
    return "train_acc", "training accuracy (no validation set: train_split trainval)"


def plot_learning_curves(metrics_files: Iterable[str | Path], stage: str, path: str | Path,
                         aliases: dict[str, list[str]] | None = None) -> Path:
    """One panel per (dataset, augmentation): each loss's validation accuracy per epoch, mean
    over seeds (the band spans the seeds' min to max); cross-entropy drawn black. A stage
    whose runs have no validation set (``train_split: trainval``) plots training accuracy,
    and says so."""
    plt = _figure()
    curves = learning_curves(metrics_files, stage)
    if curves.empty:
        raise TableError(f"no {stage} run has a learning curve")
    column, what = curve_column(curves)
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
                g = cell[cell["loss"] == loss].groupby("epoch")[column]
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
                ax.set_ylabel(what.split(" (")[0] + " (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{stage}: {what} (mean over seeds; band: min-max)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_evolution(search_dirs: dict[str, str | Path], path: str | Path,
                   random_dirs: dict[str, str | Path] | None = None) -> Path:
    """One panel per augmentation: best-so-far (monotone) and population median fitness vs
    children evaluated, from the scored population before the first child (0); the
    random-search baseline's best-so-far dotted where it ran. Cross-entropy is a grey band of
    its fresh-seed scores (``summary["noise"]["ce"]``: mean line, band mean ± sd) or, without
    that measurement, a dash-dot line at its fitness under the search seed.

    The two are not alike: the best-so-far line is a maximum over many noisy single runs on
    the selection seeds (optimistic, the winner's curse), the band one loss's single runs on
    fresh seeds; the legend says so, since the line sits higher than a fresh measurement of
    the same loss would."""
    best_so_far_label = "best so far: max over many noisy single runs on selection seeds"
    legend_title = ("best-so-far lines: maxima over noisy draws on selection seeds, above what\n"
                    "a fresh run of the same loss scores (grey band: single runs, fresh seeds)")
    plt = _figure()
    augs = sorted(search_dirs, key=lambda x: (names.technique_order(x), x))
    fig, axes = plt.subplots(1, len(augs), squeeze=False, sharey=False,
                             figsize=(3.2 * len(augs) + 0.8, 3.4))

    def curve(d):
        c = json.loads((Path(d) / "summary.json").read_text())["curve"]
        return [p["children"] for p in c], [100 * p.get("best_so_far", p["best"]) for p in c], c

    from matplotlib.ticker import MaxNLocator

    for j, a in enumerate(augs):
        ax = axes[0][j]
        summary = json.loads((Path(search_dirs[a]) / "summary.json").read_text())
        x, best, points = curve(search_dirs[a])
        ax.plot(x, best, "-o", color="C0", markersize=3,
                label=best_so_far_label)
        ax.plot(x, [100 * p["median"] for p in points], "--", color="C0",
                label="population median")
        scores = (summary.get("noise") or {}).get("ce") or []
        if len(scores) >= 2:
            mean, sd = 100 * float(np.mean(scores)), 100 * float(np.std(scores, ddof=1))
            ax.axhspan(mean - sd, mean + sd, color="0.5", alpha=0.25, lw=0,
                       label=f"cross-entropy, {len(scores)} fresh seeds (mean ± sd)")
            ax.axhline(mean, color="0.3", lw=1)
        elif summary.get("ce_fitness") is not None:
            ax.axhline(100 * summary["ce_fitness"], color="0.3", ls="-.", lw=1,
                       label="cross-entropy (search seed)")
        if random_dirs and a in random_dirs:
            rx, rbest, _ = curve(random_dirs[a])
            ax.plot(rx, rbest, ":", color="C1", lw=2,
                    label="random search, best so far (same: max over noisy runs)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(a, fontsize=9)
        ax.set_xlabel("children evaluated")
        ax.grid(alpha=0.3)
        if j == 0:
            ax.set_ylabel("surrogate validation accuracy (%)")
    handles, labels = {}, []
    for ax in axes[0]:  # one legend entry per kind of line, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = h
                labels.append(label)
    fig.legend([handles[label] for label in labels], labels, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=min(2, len(labels)), fontsize=7,
               title=legend_title, title_fontsize=7)
    fig.suptitle("Regularized evolution per augmentation", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_delta_heatmap(t: Comparison, path: str | Path) -> Path:
    """Accuracy difference to cross-entropy (percentage points), loss x dataset/augmentation."""
    plt = _figure()
    losses = [l for l in t.losses if l != BASELINE]
    m = np.full((max(1, len(losses)), len(t.columns)), np.nan)
    mark = np.full(m.shape, "", dtype=object)
    for _, r in t.cells.iterrows():
        if r["loss"] == BASELINE:
            continue
        i, j = losses.index(r["loss"]), t.columns.index((r["dataset"], r["augmentation"]))
        m[i, j] = 100 * r["delta_vs_ce"]  # exactly 0 for a tie (counts compared)
        mark[i, j] = "*" if r["significant"] else "†" if r["significant_harm"] else ""
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * len(t.columns), 1.5 + 0.45 * len(m)))
    lim = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
    im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                dark = abs(m[i, j]) > 0.6 * lim
                text = "0.00 (tie)" if m[i, j] == 0 else f"{m[i, j]:+.2f}"
                ax.text(j, i, text + mark[i, j], ha="center",
                        va="center", fontsize=8, color="w" if dark else "k")
    ax.set_xticks(range(len(t.columns)), [f"{d}\n{a}" for d, a in t.columns], fontsize=8)
    ax.set_yticks(range(len(losses)), [t.display(l) for l in losses], fontsize=8)
    fig.colorbar(im, ax=ax, label="Δ accuracy vs CE (pp)")
    ax.set_title(f"{t.stage}: {t.metric} minus cross-entropy\n(* above, † below it: "
                 f"significant after Holm)", fontsize=10)
    return _save(fig, path)


def plot_correlation(study: dict, path: str | Path) -> Path:
    """Spearman rank correlation between augmentations (surrogate fitness of shared losses):
    ρ (across seeds) above the diagonal, ρ corrected for attenuation below it and each
    augmentation's noise ceiling (its single-seed test–retest ρ) on it, where the study has them
    (:mod:`augloss.search.correlation`); a study without them shows ρ on both sides."""
    plt = _figure()
    augs = study["augmentations"]
    ceiling = "reliability" in study
    m = np.eye(len(augs))
    for pair, v in study["spearman"].items():
        a, b = pair.split("|")
        i, j = augs.index(a), augs.index(b)
        m[i, j] = np.nan if v["rho"] is None else v["rho"]
        low = v.get("corrected") if ceiling else v["rho"]
        m[j, i] = np.nan if low is None else low
    if ceiling:
        for i, a in enumerate(augs):
            rel = study["reliability"][a]["test_retest"]
            m[i, i] = np.nan if rel is None else rel
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * len(augs), 1.5 + 0.8 * len(augs)))
    im = ax.imshow(m, cmap="viridis", vmin=-1, vmax=1)
    for i in range(len(augs)):
        for j in range(len(augs)):
            ax.text(j, i, "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center",
                    va="center", color="k" if np.isnan(m[i, j]) or m[i, j] >= 0.5 else "w")
    ax.set_xticks(range(len(augs)), augs)
    ax.set_yticks(range(len(augs)), augs)
    fig.colorbar(im, ax=ax, label="Spearman ρ")
    seeds = f", {len(study['seeds'])} fresh seeds" if ceiling else ""
    key = ("\nupper: ρ across seeds; lower: corrected for attenuation; diagonal: "
           "test–retest ρ") if ceiling else ""
    ax.set_title(f"Rank correlation of surrogate fitness\nbetween augmentations "
                 f"({len(study['losses'])} losses{seeds}){key}", fontsize=9 if ceiling else 10)
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
