"""Every key of both configs: removed, the schema's default (or the library's) takes its place; a
required key removed fails with one line naming it. Checked through the loader the Snakefile
calls, then by real dry runs."""

import copy

import pytest
import yaml

from augloss import runtime, schema
from augloss.experiment import Experiment
from augloss.schema import ConfigError, load_config
from tests.helpers import REPO, load, smk

SCHEMA_FILE = REPO / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())
CONFIGS = ["config.yaml", "demo/config.yaml"]


def node(path: tuple) -> dict:
    """The schema node of a key path (refs followed; an object branch of a oneOf)."""
    here = schema.resolve(SCHEMA, SCHEMA)
    for key in path:
        if "properties" not in here:
            objects = [schema.resolve(b, SCHEMA) for b in here.get("oneOf", [])]
            here = next((b for b in objects if "properties" in b), {})
        if key in here.get("properties", {}):
            here = schema.resolve(here["properties"][key], SCHEMA)
        elif isinstance(here.get("additionalProperties"), dict):
            here = schema.resolve(here["additionalProperties"], SCHEMA)
        else:
            here = {}
    return here


def required(path: tuple) -> bool:
    parent = node(path[:-1])
    if "properties" not in parent:
        objects = [schema.resolve(b, SCHEMA) for b in parent.get("oneOf", [])]
        parent = next((b for b in objects if "properties" in b), {})
    return path[-1] in parent.get("required", [])


def key_paths(obj, prefix=()):
    """Every mapping key, depth first (list items are values, not keys)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from key_paths(v, (*prefix, k))


def without(cfg: dict, path: tuple) -> dict:
    out = copy.deepcopy(cfg)
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    del parent[path[-1]]
    return out


def everything_a_rule_reads(cfg: dict) -> None:
    """Build every job's parameters and read every key the rules read at parse time."""
    exp = Experiment.from_config(cfg)
    for aug in exp.augmentations:
        exp.search_job(aug)
        exp.search_job(aug, "random")
    exp.correlation_job()
    for stage in ("transfer", "finetune"):
        for d in exp.datasets(stage):
            for loss in exp.losses(stage):
                exp.train_job(stage, d, exp.augmentations[0], loss, 0)
        exp.resources(stage)
        c = cfg[stage]
        runtime.job_threads(c["threads"], 8, 4, c["gpu"])
        assert c["retries"] >= 0 and c["runtime"] > 0
    if exp.pretrain is not None:
        exp.pretrain_job()
    runtime.job_threads(cfg["search"]["threads"], 8, 4, cfg["search"]["gpu"])
    cfg["tables"]["metric"], cfg["tables"]["allow_mixed"], cfg["data_root"]
    cfg["finetune"]["from_transfer"], cfg["finetune"]["selection_metric"]


def cases():
    for name in CONFIGS:
        for path in key_paths(load(REPO / name)):
            yield pytest.param(name, path, id=f"{name}:{'.'.join(map(str, path))}")


@pytest.mark.parametrize("name, path", list(cases()))
def test_every_key_removed(name, path):
    cfg = without(load(REPO / name), path)
    dotted = ".".join(map(str, path))
    if required(path):
        with pytest.raises(ConfigError, match="required key missing") as err:
            load_config(cfg, SCHEMA_FILE)
        assert f"config: {dotted}:" in str(err.value)
        return
    filled = load_config(cfg, SCHEMA_FILE)
    try:
        everything_a_rule_reads(filled)
    except ConfigError as exc:  # the default contradicts another key of this config
        assert str(path[-1]) in str(exc)
        return
    default = node(path).get("default", "no default")
    partial = any(node(path[:i]).get("x-partial") for i in range(1, len(path)))
    if default != "no default" and not partial:
        value = filled
        for k in path:
            value = value[k]
        assert value == schema.fill_defaults(copy.deepcopy(default), node(path), SCHEMA)


