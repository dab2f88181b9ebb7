if PRETRAIN is not None:

    rule pretrain:
        input:
            manifest=manifest(PRETRAIN["dataset"]),
        output:
            weights=f"{R}/pretrain/weights.safetensors",
            metrics=f"{R}/pretrain/metrics.json",
        log:
            f"{R}/logs/pretrain.log",
        benchmark:
            f"{R}/benchmarks/pretrain.tsv"
        retries: config["finetune"]["retries"]
        conda:
            "../envs/augloss.yaml"
        threads: stage_threads("finetune")
        resources:
            **EXP.resources("finetune"),
        params:
            job=pretrain_job,
        script:
            "../scripts/train.py"


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        metrics=f"{R}/finetune/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/metrics.json",
        provenance=f"{R}/finetune/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}/provenance.json",
    log:
        f"{R}/logs/finetune/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/finetune/{{dataset}}/{{aug}}/{{loss}}/seed{{seed}}.tsv"
    retries: config["finetune"]["retries"]
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("finetune")
    resources:
        **EXP.resources("finetune"),
    params:
        job=finetune_job,
    script:
        "../scripts/train.py"
