"""The audit trail: for every table cell, the runs, seeds, hashes, code and devices behind it."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.tables import audit, collect
from augloss.io import read_json

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = collect.collect(snakemake.input.metrics, allow_mixed=True)
    a = audit.audit(df, dict(snakemake.params.expected_seeds),
                    read_json(snakemake.input.evolved)["aliases"])
    audit.write_audit(a, snakemake.output.md, snakemake.output.csv, snakemake.output.html)
