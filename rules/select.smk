# One select_<stage> rule per stage whose evolved losses go on to the next stage
# (experiment.STAGES: selects); the receiving stage's config says how many and by which metric.
for _stage in EXP.selecting_stages:

    rule:
        name:
            f"select_{_stage}"
        input:
            metrics=stage_metrics(_stage),
        output:
            selection=f"{R}/{_stage}/selection.json",
        log:
            f"{R}/logs/{_stage}/selection.log",
        localrule: True
        conda:
            "../envs/augloss.yaml"
        params:
            **EXP.selection_params(_stage),
        script:
            "../scripts/select_losses.py"
