"""The search cost model (augloss.search.cost): measured from fabricated search outputs with
known counts, and the projection checked against hand arithmetic and a simulation."""

import json

import numpy as np
import pytest

from augloss.config import FitnessConfig, SearchConfig
from augloss.search import cost
from augloss.search import status as st

# The measured search's recipes (its summary.json): epochs, steps and the first abort epoch.
RECIPES = {
    "prescreen": {"epochs": 10, "steps_per_epoch": 5, "abort": [[2, 0.35]]},
    "prefilter": {"epochs": 4, "steps_per_epoch": 5, "abort": []},
    "main": {"epochs": 10, "steps_per_epoch": 5, "abort": [[3, 0.22]]},
}


def _e(phase, stage, status, epochs, iteration=-1, evaluation=None):
    e = {"phase": phase, "stage": stage, "status": status, "epochs_run": epochs,
         "iteration": iteration, "fitness": 0.5, "key": f"k{phase}{iteration}{status}"}
    if evaluation is not None:
        e["evaluation"] = evaluation
    return e


def history():
    """Pool: 10 screens; rescore: 4 members; evolve: 4 children (see the counts below)."""
    pool = ([_e("pool", "prescreen", st.ACCEPTED, 10)] * 5
            + [_e("pool", "prescreen", st.TERMINATED, 4)]
            + [_e("pool", "prescreen", st.ABORTED, 3)] * 2
            + [_e("pool", "prescreen", st.FAILED, 10), _e("pool", "prescreen", st.DIVERGED, 5)])
    rescore = [_e("rescore", "prefilter", st.FAILED_PREFILTER, 4),
               _e("rescore", "main", st.ACCEPTED, 10), _e("rescore", "main", st.ACCEPTED, 10),
               _e("rescore", "main", st.ABORTED, 4)]
    evolve = [
        # child 0: a failed pre-filter, then a kept main run (2 attempts)
        _e("evolve", "prefilter", st.FAILED_PREFILTER, 4, 0, 1),
        _e("evolve", "main", st.ACCEPTED, 10, 0, 2),
        # child 1: a rejected mutant, a failed main run, a diverged one: discarded (2 attempts)
        {"phase": "evolve", "iteration": 1, "evaluation": 1, "attempt": 1,
         "status": st.REJECTED_STRUCTURE, "fitness": None, "key": None},
        _e("evolve", "main", st.FAILED, 10, 1, 1),
        _e("evolve", "main", st.DIVERGED, 2, 1, 2),
        # child 2: no valid mutant (no training)
        {"phase": "evolve", "iteration": 2, "evaluation": 1, "status": st.MUTATION_FAILED,
         "fitness": None, "expression": None, "key": None},
        # child 3: an aborted main run is kept (its fitness counts)
        _e("evolve", "main", st.ABORTED, 4, 3, 1),
    ]
    return pool + rescore + evolve


COST = {"version": 1, "device": "cuda (NVIDIA H200)", "threads": 4, "phases": {
    "prescreen": {"requested": 10, "cache_hits": 1, "trainings": 9, "calls": 9, "epochs": 68,
                  "steps": 340, "seconds": 34.0},
    "prefilter": {"requested": 6, "cache_hits": 0, "trainings": 6, "calls": 6, "epochs": 24,
                  "steps": 120, "seconds": 6.0},
    "main": {"requested": 7, "cache_hits": 2, "trainings": 5, "calls": 5, "epochs": 40,
             "steps": 200, "seconds": 20.0}}}


