"""Glue between the Snakemake rules and the library: what each thin script calls.

Nothing here reads Snakemake's config: every function takes plain values, so the workflow's
``params:`` carry everything a job depends on and changing a setting reruns exactly its jobs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import re
import sys
from pathlib import Path
from typing import Iterator

from augloss.io import read_json, write_json

log = logging.getLogger("augloss.workflow")

EVOLVED = re.compile(r"^evolved-(?P<aug>[a-z]+)-(?P<rank>\d+)$")
TRANSFER_BEST = re.compile(r"^transfer-best-(?P<rank>\d+)$")


def slug(name: str) -> str:
    """A path- and wildcard-safe form of a dataset name (``digits:0-4`` -> ``digits_0-4``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


@contextlib.contextmanager
def job_context(log_path: str, threads: int, gpus: int, uses_torch: bool = True
                ) -> Iterator[str]:
    """Log to ``log_path``, use ``threads`` CPU threads, claim ``gpus`` distinct GPUs.

    Yields the torch device string (``cuda`` when GPUs were claimed, else ``cpu``). Jobs that
    never touch torch (tables, audit) pass ``uses_torch=False`` and skip its ~2 s import.
    """
    from augloss.gpu import gpu_slots

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    stderr = sys.stderr
    sys.stderr = open(log_path, "a", buffering=1)
    try:
        with gpu_slots(int(gpus)) as ids:
            device = "cpu"
            if uses_torch:
                import torch

                torch.set_num_threads(max(1, int(threads)))
                device = "cuda" if ids and torch.cuda.is_available() else "cpu"
            log.info("threads %d, gpus %s, device %s", threads, ids, device)
            yield device
    except BaseException:
        logging.getLogger("augloss").exception("job failed")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()
        sys.stderr.close()
        sys.stderr = stderr


def maybe_fail(rule: str, marker_dir: str | Path) -> None:
    """Fail once on purpose when ``AUGLOSS_FAIL_ONCE`` names this job (tests ``retries:``).

    The variable holds ``<rule>`` (every job of the rule fails once) or ``<rule>@<fragment>``
    (only jobs whose ``marker_dir`` path contains ``fragment``). The first attempt leaves a
    marker in ``marker_dir`` and raises; the retry sees the marker and goes on.
    """
    wanted, _, fragment = os.environ.get("AUGLOSS_FAIL_ONCE", "").partition("@")
    if wanted != rule or fragment not in str(marker_dir):
        return
    marker = Path(marker_dir) / f".failed-once-{rule}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("injected failure\n")
        raise RuntimeError(f"injected one-off failure of rule {rule} in {marker_dir} "
                           "(AUGLOSS_FAIL_ONCE)")


def unwritable(path: str | Path) -> str | None:
    """Why ``path`` (a directory, maybe not created yet) cannot be written, or None.

    Checked before any job runs, without creating anything: the nearest existing ancestor must be
    a directory this user may write into.
    """
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() or parent.is_symlink():
            break
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable by this user"
    return None


# --- datasets -------------------------------------------------------------------------------

def prepare_dataset(name: str, root: str, splits: list[str]) -> dict:
    """Download (where possible) and check every split; return a manifest of their digests."""
    from augloss import data

    manifest = {"dataset": name, "splits": {}}
    for split in splits:
        ds = data.load(name, root, split, download=True)
        manifest["splits"][split] = {"size": len(ds), "classes": ds.num_classes,
                                     "digest": ds.digest()}
    return manifest


# --- losses ---------------------------------------------------------------------------------

def resolve_loss(name: str, baseline: dict | None, best_json: str | None,
                 selection_json: str | None) -> dict:
    """The loss spec a training job uses, from its wildcard value.

    ``ce`` and baseline names come from config (``baseline``); ``evolved-<aug>-<k>`` from the
    search's ``best.json``; ``transfer-best-<k>`` from the transfer stage's ``selection.json``.
    """
    if name == "ce":
        return {"name": "ce", "expression": None, "label_smoothing": 0.0,
                "class_weights": None, "origin": "baseline"}
    if baseline is not None:
        expression = baseline.get("expression")
        return {"name": name, "expression": expression,
                "registry": None if expression else baseline.get("loss", name),
                "label_smoothing": float(baseline.get("label_smoothing", 0.0)),
                "class_weights": baseline.get("class_weights"), "origin": "baseline"}
    m = EVOLVED.match(name)
    if m:
        if not best_json:
            raise ValueError(f"loss {name}: the search's best.json is missing")
        best = read_json(best_json)
        rank = int(m["rank"])
        if rank > len(best["losses"]):
            raise ValueError(f"loss {name}: {best_json} holds only {len(best['losses'])} "
                             f"losses; lower transfer.evolved_per_augmentation or raise "
                             f"search.algorithm.top_k")
        e = best["losses"][rank - 1]
        return {"name": name, "expression": e["expression"], "label_smoothing": 0.0,
                "class_weights": None, "origin": f"search:{m['aug']}", "key": e["key"]}
    m = TRANSFER_BEST.match(name)
    if m:
        if not selection_json:
            raise ValueError(f"loss {name}: the transfer selection is missing")
        sel = read_json(selection_json)["selected"]
        rank = int(m["rank"])
        if rank > len(sel):
            raise ValueError(f"loss {name}: {selection_json} selected only {len(sel)} losses")
        e = sel[rank - 1]
        return {"name": e["loss"], "slot": name, "expression": e["expression"],
                "label_smoothing": float(e.get("label_smoothing") or 0.0),
                "class_weights": None, "origin": f"transfer:{name}"}
    raise ValueError(f"unknown loss {name!r}: not ce, a configured baseline, "
                     f"evolved-<augmentation>-<rank> or transfer-best-<rank>")


def loss_for_job(spec: dict) -> dict:
    """The ``loss`` dict of :class:`augloss.train.Job` for a resolved spec."""
    text = spec.get("expression") or spec.get("registry") or spec["name"]
    return {"name": spec["name"], "expression": text,
            "label_smoothing": spec.get("label_smoothing", 0.0),
            "class_weights": spec.get("class_weights")}


def select_transfer(metrics_files: list[str], top_k: int, metric: str) -> dict:
    """Rank the evolved losses of the transfer stage by mean ``metric`` over all its cells.

    Selection uses validation accuracy by default (``final_val_acc``): choosing on test accuracy
    would leak the test set into the fine-tune stage.
    """
    import pandas as pd

    rows = [read_json(f) for f in metrics_files]
    df = pd.DataFrame([{"loss": r["loss"], "expression": r["expression"],
                        "label_smoothing": r.get("label_smoothing", 0.0),
                        "value": r.get(metric)} for r in rows])
    evolved = df[df["loss"].str.match(EVOLVED.pattern)]
    if evolved.empty:
        raise ValueError("no evolved losses among the transfer runs to select from")
    ranked = (evolved.groupby(["loss", "expression"], as_index=False)
              .agg(mean=("value", lambda v: float(pd.to_numeric(v).fillna(0.0).mean())),
                   runs=("value", "size"), label_smoothing=("label_smoothing", "first"))
              .sort_values(["mean", "loss"], ascending=[False, True], kind="stable"))
    # One entry per expression: two searches may find the same loss.
    ranked = ranked.drop_duplicates("expression")
    if len(ranked) < top_k:
        raise ValueError(f"only {len(ranked)} distinct evolved losses for "
                         f"finetune.from_transfer = {top_k}")
    selected = [{"rank": i + 1, "loss": r.loss, "expression": r.expression,
                 "label_smoothing": r.label_smoothing, "mean": r.mean, "runs": int(r.runs)}
                for i, r in enumerate(ranked.head(top_k).itertuples())]
    return {"metric": metric, "selected": selected,
            "ranking": [{"loss": r.loss, "mean": r.mean} for r in ranked.itertuples()]}


# --- provenance -------------------------------------------------------------------------------

def environment() -> dict:
    """Installed packages, Python, platform, snakemake version and the git state."""
    from augloss.train import code_version

    packages = sorted(f"{d.metadata['Name']}=={d.version}"
                      for d in importlib.metadata.distributions() if d.metadata["Name"])
    try:
        import snakemake

        smk = snakemake.__version__
    except ImportError:  # pragma: no cover - the workflow always has it
        smk = ""
    return {**code_version(), "python": sys.version.split()[0],
            "platform": platform.platform(), "snakemake": smk, "pip_freeze": packages}


def write_environment(path: str) -> None:
    write_json(path, environment())

