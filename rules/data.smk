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


# Every dataset and weights file the config names, and nothing else: on a connected machine,
# `snakemake data_all` before copying to an air-gapped cluster (README: "Offline and
# air-gapped clusters"). It needs nothing from the searches.
rule data_all:
    input:
        expand(rules.prepare_dataset.output.manifest, dataset=DATASETS),
        rules.prefetch_weights.output if EXP.hub_weights else [],
    localrule: True
