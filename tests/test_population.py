"""Population-batched evaluation: K stacked surrogates give each copy its sequential result."""

import json

import pytest
import torch

from augloss import augment as aug
from augloss import data, losses, search
from augloss.models import Surrogate
from augloss.population import GroupedSurrogate
from augloss.config import TrainConfig
from augloss.train import fit, fit_population

TRAIN = data.load("digits", split="train")
VAL = data.load("digits", split="val")
LOSSES = ["ce", "-(y * ln(p)) + y * (1 - p)", "(y - p) * (y - p)",
          "exp(exp(exp(exp(p * 40))))"]  # the last one diverges at once


def _model(seed=0):
    torch.manual_seed(seed)
    return Surrogate(10, bn_momentum=0.1)


def test_grouped_forward_matches_each_copy_in_train_and_eval_mode():
    models = [_model(s) for s in range(3)]
    grouped = GroupedSurrogate(models)
    x = torch.randn(16, 3, 32, 32)
    torch.manual_seed(5)
    out = grouped(x)  # train mode: batch statistics, one shared dropout mask
    ref = []
    for m in models:
        torch.manual_seed(5)
        ref.append(m(x))
    torch.testing.assert_close(out, torch.stack(ref, 1), rtol=1e-5, atol=1e-5)
    # BatchNorm running statistics were updated per copy, exactly as alone.
    for m, back in zip(models, grouped.split(_model())):
        for (name, a), b in zip(m.state_dict().items(), back.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    grouped.eval()
    for m in models:
        m.eval()
    torch.testing.assert_close(grouped(x), torch.stack([m(x) for m in models], 1),
                               rtol=1e-5, atol=1e-5)


def test_grouped_needs_surrogates():
    with pytest.raises(ValueError, match="Surrogate"):
        GroupedSurrogate([torch.nn.Linear(2, 2)])


@pytest.mark.parametrize("technique,opt", [("base", "adam"), ("mixup", "sgd"),
                                           ("randaugment", "adam")])
def test_joint_training_gives_each_copy_its_sequential_result(technique, opt):
    cfg = TrainConfig(epochs=2, steps_per_epoch=6, batch_size=32, eval_batch_size=300,
                      optimizer=opt, lr=0.01, weight_decay=1e-4, warmup_steps=2,
                      abort=((1, 0.0),), evaluate_test=False)
    tech = aug.build(technique)
    fns = [losses.get(t) for t in LOSSES]
    joint = fit_population(GroupedSurrogate([_model() for _ in fns]), fns, TRAIN, VAL, tech,
                           cfg, seed=3)
    alone = [fit(_model(), fn, TRAIN, VAL, None, tech, cfg, seed=3) for fn in fns]
    n_val = len(VAL)
    for j, a in zip(joint, alone):
        assert (j.status, j.epochs_run, j.reason) == (a.status, a.epochs_run, a.reason)
        for hj, ha in zip(j.history, a.history):
            assert hj["epoch"] == ha["epoch"] and hj["lr"] == ha["lr"]
            assert hj["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-4, abs=1e-6)
            if ha["val_acc"] == ha["val_acc"]:  # not NaN
                # Float rounding of grouped kernels may flip an argmax or two, no more.
                assert abs(hj["val_acc"] - ha["val_acc"]) <= 2 / n_val
    assert joint[-1].status == "diverged" and joint[0].status == "completed"


def test_per_copy_gradient_clipping_matches_clipping_alone():
    cfg = TrainConfig(epochs=1, steps_per_epoch=4, batch_size=32, eval_batch_size=300,
                      optimizer="sgd", lr=0.05, grad_clip=0.01, evaluate_test=False)
    tech = aug.build("none")
    fns = [losses.get("ce"), losses.get("(y - p) * (y - p)")]
    joint = fit_population(GroupedSurrogate([_model(), _model()]), fns, TRAIN, VAL, tech, cfg, 1)
    alone = [fit(_model(), fn, TRAIN, VAL, None, tech, cfg, 1) for fn in fns]
    for j, a in zip(joint, alone):
        assert j.history[0]["train_loss"] == pytest.approx(a.history[0]["train_loss"], rel=1e-4)


def test_fit_population_needs_one_copy_per_loss():
    with pytest.raises(ValueError, match="one copy per loss"):
        fit_population(GroupedSurrogate([_model()]), [losses.get("ce")] * 2, TRAIN, VAL,
                       aug.build("none"), TrainConfig(epochs=1), 0)


def _search(tmp_path, name, **algo):
    fitness = search.FitnessConfig.from_dict({
        "dataset": "digits", "model": {"name": "surrogate", "bn_momentum": 0.1},
        "prescreen": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "optimizer": "adam",
                      "lr": 0.003, "evaluate_test": False},
        "prefilter": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "optimizer": "adam",
                      "lr": 0.003, "fail_below": 0.05, "evaluate_test": False},
        "main": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 32, "optimizer": "adam",
                 "lr": 0.01, "evaluate_test": False}})
    cfg = search.SearchConfig.from_dict({"population": 3, "initial_pool": 4, "children": 5,
                                         "tournament": 2, "max_evaluations": 2, "top_k": 2,
                                         "gradient_fingerprint": True, **algo})
    out = tmp_path / name
    summary = search.Search("base", cfg, fitness, 0, out, cache_dir=None).run()
    return out, summary


