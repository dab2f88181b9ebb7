"""Rank a stage's evolved losses (select_<stage>); the best go on to the stage receiving them."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

import time

from augloss import provenance, runtime, workflow
from augloss.io import write_json

started = time.time()
with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    selection = workflow.select_losses(list(snakemake.input.metrics), snakemake.params.top_k,
                                       snakemake.params.metric, snakemake.params.key)
    write_json(snakemake.output.selection, selection)
    provenance.write_job_provenance(snakemake.output.provenance, started)
