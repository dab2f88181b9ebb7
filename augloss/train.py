"""One trainer for every stage: :func:`fit` trains a model, :func:`augloss.runs.run` a whole job to files.

* Optimizers SGD (Nesterov optional), Adam, AdamW (torch's arithmetic, :mod:`augloss.optim`,
  without the 2 s import of ``torch._dynamo`` that ``torch.optim`` costs every job); per-step learning rate with linear warm-up then
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from augloss import augment as aug
from augloss import optim
from augloss.batches import (Draws, epoch_seed, evaluate, loader_batches, tensor_batches,
                             use_tensors)
from augloss.config import TrainConfig
from augloss.config import AugmentConfig
from augloss.io import atomic_path, config_hash
from augloss.progress import Progress

log = logging.getLogger("augloss.train")

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


def _optimizer(cfg: TrainConfig, model: nn.Module) -> optim.Optimizer:
    """torch's SGD / Adam / AdamW arithmetic without importing torch._dynamo (:mod:`.optim`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return optim.create("sgd", params, lr=cfg.lr, momentum=cfg.momentum,
                            nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    return optim.create(cfg.optimizer, params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps,
                        weight_decay=cfg.weight_decay)


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
        callback: Callable[[dict], None] | None = None, identity: Any = None,
        epoch_log_level: int = logging.INFO) -> FitResult:
    """Train ``model`` with ``loss_fn``; resume from ``checkpoint`` if it holds this job's state.

    ``identity`` (any JSON-able value) names the job in the checkpoint's config hash, so a
    checkpoint of another job is never resumed. ``callback(epoch_record)`` runs after each
    epoch's checkpoint (tests raise from it to simulate a kill). The line logged per epoch
    (metrics, images/s, ETA) goes out at ``epoch_log_level``: the search's surrogate trainings,
    hundreds of thousands per search, log theirs at DEBUG.
    """
    return _fit(model, [loss_fn], train_data, val_data, test_data, technique, cfg, seed,
                device, checkpoint, callback, identity, epoch_log_level)[0]


def fit_population(model: nn.Module, loss_fns: list[nn.Module], train_data, val_data,
                   technique: aug.Technique | Sequence[aug.Technique], cfg: TrainConfig,
                   seed: int | Sequence[int], device: str | torch.device = "cpu",
                   epoch_log_level: int = logging.INFO) -> list[FitResult]:
    """Train the K copies of a grouped ``model`` (:mod:`augloss.population`), copy ``k`` with
    ``loss_fns[k]``; one backward pass per step for all of them.

    One ``seed`` and one ``technique``: the copies train on the same batches. One seed or one
    technique **per copy** (a sequence): the copies are independent -- copy ``k`` draws its
    own batches, augmentation, mixup and dropout from its own seed, exactly as its own
    :func:`fit` would (its random states are kept apart, :class:`augloss.population.CopyRNG`),
    and reads them through its own stem. The techniques must then share one
    :class:`augloss.config.AugmentConfig` (one input size and normalisation for the shared
    validation pass).

    Each copy gets the result :func:`fit` gives it alone (same batches, dropout masks and
    optimizer arithmetic), including its own divergence, abort and failure.
    """
    if getattr(model, "copies", None) != len(loss_fns):
        raise ValueError("fit_population needs a grouped model with one copy per loss")
    k = len(loss_fns)
    seeds = [int(s) for s in seed] if not isinstance(seed, int) else None
    techs = list(technique) if not isinstance(technique, aug.Technique) else None
    if seeds is not None or techs is not None:
        seeds = seeds if seeds is not None else [int(seed)] * k
        techs = techs if techs is not None else [technique] * k
        if len(seeds) != k or len(techs) != k:
            raise ValueError(f"fit_population: {len(seeds)} seeds and {len(techs)} techniques "
                             f"for {k} copies")
        configs = {t.config for t in techs}
        if len(configs) > 1:
            raise ValueError("independent copies must share one augmentation config (one "
                             "input size and normalisation for the validation pass)")
        return _fit(model, list(loss_fns), train_data, val_data, None, techs[0], cfg, seeds[0],
                    device, None, None, None, epoch_log_level,
                    independent=(seeds, techs))
    return _fit(model, list(loss_fns), train_data, val_data, None, technique, cfg, seed,
                device, None, None, None, epoch_log_level)


