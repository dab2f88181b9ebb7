"""A whole training job to files: :class:`Job`, everything one run depends on, and :func:`run`,
which trains it (:func:`augloss.train.fit`) and writes ``metrics.json`` and ``provenance.json``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from augloss import augment as aug
from augloss import compat
from augloss.batches import epoch_seed
from augloss.config import AugmentConfig, LossSpec, TrainConfig
from augloss.io import config_hash, write_json
from augloss.provenance import code_version, provenance
from augloss.train import fit


@dataclass(frozen=True)
class Job:
    """Everything one training run depends on (what a workflow rule passes in ``params``)."""

    stage: str
    dataset: str
    augmentation: str
    loss: LossSpec  # a dict is read with LossSpec.from_dict
    model: dict  # {"name", options...}
    train: dict
    seed: int
    augment: dict = field(default_factory=dict)
    data_root: str = "data"
    # The split validated on every epoch; None when the run trains on it (``trainval``).
    eval_split: str | None = "val"
    train_split: str = "train"
    # Fine-tuning a timm model: None keeps ``augment``'s pipeline; a dict (possibly empty) takes
    # size, mean/std, interpolation and crop from the weights' pretrained config, the dict's
    # keys overriding (augloss.models.preprocessing).
    preprocessing: dict | None = None

    def __post_init__(self):
        if isinstance(self.loss, dict):
            object.__setattr__(self, "loss", LossSpec.from_dict(self.loss))
        if self.train_split not in ("train", "trainval"):
            raise ValueError(f"train_split must be train or trainval, got {self.train_split!r}")
        if self.train_split == "trainval" and self.eval_split == "val":
            # every training image is trained on: there is no validation set left to score
            object.__setattr__(self, "eval_split", None)

    def to_dict(self) -> dict:
        """The job as JSON values; the loss by its identity (its origin does not count)."""
        d = {**asdict(replace(self, loss=None)), "loss": self.loss.identity()}
        if d["preprocessing"] is None:  # CIFAR-size jobs: their hashes predate the field
            del d["preprocessing"]
        return d


def _pipeline(job: Job, model: nn.Module, init_weights: str | None
              ) -> tuple[AugmentConfig, dict | None]:
    """The job's augmentation config and, for fine-tuning, the resolved preprocessing record."""
    from augloss import models

    augment = AugmentConfig(**job.augment)
    if job.preprocessing is None:
        return augment, None
    pre = models.preprocessing(model, job.preprocessing)
    pre["weights_file"] = os.path.basename(str(init_weights or job.model.get("weights") or "")) \
        or None
    pre["pretrained"] = "synthetic" if job.model.get("pretrained") == "synthetic" else \
        bool(init_weights or job.model.get("weights") or job.model.get("pretrained"))
    augment = replace(augment, image_size=int(pre["image_size"]), normalize="mean_std",
                      mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                      interpolation=pre["interpolation"], crop_pct=float(pre["crop_pct"]))
    return augment, pre


def _deterministic(cfg_compile: bool) -> None:
    """Deterministic kernels (:func:`augloss.compat.deterministic_algorithms`)."""
    compat.deterministic_algorithms(cfg_compile)


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def identity(job: Job, init_weights: str | None = None) -> dict:
    """What a run's result depends on (its ``run_hash``): the job without its data root, and
    the name of the weights it starts from."""
    out = {k: v for k, v in job.to_dict().items() if k not in ("data_root",)}
    if init_weights:
        out["init_weights"] = os.path.basename(str(init_weights))
    return out


#: Where a finished run keeps a copy of its outputs (not a declared output: Snakemake leaves it
#: when it removes a job's outputs before rerunning the job). The copies are named
#: ``metrics``/``provenance`` (no ``.json``), so nothing that collects ``metrics.json`` files
#: counts them.
FINISHED = ".finished"
_KEPT = {"metrics.json": "metrics", "provenance.json": "provenance"}


def source_digest() -> str:
    """SHA-256 of the augloss package's own source files (the code a run ran, committed or
    not; a git commit cannot tell uncommitted edits apart)."""
    import hashlib

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def finished_key(job: Job, init_weights: str | None, data: str,
                 code_files: tuple[str, ...] = ()) -> str:
    """A finished run may stand in for a rerun only when this matches: the run's identity, the
    code (:func:`source_digest` and ``code_files``, e.g. the job's script), the dataset
    manifest's digest ``data`` and the bytes of the weights it starts from (``init_weights``
    and the model's own ``weights`` file: a rerun pretraining or a re-fetched file changes
    them, not their names)."""
    from augloss.manifest import file_sha256

    weights = [file_sha256(w) for w in (init_weights, job.model.get("weights")) if w]
    return config_hash({"run": identity(job, init_weights), "data": data, "weights": weights,
                        "code": [source_digest(), *(file_sha256(f) for f in code_files)]})


def restore_finished(out_dir: str | Path, key: str) -> dict | None:
    """The run's metrics, its outputs copied back from ``out_dir/.finished`` (atomically), when
    it finished before under the same :func:`finished_key`; else None."""
    import shutil

    from augloss.io import atomic_path, read_json

    kept = Path(out_dir) / FINISHED
    try:
        if (kept / "key").read_text().strip() != key:
            return None
    except OSError:
        return None
    for name in ("provenance.json", "metrics.json"):  # metrics last: it marks the run done
        with atomic_path(Path(out_dir) / name) as tmp:
            shutil.copyfile(kept / _KEPT[name], tmp)
    return read_json(Path(out_dir) / "metrics.json")


