"""The audit trail: for every table cell, the runs, seeds, hashes, code and devices behind it."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import tables, workflow
from augloss.io import read_json

with workflow.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = tables.collect(snakemake.input.metrics, allow_mixed=True)
    a = tables.audit(df, dict(snakemake.params.expected_seeds),
                     read_json(snakemake.input.evolved)["aliases"])
    tables.write_audit(a, snakemake.output.md, snakemake.output.csv, snakemake.output.html)