def search_dir(root, aug="base", entries=None, with_cost=True, summary=True, cost_in_work=False):
    d = root / aug
    d.mkdir(parents=True)
    lines = entries if entries is not None else history()
    (d / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    if summary:
        (d / "summary.json").write_text(json.dumps({"augmentation": aug, "val_n": 1000,
                                                    "recipes": RECIPES}))
    (d / "cache_stats.json").write_text(json.dumps({"trainings": 20, "cache_hits": 3}))
    if with_cost:
        where = d / "work" if cost_in_work else d
        where.mkdir(exist_ok=True)
        (where / "cost.json").write_text(json.dumps(COST))
    return d


def test_measured_counts_pass_rates_epochs_and_hit_rates_are_exact(tmp_path):
    m = cost.measure(search_dir(tmp_path))
    assert m["augmentation"] == "base" and m["prefilter"] and m["epochs_known"]
    pre = m["stages"]["prescreen"]
    assert pre["evaluations"] == 10 and pre["passed"] == 6  # accepted 5 + terminated 1
    assert pre["pass_rate"] == pytest.approx(0.6)
    assert pre["epochs_run"] == 75 and pre["epochs_mean"] == pytest.approx(7.5)
    assert pre["epochs_fraction"] == pytest.approx(0.75)
    assert pre["aborted"] == 2 and pre["aborted_epochs_mean"] == 3
    assert pre["rest_epochs_fraction"] == pytest.approx(69 / 80)
    # pre-filter: 2 failed entries, 7 that went on to a main run (no entry of their own)
    pf = m["stages"]["prefilter"]
    assert (pf["evaluations"], pf["passed"], pf["implicit"]) == (9, 7, 7)
    assert pf["pass_rate"] == pytest.approx(7 / 9) and pf["epochs_mean"] == pytest.approx(4)
    assert pf["by_phase"]["rescore"]["pass_rate"] == pytest.approx(3 / 4)
    assert pf["by_phase"]["evolve"]["pass_rate"] == pytest.approx(4 / 5)
    main = m["stages"]["main"]
    assert (main["evaluations"], main["passed"]) == (7, 5)  # kept: accepted 3 + aborted 2
    assert main["epochs_run"] == 50 and main["epochs_fraction"] == pytest.approx(50 / 70)
    assert main["shares"][st.ACCEPTED] == pytest.approx(3 / 7)
    assert main["shares"][st.ABORTED] == pytest.approx(2 / 7)
    assert main["shares"][st.DIVERGED] == pytest.approx(1 / 7)
    assert main["by_phase"]["evolve"]["pass_rate"] == pytest.approx(0.5)
    ev = m["evolve"]
    assert ev == {"children": 4, "attempts": 5, "attempts_per_child": 1.25,
                  "attempts_histogram": {0: 1, 1: 1, 2: 2}, "kept": 2, "discarded": 2,
                  "mutation_failed": 1}
    assert m["rates"]["evolve"] == {"prefilter_pass": pytest.approx(0.8),
                                    "main_kept": pytest.approx(0.5),
                                    "attempt_kept": pytest.approx(0.4)}
    t = m["timings"]
    assert t["device"] == "cuda (NVIDIA H200)" and t["threads"] == 4 and t["seconds"] == 60.0
    ps = t["stages"]["prescreen"]
    assert ps["hit_rate"] == pytest.approx(0.1) and ps["s_per_training"] == pytest.approx(34 / 9)
    assert ps["s_per_epoch"] == pytest.approx(0.5) and ps["s_per_step"] == pytest.approx(0.1)
    assert m["cache"]["hit_rate"] == pytest.approx(3 / 23)
    assert m["cache"]["source"].endswith("cost.json")
    text = cost.describe(m)
    assert "prescreen: 10 evaluations, passed (not failed, aborted or diverged) 60.0 %" in text and "1.25 attempts" in text


def test_cost_json_in_work_is_found_and_a_missing_one_is_said(tmp_path):
    assert cost.measure(search_dir(tmp_path / "a", cost_in_work=True))["sources"]["cost"] \
        .endswith("work/cost.json")
    m = cost.measure(search_dir(tmp_path / "b", with_cost=False))
    assert m["timings"] is None
    assert m["cache"] == {"source": str(tmp_path / "b" / "base" / "cache_stats.json"),
                          "requested": None, "cache_hits": 3, "trainings": 20,
                          "hit_rate": pytest.approx(3 / 23)}
    assert any("no cost.json" in n for n in m["notes"])
    assert "timings: none (no cost.json)" in cost.describe(m)
    # the counts do not depend on cost.json
    assert m["stages"] == cost.measure(search_dir(tmp_path / "c"))["stages"]


def test_an_old_history_without_epochs_run_is_measured_with_epochs_unknown(tmp_path):
    old = [{k: v for k, v in e.items() if k != "epochs_run"} for e in history()]
    m = cost.measure(search_dir(tmp_path, entries=old))
    assert not m["epochs_known"]
    assert m["stages"]["main"]["pass_rate"] == pytest.approx(5 / 7)  # the rest still there
    assert m["stages"]["main"]["epochs_mean"] is None
    assert any("lack epochs_run" in n for n in m["notes"])
    with pytest.raises(cost.CostError, match="lacks epochs_run"):
        cost.project(m, *paper_like(), FIGURES, 1000)


def test_a_missing_or_malformed_history_names_the_file(tmp_path):
    with pytest.raises(cost.CostError, match=r"history\.jsonl: no such file"):
        cost.measure(tmp_path)
    d = search_dir(tmp_path / "x")
    (d / "history.jsonl").write_text('{"phase": "pool"}\n{not json\n')
    with pytest.raises(cost.CostError, match=r"history\.jsonl line 2: not valid JSON"):
        cost.measure(d)
    d = search_dir(tmp_path / "y")
    (d / "cost.json").write_text('{"version": 0}')
    with pytest.raises(cost.CostError, match=r"cost\.json: not a version-1 cost record"):
        cost.measure(d)


# --- the truncated geometric --------------------------------------------------------------------

def test_expected_attempts_edge_cases():
    assert cost.expected_attempts(1.0, 7) == 1.0
    assert cost.expected_attempts(0.0, 7) == 7.0
    assert cost.expected_attempts(0.5, 1) == 1.0
    assert cost.expected_attempts(0.5, 3) == pytest.approx(1 + 0.5 + 0.25)
    assert cost.discard_probability(0.0, 7) == 1.0 and cost.discard_probability(1.0, 7) == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            cost.expected_attempts(bad, 7)
    with pytest.raises(ValueError):
        cost.expected_attempts(0.5, 0)


@pytest.mark.parametrize("q, r", [(0.3, 0.9), (0.6, 0.5), (0.95, 0.99)])
def test_expected_attempts_and_main_runs_match_a_simulation(q, r):
    """Children simulated attempt by attempt (a pre-filter passing with probability q, then a
    main run kept with probability r; at most M attempts): the mean attempts per child and
    main runs per child agree with expected_attempts(q r, M) and q times it. The tolerance
    is 5 standard errors of the simulated mean (its sample sd / sqrt(n)): a false failure
    has probability below 1e-6 per check, and a wrong formula (e.g. an untruncated 1/p, or
    M - 1 terms) misses by more than 10 standard errors at these n."""
    rng = np.random.default_rng(12345)
    n, M = 200_000, 7
    passed = rng.random((n, M)) < q
    kept = passed & (rng.random((n, M)) < r)
    first = np.where(kept.any(axis=1), kept.argmax(axis=1) + 1, M)  # attempts per child
    mains = (passed & (np.arange(1, M + 1) <= first[:, None])).sum(axis=1)
    expected = cost.expected_attempts(q * r, M)
    for sample, target in ((first, expected), (mains, q * expected)):
        se = sample.std(ddof=1) / np.sqrt(n)
        assert abs(sample.mean() - target) < 5 * se, (sample.mean(), target, se)
    discarded = (~kept.any(axis=1)).mean()
    p = cost.discard_probability(q * r, M)
    assert abs(discarded - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-12


# --- the projection -----------------------------------------------------------------------------

FIGURES = {"machine": {"device": "cuda (NVIDIA H200)", "threads": 16}, "settings": {},
           "figures": {
               "cost_step_s_prescreen": {"min": 0.009, "median": 0.01, "max": 0.02, "n": 3},
               "cost_step_s_prefilter": {"min": 0.009, "median": 0.01, "max": 0.02, "n": 3},
               "cost_step_s_main_base": {"min": 0.01, "median": 0.02, "max": 0.03, "n": 3},
               "cost_val_s_per_image_prescreen": {"median": 1e-5},
               "cost_val_s_per_image_prefilter": {"median": 1e-5},
               "cost_val_s_per_image_main": {"median": 2e-5}}}


def paper_like():
    """A target configuration: the paper's recipe shapes (80 epochs of 100 steps, the screens'
    abort at 0-based epoch 6, the main run's at 7, an 8-epoch pre-filter), a small budget."""
    search = SearchConfig(population=10, initial_pool=100, children=50, max_evaluations=3,
                          top_k=2)
    main = {"epochs": 80, "steps_per_epoch": 100, "batch_size": 64, "abort": [[7, 0.22]]}
    fitness = FitnessConfig(main=main, prescreen={**main, "batch_size": 128,
                                                  "abort": [[6, 0.35]], "fail_below": 0.35},
                            prefilter={**main, "epochs": 8, "batch_size": 128, "abort": [],
                                       "fail_below": 0.35})
    return search, fitness


def test_projection_arithmetic_by_hand(tmp_path):
    m = cost.measure(search_dir(tmp_path))
    p = cost.project(m, *paper_like(), FIGURES, 1000, searches=5)
    # seconds per epoch: 100 steps x step cost + 1000 images x validation cost
    screen, main = 100 * 0.01 + 1000 * 1e-5, 100 * 0.02 + 1000 * 2e-5
    # pool: 20 % aborted (at epoch 6 + 1 = 7; measured at their first abort, no lag), the
    # rest ran 69/80 of their recipe -> 0.8 x 0.8625 x 80
    pool = p["phases"]["pool"]["prescreen"]
    assert pool["epochs_per_evaluation"] == pytest.approx(0.2 * 7 + 0.8 * 0.8625 * 80)
    assert pool["evaluations"] == 100 and pool["seconds_per_epoch"] == pytest.approx(screen)
    # rescore: 10 pre-filters (full 8 epochs), 75 % pass -> 7.5 main runs; a third aborted
    # (8 epochs), the rest full
    rs = p["phases"]["rescore"]
    assert rs["prefilter"]["evaluations"] == 10 and rs["prefilter"]["epochs_per_evaluation"] == 8
    assert rs["main"]["evaluations"] == pytest.approx(7.5)
    assert rs["main"]["epochs_per_evaluation"] == pytest.approx(8 / 3 + 2 / 3 * 80)
    # evolve: p = 0.8 x 0.5 = 0.4 per attempt, M = 3: (1 - 0.6^3) / 0.4 = 1.96 attempts
    a = p["attempts"]
    assert a["expected_per_child"] == pytest.approx(1.96)
    assert a["measured_per_child"] == 1.25 and a["discard_probability"] == pytest.approx(0.216)
    evo = p["phases"]["evolve"]
    assert evo["prefilter"]["evaluations"] == pytest.approx(98)
    assert evo["main"]["evaluations"] == pytest.approx(78.4)
    # evolve main: a quarter aborted (8 epochs), the rest ran 22/30 of their recipe
    assert evo["main"]["epochs_per_evaluation"] == pytest.approx(0.25 * 8 + 0.75 * 22 / 30 * 80)
    total = (100 * 56.6 * screen + 10 * 8 * screen + 7.5 * 56 * main + 98 * 8 * screen
             + 78.4 * 46 * main)
    assert total == pytest.approx(14722.568)
    assert p["per_search"]["seconds"] == pytest.approx(total)
    assert p["per_search"]["hours"] == pytest.approx(total / 3600)
    assert p["all_searches"]["hours"] == pytest.approx(5 * total / 3600)
    assert p["per_search"]["evaluations"] == pytest.approx(100 + 10 + 7.5 + 98 + 78.4)
    assert p["stages"]["main"]["seconds"] == pytest.approx((7.5 * 56 + 78.4 * 46) * main)
    inputs = p["inputs"]
    assert inputs["rates_from"]["search_dir"] == str(tmp_path / "base")
    assert inputs["step_costs_from"]["machine"]["device"] == "cuda (NVIDIA H200)"
    assert inputs["step_costs_from"]["figures"]["cost_step_s_main_base"] == 0.02  # the median
    assert any("geometric" in s for s in p["assumptions"])
    text = cost.describe_projection(p)
    assert "1.960 expected" in text and "5 searches" in text


def test_an_aborted_runs_lag_past_its_first_abort_epoch_carries_over(tmp_path):
    """An aborted main run that stopped 2 epochs after its recipe's first abort epoch stops
    2 epochs after the target's."""
    entries = [_e("pool", "prescreen", st.ACCEPTED, 10),
               _e("rescore", "main", st.ABORTED, 6), _e("rescore", "main", st.ACCEPTED, 10),
               _e("evolve", "main", st.ACCEPTED, 10, 0, 1)]
    recipes = {k: v for k, v in RECIPES.items() if k != "prefilter"}
    d = search_dir(tmp_path, entries=entries, summary=False)
    m = cost.measure(d, recipes=recipes)
    assert not m["prefilter"]
    search, fitness = paper_like()
    fitness = FitnessConfig(main=fitness.main, prescreen=fitness.prescreen)
    p = cost.project(m, search, fitness, FIGURES, 1000, augmentation="base")
    assert p["phases"]["rescore"]["main"]["aborted_epochs"] == 8 + 2
    assert "prefilter" not in p["phases"]["evolve"]
    assert p["attempts"]["expected_per_child"] == 1.0  # every attempt kept


def test_a_missing_figure_names_it_and_nothing_is_projected(tmp_path):
    m = cost.measure(search_dir(tmp_path))
    report = {**FIGURES, "figures": {k: v for k, v in FIGURES["figures"].items()
                                     if k != "cost_step_s_main_base"}}
    with pytest.raises(cost.MissingFigure, match="cost_step_s_main_base") as exc:
        cost.project(m, *paper_like(), report, 1000)
    assert exc.value.names == ["cost_step_s_main_base"]
    with pytest.raises(cost.MissingFigure, match="cost_step_s_main_mixup"):
        cost.project(m, *paper_like(), FIGURES, 1000, augmentation="mixup")
    with pytest.raises(cost.CostError, match="val_n"):
        cost.project(m, *paper_like(), FIGURES, None)


def test_a_projection_needs_the_rates_the_target_uses(tmp_path):
    """A measured search without a pre-filter cannot give the pre-filter's pass rate."""
    entries = [_e("pool", "prescreen", st.ACCEPTED, 10), _e("rescore", "main", st.ACCEPTED, 10)]
    d = search_dir(tmp_path, entries=entries, summary=False)
    m = cost.measure(d, recipes={k: v for k, v in RECIPES.items() if k != "prefilter"})
    with pytest.raises(cost.CostError, match="ran no pre-filter"):
        cost.project(m, *paper_like(), FIGURES, 1000)


def test_project_searches_sums_the_augmentations_and_names_borrowed_rates(tmp_path):
    m = cost.measure(search_dir(tmp_path))
    figures = {**FIGURES["figures"], "cost_step_s_main_mixup": {"median": 0.04}}
    configs = {"base": paper_like(), "mixup": paper_like()}
    out = cost.project_searches([m], configs, {**FIGURES, "figures": figures}, 1000)
    base, mixup = out["searches"]["base"], out["searches"]["mixup"]
    assert mixup["inputs"]["rates_from"]["augmentation"] == "base"  # borrowed, and said
    assert mixup["per_search"]["seconds"] > base["per_search"]["seconds"]
    assert out["total"]["seconds"] == pytest.approx(base["per_search"]["seconds"]
                                                    + mixup["per_search"]["seconds"])
    assert out["total"]["searches"] == 2 and "all 2 searches" in cost.describe_projection(out)


def test_the_cost_model_and_its_table_load_without_torch():
    """The search-cost table runs in a torch-free job (uses_torch=False): reading the cost
    model must not import torch through the search package."""
    import subprocess
    import sys

    code = ("import sys, augloss.search.cost, augloss.tables.search; "
            "from augloss.search import cost; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
