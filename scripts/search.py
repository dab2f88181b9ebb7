"""One regularized-evolution search (resumable: its state lives in params.workdir)."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

import shutil
import time
from pathlib import Path

from augloss import provenance, runtime, search, workflow
from augloss.io import atomic_path

job = snakemake.params.job
started = time.time()
with runtime.job_context(snakemake.log[0], snakemake.threads, snakemake.resources.gpu,
                         cpu_fallback=bool(snakemake.resources.get("cpu_fallback", 0)),
                         gres=snakemake.resources.get("gres")) as dev:
    runtime.maybe_fail(snakemake.rule, snakemake.params.workdir)
    workflow.verify_dataset(snakemake.input.manifest, job["data_root"])
    fitness = workflow.fitness(job["fitness"], dev)
    s = search.Search(job["augmentation"], search.SearchConfig.from_dict(job["algorithm"]),
                      fitness, job["seed"], snakemake.params.workdir,
                      cache_dir=snakemake.params.cache_dir, noise_seeds=job["noise_seeds"])
    s.store.set_aside_foreign()  # the config changed since the last run: start this one afresh
    s.run()
    work = Path(snakemake.params.workdir)
    for name in ("best", "history", "population", "summary", "cache_stats", "cost"):
        src = work / Path(snakemake.output[name]).name
        with atomic_path(snakemake.output[name]) as tmp:
            shutil.copyfile(src, tmp)
    provenance.write_job_provenance(
        snakemake.output.provenance, started, device=fitness.device,  # what it computed on
        extra={"data": provenance.manifest_digest(snakemake.input.manifest),
               "config_hash": s.config_hash})
