"""augloss.checks: bad input fails at the dry run naming its key (issue 25, point 7): model
options, class weights against the datasets' classes, types under search.overrides, dataset slug
collisions and the job-count limit; the repository's configs pass."""

from __future__ import annotations

import copy
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from augloss import checks, registry
from augloss.schema import SCHEMA_FILE, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "config.yaml", ROOT / "demo" / "config.yaml",
           *sorted((ROOT / "tests" / "configs").glob("*.yaml"))]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _is_overlay(raw: dict) -> bool:
    """A partial overlay (paper-smoke-gpu.yaml) lacks keys every full config has."""
    return bool(set(yaml.safe_load(SCHEMA_FILE.read_text())["required"]) - set(raw))


@pytest.fixture(scope="module")
def _paper() -> dict:
    return load_config(_load(ROOT / "config.yaml"))


@pytest.fixture
def paper(_paper) -> dict:
    return copy.deepcopy(_paper)


@pytest.fixture(scope="module")
def _demo() -> dict:
    return load_config(_load(ROOT / "demo" / "config.yaml"))


@pytest.fixture
def demo(_demo) -> dict:
    return copy.deepcopy(_demo)


def _fails(config: dict, key: str, *words: str) -> str:
    """check_config raises a ConfigError naming ``key`` (and ``words``); its message."""
    with pytest.raises(ConfigError) as info:
        checks.check_config(config)
    message = str(info.value)
    assert message.startswith(f"config: {key}: "), message
    for w in words:
        assert w in message, (w, message)
    return message


# --- the repository's configs pass ------------------------------------------------------------

@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_repositorys_configs_pass(path):
    raw = _load(path)
    if _is_overlay(raw):
        pytest.skip(f"{path.name} is a partial overlay")
    checks.check_config(load_config(raw))


def test_the_full_configs_are_found_and_the_overlay_is_skipped():
    full = [p.name for p in CONFIGS if not _is_overlay(_load(p))]
    assert len(full) >= 3 and "paper-smoke.yaml" in full
    assert _is_overlay(_load(ROOT / "tests" / "configs" / "paper-smoke-gpu.yaml"))


def test_the_checks_are_torch_free():
    code = "import sys, augloss.checks; assert 'torch' not in sys.modules, 'torch imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


# --- model options -----------------------------------------------------------------------------

@pytest.mark.parametrize("section, option, value, words", [
    ("transfer", "depth", "x", ["'x'", "6n + 4"]),
    ("transfer", "depth", 27, ["27", "6n + 4"]),
    ("transfer", "depth", 28.0, ["28.0"]),
    ("transfer", "depth", 4, ["at least 10"]),
    ("transfer", "width", 0, ["positive"]),
    ("transfer", "width", True, ["True"]),
    ("transfer", "dropout", 1.0, ["[0, 1)"]),
    ("transfer", "dropout", "0.3", ["'0.3'"]),
    ("transfer", "bn_momentum", 1.5, ["[0, 1]"]),
    ("search", "widths", [8, 16], ["three positive integers"]),
    ("search", "widths", [8, 16, 0], ["three positive integers"]),
    ("search", "dropout", -0.1, ["[0, 1)"]),
    ("finetune", "drop_rate", "high", ["'high'"]),
    ("finetune", "pretrained", "yes", ["synthetic"]),
    ("finetune", "tag", "", ["tag"]),
])
def test_a_bad_model_option_names_its_key(paper, section, option, value, words):
    paper[section]["model"][option] = value
    _fails(paper, f"{section}.model.{option}", *words)


def test_an_unknown_option_of_a_built_in_model_lists_the_allowed_ones(paper):
    paper["transfer"]["model"]["depht"] = 28
    _fails(paper, "transfer.model.depht", "unknown option", "depth, width, dropout, bn_momentum")
    paper = copy.deepcopy(paper)
    del paper["transfer"]["model"]["depht"]
    paper["search"]["model"]["pretrained"] = True  # timm's option, not the surrogate's
    _fails(paper, "search.model.pretrained", "widths, dropout, bn_momentum")


def test_timm_models_pass_other_options_through_but_never_num_classes(paper):
    paper["finetune"]["model"]["drop_path_rate"] = 0.2  # timm.create_model's own keyword
    checks.check_config(paper)
    paper["finetune"]["model"]["num_classes"] = 10
    _fails(paper, "finetune.model.num_classes", "dataset's classes")


