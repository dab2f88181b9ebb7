"""What a search costs: **measured** from its outputs, and **modelled** for full searches.

:func:`measure` reads one search directory. From ``history.jsonl`` (reproducible; one entry per
candidate considered, :mod:`.evolution`): per stage (``prescreen``, ``prefilter``, ``main``)
the evaluations, their statuses and pass rates, and the epochs they ran (``epochs_run``, absent
from histories written before it was recorded: then unknown, and said so); per evolution
child the attempts it took and whether it was kept. From ``cost.json`` (timings: wall time
inside training calls, accumulated across resumes, so never byte-reproducible): cache hits,
trainings, seconds per trained candidate and per epoch, and the machine (device, threads); a
directory without it (a search older than it) has only ``cache_stats.json``'s totals and no
timings. From ``summary.json``: the recipes (epochs per stage) the fractions are taken of.

:func:`project` models what full searches cost at another configuration (the paper's: a pool
of 1,000, a population of 100, 4,000 children) from the rates one search measured and the
seconds per training step and per validation image a benchmark report measured
(``python -m benchmarks``). It invents no timing: a figure the report lacks, or a rate the
measured search cannot give, is named in a :class:`CostError` and nothing is projected.
:func:`expected_attempts` is the truncated-geometric number of evaluations per child.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

from augloss.names import TECHNIQUES
from augloss.search import status as st

#: The training stages a history entry's ``stage`` names (:mod:`.evaluator`'s phases).
STAGES = ("prescreen", "prefilter", "main")
#: The search's phases a history entry's ``phase`` names (:mod:`.evolution`).
PHASES = ("pool", "rescore", "evolve")
#: The cost.json format this module reads.
COST_VERSION = 1
#: A pre-screen stopped by a rule of the screen or lost: not passed (every other status is).
SCREEN_STOPPED = (st.FAILED, st.ABORTED, st.DIVERGED)
#: Which statistic of a benchmark figure ({min, median, max, n}) the projection uses.
STATISTIC = "median"


class CostError(ValueError):
    """A search directory, report or figure the cost model cannot use; the message names it."""


class MissingFigure(CostError):
    """The benchmark report lacks a figure the projection needs (:attr:`names`)."""

    def __init__(self, message: str, names: list[str]):
        """``names``: the figures missing from the report."""
        super().__init__(message)
        self.names = names


# --- reading -------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when the file does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CostError(f"{path}: unreadable ({exc.strerror or exc})") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise CostError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CostError(f"{path}: not a JSON object")
    return obj


def read_history(path: str | Path) -> list[dict]:
    """The entries of a ``history.jsonl``; a :class:`CostError` names the file (and line) when
    it is missing or malformed."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise CostError(f"{path}: no such file (no search history: is "
                        f"{path.parent} a search directory?)") from None
    except OSError as exc:
        raise CostError(f"{path}: unreadable ({exc.strerror or exc})") from None
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise CostError(f"{path} line {i + 1}: not valid JSON ({exc})") from None
        if not isinstance(entry, dict):
            raise CostError(f"{path} line {i + 1}: not a JSON object")
        out.append(entry)
    return out


def _find(d: Path, name: str) -> Path | None:
    """``d/name``, else ``d/work/name`` (the workflow's search keeps its state in ``work/``
    and copies its outputs up); None when neither exists."""
    for path in (d / name, d / "work" / name):
        if path.is_file():
            return path
    return None


def _recipe(r) -> dict | None:
    """``{"epochs", "steps_per_epoch", "abort"}`` of a recipe (a TrainConfig or its dict)."""
    if r is None:
        return None
    if not isinstance(r, Mapping):
        r = r.to_dict()
    return {"epochs": int(r["epochs"]), "steps_per_epoch": r.get("steps_per_epoch"),
            "abort": [[int(e), float(a)] for e, a in (r.get("abort") or [])]}


def _ratio(a, b) -> float | None:
    """a / b; None when either is unknown or b is 0 (arithmetic on measured counts)."""
    return None if a is None or b is None or not b else a / b


def _mean(values: list) -> float | None:
    """The mean of measured values; None for none."""
    return sum(values) / len(values) if values else None


# --- measured ------------------------------------------------------------------------------------

