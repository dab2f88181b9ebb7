"""Searches with fresh noise, independent of each other (#24, point 4): a seed per evaluation,
a random stream per augmentation, the fresh-seed measurement and its paired intervals."""

import collections
import json
from dataclasses import replace

import numpy as np
import pytest
import yaml

from augloss.losses import Genome
from augloss.search import Search, SearchConfig
from augloss.search.breed import Breeder
from augloss.search.seeds import evaluation_seed, fresh_seeds, is_fresh, stream_entropy
from tests.helpers import FITNESS, REPO, TINY, FakeEvaluator, per_expression

OUTPUTS = ("history.jsonl", "population.json", "best.json", "summary.json")
# Small population, many children: losses age out and are found again.
REFIND = SearchConfig(population=3, initial_pool=6, children=60, tournament=2, top_k=2)


class CachingFake(FakeEvaluator):
    """FakeEvaluator behind a cache keyed like the surrogate's: (loss, augmentation, phase,
    seed). A hit returns the stored record and trains nothing."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.cache: dict[tuple, dict] = {}

    def evaluate_many(self, exprs, augmentation, phase, *, seed=None, label_smoothing=0.0):
        out = []
        for e, s in zip(exprs, per_expression(seed, len(exprs))):
            key = (e.key, augmentation, phase, s)
            if key in self.cache:
                self.hits += 1
            else:
                self.cache[key] = self.evaluate(e, augmentation, phase, s)
            out.append(self.cache[key])
        return out


def _history(d):
    return [json.loads(line) for line in (d / "history.jsonl").open()]


def _outputs(d):
    return {name: (d / name).read_bytes() for name in OUTPUTS}


def test_every_evaluation_draws_its_own_seed_and_records_it(tmp_path):
    ev = FakeEvaluator(seed_noise=0.2)
    Search("cutout", TINY, FITNESS, seed=3, out_dir=tmp_path, evaluator=ev).run()
    history = _history(tmp_path)
    trained = [e for e in history if e.get("stage")]
    assert trained and all("seed" in e and "evaluation_index" in e for e in trained)
    for e in trained:
        assert e["seed"] == evaluation_seed(3, "cutout", e["evaluation_index"])
        assert not is_fresh(e["seed"])
    # One seed per evaluation: the pool's and the main runs' seeds all differ (batch 1).
    mains = [e for e in trained if e["stage"] in ("main", "prescreen")]
    assert len({e["seed"] for e in mains}) == len(mains)
    # A main run records the seed of the pre-filter it passed, another evaluation's.
    after_screen = [e for e in trained if e["stage"] == "main" and "prefilter_seed" in e]
    assert after_screen and all(e["prefilter_seed"] != e["seed"] for e in after_screen)
    # Each training call took the next index's seed, in order, and never trained without one;
    # the last call is CE's reference under the search seed.
    state = json.loads((tmp_path / "state.json").read_text())
    called = [s for _, _, s in ev.seeds]
    assert called[-1] == 3 and len(called) - 1 == state["evaluations_drawn"]
    assert called[:-1] == [evaluation_seed(3, "cutout", i)
                           for i in range(state["evaluations_drawn"])]


def test_a_loss_found_again_is_trained_again_under_a_new_seed(tmp_path):
    ev = CachingFake(seed_noise=0.2)
    Search("base", REFIND, FITNESS, seed=0, out_dir=tmp_path, evaluator=ev).run()
    mains = [e for e in _history(tmp_path) if e.get("stage") == "main"]
    by_key = collections.defaultdict(list)
    for e in mains:
        by_key[e["key"]].append(e)
    again = {k: v for k, v in by_key.items() if len(v) > 1}
    assert again, "no loss was found twice: the test needs a search that re-finds one"
    for entries in again.values():
        assert len({e["seed"] for e in entries}) == len(entries)  # a new seed each time
        assert len({e["fitness"] for e in entries}) > 1  # a new draw of the noise
    # ... and a new training: nothing of the search came from the cache.
    assert ev.hits == 0 and ev.trainings >= len(mains)


def test_the_search_seed_option_gives_a_found_again_loss_its_cached_score(tmp_path):
    cfg = replace(REFIND, evaluation_seeds="search_seed")
    ev = CachingFake(seed_noise=0.2)
    Search("base", cfg, FITNESS, seed=0, out_dir=tmp_path, evaluator=ev).run()
    history = _history(tmp_path)
    assert {e["seed"] for e in history if e.get("stage")} == {0}
    mains = [e for e in history if e.get("stage") == "main"]
    by_key = collections.defaultdict(list)
    for e in mains:
        by_key[e["key"]].append(e["fitness"])
    again = {k: v for k, v in by_key.items() if len(v) > 1}
    assert again and all(len(set(v)) == 1 for v in again.values())  # the same score back
    assert ev.hits >= sum(len(v) - 1 for v in again.values())  # from the cache
    with pytest.raises(ValueError, match="search.algorithm.evaluation_seeds must be one of "
                                         "per_evaluation, search_seed"):
        SearchConfig(evaluation_seeds="per_loss")


def test_children_trained_together_share_one_seed_per_joint_call(tmp_path):
    cfg = replace(TINY, children=8, batch_children=4)
    Search("mixup", cfg, FITNESS, seed=2, out_dir=tmp_path,
           evaluator=FakeEvaluator(seed_noise=0.1)).run()
    evolve = [e for e in _history(tmp_path) if e["phase"] == "evolve" and e.get("stage")]
    calls = collections.defaultdict(set)
    for e in evolve:
        calls[e["evaluation_index"]].add(e["iteration"])
    assert any(len(iterations) > 1 for iterations in calls.values())  # one call, several children
    for e in evolve:
        assert e["seed"] == evaluation_seed(2, "mixup", e["evaluation_index"])


def test_each_augmentation_draws_its_own_pool_unless_the_stream_is_shared(tmp_path):
    def pool(aug, cfg):
        d = tmp_path / f"{aug}-{cfg.shared_stream}"
        Search(aug, cfg, FITNESS, seed=5, out_dir=d, evaluator=FakeEvaluator()).run()
        return [e["key"] for e in _history(d) if e["phase"] == "pool"]

    assert pool("base", TINY) != pool("cutout", TINY)
    assert len(set(pool("base", TINY)) & set(pool("cutout", TINY))) < TINY.initial_pool
    shared = replace(TINY, shared_stream=True)
    assert pool("base", shared) == pool("cutout", shared)
    # Shared: the one stream of the search seed (the behaviour before streams were split).
    expected = Breeder(shared).pool(np.random.default_rng(5))
    assert pool("mixup", shared) == [Genome.from_dict(g).to_expr().key for g in expected]
    assert stream_entropy(5, None) == 5 and stream_entropy(5, "base") != stream_entropy(5, "all")
    with pytest.raises(ValueError, match="search.algorithm.shared_stream must be true or false"):
        SearchConfig(shared_stream="yes")


class _Kill(Exception):
    pass


@pytest.mark.parametrize("kill_at", [2, 8, 11, 14])
def test_a_killed_search_resumes_with_the_same_evaluation_seeds(tmp_path, kill_at):
    cfg = replace(TINY, children=8, batch_children=2)
    ev = dict(diverge_every=5, fail_every=7, seed_noise=0.3)
    Search("all", cfg, FITNESS, seed=1, out_dir=tmp_path / "whole",
           evaluator=FakeEvaluator(**ev)).run()
    count = {"n": 0}

    def kill(state):
        count["n"] += 1
        if count["n"] == kill_at:
            raise _Kill()

    with pytest.raises(_Kill):
        Search("all", cfg, FITNESS, seed=1, out_dir=tmp_path / "killed",
               evaluator=FakeEvaluator(**ev)).run(callback=kill)
    Search("all", cfg, FITNESS, seed=1, out_dir=tmp_path / "killed",
           evaluator=FakeEvaluator(**ev)).run()
    assert _outputs(tmp_path / "whole") == _outputs(tmp_path / "killed")
    assert len({e["seed"] for e in _history(tmp_path / "whole") if e.get("stage")}) > 10


def test_fresh_seeds_are_never_a_seed_the_search_evaluated_with(tmp_path):
    cfg = replace(TINY, children=20)
    s = Search("base", cfg, FITNESS, seed=0, out_dir=tmp_path,
               evaluator=FakeEvaluator(seed_noise=0.1), noise_seeds=5)
    summary = s.run()
    used = {e["seed"] for e in _history(tmp_path) if e.get("stage")}
    used |= {e["prefilter_seed"] for e in _history(tmp_path) if "prefilter_seed" in e}
    used |= {evaluation_seed(0, a, i) for a in ("base", "cutout") for i in range(2000)}
    fresh = fresh_seeds(0, 50)
    assert summary["noise"]["seeds"] == fresh[:5] and not used & set(fresh)
    assert all(map(is_fresh, fresh)) and not any(map(is_fresh, used))


def test_the_random_baseline_measures_its_best_on_the_evolutions_fresh_seeds(tmp_path):
    evo = Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path / "e",
                 evaluator=FakeEvaluator(seed_noise=0.1), noise_seeds=3).run()
    rnd = Search("base", replace(TINY, strategy="random"), FITNESS, seed=0,
                 out_dir=tmp_path / "r", evaluator=FakeEvaluator(seed_noise=0.1),
                 noise_seeds=3).run()
    assert evo["noise"]["seeds"] == rnd["noise"]["seeds"]
    assert evo["noise"]["ce"] == rnd["noise"]["ce"]  # the same CE scores: one cache in the workflow


def test_search_table_pairs_the_fresh_seeds_as_scipy_does(tmp_path):
    from scipy import stats

    from augloss.search.summary import noise_summary
    from augloss.tables import search as tables

    seeds = fresh_seeds(0, 4)
    winner, ce, rnd = [0.71, 0.69, 0.74, 0.70], [0.66, 0.67, 0.65, 0.69], [0.70, 0.64, 0.70, 0.66]
    dirs = {}
    for name, best_list in (("evo", winner), ("rnd", rnd)):
        d = tmp_path / name
        d.mkdir()
        noise = noise_summary({"seeds": seeds, "ce": ce, "winner": best_list,
                               "winner_expression": "p"})
        (d / "best.json").write_text(json.dumps({
            "losses": [{"expression": "p", "latex": "p", "fitness": 0.8}],
            "reference": {"ce": {"fitness": 0.6}}}))
        (d / "summary.json").write_text(json.dumps({
            "seed": 0, "children": 4, "evaluations": 9, "rejections": {}, "noise": noise,
            "top_k": {"n": 3, "sd": 0.01}, "curve": []}))
        dirs[name] = d
    df = tables.search_table({"base": dirs["evo"]}, {"base": dirs["rnd"]})
    row = df.iloc[0]
    lead = stats.ttest_rel(winner, ce)
    low, high = lead.confidence_interval(0.95)
    assert row["lead"] == pytest.approx(np.mean(np.subtract(winner, ce)))
    assert (row["lead_low"], row["lead_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["lead_p"] == pytest.approx(lead.pvalue)
    versus = stats.ttest_rel(winner, rnd)
    low, high = versus.confidence_interval(0.95)
    assert row["vs_random"] == pytest.approx(np.mean(np.subtract(winner, rnd)))
    assert (row["vs_random_low"], row["vs_random_high"]) == (pytest.approx(low),
                                                             pytest.approx(high))
    # The summary's own lead is the same interval.
    summary = json.loads((dirs["evo"] / "summary.json").read_text())
    assert summary["noise"]["lead"]["low"] == pytest.approx(row["lead_low"])
    pooled = np.sqrt((np.var(winner, ddof=1) + np.var(ce, ddof=1)) / 2)
    assert row["fitness_noise"] == pytest.approx(pooled) and row["top_k_sd"] == 0.01
    md, csv, *_ = tables.write_search_table(df, tmp_path / "search")
    text = md.read_text()
    assert tables.VS_RANDOM_HEADER in text and "random (4 fresh seeds)" in text
    assert f"{100 * row['vs_random']:+.2f} [{100 * row['vs_random_low']:+.2f}, " in text
    assert "winner's curse" in text and "df = 3" in text
    first = csv.read_bytes()
    tables.write_search_table(tables.search_table({"base": dirs["evo"]}, {"base": dirs["rnd"]}),
                              tmp_path / "search")
    assert csv.read_bytes() == first  # byte-reproducible


def test_noise_seeds_and_the_new_keys_are_checked_naming_the_key():
    from augloss.experiment import Experiment
    from augloss.schema import ConfigError, load_config

    cfg = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    assert load_config(cfg)["search"]["noise_seeds"] == 3
    for bad in (0, 2):
        c = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
        c["search"]["noise_seeds"] = bad
        with pytest.raises(ConfigError, match=r"^config: search\.noise_seeds: "):
            Experiment.from_config(c)
    for key, bad in (("evaluation_seeds", "per_loss"), ("shared_stream", "no")):
        c = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
        c["search"]["algorithm"][key] = bad
        with pytest.raises(ConfigError, match=rf"^config: search\.algorithm\.{key}: "):
            Experiment.from_config(c)
    c = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    c["search"]["noise_seeds"] = 1  # off
    assert Experiment.from_config(c).search_job("base")["noise_seeds"] == 1


def test_the_seeding_keys_change_the_search_hash_and_are_faithful_in_both_configs():
    hashes = {Search("base", cfg, FITNESS, 0, "/tmp/unused", evaluator=FakeEvaluator()).config_hash
              for cfg in (TINY, replace(TINY, evaluation_seeds="search_seed"),
                          replace(TINY, shared_stream=True))}
    assert len(hashes) == 3
    for name in ("config.yaml", "demo/config.yaml"):
        search = yaml.safe_load((REPO / name).read_text())["search"]
        assert search["algorithm"]["evaluation_seeds"] == "per_evaluation"
        assert search["algorithm"]["shared_stream"] is False and search["noise_seeds"] == 3
    assert SearchConfig().evaluation_seeds == "per_evaluation" and not SearchConfig().shared_stream


# --- review of #24 point 4: what the search's numbers can and cannot say ------------------------

def _write_search(d, noise, losses=None, **summary):
    d.mkdir(parents=True)
    (d / "best.json").write_text(json.dumps({
        "losses": losses or [{"expression": "p", "latex": "p", "fitness": 0.8}],
        "reference": {"ce": {"fitness": 0.6}}}))
    (d / "summary.json").write_text(json.dumps({
        "seed": 0, "children": 4, "evaluations": 9, "rejections": {}, "noise": noise,
        "top_k": {"n": 1, "sd": None}, "curve": [], **summary}))
    return d


def test_evolution_vs_random_is_labelled_two_winners_not_the_algorithms(tmp_path):
    """One run of each search: the paired interval holds the two winners' fresh-seed noise,
    not search-to-search variation, and the table must not read as the algorithm-level claim."""
    from augloss.search.summary import noise_summary
    from augloss.tables import search as tables

    seeds = fresh_seeds(0, 3)
    ce = [0.60, 0.61, 0.62]
    evo = _write_search(tmp_path / "e", noise_summary({"seeds": seeds, "ce": ce,
                                                       "winner": [0.70, 0.72, 0.71]}))
    rnd = _write_search(tmp_path / "r", noise_summary({"seeds": seeds, "ce": ce,
                                                       "winner": [0.66, 0.69, 0.70]}))
    md, *_ = tables.write_search_table(tables.search_table({"base": evo}, {"base": rnd}),
                                       tmp_path / "search")
    text = md.read_text()
    flat = " ".join(text.split())
    assert "this winner − this random winner (paired over fresh seeds, 95 % CI)" in text
    assert "evolution − random" not in text
    assert "does evolution beat random sampling?" not in text
    assert "not the variation from one search to another" in flat
    assert "needs repeated searches (several search seeds), which this table does not have" \
        in flat


def test_top_losses_record_their_main_runs_and_mean_without_changing_the_selection():
    from augloss.search.summary import top_losses

    def main(key, fitness, status="accepted"):
        return {"stage": "main", "status": status, "key": key, "expression": key,
                "fitness": fitness}

    # a: found three times, one lucky draw; b: found once, better on average.
    history = [main("a", 0.50), main("b", 0.85), main("a", 0.90), main("a", 0.60),
               main("a", 0.0, "diverged"), {"stage": "prefilter", "status": "accepted",
                                            "key": "a", "expression": "a", "fitness": 0.99}]
    top = top_losses(history, 2)
    assert [t["key"] for t in top] == ["a", "b"]  # the search's own rule: each loss's best run
    assert top[0]["fitness"] == 0.90 and top[0]["main_runs"] == 3
    assert top[0]["fitness_mean"] == pytest.approx((0.50 + 0.90 + 0.60) / 3)
    assert (top[1]["main_runs"], top[1]["fitness_mean"]) == (1, 0.85)
    assert "main_runs" not in history[2]  # the history is not touched


def test_best_json_says_how_many_main_runs_each_top_loss_is_the_max_of(tmp_path):
    Search("base", REFIND, FITNESS, seed=0, out_dir=tmp_path,
           evaluator=FakeEvaluator(seed_noise=0.2)).run()
    runs = collections.defaultdict(list)
    for e in _history(tmp_path):
        if e.get("stage") == "main" and e["status"] in ("accepted", "aborted", "terminated"):
            runs[e["key"]].append(e["fitness"])
    best = json.loads((tmp_path / "best.json").read_text())["losses"]
    # The selection is unchanged: by each loss's best main run.
    assert [b["key"] for b in best] == sorted(runs, key=lambda k: (-max(runs[k]), k))[:2]
    for b in best:
        assert b["main_runs"] == len(runs[b["key"]])
        assert b["fitness"] == max(runs[b["key"]])
        assert b["fitness_mean"] == pytest.approx(np.mean(runs[b["key"]]))
    # A top loss found again: best.json holds the max of its runs, their number and mean.
    from augloss.search.summary import reports

    def main(expression, fitness):
        return {"stage": "main", "status": "accepted", "expression": expression,
                "key": expression, "fitness": fitness, "fitness_final": fitness,
                "fitness_max": fitness}

    a, b = "-(y * ln(p)) + y * (1 - p)", "-(y * ln(p))"
    state = {"population": [], "counters": {}, "iteration": 0, "curve": []}
    ce = {"fitness": 0.5, "fitness_final": 0.5, "fitness_max": 0.5}
    files = reports(state, [main(a, 0.6), main(b, 0.8), main(a, 0.9), main(a, 0.3)],
                    augmentation="base", seed=0, metric="max", top_k=2, config_hash="h",
                    ce=ce)
    top = files["best.json"]["losses"]
    assert [(t["expression"], t["fitness"], t["main_runs"]) for t in top] == [(a, 0.9, 3),
                                                                              (b, 0.8, 1)]
    assert top[0]["fitness_mean"] == pytest.approx(0.6)  # below its 0.9: the max is optimistic
    assert files["summary.json"]["val_n"] is None


def test_the_search_table_says_fitness_is_a_max_and_the_fresh_seeds_are_unbiased(tmp_path):
    from augloss.tables import search as tables

    d = _write_search(tmp_path / "e", None, losses=[
        {"expression": "p", "latex": "p", "fitness": 0.8, "main_runs": 3,
         "fitness_mean": 0.7}])
    df = tables.search_table({"base": d})
    assert (df.loc[0, "fitness_runs"], df.loc[0, "fitness_mean"]) == (3, 0.7)
    md, *_ = tables.write_search_table(df, tmp_path / "search")
    text = md.read_text()
    flat = " ".join(text.split())
    assert "| 80.00 (max of 3 runs) |" in text
    assert "a maximum, optimistic" in flat and "main_runs" in flat and "fitness_mean" in flat
    assert "these fresh-seed columns are the unbiased measurement" in flat


def test_fitness_noise_pools_distinct_losses_so_a_ce_winner_counts_once():
    from augloss import losses
    from augloss.search.summary import noise_summary

    ce_key = losses.parse(losses.REGISTRY["ce"]).key
    seeds, ce = fresh_seeds(0, 3), [0.50, 0.52, 0.54]
    # The winner is cross-entropy itself: its scores are CE's, pooled once (df = n - 1).
    same = noise_summary({"seeds": seeds, "ce": ce, "winner": list(ce), "ce_key": ce_key,
                          "winner_key": ce_key, "winner_expression": losses.REGISTRY["ce"]})
    assert same["fitness_noise"] == pytest.approx(0.02) and same["fitness_noise_df"] == 2
    # By key, not by the scores: CE's scores alone even where the winner's column differs.
    odd = noise_summary({"seeds": seeds, "ce": ce, "winner": [0.6, 0.6, 0.6],
                         "ce_key": ce_key, "winner_key": ce_key})
    assert odd["fitness_noise"] == pytest.approx(0.02) and odd["fitness_noise_df"] == 2
    # A measurement without keys: the winner's expression tells.
    old = noise_summary({"seeds": seeds, "ce": ce, "winner": [0.6, 0.6, 0.6],
                         "winner_expression": losses.REGISTRY["ce"]})
    assert old["fitness_noise_df"] == 2
    # Two distinct losses: both pooled (df = 2 (n - 1)).
    two = noise_summary({"seeds": seeds, "ce": ce, "winner": [0.6, 0.62, 0.64],
                         "ce_key": ce_key, "winner_key": "other"})
    assert two["fitness_noise"] == pytest.approx(0.02) and two["fitness_noise_df"] == 4
    flat = noise_summary({"seeds": seeds, "ce": ce, "winner": [0.6, 0.6, 0.6],
                          "ce_key": ce_key, "winner_key": "other"})
    assert flat["fitness_noise"] == pytest.approx(np.sqrt(0.0004 / 2))


def test_the_search_records_cross_entropys_key_with_its_fresh_seed_scores(tmp_path):
    from augloss import losses

    noise = Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path,
                   evaluator=FakeEvaluator(seed_noise=0.1), noise_seeds=3).run()["noise"]
    assert noise["ce_key"] == losses.parse(losses.REGISTRY["ce"]).key
    assert noise["winner_key"] != noise["ce_key"] and noise["fitness_noise_df"] == 4


class _WithValSet(FakeEvaluator):
    """A fake with a 500-image validation set and accuracies in [0.3, 0.8]."""

    val_set = list(range(500))

    def evaluate(self, expr, augmentation, phase, seed=None):
        rec = super().evaluate(expr, augmentation, phase, seed)
        fit = round(0.3 + 0.5 * min(max(rec["fitness"], 0.0), 1.0), 6)
        return {**rec, "fitness": fit, "fitness_final": fit, "fitness_max": fit}


def test_the_search_table_states_the_val_size_and_one_runs_binomial_se(tmp_path):
    from augloss.tables import search as tables

    with_val = Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path / "v",
                      evaluator=_WithValSet(seed_noise=0.1), noise_seeds=3).run()
    assert with_val["val_n"] == 500
    without = Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path / "n",
                     evaluator=FakeEvaluator(seed_noise=0.1), noise_seeds=3).run()
    assert "val_n" in without and without["val_n"] is None  # a fake has no validation set
    df = tables.search_table({"base": tmp_path / "v"})
    p = with_val["noise"]["ce_mean"]  # at CE's fresh-seed mean, not its search-seed score
    assert df.loc[0, "val_n"] == 500
    assert df.loc[0, "binomial_se"] == pytest.approx(np.sqrt(p * (1 - p) / 500))
    md, csv, *_ = tables.write_search_table(df, tmp_path / "t")
    flat = " ".join(md.read_text().split())
    assert "500 images" in flat and f"{100 * np.sqrt(p * (1 - p) / 500):.2f} (base)" in flat
    assert "binomial_se" in csv.read_text().splitlines()[0]
    md, *_ = tables.write_search_table(tables.search_table({"base": tmp_path / "n"}),
                                       tmp_path / "u")
    assert "size not recorded" in " ".join(md.read_text().split())
    assert tables.binomial_se(0.5, None) is None and tables.binomial_se(0.5, 100) == 0.05
    assert tables.binomial_se(-0.01, 100) is None


def test_the_evolution_plot_says_the_line_is_a_max_and_the_band_fresh_single_runs(
        tmp_path, monkeypatch):
    import matplotlib.figure

    from augloss.tables import plots

    curve = [{"children": 0, "best": 0.5, "median": 0.3, "best_so_far": 0.5}]
    d = _write_search(tmp_path / "base", {"seeds": [1, 3, 5], "ce": [0.40, 0.42, 0.44]},
                      curve=curve)
    (d / "summary.json").write_text(json.dumps(
        {**json.loads((d / "summary.json").read_text()), "curve": curve}))
    seen = {}
    original = matplotlib.figure.Figure.legend

    def legend(self, handles, labels, **kw):
        seen.update(labels=list(labels), title=kw.get("title", ""))
        return original(self, handles, labels, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "legend", legend)
    plots.plot_evolution({"base": d}, tmp_path / "e.png")
    text = " ".join(seen["labels"]) + " " + " ".join(seen["title"].split())
    assert "max over many noisy single runs on selection seeds" in text
    assert "single runs, fresh seeds" in text
    caption = " ".join((REPO / "report" / "evolution.rst").read_text().split())
    assert "maximum over many noisy single runs on the selection seeds" in caption
    assert "higher than a fresh measurement" in caption and "single runs on fresh seeds" in caption


def test_a_lead_constant_in_counts_is_untestable_not_a_float_noise_p():
    from augloss.search.summary import noise_summary

    n = 299
    ce = [227 / n, 244 / n, 227 / n]
    winner = [c - 9 / n for c in ce]  # 9 images fewer on every fresh seed
    out = noise_summary({"seeds": [1, 3, 5], "ce": ce, "winner": winner, "ce_key": "a",
                         "winner_key": "b", "winner_expression": "x"}, n)
    assert out["lead"]["test"] == "untestable" and out["lead"]["p"] is None
    assert out["lead"]["mean"] == pytest.approx(-9 / n)
