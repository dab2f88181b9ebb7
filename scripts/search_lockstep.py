"""Every augmentation's search in one job, in lockstep (search.lockstep; resumable: each
search's state lives in its own params.workdirs entry)."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

import shutil
import time
from pathlib import Path

from augloss import provenance, runtime, search, workflow
from augloss.io import atomic_path
from augloss.search.lockstep import run_lockstep

started = time.time()
with runtime.job_context(snakemake.log[0], snakemake.threads, snakemake.resources.gpu,
                         cpu_fallback=bool(snakemake.resources.get("cpu_fallback", 0)),
                         gres=snakemake.resources.get("gres")) as dev:
    runtime.maybe_fail(snakemake.rule, snakemake.params.workdirs[0])
    augs, jobs = snakemake.params.augmentations, snakemake.params.jobs
    searches, fitnesses = [], []
    for aug, job, workdir in zip(augs, jobs, snakemake.params.workdirs):
        workflow.verify_dataset(snakemake.input.manifest, job["data_root"])
        fitness = workflow.fitness(job["fitness"], dev)
        s = search.Search(aug, search.SearchConfig.from_dict(job["algorithm"]), fitness,
                          job["seed"], workdir, cache_dir=snakemake.params.cache_dir,
                          noise_seeds=job["noise_seeds"])
        if searches:
            s.evaluator.share_data(searches[0].evaluator)  # one copy of the data in memory
        s.store.set_aside_foreign()  # its config changed since the last run: start it afresh
        searches.append(s)
        fitnesses.append(fitness)
    run_lockstep(searches)
    for i, (s, fitness) in enumerate(zip(searches, fitnesses)):
        for name in ("best", "history", "population", "summary", "cache_stats", "cost"):
            src = Path(s.out) / Path(snakemake.output[name][i]).name
            with atomic_path(snakemake.output[name][i]) as tmp:
                shutil.copyfile(src, tmp)
        provenance.write_job_provenance(
            snakemake.output.provenance[i], started, device=fitness.device,
            extra={"data": provenance.manifest_digest(snakemake.input.manifest),
                   "config_hash": s.config_hash, "lockstep": list(augs)})
