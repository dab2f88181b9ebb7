"""Per-stage and per-dataset augmentation parameters: padding mode, Cutout fill, the CIFAR
normalisation, fine-tuning's square crop, the RandAugment implementation, and the training split
of the final runs."""

import copy

import pytest
import torch

from augloss import augment as aug
from augloss import batch_augment as ba
from augloss.config import CIFAR_MEAN, CIFAR_STD, AugmentConfig
from augloss.experiment import Experiment
from augloss.schema import ConfigError
from tests.helpers import REPO, load


def _gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _ramp(n=1, side=32):
    """Every pixel distinct along a row: column index + 10 (a reflected column is recognisable)."""
    cols = torch.arange(side).view(1, side).expand(side, side) + 10
    img = torch.stack([cols, cols.t(), torch.full((side, side), 200)]).to(torch.uint8)
    return img.expand(n, -1, -1, -1).contiguous()


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_the_batched_crop_pads_like_torchvision_in_both_modes(mode):
    cfg = AugmentConfig(pad_mode=mode)
    batch = ba.BatchAugment(aug.build("base", cfg))
    x = _ramp(400)
    out = batch.crop(x, _gen())
    from torchvision.transforms.v2 import functional as TF

    padded = TF.pad(x[0], [4], padding_mode=mode)  # torchvision's own padding as the reference
    # each output is an exact 32 x 32 window of the padded image (zeros or reflections)
    windows = {padded[:, i:i + 32, j:j + 32].numpy().tobytes()
               for i in range(9) for j in range(9)}
    assert all(o.numpy().tobytes() in windows for o in out)
    zero_border = (out[:, 2] == 0).any().item()
    assert zero_border == (mode == "constant")  # reflection never shows a black border
    # the per-sample path pads the same way
    torch.manual_seed(0)
    theirs = torch.stack([aug.build("base", cfg).train_transform(x[0]) for _ in range(200)])
    assert ((theirs[:, 2] == 0).any().item()) == (mode == "constant")


def test_cutout_fills_with_the_normalisation_mean_which_is_zero_after_normalising():
    cfg = AugmentConfig(normalize="cifar", cutout_fill="mean")
    fill = cfg.cutout_value()
    assert fill == (125, 123, 114)  # round([125.3, 123.0, 113.9])
    img = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    batch = ba.BatchAugment(aug.build("cutout", cfg))
    out = batch.erase(img.expand(50, -1, -1, -1).contiguous(), _gen())
    hole = out[:, 0] != 255
    assert hole.any()
    for c, v in enumerate(fill):
        assert (out[:, c][hole] == v).all()
    normalised = ba.normalise(out, cfg)
    assert normalised.permute(1, 0, 2, 3)[:, hole].abs().max() < 0.5 / 255 / min(CIFAR_STD)
    torch.manual_seed(0)
    theirs = aug.Cutout(16, fill)(img)
    assert set(theirs[0].unique().tolist()) <= {255, fill[0]}
    assert (theirs[:, theirs[0] != 255] == torch.tensor(fill)[:, None]).all()
    # the default stays black
    assert AugmentConfig().cutout_value() == (0, 0, 0)


def test_the_cifar_normalisation_is_the_wrn_codes_mean_and_std():
    cfg = AugmentConfig(normalize="cifar")
    assert cfg.mean_std() == (CIFAR_MEAN, CIFAR_STD)
    x = torch.tensor([125.3, 123.0, 113.9]).view(1, 3, 1, 1)
    # the per-sample and batched paths normalise the same way
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    mine = ba.normalise(img[None], cfg)[0]
    theirs = aug.build("none", cfg).eval_transform(img)
    assert torch.allclose(mine, theirs, atol=1e-6)
    # the WRN code's constants, written out here rather than taken from the module
    assert torch.allclose(torch.tensor(CIFAR_MEAN) * 255, x.flatten())
    assert torch.allclose(torch.tensor(CIFAR_STD) * 255, torch.tensor([63.0, 62.1, 66.7]))


@pytest.mark.parametrize("bad, message", [
    ({"pad_mode": "wrap"}, "pad_mode must be one of"),
    ({"cutout_fill": "grey"}, "cutout_fill must be one of"),
    ({"cutout_fill": "mean", "normalize": "unit"}, "normalize: unit has none"),
    ({"randaugment_impl": "keras"}, "randaugment_impl must be one of"),
    ({"crop": "centre"}, "crop must be one of"),
    ({"randaugment_translate": -1}, "must be >= 0"),
])
def test_bad_augmentation_values_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**bad)


