"""The benchmark suite runs and writes every figure with min/median/max (no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_suite_writes_the_report(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--skip-demo",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    figures = report["figures"]
    for key in ("eval_vs_floor", "joint8_vs_sequential8", "joint16_vs_sequential16",
                "dryrun_paper_s", "pipeline_all_tensor_img_s", "pipeline_all_cpu_img_s",
                "pipeline_randaugment_tf_tensor_img_s", "pipeline_all_tf_cpu_img_s"):
        assert set(figures[key]) == {"min", "median", "max", "n"}, key
        assert 0 < figures[key]["min"] <= figures[key]["median"] <= figures[key]["max"]
    assert "demo_wall_s" not in figures  # --skip-demo
    md = (tmp_path / "report.md").read_text()
    assert "| eval_vs_floor |" in md and "<= 1.15" in md


def test_the_demo_figures_start_from_a_fresh_checkout_and_sum_every_process(tmp_path):
    """demo_wall_s runs on a copy of the tree as a clone has it; demo_peak_rss_mb adds up the
    resident memory of Snakemake and its jobs (more than Snakemake's own)."""
    from benchmarks.suite import _snakemake, fresh_checkout

    clone = fresh_checkout(tmp_path / "clone")
    assert (clone / "Snakefile").is_file() and (clone / "demo" / "config.yaml").is_file()
    assert not (clone / ".venv").exists() and not (clone / "results").exists()
    assert not (clone / ".git").exists()
    wall, peak = _snakemake(clone, "-n", "--cores", "2", "--configfile", "demo/config.yaml",
                            snakefile=clone / "Snakefile")
    assert wall > 0 and 50 < peak < 3000  # one interpreter with Snakemake loaded


def _record_training(monkeypatch):
    """Record what the model and the optimizer see: per forward, whether training, whether
    gradients and autocast are on, the input's shape, dtype, memory format and values; the
    model's build arguments; the optimizer's kind, options and steps."""
    import torch

    from augloss import models, optim

    seen = {"models": [], "optimizers": [], "forwards": [], "steps": 0}
    create, make_opt = models.create, optim.create

    def hook(module, args):
        x = args[0]
        seen["forwards"].append({
            "training": module.training, "grad": torch.is_grad_enabled(),
            "autocast": torch.is_autocast_enabled(x.device.type),
            "shape": tuple(x.shape), "dtype": x.dtype,
            "channels_last": x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous(),
            "min": float(x.min()), "max": float(x.max()), "mean": float(x.mean())})

    def recording_create(name, num_classes, **options):
        seen["models"].append((name, num_classes, options))
        model = create(name, num_classes, **options)
        model.register_forward_pre_hook(hook)
        return model

    def recording_optimizer(kind, params, **options):
        opt = make_opt(kind, params, **options)
        seen["optimizers"].append((kind, {k: (tuple(v) if isinstance(v, (list, tuple)) else v)
                                          for k, v in options.items()}))
        step = opt.step

        def counted_step():
            seen["steps"] += 1
            return step()

        opt.step = counted_step
        return opt

    monkeypatch.setattr(models, "create", recording_create)
    monkeypatch.setattr(optim, "create", recording_optimizer)
    return seen


def _summary(seen):
    train = [f for f in seen["forwards"] if f["training"]]
    val = [f for f in seen["forwards"] if not f["training"]]
    return {"models": list(seen["models"]), "optimizers": list(seen["optimizers"]), "steps": seen["steps"],
            "train_forwards": len(train),
            "train_shapes": {f["shape"] for f in train}, "val_shapes": [f["shape"] for f in val],
            "val_images": sum(f["shape"][0] for f in val),
            "dtypes": {f["dtype"] for f in seen["forwards"]},
            "train_flags": {(f["grad"], f["autocast"], f["channels_last"]) for f in train},
            "val_flags": {(f["grad"], f["autocast"], f["channels_last"]) for f in val},
            "train": train, "val": val}


import pytest  # noqa: E402


@pytest.mark.parametrize("phase", ["prescreen", "prefilter", "main"])
def test_the_floor_trains_and_validates_as_the_evaluation_does(phase, monkeypatch):
    """The floor of eval_vs_floor_<phase> feeds the model what one real evaluation of the
    phase feeds it (input size, normalisation, batch sizes, precision, memory format), with
    the same model, optimizer and options, the same number of training steps and the same
    validation passes over the same images, as :func:`floor_recipe` states."""
    from augloss import losses
    from augloss.search import SurrogateEvaluator
    from benchmarks.suite import fitness_config, floor, floor_recipe

    fitness = fitness_config("cpu", epochs=2, steps=2)
    ev = SurrogateEvaluator(fitness, None, seed=0)
    recipe = floor_recipe(fitness, phase, (ev.train_set, ev.val_set))
    cfg = fitness.recipe(phase)
    # the recipe is config.yaml's, cut to 2 x 2 steps
    assert (recipe["batch_size"], recipe["eval_batch_size"]) == (cfg.batch_size,
                                                                 cfg.eval_batch_size)
    assert recipe["steps"] == 4 and recipe["val_passes"] == 2
    assert recipe["image_size"] == (80 if phase == "main" else 32)
    assert recipe["normalize"] == ("tf" if phase == "main" else "unit")

    seen = _record_training(monkeypatch)
    record = ev.evaluate(losses.parse(losses.REGISTRY["ce"]), "base", phase)
    assert record["epochs_run"] == 2, record
    evaluation = _summary(seen)
    monkeypatch.undo()  # the floor's records apart
    seen = _record_training(monkeypatch)
    floor(fitness, phase, (ev.train_set, ev.val_set))
    bare = _summary(seen)

    size, bs, ebs = recipe["image_size"], recipe["batch_size"], recipe["eval_batch_size"]
    n_val = recipe["val_images"]
    for got in (evaluation, bare):
        assert got["models"] == [(recipe["model"]["name"], recipe["num_classes"],
                                  {k: v for k, v in recipe["model"].items() if k != "name"})]
        assert got["optimizers"] == [(recipe["optimizer"], recipe["optimizer_options"])]
        assert got["steps"] == got["train_forwards"] == recipe["steps"]
        assert got["train_shapes"] == {(bs, 3, size, size)}
        chunks = [min(ebs, n_val - i) for i in range(0, n_val, ebs)]
        assert got["val_shapes"] == [(c, 3, size, size) for c in chunks] * recipe["val_passes"]
        assert got["val_images"] == n_val * recipe["val_passes"]
    assert evaluation["dtypes"] == bare["dtypes"]
    assert evaluation["train_flags"] == bare["train_flags"] == {(True, False, False)}
    assert evaluation["val_flags"] == bare["val_flags"] == {(False, False, False)}
    # normalisation: the validation batches are the same images, so the same values; the
    # training batches are the same kind of images (the floor's one batch vs shuffled ones)
    for e, b in zip(evaluation["val"], bare["val"]):
        for key in ("min", "max", "mean"):
            assert e[key] == pytest.approx(b[key], abs=1e-5), key
    lo, hi = (0.0, 1.0) if recipe["normalize"] == "unit" else (-127.5 / 128, 127.5 / 128)
    for f in evaluation["train"] + bare["train"]:
        assert f["min"] == pytest.approx(lo, abs=1e-3) and f["max"] == pytest.approx(hi, abs=0.05)
    mean = sum(f["mean"] for f in evaluation["train"]) / len(evaluation["train"])
    assert mean == pytest.approx(bare["train"][0]["mean"], abs=0.05)
