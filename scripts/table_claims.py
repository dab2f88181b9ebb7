"""The claims table: for each loss and stage, does it beat cross-entropy across the cells?"""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.tables import claims, collect, comparison
from augloss.io import read_json

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = collect.collect(snakemake.input.metrics, allow_mixed=snakemake.params.allow_mixed)
    aliases = read_json(snakemake.input.evolved)["aliases"]
    comparisons = [comparison.comparison(df, stage, snakemake.params.metric, aliases=aliases)
                   for stage in snakemake.params.stages]
    claims.write_claims(claims.claims(comparisons), snakemake.output.md[:-3], comparisons)
