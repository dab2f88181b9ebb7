"""``orient``: a baseline expression trains as written (default, with a warning when the
integrity test would flip it) or as the test orients it; recorded in metrics and the run hash."""

import logging
from pathlib import Path

import pytest
import torch
import yaml

from augloss import losses, runs, workflow
from augloss.config import LossSpec
from augloss.experiment import Experiment, baseline_loss
from augloss.io import config_hash
from augloss.losses import Call, parse
from augloss.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
WRONG_WAY = "y * ln(p)"  # cross-entropy without its minus: the integrity test flips it


def _values(spec, seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(16, 5)
    target = torch.randint(0, 5, (16,))
    return losses.get(spec)(logits, target)


# --- losses.orientation ----------------------------------------------------------------------

def test_orient_true_trains_the_negated_loss():
    o = losses.orientation(WRONG_WAY, orient=True)
    assert o.verdict.ok and o.verdict.flip and o.negated
    assert o.trained == Call("neg", (parse(WRONG_WAY),)) and str(o.trained) == "-(y * ln(p))"
    torch.testing.assert_close(_values(o.spec), -_values(parse(WRONG_WAY)))
    assert o.warning() is None
    # ... which is the search space's guarded cross-entropy
    torch.testing.assert_close(_values(o.spec), _values(parse("-(y * ln(p))")))


def test_orient_false_trains_as_written_and_warns():
    o = losses.orientation(WRONG_WAY)
    assert o.trained == parse(WRONG_WAY) and not o.negated and o.wrong_way
    torch.testing.assert_close(_values(o.spec), _values(parse(WRONG_WAY)))
    warning = o.warning()
    assert "points the wrong way" in warning and "orient: true" in warning
    assert "-(y * ln(p))" in warning
    assert o.record() == {"orient": False, "integrity": "passes", "integrity_flip": True,
                          "integrity_reason": None, "negated": False, "written": WRONG_WAY,
                          "trained": WRONG_WAY}


@pytest.mark.parametrize("orient", [False, True])
def test_a_loss_pointing_the_right_way_trains_as_written(orient):
    o = losses.orientation("-(y * ln(p))", orient=orient)
    assert o.trained == o.written and not o.negated and o.warning() is None


def test_orient_refuses_a_loss_that_fails_the_integrity_test():
    bad = "square(p + p + -1)"  # minimum at p = 0.5
    with pytest.raises(ValueError, match=r"square\(p \+ p \+ -1\) fails the integrity test"):
        losses.orientation(bad, orient=True)
    o = losses.orientation(bad)
    assert o.trained == parse(bad) and "fails the integrity test" in o.warning()
    assert o.record()["integrity"] == "fails" and o.record()["integrity_reason"]


@pytest.mark.parametrize("name", ["ce", "focal", "baikal", "weighted_ce"])
def test_registry_names_are_never_judged_and_orient_is_harmless(name):
    for orient in (False, True):
        o = losses.orientation(name, orient=orient)
        assert o.spec == name and o.verdict is None and not o.negated and o.warning() is None
        assert o.record()["integrity"] == "not run (registry name)"


def test_the_earlier_codes_printed_loss_is_unflipped_and_orient_fixes_it():
    # The earlier code prints the raw term and applies its flip only when training; a pasted
    # string of a flipped loss therefore needs orient.
    o = losses.orientation("(y)*(ln(|yhat|))", orient=True)
    assert o.trained == parse("-(y * ln(p))")


# --- the spec, its hash and the config ---------------------------------------------------------

def test_orient_false_leaves_the_identity_and_run_hash_unchanged():
    before = {"name": "mine", "expression": WRONG_WAY, "label_smoothing": 0.0,
              "class_weights": None}  # LossSpec.identity() before orient existed
    spec = LossSpec("mine", WRONG_WAY)
    assert spec.identity() == before and LossSpec.from_dict(spec.to_dict()) == spec
    job = {"stage": "transfer", "dataset": "digits", "augmentation": "base",
           "model": {"name": "surrogate"}, "train": {}, "seed": 0}
    old = runs.identity(runs.Job(loss=before, **job))
    assert runs.identity(runs.Job(loss=spec, **job)) == old
    oriented = LossSpec("mine", WRONG_WAY, orient=True)
    assert oriented.identity() == {**before, "orient": True}
    assert LossSpec.from_dict(oriented.to_dict()) == oriented
    assert config_hash(runs.identity(runs.Job(loss=oriented, **job))) != config_hash(old)
    with pytest.raises(ValueError, match="orient must be true or false"):
        LossSpec("mine", WRONG_WAY, orient="yes")


def _config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_the_schema_takes_orient_and_the_job_carries_it():
    config = _config()
    config["transfer"]["baselines"] += [
        {"name": "mine", "expression": WRONG_WAY, "orient": True},
        {"name": "as_written", "expression": WRONG_WAY}]
    x = Experiment.from_config(config)
    b = x.baselines("transfer")
    assert b["mine"]["orient"] is True
    assert "orient" not in b["as_written"]  # orient: false leaves the job's params as they were
    slug = next(iter(x.datasets("transfer")))
    job = x.train_job("transfer", slug, "base", "mine", 0)
    spec = workflow.resolve_loss("mine", job["baseline"], None)
    assert spec == LossSpec("mine", WRONG_WAY, orient=True)
    assert workflow.resolve_loss("as_written", b["as_written"], None).orient is False
    config["transfer"]["baselines"][-1]["orient"] = "yes"
    with pytest.raises(ConfigError, match="orient"):
        Experiment.from_config(config)


def test_baseline_loss_adds_orient_only_when_true():
    entry = {"name": "mine", "expression": WRONG_WAY, "label_smoothing": 0.0,
             "class_weights": None}
    assert baseline_loss({**entry, "orient": False}) == baseline_loss(entry)
    assert "orient" not in baseline_loss(entry)
    assert baseline_loss({**entry, "orient": True})["orient"] is True


# --- a training job ----------------------------------------------------------------------------

TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 16, "eval_batch_size": 256,
        "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "nesterov": False,
        "warmup_steps": 0}