def test_good_model_options_pass(paper):
    paper["transfer"]["model"].update(depth=16, width=1, dropout=0, bn_momentum=0.5)
    paper["search"]["model"].update(widths=[4, 8, 16], dropout=0.0)
    paper["finetune"]["model"].update(pretrained="synthetic", weights="w.safetensors",
                                      drop_rate=0.3)
    checks.check_config(paper)


def _builder_options(spec: registry.ModelSpec) -> tuple[dict, bool]:
    """The keyword options of a model's builder (name and num_classes are the runner's) and
    whether it takes others (**options)."""
    from augloss import models

    params = inspect.signature(models.BUILDERS[spec.name]).parameters.values()
    named = {p.name: p.default for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
             and p.name not in ("self", "name", "num_classes")}
    return named, any(p.kind == p.VAR_KEYWORD for p in params)


@pytest.mark.parametrize("spec", list(registry.MODELS.values()), ids=lambda s: s.name)
def test_every_builder_option_has_a_rule_and_every_rule_an_option(spec):
    named, open_options = _builder_options(spec)
    assert set(spec.options) == set(named)
    assert spec.open_options == open_options
    for option, default in named.items():  # the builder's own defaults pass their rules
        assert spec.options[option].accepts(default), (spec.name, option, default)


# --- class weights -----------------------------------------------------------------------------

def _weighted(n: int) -> dict:
    return {"name": "wce", "loss": "weighted_ce", "label_smoothing": 0.0,
            "class_weights": [1.0] * n}


def test_class_weights_must_match_every_datasets_classes(paper):
    paper["transfer"]["baselines"].append(_weighted(2))
    _fails(paper, "transfer.baselines[3].class_weights", "2 class weights", "'cifar10'", "10")
    paper["transfer"]["baselines"][3] = _weighted(10)  # cifar10's, not cifar100's
    _fails(paper, "transfer.baselines[3].class_weights", "'cifar100'", "100 classes",
           "transfer.datasets[1]")


def test_transfer_class_weights_must_match_the_search_dataset_too(paper):
    """The correlation study scores the transfer baselines on search.dataset."""
    paper["transfer"]["datasets"] = ["cifar100"]
    paper["transfer"]["baselines"].append(_weighted(100))
    _fails(paper, "transfer.baselines[3].class_weights", "'cifar10'", "search.dataset")
    paper["search"]["dataset"] = "synthetic:cifar100"
    checks.check_config(paper)


def test_class_weights_count_a_digits_range_and_skip_imagefolder(demo):
    demo["finetune"]["baselines"] = [_weighted(10)]
    _fails(demo, "finetune.baselines[0].class_weights", "'digits:5-9'", "5 classes")
    demo["finetune"]["baselines"] = [_weighted(5)]
    checks.check_config(demo)
    demo["finetune"]["datasets"] = ["imagefolder:/data/pets"]  # its files know its classes
    demo["finetune"]["baselines"] = [_weighted(37)]
    checks.check_config(demo)


def test_dataset_classes():
    assert checks.dataset_classes("cifar100") == 100
    assert checks.dataset_classes("synthetic:stanford_cars") == 196
    assert checks.dataset_classes("digits") == 10
    assert checks.dataset_classes("digits:0-4") == 5
    assert checks.dataset_classes("imagefolder:/x") is None
    assert checks.dataset_classes("mnist") is None  # the dataset check names it


# --- search.overrides --------------------------------------------------------------------------

@pytest.mark.parametrize("override, key, words", [
    ({"algorithm": {"children": "many"}}, "algorithm.children", ["'many'", "integer"]),
    ({"algorithm": {"children": -1}}, "algorithm.children", ["-1"]),
    ({"algorithm": {"childs": 3}}, "algorithm", ["'childs'"]),
    ({"algorithm": {"evaluation_seeds": "some"}}, "algorithm.evaluation_seeds", ["'some'"]),
    ({"fitness": {"main": {"lr": "fast"}}}, "fitness.main.lr", ["'fast'"]),
    ({"fitness": {"main": {"abort": [[7, "x"]]}}}, "fitness.main.abort[0][1]", ["'x'"]),
    ({"fitness": {"prescreen": {"batch_size": "big"}}}, "fitness.prescreen.batch_size",
     ["'big'"]),
    ({"fitness": {"metric": "mean"}}, "fitness.metric", ["'mean'"]),
    ({"fitness": {"image_size": "80"}}, "fitness.image_size", ["'80'"]),
    ({"fitness": {"augment": {"cutout_size": -1}}}, "fitness.augment.cutout_size", ["-1"]),
    ({"fitness": {"model": {"dropout": 2}}}, "fitness.model.dropout", ["[0, 1)"]),
    ({"fitness": {"model": {"name": "wrn", "depth": 27}}}, "fitness.model.depth", ["6n + 4"]),
])
def test_a_bad_override_names_its_key(paper, override, key, words):
    paper["search"]["overrides"] = {"cutout": override}
    _fails(paper, f"search.overrides.cutout.{key}", *words)


