"""Regularized evolution: determinism, resume, cache, duplicates, failures, correlation study."""

import dataclasses
import json

import numpy as np
import pytest

from augloss import losses, search
from augloss.search import status as st
from augloss.search import (FitnessConfig, Search, SearchConfig, SearchStateError,
                            SurrogateEvaluator)
from tests.helpers import FITNESS, SMALL, TINY, FakeEvaluator

OUTPUTS = ("history.jsonl", "population.json", "best.json", "summary.json")


def _outputs(path):
    return {name: (path / name).read_bytes() for name in OUTPUTS}


def test_tiny_search_is_byte_identical_across_runs_and_hits_the_cache(tmp_path):
    a = Search("cutout", TINY, FITNESS, seed=0, out_dir=tmp_path / "a", cache_dir=tmp_path / "c1")
    a.run()
    b = Search("cutout", TINY, FITNESS, seed=0, out_dir=tmp_path / "b", cache_dir=tmp_path / "c2")
    b.run()
    assert _outputs(tmp_path / "a") == _outputs(tmp_path / "b")
    assert a.evaluator.trainings > 10
    # A rerun sharing the first cache trains nothing.
    c = Search("cutout", TINY, FITNESS, seed=0, out_dir=tmp_path / "c", cache_dir=tmp_path / "c1")
    c.run()
    assert c.evaluator.trainings == 0 and c.evaluator.hits > 10
    assert _outputs(tmp_path / "a") == _outputs(tmp_path / "c")
    best = json.loads((tmp_path / "a" / "best.json").read_text())
    assert 1 <= len(best["losses"]) <= 3
    assert best["losses"][0]["name"] == "evolved-cutout-1"
    for e in best["losses"]:
        assert losses.parse(e["expression"]).key == e["key"]
    assert "ce" in best["reference"]
    # A later run with a larger budget reuses everything already evaluated.
    bigger = SearchConfig(**{**TINY.__dict__, "children": 8})
    d = Search("cutout", bigger, FITNESS, seed=0, out_dir=tmp_path / "d", cache_dir=tmp_path / "c1")
    d.run()
    assert d.evaluator.hits >= a.evaluator.trainings - 1
    assert d.evaluator.trainings < a.evaluator.trainings


class _Kill(Exception):
    pass


@pytest.mark.parametrize("kill_at", [3, 9, 15])
def test_killed_and_resumed_search_matches_the_uninterrupted_one(tmp_path, kill_at):
    whole = Search("mixup", TINY, FITNESS, seed=1, out_dir=tmp_path / "whole",
                   evaluator=FakeEvaluator(diverge_every=5, fail_every=7))
    whole.run()
    count = {"n": 0}

    def kill(state):
        count["n"] += 1
        if count["n"] == kill_at:
            raise _Kill()

    run = Search("mixup", TINY, FITNESS, seed=1, out_dir=tmp_path / "killed",
                 evaluator=FakeEvaluator(diverge_every=5, fail_every=7))
    with pytest.raises(_Kill):
        run.run(callback=kill)
    # A crash between the history append and the state write leaves extra lines: they go.
    with open(tmp_path / "killed" / "history.jsonl", "a") as f:
        f.write('{"partial": tru')
    Search("mixup", TINY, FITNESS, seed=1, out_dir=tmp_path / "killed",
           evaluator=FakeEvaluator(diverge_every=5, fail_every=7)).run()
    assert _outputs(tmp_path / "whole") == _outputs(tmp_path / "killed")


def test_real_search_resumes_identically(tmp_path):
    Search("base", TINY, FITNESS, seed=2, out_dir=tmp_path / "whole",
           cache_dir=tmp_path / "c1").run()

    def kill(state):
        if state["phase"] == "evolve" and state["iteration"] == 3:
            raise _Kill()

    with pytest.raises(_Kill):
        Search("base", TINY, FITNESS, seed=2, out_dir=tmp_path / "k",
               cache_dir=tmp_path / "c2").run(callback=kill)
    Search("base", TINY, FITNESS, seed=2, out_dir=tmp_path / "k", cache_dir=tmp_path / "c2").run()
    assert _outputs(tmp_path / "whole") == _outputs(tmp_path / "k")


