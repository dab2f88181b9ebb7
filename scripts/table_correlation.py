"""The cross-augmentation correlation table (with its noise ceiling) and matrix plot."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.tables import correlation, plots
from augloss.io import read_json

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    study = read_json(snakemake.input.study)
    correlation.write_correlation_table(correlation.correlation_table(study), study,
                                        snakemake.output.md[:-3])
    plots.plot_correlation(study, snakemake.output.plot)
