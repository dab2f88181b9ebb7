"""A finished (or interrupted) search's reports, as a pure function of its state and history."""

from __future__ import annotations

import statistics
from typing import Callable, Iterable

from augloss import losses, names
from augloss.search import status as st
from augloss.search.breed import Member


def top_losses(history: Iterable[dict], top_k: int,
               equivalent: Callable[[str, str], bool] | None = None) -> list[dict]:
    """The ``top_k`` distinct losses of the main fitness runs, best first (ties: by key).

    Each loss counts with its best main-run entry; failed and diverged runs never count. With
    ``equivalent(expression_a, expression_b)`` (the search's phenotype test), a loss
    equivalent to a better one already chosen is skipped, so no two of the top-k are the same
    loss in another form.
    """
    best: dict[str, dict] = {}
    for e in history:
        if e.get("stage") == "main" and e["status"] in st.SCORED:
            prev = best.get(e["key"])
            if prev is None or e["fitness"] > prev["fitness"]:
                best[e["key"]] = e
    ranked = sorted(best.values(), key=lambda e: (-e["fitness"], e["key"]))
    top: list[dict] = []
    for e in ranked:
        if len(top) == top_k:
            break
        if equivalent is None or not any(equivalent(t["expression"], e["expression"])
                                         for t in top):
            top.append(e)
    return top


def candidate_spread(history: Iterable[dict]) -> dict:
    """The spread of the main fitness among the distinct candidates it scored (failed and
    diverged runs left out): ``{"n", "sd", "min", "median", "max"}`` (sd needs n >= 2)."""
    best: dict[str, float] = {}
    for e in history:
        if e.get("stage") == "main" and e["status"] in st.SCORED:
            best[e["key"]] = max(best.get(e["key"], -1.0), e["fitness"])
    vals = sorted(best.values())
    return {"n": len(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None,
            "min": vals[0] if vals else None,
            "median": statistics.median(vals) if vals else None,
            "max": vals[-1] if vals else None}


def noise_summary(noise: dict | None) -> dict | None:
    """Mean and sample sd over seeds of cross-entropy's and the winner's fitness;
    ``fitness_noise`` is cross-entropy's sd (the fitness a loss gets from its seed alone)."""
    if not noise:
        return None
    out = dict(noise)
    for key in ("ce", "winner"):
        vals = noise[key]
        out[f"{key}_mean"] = statistics.fmean(vals)
        out[f"{key}_sd"] = statistics.stdev(vals) if len(vals) > 1 else None
    out["fitness_noise"] = out["ce_sd"]
    return out


def reports(state: dict, history: Iterable[dict], *, augmentation: str, seed: int,
            metric: str, top_k: int, config_hash: str, ce: dict,
            equivalent: Callable[[str, str], bool] | None = None,
            noise: dict | None = None) -> dict[str, dict]:
    """``population.json``, ``best.json`` and ``summary.json`` of a search, by file name.

    ``ce`` is cross-entropy's record under the same fitness (the reference line);
    ``equivalent`` keeps equivalent losses out of the top-k (:func:`top_losses`); ``noise``
    is :meth:`.evolution.Search.noise` (cross-entropy and the winner under several seeds).
    """
    history = list(history)
    population = sorted((Member.from_dict(d) for d in state["population"]),
                        key=lambda m: (-m.fitness, m.expr.key))
    top = top_losses(history, top_k, equivalent)
    best = {
        "augmentation": augmentation, "seed": seed, "metric": metric,
        "losses": [{"rank": r + 1, "name": names.evolved(augmentation, r + 1),
                    "expression": e["expression"], "key": e["key"],
                    "latex": losses.parse(e["expression"]).latex(),
                    "fitness": e["fitness"], "fitness_final": e["fitness_final"],
                    "fitness_max": e["fitness_max"]} for r, e in enumerate(top)],
        "reference": {"ce": {"fitness": ce["fitness"], "fitness_final": ce["fitness_final"],
                             "fitness_max": ce["fitness_max"]}},
    }
    counters = dict(sorted(state["counters"].items()))
    summary = {
        "augmentation": augmentation, "seed": seed,
        "config_hash": config_hash, "children": state["iteration"],
        "evaluations": counters.get("evaluations", 0),
        "rejections": {k: v for k, v in counters.items()
                       if k.startswith(("rejected", "duplicate", st.MUTATION_FAILED))},
        "counters": counters, "curve": state["curve"],
        "best_fitness": top[0]["fitness"] if top else None,
        "ce_fitness": ce["fitness"],
        "candidates": candidate_spread(history),
        "noise": noise_summary(noise),
    }
    return {"population.json": {"augmentation": augmentation, "seed": seed,
                                "members": [m.to_dict() for m in population]},
            "best.json": best, "summary.json": summary}