def test_duplicates_and_integrity_failures_are_rejected_and_counted(tmp_path):
    cfg = SearchConfig(population=6, initial_pool=10, children=40, tournament=4, top_k=3)
    s = Search("base", cfg, FITNESS, seed=3, out_dir=tmp_path, evaluator=FakeEvaluator())
    summary = s.run()
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").open()]
    statuses = {e["status"] for e in history}
    assert {"accepted", "duplicate", "rejected-integrity"} <= statuses
    rej = summary["rejections"]
    n_dup = sum(1 for e in history if e["status"] == "duplicate")
    assert n_dup == sum(v for k, v in rej.items() if k.startswith("duplicate"))
    assert sum(1 for e in history if e["status"] == "rejected-integrity") == \
        rej["rejected-integrity"]
    members = json.loads((tmp_path / "population.json").read_text())["members"]
    keys = [m["key"] for m in members]
    assert len(set(keys)) == len(keys)
    phen = [losses.integrity(losses.parse(m["expression"])).phenotype for m in members]
    for i in range(len(phen)):
        for j in range(i + 1, len(phen)):
            assert np.linalg.norm(phen[i] - phen[j]) > 0.01
    assert summary["children"] == 40 and [p["children"] for p in summary["curve"]] == [0, 40]


def test_ageing_replaces_the_oldest_member(tmp_path):
    cfg = SearchConfig(population=5, initial_pool=5, children=12, tournament=2, top_k=2)
    s = Search("base", cfg, FitnessConfig(**{**FITNESS.__dict__, "prescreen": None}), seed=4,
               out_dir=tmp_path, evaluator=FakeEvaluator())
    s.run()
    members = json.loads((tmp_path / "population.json").read_text())["members"]
    ages = sorted(m["age"] for m in members)
    # Every child was kept (no failures), so after 12 children the ages are 0..4.
    assert ages == [0, 1, 2, 3, 4]


def test_diverging_and_failing_candidates_get_worst_fitness_and_the_search_goes_on(tmp_path):
    ev = FakeEvaluator(diverge_every=2, fail_every=3)
    s = Search("all", TINY, FITNESS, seed=5, out_dir=tmp_path, evaluator=ev)
    summary = s.run()
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").open()]
    bad = [e for e in history if e["status"] in ("diverged", "failed-prefilter")]
    assert bad and all(e["fitness"] == 0.0 for e in bad)
    assert summary["children"] == TINY.children
    # A failed child is replaced by a brand-new mutant of the same parent.
    by_iteration = {}
    for e in history:
        if e["phase"] == "evolve" and e.get("stage"):
            by_iteration.setdefault(e["iteration"], []).append(e)
    assert any(len(v) > 1 for v in by_iteration.values())
    for v in by_iteration.values():
        assert len({e["parent"] for e in v}) == 1 and len(v) <= TINY.max_evaluations


def test_real_nan_loss_scores_zero():
    ev = SurrogateEvaluator(FITNESS, None, seed=0)
    rec = ev.evaluate(losses.parse("exp(exp(exp(exp(p * 4))))"), "base", "main")
    assert rec["status"] == "diverged" and rec["fitness"] == 0.0


def _result(status, val_accs, train_accs):
    from augloss.train import FitResult

    history = [{"epoch": i + 1, "val_acc": v, "train_acc": t}
               for i, (v, t) in enumerate(zip(val_accs, train_accs))]
    return FitResult(status, history, None, len(history), 0, 0.0, 0.0, "non-finite loss")