def _stage_stats(stage: str, entries: list[dict], implicit: int, recipe: dict | None) -> dict:
    """One stage's evaluations (``entries``, plus ``implicit`` pre-filters that passed, which
    leave no history entry of their own: one per main run after a pre-filter).

    Measured: evaluations, statuses, ``passed`` / ``pass_rate`` (pre-screen: not failed,
    aborted or diverged; pre-filter: went on to a main run; main: kept, i.e. its fitness
    counts, :data:`.status.SCORED`), ``aborted``; the epochs run (``epochs_run``): total,
    mean per evaluation and as a fraction of ``recipe``'s epochs, the aborted runs' mean and
    the other runs' mean fraction. An implicit pre-filter counts at the recipe's full epochs
    (an assumption: one that aborted or stopped at a NaN passed too, having run fewer).
    Epoch figures are None when an entry lacks ``epochs_run`` or, for fractions, the recipe
    is unknown."""
    n = len(entries) + implicit
    statuses = dict(sorted(Counter(e.get("status") for e in entries).items()))
    if stage == "prescreen":
        passed = sum(1 for e in entries if e.get("status") not in SCREEN_STOPPED)
    elif stage == "prefilter":
        passed = implicit
    else:
        passed = sum(1 for e in entries if e.get("status") in st.SCORED)
    full = recipe["epochs"] if recipe else None
    known = all("epochs_run" in e for e in entries)
    out = {"evaluations": n, "statuses": statuses, "passed": passed,
           "pass_rate": _ratio(passed, n), "aborted": statuses.get(st.ABORTED, 0),
           "shares": {k: v / n for k, v in statuses.items()} if n else {},
           "implicit": implicit, "epochs_known": known, "epochs_run": None,
           "epochs_mean": None, "epochs_fraction": None, "aborted_epochs_mean": None,
           "rest_epochs_fraction": None}
    if not known or not n or (implicit and full is None):
        return out
    runs = [int(e["epochs_run"]) for e in entries]
    aborted = [int(e["epochs_run"]) for e in entries if e.get("status") == st.ABORTED]
    rest = [int(e["epochs_run"]) for e in entries if e.get("status") != st.ABORTED] \
        + [full] * implicit
    total = sum(runs) + (full or 0) * implicit
    out.update(epochs_run=total, epochs_mean=total / n, epochs_fraction=_ratio(total / n, full),
               aborted_epochs_mean=_mean(aborted),
               rest_epochs_fraction=_ratio(_mean(rest), full) if rest else None)
    return out


def _timings(cost: dict, path: Path) -> dict:
    """cost.json's counters per stage with the derived rates (hit rate, seconds per trained
    candidate, per epoch and per step, epochs per training)."""
    if cost.get("version") != COST_VERSION or not isinstance(cost.get("phases"), dict):
        raise CostError(f"{path}: not a version-{COST_VERSION} cost record (want 'version': "
                        f"{COST_VERSION} and 'phases')")
    stages = {}
    for stage, c in sorted(cost["phases"].items()):
        c = {k: c.get(k, 0) for k in ("requested", "cache_hits", "trainings", "calls",
                                     "epochs", "steps", "seconds")}
        stages[stage] = {**c, "hit_rate": _ratio(c["cache_hits"], c["requested"]),
                         "s_per_training": _ratio(c["seconds"], c["trainings"]),
                         "s_per_epoch": _ratio(c["seconds"], c["epochs"]),
                         "s_per_step": _ratio(c["seconds"], c["steps"]),
                         "epochs_per_training": _ratio(c["epochs"], c["trainings"])}
    return {"device": cost.get("device"), "threads": cost.get("threads"), "stages": stages,
            "seconds": sum(s["seconds"] for s in stages.values())}


def _children(entries: list[dict]) -> dict:
    """The evolve phase per child (one ``iteration``): attempts (trained evaluations: a
    pre-filter, or a main run), kept (a main run whose fitness counts), discarded, mutation
    failures (a slot closed with no valid mutant)."""
    attempts: dict[int, int] = {}
    kept: set[int] = set()
    failed = 0
    for e in entries:
        it = e.get("iteration")
        attempts.setdefault(it, 0)
        if e.get("stage") in ("prefilter", "main"):
            attempts[it] += 1
            if e["stage"] == "main" and e.get("status") in st.SCORED:
                kept.add(it)
        elif e.get("status") == st.MUTATION_FAILED:
            failed += 1
    n = len(attempts)
    total = sum(attempts.values())
    return {"children": n, "attempts": total, "attempts_per_child": _ratio(total, n),
            "attempts_histogram": dict(sorted(Counter(attempts.values()).items())),
            "kept": len(kept), "discarded": n - len(kept), "mutation_failed": failed}


def _augmentation(d: Path, summary: dict | None) -> str | None:
    """The search's augmentation: summary.json's, else the directory's name
    (``results/<x>/search/<aug>`` or its ``work/``); None when neither says."""
    if summary and summary.get("augmentation"):
        return summary["augmentation"]
    for name in (d.name, d.parent.name):  # results/x/search/<aug>[/work]
        if name in TECHNIQUES:
            return name
    return None


