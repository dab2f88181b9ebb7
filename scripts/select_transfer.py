"""Rank the evolved losses of the transfer stage; the best go on to fine-tuning."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import workflow
from augloss.io import write_json

with workflow.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    selection = workflow.select_transfer(list(snakemake.input.metrics),
                                         snakemake.params.top_k, snakemake.params.metric)
    write_json(snakemake.output.selection, selection)
