"""Synthetic stand-ins (augloss.synthetic): the real layouts, read by the real loaders, never by
accident; and the paper-smoke config is config.yaml's experiment apart from its labelled
budgets."""

import hashlib
from pathlib import Path

import pytest
import torch
import yaml

from augloss import data, manifest, models, names, registry, synthetic, workflow
from augloss.schema import load_config

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "tests" / "configs" / "paper-smoke.yaml"
#: The real datasets' class counts and (CIFAR) image side: what the stand-ins must keep.
REAL = {"cifar10": (10, 32), "cifar100": (100, 32), "flowers102": (102, None),
        "caltech101": (101, None), "stanford_cars": (196, None)}


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in registry.stand_ins():
        synthetic.write(name, root)
    return root


def test_every_stand_in_has_a_spec():
    assert set(registry.stand_ins()) == set(REAL)
    assert {n: registry.DATASETS[n].classes for n in REAL} == {n: c for n, (c, _) in REAL.items()}


@pytest.mark.parametrize("name", registry.stand_ins())
def test_stand_ins_load_through_the_real_loader_with_the_real_shapes(written, name, monkeypatch):
    calls = []
    original = data.LOADERS[name]
    monkeypatch.setitem(data.LOADERS, name, lambda *a, **k: calls.append(a) or original(*a, **k))
    classes, side = REAL[name]
    for split in ("train", "val", "test"):
        ds = data.load(f"synthetic:{name}", written, split, download=False)
        assert ds.name == f"synthetic:{name}" and ds.num_classes == classes
        assert len(ds) > 0, split
        image, label = ds[len(ds) - 1]
        assert image.dtype == torch.uint8 and image.shape[0] == 3 and 0 <= label < classes
        if side:
            assert image.shape[1:] == (side, side)
        else:  # photos of the real datasets' sizes, not thumbnails
            assert min(image.shape[1:]) >= 180
        assert all(Path(f).is_relative_to(written / "synthetic") for f in ds.on_disk())
    assert len(calls) == 3  # every split came from the real dataset's own loader


def test_writing_twice_gives_byte_identical_files(written, tmp_path):
    for name in registry.stand_ins():
        synthetic.write(name, tmp_path)
    assert tree_digest(tmp_path / "synthetic") == tree_digest(written / "synthetic")


def test_a_half_written_stand_in_is_written_again(tmp_path):
    synthetic.write("cifar10", tmp_path)
    batch = next((tmp_path / "synthetic").rglob("data_batch_1"))
    good = batch.read_bytes()
    batch.write_bytes(b"truncated")
    for marker in (tmp_path / "synthetic").glob(".cifar10.*.done"):
        marker.unlink()  # a write that crashed before its marker
    synthetic.write("cifar10", tmp_path)
    assert batch.read_bytes() == good


def test_a_job_before_prepare_is_told_what_writes_it(tmp_path):
    with pytest.raises(data.DatasetMissing, match="prepare_dataset rule writes it"):
        data.load("synthetic:flowers102", tmp_path, "train", download=False)


def test_real_names_never_read_the_stand_ins(written):
    """A config naming cifar10 (config.yaml) never trains on synthetic images, even with
    them under the same data_root."""
    with pytest.raises(data.DatasetMissing, match="cifar10"):
        data.load("cifar10", written, "train", download=False)
    with pytest.raises(data.DatasetMissing):
        data.load("flowers102", written, "train", download=False)


def test_config_yaml_names_nothing_synthetic():
    text = (REPO / "config.yaml").read_text()
    assert "synthetic" not in text
    cfg = yaml.safe_load(text)
    datasets = [cfg["search"]["dataset"], *cfg["transfer"]["datasets"],
                *cfg["finetune"]["datasets"]]
    assert not [d for d in datasets if d.startswith("synthetic:")]
    assert cfg["finetune"]["model"]["pretrained"] is True


def test_unknown_stand_ins_are_named():
    with pytest.raises(ValueError, match="synthetic:imagenet.*synthetic:cifar10"):
        names.check_dataset("synthetic:imagenet")
    names.check_dataset("synthetic:stanford_cars")


def test_the_manifest_hashes_the_stand_in_files(tmp_path):
    m = workflow.prepare_dataset("synthetic:stanford_cars", str(tmp_path), ["train", "val", "test"])
    files = m["files"]
    assert "synthetic/stanford_cars/devkit/cars_train_annos.mat" in files
    assert sum(f.endswith(".jpg") for f in files) == 24
    assert m["splits"]["train"]["classes"] == 196
    jpg = sorted((tmp_path / "synthetic" / "stanford_cars" / "cars_test").glob("*.jpg"))[0]
    jpg.write_bytes(jpg.read_bytes()[:-10])
    with pytest.raises(manifest.DataMismatch, match=jpg.name):
        manifest.verify_files(files, tmp_path, m["dataset"])