def test_batch_children_one_is_the_faithful_algorithm(tmp_path):
    default, _ = _search(tmp_path, "default")
    explicit, _ = _search(tmp_path, "k1", batch_children=1)
    for name in ("history.jsonl", "population.json", "best.json"):
        assert (default / name).read_bytes() == (explicit / name).read_bytes()


def test_batched_search_breeds_every_child_and_is_deterministic(tmp_path):
    a, _ = _search(tmp_path, "a", batch_children=4)
    b, _ = _search(tmp_path, "b", batch_children=4)
    assert (a / "history.jsonl").read_bytes() == (b / "history.jsonl").read_bytes()
    state = json.loads((a / "state.json").read_text())
    assert state["iteration"] == 5 and state["phase"] == "done"
    iterations = {json.loads(line)["iteration"] for line in
                  (a / "history.jsonl").read_text().splitlines()}
    assert set(range(5)) <= iterations  # children 0..4, the last step holding one child
    assert len(json.loads((a / "population.json").read_text())) == 3


def test_batch_children_is_validated():
    with pytest.raises(ValueError, match="batch_children"):
        search.SearchConfig.from_dict({"batch_children": 0})


def _evaluator(tmp_path):
    fitness = search.FitnessConfig.from_dict({
        "dataset": "digits", "model": {"name": "surrogate", "bn_momentum": 0.1},
        "main": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 32, "optimizer": "adam",
                 "lr": 0.01, "evaluate_test": False}})
    return search.SurrogateEvaluator(fitness, tmp_path / "cache", seed=0)


def test_evaluate_many_matches_one_by_one_and_uses_the_cache(tmp_path):
    texts = ["-(y * ln(p))", "(y - p) * (y - p)", "-(y * ln(p)) + y * (1 - p)"]
    exprs = [losses.parse(t) for t in texts]
    alone = [_evaluator(tmp_path / "alone").evaluate(e, "cutout", "main") for e in exprs]
    ev = _evaluator(tmp_path / "joint")
    ev.evaluate(exprs[0], "cutout", "main")  # cached beforehand
    joint = ev.evaluate_many(exprs + [exprs[1]], "cutout", "main")  # one loss twice
    assert ev.trainings == 3 and ev.hits == 2  # 1 before + 2 trained together; cache + repeat
    assert joint[3] == joint[1]
    for j, a in zip(joint, alone):
        assert j["status"] == a["status"] and j["loss_key"] == a["loss_key"]
        assert abs(j["fitness"] - a["fitness"]) <= 2 / len(VAL)


def test_label_smoothing_per_expression_matches_a_call_of_its_own(tmp_path):
    ce = losses.parse("-(y * ln(p))")
    alone = _evaluator(tmp_path / "alone").evaluate(ce, "base", "main", seed=3,
                                                    label_smoothing=0.1)
    ev = _evaluator(tmp_path / "joint")
    plain, smoothed = ev.evaluate_many([ce, ce], "base", "main", seed=3,
                                       label_smoothing=[0.0, 0.1])
    assert ev.trainings == 2 and ev.hits == 0  # the same loss, two smoothings: two copies
    assert smoothed["label_smoothing"] == 0.1 and "label_smoothing" not in plain
    assert smoothed["seed"] == 3 and abs(smoothed["fitness"] - alone["fitness"]) <= 2 / len(VAL)
    # each (loss, smoothing) has its own cache entry
    assert ev.evaluate(ce, "base", "main", seed=3, label_smoothing=0.1) == smoothed
    assert ev.hits == 1
    with pytest.raises(ValueError, match="2 label smoothing values for 1"):
        ev.evaluate_many([ce], "base", "main", label_smoothing=[0.0, 0.1])