def test_diverged_runs_keep_their_finite_epochs_as_the_earlier_code_did():
    from augloss.search.evaluator import record_of

    res = _result("diverged", [0.3, 0.5, 0.4, float("nan")], [0.3, 0.6, 0.5, 0.1])
    kept = record_of(res, "max", "keep")
    assert (kept["status"], kept["fitness"], kept["fitness_final"]) == (st.TERMINATED, 0.5, 0.4)
    assert record_of(res, "final", "keep")["fitness"] == 0.4
    assert st.TERMINATED in st.SCORED and st.TERMINATED not in st.LOST
    dropped = record_of(res, "max", "discard")
    assert (dropped["status"], dropped["fitness"]) == (st.DIVERGED, 0.0)
    failed = record_of(res, "max", "keep", fail_below=0.7)  # the pre-filter's rule still holds
    assert (failed["status"], failed["fitness"]) == (st.FAILED, 0.0)
    early = record_of(_result("diverged", [float("nan")], [0.1]), "max", "keep")
    assert early["fitness"] == 0.0 and early["status"] == st.TERMINATED


def test_paper_defaults_are_the_earlier_codes_fitness():
    f = FitnessConfig(main=SMALL)
    assert (f.metric, f.diverged, f.image_size, f.normalize) == ("max", "keep", 80, "tf")
    main, screen = f.phase_augment("main"), f.phase_augment("prefilter")
    assert (main.image_size, main.normalize) == (80, "tf")
    assert (screen.image_size, screen.normalize) == (32, "unit")
    with pytest.raises(ValueError, match="fitness.diverged"):
        FitnessConfig(diverged="ignore")


def test_cache_key_carries_the_fitness_semantics_and_version(monkeypatch):
    from augloss import config

    base = FITNESS.phase_hash("main", "d")
    assert FitnessConfig(**{**FITNESS.__dict__, "metric": "max"}).phase_hash("main", "d") != base
    assert FitnessConfig(**{**FITNESS.__dict__, "diverged": "keep"}).phase_hash("main", "d") != base
    assert FitnessConfig(**{**FITNESS.__dict__, "image_size": 40}).phase_hash("main", "d") != base
    assert FitnessConfig(**{**FITNESS.__dict__, "image_size": 40}).phase_hash("prefilter", "d") \
        == FITNESS.phase_hash("prefilter", "d")  # the screens do not use the main run's size
    monkeypatch.setattr(config, "FITNESS_VERSION", config.FITNESS_VERSION + 1)
    assert FITNESS.phase_hash("main", "d") != base


def test_a_fitness_phase_is_one_of_the_three(tmp_path):
    """"Stage" is a workflow stage; the fitness has phases, and a stage name is no phase."""
    ev = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    with pytest.raises(ValueError, match="unknown fitness phase 'transfer'; phases are "
                                         "prescreen, prefilter, main"):
        ev.evaluate(losses.parse("-(y * ln(p))"), "base", "transfer")
    assert ev.trainings == 0


def test_cache_entries_of_another_fitness_version_are_not_reused(tmp_path, monkeypatch):
    from augloss import config

    ev = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    expr = losses.parse("-(y * ln(p))")
    ev.evaluate(expr, "base", "prefilter")
    assert ev.trainings == 1
    ev.evaluate(expr, "base", "prefilter")
    assert (ev.trainings, ev.hits) == (1, 1)
    monkeypatch.setattr(config, "FITNESS_VERSION", config.FITNESS_VERSION + 1)
    ev.evaluate(expr, "base", "prefilter")
    assert ev.trainings == 2