# --- weights ----------------------------------------------------------------------------------

TINY = {"name": "timm:test_efficientnet", "pretrained": "synthetic"}


def test_synthetic_weights_are_a_local_file_loaded_by_the_offline_path(tmp_path):
    m = models.prefetch_weights(TINY, tmp_path)
    path = Path(m["file"])
    assert path.is_relative_to(tmp_path / "synthetic" / "weights") and path.is_file()
    assert "NOT pretrained" in m["source"]
    again = models.prefetch_weights(TINY, tmp_path / "other")
    assert again["sha256"] == m["sha256"]  # a seeded initialisation: reproducible bytes
    model = models.create(TINY["name"], 7, weights=str(path), pretrained="synthetic")
    assert model.get_classifier().out_features == 7  # the head re-initialised for 7 classes
    from safetensors.torch import load_file

    saved = load_file(path)
    stem = next(k for k in saved if k.startswith("conv_stem"))
    torch.testing.assert_close(model.state_dict()[stem], saved[stem])


def test_synthetic_weights_are_never_fetched_from_the_hub():
    with pytest.raises(ValueError, match="prefetch_weights"):
        models.create(TINY["name"], 7, pretrained="synthetic")


# --- the smoke config is config.yaml's experiment ---------------------------------------------

#: What paper-smoke.yaml may change (budgets, data, weights, resources), each labelled there.
SMOKE_MAY_DIFFER = {
    "experiment", "search.dataset", "search.gpu", "search.threads", "search.runtime",
    "search.retries", "search.mem_mb", "search.device", "search.algorithm.population",
    "search.algorithm.initial_pool", "search.algorithm.children", "search.algorithm.tournament",
    "search.algorithm.top_k", "correlation.top_n", "transfer.evolved_per_augmentation",
    "transfer.datasets", "transfer.seeds", "transfer.gpu", "transfer.threads",
    "transfer.runtime", "transfer.mem_mb", "finetune.datasets", "finetune.seeds",
    "finetune.gpu", "finetune.threads", "finetune.runtime", "finetune.mem_mb",
    "finetune.model.pretrained",
}
RECIPE_BUDGET = {"epochs", "steps_per_epoch", "batch_size", "eval_batch_size", "warmup_steps",
                 "total_steps", "milestones", "num_workers", "fail_below"}


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def test_paper_smoke_is_config_yaml_apart_from_budgets_data_and_weights():
    schema = REPO / "config.schema.yaml"
    paper = flat(load_config(yaml.safe_load((REPO / "config.yaml").read_text()), schema))
    # keys named after a dataset (augment_by_dataset) name its stand-in in the smoke config
    smoke = {k.replace("synthetic:", ""): v for k, v in
             flat(load_config(yaml.safe_load(SMOKE.read_text()), schema)).items()}
    assert set(paper) <= set(smoke)  # recipe keys the paper leaves to their defaults:
    assert {k.rsplit(".", 1)[-1] for k in set(smoke) - set(paper)} <= RECIPE_BUDGET
    differ = {k for k in smoke if paper.get(k) != smoke[k]}
    budget = {k for k in differ if k.rsplit(".", 1)[-1] in RECIPE_BUDGET
              and (".fitness." in k or ".train." in k)}
    assert differ - budget <= SMOKE_MAY_DIFFER, differ - budget - SMOKE_MAY_DIFFER
    # the real models, at their real sizes, on the real datasets' stand-ins
    assert smoke["transfer.model.name"] == "wrn" and smoke["transfer.model.width"] == 10
    assert smoke["finetune.model.name"] == "efficientnetv2_s"
    assert smoke["search.image_size"] == 80
    assert [d.split(":", 1)[1] for d in smoke["transfer.datasets"]] == paper["transfer.datasets"]
    assert [d.split(":", 1)[1] for d in smoke["finetune.datasets"]] == paper["finetune.datasets"]
    assert smoke["search.dataset"] == f"synthetic:{paper['search.dataset']}"


def test_the_gpu_overlay_only_asks_for_gpus():
    overlay = yaml.safe_load((REPO / "tests" / "configs" / "paper-smoke-gpu.yaml").read_text())
    paper = yaml.safe_load((REPO / "config.yaml").read_text())
    for stage, values in overlay.items():
        assert values == {"gpu": paper[stage]["gpu"], "threads": paper[stage]["threads"]}
