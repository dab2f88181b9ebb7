# Thin glue: the experiment (names, checks, job parameters) lives in augloss.experiment,
# torch-free and unit-tested without Snakemake. Rules read the config only through EXP.
import re
from pathlib import Path

from augloss import experiment, names, runtime
from augloss.io import read_json
from augloss.schema import ConfigError

# The schema check, every default filled in: a missing or wrong key is named in one line.
EXP = experiment.Experiment.from_config(
    config, Path(workflow.basedir) / "config.schema.yaml"
)
# Snakemake's own `config` (what --report and --configfile overrides show) holds the same
# filled values; the rules read them through EXP only.
config.update(EXP.config)
R = EXP.results
AUGS = EXP.augmentations
STAGES = EXP.stages
DATASETS = EXP.all_datasets()
PRETRAIN = EXP.pretrain
if (_why := runtime.unwritable(R)) is not None:
    raise ConfigError(
        "experiment", f"the results directory {R} cannot be written: {_why}"
    )


wildcard_constraints:
    aug="|".join(AUGS),
    seed=r"\d+",
    loss=r"[a-z0-9_]+(-[a-z0-9_]+)*",
    dataset="|".join(re.escape(d) for d in DATASETS),


# --- input functions and params ------------------------------------------------------------


def container_image():
    """The ``container`` config key as Snakemake needs it: a URI, or an absolute .sif path."""
    image = EXP.container
    if "://" in image or Path(image).is_absolute():
        return image
    return str(Path(workflow.basedir) / image)


def stage_threads(section):
    """Threads of the GPU jobs of ``section``; ``auto`` shares --cores among those at once."""
    gpu_limit = workflow.resource_settings.resources.get("gpu")
    return runtime.job_threads(
        EXP.threads_setting(section),
        cores=workflow.resource_settings.cores,
        gpu_limit=getattr(gpu_limit, "value", gpu_limit),
        gpus_per_job=EXP.gpus_per_job(section),
        cluster=workflow.resource_settings.nodes is not None,
    )


def manifest(name):
    return expand(rules.prepare_dataset.output.manifest, dataset=names.slug(name))[0]


def train_jobs(stage):
    """``params.jobs`` of a training rule: a run for each seed its job trains."""
    return lambda wc: EXP.train_jobs(
        stage, wc.dataset, wc.aug, wc.loss, getattr(wc, "seed", None)
    )


def run_files(stage, name):
    """Per-run output ``name`` for each seed a job trains (``{seed}``, or the cell's)."""
    return [
        f"{EXP.run_dir(stage, '{dataset}', '{aug}', '{loss}', seed)}/{name}"
        for seed in EXP.job_seeds(stage)
    ]


def job_file(kind, stage, ext):
    """A training job's log or benchmark file: per run, or per cell (``seeds.<ext>``)."""
    name = "seeds" if EXP.seeds_in_one_job(stage) else "seed{seed}"
    return f"{R}/{kind}/{stage}/{{dataset}}/{{aug}}/{{loss}}/{name}.{ext}"


def loss_input(stage, loss):
    """The search's best.json an evolved loss wildcard reads (nothing for ce, baselines)."""
    need = EXP.upstream(stage, loss)
    if need is None:
        return {}
    return {"best": expand(rules.search.output.best, aug=need[1])[0]}


def train_inputs(stage):
    """A training rule's inputs: its dataset's manifest, the loss's upstream file and, where
    the stage starts from pretrained weights, those weights."""

    def inputs(wc):
        out = {
            "manifest": manifest(EXP.datasets(stage)[wc.dataset]),
            **loss_input(stage, wc.loss),
        }
        if stage in EXP.weights_stages("pretrain"):
            out["weights"] = rules.pretrain.output.weights
        if stage in EXP.weights_stages("hub"):
            out["hub_weights"] = rules.prefetch_weights.output.manifest
        return out

    return inputs


def received(stage):
    """The evolved losses ``stage`` trains, each once, by name: the searches' winners (the
    evolved_losses checkpoint) or the upstream stage's selection (its select_<stage>
    checkpoint). Known only once that checkpoint ran: call from input functions only."""
    upstream = experiment.stage(stage).receives
    if upstream == "search":
        evolved = checkpoints.evolved_losses.get().output.selection
        return [e["name"] for e in read_json(evolved)["losses"]]
    selection = getattr(checkpoints, f"select_{upstream}").get().output.selection
    return [e["loss"] for e in read_json(selection)["selected"]]


def runs_of(stage, losses):
    return expand(
        f"{EXP.run_dir(stage, '{dataset}', '{aug}', '{loss}', '{seed}')}/metrics.json",
        dataset=EXP.datasets(stage),
        aug=AUGS,
        loss=losses,
        seed=EXP.seeds(stage),
    )


def known_runs(stage):
    """The runs of cross-entropy and the baselines: they need nothing from the searches, so
    they are in the DAG from the start and run while the searches run (no idle GPUs)."""
    return runs_of(stage, EXP.losses(stage, []))


def stage_runs(stage):
    """Every run's metrics.json of a training stage; input functions only."""
    return runs_of(stage, EXP.losses(stage, received(stage)))


def random_summaries():
    """The random-search baselines' summaries (none unless search.baseline: random)."""
    if not EXP.random_baseline:
        return []
    return expand(rules.search_random.output.summary, aug=AUGS)


def stage_metrics(stage):
    """An input function: every run's metrics.json of ``stage``."""
    return lambda wildcards: stage_runs(stage)


def all_known_runs():
    return [run for stage in STAGES for run in known_runs(stage)]


def stage_selection(stage):
    """The selection of ``stage``'s losses for the next stage (none if it does not select)."""
    if stage not in EXP.selecting_stages:
        return []
    return getattr(rules, f"select_{stage}").output.selection


def all_runs(wildcards):
    return [run for stage in STAGES for run in stage_runs(stage)]