def keep_finished(out_dir: str | Path, key: str) -> None:
    """Copy a finished run's outputs to ``out_dir/.finished`` under ``key``."""
    import shutil

    from augloss.io import atomic_path, atomic_write_text

    kept = Path(out_dir) / FINISHED
    kept.mkdir(exist_ok=True)
    (kept / "key").unlink(missing_ok=True)  # the key goes last: a half-kept copy never matches
    for name in ("metrics.json", "provenance.json"):
        with atomic_path(kept / _KEPT[name]) as tmp:
            shutil.copyfile(Path(out_dir) / name, tmp)
    atomic_write_text(kept / "key", key + "\n")


def run(job: Job, out_dir: str | Path, device: str = "auto",
        callback: Callable[[dict], None] | None = None, init_weights: str | None = None,
        weights_out: str | Path | None = None) -> dict:
    """Train ``job`` and write ``metrics.json`` (deterministic) and ``provenance.json`` (not).

    ``out_dir/checkpoint.pt`` holds the resumable state; it is removed once metrics are written.
    ``init_weights`` is a local weights file for the model (the fine-tune stage's pretrained net);
    ``weights_out`` saves the trained weights as safetensors (loadable through the same path).
    """
    from augloss import data, models

    started = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    if dev.type == "cpu":
        _deterministic(cfg_compile=bool(job.train.get("compile", False)))
    # Never download here: prepare_dataset did, once (jobs may run on offline compute nodes).
    train_set = data.load(job.dataset, job.data_root, job.train_split, download=False)
    val_set = data.load(job.dataset, job.data_root, job.eval_split, download=False) \
        if job.eval_split is not None else None
    cfg = TrainConfig.from_dict(job.train)
    test_set = (data.load(job.dataset, job.data_root, "test", download=False)
                if cfg.evaluate_test else None)
    from augloss import losses

    loss_name = job.loss.name
    # What trains: the expression as written, or (orient) as the integrity test orients it.
    oriented = losses.orientation(job.loss.expression, orient=job.loss.orient)
    if oriented.warning() is not None:
        import logging

        logging.getLogger("augloss.runs").warning("loss %s: %s", loss_name, oriented.warning())
    loss_fn = losses.get(oriented.spec, label_smoothing=job.loss.label_smoothing,
                         class_weights=job.loss.class_weights)
    options = {k: v for k, v in job.model.items() if k != "name"}
    if init_weights:
        options["weights"] = init_weights
    torch.manual_seed(epoch_seed(job.seed, -2))
    model = models.create(job.model["name"], train_set.num_classes, **options)
    augment, pre = _pipeline(job, model, init_weights)
    technique = aug.build(job.augmentation, augment)
    ident = identity(job, init_weights)
    result = fit(model, loss_fn, train_set, val_set, test_set, technique, cfg, job.seed, dev,
                 out_dir / "checkpoint.pt", callback, identity=ident)
    vals = [v for v in result.val_accs if not math.isnan(v)]
    metrics = {
        "stage": job.stage, "dataset": job.dataset, "augmentation": job.augmentation,
        "loss": loss_name, "expression": str(loss_fn.expr), "loss_key": loss_fn.expr.key,
        "label_smoothing": loss_fn.label_smoothing, "model": job.model["name"],
        # "expression" is what trained; this, how it came from the loss as written.
        "loss_orientation": oriented.record(),
        "seed": job.seed, "epochs": cfg.epochs, "epochs_run": result.epochs_run,
        "recipe": cfg.to_dict(),  # the whole recipe, every key resolved (amp: CUDA only)
        "status": result.status, "diverged": result.status == "diverged",
        "reason": result.reason, "final_val_acc": vals[-1] if vals else None,
        "best_val_acc": max(vals) if vals else None, "test_acc": result.test_acc,
        # Images behind each accuracy: its resolution (ties are decided on counts) and its
        # binomial standard error, both stated under every table.
        "val_n": len(val_set) if val_set is not None else None,
        "test_n": len(test_set) if test_set is not None else None,
        "train_split": job.train_split, "train_n": len(train_set),
        "curves": {k: [h[k] for h in result.history] for k in
                   ("train_loss", "train_acc", "val_acc", "lr")},
        # The job's configuration without its seed: equal for all seeds of one table cell.
        "config_hash": config_hash({k: v for k, v in ident.items() if k != "seed"}),
        "run_hash": config_hash(ident), "code_version": code_version()["augloss"],
        "data": {"train": train_set.digest()[:16],
                 "val": val_set.digest()[:16] if val_set is not None else None,
                 "test": test_set.digest()[:16] if test_set is not None else None},
        "num_parameters": models.count_parameters(model),
    }
    if pre is not None:
        metrics["preprocessing"] = pre
    metrics = _finite(metrics)
    if weights_out:
        models.save_weights(model, weights_out)
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "provenance.json", provenance(
        dev, started, time.time(), {"images_per_s": result.images_per_s,
                                    "train_seconds": result.train_seconds,
                                    "resumed_from_epoch": result.resumed_from,
                                    "config_hash": metrics["config_hash"]}))
    for leftover in ("checkpoint.pt", "checkpoint.pt.prev"):
        (out_dir / leftover).unlink(missing_ok=True)
    return metrics


def _finite(obj):
    """Replace NaN/inf floats by None so metrics.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
