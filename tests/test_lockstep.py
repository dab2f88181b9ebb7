"""Batching that leaves the search alone: pool screens K at a time and searches in lockstep give
every search the history it has run alone, one candidate at a time (byte for byte on the CPU)."""

import json

import pytest

from augloss import losses, search
from augloss.search.evaluator import train_jobs
from augloss.search.lockstep import run_lockstep

FITNESS = {  # the main run at 32 px (not the faithful 80) to keep the test short
    "dataset": "digits", "model": {"name": "surrogate", "bn_momentum": 0.1}, "image_size": 32,
    "prescreen": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 32, "optimizer": "adam",
                  "lr": 0.003, "abort": [[1, 0.12]], "evaluate_test": False},
    "prefilter": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "optimizer": "adam",
                  "lr": 0.003, "fail_below": 0.08, "evaluate_test": False},
    "main": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 32, "optimizer": "adam",
             "lr": 0.01, "evaluate_test": False}}
ALGORITHM = {"population": 3, "initial_pool": 6, "children": 3, "tournament": 2,
             "max_evaluations": 2, "top_k": 2, "gradient_fingerprint": True}
OUTPUTS = ("history.jsonl", "population.json", "best.json", "summary.json", "state.json")
AUGS = ("base", "mixup", "randaugment")


def _search(out, augmentation="base", cache=None, **algorithm):
    fitness = search.FitnessConfig.from_dict(FITNESS)
    cfg = search.SearchConfig.from_dict({**ALGORITHM, **algorithm})
    return search.Search(augmentation, cfg, fitness, 0, out, cache_dir=cache)