def _run(tmp_path, orient, caplog):
    job = runs.Job(stage="test", dataset="digits", augmentation="base",
                   loss={"name": "mine", "expression": WRONG_WAY, "orient": orient},
                   model={"name": "surrogate", "bn_momentum": 0.1}, train=dict(TINY), seed=0)
    with caplog.at_level(logging.WARNING, logger="augloss.runs"):
        return runs.run(job, tmp_path / str(orient))


def test_a_job_trains_as_written_warns_and_records_it(tmp_path, caplog):
    m = _run(tmp_path, False, caplog)
    assert m["expression"] == WRONG_WAY and m["loss_key"] == parse(WRONG_WAY).key
    assert m["loss_orientation"] == {"orient": False, "integrity": "passes",
                                     "integrity_flip": True, "integrity_reason": None,
                                     "negated": False, "written": WRONG_WAY,
                                     "trained": WRONG_WAY}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "loss mine:" in warned[0].getMessage()
    assert "points the wrong way" in warned[0].getMessage()


def test_a_job_with_orient_trains_the_negated_loss(tmp_path, caplog):
    m = _run(tmp_path, True, caplog)
    assert m["expression"] == "-(y * ln(p))" and m["loss_key"] == parse("-(y * ln(p))").key
    assert m["loss_orientation"]["negated"] is True
    assert m["loss_orientation"]["written"] == WRONG_WAY
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_the_correlation_study_scores_a_baseline_as_the_transfer_stage_trains_it():
    from augloss.search.correlation import study_losses

    def baseline(**extra):
        return {"name": "mine", "expression": "y * sqrt(p)", "label_smoothing": 0.0,
                "class_weights": None, **extra}

    rows, _ = study_losses({}, 1, [baseline(orient=True)])
    assert [r["expression"] for r in rows if r["kind"] == "baseline"] == ["-(y * sqrt(p))"]
    rows, _ = study_losses({}, 1, [baseline()])
    assert [r["expression"] for r in rows if r["kind"] == "baseline"] == ["y * sqrt(p)"]
