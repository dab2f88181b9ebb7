"""The cross-augmentation study: every loss under every augmentation on fresh seeds."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

import time

from augloss import provenance, runtime, search, workflow
from augloss.io import write_json

job = snakemake.params.job
started = time.time()
with runtime.job_context(snakemake.log[0], snakemake.threads, snakemake.resources.gpu,
                         cpu_fallback=bool(snakemake.resources.get("cpu_fallback", 0)),
                         gres=snakemake.resources.get("gres")) as dev:
    workflow.verify_dataset(snakemake.input.manifest, job["data_root"])
    fitness = workflow.fitness(job["fitness"], dev)
    best = dict(zip(job["augmentations"], snakemake.input.best))
    study = search.correlation_study(best, job["top_n"], fitness, job["seed"],
                                     snakemake.params.cache_dir, tuple(job["augmentations"]),
                                     batch=job["batch"], seeds=job["seeds"],
                                     baselines=job["baselines"], resamples=job["bootstrap"],
                                     bootstrap_seed=job["bootstrap_seed"])
    write_json(snakemake.output.study, study)
    provenance.write_job_provenance(
        snakemake.output.provenance, started, device=fitness.device,  # what it computed on
        extra={"data": provenance.manifest_digest(snakemake.input.manifest)})