def test_the_square_crop_of_fine_tuning_crops_the_shorter_side_and_resizes():
    cfg = AugmentConfig(image_size=24, finetune=True, crop="square")
    steps = aug.build("base", cfg).train_transform.transforms
    assert isinstance(steps[0], aug.SquareCrop) and steps[0].random
    wide = torch.zeros((3, 30, 60), dtype=torch.uint8)
    wide[:, :, 30:] = 255  # right half white: a square crop of side 30 shows some of each
    torch.manual_seed(0)
    outs = [aug.build("base", cfg).train_transform(wide) for _ in range(20)]
    assert all(o.shape == (3, 24, 24) for o in outs)
    default = aug.build("base", AugmentConfig(image_size=24, finetune=True)).train_transform
    assert type(default.transforms[0]).__name__ == "RandomResizedCrop"


@pytest.mark.parametrize("crop", ["square", "random_resized"])
def test_fine_tuning_crops_to_the_network_size_before_randaugment_and_cutout(crop):
    """The earlier code resized, then augmented: RandAugment's pixel constants and Cutout act
    on the network-sized image, never on the raw photo."""
    from augloss.tf_randaugment import TFRandAugmentTransform

    cfg = AugmentConfig(image_size=24, finetune=True, crop=crop, randaugment_impl="tf",
                        randaugment_m=5, normalize="tf")
    names = [type(t).__name__ for t in aug.build("all", cfg).train_transform.transforms]
    first_step = names.index("TFRandAugmentTransform")
    framing = ["SquareCrop", "Resize"] if crop == "square" else ["RandomResizedCrop"]
    assert names[:first_step] == framing
    assert names[first_step:] == ["TFRandAugmentTransform", "RandomHorizontalFlip", "Cutout",
                                  "ToDtype", "Normalize"]
    photo = torch.randint(0, 256, (3, 90, 140), dtype=torch.uint8)
    torch.manual_seed(0)
    assert aug.build("all", cfg).train_transform(photo).shape == (3, 24, 24)
    assert TFRandAugmentTransform  # the class the names refer to


def test_randaugment_implementation_is_chosen_by_the_config():
    from torchvision.transforms import v2

    from augloss.tf_randaugment import TFRandAugment, TFRandAugmentTransform

    tf_cfg = AugmentConfig(randaugment_impl="tf", randaugment_m=5)
    per_sample = aug.build("randaugment", tf_cfg).train_transform.transforms
    assert any(isinstance(t, TFRandAugmentTransform) for t in per_sample)
    assert not any(isinstance(t, v2.RandAugment) for t in per_sample)
    batch = ba.BatchAugment(aug.build("randaugment", tf_cfg))
    assert isinstance(batch._tf_ra, TFRandAugment)
    x = _ramp(64)
    out = batch.rand_augment(x, _gen(1))
    assert out.dtype == torch.uint8 and out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(out, batch.rand_augment(x, _gen(1)))  # seeded
    tv = aug.build("randaugment", AugmentConfig()).train_transform.transforms
    assert any(isinstance(t, v2.RandAugment) for t in tv)


# --- the experiment: per-stage and per-dataset values, the split --------------------------------

@pytest.fixture()
def paper():
    return load(REPO / "config.yaml")


def test_a_dataset_entry_overrides_its_stage_which_overrides_the_shared_values(paper):
    x = Experiment.from_config(paper)
    c10, c100 = x.augment("transfer", "cifar10"), x.augment("transfer", "cifar100")
    assert c10["cutout_size"] == paper["augment"]["cutout_size"] == 16
    assert c100["cutout_size"] == 8
    assert c10["normalize"] == c100["normalize"] == paper["transfer"]["augment"]["normalize"]
    assert x.search_augment()["randaugment_impl"] == "tf"
    assert x.search_job("randaugment")["fitness"]["augment"] == x.search_augment()
    job = x.train_job("transfer", "cifar100", "cutout", "ce", 0)
    assert job["augment"]["cutout_size"] == 8 and job["train_split"] == "train"


def test_an_entry_for_a_dataset_the_stage_does_not_train_is_refused(paper):
    paper["transfer"]["augment_by_dataset"]["svhn"] = {"cutout_size": 4}
    with pytest.raises(ConfigError, match=r"transfer\.augment_by_dataset: 'svhn' is not among"):
        Experiment.from_config(paper).check()


def test_an_impossible_combination_names_the_dataset_entry(paper):
    paper["transfer"]["augment_by_dataset"]["cifar100"] = {"normalize": "unit"}
    with pytest.raises(ConfigError, match=r"transfer\.augment_by_dataset\.cifar100: .*"
                                          r"normalize: unit has none"):
        Experiment.from_config(paper).check()