def measure(search_dir: str | Path, recipes: Mapping | None = None) -> dict:
    """The measured cost model of one search directory (finished or not).

    Reads ``history.jsonl`` (required), ``summary.json`` (the recipes and ``val_n``; absent
    while a search runs), ``cost.json`` and ``cache_stats.json`` (each in the directory or
    its ``work/``). ``recipes`` (stage -> a recipe or its dict) gives the epochs the fractions
    are of where summary.json does not (it wins over summary.json).

    Returns ``{"search_dir", "augmentation", "val_n", "sources": {name: path or None},
    "recipes": {stage: {"epochs", "steps_per_epoch", "abort"}} or None, "prefilter": bool
    (configured), "epochs_known": bool, "stages": {stage: stats, with "by_phase": {phase:
    stats}}}`` (stats: :func:`_stage_stats`), ``"evolve"`` (:func:`_children`),
    ``"rates"``: the per-attempt probabilities ``{"rescore"|"evolve": {"prefilter_pass",
    "main_kept", "attempt_kept"}}``, ``"timings"`` (cost.json per stage, or None),
    ``"cache"`` (``{"source", "requested", "cache_hits", "trainings", "hit_rate"}`` over all
    stages, or None) and ``"notes"``: what is unknown and why. Nothing here is modelled
    except that a passed pre-filter (no entry of its own) ran its recipe's full epochs."""
    d = Path(search_dir)
    history_path = _find(d, "history.jsonl") or d / "history.jsonl"  # work/: still running
    history = read_history(history_path)
    summary_path = _find(d, "summary.json")
    summary = _read_json(summary_path) if summary_path else None
    cost_path = _find(d, "cost.json")
    cost = _read_json(cost_path) if cost_path else None
    stats_path = _find(d, "cache_stats.json")
    cache_stats = _read_json(stats_path) if stats_path else None
    notes: list[str] = []

    source = recipes if recipes is not None else (summary or {}).get("recipes")
    recipe = {s: _recipe(r) for s, r in source.items() if s in STAGES} if source else None
    if recipe is None:
        notes.append("recipes unknown (no summary.json with 'recipes'): epochs are not "
                     "given as fractions of the recipe's")
    timings = _timings(cost, cost_path) if cost is not None else None
    if timings is not None and cost.get("complete") is False:
        notes.append(f"{cost_path} counts only part of the search (it began on a resume of a "
                     f"search older than it): its timings and cache hits are left out")
        timings = None

    trained = [e for e in history if e.get("stage") in STAGES]
    if recipe is not None:
        prefilter = "prefilter" in recipe
    elif timings is not None and "prefilter" in timings["stages"]:
        prefilter = timings["stages"]["prefilter"]["requested"] > 0
    else:
        prefilter = any(e["stage"] == "prefilter" for e in trained)
        notes.append(f"whether a pre-filter ran is inferred from the history "
                     f"({'it has' if prefilter else 'no'} pre-filter entries)")
    lacking = sum(1 for e in trained if "epochs_run" not in e)
    if lacking:
        notes.append(f"{lacking} of {len(trained)} training entries of {d / 'history.jsonl'} "
                     f"lack epochs_run (a history written before it was recorded): epochs "
                     f"run unknown")

    stages = {}
    for stage in STAGES:
        by_phase, all_entries, all_implicit = {}, [], 0
        for phase in PHASES:
            entries = [e for e in trained if e["stage"] == stage and e.get("phase") == phase]
            implicit = 0
            if stage == "prefilter" and prefilter and phase != "pool":
                implicit = sum(1 for e in trained
                               if e["stage"] == "main" and e.get("phase") == phase)
            if entries or implicit:
                by_phase[phase] = _stage_stats(stage, entries, implicit,
                                               (recipe or {}).get(stage))
            all_entries += entries
            all_implicit += implicit
        stages[stage] = {**_stage_stats(stage, all_entries, all_implicit,
                                        (recipe or {}).get(stage)), "by_phase": by_phase}
    if prefilter and stages["prefilter"]["implicit"]:
        notes.append("passed pre-filters leave no history entry: counted at the recipe's "
                      "full epochs")

    rates = {}
    for phase in ("rescore", "evolve"):
        pre = stages["prefilter"]["by_phase"].get(phase)
        main = stages["main"]["by_phase"].get(phase)
        q = (pre["pass_rate"] if pre else None) if prefilter else 1.0
        r = main["pass_rate"] if main else None
        rates[phase] = {"prefilter_pass": q, "main_kept": r,
                        "attempt_kept": None if q is None or r is None else q * r}

    cache = None
    if timings is not None:
        tot = {k: sum(s[k] for s in timings["stages"].values())
               for k in ("requested", "cache_hits", "trainings")}
        cache = {"source": str(cost_path), **tot,
                 "hit_rate": _ratio(tot["cache_hits"], tot["requested"])}
    elif cache_stats is not None:
        hits, trainings = cache_stats.get("cache_hits"), cache_stats.get("trainings")
        cache = {"source": str(stats_path), "requested": None, "cache_hits": hits,
                 "trainings": trainings,
                 "hit_rate": _ratio(hits, (hits or 0) + (trainings or 0))}
    if timings is None:
        notes.append("no cost.json (a search older than it, or still running): timings "
                      "unknown" + ("; cache_stats.json's totals only" if cache_stats else ""))

    return {"search_dir": str(d), "augmentation": _augmentation(d, summary),
            "val_n": (summary or {}).get("val_n"),
            "sources": {"history": str(history_path),
                        "summary": str(summary_path) if summary_path else None,
                        "cost": str(cost_path) if cost_path else None,
                        "cache_stats": str(stats_path) if stats_path else None},
            "recipes": recipe, "prefilter": prefilter, "epochs_known": not lacking,
            "stages": stages, "evolve": _children([e for e in history
                                                   if e.get("phase") == "evolve"]),
            "rates": rates, "timings": timings, "cache": cache, "notes": notes}


