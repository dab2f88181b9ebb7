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
PIPELINES = ("auto", "tensor", "loader")


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
    # Data path: "tensor" keeps the training set as one uint8 tensor on the device and augments
    # whole batches (augloss.batch_augment); "loader" is the per-sample torchvision DataLoader;
    # "auto" takes the tensor path wherever it applies (in-memory 32 px data, not fine-tuning).
    pipeline: str = "auto"

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
            "pipeline": self.pipeline in PIPELINES,
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


def _use_tensors(cfg: "TrainConfig", technique: aug.Technique, data) -> bool:
    """Whether to train through the batched tensor pipeline (see ``TrainConfig.pipeline``)."""
    from augloss import batch_augment

    if cfg.pipeline == "loader":
        return False
    ok = getattr(data, "in_memory", False) and \
        batch_augment.supported(technique, int(data.images.shape[-1]))
    if cfg.pipeline == "tensor" and not ok:
        raise ValueError("train.pipeline: tensor needs in-memory 32 px data and a CIFAR-size "
                         "technique (finetune: false); use auto or loader")
    return ok


@torch.no_grad()
def evaluate(model: nn.Module, data, transform, batch_size: int, device: torch.device,
             workers: int = 0, amp: bool = False, tensors: aug.AugmentConfig | None = None
             ) -> list[float]:
    """Top-1 accuracy of ``model`` on ``data``, one value per copy (one for a plain model).

    ``tensors``: evaluate from the in-memory uint8 images, normalised with this config (the
    tensor pipeline), instead of through ``transform`` in a DataLoader.
    """
    from augloss import batch_augment

    model.eval()
    correct, total = None, 0
    if tensors is not None:
        images, labels = data.images, data.labels
        batches = ((batch_augment.normalise(images[i:i + batch_size].to(device), tensors),
                    labels[i:i + batch_size]) for i in range(0, len(labels), batch_size))
    else:
        batches = _loader(data, transform, batch_size, False, 0, 0, workers)
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        if logits.ndim == 2:
            logits = logits[:, None]
        hits = (logits.argmax(-1) == y[:, None]).sum(0)
        correct = hits if correct is None else correct + hits
        total += len(y)
    if correct is None:
        return [0.0] * getattr(model, "copies", 1)
    return [int(c) / max(1, total) for c in correct]


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
    return _fit(model, [loss_fn], train_data, val_data, test_data, technique, cfg, seed,
                device, checkpoint, callback, identity)[0]


def fit_population(model: nn.Module, loss_fns: list[nn.Module], train_data, val_data,
                   technique: aug.Technique, cfg: TrainConfig, seed: int,
                   device: str | torch.device = "cpu") -> list[FitResult]:
    """Train the K copies of a grouped ``model`` (:mod:`augloss.population`), copy ``k`` with
    ``loss_fns[k]``, on the same batches; one backward pass per step for all of them.

    Each copy gets the result :func:`fit` gives it alone (same batches, dropout masks and
    optimizer arithmetic), including its own divergence, abort and failure.
    """
    if getattr(model, "copies", None) != len(loss_fns):
        raise ValueError("fit_population needs a grouped model with one copy per loss")
    return _fit(model, list(loss_fns), train_data, val_data, None, technique, cfg, seed,
                device, None, None, None)


class _Copy:
    """Book-keeping of one copy: status, history and the running epoch's sums."""

    def __init__(self):
        self.status, self.reason = "completed", ""
        self.history: list[dict] = []
        self.loss_sum, self.correct, self.seen, self.lr = 0.0, 0, 0, 0.0

    @property
    def live(self) -> bool:
        return self.status == "completed"


def _copy_params(model: nn.Module, k: int) -> list[torch.Tensor]:
    return model.copy_parameters(k) if hasattr(model, "copies") else list(model.parameters())