def test_loader_names_a_wrong_value_in_one_line():
    cfg = load(REPO / "config.yaml")
    cfg["transfer"]["threads"] = "many"
    with pytest.raises(ConfigError, match=r"^config: transfer\.threads: ") as err:
        load_config(cfg, SCHEMA_FILE)
    assert "\n" not in str(err.value)


def test_override_mappings_are_not_filled():
    """A stage's augment (and augment_by_dataset) overrides augment: an absent key there
    inherits, never a default."""
    cfg = load(REPO / "config.yaml")
    cfg["augment"]["cutout_size"] = 12
    cfg["augment"]["pad_mode"] = "constant"
    cfg["search"]["augment"] = {"pad_mode": "reflect"}
    filled = load_config(cfg, SCHEMA_FILE)
    assert filled["finetune"]["augment"] == cfg["finetune"]["augment"]
    assert filled["search"]["augment"] == cfg["search"]["augment"]
    assert filled["transfer"]["augment_by_dataset"] == cfg["transfer"]["augment_by_dataset"]
    exp = Experiment(filled)
    assert exp.augment("finetune")["cutout_size"] == 12
    assert exp.search_augment()["pad_mode"] == "reflect"
    assert exp.augment("transfer", "cifar10")["cutout_size"] == 12
    # the dataset's own entry wins over the stage's and the shared value
    assert exp.augment("transfer", "cifar100")["cutout_size"] == 8
    assert cfg["transfer"]["augment"]["pad_mode"] == "reflect"
    assert exp.augment("transfer", "cifar100")["pad_mode"] == "reflect"  # transfer.augment
    assert exp.augment("finetune", "flowers102")["pad_mode"] == "constant"  # the shared value


def prune(cfg: dict, path=()) -> dict:
    """Every key the schema does not require, removed at once."""
    return {k: prune(v, (*path, k)) if isinstance(v, dict) else v
            for k, v in cfg.items() if required((*path, k))}


@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run_with_every_optional_key_removed(tmp_path, name):
    cfg = prune(load(REPO / name))
    assert "retries" not in cfg["transfer"] and "threads" not in cfg["finetune"]
    (tmp_path / "min.yaml").write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, "-n", "--cores", "8", "--resources", "gpu=4", "--configfile",
               str(tmp_path / "min.yaml"))
    assert "rule finetune:" in proc.stdout and "threads: 2" in proc.stdout


def test_dry_run_names_a_missing_required_key(tmp_path):
    cfg = without(load(REPO / "demo" / "config.yaml"), ("transfer", "train"))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "bad.yaml"),
               check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config: transfer.train: required key missing" in out
    assert "Traceback" not in out and "KeyError" not in out


@pytest.mark.parametrize("path", [("search",), ("search", "fitness")])
def test_library_defaults_never_contradict_the_schema(path):
    """A key the schema gives a default has that default in FitnessConfig too (which library
    callers and benchmarks use): one value, stated twice at most, never two values. Except
    ``device``: the workflow's ``auto`` is the job's own device, which a library call has not;
    and the recipes (``x-merge-default``): the workflow's are the earlier code's, key by key
    (tests/test_recipes.py), while a library caller states its own (the screens are off unless
    given)."""
    import dataclasses

    from augloss.config import FitnessConfig

    props = node(path).get("properties", {})
    both = [(f.name, f.default, schema.resolve(props[f.name], SCHEMA)["default"])
            for f in dataclasses.fields(FitnessConfig)
            if f.name in props and "default" in schema.resolve(props[f.name], SCHEMA)
            and f.default is not dataclasses.MISSING and f.name != "device"
            and not props[f.name].get("x-merge-default")]
    assert both, f"FitnessConfig shares no defaulted key with {'.'.join(path)}"
    assert [(k, a, b) for k, a, b in both if a != b] == []


def test_the_search_algorithm_has_one_home_for_its_defaults():
    """search.algorithm's defaults live in SearchConfig only: the schema states none of them."""
    props = node(("search", "algorithm"))["properties"]
    assert props and not [k for k, v in props.items() if "default" in schema.resolve(v, SCHEMA)]
