# augloss: evolving loss functions for specific image augmentation techniques.
#
# Results layout (R = results/<experiment>):
#   R/config.resolved.yaml                        the config the jobs ran under, defaults filled
#   R/data/<dataset>.json                         dataset manifests (download + split digests)
#   R/search/<aug>/{best,population,summary}.json, history.jsonl   one search per augmentation
#   R/search/correlation.json                     the cross-augmentation study
#   R/<stage>/<dataset>/<aug>/<loss>/seed<k>/     metrics.json + provenance.json per run, for
#                                                 each of names.STAGES (transfer, finetune)
#   R/<stage>/selection.json                      a selecting stage's best losses (select_<stage>)
#   R/tables/, R/plots/, R/audit/, R/provenance/  aggregated outputs
#   R/logs/..., R/benchmarks/...                  mirror the paths above
from snakemake.utils import min_version

min_version("9.19")  # profile.yaml as the profile file name


# The paper experiment, unless --configfile names another one: an experiment's config is
# complete on its own and is never merged over the paper's.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


# Used only under --sdm apptainer (containers/augloss.def); --sdm conda uses envs/augloss.yaml.
container: container_image()


include: "rules/data.smk"
include: "rules/search.smk"
include: "rules/transfer.smk"
include: "rules/finetune.smk"
include: "rules/select.smk"
include: "rules/tables.smk"


rule tables_all:
    input:
        # listed on their own so the DAG holds them before the searches end (no idle GPUs)
        all_known_runs(),
        rules.table_search.output,
        rules.table_correlation.output,
        expand(rules.table_stage.output, stage=STAGES),
        rules.table_claims.output,
        rules.table_specificity.output,
        rules.table_surrogate_validity.output,
        rules.audit.output,
    localrule: True


rule all:
    default_target: True
    input:
        rules.tables_all.input,
        rules.environment.output,
        rules.resolved_config.output,


# One stage at a time: `snakemake search_all`, then `<stage>_all` for each of STAGES
# (transfer_all, finetune_all), then tables_all.
# Each lists its stage and only what that stage needs. Cross-entropy's and the baselines' runs
# are in the DAG from the start; the evolved losses' runs appear once their checkpoint ran:
# evolved_losses (the searches' winners) for transfer, select_transfer for fine-tuning.
rule search_all:
    input:
        expand(rules.search.output, aug=AUGS),
        random_summaries(),
        rules.evolved_losses.output.selection,
        rules.correlation_study.output.study,
    localrule: True


for _stage in STAGES:

    rule:
        name:
            f"{_stage}_all"
        input:
            known_runs(_stage),
            stage_metrics(_stage),
            stage_selection(_stage),
        localrule: True
