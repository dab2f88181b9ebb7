"""The search table, the evolution curves and the winners' probe curves."""

import _augloss_path  # noqa: F401 (the workflow's own augloss first on sys.path)

from pathlib import Path

from augloss import tables, workflow
from augloss.io import read_json

with workflow.job_context(snakemake.log[0], 1, 0, uses_torch=False):
    augs = snakemake.params.augmentations
    dirs = {a: Path(p).parent for a, p in zip(augs, snakemake.input.summaries)}
    random = {a: Path(p).parent for a, p in zip(augs, snakemake.input.random)}
    tables.write_search_table(tables.search_table(dirs, random), snakemake.output.md[:-3])
    tables.plot_evolution(dirs, snakemake.output.evolution, random)
    winners = {}
    for path in snakemake.input.best:
        best = read_json(path)
        if best["losses"]:
            winners[best["losses"][0]["name"]] = best["losses"][0]["expression"]
    tables.plot_probe_curves(winners, snakemake.output.probe)