def test_good_overrides_pass(paper):
    paper["search"]["overrides"] = {
        "cutout": {"algorithm": {"children": 2000}, "fitness": {"prescreen": None}},
        "mixup": {"fitness": {"main": {"lr": 0.002}, "model": {"dropout": 0.2},
                              "threshold_scale": 0.5}}}
    checks.check_config(paper)
    # a search's own dataset, data root and device cannot be overridden: refused, not ignored
    paper["search"]["overrides"] = {"all": {"fitness": {"data_root": "/x"}}}
    with pytest.raises(ConfigError, match=r"search\.overrides\.all\.fitness\.data_root"):
        checks.check_config(paper)


def test_an_override_of_an_augmentation_not_searched_is_refused(paper):
    paper["augmentations"] = ["base", "mixup"]
    paper["search"]["overrides"] = {"cutout": {"algorithm": {"children": 3}}}
    _fails(paper, "search.overrides.cutout", "base, mixup", "ignored")


# --- dataset slugs ---------------------------------------------------------------------------

def test_two_datasets_with_one_slug_are_named_both(paper):
    paper["transfer"]["datasets"] = ["imagefolder:/x/a", "cifar100"]
    paper["finetune"]["datasets"] = ["stanford_cars", "imagefolder:/x_a"]
    _fails(paper, "finetune.datasets[1]", "'imagefolder:/x_a'", "'imagefolder:/x/a'",
           "transfer.datasets[0]", "'imagefolder_x_a'")


def test_the_pretrain_dataset_is_in_the_slug_check(demo):
    demo["finetune"]["datasets"] = ["imagefolder:/d/a b"]
    demo["finetune"]["pretrain"]["dataset"] = "imagefolder:/d/a_b"
    _fails(demo, "finetune.pretrain.dataset", "'imagefolder:/d/a b'", "finetune.datasets[0]")


def test_one_dataset_used_twice_is_no_collision(paper):
    paper["finetune"]["datasets"] = ["cifar10", "flowers102"]  # as search.dataset and transfer
    checks.check_config(paper)


# --- job count -------------------------------------------------------------------------------

def test_the_paper_configs_run_count():
    paper = load_config(_load(ROOT / "config.yaml"))
    assert checks.count_runs(paper) == 2 * 5 * (4 + 5) * 3 + 3 * 5 * (1 + 2) * 3 == 405
    assert checks.MAX_RUNS == 20000


def test_too_many_seeds_name_the_seeds_and_max_runs_raises_the_limit(paper):
    paper["transfer"]["seeds"] = list(range(100_000))
    _fails(paper, "transfer.seeds", "9,000,135 training runs", "max_runs (20,000)",
           "100000 seeds")
    paper["max_runs"] = 10_000_000
    checks.check_config(paper)


@pytest.mark.parametrize("change, key", [
    (lambda c: c["transfer"].update(evolved_per_augmentation=1000),
     "transfer.evolved_per_augmentation"),
    (lambda c: c["finetune"].update(datasets=[f"imagefolder:/d/{i}" for i in range(2000)]),
     "finetune.datasets"),
    (lambda c: c["finetune"]["baselines"].extend({"name": f"b{i}"} for i in range(2000)),
     "finetune.baselines"),
    (lambda c: c.update(max_runs=404), "transfer.evolved_per_augmentation"),
])
def test_the_largest_factor_is_named(paper, change, key):
    change(paper)
    _fails(paper, key, "training runs", "max_runs")


@pytest.mark.parametrize("value", [0, "many", True, 1.5])
def test_a_bad_max_runs_is_named(paper, value):
    paper["max_runs"] = value
    _fails(paper, "max_runs", "positive integer")


def test_the_schema_refuses_duplicate_seeds():
    """checks does not look at seeds: the schema's uniqueItems already refuses duplicates."""
    raw = _load(ROOT / "config.yaml")
    raw["transfer"]["seeds"] = [0, 1, 0]
    with pytest.raises(ConfigError, match=r"^config: transfer\.seeds: .*non-unique"):
        load_config(raw)
