"""The claims table: for each loss and stage, does it beat cross-entropy across the cells?"""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import tables, workflow
from augloss.io import read_json

with workflow.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = tables.collect(snakemake.input.metrics, allow_mixed=snakemake.params.allow_mixed)
    aliases = read_json(snakemake.input.evolved)["aliases"]
    comparisons = [tables.comparison(df, stage, snakemake.params.metric, aliases=aliases)
                   for stage in snakemake.params.stages]
    tables.write_claims(tables.claims(comparisons), snakemake.output.md[:-3])
