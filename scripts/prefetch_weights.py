"""Download the fine-tuning model's pretrained weights once, on the head node (a local rule)."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.io import write_json

with runtime.job_context(snakemake.log[0], 1, 0, offline=False):
    from augloss import models

    manifest = models.prefetch_weights(snakemake.params.model, snakemake.params.root)
    write_json(snakemake.output.manifest, manifest)
