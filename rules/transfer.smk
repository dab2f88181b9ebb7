rule train_transfer:
    input:
        unpack(transfer_inputs),
    output:
        metrics=f"{R}/transfer/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/metrics.json",
        provenance=f"{R}/transfer/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/provenance.json",
    log:
        f"{R}/logs/transfer/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/transfer/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}.tsv"
    retries: config["transfer"]["retries"]
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("transfer")
    resources:
        **EXP.resources("transfer"),
    params:
        job=transfer_job,
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
