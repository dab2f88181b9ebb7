"""Checks of a filled config that the schema cannot state, run at the dry run. Torch-free.

:func:`check_config` takes the config :func:`augloss.schema.load_config` returns (every default
filled) and raises :class:`augloss.schema.ConfigError` naming the dotted key of the first bad
value, so a config that would fail on a GPU node days later fails on the head node instead:

* model options (:func:`check_models`): every option of ``search.model``, ``<stage>.model`` and
  an override's ``fitness.model`` against the rules of its :class:`augloss.registry.ModelSpec`
  (the builder's real keywords: types, ranges, unknown names);
* ``search.overrides`` (:func:`check_overrides`): each override merged over ``search.algorithm``
  or ``search.fitness`` as the search job merges it, validated against the same schema node;
* class weights (:func:`check_class_weights`): a baseline's ``class_weights`` as long as every
  dataset it trains on has classes;
* dataset slugs (:func:`check_slugs`): two dataset names with one :func:`augloss.names.slug`
  would share their folders and wildcard values, and one would be dropped;
* the job count (:func:`check_run_count`): at most :data:`MAX_RUNS` training runs.

Seeds are not checked here: the schema's ``seeds`` (``uniqueItems``) refuses duplicates.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

from augloss import names, registry
from augloss.schema import SCHEMA_FILE, ConfigError, deep_merge

#: The most training runs (all stages together) a config may imply, unless its top-level
#: ``max_runs`` says otherwise. Snakemake builds one job per run (or per cell with
#: ``seeds_in_one_job``) and its dry run slows down with the DAG: the paper's config implies
#: 405 runs and dry-runs in seconds; beyond 20,000 jobs a dry run takes minutes and the
#: scheduler's bookkeeping dominates. A config that really needs more sets ``max_runs: <n>``.
MAX_RUNS = 20000

#: The model entries of a config (an override's ``fitness.model`` is checked with its override).
MODEL_KEYS = ("search.model", *(f"{s}.model" for s in names.STAGES))

#: The stage whose baselines the correlation study also scores on ``search.dataset``
#: (``Experiment.correlation_job``: the stage the searches feed, the first).
CORRELATED_STAGE = names.STAGES[0]

#: Keys a search job sets after merging ``search.overrides.<aug>.fitness``
#: (``Experiment.fitness``): an override of them would be ignored, so it is refused.
_FITNESS_FIXED = ("dataset", "data_root", "device")


def check_config(config: dict) -> None:
    """Every check of this module, on ``config`` after :func:`augloss.schema.load_config`;
    raises :class:`ConfigError` naming the dotted key of the first bad value."""
    check_run_count(config)
    check_slugs(config)
    check_models(config)
    check_overrides(config)
    check_class_weights(config)


# --- model options -------------------------------------------------------------------------

def check_model(key: str, model: dict) -> None:
    """Check one model entry (``{name, **options}``) against its spec's option rules;
    ``key`` is the entry's dotted config path (``transfer.model``)."""
    try:
        spec, _ = registry.model(model["name"])
    except ValueError as exc:
        raise ConfigError(f"{key}.name", str(exc)) from None
    for option, value in model.items():
        if option == "name":
            continue
        rule = spec.options.get(option)
        if option == "num_classes":
            raise ConfigError(f"{key}.{option}", "set by the dataset's classes, not the config")
        if rule is None:
            if spec.open_options:
                continue  # timm.create_model's own keywords
            raise ConfigError(f"{key}.{option}",
                              f"unknown option of model {model['name']!r}; its options are "
                              f"{', '.join(spec.options)}")
        if not rule.accepts(value):
            raise ConfigError(f"{key}.{option}",
                              f"{value!r} is not allowed: {model['name']} {option} must be "
                              f"{rule.description}")


def check_models(config: dict) -> None:
    """Check every model entry of the config (:data:`MODEL_KEYS`)."""
    for key in MODEL_KEYS:
        section, _ = key.split(".")
        check_model(key, config[section]["model"])


# --- search.overrides ----------------------------------------------------------------------

@lru_cache(maxsize=4)
def _schema(path: str) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


