# One select_<stage> rule per stage whose evolved losses go on to the next stage
# (experiment.STAGES: selects); the receiving stage's config says how many and by which metric.
# A checkpoint: the receiving stage's runs are keyed by the selected losses' own names, so a
# new selection reruns only the runs of losses it newly selects.
for _stage in EXP.selecting_stages:

    checkpoint:
        name:
            f"select_{_stage}"
        input:
            metrics=stage_metrics(_stage),
        output:
            selection=f"{R}/{_stage}/selection.json",
            provenance=f"{R}/{_stage}/selection/provenance.json",
        log:
            f"{R}/logs/{_stage}/selection.log",
        localrule: True
        conda:
            "../envs/augloss.yaml"
        params:
            **EXP.selection_params(_stage),
        script:
            "../scripts/select_losses.py"
