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

min_version("9.0")


# The paper experiment, unless --configfile names another one: an experiment's config is
# complete on its own and is never merged over the paper's.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/search.smk"
include: "rules/transfer.smk"
include: "rules/finetune.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    input:
        all_targets(),