def test_corrupted_state_and_history_are_detected(tmp_path):
    s = Search("base", TINY, FITNESS, seed=6, out_dir=tmp_path, evaluator=FakeEvaluator())
    s.run()
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    lines[2] = lines[2][:10]
    (tmp_path / "history.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SearchStateError, match="line 3 is corrupted"):
        Search("base", TINY, FITNESS, seed=6, out_dir=tmp_path, evaluator=FakeEvaluator()).run()
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(SearchStateError, match="unreadable"):
        Search("base", TINY, FITNESS, seed=6, out_dir=tmp_path, evaluator=FakeEvaluator()).run()
    other = tmp_path / "other"
    Search("base", TINY, FITNESS, seed=6, out_dir=other, evaluator=FakeEvaluator()).run()
    with pytest.raises(SearchStateError, match="another search configuration"):
        Search("base", TINY, FITNESS, seed=7, out_dir=other, evaluator=FakeEvaluator()).run()


def test_the_workflow_sets_aside_a_state_of_another_configuration(tmp_path):
    work = tmp_path / "work"
    first = Search("base", TINY, FITNESS, seed=6, out_dir=work, evaluator=FakeEvaluator())
    first.run()
    assert first.store.set_aside_foreign() is None  # its own state stays
    history = (work / "history.jsonl").read_bytes()
    changed = Search("base", TINY, FITNESS, seed=7, out_dir=work, evaluator=FakeEvaluator())
    kept = changed.store.set_aside_foreign()
    assert kept == tmp_path / f"work.previous-{first.config_hash[:12]}"
    assert (kept / "history.jsonl").read_bytes() == history  # nothing lost
    changed.run()
    assert json.loads((work / "state.json").read_text())["config_hash"] == changed.config_hash


def test_corrupted_cache_entry_is_recomputed(tmp_path):
    ev = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    e = losses.parse("-(y * ln(p))")
    first = ev.evaluate(e, "base", "main")
    path = next(tmp_path.rglob("*.json"))
    path.write_text(path.read_text()[:20])
    ev2 = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    again = ev2.evaluate(e, "base", "main")
    assert ev2.trainings == 1 and again["fitness"] == first["fitness"]
    ev3 = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    ev3.evaluate(e, "base", "main")
    assert ev3.hits == 1 and ev3.trainings == 0
    # Another seed, augmentation or stage is another entry.
    assert ev3.cache_key(e, "base", "main") != ev3.cache_key(e, "cutout", "main")
    assert ev3.cache_key(e, "base", "main") != SurrogateEvaluator(FITNESS, None, 1).cache_key(
        e, "base", "main")


def test_gradient_fingerprint_finds_scaled_equivalents(tmp_path):
    ce = losses.parse("-(y * ln(p))")
    fp = search.gradient_fingerprint
    assert np.allclose(fp(ce), fp(losses.parse("-(y * ln(p)) * 2")), atol=1e-6)
    assert np.allclose(fp(ce), fp(losses.parse("-(y * ln(p)) + 1")), atol=1e-6)
    assert not np.allclose(fp(ce), fp(losses.parse("square(y - p)")), atol=1e-3)
    assert fp(losses.parse("y * 0 * p")) is None
    cfg = SearchConfig(**{**TINY.__dict__, "gradient_fingerprint": True, "children": 20})
    Search("base", cfg, FITNESS, seed=8, out_dir=tmp_path, evaluator=FakeEvaluator()).run()


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="search.population"):
        SearchConfig(population=0)
    with pytest.raises(ValueError, match="search.children"):
        SearchConfig(children=-1)
    with pytest.raises(ValueError, match="search.tournament must be a positive integer"):
        SearchConfig(tournament=2.5)
    with pytest.raises(ValueError, match="initial_pool"):
        SearchConfig(population=10, initial_pool=5)
    with pytest.raises(ValueError, match="unknown key\\(s\\) popsize"):
        SearchConfig.from_dict({"popsize": 3})
    with pytest.raises(ValueError, match="fitness.metric"):
        FitnessConfig(metric="mean")
    with pytest.raises(ValueError, match="train.epochs"):
        FitnessConfig(main={"epochs": 0})
    with pytest.raises(ValueError, match="unknown augmentation"):
        Search("cutmix", TINY, FITNESS, 0, "/tmp/x", evaluator=FakeEvaluator())


def test_metric_choice_is_recorded(tmp_path):
    ev = SurrogateEvaluator(FitnessConfig(**{**FITNESS.__dict__, "metric": "max"}), None, seed=0)
    rec = ev.evaluate(losses.parse("-(y * ln(p))"), "base", "main")
    assert rec["fitness"] == rec["fitness_max"] >= rec["fitness_final"]


