"""The cross-augmentation study: every loss under every augmentation on fresh seeds."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime, search, workflow
from augloss.io import write_json

job = snakemake.params.job
with runtime.job_context(snakemake.log[0], snakemake.threads, snakemake.resources.gpu) as dev:
    workflow.verify_dataset(snakemake.input.manifest, job["data_root"])
    fitness = workflow.fitness(job["fitness"], dev)
    best = dict(zip(job["augmentations"], snakemake.input.best))
    study = search.correlation_study(best, job["top_n"], fitness, job["seed"],
                                     snakemake.params.cache_dir, tuple(job["augmentations"]),
                                     batch=job["batch"], seeds=job["seeds"],
                                     baselines=job["baselines"], resamples=job["bootstrap"],
                                     bootstrap_seed=job["bootstrap_seed"])
    write_json(snakemake.output.study, study)
