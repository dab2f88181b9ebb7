"""The evolved losses that go on to transfer, each loss once (two searches may select one)."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

import time

from augloss import provenance, runtime, workflow
from augloss.io import write_json

started = time.time()
with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    best = dict(zip(snakemake.params.augmentations, snakemake.input.best))
    write_json(snakemake.output.selection,
               workflow.evolved_losses(best, list(snakemake.params.names)))
    provenance.write_job_provenance(snakemake.output.provenance, started)
