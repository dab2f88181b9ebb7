"""A comparison table against cross-entropy (transfer or fine-tune) and its delta heatmap."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from augloss import runtime
from augloss.tables import collect, comparison, plots
from augloss.io import read_json

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    df = collect.collect(snakemake.input.metrics, allow_mixed=snakemake.params.allow_mixed)
    aliases = read_json(snakemake.input.evolved)["aliases"]
    t = comparison.comparison(df, snakemake.wildcards.stage, snakemake.params.metric,
                              aliases=aliases)
    comparison.write_comparison(t, snakemake.output.md[:-3])
    plots.plot_delta_heatmap(t, snakemake.output.delta)
    plots.plot_learning_curves(snakemake.input.metrics, snakemake.wildcards.stage,
                               snakemake.output.curves, aliases)
