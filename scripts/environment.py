"""Record the software environment of the workflow: each installed package once, the science
packages' versions, snakemake, git."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime, workflow

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    workflow.write_environment(snakemake.output.env)
