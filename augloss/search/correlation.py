"""The cross-augmentation study: every loss scored under every technique on fresh seeds.

The losses are each search's top ``top_n``, cross-entropy and the configured transfer baselines.
Each is scored under every augmentation on ``seeds`` **fresh** seeds
(:func:`augloss.search.seeds.fresh_seeds`: odd, so never a search's evaluation seed, which is
even): no score a search selected a loss on is reused to measure it (the winner's curse would
put every evolved loss's maximum on its own augmentation's column). Two seeds at least, so the
study measures its own noise ceiling: how well one seed's ranking of the losses predicts
another's (:func:`augloss.rankstats.study_statistics`).

The same fresh seeds serve every augmentation, and a seed fixes a loss's initialisation and batch
order, so a loss's luck on a seed is shared by its scores under all augmentations on that seed.
The cross-augmentation ρ is therefore taken across seeds (augmentation a on seed s against b on
seed t ≠ s) and corrected by the single-seed test–retest ρ's: luck on a seed enters neither.

The statistics run over **all** the rows (CE, the baselines and the evolved losses); each row
records its ``kind`` (``ce``, ``baseline`` or ``evolved``) and the searches that selected it,
so a reader can recompute them on any subset from the matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augloss import losses, names, rankstats
from augloss.config import FitnessConfig
from augloss.io import read_json
from augloss.search.evaluator import Evaluator, SurrogateEvaluator
from augloss.search.seeds import fresh_seeds

#: The version of the study's JSON (2: fresh seeds, the loss x augmentation x seed matrix;
#: 3: the cross-augmentation ρ across seeds, corrected by the single-seed test–retest ρ).
VERSION = 3

#: Why a baseline is left out of the study (the surrogate has no per-class weights).
NO_CLASS_WEIGHTS = "needs class weights, which the surrogate evaluator does not take"


def study_losses(best_files: dict[str, str | Path], top_n: int,
                 baselines: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """``(rows, skipped)``: the study's losses, each once by (expression key, label smoothing),
    in order CE, the baselines (config order), then each search's top ``top_n`` (technique
    then rank order); ``skipped``: baselines left out, with the reason.

    A row is ``{"key", "name", "expression", "label_smoothing", "kind", "origin",
    "selected_by"}``: ``kind`` ``ce``, ``baseline`` or ``evolved``; ``origin`` the augmentation
    of the first search that selected it (``None`` for CE and baselines); ``selected_by`` every
    search rank that selected it (an evolved loss equal to CE keeps CE's row and says so).
    """
    rows: dict[tuple[str, float], dict] = {}
    skipped: list[dict] = []

    def add(expr, name, kind, ls=0.0, origin=None):
        return rows.setdefault((expr.key, float(ls)), {
            "key": expr.key, "name": name, "expression": str(expr),
            "label_smoothing": float(ls), "kind": kind, "origin": origin, "selected_by": []})

    add(losses.parse(losses.REGISTRY[names.CE]), names.CE, "ce")
    for b in baselines or []:
        if b.get("class_weights") is not None:
            skipped.append({"name": b["name"], "reason": NO_CLASS_WEIGHTS})
            continue
        expr, _ = losses.resolve(b["expression"], b["label_smoothing"])
        if b.get("orient"):  # scored as the transfer stage trains it (orient: true)
            expr = losses.orientation(expr, orient=True).trained
        add(expr, b["name"], "baseline", b["label_smoothing"])
    for a in sorted(best_files, key=lambda x: (names.technique_order(x), x)):
        for e in read_json(best_files[a])["losses"][:top_n]:
            row = add(losses.parse(e["expression"]), e["name"], "evolved", 0.0, a)
            row["selected_by"].append(e["name"])
    return list(rows.values()), skipped


def score(rows: list[dict], evaluator: Evaluator, augmentations: tuple[str, ...],
          seeds: list[int], batch: int = 1) -> tuple[list, list]:
    """``(fitness, status)``, each losses x augmentations x seeds: every row scored under every
    augmentation and seed by ``evaluator`` (the main fitness phase), ``batch`` losses at a
    time as one stacked surrogate, each with its own label smoothing."""
    exprs = [losses.parse(r["expression"]) for r in rows]
    fitness = np.zeros((len(rows), len(augmentations), len(seeds)))
    status = [[[""] * len(seeds) for _ in augmentations] for _ in rows]
    step = max(1, int(batch))
    for j, a in enumerate(augmentations):
        for s, seed in enumerate(seeds):
            for c in range(0, len(rows), step):
                chunk = list(range(c, min(c + step, len(rows))))
                recs = evaluator.evaluate_many([exprs[i] for i in chunk], a, "main", seed=seed,
                                               label_smoothing=[rows[i]["label_smoothing"]
                                                                for i in chunk])
                for i, rec in zip(chunk, recs):
                    fitness[i, j, s] = float(rec["fitness"])
                    status[i][j][s] = rec["status"]
    return fitness.tolist(), status


def correlation_study(best_files: dict[str, str | Path], top_n: int, fitness: FitnessConfig,
                      seed: int, cache_dir: str | Path | None,
                      augmentations: tuple[str, ...] | None = None, batch: int = 1, *,
                      seeds: int = 2, baselines: list[dict] | None = None,
                      resamples: int = rankstats.RESAMPLES, bootstrap_seed: int = 0,
                      evaluator: Evaluator | None = None) -> dict:
    """Score CE, ``baselines`` (:func:`augloss.experiment.baseline_loss` dicts) and the
    top-``top_n`` losses of every search under every augmentation on ``seeds`` fresh seeds of
    search seed ``seed``, ``batch`` at a time as one stacked surrogate (the search's
    ``batch_children``; 1: one by one, as the paper config runs); ``evaluator``: a stand-in
    for the surrogate (tests).

    Returns the rows, the loss x augmentation x seed matrix (``fitness_by_seed``), its seed
    means (``fitness``) and :func:`augloss.rankstats.study_statistics` of it: the noise
    ceiling per augmentation, the cross-augmentation ρ across seeds with its permutation p and
    bootstrap intervals (``resamples`` resamples of the losses from ``bootstrap_seed``), Holm
    over the pairs and ρ corrected for attenuation by the single-seed test–retest ρ's.
    """
    if int(seeds) < 2:
        raise ValueError(f"correlation.seeds must be at least 2 (a noise ceiling needs two "
                         f"replicates), got {seeds}")
    augmentations = tuple(augmentations or best_files)
    rows, skipped = study_losses(best_files, top_n, baselines)
    measured = fresh_seeds(seed, seeds)
    if evaluator is None:
        evaluator = SurrogateEvaluator(fitness, cache_dir, seed)
    by_seed, status = score(rows, evaluator, augmentations, measured, batch)
    stats = rankstats.study_statistics(by_seed, augmentations, resamples, bootstrap_seed)
    return {"version": VERSION, "augmentations": list(augmentations), "losses": rows,
            "skipped": skipped, "search_seed": int(seed), "seeds": measured,
            "fitness_by_seed": by_seed, "status_by_seed": status,
            "fitness": np.asarray(by_seed).mean(axis=2).tolist(), **stats,
            "over": "all losses: cross-entropy, the baselines and every search's top losses",
            "metric": fitness.metric}