# --- modelled ------------------------------------------------------------------------------------

def expected_attempts(p: float, max_evaluations: int) -> float:
    """The expected evaluations (attempts) of one child, each kept with probability ``p``
    independently, stopping at the first kept one or after ``max_evaluations``: the mean of
    a geometric variable truncated at M = ``max_evaluations``,
    E[min(G, M)] = sum_{k=0}^{M-1} (1 - p)^k = (1 - (1 - p)^M) / p (M when p = 0, 1 when
    p = 1)."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be a probability, got {p!r}")
    if max_evaluations < 1:
        raise ValueError(f"max_evaluations must be >= 1, got {max_evaluations!r}")
    if p == 0:
        return float(max_evaluations)
    return (1 - (1 - p) ** max_evaluations) / p


def discard_probability(p: float, max_evaluations: int) -> float:
    """The probability that a child is discarded: none of its ``max_evaluations`` attempts
    kept, (1 - p)^M."""
    return (1 - p) ** max_evaluations


def _figures(step_costs: Mapping) -> tuple[dict, dict, dict]:
    """(figures by name, the report's machine, its settings) of a benchmark report, or of a
    plain ``{name: value}`` mapping."""
    if "figures" in step_costs and isinstance(step_costs["figures"], Mapping):
        return (dict(step_costs["figures"]), dict(step_costs.get("machine") or {}),
                dict(step_costs.get("settings") or {}))
    return dict(step_costs), {}, {}


def _value(figure) -> float | None:
    """A figure's number: its :data:`STATISTIC` ({min, median, max, n}) or a plain number."""
    v = figure.get(STATISTIC) if isinstance(figure, Mapping) else figure
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


def figure_names(stage: str, augmentation: str) -> tuple[str, str]:
    """The benchmark figures a stage's seconds per epoch need: seconds per training step
    (``cost_step_s_<stage>``; the main run's per augmentation, ``cost_step_s_main_<aug>``)
    and seconds per validation image (``cost_val_s_per_image_<stage>``)."""
    step = f"cost_step_s_main_{augmentation}" if stage == "main" else f"cost_step_s_{stage}"
    return step, f"cost_val_s_per_image_{stage}"


def _stats_for(measured: dict, stage: str, phase: str, missing: list[str]) -> tuple[dict, str]:
    """The measured stats of ``stage`` in ``phase`` (else of the stage over all phases, said
    so); a missing or epoch-less one is added to ``missing``."""
    s = measured["stages"][stage]
    own = s["by_phase"].get(phase)
    stats, source = (own, phase) if own and own["evaluations"] else (s, "all phases")
    if not stats["evaluations"]:
        missing.append(f"{stage} evaluations (the measured search has none)")
    elif stats["epochs_fraction"] is None:
        missing.append(f"{stage} epochs run as a fraction of the recipe "
                       + (f"({measured['sources']['history']} lacks epochs_run)"
                          if not stats["epochs_known"]
                          else "(the measured search's recipes are unknown: no summary.json)"))
    return stats, source


def _epochs(stats: dict, measured_recipe: dict, target) -> tuple[float, float, float]:
    """Projected epochs per evaluation under ``target`` (a TrainConfig): (epochs, aborted
    share, epochs of an aborted run). Runs that were not aborted run the measured fraction of
    the target's epochs; an aborted run stops at the target's first abort epoch, plus the
    measured aborted runs' mean epochs past their own recipe's first abort epoch."""
    n = stats["evaluations"]
    a = stats["aborted"] / n
    rest = stats["rest_epochs_fraction"]
    full = target.epochs
    aborted_epochs = 0.0
    if a:
        if target.abort:
            lag = 0.0
            if measured_recipe and measured_recipe["abort"]:
                first = min(e for e, _ in measured_recipe["abort"]) + 1
                lag = max(0.0, (stats["aborted_epochs_mean"] or first) - first)
            aborted_epochs = min(float(full), min(e for e, _ in target.abort) + 1 + lag)
        else:  # no abort rule in the target recipe: they run as the others do
            aborted_epochs = (rest if rest is not None else 1.0) * full
    epochs = a * aborted_epochs + (1 - a) * (rest if rest is not None else 0.0) * full
    return epochs, a, aborted_epochs


def project(measured: dict, search_cfg, fitness_cfg, step_costs: Mapping, val_n: int | None,
            searches: int = 5, augmentation: str | None = None) -> dict:
    """The modelled cost of ``searches`` full searches at ``search_cfg`` / ``fitness_cfg``
    (a :class:`~augloss.config.SearchConfig` and :class:`~augloss.config.FitnessConfig`),
    with the rates of ``measured`` (:func:`measure`) and the step costs of ``step_costs``
    (a benchmark report, ``{"machine", "settings", "figures"}``, or a ``{name: value}``
    mapping; a figure's :data:`STATISTIC` is used). ``augmentation`` (default: the measured
    search's) picks the main run's step cost; ``val_n`` is the number of validation images
    every epoch evaluates.

    Modelled, not measured:

    * evaluations: the pool's ``initial_pool`` screens; with a pre-screen, the re-scoring of
      ``population`` members (a pre-filter each, and a main run for the share that passes
      it); ``children`` times the expected attempts per child (:func:`expected_attempts`
      with the measured per-attempt probability that a child is kept, truncated at
      ``max_evaluations``), each attempt a pre-filter and, for the share that passes it, a
      main run;
    * epochs per evaluation: runs that were not aborted run the measured fraction of their
      recipe's epochs times the target recipe's epochs; aborted ones stop at the target's
      abort epoch (:func:`_epochs`);
    * seconds per epoch: ``steps_per_epoch`` x the seconds per step plus ``val_n`` x the
      seconds per validation image, both from the report;
    * every evaluation trains (no cache hits: so with ``evaluation_seeds: per_evaluation``)
      and one at a time (``batch_children: 1``); mutation failures are left out.

    Returns ``{"augmentation", "searches", "phases": {phase: {stage: {"evaluations",
    "epochs_per_evaluation", "aborted_share", "seconds_per_epoch", "seconds_per_evaluation",
    "seconds", "rates_from"}}}, "stages": {stage: {"evaluations", "seconds", "hours"}},
    "attempts": {...}, "per_search": {"evaluations", "seconds", "hours"}, "all_searches":
    {... , "searches"}, "inputs": {...}, "assumptions": [...]}``. A figure or rate that is
    missing raises :class:`CostError` naming every one missing."""
    aug = augmentation or measured.get("augmentation")
    if aug is None:
        raise CostError(f"{measured['search_dir']}: the augmentation is unknown (no "
                        f"summary.json): the main run's step cost is per augmentation")
    figures, machine, settings = _figures(step_costs)
    pool_stage = "prescreen" if fitness_cfg.prescreen is not None else "main"
    has_pre = fitness_cfg.prefilter is not None
    used = [s for s in STAGES if s == pool_stage or s == "main"
            or (s == "prefilter" and has_pre)]
    targets = {s: fitness_cfg.recipe(s) for s in used}

    missing_figures = [name for s in used for name in figure_names(s, aug)
                       if _value(figures.get(name)) is None]
    if missing_figures:
        raise MissingFigure(f"the benchmark report has no {', '.join(missing_figures)} "
                            f"(seconds per step / per validation image of the stages a search "
                            f"of {aug} trains): no projection without it", missing_figures)
    if val_n is None or val_n < 0:
        raise CostError("the number of validation images (val_n) is unknown: no projection "
                        "without it")
    no_steps = [s for s in used if targets[s].steps_per_epoch is None]
    if no_steps:
        raise CostError(f"fitness.{', fitness.'.join(no_steps)} has no steps_per_epoch (an "
                        f"epoch is a pass over the data): its steps are unknown")

    missing: list[str] = []
    if has_pre and not measured["prefilter"]:
        missing.append("a pre-filter pass rate (the measured search ran no pre-filter)")
    plan: list[tuple[str, str]] = [("pool", pool_stage)]
    if pool_stage == "prescreen":
        plan += [("rescore", "prefilter")] * has_pre + [("rescore", "main")]
    plan += [("evolve", "prefilter")] * has_pre + [("evolve", "main")]
    stats = {key: _stats_for(measured, key[1], key[0], missing) for key in plan}

    def rate(phase: str, key: str) -> tuple[float | None, str]:
        """A measured per-attempt rate of ``phase`` (the evolve phase's, else the
        re-scoring's) and the phase it came from."""
        r = measured["rates"].get(phase, {}).get(key)
        if r is not None or phase == "rescore":
            return r, phase
        return measured["rates"].get("rescore", {}).get(key), "rescore"

    q_r = r_src = None
    if pool_stage == "prescreen" and has_pre:
        q_r, r_src = rate("rescore", "prefilter_pass")
        if q_r is None:
            missing.append("the re-scoring's pre-filter pass rate")
    q_e, q_src = rate("evolve", "prefilter_pass") if has_pre else (1.0, "none (no pre-filter)")
    r_e, k_src = rate("evolve", "main_kept")
    if q_e is None:
        missing.append("the children's pre-filter pass rate")
    if r_e is None:
        missing.append("the children's main-run kept rate")
    if missing:
        raise CostError(f"{measured['search_dir']}: the measured search cannot give "
                        f"{'; '.join(missing)}: no projection without it")

    M = search_cfg.max_evaluations
    p = q_e * r_e
    attempts = expected_attempts(p, M)
    counts = {("pool", pool_stage): float(search_cfg.initial_pool)}
    if pool_stage == "prescreen":
        if has_pre:
            counts[("rescore", "prefilter")] = float(search_cfg.population)
        counts[("rescore", "main")] = search_cfg.population * (q_r if has_pre else 1.0)
    if has_pre:
        counts[("evolve", "prefilter")] = search_cfg.children * attempts
    counts[("evolve", "main")] = search_cfg.children * attempts * q_e

    used_figures = {}
    phases: dict[str, dict] = {}
    for phase, stage in plan:
        step_name, val_name = figure_names(stage, aug)
        step_s, val_s = _value(figures[step_name]), _value(figures[val_name])
        used_figures[step_name], used_figures[val_name] = step_s, val_s
        target = targets[stage]
        st_, src = stats[(phase, stage)]
        epochs, a, aborted_epochs = _epochs(st_, (measured["recipes"] or {}).get(stage), target)
        per_epoch = target.steps_per_epoch * step_s + val_n * val_s
        n = counts[(phase, stage)]
        phases.setdefault(phase, {})[stage] = {
            "evaluations": n, "epochs_per_evaluation": epochs, "aborted_share": a,
            "aborted_epochs": aborted_epochs if a else None,
            "seconds_per_epoch": per_epoch, "seconds_per_evaluation": epochs * per_epoch,
            "seconds": n * epochs * per_epoch, "rates_from": src}
    by_stage = {}
    for ph in phases.values():
        for stage, v in ph.items():
            t = by_stage.setdefault(stage, {"evaluations": 0.0, "seconds": 0.0})
            t["evaluations"] += v["evaluations"]
            t["seconds"] += v["seconds"]
    for t in by_stage.values():
        t["hours"] = t["seconds"] / 3600
    seconds = sum(t["seconds"] for t in by_stage.values())
    evaluations = sum(t["evaluations"] for t in by_stage.values())
    ev = measured["evolve"]
    return {
        "augmentation": aug, "searches": searches,
        "phases": phases, "stages": {s: by_stage[s] for s in STAGES if s in by_stage},
        "attempts": {"prefilter_pass": q_e, "main_kept": r_e, "attempt_kept": p,
                     "max_evaluations": M, "expected_per_child": attempts,
                     "discard_probability": discard_probability(p, M),
                     "measured_per_child": ev["attempts_per_child"],
                     "measured_children": ev["children"],
                     "measured_discarded": ev["discarded"],
                     "rescore_prefilter_pass": q_r,
                     "rates_from": {"prefilter_pass": q_src, "main_kept": k_src,
                                    "rescore_prefilter_pass": r_src}},
        "per_search": {"evaluations": evaluations, "seconds": seconds, "hours": seconds / 3600},
        "all_searches": {"searches": searches, "evaluations": evaluations * searches,
                         "seconds": seconds * searches, "hours": seconds * searches / 3600},
        "inputs": {
            "rates_from": {"search_dir": measured["search_dir"],
                           "augmentation": measured.get("augmentation")},
            "step_costs_from": {"machine": machine, "settings": settings,
                                "statistic": STATISTIC, "figures": used_figures},
            "val_n": val_n,
            "config": {"initial_pool": search_cfg.initial_pool,
                       "population": search_cfg.population, "children": search_cfg.children,
                       "max_evaluations": M, "batch_children": search_cfg.batch_children,
                       "evaluation_seeds": search_cfg.evaluation_seeds,
                       "recipes": {s: {"epochs": targets[s].epochs,
                                       "steps_per_epoch": targets[s].steps_per_epoch,
                                       "batch_size": targets[s].batch_size,
                                       "abort": [list(x) for x in targets[s].abort]}
                                   for s in used}}},
        "assumptions": _assumptions(search_cfg),
    }


def _assumptions(search_cfg) -> list[str]:
    """What :func:`project` models rather than measures, in words (with the target's
    departures from the one-child-at-a-time, fresh-seed search it assumes)."""
    out = [
        "epochs per evaluation: a run that was not aborted runs the measured fraction of its "
        "recipe's epochs times the target recipe's epochs; an aborted run stops at the target "
        "recipe's first abort epoch (plus the measured aborted runs' mean epochs past their "
        "own first abort epoch); the aborted share is the one measured under the measured "
        "recipe's rules",
        "pass rates and the per-attempt probability that a child is kept are the measured "
        "search's (the evolve phase's where it has one), independent from attempt to "
        "attempt; attempts per child: a geometric number truncated at max_evaluations",
        "passed pre-filters (no history entry) ran their recipe's full epochs",
        "seconds per epoch = steps_per_epoch x seconds per step + val_n x seconds per "
        "validation image, at the benchmark's sizes and machine; the data pipeline's other "
        "costs, checkpoints and the after-search measurements (cross-entropy, fresh seeds) "
        "are left out",
        "every evaluation trains (no cache hits) and mutation failures are left out",
    ]
    if search_cfg.batch_children != 1:
        out.append(f"batch_children is {search_cfg.batch_children}: children are costed as "
                   f"trained one at a time (an upper bound: stacked copies share a call)")
    if search_cfg.pool_batch != 1:
        out.append(f"pool_batch is {search_cfg.pool_batch}: the pool's screens are costed one "
                   f"at a time at the benchmark's per-step seconds (what stacking them saves "
                   f"is the benchmark's pool{search_cfg.pool_batch}_vs_sequential"
                   f"{search_cfg.pool_batch} where measured; the same on a compute-bound CPU)")
    out.append("searches in lockstep (search.lockstep) cost the same candidates; what they "
               "save is GPUs, not candidate-seconds, and is not modelled")
    if search_cfg.evaluation_seeds != "per_evaluation":
        out.append("evaluation_seeds is not per_evaluation: a loss found again would hit the "
                   "cache, so the projection is an upper bound")
    return out


def project_searches(measured: Iterable[dict], configs: Mapping[str, tuple],
                     step_costs: Mapping, val_n: int | None) -> dict:
    """The modelled cost of one search per augmentation of ``configs`` (augmentation ->
    (SearchConfig, FitnessConfig), e.g. an experiment's five), each with the rates of the
    measured search of that augmentation, else of the first one given (said in its
    ``inputs``): ``{"searches": {aug: project(..., searches=1)}, "total": {"searches",
    "evaluations", "seconds", "hours"}}``."""
    measured = list(measured)
    if not measured:
        raise CostError("no measured search to take the rates from")
    own = {m.get("augmentation"): m for m in measured}
    out = {}
    for aug, (search_cfg, fitness_cfg) in configs.items():
        m = own.get(aug, measured[0])
        out[aug] = project(m, search_cfg, fitness_cfg, step_costs, val_n, searches=1,
                           augmentation=aug)
    seconds = sum(p["per_search"]["seconds"] for p in out.values())
    return {"searches": out,
            "total": {"searches": len(out),
                      "evaluations": sum(p["per_search"]["evaluations"] for p in out.values()),
                      "seconds": seconds, "hours": seconds / 3600}}


# --- text ----------------------------------------------------------------------------------------

def _pct(v) -> str:
    """A share as text ("—" when unknown)."""
    return "—" if v is None else f"{100 * v:.1f} %"


def _num(v, fmt: str = ".3g") -> str:
    """A number as text ("—" when unknown)."""
    return "—" if v is None else format(v, fmt)


#: What "passed" means per stage, in words.
PASSED = {"prescreen": "passed (not failed, aborted or diverged)",
          "prefilter": "went on to a main run", "main": "kept (fitness counts)"}


def describe(measured: dict) -> str:
    """The measured model of one search as text (what ``augloss cost`` prints)."""
    m = measured
    t = m["timings"]
    lines = [f"search {m['search_dir']} (augmentation {m['augmentation'] or 'unknown'})",
             "  timings: " + (f"{t['device']}, {t['threads']} threads, from {m['sources']['cost']}"
                              " (wall time, accumulated across resumes: not reproducible)"
                              if t else "none (no cost.json)")]
    for stage in STAGES:
        s = m["stages"][stage]
        if not s["evaluations"]:
            continue
        line = (f"  {stage}: {s['evaluations']} evaluations, {PASSED[stage]} "
                f"{_pct(s['pass_rate'])}, "
                f"{_num(s['epochs_mean'])} epochs each ({_pct(s['epochs_fraction'])} of the "
                f"recipe's)")
        if s["statuses"]:
            line += "; " + ", ".join(f"{k} {v}" for k, v in s["statuses"].items())
        tt = (t or {}).get("stages", {}).get(stage) if t else None
        if tt:
            line += (f"; cache hits {tt['cache_hits']}/{tt['requested']} "
                     f"({_pct(tt['hit_rate'])}), {_num(tt['s_per_training'])} s per trained "
                     f"candidate, {_num(tt['s_per_epoch'])} s per epoch")
        lines.append(line)
    ev = m["evolve"]
    if ev["children"]:
        r = m["rates"]["evolve"]
        lines.append(f"  evolve: {ev['children']} children, {_num(ev['attempts_per_child'])} "
                     f"attempts per child, {ev['discarded']} discarded "
                     f"({ev['mutation_failed']} mutation failures); per attempt: pre-filter "
                     f"passed {_pct(r['prefilter_pass'])}, main run kept "
                     f"{_pct(r['main_kept'])}")
    c = m["cache"]
    if c and not t:
        lines.append(f"  cache: {c['cache_hits']} hits, {c['trainings']} trainings "
                     f"({c['source']})")
    lines += [f"  note: {n}" for n in m["notes"]]
    return "\n".join(lines)


def describe_projection(projection: dict) -> str:
    """A :func:`project` or :func:`project_searches` result as text."""
    if "total" in projection:
        parts = [describe_projection(p) for p in projection["searches"].values()]
        tot = projection["total"]
        parts.append(f"all {tot['searches']} searches: {tot['evaluations']:,.0f} evaluations, "
                     f"{tot['hours']:,.1f} hours")
        return "\n".join(parts)
    p = projection
    inp = p["inputs"]
    machine = inp["step_costs_from"]["machine"]
    rates = inp["rates_from"]
    a = p["attempts"]
    lines = [f"projection for {p['augmentation']} (rates from {rates['search_dir']}, "
             f"augmentation {rates['augmentation']}; step costs ({STATISTIC}) from "
             f"{machine.get('device', 'an unnamed machine')}"
             + (f", {machine['threads']} threads" if machine.get("threads") else "")
             + f"; val_n {inp['val_n']})",
             f"  attempts per child: {a['expected_per_child']:.3f} expected (per attempt: "
             f"pre-filter passed {_pct(a['prefilter_pass'])}, main kept {_pct(a['main_kept'])}"
             f", at most {a['max_evaluations']}); measured "
             f"{_num(a['measured_per_child'])} over {a['measured_children']} children"]
    for phase, stages in p["phases"].items():
        for stage, v in stages.items():
            lines.append(f"  {phase}/{stage}: {v['evaluations']:,.1f} evaluations x "
                         f"{v['epochs_per_evaluation']:.2f} epochs x "
                         f"{v['seconds_per_epoch']:.3g} s = {v['seconds'] / 3600:,.2f} h")
    lines.append(f"  per search: {p['per_search']['evaluations']:,.0f} evaluations, "
                 f"{p['per_search']['hours']:,.1f} hours"
                 + (f"; {p['searches']} searches: {p['all_searches']['hours']:,.1f} hours"
                    if p["searches"] != 1 else ""))
    return "\n".join(lines)


def describe_assumptions(projection: dict) -> str:
    """The assumptions of a projection, one per line."""
    one = projection["searches"][next(iter(projection["searches"]))] \
        if "total" in projection else projection
    return "\n".join(f"  assumes: {a}" for a in one["assumptions"])
