rule prepare_dataset:
    output:
        manifest=f"{R}/data/{{dataset}}.json",
    log:
        f"{R}/logs/data/{{dataset}}.log",
    cache: "omit-software"
    conda:
        "../envs/augloss.yaml"
    params:
        name=lambda wc: DATASETS[wc.dataset],
        root=config["data_root"],
        splits=["train", "val", "test"],
    script:
        "../scripts/prepare_dataset.py"
