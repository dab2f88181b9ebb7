"""The trainer: learning on digits, kill-and-resume, divergence, aborts, schedules, outputs."""

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from augloss import batches, runs, train
from augloss.config import IMAGENET_MEAN, AugmentConfig, TrainConfig
from augloss.names import TECHNIQUES
from augloss.runs import Job
from augloss.train import learning_rate

FAST = {"epochs": 3, "steps_per_epoch": 6, "batch_size": 32, "eval_batch_size": 256,
        "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "nesterov": False,
        "warmup_steps": 3}


def _job(**kw):
    base = dict(stage="test", dataset="digits", augmentation="base", loss={"name": "ce"},
                model={"name": "surrogate", "bn_momentum": 0.1}, train=dict(FAST), seed=0)
    base.update(kw)
    return Job(**base)


@pytest.mark.parametrize("pipeline", ["tensor", "loader"])
def test_trainer_learns_digits_well_above_chance(tmp_path, pipeline):
    job = _job(train={**FAST, "epochs": 5, "steps_per_epoch": None, "pipeline": pipeline})
    m = runs.run(job, tmp_path)
    assert m["status"] == "completed" and not m["diverged"]
    assert m["final_val_acc"] > 0.5 and m["test_acc"] > 0.5  # chance is 0.1
    assert len(m["curves"]["val_acc"]) == 5 and m["epochs_run"] == 5
    assert m["loss_key"] and m["expression"] == "-(y * ln(p))"


def test_outputs_are_deterministic_and_free_of_timings(tmp_path):
    a = runs.run(_job(), tmp_path / "a")
    b = runs.run(_job(), tmp_path / "b")
    assert (tmp_path / "a" / "metrics.json").read_bytes() == \
        (tmp_path / "b" / "metrics.json").read_bytes()
    text = (tmp_path / "a" / "metrics.json").read_text()
    for word in ("images_per_s", "hostname", "started", "seconds"):
        assert word not in text
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    for key in ("git_commit", "git_dirty", "config_hash", "torch", "python", "device",
                "gpu_name", "cuda_visible_devices", "slurm_job_id", "started", "ended",
                "images_per_s"):
        assert key in prov
    assert prov["config_hash"] == a["config_hash"] == b["config_hash"]
    assert not (tmp_path / "a" / "checkpoint.pt").exists()  # removed once metrics exist
    c = runs.run(_job(seed=1), tmp_path / "c")
    assert c["curves"] != a["curves"]


class _Kill(Exception):
    pass


@pytest.mark.parametrize("augmentation", ["base", "all"])
def test_kill_and_resume_gives_byte_identical_metrics(tmp_path, augmentation):
    job = _job(augmentation=augmentation)
    runs.run(job, tmp_path / "whole")

    def kill_after_second(record):
        if record["epoch"] == 2:
            raise _Kill()

    with pytest.raises(_Kill):
        runs.run(job, tmp_path / "killed", callback=kill_after_second)
    assert (tmp_path / "killed" / "checkpoint.pt").exists()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    runs.run(job, tmp_path / "killed")
    prov = json.loads((tmp_path / "killed" / "provenance.json").read_text())
    assert prov["resumed_from_epoch"] == 2
    assert (tmp_path / "whole" / "metrics.json").read_bytes() == \
        (tmp_path / "killed" / "metrics.json").read_bytes()


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    job = _job()

    def kill_after_second(record):
        if record["epoch"] == 2:
            raise _Kill()

    with pytest.raises(_Kill):
        runs.run(job, tmp_path / "r", callback=kill_after_second)
    ckpt = tmp_path / "r" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated
    runs.run(job, tmp_path / "r")
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert prov["resumed_from_epoch"] == 1  # the .prev checkpoint
    runs.run(job, tmp_path / "whole")
    assert (tmp_path / "whole" / "metrics.json").read_bytes() == \
        (tmp_path / "r" / "metrics.json").read_bytes()


