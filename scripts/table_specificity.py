"""The specificity table: does a loss do relatively better under the augmentation it was found
for than under the others (per stage and dataset)?"""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.io import read_json
from augloss.tables import collect, specificity

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = collect.collect(snakemake.input.metrics, allow_mixed=snakemake.params.allow_mixed)
    evolved = read_json(snakemake.input.evolved)
    p = snakemake.params
    summary, per_loss = specificity.specificity(df, p.stages, p.metric, evolved,
                                                p.permutations, p.seed)
    specificity.write_specificity(summary, per_loss, snakemake.output.md[:-3],
                                  p.permutations, p.seed)