class _Copy:
    """Book-keeping of one copy: status, history and the running epoch's sums."""

    def __init__(self):
        self.status, self.reason = "completed", ""
        self.history: list[dict] = []
        self.seen, self.lr = 0, 0.0
        self.sums = self.bad_step = None  # device tensors: [loss sum, correct, images], step

    def start_epoch(self, device: torch.device, lr: float) -> None:
        """Zero the epoch's sums. They stay on the device (loss sum, correct predictions, the
        first step with a non-finite loss): no training step waits for the GPU."""
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.seen, self.lr = 0, lr

    @property
    def loss_sum(self) -> float:
        return float(self.sums[0]) if self.sums is not None else 0.0

    @property
    def correct(self) -> int:
        return int(self.sums[1]) if self.sums is not None else 0

    @property
    def counted(self) -> int:
        """Training images of the epoch's steps before any non-finite loss."""
        return int(self.sums[2]) if self.sums is not None else 0

    @property
    def live(self) -> bool:
        return self.status == "completed"


def _copy_params(model: nn.Module, k: int) -> list[torch.Tensor]:
    return model.copy_parameters(k) if hasattr(model, "copies") else list(model.parameters())


@dataclass
class _Loop:
    """What one training run's loop works on (built once by :func:`_setup`)."""

    model: nn.Module
    step_model: nn.Module  # the model, or its torch.compile wrapper
    optimizer: optim.Optimizer
    loss_fns: list
    technique: aug.Technique
    cfg: TrainConfig
    seed: int
    device: torch.device
    amp: bool
    per_epoch: int
    total_steps: int
    batches: Callable[[int, int], Iterator]  # (epoch, step) -> (x, y) batches
    draws: Draws | None  # the tensor pipeline's random sources (None: torch's global one)
    eval_tensors: AugmentConfig | None
    copies: list[_Copy]
    images_seen: int = 0
    # independent copies (fit_population with a seed or technique per copy): each copy's
    # seed, technique, random sources and random state; None: the copies share one batch
    seeds: list[int] | None = None
    techniques: list[aug.Technique] | None = None
    copy_draws: list[Draws | None] | None = None
    rng: Any = None  # augloss.population.CopyRNG

    def any_live(self) -> bool:
        return any(c.live for c in self.copies)


