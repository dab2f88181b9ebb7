"""One training run (transfer, fine-tune or the demo's pretraining); resumes after a kill."""

from pathlib import Path

from augloss import train, workflow

job = snakemake.params.job
out_dir = Path(snakemake.output.metrics).parent
with workflow.job_context(snakemake.log[0], snakemake.threads, snakemake.resources.gpu) as dev:
    workflow.maybe_fail(snakemake.rule, out_dir)
    workflow.verify_dataset(snakemake.input.manifest, job["data_root"])
    model = job["model"]
    if "hub_weights" in snakemake.input.keys():  # fetched by the head node (prefetch_weights)
        model = {**model, "weights": workflow.prefetched_weights(snakemake.input.hub_weights)}
    spec = workflow.resolve_loss(job["loss"], job["baseline"], snakemake.input.get("best"),
                                 snakemake.input.get("selection"))
    run = train.Job(stage=job["stage"], dataset=job["dataset"],
                    augmentation=job["augmentation"], loss=spec,
                    model=model, train=job["train"], seed=job["seed"],
                    augment=job["augment"], data_root=job["data_root"],
                    preprocessing=job.get("preprocessing"))
    train.run(run, out_dir, device=dev, init_weights=snakemake.input.get("weights"),
              weights_out=snakemake.output.get("weights"))
