"""One trainer for every stage: :func:`fit` trains a model, :func:`run` a whole job to files.

* Optimizers SGD (Nesterov optional), Adam, AdamW; per-step learning rate with linear warm-up then
  cosine, step (x ``gamma`` at epoch ``milestones``) or constant; ``lr_floor`` is added to every
  step (the earlier code adds 1e-7).
* ``epochs`` of one pass over the training set, or of ``steps_per_epoch`` steps over the repeated
  set (the earlier code's 100-step "epochs").
* On CUDA: bf16 autocast and channels_last; optional ``torch.compile``. Losses always run in
  float32 (:class:`augloss.losses.ExpressionLoss`).
* Divergence guard: a non-finite loss ends the run as ``diverged`` (recorded, not a crash).
  Abort rules ``(from_epoch, min_train_acc)`` end a run early as ``aborted`` (the search's
  early-abort thresholds); ``fail_below`` marks a run ``failed`` if its best training accuracy
  stays below it.
* A checkpoint is written atomically after every epoch (the previous one kept as a fallback) and
  :func:`fit` resumes from it. Every epoch reseeds torch's generator from ``(seed, epoch)``, so a
  killed and resumed run ends with the same metrics as an uninterrupted one (byte-identical on
  the CPU).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from augloss import augment as aug
from augloss.io import atomic_path, config_hash, dataclass_from_dict, write_json

log = logging.getLogger("augloss.train")

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")
STATUSES = ("completed", "diverged", "aborted", "failed")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (a recipe). Field defaults are the WRN standard recipe's."""

    epochs: int = 200
    steps_per_epoch: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    schedule: str = "cosine"
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.2
    lr_floor: float = 0.0
    total_steps: int | None = None  # schedule length (default epochs x steps per epoch)
    grad_clip: float | None = None
    abort: tuple[tuple[int, float], ...] = ()
    fail_below: float | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    num_workers: int = 0
    evaluate_test: bool = True

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "abort", tuple((int(e), float(a)) for e, a in self.abort))
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "eval_batch_size": self.eval_batch_size >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0, "warmup_steps": self.warmup_steps >= 0,
            "num_workers": self.num_workers >= 0,
            "steps_per_epoch": self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "total_steps": self.total_steps is None or self.total_steps >= 1,
            "optimizer": self.optimizer in OPTIMIZERS, "schedule": self.schedule in SCHEDULES,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"train.{key}: invalid value {getattr(self, key)!r}")
        for key in ("epochs", "batch_size", "eval_batch_size", "warmup_steps", "num_workers"):
            if not isinstance(getattr(self, key), int) or isinstance(getattr(self, key), bool):
                raise ValueError(f"train.{key} must be an integer, got {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return dataclass_from_dict(cls, d, "train")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"], d["milestones"] = list(self.betas), list(self.milestones)
        d["abort"] = [list(a) for a in self.abort]
        return d


def learning_rate(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps + cfg.lr_floor
    if cfg.schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))
    elif cfg.schedule == "step":
        epoch = step // steps_per_epoch
        lr = cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    else:
        lr = cfg.lr
    return lr + cfg.lr_floor


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps,
                                weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps,
                             weight_decay=cfg.weight_decay)


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, data, transform):
        self.data, self.transform = data, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.data[i]
        return self.transform(x), y


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 12345) % (2**63 - 1)


def _loader(data, transform, batch_size: int, shuffle: bool, seed: int, epoch: int,
            workers: int, drop_last: bool = False):
    g = torch.Generator()
    g.manual_seed(_epoch_seed(seed, epoch))
    return torch.utils.data.DataLoader(
        _Transformed(data, transform), batch_size=batch_size, shuffle=shuffle, generator=g,
        num_workers=workers, drop_last=drop_last, persistent_workers=False,
        pin_memory=torch.cuda.is_available())


@torch.no_grad()
def evaluate(model: nn.Module, data, transform, batch_size: int, device: torch.device,
             workers: int = 0, amp: bool = False) -> float:
    """Top-1 accuracy of ``model`` on ``data``."""
    model.eval()
    correct = total = 0
    loader = _loader(data, transform, batch_size, False, 0, 0, workers)
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        correct += int((logits.argmax(-1) == y).sum())
        total += len(y)
    return correct / max(1, total)


@dataclass
class FitResult:
    status: str
    history: list[dict]
    test_acc: float | None
    epochs_run: int
    resumed_from: int
    images_per_s: float
    train_seconds: float
    reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def val_accs(self) -> list[float]:
        return [h["val_acc"] for h in self.history]


# --- checkpoints ----------------------------------------------------------------------------

def _save_checkpoint(path: Path, state: dict) -> None:
    prev = path.with_name(path.name + ".prev")
    with atomic_path(path.with_name(path.name + ".new")) as tmp:
        torch.save(state, tmp)
    if path.exists():
        os.replace(path, prev)
    os.replace(path.with_name(path.name + ".new"), path)