def _setup(model, loss_fns, train_data, val_data, technique, cfg, seed, device,
           independent=None) -> _Loop:
    device = torch.device(device)
    cuda = device.type == "cuda"
    torch.manual_seed(epoch_seed(seed, -1))
    model.to(device)
    if cuda and cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    optimizer = _optimizer(cfg, model)
    per_epoch = cfg.steps_per_epoch or max(1, len(train_data) // cfg.batch_size)
    tensors = use_tensors(cfg, technique, train_data)
    run = _Loop(model, torch.compile(model) if cfg.compile else model, optimizer,
                list(loss_fns), technique, cfg, seed, device, cfg.amp and cuda, per_epoch,
                cfg.total_steps or per_epoch * cfg.epochs, None, None,
                technique.config if tensors and getattr(val_data, "in_memory", False) else None,
                [_Copy() for _ in loss_fns])
    if independent is None:
        run.draws = Draws(torch.Generator(device=device)) if tensors else None
        run.batches = tensor_batches(train_data, technique, cfg, seed, device, run.draws) \
            if tensors else loader_batches(train_data, technique, cfg, seed)
        return run
    from augloss.population import CopyRNG

    run.seeds, run.techniques = independent
    if any(use_tensors(cfg, t, train_data) != tensors for t in run.techniques):
        raise ValueError("independent copies must all use the tensor pipeline, or none")
    run.rng = model.copy_rng = CopyRNG(len(loss_fns), device)
    run.copy_draws, each = [], []
    # the training set on the device once, for every copy
    shared = (train_data.images.to(device), train_data.labels.to(device)) if tensors else None
    for k, (s, t) in enumerate(zip(run.seeds, run.techniques)):
        run.rng.seed(k, epoch_seed(s, -1))
        d = Draws(torch.Generator(device=device)) if tensors else None
        run.copy_draws.append(d)
        each.append(tensor_batches(train_data, t, cfg, s, device, d, shared) if tensors
                    else loader_batches(train_data, t, cfg, s))
    run.batches = _independent_batches(run, each)
    return run


def _independent_batches(run: _Loop, each: list[Callable]) -> Callable[[int, int], Iterator]:
    """Batches of independent copies: per step, a list of every copy's own ``(x, y)`` (None
    for a copy that has stopped), each drawn under that copy's random state."""
    def batches(epoch: int, steps: int) -> Iterator:
        its: list[Iterator | None] = []
        for k, b in enumerate(each):
            with run.rng.active(k):
                its.append(iter(b(epoch, steps)) if run.copies[k].live else None)
        while True:
            xs, ys = [], []
            for k, it in enumerate(its):
                if it is None or not run.copies[k].live:
                    xs.append(None)
                    ys.append(None)
                    continue
                with run.rng.active(k):
                    batch = next(it, None)
                if batch is None:  # the pass is over (every copy's pass has the same length)
                    return
                xs.append(batch[0])
                ys.append(batch[1])
            if all(x is None for x in xs):
                return
            yield xs, ys

    return batches


def _train_step(run: _Loop, x, y, epoch: int, steps: int, lr: float) -> bool:
    """One optimizer step of every live copy; False when no copy is left to step.

    ``x``/``y``: one batch the copies share, or (independent copies) a list of every copy's
    own batch, None for a stopped copy."""
    from augloss import batch_augment

    for group in run.optimizer.param_groups:
        group["lr"] = lr
    shared = run.seeds is None
    xs, ys = ([x], [y]) if shared else (list(x), list(y))
    mixed: list = [None] * len(xs)
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        if xi is None:
            continue
        xi, yi = xi.to(run.device, non_blocking=True), yi.to(run.device, non_blocking=True)
        if run.device.type == "cuda" and run.cfg.channels_last:
            xi = xi.contiguous(memory_format=torch.channels_last)
        xs[i], ys[i] = xi, yi
        technique = run.technique if shared else run.techniques[i]
        if technique.mixup:
            alpha = technique.config.mixup_alpha
            draws = run.draws if shared else run.copy_draws[i]
            if draws is None:  # the per-sample path draws from torch's global generator
                if shared:
                    mixed[i] = aug.mixup(xi, yi, alpha)
                else:
                    with run.rng.active(i):
                        mixed[i] = aug.mixup(xi, yi, alpha)
            else:
                mixed[i] = batch_augment.mixup(xi, yi, alpha, draws.gen, draws.host)
    inputs = [m.images if m is not None else xi for m, xi in zip(mixed, xs)]
    if shared:
        batch = inputs[0]
    else:
        live = next(t for t in inputs if t is not None)
        batch = torch.cat([t if t is not None else torch.zeros_like(live) for t in inputs], 1)
        for i in range(len(ys)):
            if ys[i] is None:
                ys[i] = torch.zeros(len(live), dtype=torch.long, device=live.device)
    if hasattr(run.model, "live"):  # a stopped copy computes nothing (StackedSurrogates)
        run.model.live = [c.live for c in run.copies]
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.amp):
        logits = run.step_model(batch)
    if logits.ndim == 2:
        logits = logits[:, None]  # a plain model is a population of one
    total = None
    n = len(batch)
    for k, c in enumerate(run.copies):
        if not c.live:
            continue
        c.lr = lr
        i = 0 if shared else k
        out, yk, mk = logits[:, k], ys[i], mixed[i]
        technique = run.technique if shared else run.techniques[k]
        hard = yk if mk is None else (mk.target_a if mk.lam >= 0.5 else mk.target_b)
        loss = aug.mixed_loss(run.loss_fns[k], out, mk, technique.config.mixup_mode) \
            if mk is not None else run.loss_fns[k](out, yk)
        # No host synchronisation: the sums and the first non-finite step stay on the device,
        # read every FINITE_CHECK_EVERY steps and at the epoch's end (_check_finite).
        loss_d = loss.detach()
        finite = (c.bad_step < 0) & torch.isfinite(loss_d)  # steps before any divergence
        c.sums += torch.stack([
            torch.where(finite, loss_d.double() * n, 0.0),
            torch.where(finite, (out.detach().argmax(-1) == hard).sum().double(), 0.0),
            finite.double() * n])
        c.bad_step = torch.where((c.bad_step < 0) & ~torch.isfinite(loss_d),
                                 torch.full_like(c.bad_step, steps), c.bad_step)
        c.seen += n
        total = loss if total is None else total + loss  # copies share no parameters
    if total is None:
        return False
    run.optimizer.zero_grad(set_to_none=True)
    total.backward()
    if run.cfg.grad_clip:
        _clip_grad_norms(run.model, len(run.copies), run.cfg.grad_clip)
    run.optimizer.step()
    run.images_seen += n
    return True