def test_trainval_for_a_stage_selected_on_validation_accuracy_is_refused(paper):
    bad = copy.deepcopy(paper)
    bad["transfer"]["train_split"] = "trainval"
    with pytest.raises(ConfigError, match=r"transfer\.train_split: trainval trains on the "
                                          r"validation images"):
        Experiment.from_config(bad).check()
    bad["finetune"]["selection_metric"] = "test_acc"
    with pytest.raises(ConfigError, match="on the test set"):
        Experiment.from_config(bad).check()
    # nothing selected from the transfer runs: every training image is allowed there too
    bad["finetune"]["from_transfer"] = 0
    Experiment.from_config(bad).check()
    # fine-tuning feeds no selection: every training image is allowed (the default)
    x = Experiment.from_config(paper)
    x.check()
    assert x.train_job("finetune", "flowers102", "base", "ce", 0)["train_split"] == "trainval"


def test_a_trainval_run_trains_on_every_training_image_and_claims_no_validation(tmp_path):
    from augloss import data, runs

    fast = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 32, "eval_batch_size": 256,
            "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "nesterov": False}
    common = dict(stage="transfer", dataset="digits", augmentation="base", loss={"name": "ce"},
                  model={"name": "surrogate"}, train=fast, seed=0)
    held = runs.run(runs.Job(**common), tmp_path / "train")
    full = runs.run(runs.Job(**common, train_split="trainval"), tmp_path / "trainval")
    n_train = len(data.load("digits", "data", "train", download=False))
    n_val = len(data.load("digits", "data", "val", download=False))
    assert (held["train_split"], held["train_n"]) == ("train", n_train)
    assert (full["train_split"], full["train_n"]) == ("trainval", n_train + n_val)
    assert held["final_val_acc"] is not None and held["val_n"] == n_val
    # the validation images were trained on: no validation accuracy is claimed
    assert full["final_val_acc"] is None and full["best_val_acc"] is None
    assert full["val_n"] is None and full["data"]["val"] is None
    assert full["test_acc"] is not None and full["run_hash"] != held["run_hash"]
    # the tables say which split each run trained on
    from augloss.tables import audit, collect, comparison

    with pytest.raises(collect.TableError, match="mixes configurations"):
        collect.collect([tmp_path])  # the split is part of the run's configuration
    df = collect.collect([tmp_path], allow_mixed=True)
    assert sorted(df["train_split"]) == ["train", "trainval"]
    t = comparison.comparison(df, "transfer")
    note = comparison.training_note(t)
    assert f"train ({n_train} images) and trainval ({n_train + n_val} images)" in note
    assert "MIXED training splits in digits" in note
    a = audit.audit(df)
    assert "mixed training splits" in a.iloc[0]["flags"]
    assert a.iloc[0]["train_split"] == "train trainval"


@pytest.mark.parametrize("key, where", [("image_size", "search.image_size"),
                                        ("normalize", "search.normalize"),
                                        ("finetune", "fine-tuning only")])
def test_search_augment_refuses_what_the_search_sets_elsewhere(paper, key, where):
    paper["search"]["augment"] = {key: {"image_size": 64, "normalize": "unit",
                                        "finetune": True}[key]}
    with pytest.raises(ConfigError, match=rf"search\.augment\.{key}: .*{where}"):
        Experiment.from_config(paper).check()


def test_the_mean_cutout_fill_of_the_search_uses_its_own_normalisation(paper):
    """search.normalize: tf has a mean colour (grey 128): the shared augment's default
    normalize (unit) must not decide; the screens stay unaugmented at x / 255."""
    paper["augment"]["cutout_fill"] = "mean"
    x = Experiment.from_config(paper)
    x.check()
    from augloss.config import FitnessConfig

    fit = FitnessConfig.from_dict({**x.search_job("cutout")["fitness"], "data_root": "."})
    assert fit.phase_augment("main").cutout_value() == (128, 128, 128)
    screen = fit.phase_augment("prescreen")
    assert (screen.normalize, screen.cutout_fill, screen.image_size) == ("unit", "zero", 32)
    # no augmentation parameter enters a screen's pipeline, so none reruns the screens
    paper["augment"]["randaugment_m"] = 7
    other = FitnessConfig.from_dict({**Experiment.from_config(paper).search_job("cutout")[
        "fitness"], "data_root": "."})
    assert other.phase_hash("prescreen", "d") == fit.phase_hash("prescreen", "d")
    assert other.phase_hash("main", "d") != fit.phase_hash("main", "d")


def test_a_validation_table_metric_with_a_trainval_stage_is_refused(paper):
    paper["tables"]["metric"] = "final_val_acc"
    with pytest.raises(ConfigError, match=r"tables\.metric: final_val_acc, but "
                                          r"finetune\.train_split is trainval"):
        Experiment.from_config(paper).check()


def test_orient_on_a_registry_loss_is_refused(paper):
    paper["transfer"]["baselines"].append({"name": "focal2", "loss": "focal", "orient": True})
    with pytest.raises(ConfigError, match=r"transfer\.baselines\[3\]\.orient: 'focal' is a "
                                          r"registry loss"):
        Experiment.from_config(paper).check()