def test_checkpoint_of_another_job_is_not_resumed(tmp_path):
    def kill(record):
        raise _Kill()

    with pytest.raises(_Kill):
        runs.run(_job(seed=5), tmp_path, callback=kill)
    runs.run(_job(seed=6), tmp_path)
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["resumed_from_epoch"] == 0


def test_exploding_loss_ends_as_diverged(tmp_path):
    m = runs.run(_job(loss={"name": "boom", "expression": "exp(exp(exp(exp(p * 4))))"}),
                 tmp_path)
    assert m["status"] == "diverged" and m["diverged"]
    assert "non-finite" in m["reason"]
    assert m["test_acc"] is None
    json.loads((tmp_path / "metrics.json").read_text())  # still strict JSON


def test_abort_rule_and_fail_below(tmp_path):
    m = runs.run(_job(train={**FAST, "abort": [[0, 0.99]]}), tmp_path / "a")
    assert m["status"] == "aborted" and m["epochs_run"] == 1
    assert "training accuracy" in m["reason"]
    m = runs.run(_job(train={**FAST, "epochs": 1, "fail_below": 0.99}), tmp_path / "f")
    assert m["status"] == "failed"


def test_mixup_trains_with_soft_targets_in_both_modes(tmp_path):
    for mode in ("targets", "losses"):
        m = runs.run(_job(augmentation="mixup", augment={"mixup_mode": mode}), tmp_path / mode)
        assert m["status"] == "completed"


def _paper_recipe(*path):
    node = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    for key in path:
        node = node[key]
    return node


def test_earlier_codes_schedule():
    cfg = TrainConfig.from_dict(_paper_recipe("search", "fitness", "main"))
    total = cfg.epochs * cfg.steps_per_epoch
    assert total == 8000
    lr = lambda s: learning_rate(cfg, s, total, 100)  # noqa: E731
    assert lr(0) == pytest.approx(1e-7)
    assert lr(400) == pytest.approx(0.5e-3 + 1e-7)
    assert lr(800) == pytest.approx(1e-3 + 1e-7)
    assert lr(800 + 3600) == pytest.approx(0.5e-3 + 1e-7)
    s = 5000
    assert lr(s) == pytest.approx(0.5e-3 * (1 + math.cos(math.pi * (s - 800) / 7200)) + 1e-7)
    pre = TrainConfig.from_dict(_paper_recipe("search", "fitness", "prefilter"))
    assert learning_rate(pre, 799, pre.total_steps, 100) < 1e-3  # only warms up
    step = TrainConfig(milestones=(60, 120, 160), schedule="step", lr=0.1, gamma=0.2)
    assert learning_rate(step, 130 * 391, 200 * 391, 391) == pytest.approx(0.1 * 0.2 ** 2)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="train.epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="train.epochs must be an integer"):
        TrainConfig(epochs=2.5)
    with pytest.raises(ValueError, match="train.optimizer"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ValueError, match="unknown key\\(s\\) epoch"):
        TrainConfig.from_dict({"epoch": 3})
    for path in (("search", "fitness", "prescreen"), ("search", "fitness", "prefilter"),
                 ("search", "fitness", "main"), ("transfer", "train"), ("finetune", "train")):
        TrainConfig.from_dict(_paper_recipe(*path))  # every paper recipe is valid


def test_fine_tune_from_local_weights(tmp_path):
    pre = _job(dataset="digits:0-4", model={"name": "timm:test_efficientnet"},
               train={**FAST, "epochs": 1})
    weights = tmp_path / "pre.safetensors"
    runs.run(pre, tmp_path / "pre", weights_out=weights)
    assert weights.exists()
    ft = _job(dataset="digits:5-9", model={"name": "timm:test_efficientnet"},
              train={**FAST, "epochs": 1}, augment={"finetune": True},
              preprocessing={"image_size": 32})
    m = runs.run(ft, tmp_path / "ft", init_weights=str(weights))
    assert m["status"] == "completed" and m["dataset"] == "digits:5-9"
    pre = m["preprocessing"]  # from the weights' config except the labelled override
    assert pre["image_size"] == 32 and pre["overridden"] == ["image_size"]
    assert pre["mean"] == list(IMAGENET_MEAN) and pre["crop_pct"] == 0.95
    assert pre["interpolation"] == "bicubic" and pre["tag"] == "test_efficientnet.r160_in1k"
    assert pre["weights_file"] == "pre.safetensors" and pre["pretrained"]
    plain = runs.run(_job(train={**FAST, "epochs": 1}), tmp_path / "plain")
    assert "preprocessing" not in plain  # CIFAR-size stages keep their own pipeline