def train_epoch(run: _Loop, epoch: int, lr: float) -> float:
    """One epoch: ``per_epoch`` steps (fewer if every copy stops); returns the last learning
    rate. Public so that the benchmark suite can time the training epochs in place."""
    steps = 0
    while steps < run.per_epoch and run.any_live():
        got_batch = False
        for x, y in run.batches(epoch, steps):
            if steps >= run.per_epoch or not run.any_live():
                break
            got_batch = True
            lr = learning_rate(run.cfg, epoch * run.per_epoch + steps, run.total_steps,
                               run.per_epoch)
            if not _train_step(run, x, y, epoch, steps, lr):
                break
            steps += 1
            if steps % FINITE_CHECK_EVERY == 0:
                _check_finite(run, epoch)
        if not got_batch and all(c.seen == 0 for c in run.copies):
            raise ValueError("the training set is empty")
    return lr


#: Training steps between the checks for a non-finite loss (each check waits for the device
#: once); a diverged copy is stopped at the first check after it diverged, recorded with the
#: exact step, and scored on the epochs before (the divergence policy of its stage).
FINITE_CHECK_EVERY = 50


def _check_finite(run: _Loop, epoch: int) -> None:
    """Stop every live copy whose loss was non-finite at some step of this epoch."""
    live = [c for c in run.copies if c.live and c.bad_step is not None]
    if not live:
        return
    for c, step in zip(live, torch.stack([c.bad_step for c in live]).tolist()):
        if step >= 0:
            c.status, c.reason = "diverged", f"non-finite loss at epoch {epoch} step {step}"


def _end_epoch(run: _Loop, epoch: int, started: list[int], val_data) -> None:
    """Check losses and weights, evaluate, record the epoch and apply the abort rules."""
    _check_finite(run, epoch)
    for k in started:
        c = run.copies[k]
        if c.live and not all(torch.isfinite(p).all() for p in _copy_params(run.model, k)):
            c.status, c.reason = "diverged", f"non-finite weights after epoch {epoch}"
    live = [k for k in started if run.copies[k].live]
    if hasattr(run.model, "live"):
        run.model.live = [k in live for k in range(len(run.copies))]
    accs = evaluate(run.model, val_data,
                    None if run.eval_tensors else run.technique.eval_transform,
                    run.cfg.eval_batch_size, run.device, run.cfg.num_workers, run.amp,
                    run.eval_tensors) if live and val_data is not None else []
    for k in started:
        c = run.copies[k]
        train_acc = c.correct / max(1, c.counted)
        c.history.append({"epoch": epoch + 1, "train_loss": c.loss_sum / max(1, c.counted),
                          "train_acc": train_acc,
                          "val_acc": accs[k] if c.live and accs else float("nan"),
                          "lr": c.lr})
        for from_epoch, min_acc in run.cfg.abort:
            if c.live and epoch >= from_epoch and train_acc < min_acc:
                c.status, c.reason = "aborted", (f"training accuracy {train_acc:.4f} < "
                                                 f"{min_acc} at epoch {epoch + 1}")


def _log_epoch(run: _Loop, epoch: int, lr: float, seconds: float, progress: Progress,
               level: int) -> None:
    """One line per epoch; the ETA is the rate of the epochs run in this process (a resumed
    run's earlier epochs do not count) times the epochs left."""
    c0 = run.copies[0]
    eta = progress.eta_text(epoch)
    if len(run.copies) > 1:
        log.log(level, "epoch %d/%d: %d of %d copies training ETA %s", epoch, run.cfg.epochs,
                sum(c.live for c in run.copies), len(run.copies), eta)
        return
    rec = c0.history[-1]
    log.log(level, "epoch %d/%d loss %.4f train_acc %.4f val_acc %.4f lr %.3g %.0f img/s ETA %s%s",
            epoch, run.cfg.epochs, rec["train_loss"], rec["train_acc"], rec["val_acc"], lr,
            c0.seen / seconds if seconds > 0 else float("nan"), eta,
            f" [{c0.status}: {c0.reason}]" if not c0.live else "")


