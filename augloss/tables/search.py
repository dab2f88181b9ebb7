"""The search table (best evolved loss per augmentation, the fitness against the noise, the
random-search baseline); the correlation table is :mod:`augloss.tables.correlation`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from augloss import names
from augloss.tables.collect import TableError
from augloss.tables.render import booktabs, html_page, missing, write_formats

# --- the search table ---------------------------------------------------------------------------

def _search_outputs(d: str | Path) -> tuple[dict, dict]:
    d = Path(d)
    try:
        return (json.loads((d / "best.json").read_text()),
                json.loads((d / "summary.json").read_text()))
    except (OSError, ValueError) as exc:
        raise TableError(f"{d}: unreadable search output ({exc})") from exc


def search_table(search_dirs: dict[str, str | Path],
                 random_dirs: dict[str, str | Path] | None = None) -> pd.DataFrame:
    """Per augmentation, from each search's best.json / summary.json: the best expression (text
    and LaTeX), its fitness in the search, CE's fitness under the search seed, evaluations and
    rejections; and the measurement on fresh seeds (``summary["noise"]``, seeds no search
    evaluation used): the winner's and CE's mean and sd, the winner's **lead** over CE paired
    by seed with its 95 % t interval (``lead``, ``lead_low``, ``lead_high``, ``lead_p``),
    ``fitness_noise`` (the sd pooled within CE and the winner) and ``top_k_sd`` (the spread
    among the search's top-k losses). ``fitness`` is the best of the winner's
    ``fitness_runs`` main runs in the search (a maximum over noisy runs, so optimistic; its
    mean over them is ``fitness_mean``): the fresh-seed columns are the unbiased measurement.
    ``val_n`` is the number of validation images (summary.json; None where not recorded) and
    ``binomial_se`` one run's binomial standard error sqrt(p(1 - p)/n) at CE's fresh-seed mean
    p (at its search-seed fitness without the fresh seeds). With ``random_dirs`` (the
    random-search baseline): its best's search fitness and fresh-seed mean, and **this**
    evolved winner minus **this** random-search winner paired by fresh seed (``vs_random``,
    ``vs_random_low``, ``vs_random_high``, ``vs_random_p``): two particular losses from one
    run of each search, so its interval holds their fresh-seed noise only, not the variation
    from search to search; whether evolution beats random sampling needs repeated searches.
    Cache hits and timings stay out (they differ between a fresh and a resumed search; see
    cache_stats.json), so the CSV is byte-reproducible."""
    rows = []
    for a in sorted(search_dirs, key=lambda x: (names.technique_order(x), x)):
        best, summary = _search_outputs(search_dirs[a])
        top = best["losses"][0] if best["losses"] else {}
        noise = summary.get("noise") or {}
        spread = summary.get("top_k") or {}
        lead = _paired(noise, "winner", noise, "ce", summary.get("val_n"))
        ce_fitness = best["reference"]["ce"]["fitness"]
        val_n = summary.get("val_n")
        row = {"augmentation": a, "seed": summary["seed"],
               "best_expression": top.get("expression", ""),
               "best_latex": top.get("latex", ""), "fitness": top.get("fitness"),
               "fitness_runs": top.get("main_runs"), "fitness_mean": top.get("fitness_mean"),
               "ce_fitness": ce_fitness,
               "noise_seeds": len(noise.get("seeds", [])) or None,
               "winner_mean": noise.get("winner_mean"), "winner_sd": noise.get("winner_sd"),
               "ce_mean": noise.get("ce_mean"), "ce_sd": noise.get("ce_sd"),
               "lead": lead["mean"], "lead_low": lead["low"], "lead_high": lead["high"],
               "lead_p": lead["p"], "fitness_noise": noise.get("fitness_noise"),
               "top_k": spread.get("n"), "top_k_sd": spread.get("sd"),
               "val_n": val_n,
               "binomial_se": binomial_se(noise.get("ce_mean", ce_fitness), val_n),
               "children": summary["children"], "evaluations": summary["evaluations"],
               "rejections": sum(summary["rejections"].values())}
        if random_dirs:
            r_best, r_summary = _search_outputs(random_dirs[a]) if a in random_dirs \
                else ({"losses": []}, {})
            r_noise = r_summary.get("noise") or {}
            versus = _paired(noise, "winner", r_noise, "winner", summary.get("val_n"))
            row.update({"random_fitness": r_best["losses"][0]["fitness"]
                        if r_best["losses"] else None,
                        "random_mean": r_noise.get("winner_mean"),
                        "vs_random": versus["mean"], "vs_random_low": versus["low"],
                        "vs_random_high": versus["high"], "vs_random_p": versus["p"]})
        rows.append(row)
    return pd.DataFrame(rows)


def binomial_se(p: float | None, n: int | None) -> float | None:
    """One run's binomial standard error of an accuracy ``p`` on ``n`` images,
    sqrt(p (1 - p) / n); None when either is unknown or ``p`` is no proportion."""
    if missing(p) or missing(n) or not n or not 0 <= p <= 1:
        return None
    return math.sqrt(p * (1 - p) / n)


def _paired(a: dict, key_a: str, b: dict, key_b: str, n_items: int | None = None) -> dict:
    """``a[key_a]`` minus ``b[key_b]``, each a list of fitness per ``seeds`` of its
    measurement, paired by seed: ``{"mean", "low", "high", "p"}``, the mean difference and
    its 95 % Student-t interval over the per-seed differences (:func:`augloss.stats.delta`,
    the comparison tables' paired test); None where there is nothing to pair, and the
    interval and p None where untestable (fewer than 2 pairs, or no variance)."""
    from augloss import stats

    none = {"mean": None, "low": None, "high": None, "p": None}
    if not a.get(key_a) or not b.get(key_b):
        return none
    x, y = dict(zip(a["seeds"], a[key_a])), dict(zip(b["seeds"], b[key_b]))
    seeds = sorted(set(x) & set(y))
    if not seeds:
        return none
    # at the fitness's resolution: a constant difference in counts is untestable
    d = stats.delta({s: x[s] for s in seeds}, {s: y[s] for s in seeds}, n_items=n_items)

    def num(v):
        return None if v is None or math.isnan(v) else float(v)

    return {"mean": num(d.delta), "low": num(d.low), "high": num(d.high), "p": d.p}


def write_search_table(df: pd.DataFrame, prefix: str | Path) -> list[Path]:
    from tabulate import tabulate

    prefix = Path(prefix)
    random = "random_fitness" in df
    noisy = df["noise_seeds"].notna().any() if "noise_seeds" in df else False
    seeds = int(df["noise_seeds"].max()) if noisy else 0
    md_rows = [[r.augmentation, f"`{r.best_expression}`", _fitness(r), _pct(r.ce_fitness)]
               + ([_pm(r.winner_mean, r.winner_sd), _pm(r.ce_mean, r.ce_sd),
                   _ci(r.lead, r.lead_low, r.lead_high)] if noisy else [])
               + [_pct(r.fitness_noise), _pct(r.top_k_sd)]
               + ([_pct(r.random_fitness)]
                  + ([_pct(r.random_mean), _ci(r.vs_random, r.vs_random_low, r.vs_random_high)]
                     if noisy else []) if random else [])
               + [r.evaluations, r.rejections]
               for r in df.itertuples()]
    fresh = f"{seeds} fresh seeds"
    headers = (["augmentation", "best loss", "fitness", "CE fitness"]
               + ([f"winner ({fresh})", f"CE ({fresh})", "lead over CE (95 % CI)"]
                  if noisy else [])
               + ["fitness_noise", "top-k sd"]
               + (["random search"]
                  + ([f"random ({fresh})", VS_RANDOM_HEADER] if noisy else [])
                  if random else [])
               + ["evaluations", "rejections"])
    title = "Search: best evolved loss per augmentation (surrogate validation accuracy, %)"
    note = SEARCH_NOTE.format(seeds=seeds or "several", df=max(seeds - 1, 1))
    if random:
        note += " " + SEARCH_RANDOM_NOTE
    note += " " + _validation_note(df)
    md = (f"### {title}\n\n"
          + tabulate(md_rows, headers, tablefmt="github", disable_numparse=True)
          + "\n\n" + note + "\n")
    # LaTeX: the loss as a formula, unescaped; every other cell escaped by tabulate.
    tex = booktabs(headers, md_rows, raw={1: [f"${r.best_latex}$" for r in df.itertuples()]})
    return write_formats(prefix, md, df.to_csv(index=False, lineterminator="\n"), tex,
                         html_page(title, [(title, headers, md_rows, [note])]))


def _fitness(r) -> str:
    """The search fitness with the number of main runs it is the maximum of."""
    runs = getattr(r, "fitness_runs", None)
    if missing(r.fitness) or missing(runs):
        return _pct(r.fitness)
    runs = int(runs)
    return f"{_pct(r.fitness)} ({'max of ' + str(runs) + ' runs' if runs > 1 else '1 run'})"


def _validation_note(df: pd.DataFrame) -> str:
    """The validation-set size and one run's binomial standard error at CE's mean, per
    augmentation; "not recorded" where summary.json has no ``val_n``."""
    if "val_n" not in df or df["val_n"].isna().all():
        return ("Validation set (the search dataset's val split): size not recorded, so one "
                "run's binomial standard error is not given.")
    sizes = sorted({int(n) for n in df["val_n"] if not missing(n)})
    size = (f"{sizes[0]} images" if len(sizes) == 1 and df["val_n"].notna().all()
            else ", ".join(f"{'not recorded' if missing(r.val_n) else int(r.val_n)} "
                           f"({r.augmentation})" for r in df.itertuples()) + " images")
    ses = ", ".join(f"{'—' if missing(r.binomial_se) else f'{100 * r.binomial_se:.2f}'} "
                    f"({r.augmentation})" for r in df.itertuples())
    return (f"Validation set (the search dataset's val split, where every fitness is "
            f"measured): {size}. One run's binomial standard error, sqrt(p(1 − p)/n) at "
            f"cross-entropy's fresh-seed mean p (its search-seed fitness without fresh seeds), "
            f"in percentage points: {ses}; the part of one run's noise that comes from the finite "
            f"validation sample alone.")



def _pct(v) -> str:
    return "—" if missing(v) else f"{100 * v:.2f}"


def _pm(mean, sd) -> str:
    return "—" if _pct(mean) == "—" else f"{_pct(mean)} ± {_pct(sd)}"


def _ci(mean, low, high) -> str:
    """A paired difference in percentage points with its interval: ``+1.20 [-0.31, +2.71]``."""
    if missing(mean):
        return "—"
    if missing(low) or missing(high):
        return f"{100 * mean:+.2f} [untestable]"
    return f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"


VS_RANDOM_HEADER = "this winner − this random winner (paired over fresh seeds, 95 % CI)"

SEARCH_NOTE = (
    "fitness: the winner's score in the search, the best of its main runs there (\"max of k "
    "runs\": a loss found again is trained again under a new seed and keeps its best of k "
    "noisy draws, so the selection leans toward losses found often), and the score it was "
    "selected on: a maximum, optimistic (the winner's curse); best.json gives each top loss's "
    "number of main runs (main_runs) and their mean (fitness_mean). CE fitness: cross-entropy "
    "trained once under the search seed. winner / CE ({seeds} fresh seeds): mean ± sd of the "
    "winner and of cross-entropy trained again on {seeds} seeds that no search evaluation "
    "used; these fresh-seed columns are the unbiased measurement. lead over CE: the winner "
    "minus cross-entropy paired by fresh seed, in percentage points, with its 95 % Student-t "
    "interval over the per-seed differences (df = {df}); an interval that contains 0 does not "
    "tell the winner from cross-entropy. fitness_noise: the sd over the fresh seeds pooled "
    "within the distinct losses measured (cross-entropy and the winner; once when the winner "
    "is cross-entropy itself), how far one loss's fitness moves with the seed alone. top-k "
    "sd: the sd of the search fitness among its top-k losses (the ones worth transferring; "
    "failed candidates left out), to read against fitness_noise.")
SEARCH_RANDOM_NOTE = (
    "random search: the best of the random-search baseline (same pool, evaluator and budget, "
    "no selection) by its search score; random (fresh seeds): that loss's mean on the same "
    "fresh seeds; this winner − this random winner: this evolved winner minus this "
    "random-search winner, paired over the fresh seeds, in percentage points, with its 95 % t "
    "interval. It compares two particular losses from one run of each search: the interval "
    "covers their fresh-seed noise only, not the variation from one search to another "
    "(another search seed finds other winners). Whether evolution beats random sampling, the "
    "algorithm-level claim, needs repeated searches (several search seeds), which this table "
    "does not have.")


# --- the search cost table (timings: not byte-reproducible) -------------------------------------

#: The measures of each stage in the cost table (columns ``<stage>_<measure>``).
COST_MEASURES = ("evaluations", "passed", "pass_rate", "epochs_mean", "epochs_fraction",
                 "requested", "cache_hits", "hit_rate", "trainings", "seconds",
                 "s_per_training", "s_per_epoch")


def cost_table(search_dirs: dict[str, str | Path]) -> pd.DataFrame:
    """Per augmentation, what its search measured (:func:`augloss.search.cost.measure`): per
    stage (pre-screen, pre-filter, main run) the evaluations, how many passed and the pass
    rate (pre-screen: not failed, aborted or diverged; pre-filter: went on to a main run;
    main: kept, its fitness counts), the mean epochs run per evaluation and as a fraction of
    the recipe's; from cost.json the evaluations requested, cache hits and hit rate,
    trainings, seconds, seconds per trained candidate and per epoch; for the evolve phase the
    children, attempts (evaluations) per child, children discarded and mutation failures, the
    per-attempt pre-filter pass and main-run kept rates; the machine (cost.json's device and
    threads). The counts come from history.jsonl and repeat; the seconds and cache counts are
    timings (accumulated across resumes), so unlike :func:`search_table` this table is not
    byte-reproducible. Timing columns are empty for a search without cost.json."""
    from augloss.search.cost import STAGES, CostError, measure

    rows = []
    for a in sorted(search_dirs, key=lambda x: (names.technique_order(x), x)):
        try:
            m = measure(search_dirs[a])
        except CostError as exc:
            raise TableError(str(exc)) from exc
        t = m["timings"] or {}
        row = {"augmentation": a, "device": t.get("device"), "threads": t.get("threads"),
               "timings": m["sources"]["cost"]}
        for stage in STAGES:
            s = m["stages"][stage]
            tt = t.get("stages", {}).get(stage, {})
            for key in COST_MEASURES:
                row[f"{stage}_{key}"] = s.get(key) if key in s else tt.get(key)
        ev, rates = m["evolve"], m["rates"]["evolve"]
        row.update({"children": ev["children"], "attempts_per_child": ev["attempts_per_child"],
                    "children_discarded": ev["discarded"],
                    "mutation_failed": ev["mutation_failed"],
                    "evolve_prefilter_pass": rates["prefilter_pass"],
                    "evolve_main_kept": rates["main_kept"],
                    "cache_hits": (m["cache"] or {}).get("cache_hits"),
                    "trainings": (m["cache"] or {}).get("trainings"),
                    "seconds": t.get("seconds"), "epochs_known": m["epochs_known"]})
        rows.append(row)
    return pd.DataFrame(rows)


def write_cost_table(df: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``prefix.md`` and ``prefix.csv`` of :func:`cost_table` (e.g. ``tables/search_cost``,
    beside the search table); the Markdown says these are timings and where they were
    measured."""
    from tabulate import tabulate

    from augloss.io import atomic_write_text
    from augloss.search.cost import STAGES

    prefix = Path(prefix)
    stage_rows = []
    for r in df.to_dict("records"):
        for stage in STAGES:
            if not r[f"{stage}_evaluations"]:
                continue
            g = {k: r[f"{stage}_{k}"] for k in COST_MEASURES}
            stage_rows.append([
                r["augmentation"], stage, g["evaluations"],
                f"{g['passed']} ({_cost_pct(g['pass_rate'])})",
                "—" if missing(g["epochs_mean"]) else
                f"{g['epochs_mean']:.2f} ({_cost_pct(g['epochs_fraction'])})",
                "—" if missing(g["requested"]) else
                f"{int(g['cache_hits'])}/{int(g['requested'])} ({_cost_pct(g['hit_rate'])})",
                _seconds(g["s_per_training"]), _seconds(g["s_per_epoch"]),
                _seconds(g["seconds"])])
    stage_headers = ["augmentation", "stage", "evaluations", "passed",
                     "epochs per evaluation (of the recipe's)", "cache hits",
                     "s per trained candidate", "s per epoch", "s in all"]
    evolve_rows = [[r["augmentation"], r["children"],
                    "—" if missing(r["attempts_per_child"]) else f"{r['attempts_per_child']:.2f}",
                    r["children_discarded"], r["mutation_failed"],
                    _cost_pct(r["evolve_prefilter_pass"]), _cost_pct(r["evolve_main_kept"])]
                   for r in df.to_dict("records")]
    evolve_headers = ["augmentation", "children", "attempts per child", "discarded",
                      "mutation failures", "pre-filter passed (per attempt)",
                      "main run kept (per attempt)"]
    where = "; ".join(
        f"{r['augmentation']}: " + ("no cost.json (timings unknown)" if missing(r["device"])
                                     else f"{r['device']}, {_int_text(r['threads'])} threads "
                                          f"({r['timings']})")
        for r in df.to_dict("records"))
    unknown = [r["augmentation"] for r in df.to_dict("records") if not r["epochs_known"]]
    title = "Search cost: evaluations, pass rates, epochs and timings per search"
    md = (f"### {title}\n\n"
          + tabulate(stage_rows, stage_headers, tablefmt="github", disable_numparse=True)
          + "\n\n"
          + tabulate(evolve_rows, evolve_headers, tablefmt="github", disable_numparse=True)
          + "\n\n" + COST_NOTE + f" Measured on: {where}."
          + (f" History without epochs_run (epochs unknown): {', '.join(unknown)}."
             if unknown else "") + "\n")
    paths = [prefix.with_name(prefix.name + ".md"), prefix.with_name(prefix.name + ".csv")]
    atomic_write_text(paths[0], md)
    counts = [c for c in df.columns if c in _COST_COUNTS or c.endswith(_COST_COUNT_SUFFIXES)]
    atomic_write_text(paths[1], df.astype({c: "Int64" for c in counts})
                      .to_csv(index=False, lineterminator="\n"))
    return paths


#: Integer columns of the cost table (written as integers, empty where unknown).
_COST_COUNTS = ("threads", "children", "children_discarded", "mutation_failed", "cache_hits",
                "trainings")
_COST_COUNT_SUFFIXES = ("_evaluations", "_passed", "_requested", "_cache_hits", "_trainings")


def _cost_pct(v) -> str:
    return "—" if missing(v) else f"{100 * v:.1f} %"


def _seconds(v) -> str:
    return "—" if missing(v) else f"{v:.3g}"


def _int_text(v) -> str:
    return "—" if missing(v) else str(int(v))


COST_NOTE = (
    "**These figures include timings: the seconds and cache hits are not byte-reproducible "
    "(unlike search.csv).** Seconds are wall time inside training calls from each search's "
    "cost.json, accumulated across resumes (training a kill interrupted before its "
    "checkpoint is not counted, and the resumed search finds what it had cached as hits); "
    "with pool_batch or lockstep a stacked call's seconds are shared among its copies. "
    "s per trained candidate = seconds / "
    "trainings, s per epoch = seconds / epochs trained (validation included). The "
    "evaluations, pass rates and epochs come from history.jsonl and repeat: passed: "
    "pre-screen not failed, aborted or diverged; pre-filter went on to a main run (a passed "
    "pre-filter leaves no history entry and counts at its recipe's epochs); main run kept "
    "(its fitness counts: accepted, aborted or terminated at a NaN). Attempts per child: the "
    "evaluations a child took (a pre-filter, and a main run if it passed) until one was kept "
    "or max_evaluations was reached (then discarded). `augloss cost` projects full searches "
    "from these rates and a benchmark report's seconds per step.")
