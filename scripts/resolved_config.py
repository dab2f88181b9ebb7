"""results/<experiment>/config.resolved.yaml: the config every job ran under, defaults filled."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime, workflow

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    workflow.write_resolved_config(snakemake.output.config, dict(snakemake.params.config),
                                   dict(snakemake.params.overrides))