def _finish(run: _Loop, test_data, start_epoch: int, seconds: float) -> list[FitResult]:
    """Final statuses (``fail_below``), test accuracy, one result per copy."""
    results = []
    cfg = run.cfg
    if hasattr(run.model, "live"):
        run.model.live = None  # every copy's test accuracy is its own weights'
    for k, c in enumerate(run.copies):
        status, reason = c.status, c.reason
        if status in ("completed", "aborted") and cfg.fail_below is not None and c.history \
                and max(h["train_acc"] for h in c.history) < cfg.fail_below:
            status, reason = "failed", f"best training accuracy below {cfg.fail_below}"
        test_acc = None
        if cfg.evaluate_test and test_data is not None and status in ("completed", "failed"):
            test_tensors = run.technique.config \
                if run.draws is not None and test_data.in_memory else None
            test_acc = evaluate(run.model, test_data,
                                None if test_tensors else run.technique.eval_transform,
                                cfg.eval_batch_size, run.device, cfg.num_workers, run.amp,
                                test_tensors)[k]
        results.append(FitResult(status, c.history, test_acc, len(c.history), start_epoch,
                                 run.images_seen / seconds if seconds > 0 and run.images_seen
                                 else float("nan"), seconds, reason))
    return results


def _resume(run: _Loop, ckpt_path: Path | None, chash: str) -> int:
    """Load the checkpoint of this job if there is one; the epoch to start from."""
    state = _load_checkpoint(ckpt_path, chash) if ckpt_path is not None else None
    if state is None:
        return 0
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    c0 = run.copies[0]
    c0.history, c0.status, c0.reason = list(state["history"]), state["status"], state["reason"]
    log.info("resumed from %s at epoch %d", ckpt_path, int(state["epoch"]))
    return int(state["epoch"])


def _fit(model, loss_fns, train_data, val_data, test_data, technique, cfg, seed, device,
         checkpoint, callback, identity, epoch_log_level=logging.INFO,
         independent=None) -> list[FitResult]:
    if use_tensors(cfg, technique, train_data):  # resized once, not per batch
        from augloss.batch_augment import at_size

        train_data, val_data, test_data = (at_size(d, technique.config)
                                           for d in (train_data, val_data, test_data))
    run = _setup(model, loss_fns, train_data, val_data, technique, cfg, seed, device,
                 independent)
    chash = config_hash({"train": cfg.to_dict(), "seed": seed, "identity": identity,
                         "optimizer_state": optim.STATE_FORMAT,
                         "augment": technique.config.to_dict(), "technique": technique.name})
    ckpt_path = Path(checkpoint) if checkpoint else None
    start_epoch = epoch = _resume(run, ckpt_path, chash)
    lr = learning_rate(cfg, start_epoch * run.per_epoch, run.total_steps, run.per_epoch)
    t_start = time.perf_counter()
    progress = Progress(cfg.epochs, start_epoch, t_start)
    while epoch < cfg.epochs and run.any_live():
        torch.manual_seed(epoch_seed(seed, epoch))  # dropout and per-sample augmentation
        if run.rng is not None:  # independent copies: each its own run's state
            for k, s in enumerate(run.seeds):
                run.rng.seed(k, epoch_seed(s, epoch))
        model.train()
        started = [k for k, c in enumerate(run.copies) if c.live]
        for c in run.copies:
            c.start_epoch(run.device, lr)
        t_epoch = time.perf_counter()
        lr = train_epoch(run, epoch, lr)
        _end_epoch(run, epoch, started, val_data)
        epoch += 1
        _log_epoch(run, epoch, lr, time.perf_counter() - t_epoch, progress, epoch_log_level)
        c0 = run.copies[0]
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, {"model": model.state_dict(),
                                         "optimizer": run.optimizer.state_dict(),
                                         "epoch": epoch, "history": c0.history,
                                         "status": c0.status, "reason": c0.reason,
                                         "config_hash": chash})
        if callback is not None:
            callback(c0.history[-1])
    return _finish(run, test_data, start_epoch, time.perf_counter() - t_start)


def _clip_grad_norms(model: nn.Module, K: int, max_norm: float) -> None:
    """``clip_grad_norm_`` applied to each copy's gradient on its own (block ``k`` of every
    grouped tensor, or each copy's own parameters); with one copy, ``clip_grad_norm_`` itself."""
    if K > 1 and not isinstance(getattr(model, "head_weight", None), torch.Tensor):
        for k in range(K):  # copies with parameters of their own (StackedSurrogates)
            nn.utils.clip_grad_norm_([p for p in model.copy_parameters(k)
                                      if p.grad is not None], max_norm)
        return
    params = [p for p in model.parameters() if p.grad is not None]
    if K == 1:
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad.view(K, -1) for p in params]
    norms = torch.stack([g.norm(dim=1) for g in grads]).norm(dim=0)  # one norm per copy
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale[:, None])