def test_correlation_study_on_three_augmentations(tmp_path):
    files = {}
    for a in ("base", "cutout", "mixup"):
        Search(a, TINY, FITNESS, seed=0, out_dir=tmp_path / a, cache_dir=tmp_path / "cache").run()
        files[a] = tmp_path / a / "best.json"
    study = search.correlation_study(files, top_n=2, fitness=FITNESS, seed=0,
                                     cache_dir=tmp_path / "cache")
    n = len(study["losses"])
    assert study["augmentations"] == ["base", "cutout", "mixup"]
    assert study["losses"][0]["name"] == "ce" and 3 <= n <= 7
    assert len(study["fitness"]) == n and all(len(row) == 3 for row in study["fitness"])
    assert set(study["spearman"]) == {"base|cutout", "base|mixup", "cutout|mixup"}
    for pair in study["spearman"].values():
        assert pair["rho"] is None or -1.0 <= pair["rho"] <= 1.0
    json.dumps(study)
    # batch > 1 (the search's batch_children) trains the losses of a column together: the same
    # matrix as one by one, to float tolerance, with nothing taken from the first run's cache.
    joint = search.correlation_study(files, top_n=2, fitness=FITNESS, seed=0,
                                     cache_dir=tmp_path / "fresh", batch=3)
    assert [e["key"] for e in joint["losses"]] == [e["key"] for e in study["losses"]]
    assert np.allclose(joint["fitness"], study["fitness"], atol=0.02)


def test_top_losses_keep_each_loss_once_with_its_best_main_run():
    history = [
        {"stage": "main", "status": "accepted", "key": "a", "fitness": 0.5},
        {"stage": "main", "status": "aborted", "key": "a", "fitness": 0.7},
        {"stage": "main", "status": "diverged", "key": "b", "fitness": 0.9},
        {"stage": "prescreen", "status": "accepted", "key": "c", "fitness": 0.99},
        {"stage": "main", "status": "accepted", "key": "d", "fitness": 0.6},
    ]
    top = search.top_losses(history, 5)
    assert [(e["key"], e["fitness"]) for e in top] == [("a", 0.7), ("d", 0.6)]
    assert search.top_losses(history, 1)[0]["key"] == "a"


def test_top_losses_skip_losses_equivalent_to_a_better_one():
    history = [{"stage": "main", "status": "accepted", "key": k, "fitness": f, "expression": x}
               for k, f, x in [("a", 0.9, "A"), ("b", 0.8, "A'"), ("c", 0.7, "C"),
                               ("d", 0.6, "D")]]
    same = {frozenset({"A", "A'"})}

    def equivalent(x, y):
        return frozenset({x, y}) in same

    assert [e["key"] for e in search.top_losses(history, 3, equivalent)] == ["a", "c", "d"]
    assert [e["key"] for e in search.top_losses(history, 3)] == ["a", "b", "c"]


def test_breeder_equivalence_is_the_phenotype_test():
    from augloss.search.breed import Breeder

    b = Breeder(TINY)
    assert b.equivalent("-(y * ln(p))", "-(ln(p) * y)")  # one canonical key
    assert b.equivalent("-(y * ln(p))", "-(y * ln(p)) * (1 + 1)")  # a scaled copy
    assert not b.equivalent("-(y * ln(p))", "square(y - p)")


def test_reports_are_a_pure_function_of_the_state(tmp_path):
    s = Search("base", TINY, FITNESS, seed=9, out_dir=tmp_path, evaluator=FakeEvaluator())
    s.run()
    state = json.loads((tmp_path / "state.json").read_text())
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").open()]
    ce = {"fitness": 0.5, "fitness_final": 0.5, "fitness_max": 0.6}
    kw = dict(augmentation="base", seed=9, metric="final", top_k=3, config_hash="h", ce=ce)
    first = search.reports(state, history, **kw)
    assert search.reports(state, iter(history), **kw) == first
    assert json.loads((tmp_path / "population.json").read_text()) == first["population.json"]
    assert first["summary.json"]["ce_fitness"] == 0.5
    assert first["summary.json"]["children"] == TINY.children