def _override_nodes(schema: dict) -> dict[str, dict]:
    """The schema nodes an override's ``algorithm`` and ``fitness`` are merged against: the
    search's own, the fitness one widened by the settings ``Experiment.fitness`` merges it over
    (model, augment, image_size, normalize)."""
    search = schema["properties"]["search"]["properties"]
    fitness = copy.deepcopy(search["fitness"])
    fitness["properties"].update({
        "model": search["model"], "augment": schema["properties"]["augment"],
        "image_size": search["image_size"], "normalize": search["normalize"],
        **{k: {} for k in _FITNESS_FIXED}})
    return {"algorithm": search["algorithm"], "fitness": fitness}


def _key(prefix: str, path) -> str:
    out = prefix
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_overrides(config: dict, schema_file: str | Path = SCHEMA_FILE) -> None:
    """Validate every ``search.overrides.<aug>.algorithm`` / ``.fitness`` merged over the search's
    own values, against the schema node of the key it overrides, so a wrong type names
    ``search.overrides.cutout.algorithm.children``. An override of an augmentation the config
    does not search would be ignored: refused."""
    import jsonschema

    schema = _schema(str(schema_file))
    nodes = _override_nodes(schema)
    s = config["search"]
    base = {"algorithm": s["algorithm"],
            "fitness": {**s["fitness"], "model": s["model"], "augment": config["augment"],
                        "image_size": s["image_size"], "normalize": s["normalize"]}}
    for aug, over in s["overrides"].items():
        prefix = f"search.overrides.{aug}"
        if aug not in config["augmentations"]:
            raise ConfigError(prefix, f"{aug!r} is not one of augmentations "
                                      f"({', '.join(config['augmentations'])}): it would be "
                                      "ignored")
        for key in _FITNESS_FIXED:
            if key in over.get("fitness", {}):
                raise ConfigError(f"{prefix}.fitness.{key}",
                                  f"a search's {key} is the search's own (search.{key}, "
                                  "data_root): an override of it would be ignored; the "
                                  "searches compared across augmentations share one")
        for part, node in nodes.items():
            if part not in over:
                continue
            merged = deep_merge(base[part], over[part])
            validator = jsonschema.Draft202012Validator({"$defs": schema["$defs"], **node})
            err = jsonschema.exceptions.best_match(validator.iter_errors(merged))
            if err is not None:
                message = err.message if len(err.message) <= 300 else err.message[:300] + "..."
                if err.validator == "additionalProperties":
                    message += "; config.schema.yaml lists the allowed keys"
                raise ConfigError(_key(f"{prefix}.{part}", err.absolute_path), message)
            if "model" in over[part]:
                check_model(f"{prefix}.{part}.model", merged["model"])


# --- class weights -------------------------------------------------------------------------

def dataset_classes(name: str) -> int | None:
    """The number of classes of config dataset ``name``, None where only its files say
    (``imagefolder:<path>``) or the name is not a dataset's (the dataset check reports it).
    ``digits:<lo>-<hi>`` has ``hi - lo + 1``; ``synthetic:<d>`` has ``d``'s."""
    try:
        spec = registry.dataset(name)
    except ValueError:
        return None
    base, _, argument = name.removeprefix(f"{registry.SYNTHETIC}:").partition(":")
    if base == "digits" and argument:
        try:
            lo, hi = (int(x) for x in argument.split("-"))
        except ValueError:
            return None
        return hi - lo + 1 if 0 <= lo <= hi <= 9 else None
    return spec.classes


def check_class_weights(config: dict) -> None:
    """Every baseline's ``class_weights`` has one weight per class of every dataset its stage
    trains on (and, for :data:`CORRELATED_STAGE`, of ``search.dataset``, where the correlation
    study scores it). Datasets whose class count only their files know (``imagefolder:``) are
    skipped: the loss then fails at its first batch, naming both numbers."""
    for stage in names.STAGES:
        c = config[stage]
        datasets = [(f"{stage}.datasets[{i}]", d) for i, d in enumerate(c["datasets"])]
        if stage == CORRELATED_STAGE:
            datasets.append(("search.dataset", config["search"]["dataset"]))
        for i, b in enumerate(c["baselines"]):
            weights = b.get("class_weights")
            if weights is None:
                continue
            for where, d in datasets:
                classes = dataset_classes(d)
                if classes is not None and classes != len(weights):
                    raise ConfigError(f"{stage}.baselines[{i}].class_weights",
                                      f"{len(weights)} class weights, but dataset {d!r} "
                                      f"({where}) has {classes} classes")