def test_a_failing_joint_run_falls_back_to_one_by_one(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(search.evaluator, "fit_population", broken)
    exprs = [losses.parse("-(y * ln(p))"), losses.parse("(y - p) * (y - p)")]
    records = _evaluator(tmp_path).evaluate_many(exprs, "base", "main")
    assert [r["status"] for r in records] == ["accepted", "accepted"]
    assert all(r["fitness"] > 0 for r in records)


# --- exact stacking on the CPU: StackedSurrogates, independent copies, CopyRNG ----------------

def _result(res):
    """Everything a FitResult says about the run, for bitwise comparison."""
    return (res.status, res.reason, res.epochs_run, json.dumps(res.history, sort_keys=True),
            json.dumps(res.val_accs))


def test_stack_on_the_cpu_is_exact_and_on_cuda_grouped():
    from augloss.population import StackedSurrogates, stack

    assert isinstance(stack([_model(), _model(1)], "cpu"), StackedSurrogates)
    assert isinstance(stack([_model(), _model(1)], "cuda"), GroupedSurrogate)


@pytest.mark.parametrize("technique", ["base", "mixup", "randaugment"])
def test_shared_batches_on_stacked_copies_equal_alone_bit_for_bit(technique):
    from augloss.population import stack

    cfg = TrainConfig(epochs=2, steps_per_epoch=4, batch_size=32, eval_batch_size=300,
                      optimizer="adam", lr=0.01, warmup_steps=2, evaluate_test=False)
    tech = aug.build(technique)
    fns = [losses.get(t) for t in LOSSES]
    joint = fit_population(stack([_model() for _ in fns], "cpu"), fns, TRAIN, VAL, tech, cfg,
                           seed=3)
    alone = [fit(_model(), fn, TRAIN, VAL, None, tech, cfg, seed=3) for fn in fns]
    assert [_result(j) for j in joint] == [_result(a) for a in alone]
    assert joint[-1].status == "diverged"


def test_independent_copies_each_get_their_own_run_bit_for_bit():
    """Per-copy seeds and techniques (a pool batch, or lockstep searches): each copy draws its
    own batches, augmentation, mixup and dropout, and ends exactly as its own fit; a copy that
    diverges or aborts stops alone while the others go on."""
    from augloss.population import stack

    cfg = TrainConfig(epochs=3, steps_per_epoch=3, batch_size=32, eval_batch_size=128,
                      optimizer="adam", lr=0.01, warmup_steps=2, abort=((2, 0.1),),
                      evaluate_test=False)
    texts = ["ce", "(y - p) * (y - p)", "exp(exp(exp(exp(p * 40))))", "p * 0"]
    techniques = ["base", "mixup", "randaugment", "cutout"]
    seeds = [3, 11, 5, 7]
    fns = [losses.get(t) for t in texts]
    techs = [aug.build(t) for t in techniques]
    joint = fit_population(stack([_model(s) for s in seeds], "cpu"), fns, TRAIN, VAL, techs,
                           cfg, seeds)
    alone = [fit(_model(s), fn, TRAIN, VAL, None, t, cfg, s)
             for s, fn, t in zip(seeds, fns, techs)]
    assert [_result(j) for j in joint] == [_result(a) for a in alone]
    statuses = [a.status for a in alone]
    assert statuses[2] == "diverged" and statuses[0] == "completed" and "aborted" in statuses


def test_copy_rng_keeps_each_copys_stream_apart():
    from augloss.population import CopyRNG

    rng = CopyRNG(2)
    rng.seed(0, 1)
    rng.seed(1, 2)
    torch.manual_seed(99)
    outside = torch.rand(1)
    with rng.active(0):
        a1 = torch.rand(3)
    with rng.active(1):
        b1 = torch.rand(3)
    with rng.active(0):
        a2 = torch.rand(3)
    torch.manual_seed(1)
    ref_a = torch.rand(6)
    torch.manual_seed(2)
    ref_b = torch.rand(3)
    assert torch.equal(torch.cat([a1, a2]), ref_a) and torch.equal(b1, ref_b)
    torch.manual_seed(99)
    assert torch.equal(torch.rand(1), outside)  # the default stream untouched by the copies'
