rule train_transfer:
    input:
        unpack(train_inputs("transfer")),
    output:
        metrics=run_files("transfer", "metrics.json"),
        provenance=run_files("transfer", "provenance.json"),
    log:
        job_file("logs", "transfer", "log"),
    benchmark:
        job_file("benchmarks", "transfer", "tsv")
    retries: EXP.retries("transfer")
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("transfer")
    resources:
        **EXP.resources("transfer", EXP.runs_per_job("transfer")),
    params:
        jobs=train_jobs("transfer"),
    script:
        "../scripts/train.py"
