"""The cross-augmentation study: the top losses of every search scored under every technique."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augloss import losses
from augloss.config import FitnessConfig
from augloss.io import read_json
from augloss.search.evaluator import SurrogateEvaluator


def correlation_study(best_files: dict[str, str | Path], top_n: int, fitness: FitnessConfig,
                      seed: int, cache_dir: str | Path | None,
                      augmentations: tuple[str, ...] | None = None, batch: int = 1) -> dict:
    """Evaluate the top-``top_n`` losses of every search (plus CE) under every augmentation,
    ``batch`` at a time as one stacked surrogate (the search's ``batch_children``; 1: one by
    one, as the paper config runs).

    Returns the loss x augmentation fitness matrix and the Spearman and Kendall rank
    correlations (with p-values) between every pair of augmentations.
    """
    from scipy import stats

    augmentations = tuple(augmentations or best_files)
    entries: dict[str, dict] = {}
    ce = losses.parse(losses.REGISTRY["ce"])
    entries[ce.key] = {"name": "ce", "expression": str(ce), "origin": "baseline"}
    for origin, path in best_files.items():
        for e in read_json(path)["losses"][:top_n]:
            entries.setdefault(e["key"], {"name": e["name"], "expression": e["expression"],
                                          "origin": origin})
    keys = sorted(entries, key=lambda k: (entries[k]["origin"] != "baseline",
                                          entries[k]["name"], k))
    evaluator = SurrogateEvaluator(fitness, cache_dir, seed)
    exprs = [losses.parse(entries[k]["expression"]) for k in keys]
    step = max(1, int(batch))
    columns = [[rec["fitness"] for i in range(0, len(exprs), step)
                for rec in evaluator.evaluate_many(exprs[i:i + step], a, "main")]
               for a in augmentations]
    matrix = [list(row) for row in zip(*columns)]
    m = np.asarray(matrix, dtype=float)
    corr: dict[str, dict] = {"spearman": {}, "kendall": {}}
    for i, a in enumerate(augmentations):
        for j, b in enumerate(augmentations):
            if j <= i:
                continue
            pair = f"{a}|{b}"
            if len(keys) >= 3 and np.ptp(m[:, i]) > 0 and np.ptp(m[:, j]) > 0:
                rho = stats.spearmanr(m[:, i], m[:, j])
                tau = stats.kendalltau(m[:, i], m[:, j])
                corr["spearman"][pair] = {"rho": float(rho.statistic), "p": float(rho.pvalue)}
                corr["kendall"][pair] = {"tau": float(tau.statistic), "p": float(tau.pvalue)}
            else:
                corr["spearman"][pair] = {"rho": None, "p": None}
                corr["kendall"][pair] = {"tau": None, "p": None}
    return {"augmentations": list(augmentations),
            "losses": [{"key": k, **entries[k]} for k in keys],
            "fitness": matrix, **corr, "seed": seed, "metric": fitness.metric}