def test_fine_tune_pipeline_follows_the_resolved_preprocessing(monkeypatch):
    from augloss import models

    model = models.create("efficientnetv2_s", 5, tag="in1k")
    job = _job(model={"name": "efficientnetv2_s", "tag": "in1k", "pretrained": True},
               augment={"finetune": True}, preprocessing={"crop_pct": 0.9})
    cfg, pre = runs._pipeline(job, model, None)
    assert (cfg.image_size, cfg.interpolation, cfg.crop_pct) == (300, "bicubic", 0.9)
    assert cfg.mean_std() == ((0.5,) * 3, (0.5,) * 3) and cfg.finetune
    assert pre["tag"] == "tf_efficientnetv2_s.in1k" and pre["overridden"] == ["crop_pct"]
    assert pre["pretrained"] and pre["weights_file"] is None
    assert runs._pipeline(_job(), model, None)[1] is None
    with pytest.raises(ValueError, match="finetune.preprocessing: unknown key"):
        runs._pipeline(_job(preprocessing={"size": 3}), model, None)


def test_auto_pipeline_batches_cifar_size_data_only():
    from augloss import augment, data

    digits = data.load("digits", split="val")
    auto = TrainConfig(pipeline="auto")
    assert batches.use_tensors(auto, augment.build("all"), digits)
    finetune = augment.build("base", AugmentConfig(image_size=64, finetune=True))
    assert not batches.use_tensors(auto, finetune, digits)
    assert not batches.use_tensors(TrainConfig(pipeline="loader"), augment.build("all"), digits)
    with pytest.raises(ValueError, match="train.pipeline"):
        batches.use_tensors(TrainConfig(pipeline="tensor"), finetune, digits)
    with pytest.raises(ValueError, match="train.pipeline"):
        TrainConfig(pipeline="gpu")


def test_cpu_runs_switch_deterministic_algorithms_on():
    torch.use_deterministic_algorithms(False)
    try:
        runs._deterministic(cfg_compile=False)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(True)  # what conftest sets for every test


SYNCS = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist", "cpu", "numpy")


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_a_training_step_never_waits_for_the_device(monkeypatch, technique):
    """Loss, accuracy and finiteness stay on the device; counted on the CPU through every
    tensor-to-Python conversion inside the training step (each one is a host sync on a GPU),
    except torch.optim's own step counters, which live on the CPU on a GPU run too."""
    counts = {"in_step": False, "n": 0}
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **k):
            caller = sys._getframe(1).f_code.co_filename
            if counts["in_step"] and f"torch{os.sep}optim" not in caller:
                counts["n"] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    step = train._train_step

    def watched(*a, **k):
        counts["in_step"] = True
        try:
            return step(*a, **k)
        finally:
            counts["in_step"] = False

    monkeypatch.setattr(train, "_train_step", watched)
    checks = []
    monkeypatch.setattr(train, "_check_finite", lambda run, epoch, _c=train._check_finite:
                        (checks.append(epoch), _c(run, epoch)))
    monkeypatch.setattr(train, "FINITE_CHECK_EVERY", 4)
    m = runs.run(_job(augmentation=technique, train={**FAST, "epochs": 2,
                                                     "steps_per_epoch": 8}),
                 Path(tempfile.mkdtemp()))
    assert m["status"] == "completed" and m["curves"]["train_acc"][-1] > 0
    assert counts["n"] == 0, f"{counts['n']} host syncs in 16 training steps"
    assert checks == [0, 0, 0, 1, 1, 1]  # every 4 steps and at each epoch's end
