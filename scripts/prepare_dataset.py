"""Download (where possible) and check a dataset; write its manifest."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime, workflow
from augloss.io import write_json

with runtime.job_context(snakemake.log[0], 1, 0, offline=False):
    manifest = workflow.prepare_dataset(
        snakemake.params.name, snakemake.params.root, list(snakemake.params.splits)
    )
    write_json(snakemake.output.manifest, manifest)