def _fit(model, loss_fns, train_data, val_data, test_data, technique, cfg, seed, device,
         checkpoint, callback, identity) -> list[FitResult]:
    from augloss import batch_augment

    K = len(loss_fns)
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
    tensors = _use_tensors(cfg, technique, train_data)
    eval_tensors = technique.config if tensors and getattr(val_data, "in_memory", False) \
        else None
    if tensors:
        pipeline = batch_augment.BatchAugment(technique)
        images, labels = train_data.images.to(device), train_data.labels.to(device)
        gen = torch.Generator(device=device)

    copies = [_Copy() for _ in range(K)]
    start_epoch = 0
    if ckpt_path is not None:
        state = _load_checkpoint(ckpt_path, chash)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            copies[0].history = list(state["history"])
            start_epoch = int(state["epoch"])
            copies[0].status, copies[0].reason = state["status"], state["reason"]
            log.info("resumed from %s at epoch %d", ckpt_path, start_epoch)

    def batches(epoch: int, steps: int):
        """One pass over the shuffled training set (reseeded from the step it starts at)."""
        if not tensors:
            yield from _loader(train_data, technique.train_transform, cfg.batch_size, True,
                               seed, epoch * 1000 + steps, cfg.num_workers,
                               drop_last=n_train >= cfg.batch_size)
            return
        gen.manual_seed(_epoch_seed(seed, epoch * 1000 + steps))
        order = torch.randperm(n_train, generator=gen, device=device)
        bs = cfg.batch_size
        stop = n_train - n_train % bs if n_train >= bs else n_train
        for i in range(0, stop, bs):
            idx = order[i:i + bs]
            yield pipeline(images[idx], gen), labels[idx]

    images_seen = 0
    lr = learning_rate(cfg, start_epoch * per_epoch, total_steps, per_epoch)
    t_start = time.perf_counter()
    epoch = start_epoch
    while epoch < cfg.epochs and any(c.live for c in copies):
        torch.manual_seed(_epoch_seed(seed, epoch))
        model.train()
        started = [k for k, c in enumerate(copies) if c.live]
        for c in copies:
            c.loss_sum, c.correct, c.seen, c.lr = 0.0, 0, 0, lr
        steps = 0
        t_epoch = time.perf_counter()
        while steps < per_epoch and any(c.live for c in copies):
            got_batch = False
            for x, y in batches(epoch, steps):
                if steps >= per_epoch or not any(c.live for c in copies):
                    break
                got_batch = True
                step = epoch * per_epoch + steps
                lr = learning_rate(cfg, step, total_steps, per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if cuda and cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                mixed = None
                if technique.mixup:
                    alpha = technique.config.mixup_alpha
                    mixed = batch_augment.mixup(x, y, alpha, gen) if tensors else \
                        aug.mixup(x, y, alpha)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = step_model(mixed.images if mixed else x)
                if logits.ndim == 2:
                    logits = logits[:, None]
                hard = y if mixed is None else \
                    (mixed.target_a if mixed.lam >= 0.5 else mixed.target_b)
                total = None
                for k, c in enumerate(copies):
                    if not c.live:
                        continue
                    c.lr = lr
                    out = logits[:, k]
                    loss = aug.mixed_loss(loss_fns[k], out, mixed, technique.config.mixup_mode) \
                        if mixed is not None else loss_fns[k](out, y)
                    if not torch.isfinite(loss):
                        c.status, c.reason = "diverged", \
                            f"non-finite loss at epoch {epoch} step {steps}"
                        continue
                    total = loss if total is None else total + loss
                    c.loss_sum += float(loss.detach()) * len(y)
                    c.correct += int((out.detach().argmax(-1) == hard).sum())
                    c.seen += len(y)
                if total is None:
                    break
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip:
                    _clip_grad_norms(model, K, cfg.grad_clip)
                optimizer.step()
                images_seen += len(y)
                steps += 1
            if not got_batch and all(c.seen == 0 for c in copies):
                raise ValueError("the training set is empty")
        for k in started:
            if copies[k].live and not all(torch.isfinite(p).all()
                                          for p in _copy_params(model, k)):
                copies[k].status = "diverged"
                copies[k].reason = f"non-finite weights after epoch {epoch}"
        live = [k for k in started if copies[k].live]
        accs = evaluate(model, val_data, None if eval_tensors else technique.eval_transform,
                        cfg.eval_batch_size,
                        device, cfg.num_workers, amp, eval_tensors) if live else []
        for k in started:
            c = copies[k]
            train_acc = c.correct / max(1, c.seen)
            c.history.append({"epoch": epoch + 1, "train_loss": c.loss_sum / max(1, c.seen),
                              "train_acc": train_acc,
                              "val_acc": accs[k] if c.live else float("nan"), "lr": c.lr})
            for from_epoch, min_acc in cfg.abort:
                if c.live and epoch >= from_epoch and train_acc < min_acc:
                    c.status, c.reason = "aborted", (f"training accuracy {train_acc:.4f} < "
                                                     f"{min_acc} at epoch {epoch + 1}")
        epoch += 1
        dt = time.perf_counter() - t_epoch
        c0 = copies[0]
        if K == 1:
            rec = c0.history[-1]
            eta = (cfg.epochs - epoch) * dt
            log.info("epoch %d/%d loss %.4f train_acc %.4f val_acc %.4f lr %.3g %.0f img/s "
                     "ETA %s%s", epoch, cfg.epochs, rec["train_loss"], rec["train_acc"],
                     rec["val_acc"], lr, c0.seen / dt if dt > 0 else float("nan"),
                     time.strftime("%H:%M:%S", time.gmtime(eta)),
                     f" [{c0.status}: {c0.reason}]" if not c0.live else "")
        else:
            log.info("epoch %d/%d: %d of %d copies training", epoch, cfg.epochs,
                     sum(c.live for c in copies), K)
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, {"model": model.state_dict(),
                                         "optimizer": optimizer.state_dict(), "epoch": epoch,
                                         "history": c0.history, "status": c0.status,
                                         "reason": c0.reason, "config_hash": chash})
        if callback is not None:
            callback(c0.history[-1])

    results = []
    seconds = time.perf_counter() - t_start
    for k, c in enumerate(copies):
        status, reason = c.status, c.reason
        if status in ("completed", "aborted") and cfg.fail_below is not None and c.history \
                and max(h["train_acc"] for h in c.history) < cfg.fail_below:
            status, reason = "failed", f"best training accuracy below {cfg.fail_below}"
        test_acc = None
        if cfg.evaluate_test and test_data is not None and status in ("completed", "failed"):
            test_tensors = technique.config if tensors and test_data.in_memory else None
            test_acc = evaluate(model, test_data,
                                None if test_tensors else technique.eval_transform,
                                cfg.eval_batch_size, device, cfg.num_workers, amp,
                                test_tensors)[k]
        results.append(FitResult(status, c.history, test_acc, len(c.history), start_epoch,
                                 images_seen / seconds if seconds > 0 and images_seen
                                 else float("nan"), seconds, reason))
    return results


def _clip_grad_norms(model: nn.Module, K: int, max_norm: float) -> None:
    """``clip_grad_norm_`` applied to each copy's gradient on its own (block ``k`` of every
    grouped tensor); with one copy, ``clip_grad_norm_`` itself."""
    params = [p for p in model.parameters() if p.grad is not None]
    if K == 1:
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad.view(K, -1) for p in params]
    norms = torch.stack([g.norm(dim=1) for g in grads]).norm(dim=0)  # one norm per copy
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale[:, None])


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


def _deterministic(cfg_compile: bool) -> None:
    """``torch.use_deterministic_algorithms(True)`` without its 1.5 s import of the inductor.

    The public call also sets ``torch._inductor.config.deterministic``, which only matters under
    ``torch.compile``; eager jobs (the demo runs ~90 of them) set the ATen flag alone.
    """
    if cfg_compile:
        torch.use_deterministic_algorithms(True)
    else:
        torch._C._set_deterministic_algorithms(True)


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
        _deterministic(cfg_compile=bool(job.train.get("compile", False)))
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
