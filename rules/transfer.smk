rule train_transfer:
    input:
        unpack(transfer_inputs),
    output:
        metrics=run_files("transfer", "metrics.json"),
        provenance=run_files("transfer", "provenance.json"),
    log:
        job_file("logs", "transfer", "log"),
    benchmark:
        job_file("benchmarks", "transfer", "tsv")
    retries: config["transfer"]["retries"]
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("transfer")
    resources:
        **EXP.resources("transfer", EXP.runs_per_job("transfer")),
    params:
        jobs=train_jobs("transfer"),
    script:
        "../scripts/train.py"


rule select_transfer:
    input:
        metrics=lambda wc: stage_runs("transfer"),
    output:
        selection=f"{R}/transfer/selection.json",
    log:
        f"{R}/logs/transfer/selection.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        top_k=config["finetune"]["from_transfer"],
        metric=config["finetune"]["selection_metric"],
    script:
        "../scripts/select_transfer.py"
