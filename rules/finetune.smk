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
        retries: EXP.retries("finetune")
        conda:
            "../envs/augloss.yaml"
        threads: stage_threads("finetune")
        resources:
            **EXP.resources("finetune"),
        params:
            jobs=[EXP.pretrain_job()],
        script:
            "../scripts/train.py"


rule finetune:
    input:
        unpack(train_inputs("finetune")),
    output:
        metrics=run_files("finetune", "metrics.json"),
        provenance=run_files("finetune", "provenance.json"),
    log:
        job_file("logs", "finetune", "log"),
    benchmark:
        job_file("benchmarks", "finetune", "tsv")
    retries: EXP.retries("finetune")
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("finetune")
    resources:
        **EXP.resources("finetune", EXP.runs_per_job("finetune")),
    params:
        jobs=train_jobs("finetune"),
    script:
        "../scripts/train.py"