# --- dataset slugs -------------------------------------------------------------------------

def dataset_keys(config: dict) -> list[tuple[str, str]]:
    """Every ``(dotted key, dataset name)`` of the config: ``search.dataset``,
    ``<stage>.datasets[i]`` and ``<stage>.pretrain.dataset``."""
    out = [("search.dataset", config["search"]["dataset"])]
    for stage in names.STAGES:
        out += [(f"{stage}.datasets[{i}]", d) for i, d in enumerate(config[stage]["datasets"])]
        pretrain = config[stage].get("pretrain")
        if pretrain is not None:
            out.append((f"{stage}.pretrain.dataset", pretrain["dataset"]))
    return out


def check_slugs(config: dict) -> None:
    """No two different dataset names share a :func:`augloss.names.slug` (their data, manifest
    and results folders, and the wildcard value that picks one, would be one)."""
    seen: dict[str, tuple[str, str]] = {}
    for key, name in dataset_keys(config):
        slug = names.slug(name)
        other = seen.setdefault(slug, (key, name))
        if other[1] != name:
            raise ConfigError(key, f"datasets {name!r} and {other[1]!r} ({other[0]}) have one "
                                   f"slug {slug!r}, so they would share their folders and one "
                                   "would be dropped; rename one of them")


# --- job count -----------------------------------------------------------------------------

def _evolved(config: dict, stage: str) -> tuple[str, int]:
    """The key saying how many evolved losses ``stage`` trains, and how many."""
    c = config[stage]
    if "evolved_per_augmentation" in c:
        return (f"{stage}.evolved_per_augmentation",
                len(config["augmentations"]) * int(c["evolved_per_augmentation"]))
    return f"{stage}.from_transfer", int(c["from_transfer"])


def run_factors(config: dict) -> dict[str, list[tuple[str, str, int]]]:
    """Per stage, the factors of its training runs as ``(key that sets it, what it counts,
    count)``: datasets, augmentations, losses (1 for ce, the baselines, the evolved ones; keyed
    by the larger of the baselines and the evolved count) and seeds."""
    out = {}
    for stage in names.STAGES:
        c = config[stage]
        evolved_key, evolved = _evolved(config, stage)
        losses_key = evolved_key if evolved >= len(c["baselines"]) else f"{stage}.baselines"
        out[stage] = [(f"{stage}.datasets", "datasets", len(c["datasets"])),
                      ("augmentations", "augmentations", len(config["augmentations"])),
                      (losses_key, "losses", 1 + len(c["baselines"]) + evolved),
                      (f"{stage}.seeds", "seeds", len(c["seeds"]))]
    return out


def _product(factors: list[tuple[str, str, int]]) -> int:
    n = 1
    for _, _, v in factors:
        n *= v
    return n


def count_runs(config: dict) -> int:
    """The training runs ``config`` implies, over every stage."""
    return sum(_product(f) for f in run_factors(config).values())


def check_run_count(config: dict) -> None:
    """At most ``max_runs`` (the config's top-level key, default :data:`MAX_RUNS`) training
    runs; beyond, the key of the largest factor of the largest stage is named."""
    limit = config.get("max_runs", MAX_RUNS)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigError("max_runs", f"must be a positive integer, got {limit!r}")
    total = count_runs(config)
    if total <= limit:
        return
    by_stage = run_factors(config)
    stage = max(by_stage, key=lambda s: _product(by_stage[s]))
    factors = by_stage[stage]
    key = max(factors, key=lambda f: f[2])[0]
    shown = " x ".join(f"{v} {what}" for _, what, v in factors)
    raise ConfigError(key, f"the config implies {total:,} training runs ({stage}: {shown} = "
                           f"{_product(factors):,}), more than max_runs ({limit:,}), beyond "
                           f"which a dry run stops being fast; reduce {key} or raise max_runs")
