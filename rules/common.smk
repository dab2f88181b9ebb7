import copy
import re

from snakemake.utils import validate

from augloss import data as _data
from augloss import losses as _losses
from augloss import search as _search
from augloss import train as _train
from augloss.workflow import slug, unwritable

validate(config, schema="../config.schema.yaml")


def _fail(key, message):
    raise ValueError(f"config: {key}: {message}")


def _deep_merge(base, override):
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = (
            _deep_merge(out[k], v)
            if isinstance(v, dict) and isinstance(out.get(k), dict)
            else copy.deepcopy(v)
        )
    return out


def canonical(obj):
    """Sorted-key copy: Snakemake compares params by their text, so key order must not count."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def _check_dataset(key, name):
    base = name.split(":", 1)[0]
    known = {
        "digits",
        "cifar10",
        "cifar100",
        "flowers102",
        "caltech101",
        "stanford_cars",
    }
    if base not in known and not name.startswith("imagefolder:"):
        _fail(
            key, f"unknown dataset {name!r}; datasets are {', '.join(_data.DATASETS)}"
        )


def _check_loss(key, entry):
    text = entry.get("expression")
    try:
        _losses.get(
            text if text is not None else entry.get("loss", entry["name"]),
            label_smoothing=entry.get("label_smoothing", 0.0),
            class_weights=entry.get("class_weights"),
        )
    except ValueError as exc:
        _fail(key, str(exc))


def _search_job(aug):
    s = config["search"]
    over = s.get("overrides", {}).get(aug, {})
    return {
        "augmentation": aug,
        "dataset": s["dataset"],
        "data_root": config["data_root"],
        "seed": s["seed"],
        "device": s["device"],
        "algorithm": _deep_merge(s["algorithm"], over.get("algorithm", {})),
        "fitness": _deep_merge(
            {**s["fitness"], "model": s["model"], "augment": config["augment"]},
            over.get("fitness", {}),
        ),
    }


def _check_config():
    for aug in AUGS:
        job = _search_job(aug)
        try:
            algo = _search.SearchConfig.from_dict(job["algorithm"])
            _search.FitnessConfig.from_dict(
                {**job["fitness"], "dataset": job["dataset"], "data_root": "."}
            )
        except (ValueError, TypeError) as exc:
            _fail(f"search (augmentation {aug})", str(exc))
        if config["transfer"]["evolved_per_augmentation"] > algo.top_k:
            _fail(
                "transfer.evolved_per_augmentation",
                f"{config['transfer']['evolved_per_augmentation']} is more than "
                f"search.algorithm.top_k ({algo.top_k})",
            )
        if config["correlation"]["top_n"] > algo.top_k:
            _fail(
                "correlation.top_n", f"more than search.algorithm.top_k ({algo.top_k})"
            )
    _check_dataset("search.dataset", config["search"]["dataset"])
    for stage in ("transfer", "finetune"):
        for i, name in enumerate(config[stage]["datasets"]):
            _check_dataset(f"{stage}.datasets[{i}]", name)
        try:
            _train.TrainConfig.from_dict(config[stage]["train"])
        except (ValueError, TypeError) as exc:
            _fail(f"{stage}.train", str(exc))
        names = [b["name"] for b in config[stage]["baselines"]]
        if len(set(names)) != len(names):
            _fail(f"{stage}.baselines", "baseline names must be unique")
        for i, b in enumerate(config[stage]["baselines"]):
            _check_loss(f"{stage}.baselines[{i}]", b)
    n_evolved = len(AUGS) * config["transfer"]["evolved_per_augmentation"]
    if config["finetune"]["from_transfer"] > n_evolved:
        _fail(
            "finetune.from_transfer",
            f"{config['finetune']['from_transfer']} is more than the {n_evolved} evolved "
            f"losses of the transfer stage",
        )
    if config["finetune"]["pretrain"] is not None:
        _check_dataset(
            "finetune.pretrain.dataset", config["finetune"]["pretrain"]["dataset"]
        )


EXP = config["experiment"]
R = f"results/{EXP}"
AUGS = list(config["augmentations"])
TRANSFER_BASELINES = {b["name"]: b for b in config["transfer"]["baselines"]}
FINETUNE_BASELINES = {b["name"]: b for b in config["finetune"]["baselines"]}
TRANSFER_LOSSES = (
    ["ce"]
    + list(TRANSFER_BASELINES)
    + [
        f"evolved-{a}-{k}"
        for a in AUGS
        for k in range(1, config["transfer"]["evolved_per_augmentation"] + 1)
    ]
)
FINETUNE_LOSSES = (
    ["ce"]
    + list(FINETUNE_BASELINES)
    + [f"transfer-best-{k}" for k in range(1, config["finetune"]["from_transfer"] + 1)]
)
TRANSFER_DATASETS = {slug(d): d for d in config["transfer"]["datasets"]}
FINETUNE_DATASETS = {slug(d): d for d in config["finetune"]["datasets"]}
PRETRAIN = config["finetune"]["pretrain"]
DATASETS = {slug(config["search"]["dataset"]): config["search"]["dataset"]}
DATASETS.update(TRANSFER_DATASETS)
DATASETS.update(FINETUNE_DATASETS)
if PRETRAIN is not None:
    DATASETS[slug(PRETRAIN["dataset"])] = PRETRAIN["dataset"]
_check_config()
if (_why := unwritable(R)) is not None:
    _fail("experiment", f"the results directory {R} cannot be written: {_why}")


wildcard_constraints:
    aug="|".join(AUGS),
    seed=r"\d+",
    loss=r"[a-z0-9_]+(-[a-z0-9_]+)*",
    dataset=r"[A-Za-z0-9._-]+",


# --- input functions and params ------------------------------------------------------------


def manifest(name):
    return f"{R}/data/{slug(name)}.json"


def search_job(wildcards):
    return canonical(_search_job(wildcards.aug))


def correlation_job(wildcards):
    s = config["search"]
    return canonical(
        {
            "top_n": config["correlation"]["top_n"],
            "augmentations": AUGS,
            "dataset": s["dataset"],
            "data_root": config["data_root"],
            "seed": s["seed"],
            "device": s["device"],
            "fitness": {
                **s["fitness"],
                "model": s["model"],
                "augment": config["augment"],
            },
        }
    )


def _train_job(stage, wildcards, names, baselines, augment):
    c = config[stage]
    return canonical(
        {
            "stage": stage,
            "dataset": names[wildcards.dataset],
            "augmentation": wildcards.aug,
            "loss": wildcards.loss,
            "baseline": baselines.get(wildcards.loss),
            "model": c["model"],
            "train": c["train"],
            "seed": int(wildcards.seed),
            "augment": augment,
            "data_root": config["data_root"],
        }
    )


def transfer_job(wildcards):
    return _train_job(
        "transfer", wildcards, TRANSFER_DATASETS, TRANSFER_BASELINES, config["augment"]
    )


def finetune_job(wildcards):
    augment = {**config["augment"], **config["finetune"]["augment"]}
    return _train_job(
        "finetune", wildcards, FINETUNE_DATASETS, FINETUNE_BASELINES, augment
    )


def transfer_inputs(wildcards):
    out = {"manifest": manifest(TRANSFER_DATASETS[wildcards.dataset])}
    m = re.match(r"^evolved-([a-z]+)-\d+$", wildcards.loss)
    if m:
        out["best"] = f"{R}/search/{m.group(1)}/best.json"
    return out


def finetune_inputs(wildcards):
    out = {"manifest": manifest(FINETUNE_DATASETS[wildcards.dataset])}
    if wildcards.loss.startswith("transfer-best-"):
        out["selection"] = f"{R}/transfer/selection.json"
    if PRETRAIN is not None:
        out["weights"] = f"{R}/pretrain/weights.safetensors"
    return out


def pretrain_job(wildcards):
    return canonical(
        {
            "stage": "pretrain",
            "dataset": PRETRAIN["dataset"],
            "augmentation": PRETRAIN.get("augmentation", "base"),
            "loss": "ce",
            "baseline": None,
            "model": {
                k: v
                for k, v in config["finetune"]["model"].items()
                if k not in ("weights",)
            },
            "train": PRETRAIN["train"],
            "seed": 0,
            "augment": {**config["augment"], **config["finetune"]["augment"]},
            "data_root": config["data_root"],
        }
    )


def transfer_runs():
    return expand(
        f"{R}/transfer/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/metrics.json",
        dataset=TRANSFER_DATASETS,
        aug=AUGS,
        loss=TRANSFER_LOSSES,
        seed=config["transfer"]["seeds"],
    )


def finetune_runs():
    return expand(
        f"{R}/finetune/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/metrics.json",
        dataset=FINETUNE_DATASETS,
        aug=AUGS,
        loss=FINETUNE_LOSSES,
        seed=config["finetune"]["seeds"],
    )


def expected_seeds():
    return {
        "transfer": config["transfer"]["seeds"],
        "finetune": config["finetune"]["seeds"],
    }


def all_targets():
    return [
        *expand(f"{R}/tables/{{t}}.{{ext}}", t=TABLES, ext=["md", "csv", "tex"]),
        *expand(f"{R}/plots/{{p}}.png", p=PLOTS),
        f"{R}/audit/audit.md",
        f"{R}/audit/audit.csv",
        f"{R}/provenance/environment.json",
    ]


TABLES = ["search", "correlation", "transfer", "finetune"]
PLOTS = ["evolution", "correlation", "transfer_delta", "finetune_delta", "probe_curves"]