def test_state_store_appends_and_cuts_back_to_the_saved_state(tmp_path):
    store = search.StateStore(tmp_path, "hash", seed=0)
    state = store.load()
    rng = np.random.default_rng(0)
    store.append(state, [{"a": 1}, {"a": 2}])
    store.save(state, rng)
    store.append(dict(state), [{"a": 3}])  # appended, but the state was never saved
    again = search.StateStore(tmp_path, "hash", seed=0).load()
    assert again["history_len"] == 2
    assert list(search.StateStore(tmp_path, "hash", 0).history()) == [{"a": 1}, {"a": 2}]
    with pytest.raises(SearchStateError, match="another search configuration"):
        search.StateStore(tmp_path, "other", seed=0).load()


def test_a_cache_entry_of_another_status_vocabulary_is_recomputed(tmp_path):
    ev = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    e = losses.parse("-(y * ln(p))")
    first = ev.evaluate(e, "base", "prefilter")
    assert first["status"] in search.status.TRAINED
    path = next(tmp_path.rglob("*.json"))
    record = json.loads(path.read_text())
    record["status"] = "completed"  # the trainer's word, never a search status
    path.write_text(json.dumps(record))
    ev2 = SurrogateEvaluator(FITNESS, tmp_path, seed=0)
    assert ev2.evaluate(e, "base", "prefilter")["status"] == first["status"]
    assert ev2.trainings == 1 and ev2.hits == 0


def test_every_history_status_belongs_to_the_one_vocabulary(tmp_path):
    ev = FakeEvaluator(diverge_every=2, fail_every=3)
    cfg = SearchConfig(**{**TINY.__dict__, "children": 20})
    Search("base", cfg, FITNESS, seed=10, out_dir=tmp_path, evaluator=ev).run()
    statuses = {json.loads(line)["status"] for line in (tmp_path / "history.jsonl").open()}
    assert statuses <= set(search.status.ALL)
    assert {"accepted", "diverged", "failed-prefilter"} <= statuses


def test_random_search_baseline_has_the_same_pool_and_budget_but_no_parents(tmp_path):
    from dataclasses import replace

    cfg = replace(TINY, children=8)
    evo = Search("base", cfg, FITNESS, seed=3, out_dir=tmp_path / "e", evaluator=FakeEvaluator())
    rnd = Search("base", replace(cfg, strategy="random"), FITNESS, seed=3,
                 out_dir=tmp_path / "r", evaluator=FakeEvaluator())
    e_sum, r_sum = evo.run(), rnd.run()
    assert e_sum["children"] == r_sum["children"] == 8
    e_hist = [json.loads(x) for x in (tmp_path / "e" / "history.jsonl").read_text().splitlines()]
    r_hist = [json.loads(x) for x in (tmp_path / "r" / "history.jsonl").read_text().splitlines()]
    pool = [(h["key"], h["fitness"]) for h in e_hist if h["phase"] == "pool"]
    assert pool == [(h["key"], h["fitness"]) for h in r_hist if h["phase"] == "pool"]
    assert all(h["parent"] is None for h in r_hist if h["phase"] == "evolve")
    assert all(h["parent"] for h in e_hist if h["phase"] == "evolve")
    evolved = {h["key"] for h in e_hist if h["phase"] == "evolve"}
    assert evolved != {h["key"] for h in r_hist if h["phase"] == "evolve"}
    for summary in (e_sum, r_sum):
        best = [c["best_so_far"] for c in summary["curve"]]
        assert best == sorted(best) and best[-1] >= max(c["best"] for c in summary["curve"])
    with pytest.raises(ValueError, match="search.strategy"):
        SearchConfig(strategy="annealing")


def test_random_baseline_jobs_differ_from_the_evolution_only_in_strategy():
    """... both measure their best on the same fresh seeds (so the two winners pair by seed)."""
    import yaml

    from augloss.experiment import Experiment

    cfg = yaml.safe_load(open("demo/config.yaml"))
    cfg["search"]["baseline"] = "random"
    exp = Experiment.from_config(cfg)
    evo, rnd = exp.search_job("base"), exp.search_job("base", "random")
    assert evo["noise_seeds"] == rnd["noise_seeds"] == 3
    assert rnd["algorithm"].pop("strategy") == "random" and rnd == evo
    assert exp.random_baseline


