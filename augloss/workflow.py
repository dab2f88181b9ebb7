"""What the thin scripts call besides the runtime: datasets, losses, selections, the environment.

Nothing here reads Snakemake's config: every function takes plain values from a job's
``params:`` (built by :class:`augloss.experiment.Experiment`) and ``input:`` files.
"""

from __future__ import annotations

from pathlib import Path

from augloss import names, stats
from augloss.config import FitnessConfig, LossSpec
from augloss.io import read_json, write_json
from augloss.manifest import file_digests, verify_files
from augloss.provenance import environment


def fitness(job_fitness: dict, device: str) -> FitnessConfig:
    """The fitness of a search job (:meth:`Experiment.fitness`) on the job's ``device`` where
    the config says ``auto``."""
    chosen = device if job_fitness["device"] == "auto" else job_fitness["device"]
    return FitnessConfig.from_dict({**job_fitness, "device": chosen})


# --- datasets -------------------------------------------------------------------------------

def prepare_dataset(name: str, root: str, splits: list[str]) -> dict:
    """Download (where possible) and check every split; return a manifest of their digests."""
    from augloss import data

    manifest = {"dataset": name, "splits": {}}
    on_disk = []
    for split in splits:
        ds = data.load(name, root, split, download=True)
        manifest["splits"][split] = {"size": len(ds), "classes": ds.num_classes,
                                     "digest": ds.digest()}
        on_disk += ds.on_disk()
    manifest["files"] = file_digests(on_disk, root)
    return manifest


def prefetched_weights(manifest_file: str) -> str:
    """The weights file ``prefetch_weights`` recorded, checked against its size and SHA-256."""
    m = read_json(manifest_file)
    path = Path(m["file"])
    verify_files({path.name: {"size": m["size"], "sha256": m["sha256"]}}, path.parent,
                 f"pretrained weights {m['model']}")
    return str(path)


def verify_dataset(manifest_file: str, root: str) -> None:
    """Before a job trains on a dataset: every file it is read from still has the size and
    SHA-256 that prepare_dataset recorded (raises :class:`augloss.manifest.DataMismatch` naming
    the first file that differs)."""
    manifest = read_json(manifest_file)
    verify_files(manifest.get("files", {}), root, manifest["dataset"])


# --- losses ---------------------------------------------------------------------------------

def resolve_loss(name: str, baseline: dict | None, best_json: str | None) -> LossSpec:
    """The loss a training job uses, from its wildcard value (forms: :mod:`augloss.names`).

    ``ce`` and baseline names come from config (``baseline``: the job's loss description,
    :func:`augloss.experiment.baseline_loss`, whose ``orient`` is true or absent);
    ``evolved-<aug>-<k>`` from the search's ``best.json``, in every stage (a selection only
    decides which evolved losses train), oriented there already. The integrity test, which
    ``orient`` asks for, runs in the job (it needs torch): :func:`augloss.losses.orientation`.
    """
    if name == names.CE:
        return LossSpec(names.CE, "ce")
    if baseline is not None:
        return LossSpec(name, baseline["expression"], baseline["label_smoothing"],
                        baseline["class_weights"], orient=bool(baseline.get("orient", False)))
    parsed = names.parse_loss(name)
    if parsed.kind == "evolved":
        if not best_json:
            raise ValueError(f"loss {name}: the search's best.json is missing")
        e = _best_entry(best_json, name)
        return LossSpec(name, e["expression"], origin=f"search:{parsed.augmentation}",
                        key=e["key"])
    raise ValueError(f"unknown loss {name!r}: not ce, a configured baseline or "
                     f"evolved-<augmentation>-<rank>")


def _best_entry(best_json: str, name: str) -> dict:
    """The entry of evolved loss ``name`` (``evolved-<aug>-<rank>``) in its search's best.json."""
    best = read_json(best_json)["losses"]
    rank = names.parse_loss(name).rank
    if rank > len(best):
        raise ValueError(f"loss {name}: {best_json} holds only {len(best)} losses; lower "
                         f"transfer.evolved_per_augmentation or raise search.algorithm.top_k")
    return best[rank - 1]


