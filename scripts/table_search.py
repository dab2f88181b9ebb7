"""The search table, the evolution curves and the winners' probe curves."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from pathlib import Path

from augloss import runtime
from augloss.tables import plots, search
from augloss.io import read_json

with runtime.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    augs = snakemake.params.augmentations
    dirs = {a: Path(p).parent for a, p in zip(augs, snakemake.input.summaries)}
    random = {a: Path(p).parent for a, p in zip(augs, snakemake.input.random)}
    search.write_search_table(search.search_table(dirs, random), snakemake.output.md[:-3])
    # timings (cost.json): a table of its own, so search.csv stays byte-reproducible
    search.write_cost_table(search.cost_table(dirs), snakemake.output.cost_md[:-3])
    plots.plot_evolution(dirs, snakemake.output.evolution, random)
    winners = {}
    for path in snakemake.input.best:
        best = read_json(path)
        if best["losses"]:
            winners[best["losses"][0]["name"]] = best["losses"][0]["expression"]
    plots.plot_probe_curves(winners, snakemake.output.probe)
