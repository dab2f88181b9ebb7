rule prepare_dataset:
    output:
        manifest=f"{R}/data/{{dataset}}.json",
    log:
        f"{R}/logs/data/{{dataset}}.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        name=lambda wc: DATASETS[wc.dataset],
        root=EXP.data_root,
        splits=["train", "val", "test"],
    script:
        "../scripts/prepare_dataset.py"


if EXP.hub_weights:

    rule prefetch_weights:
        output:
            manifest=f"{R}/data/weights.json",
        log:
            f"{R}/logs/data/weights.log",
        localrule: True
        conda:
            "../envs/augloss.yaml"
        params:
            model=EXP.weights_model,
            root=EXP.data_root,
        script:
            "../scripts/prefetch_weights.py"