def evolved_losses(best_files: dict[str, str], evolved_names: list[str]) -> dict:
    """Each evolved loss that goes on to transfer, once: ``{"losses": [{"name", "key",
    "expression", "selected_by"}], "aliases": {name: [other names]}}``.

    Two searches may select the same loss (the same canonical key); it is trained once per
    cell and seed under its first name (technique then rank order of ``evolved_names``), and
    the tables name every search that selected it.
    """
    by_key: dict[str, dict] = {}
    for name in evolved_names:
        e = _best_entry(best_files[names.parse_loss(name).augmentation], name)
        entry = by_key.setdefault(e["key"], {"name": name, "key": e["key"],
                                             "expression": e["expression"], "selected_by": []})
        entry["selected_by"].append(name)
    losses = list(by_key.values())
    return {"losses": losses,
            "aliases": {e["name"]: e["selected_by"][1:] for e in losses
                        if len(e["selected_by"]) > 1}}


def select_losses(metrics_files: list[str], top_k: int, metric: str,
                  key: str) -> dict:
    """Rank a stage's evolved losses by mean ``metric`` over all its cells; the best ``top_k``
    go on to the stage that receives them, whose config key ``key`` asks for ``top_k``.

    Selection uses validation accuracy by default (``final_val_acc``): choosing on test accuracy
    would leak the test set into the fine-tune stage. A diverged run scores 0 (as in the tables).
    Means are compared at the metric's resolution (each run's accuracy as a count of correct
    images, :func:`augloss.stats.quantize`), so two losses with equal counts tie and the tie is
    broken by name, never by float rounding.
    """
    from fractions import Fraction

    import pandas as pd

    from augloss.tables.collect import ITEMS

    rows = [read_json(f) for f in metrics_files]

    def exact(r) -> Fraction:
        # A diverged run scores 0, as in the tables: its last finite accuracy earns no credit.
        value = 0.0 if r.get("diverged") or r.get(metric) is None else r[metric]
        n = stats.items(r.get(ITEMS.get(metric, ""), None))
        return Fraction(round(float(value) * n), n)

    df = pd.DataFrame([{"loss": r["loss"], "expression": r["expression"],
                        "label_smoothing": r.get("label_smoothing", 0.0),
                        "value": exact(r)} for r in rows])
    evolved = df[df["loss"].map(names.is_evolved)]
    if evolved.empty:
        raise ValueError("no evolved losses among the runs to select from")
    ranked = (evolved.groupby(["loss", "expression"], as_index=False)
              .agg(exact=("value", lambda v: sum(v, Fraction(0)) / len(v)),
                   runs=("value", "size"), label_smoothing=("label_smoothing", "first")))
    ranked["neg"] = [-x for x in ranked["exact"]]
    ranked = ranked.sort_values(["neg", "loss"], kind="stable")
    ranked["mean"] = [float(x) for x in ranked["exact"]]
    # One entry per expression: two searches may find the same loss.
    ranked = ranked.drop_duplicates("expression")
    if len(ranked) < top_k:
        raise ValueError(f"only {len(ranked)} distinct evolved losses for "
                         f"{key} = {top_k}")
    selected = [{"rank": i + 1, "loss": r.loss, "expression": r.expression,
                 "label_smoothing": r.label_smoothing, "mean": r.mean, "runs": int(r.runs)}
                for i, r in enumerate(ranked.head(top_k).itertuples())]
    return {"metric": metric, "selected": selected,
            "ranking": [{"loss": r.loss, "mean": r.mean} for r in ranked.itertuples()]}


# --- provenance -------------------------------------------------------------------------------

def write_resolved_config(path: str, config: dict, overrides: dict) -> None:
    """``config.resolved.yaml``: ``config`` (defaults filled, overrides applied) as YAML that
    ``--configfile`` takes back, under a header naming the ``--config`` overrides."""
    import yaml

    from augloss.io import atomic_write_text

    header = ["# This experiment's config as the workflow last resolved it: every schema",
              "# default filled in, every --config override applied (rule resolved_config).",
              "# Snakemake reruns a job whose own part of it changed, so every finished output",
              "# was made under it (each run's metrics.json also records its own recipe).",
              "# --config overrides: " + (yaml.safe_dump(overrides, default_flow_style=True,
                                                         sort_keys=True).strip()
                                          if overrides else "none")]
    atomic_write_text(path, "\n".join(header) + "\n" +
                      yaml.safe_dump(config, sort_keys=True, default_flow_style=False))


def write_environment(path: str) -> None:
    """``provenance/environment.json``: each installed package once (``pip_freeze``; names seen
    with several versions also under ``conflicting_versions``), the science packages' versions
    (``packages``), Python, platform, snakemake, git state."""
    write_json(path, environment())
