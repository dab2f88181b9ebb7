# Thin glue between the config and the rules: the logic (cross-field checks, job parameters,
# names) lives in augloss.workflow, torch-free, unit-tested without Snakemake.
from pathlib import Path

from augloss import workflow as wf

# The schema check, with every default filled in (also those behind $ref, which
# snakemake.utils.validate leaves out): a missing or wrong key is named in one line.
config.update(wf.load_config(config, Path(workflow.basedir) / "config.schema.yaml"))

EXP = wf.Experiment.from_config(config)
R = EXP.results
AUGS = EXP.augmentations
TRANSFER_DATASETS = EXP.datasets("transfer")
FINETUNE_DATASETS = EXP.datasets("finetune")
DATASETS = EXP.all_datasets()
PRETRAIN = EXP.pretrain
TABLES = ["search", "correlation", "transfer", "finetune", "claims"]
PLOTS = [
    "evolution",
    "correlation",
    "transfer_delta",
    "finetune_delta",
    "transfer_curves",
    "finetune_curves",
    "probe_curves",
]
if (_why := wf.unwritable(R)) is not None:
    raise wf.ConfigError(
        "experiment", f"the results directory {R} cannot be written: {_why}"
    )


wildcard_constraints:
    aug="|".join(AUGS),
    seed=r"\d+",
    loss=r"[a-z0-9_]+(-[a-z0-9_]+)*",
    dataset=r"[A-Za-z0-9._-]+",


# --- input functions and params ------------------------------------------------------------


def container_image():
    """The ``container`` config key as Snakemake needs it: a URI, or an absolute .sif path."""
    image = config["container"]
    if "://" in image or Path(image).is_absolute():
        return image
    return str(Path(workflow.basedir) / image)


def gpu_limit():
    """The run's ``--resources gpu=N`` (None when not given)."""
    value = workflow.resource_settings.resources.get("gpu")
    return getattr(value, "value", value)


def stage_threads(stage):
    """Threads of the GPU jobs of ``stage``; ``auto`` shares --cores among those at once."""
    return wf.job_threads(
        config[stage]["threads"],
        cores=workflow.resource_settings.cores,
        gpu_limit=gpu_limit(),
        gpus_per_job=config[stage]["gpu"],
        cluster=workflow.resource_settings.nodes is not None,
    )


def manifest(name):
    return expand(rules.prepare_dataset.output.manifest, dataset=wf.slug(name))[0]


def search_job(wildcards):
    return EXP.search_job(wildcards.aug)


def random_search_job(wildcards):
    return EXP.search_job(wildcards.aug, "random")


def random_summaries():
    """The random-search baselines' summaries (none unless search.baseline: random)."""
    if not EXP.random_baseline:
        return []
    return expand(rules.search_random.output.summary, aug=AUGS)


def correlation_job(wildcards):
    return EXP.correlation_job()


def train_jobs(stage):
    """``params.jobs`` of a training rule: its run, or every seed of its cell."""

    def jobs(wildcards):
        return EXP.train_jobs(
            stage,
            wildcards.dataset,
            wildcards.aug,
            wildcards.loss,
            getattr(wildcards, "seed", None),
        )

    return jobs


def run_files(stage, name):
    """A training rule's per-run output ``name`` (metrics.json, provenance.json): one run's,
    or with ``<stage>.seeds_in_one_job`` every seed's of the cell, in config order."""
    pattern = f"{R}/{stage}/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/{name}"
    if EXP.seeds_in_one_job(stage):
        return expand(pattern, seed=config[stage]["seeds"], allow_missing=True)
    return pattern


def job_file(kind, stage, ext):
    """A training job's log or benchmark file: per run, or per cell (``seeds.<ext>``)."""
    name = "seeds" if EXP.seeds_in_one_job(stage) else "seed{seed}"
    return f"{R}/{kind}/{stage}/{{dataset}}/{{aug}}/{{loss}}/{name}.{ext}"


def pretrain_job(wildcards):
    return [EXP.pretrain_job()]


def loss_input(stage, loss):
    """The search's best.json or the transfer selection a loss wildcard reads (or nothing)."""
    need = EXP.upstream(stage, loss)
    if need is None:
        return {}
    if need[0] == "best":
        return {"best": expand(rules.search.output.best, aug=need[1])[0]}
    return {"selection": rules.select_transfer.output.selection}


def transfer_inputs(wildcards):
    return {
        "manifest": manifest(TRANSFER_DATASETS[wildcards.dataset]),
        **loss_input("transfer", wildcards.loss),
    }


def finetune_inputs(wildcards):
    out = {
        "manifest": manifest(FINETUNE_DATASETS[wildcards.dataset]),
        **loss_input("finetune", wildcards.loss),
    }
    if PRETRAIN is not None:
        out["weights"] = rules.pretrain.output.weights
    if EXP.hub_weights:
        out["hub_weights"] = rules.prefetch_weights.output.manifest
    return out


def transfer_evolved():
    """The evolved losses trained at transfer, each loss once: known when the searches end
    (the evolved_losses checkpoint), so call this from input functions only."""
    evolved = checkpoints.evolved_losses.get().output.selection
    return [e["name"] for e in wf.read_json(evolved)["losses"]]


def stage_runs(stage):
    """Every run's metrics.json of a training stage (transfer, finetune); input functions only."""
    evolved = transfer_evolved() if stage == "transfer" else None
    return expand(
        f"{R}/{stage}/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/metrics.json",
        dataset=EXP.datasets(stage),
        aug=AUGS,
        loss=EXP.losses(stage, evolved),
        seed=config[stage]["seeds"],
    )


def all_runs(wildcards):
    return stage_runs("transfer") + stage_runs("finetune")


def all_targets():
    return [
        *expand(
            f"{R}/tables/{{t}}.{{ext}}", t=TABLES, ext=["md", "csv", "tex", "html"]
        ),
        *expand(f"{R}/plots/{{p}}.png", p=PLOTS),
        f"{R}/audit/audit.md",
        f"{R}/audit/audit.html",
        f"{R}/audit/audit.csv",
        f"{R}/provenance/environment.json",
    ]
