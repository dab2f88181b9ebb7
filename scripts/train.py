"""The training runs of one job (transfer, fine-tune or the demo's pretraining): one run, or
every seed of a cell (``seeds_in_one_job``); each resumes after a kill. A cell's job restores a
seed that finished before under the same job, code and data instead of retraining it, so adding
a seed trains that seed only."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from pathlib import Path

from augloss import manifest, runs, runtime, workflow

jobs = snakemake.params.jobs  # one run per seed this job trains, each naming its out_dir
# every seed of a cell in one job (seeds_in_one_job): a seed that finished before under the same
# job, code, data and weights is restored from its .finished/ copy (adding a seed trains it only)
reuse = len(jobs) > 1 and "weights" not in snakemake.output.keys()
with runtime.job_context(snakemake.log[0], snakemake.threads, snakemake.resources.gpu,
                         cpu_fallback=bool(snakemake.resources.get("cpu_fallback", 0)),
                         gres=snakemake.resources.get("gres")) as dev:
    for root in dict.fromkeys(job["data_root"] for job in jobs):  # hashes files: once per job
        workflow.verify_dataset(snakemake.input.manifest, root)
    data = manifest.file_sha256(snakemake.input.manifest)
    for job in jobs:
        out_dir = Path(job["out_dir"])
        runtime.maybe_fail(snakemake.rule, out_dir)
        model = job["model"]
        if "hub_weights" in snakemake.input.keys():  # fetched by the head node (prefetch_weights)
            model = {**model, "weights": workflow.prefetched_weights(snakemake.input.hub_weights)}
        spec = workflow.resolve_loss(job["loss"], job["baseline"], snakemake.input.get("best"))
        run = runs.Job(stage=job["stage"], dataset=job["dataset"],
                       augmentation=job["augmentation"], loss=spec,
                       model=model, train=job["train"], seed=job["seed"],
                       augment=job["augment"], data_root=job["data_root"],
                       train_split=job.get("train_split", "train"),
                       preprocessing=job["preprocessing"])
        init = snakemake.input.get("weights")
        if reuse:
            key = runs.finished_key(run, init, data, code_files=(__file__,))
            if runs.restore_finished(out_dir, key) is not None:
                runtime.log.info("run %s: finished before with the same job, code and data: "
                                 "outputs restored, not retrained", out_dir)
                continue
        runtime.log.info("run %s", out_dir)
        runs.run(run, out_dir, device=dev, init_weights=init,
                 weights_out=snakemake.output.get("weights"))
        if reuse:
            runs.keep_finished(out_dir, key)
