"""The surrogate-validity table: surrogate fitness on fresh seeds against transfer accuracy."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.io import read_json
from augloss.tables import collect, validity

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    p = snakemake.params
    df = collect.collect(snakemake.input.metrics, allow_mixed=p.allow_mixed)
    study = read_json(snakemake.input.study)
    summary, per_loss, unmatched = validity.validity(
        study, df, p.stage, p.metric, read_json(snakemake.input.evolved), p.resamples, p.seed)
    validity.write_validity(summary, per_loss, study, unmatched, snakemake.output.md[:-3],
                            p.stage)
