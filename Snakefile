# augloss: evolving loss functions for specific image augmentation techniques.
#
# Results layout (R = results/<experiment>):
#   R/data/<dataset>.json                         dataset manifests (download + split digests)
#   R/search/<aug>/{best,population,summary}.json, history.jsonl   one search per augmentation
#   R/search/correlation.json                     the cross-augmentation study
#   R/transfer/<dataset>/<aug>/<loss>/seed<k>/    metrics.json + provenance.json per run
#   R/finetune/<dataset>/<aug>/<loss>/seed<k>/    the same for fine-tuning
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
include: "rules/tables.smk"


rule all:
    default_target: True
    input:
        all_targets(),


# One stage at a time: `snakemake search_all` (then transfer_all, finetune_all, tables_all).
# Each lists its stage and only what that stage needs; the transfer runs (and everything after
# them) appear once the searches have ended, when the evolved_losses checkpoint names them.
rule search_all:
    input:
        expand(rules.search.output, aug=AUGS),
        random_summaries(),
        rules.evolved_losses.output.selection,
        rules.correlation_study.output.study,
    localrule: True


rule transfer_all:
    input:
        lambda wc: stage_runs("transfer"),
        rules.select_transfer.output.selection,
    localrule: True


rule finetune_all:
    input:
        lambda wc: stage_runs("finetune"),
    localrule: True


rule tables_all:
    input:
        [t for t in all_targets() if "/provenance/" not in t],
    localrule: True