def _load_checkpoint(path: Path, expect_hash: str) -> dict | None:
    """The newest readable checkpoint with the expected config hash, or None."""
    for candidate in (path, path.with_name(path.name + ".prev")):
        if not candidate.exists():
            continue
        try:
            state = torch.load(candidate, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or corrupted: fall back to the previous one
            log.warning("checkpoint %s is unreadable (%s); discarding it", candidate, exc)
            continue
        if not isinstance(state, dict) or state.get("config_hash") != expect_hash:
            log.warning("checkpoint %s belongs to another configuration; ignoring it", candidate)
            continue
        return state
    return None


# --- the loop -------------------------------------------------------------------------------

def fit(model: nn.Module, loss_fn: nn.Module, train_data, val_data, test_data,
        technique: aug.Technique, cfg: TrainConfig, seed: int,
        device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
        callback: Callable[[dict], None] | None = None, identity: Any = None) -> FitResult:
    """Train ``model`` with ``loss_fn``; resume from ``checkpoint`` if it holds this job's state.

    ``identity`` (any JSON-able value) names the job in the checkpoint's config hash, so a
    checkpoint of another job is never resumed. ``callback(epoch_record)`` runs after each
    epoch's checkpoint (tests raise from it to simulate a kill).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    amp = cfg.amp and cuda
    torch.manual_seed(_epoch_seed(seed, -1))
    model.to(device)
    if cuda and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(cfg, model)
    step_model = torch.compile(model) if cfg.compile else model
    n_train = len(train_data)
    per_epoch = cfg.steps_per_epoch or max(1, n_train // cfg.batch_size)
    total_steps = cfg.total_steps or per_epoch * cfg.epochs
    chash = config_hash({"train": cfg.to_dict(), "seed": seed, "identity": identity,
                         "augment": technique.config.to_dict(), "technique": technique.name})
    ckpt_path = Path(checkpoint) if checkpoint else None

    history: list[dict] = []
    start_epoch = 0
    status, reason = "completed", ""
    if ckpt_path is not None:
        state = _load_checkpoint(ckpt_path, chash)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])
            status, reason = state["status"], state["reason"]
            log.info("resumed from %s at epoch %d", ckpt_path, start_epoch)

    images = 0
    lr = learning_rate(cfg, start_epoch * per_epoch, total_steps, per_epoch)
    t_start = time.perf_counter()
    epoch = start_epoch
    while epoch < cfg.epochs and status == "completed":
        torch.manual_seed(_epoch_seed(seed, epoch))
        model.train()
        loss_sum, correct, seen, steps = 0.0, 0, 0, 0
        t_epoch = time.perf_counter()
        while steps < per_epoch and status == "completed":
            loader = _loader(train_data, technique.train_transform, cfg.batch_size, True, seed,
                             epoch * 1000 + steps, cfg.num_workers,
                             drop_last=n_train >= cfg.batch_size)
            for x, y in loader:
                if steps >= per_epoch:
                    break
                step = epoch * per_epoch + steps
                lr = learning_rate(cfg, step, total_steps, per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if cuda and cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                mixed = aug.mixup(x, y, technique.config.mixup_alpha) if technique.mixup else None
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = step_model(mixed.images if mixed else x)
                if mixed is not None:
                    loss = aug.mixed_loss(loss_fn, logits, mixed, technique.config.mixup_mode)
                    hard = mixed.target_a if mixed.lam >= 0.5 else mixed.target_b
                else:
                    loss = loss_fn(logits, y)
                    hard = y
                if not torch.isfinite(loss):
                    status, reason = "diverged", f"non-finite loss at epoch {epoch} step {steps}"
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.detach().argmax(-1) == hard).sum())
                seen += len(y)
                steps += 1
            if seen == 0 and status == "completed":
                raise ValueError("the training set is empty")
        images += seen
        if status == "completed" and not all(torch.isfinite(p).all() for p in model.parameters()):
            status, reason = "diverged", f"non-finite weights after epoch {epoch}"
        train_acc = correct / max(1, seen)
        val_acc = evaluate(model, val_data, technique.eval_transform, cfg.eval_batch_size,
                           device, cfg.num_workers, amp) if status == "completed" else float("nan")
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen),
                  "train_acc": train_acc, "val_acc": val_acc, "lr": lr}
        history.append(record)
        for from_epoch, min_acc in cfg.abort:
            if status == "completed" and epoch >= from_epoch and train_acc < min_acc:
                status, reason = "aborted", (f"training accuracy {train_acc:.4f} < {min_acc} "
                                             f"at epoch {epoch + 1}")
        epoch += 1
        dt = time.perf_counter() - t_epoch
        rate = seen / dt if dt > 0 else float("nan")
        eta = (cfg.epochs - epoch) * dt
        log.info("epoch %d/%d loss %.4f train_acc %.4f val_acc %.4f lr %.3g %.0f img/s ETA %s%s",
                 epoch, cfg.epochs, record["train_loss"], train_acc, val_acc, lr, rate,
                 time.strftime("%H:%M:%S", time.gmtime(eta)),
                 f" [{status}: {reason}]" if status != "completed" else "")
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, {"model": model.state_dict(),
                                         "optimizer": optimizer.state_dict(), "epoch": epoch,
                                         "history": history, "status": status, "reason": reason,
                                         "config_hash": chash})
        if callback is not None:
            callback(record)

    if status in ("completed", "aborted") and cfg.fail_below is not None and history and \
            max(h["train_acc"] for h in history) < cfg.fail_below:
        status, reason = "failed", f"best training accuracy below {cfg.fail_below}"
    test_acc = None
    if cfg.evaluate_test and test_data is not None and status in ("completed", "failed"):
        test_acc = evaluate(model, test_data, technique.eval_transform, cfg.eval_batch_size,
                            device, cfg.num_workers, amp)
    seconds = time.perf_counter() - t_start
    return FitResult(status, history, test_acc, len(history), start_epoch,
                     images / seconds if seconds > 0 and images else float("nan"), seconds, reason)


# --- a whole job ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """Everything one training run depends on (what a workflow rule passes in ``params``)."""

    stage: str
    dataset: str
    augmentation: str
    loss: dict  # {"name", "expression" (optional), "label_smoothing", "class_weights"}
    model: dict  # {"name", options...}
    train: dict
    seed: int
    augment: dict = field(default_factory=dict)
    data_root: str = "data"
    eval_split: str = "val"
    train_split: str = "train"

    def to_dict(self) -> dict:
        return asdict(self)


def _resolve_loss(spec: dict):
    from augloss import losses

    name = spec.get("name", "ce")
    text = spec.get("expression") or name
    loss = losses.get(text, label_smoothing=float(spec.get("label_smoothing", 0.0)),
                      class_weights=spec.get("class_weights"))
    return name, loss


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def code_version() -> dict:
    """git commit and dirty flag of the augloss checkout (empty when not a checkout)."""
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else False
    from augloss import __version__

    return {"augloss": __version__, "git_commit": commit, "git_dirty": dirty}


def provenance(device: torch.device, started: float, ended: float, extra: dict) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return ""

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return {
        **code_version(), "python": sys.version.split()[0], "platform": platform.platform(),
        "hostname": socket.gethostname(), "torch": torch.__version__,
        "torchvision": v("torchvision"), "timm": v("timm"), "numpy": v("numpy"),
        "device": str(device), "gpu_name": gpu,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended)), **extra,
    }


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


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
        torch.use_deterministic_algorithms(True)
    train_set = data.load(job.dataset, job.data_root, job.train_split)
    val_set = data.load(job.dataset, job.data_root, job.eval_split)
    cfg = TrainConfig.from_dict(job.train)
    test_set = data.load(job.dataset, job.data_root, "test") if cfg.evaluate_test else None
    technique = aug.build(job.augmentation, aug.AugmentConfig(**job.augment))
    loss_name, loss_fn = _resolve_loss(job.loss)
    options = {k: v for k, v in job.model.items() if k != "name"}
    if init_weights:
        options["weights"] = init_weights
    torch.manual_seed(_epoch_seed(job.seed, -2))
    model = models.create(job.model["name"], train_set.num_classes, **options)
    identity = {k: v for k, v in job.to_dict().items() if k not in ("data_root",)}
    if init_weights:
        identity["init_weights"] = os.path.basename(str(init_weights))
    result = fit(model, loss_fn, train_set, val_set, test_set, technique, cfg, job.seed, dev,
                 out_dir / "checkpoint.pt", callback, identity=identity)
    vals = [v for v in result.val_accs if not math.isnan(v)]
    metrics = {
        "stage": job.stage, "dataset": job.dataset, "augmentation": job.augmentation,
        "loss": loss_name, "expression": str(loss_fn.expr), "loss_key": loss_fn.expr.key,
        "label_smoothing": loss_fn.label_smoothing, "model": job.model["name"],
        "seed": job.seed, "epochs": cfg.epochs, "epochs_run": result.epochs_run,
        "status": result.status, "diverged": result.status == "diverged",
        "reason": result.reason, "final_val_acc": vals[-1] if vals else None,
        "best_val_acc": max(vals) if vals else None, "test_acc": result.test_acc,
        "curves": {k: [h[k] for h in result.history] for k in
                   ("train_loss", "train_acc", "val_acc", "lr")},
        # The job's configuration without its seed: equal for all seeds of one table cell.
        "config_hash": config_hash({k: v for k, v in identity.items() if k != "seed"}),
        "run_hash": config_hash(identity), "code_version": code_version()["augloss"],
        "data": {"train": train_set.digest()[:16], "val": val_set.digest()[:16],
                 "test": test_set.digest()[:16] if test_set is not None else None},
        "num_parameters": models.count_parameters(model),
    }
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
