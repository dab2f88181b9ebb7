"""#25: every training recipe key resolves to its own stage's value.

Each recipe (the search's prescreen, pre-filter and main run, transfer, fine-tuning) has its own
per-key defaults in config.schema.yaml, equal to config.yaml's values; the demo's pretraining
recipe states every key that changes what is learnt. No key may fall back to the training
dataclass's WRN defaults or to another stage's value.
"""

import copy
from dataclasses import fields

import pytest

from augloss.config import TrainConfig
from augloss.experiment import Experiment
from augloss.schema import ConfigError, load_config
from augloss.workflow import fitness
from tests.helpers import REPO, load

PAPER = load(REPO / "config.yaml")
PHASES = ("main", "prescreen", "prefilter")
STAGES = ("transfer", "finetune")


def resolved(cfg: dict) -> dict:
    """Every recipe a job of ``cfg`` trains with, complete (TrainConfig.to_dict())."""
    exp = Experiment.from_config(copy.deepcopy(cfg))
    aug = exp.augmentations[0]
    fit = fitness(exp.fitness(aug), "cpu")
    out = {f"search.fitness.{p}": fit.recipe(p).to_dict() for p in PHASES}
    for stage in STAGES:
        job = exp.train_job(stage, next(iter(exp.datasets(stage))), aug, "ce", 0)
        out[f"{stage}.train"] = TrainConfig.from_dict(job["train"]).to_dict()
        out[f"{stage}.job_keys"] = sorted(job["train"])
    return out


def recipe_keys(cfg: dict) -> list[tuple[str, ...]]:
    """(section path..., key) of every recipe key config.yaml states."""
    out = []
    for phase in PHASES:
        out += [("search", "fitness", phase, k) for k in cfg["search"]["fitness"][phase]]
    for stage in STAGES:
        out += [(stage, "train", k) for k in cfg[stage]["train"]]
    return out


KEYS = recipe_keys(PAPER)
BASE = resolved(PAPER)


def test_the_stage_defaults_are_what_config_yaml_always_resolved_to():
    """Computed independently of the schema's defaults: each recipe as config.yaml states it,
    read by the training dataclass as before per-stage defaults existed. The schema's per-key
    defaults must reproduce it exactly (no stage's science changed)."""
    for phase in PHASES:
        raw = {**PAPER["search"]["fitness"][phase], "evaluate_test": False}
        assert BASE[f"search.fitness.{phase}"] == TrainConfig.from_dict(raw).to_dict(), phase
    for stage in STAGES:
        assert BASE[f"{stage}.train"] == TrainConfig.from_dict(PAPER[stage]["train"]).to_dict()


def test_the_omission_test_covers_every_recipe_key_of_the_paper_config():
    assert len(KEYS) == sum(len(PAPER["search"]["fitness"][p]) for p in PHASES) + \
        sum(len(PAPER[s]["train"]) for s in STAGES)
    assert len(KEYS) >= 5 * 13  # 3 search recipes and 2 stage recipes, 13 keys or more each
    every = {f.name for f in fields(TrainConfig)}
    for stage in STAGES:  # each job carries its whole recipe: nothing left to code defaults
        assert set(BASE[f"{stage}.job_keys"]) == every


@pytest.mark.parametrize("path", KEYS, ids=[".".join(k) for k in KEYS])
def test_a_recipe_key_left_out_takes_its_own_stages_value(path):
    cfg = copy.deepcopy(PAPER)
    node = cfg
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    assert resolved(cfg) == BASE, ".".join(path)


@pytest.mark.parametrize("phase", ["prescreen", "prefilter"])
def test_a_screen_left_out_entirely_is_the_earlier_codes_screen(phase):
    cfg = copy.deepcopy(PAPER)
    del cfg["search"]["fitness"][phase]
    assert resolved(cfg) == BASE
    cfg["search"]["fitness"][phase] = None  # null is the explicit "no screen"
    assert load_config(cfg)["search"]["fitness"][phase] is None


def test_the_stage_defaults_differ_where_the_stages_differ():
    """The per-stage defaults are not one shared set: the pre-filter's lr is Adam's 1e-3 (not
    the WRN 0.1), the search's main run is float32, fine-tuning has no weight decay."""
    minimal = copy.deepcopy(PAPER)
    for phase in PHASES:
        minimal["search"]["fitness"][phase] = {}
    for stage in STAGES:
        minimal[stage]["train"] = {}
    got = resolved(minimal)
    assert got == BASE
    assert got["search.fitness.prefilter"]["lr"] == 0.001
    assert got["search.fitness.main"]["amp"] is False
    assert got["finetune.train"]["weight_decay"] == 0.0
    assert got["transfer.train"]["lr"] == 0.1


@pytest.mark.parametrize("key", ["lr", "optimizer", "amp", "epochs"])
def test_the_pretraining_recipe_states_what_changes_learning(key):
    cfg = load(REPO / "demo" / "config.yaml")
    del cfg["finetune"]["pretrain"]["train"][key]
    with pytest.raises(ConfigError, match=rf"finetune\.pretrain\.train\.{key}: required"):
        load_config(cfg)
