"""The audit trail: for every table cell, the runs, seeds, hashes, code, devices, packages and
data behind it; for every search, correlation study, checkpoint and selection, its provenance."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from pathlib import Path

from augloss import runtime
from augloss.tables import audit, collect
from augloss.io import read_json

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = collect.collect(snakemake.input.metrics, allow_mixed=True)
    a = audit.audit(df, dict(snakemake.params.expected_seeds),
                    read_json(snakemake.input.evolved)["aliases"])
    jobs_in = snakemake.input.get("jobs", [])
    jobs_in = [jobs_in] if isinstance(jobs_in, str) else list(jobs_in)
    root = Path(snakemake.output.md).parent.parent  # results/<experiment>
    jobs = audit.audit_jobs({audit.job_key(p, root): str(p) for p in jobs_in}) if jobs_in else None
    resolved = snakemake.input.get("resolved_config")
    audit.write_audit(a, snakemake.output.md, snakemake.output.csv, snakemake.output.html,
                      jobs=jobs, resolved_config=str(resolved) if resolved else None)