# Main fitness that learns (the demo's 8 px, a few dozen Adam steps): at chance level every seed
# scores the same 10 % and the noise would be zero on some CPUs.
LEARNING = dataclasses.replace(FITNESS, image_size=8, model={"name": "surrogate", "bn_momentum": 0.5},
                               main={**SMALL, "epochs": 2, "steps_per_epoch": 12, "lr": 5e-3})


def test_fitness_noise_rescores_ce_and_the_winner_on_fresh_seeds(tmp_path):
    from augloss.search.seeds import fresh_seeds, is_fresh

    s = Search("base", TINY, LEARNING, seed=4, out_dir=tmp_path / "a", cache_dir=tmp_path / "c",
               noise_seeds=3)
    summary = s.run()
    best = json.loads((tmp_path / "a" / "best.json").read_text())
    noise = summary["noise"]
    assert noise["seeds"] == fresh_seeds(4, 3) and all(map(is_fresh, noise["seeds"]))
    assert len(noise["ce"]) == len(noise["winner"]) == 3
    assert noise["winner_expression"] == best["losses"][0]["expression"]
    history = [json.loads(x) for x in (tmp_path / "a" / "history.jsonl").open()]
    assert not set(noise["seeds"]) & {e.get("seed") for e in history}  # never a selection seed
    assert min(noise["ce"]) > 0.3  # it learns, so the seeds can differ
    assert len(set(noise["ce"])) > 1  # other seeds, other batches and initialisations
    pooled = np.sqrt((np.var(noise["ce"], ddof=1) + np.var(noise["winner"], ddof=1)) / 2)
    assert noise["fitness_noise"] == pytest.approx(pooled)
    d = np.subtract(noise["winner"], noise["ce"])
    assert noise["lead"]["mean"] == pytest.approx(d.mean())
    assert summary["top_k"]["n"] == len(best["losses"])
    # Every re-scoring is cached under its own seed: a rerun trains nothing and says the same.
    again = Search("base", TINY, LEARNING, seed=4, out_dir=tmp_path / "b",
                   cache_dir=tmp_path / "c", noise_seeds=3)
    assert again.run()["noise"] == noise and again.evaluator.trainings == 0
    # It is a measurement after the search: the search's own outputs do not change with it.
    plain = Search("base", TINY, LEARNING, seed=4, out_dir=tmp_path / "p",
                   cache_dir=tmp_path / "c")
    assert plain.run()["noise"] is None and plain.config_hash == s.config_hash
    for name in ("history.jsonl", "population.json"):
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()


def test_fitness_noise_needs_at_least_three_fresh_seeds_or_is_off(tmp_path):
    s = Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path / "a",
               evaluator=FakeEvaluator(seed_noise=0.1), noise_seeds=3)
    noise = s.run()["noise"]
    assert len(noise["ce"]) == 3 and noise["lead"]["low"] is not None
    assert Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path / "o",
                  evaluator=FakeEvaluator(), noise_seeds=1).run()["noise"] is None  # 1: off
    for bad in (0, 2, 2.0, True):
        with pytest.raises(ValueError, match="search.noise_seeds must be 1 \\(off\\) or at "
                                             "least 3"):
            Search("base", TINY, FITNESS, seed=0, out_dir=tmp_path / "b",
                   evaluator=FakeEvaluator(), noise_seeds=bad)


def test_the_curve_starts_at_the_scored_population_and_best_so_far_never_falls(tmp_path):
    summary = Search("mixup", TINY, FITNESS, seed=1, out_dir=tmp_path / "a",
                     evaluator=FakeEvaluator(diverge_every=5, fail_every=7)).run()
    curve = summary["curve"]
    assert curve[0]["children"] == 0 and [p["children"] for p in curve][1:] == [2, 4, 6]
    best = [p["best_so_far"] for p in curve]
    assert best == sorted(best) and all(p["best_so_far"] >= p["best"] for p in curve)
