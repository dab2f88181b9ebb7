"""A finished (or interrupted) search's reports, as a pure function of its state and history."""

from __future__ import annotations

import math
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

    Each returned entry (a copy of that best history line) also holds ``main_runs``, the
    number of scored main runs of its loss, and ``fitness_mean``, their mean. ``fitness`` is
    the **maximum** over those runs: with a seed per evaluation (the default) a loss found
    again ``k`` times keeps the best of ``k`` noisy draws, so the selection leans toward losses
    found often and ``fitness`` is optimistic, the more so the larger ``main_runs``. The rule
    is the search's own choice and stays; the unbiased measurement of the winner is the
    fresh-seed one (:func:`noise_summary`, the search table's fresh-seed columns).
    """
    best: dict[str, dict] = {}
    runs: dict[str, list[float]] = {}
    for e in history:
        if e.get("stage") == "main" and e["status"] in st.SCORED:
            runs.setdefault(e["key"], []).append(e["fitness"])
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
            top.append({**e, "main_runs": len(runs[e["key"]]),
                        "fitness_mean": statistics.fmean(runs[e["key"]])})
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


def top_spread(top: list[dict]) -> dict:
    """The spread of the main fitness among the top-k losses (:func:`top_losses`):
    ``{"n", "sd", "min", "max"}`` (sd needs n >= 2). Unlike :func:`candidate_spread` it is not
    inflated by the search's many poor and failed candidates: it says how far apart the losses
    worth transferring are, to be read against the fitness noise."""
    vals = sorted(e["fitness"] for e in top)
    return {"n": len(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None,
            "min": vals[0] if vals else None, "max": vals[-1] if vals else None}


def pooled_sd(groups: Iterable[list[float]]) -> float | None:
    """The pooled within-group sd, sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)); None without
    2 values in some group."""
    num = den = 0.0
    for vals in groups:
        if len(vals) > 1:
            num += (len(vals) - 1) * statistics.variance(vals)
            den += len(vals) - 1
    return (num / den) ** 0.5 if den else None


def paired_difference(a: dict[int, float], b: dict[int, float],
                      n_items: int | None = None) -> dict:
    """``a`` minus ``b`` paired by seed (seed -> fitness): the mean difference with its 95 %
    Student-t interval over the per-seed differences (:func:`augloss.stats.delta`, the
    comparison tables' paired test). ``{"mean", "low", "high", "p", "n", "test"}``; the
    interval and p are None when untestable (fewer than 2 pairs, or no variance)."""
    from augloss import stats

    seeds = sorted(set(a) & set(b))
    # at the fitness's resolution (val_n images): the same count on every seed is a constant
    # difference, untestable, never a p from float noise
    d = stats.delta({s: a[s] for s in seeds}, {s: b[s] for s in seeds}, n_items=n_items)

    def num(v):
        return None if v is None or math.isnan(v) else float(v)

    return {"mean": num(d.delta), "low": num(d.low), "high": num(d.high), "p": d.p,
            "n": len(seeds), "test": d.test}


def noise_summary(noise: dict | None, n_items: int | None = None) -> dict | None:
    """The fresh-seed measurement (:meth:`.evolution.Search.noise`) summarised: mean and sample
    sd over seeds of cross-entropy's and the winner's fitness; ``fitness_noise``, the sd pooled
    within the *distinct* losses measured (what one loss's fitness moves with the seed alone;
    a winner that is cross-entropy itself, by key, counts once, not twice) and
    ``fitness_noise_df``, its degrees of freedom (sum of n - 1 over those losses); ``lead``, the
    winner minus cross-entropy paired by seed (:func:`paired_difference`)."""
    if not noise:
        return None
    out = dict(noise)
    for key in ("ce", "winner"):
        vals = noise[key]
        out[f"{key}_mean"] = statistics.fmean(vals)
        out[f"{key}_sd"] = statistics.stdev(vals) if len(vals) > 1 else None
    distinct = [noise["ce"]] + ([] if _winner_is_ce(noise) else [noise["winner"]])
    out["fitness_noise"] = pooled_sd(distinct)
    out["fitness_noise_df"] = sum(max(len(v) - 1, 0) for v in distinct)
    seeds = noise["seeds"]
    out["lead"] = paired_difference(dict(zip(seeds, noise["winner"])),
                                    dict(zip(seeds, noise["ce"])), n_items)
    return out


def _winner_is_ce(noise: dict) -> bool:
    """Whether the measured winner is cross-entropy itself, by loss key (``winner_key``, or
    the key of ``winner_expression`` in a measurement that did not record it)."""
    ce_key = noise.get("ce_key") or losses.parse(losses.REGISTRY["ce"]).key
    key = noise.get("winner_key")
    if key is None and noise.get("winner_expression"):
        try:
            key = losses.parse(noise["winner_expression"]).key
        except Exception:  # an unparsable expression is not cross-entropy's
            return False
    return key == ce_key


def reports(state: dict, history: Iterable[dict], *, augmentation: str, seed: int,
            metric: str, top_k: int, config_hash: str, ce: dict,
            equivalent: Callable[[str, str], bool] | None = None,
            noise: dict | None = None, seeding: dict | None = None,
            val_n: int | None = None) -> dict[str, dict]:
    """``population.json``, ``best.json`` and ``summary.json`` of a search, by file name.

    ``ce`` is cross-entropy's record under the same fitness and the search seed (the
    reference line); ``equivalent`` keeps equivalent losses out of the top-k
    (:func:`top_losses`); ``noise`` is :meth:`.evolution.Search.noise` (cross-entropy and the
    winner on fresh seeds); ``seeding`` says how the evaluations were seeded (written as is);
    ``val_n`` is the number of validation images the fitness is measured on (None: unknown,
    written as null), from which the search table gives one run's binomial standard error.

    In ``best.json`` each loss's ``fitness`` is the best of its ``main_runs`` main runs (a
    maximum, so optimistic; :func:`top_losses`) and ``fitness_mean`` their mean.
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
                    "fitness_max": e["fitness_max"], "main_runs": e["main_runs"],
                    "fitness_mean": e["fitness_mean"]} for r, e in enumerate(top)],
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
        "top_k": top_spread(top),
        "noise": noise_summary(noise, val_n),
        "val_n": val_n,
    }
    if seeding is not None:
        summary["seeding"] = seeding
    return {"population.json": {"augmentation": augmentation, "seed": seed,
                                "members": [m.to_dict() for m in population]},
            "best.json": best, "summary.json": summary}