def _bytes(d):
    return {name: (d / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Each augmentation's search run alone, one pool candidate at a time: the reference."""
    root = tmp_path_factory.mktemp("alone")
    for a in AUGS:
        _search(root / a, a).run()
    return {a: _bytes(root / a) for a in AUGS}


def test_pool_screens_k_at_a_time_give_the_one_at_a_time_history(alone, tmp_path):
    s = _search(tmp_path / "k3", "mixup", pool_batch=3)
    s.run()
    got = _bytes(tmp_path / "k3")
    assert got == alone["mixup"]
    history = [json.loads(line) for line in got["history.jsonl"].splitlines()]
    pool = [e for e in history if e["phase"] == "pool"]
    assert len(pool) == 6 and {e["stage"] for e in pool} == {"prescreen"}
    # the screens kept apart: aborted and passed candidates in the same batches
    assert {e["status"] for e in pool} >= {"aborted", "accepted"}, [e["status"] for e in pool]
    assert all(e["epochs_run"] >= 1 for e in pool)
    # the one cost a batch changes: fewer training calls (6 screens in 2 calls)
    cost = json.loads((tmp_path / "k3" / "cost.json").read_text())
    assert cost["phases"]["prescreen"]["trainings"] == 6
    assert cost["phases"]["prescreen"]["calls"] == 2


def test_a_pool_batch_killed_midway_resumes_to_the_same_history(alone, tmp_path):
    out = tmp_path / "killed"
    seen = []

    def kill(state):
        seen.append(len(state["pool_scores"]))
        if len(state["pool_scores"]) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _search(out, "mixup", pool_batch=4).run(kill)
    assert seen[-1] == 4  # the first batch of 4 checkpointed as one
    _search(out, "mixup", pool_batch=2).run()  # resumed under another batch size
    assert _bytes(out) == alone["mixup"]


def test_pool_batch_is_validated_and_left_out_of_the_config_hash(tmp_path):
    with pytest.raises(ValueError, match="pool_batch"):
        search.SearchConfig.from_dict({"pool_batch": 0})
    assert _search(tmp_path / "a").config_hash == _search(tmp_path / "b", pool_batch=16).config_hash


def test_searches_in_lockstep_each_get_the_history_they_have_alone(alone, tmp_path,
                                                                    monkeypatch):
    from augloss.search import evaluator

    groups = []  # per stacked call: the searches (evaluators) whose jobs it trained
    train_group = evaluator._train_group

    def spy(group):
        groups.append(len({id(j.evaluator) for j in group}))
        return train_group(group)

    monkeypatch.setattr(evaluator, "_train_group", spy)
    searches = [_search(tmp_path / a, a, pool_batch=4) for a in AUGS]
    summaries = run_lockstep(searches)
    # the searches did train together: calls holding every search's job
    assert max(groups) == len(AUGS) and sum(g == len(AUGS) for g in groups) >= 3, groups
    for a, summary in zip(AUGS, summaries):
        assert _bytes(tmp_path / a) == alone[a], a
        assert summary == json.loads(alone[a]["summary.json"])
    # the jobs did train together: fewer calls than trainings, per search
    for a in AUGS:
        phases = json.loads((tmp_path / a / "cost.json").read_text())["phases"]
        trainings = sum(p["trainings"] for p in phases.values())
        calls = sum(p["calls"] for p in phases.values())
        assert 0 < calls < trainings, (a, phases)


def test_lockstep_killed_midway_resumes_each_search_to_its_own_history(alone, tmp_path):
    checkpoints = []

    def kill(s, state):
        checkpoints.append((s.augmentation, state["phase"]))
        if s.augmentation == "mixup" and state["phase"] == "evolve" and state["iteration"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lockstep([_search(tmp_path / a, a) for a in AUGS], kill)
    assert ("base", "evolve") in checkpoints
    # resumed in lockstep: every search from its own state
    run_lockstep([_search(tmp_path / a, a) for a in AUGS])
    for a in AUGS:
        assert _bytes(tmp_path / a) == alone[a], a
    # and a search of the lockstep job can go on alone: the same state
    assert _search(tmp_path / "base", "base").run() == json.loads(alone["base"]["summary.json"])


def test_lockstep_refuses_two_searches_writing_one_directory_or_sharing_an_evaluator(tmp_path):
    with pytest.raises(ValueError, match="output directory"):
        run_lockstep([_search(tmp_path / "x", "base"), _search(tmp_path / "x", "mixup")])
    a = _search(tmp_path / "a", "base")
    b = search.Search("mixup", a.cfg, a.fitness, 0, tmp_path / "b", evaluator=a.evaluator)
    with pytest.raises(ValueError, match="share one evaluator"):
        run_lockstep([a, b])


def test_a_pool_batch_killed_while_training_resumes_to_the_same_history(alone, tmp_path,
                                                                         monkeypatch):
    """Killed after a batch trained but before its checkpoint: the resumed search draws the
    same evaluation seeds again (the state on disk never counted them) and ends the same."""
    from augloss.search import evaluator

    out = tmp_path / "killed"
    calls = []
    plan_records = evaluator.Plan.records

    def dying(plan):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return plan_records(plan)

    monkeypatch.setattr(evaluator.Plan, "records", dying)
    with pytest.raises(KeyboardInterrupt):
        _search(out, "mixup", pool_batch=3).run()
    monkeypatch.undo()
    state = json.loads((out / "state.json").read_text())
    assert len(state["pool_scores"]) == 3 and state["evaluations_drawn"] == 3
    _search(out, "mixup", pool_batch=3).run()
    assert _bytes(out) == alone["mixup"]


def test_cost_json_counts_a_search_once_and_says_when_it_is_partial(tmp_path):
    out = tmp_path / "s"
    _search(out, "base").run()
    first = json.loads((out / "cost.json").read_text())
    assert first["complete"] is True and first["pool_batch"] == 1
    _search(out, "base").run()  # a finished search run again (its outputs rewritten)
    assert json.loads((out / "cost.json").read_text()) == first
    (out / "cost.json").unlink()  # a search older than cost.json
    _search(out, "base").run()
    assert json.loads((out / "cost.json").read_text())["complete"] is False


def test_the_same_training_asked_by_two_searches_trains_once(tmp_path):
    fitness = search.FitnessConfig.from_dict(FITNESS)
    a = search.SurrogateEvaluator(fitness, tmp_path / "cache_a", 0)
    b = search.SurrogateEvaluator(fitness, tmp_path / "cache_b", 0)
    ce, mse = losses.parse(losses.REGISTRY["ce"]), losses.parse("(y - p) * (y - p)")
    plan_a = a.plan([ce, mse], "base", "prescreen", seed=[1, 2])
    plan_b = b.plan([ce], "base", "prescreen", seed=1)  # a's first job's key
    train_jobs(plan_a.jobs + plan_b.jobs)
    assert (a.trainings, a.hits, b.trainings, b.hits) == (2, 0, 0, 1)
    assert plan_b.records()[0]["fitness"] == plan_a.records()[0]["fitness"]
    assert b.costs["prescreen"]["cache_hits"] == 1
    # each evaluator's cache holds it: b answers from its own cache next time
    assert b.evaluate(ce, "base", "prescreen", seed=1)["fitness"] == \
        plan_a.records()[0]["fitness"] and b.trainings == 0
