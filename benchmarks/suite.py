"""The benchmark suite: ratios measured side by side in one run, so they hold on any machine.

    python -m benchmarks [--repeats 3] [--demo-repeats 1] [--device cpu] [--quick] [--skip-demo]

Writes ``results/bench/report.json`` and ``results/bench/report.md``. Every figure is
``{min, median, max}`` over ``repeats`` (``n`` says how many):

(a) ``eval_vs_floor_<phase>``: per fitness phase, the seconds of one surrogate fitness
    evaluation of cross-entropy (:class:`augloss.search.SurrogateEvaluator`, cache off) over
    the seconds of its **floor**, like with like. The fitness is config.yaml's ``search``
    section as the workflow resolves it (:func:`fitness_config`: ``Experiment.fitness`` then
    ``augloss.workflow.fitness`` on ``--device``) with only the dataset switched to ``digits``
    and every recipe cut to ``--epochs`` x ``--steps``: each phase keeps its batch size, input
    size and normalisation (screens: ``augment.image_size``, x / 255; main: ``search.image_size``
    80 px, ``search.normalize`` tf), optimizer, schedule, amp and eval batch size. Phases
    ``prescreen`` and ``prefilter`` (both train unaugmented, technique ``none``), ``main``
    (``base`` augmentation; ``eval_vs_floor_main_<aug>`` per technique). The floor
    (:func:`floor`, its recipe stated by :func:`floor_recipe`) trains the same model (same
    ``model`` options and classes) with the same loss for the same number of steps at the
    phase's batch size on one batch of the training images already resized to the phase's
    size and normalised as the phase normalises (``batch_augment.normalise``), with the same
    optimizer (kind, lr, betas, eps, weight decay; :mod:`augloss.optim`), bf16 autocast and
    channels_last exactly where the evaluation uses them (CUDA; autocast only under the
    recipe's ``amp``), and after every epoch the same validation forward passes (eval mode,
    no_grad, every validation image at the eval batch size and phase size) -- a bare loop of
    tensors already made: no augmentation, schedule, metrics or checks. Raw seconds:
    ``eval_s_<phase>``, ``floor_s_<phase>`` (``main`` = ``main_base``). ``eval_vs_floor`` is
    ``eval_vs_floor_main``. Each (phase, technique) runs once untimed first (a 1-step warm-up).
    Costs for the search's cost model (``augloss cost --bench``), from the same timed
    evaluations, the trainer's functions timed in place (:class:`TrainerTimes`; CUDA events):
    ``cost_step_s_prescreen``, ``cost_step_s_prefilter``, ``cost_step_s_main_<aug>``: seconds
    inside the trainer's training epochs (``augloss.train.train_epoch``: batch drawing,
    augmentation, forward, loss, backward, optimizer step) over the steps trained, so
    validation, model building, resizing and per-epoch checks excluded;
    ``cost_val_s_per_image_<phase>``: seconds inside the trainer's validation
    (``augloss.train.evaluate``) over the images it validated, at the phase's size and eval
    batch size (``main``: pooled over the techniques' runs); ``cost_overhead_s_<phase>``: the
    rest of an evaluation (model, resize, set-up, per-epoch checks), seconds per evaluation.
(b) ``joint<K>_vs_sequential<K>``: K candidates evaluated in one stacked run
    (:meth:`Evaluator.evaluate_many`) over K one-by-one evaluations, K in 1, 4, 8, 16;
    ``pool<K>_vs_sequential<K>`` (K in 4, 16): K pre-screens each under its own seed in one
    stacked call (``search.algorithm.pool_batch``) over one by one;
    ``lockstep5_vs_sequential5``: one main run of each of five searches in one stacked call
    (``search.lockstep``) over the five in turn (on CUDA with the GPU's utilisation,
    ``lockstep5_gpu_util`` / ``sequential5_gpu_util``, where NVML is available). On the CPU
    every copy's arithmetic is done anyway, so the gain there is bounded by what one small
    training leaves of the cores (compute-bound); on a GPU it is the idle time filled.
(c) ``pipeline_<aug>[_tf]_<path>_img_s``: augmentation throughput (``_tf``: the earlier code's
    RandAugment, ``randaugment_impl: tf``), per-sample torchvision path in a
    DataLoader (``cpu``) vs the batched tensor path (``tensor``), images/s.
(d) ``dryrun_paper_s``: ``snakemake -n`` on the paper config; ``noop_rerun_demo_s``: a rerun of
    the finished demo with nothing to do.
(e) ``demo_wall_s`` and ``demo_peak_rss_mb``: the README's demo command (``--cores 2``) on a
    fresh copy of the working tree per repeat (``--demo-repeats``, default 3), and the peak of
    the resident memory of all its processes together (Snakemake and the jobs running at once).
On CUDA, timings use CUDA events and the trainer runs channels_last (bf16 autocast where a
recipe's ``amp`` is true; config.yaml's search recipes say false); then
``wrn28_10_img_s`` (WRN-28-10 training images/s, batch 128) is measured too.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from augloss import augment, data, losses, models
from augloss.config import AugmentConfig
from augloss.io import atomic_write_text, write_json
from augloss.names import TECHNIQUES

REPO = Path(__file__).resolve().parents[1]
KS = (1, 4, 8, 16)


def mmm(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


class Timer:
    """Wall time of a block; CUDA events on a GPU (so queued kernels are counted)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.t0


# --- (a), (b): surrogate evaluations ---------------------------------------------------------

def _recipe(steps: int, epochs: int, batch: int) -> dict:
    return {"epochs": epochs, "steps_per_epoch": steps, "batch_size": batch,
            "eval_batch_size": 300, "optimizer": "adam", "lr": 1e-3, "nesterov": False,
            "weight_decay": 0.0, "evaluate_test": False}


def _evaluator(steps, epochs, batch, device):
    from augloss.search import FitnessConfig, SurrogateEvaluator

    fitness = FitnessConfig(dataset="digits", model={"name": "surrogate", "bn_momentum": 0.1},
                            main=_recipe(steps, epochs, batch), device=str(device))
    return SurrogateEvaluator(fitness, None, seed=0)


# The fitness phases (augloss.search.PHASES) and the technique each trains under: the screens
# always train unaugmented ("none", whatever the search's augmentation), the main run under the
# search's technique.
PHASES = ("prescreen", "prefilter", "main")


def fitness_config(device: torch.device | str, epochs: int, steps: int,
                   config: Path = REPO / "config.yaml", dataset: str = "digits"):
    """The search's :class:`~augloss.config.FitnessConfig` as the workflow resolves it from
    ``config`` (:meth:`augloss.experiment.Experiment.fitness`, then
    :func:`augloss.workflow.fitness` on ``device``), with only the dataset switched to
    ``dataset`` and every phase's recipe cut to ``epochs`` of ``steps`` steps. Batch sizes,
    image sizes, normalisation, optimizer, schedule, amp, ... stay as ``config`` states them."""
    import yaml

    from augloss.experiment import Experiment
    from augloss.workflow import fitness

    job = Experiment.from_config(yaml.safe_load(Path(config).read_text())).fitness()
    for phase in PHASES:
        if job.get(phase) is not None:
            job[phase] = {**job[phase], "epochs": int(epochs), "steps_per_epoch": int(steps)}
    return fitness({**job, "dataset": dataset}, str(device))


def _datasets(fitness) -> tuple:
    """The fitness's (train, val) sets, as its evaluator loads them."""
    return tuple(data.load(fitness.dataset, fitness.data_root, split, download=False)
                 for split in (fitness.train_split, fitness.val_split))


def floor_recipe(fitness, phase: str, datasets: tuple | None = None) -> dict:
    """What one evaluation of ``phase`` under ``fitness`` trains and validates, as the floor
    does it: the input (size, normalisation), batch sizes, precision and memory format,
    optimizer, steps, validation passes and images, model. ``datasets``: the (train, val) sets
    (default: loaded as the evaluator loads them)."""
    train, val = datasets if datasets is not None else _datasets(fitness)
    cfg = fitness.recipe(phase)
    pipe = fitness.phase_augment(phase)
    cuda = torch.device(fitness.device).type == "cuda"
    ms = pipe.mean_std()
    per_epoch = cfg.steps_per_epoch or max(1, len(train) // cfg.batch_size)
    if cfg.optimizer == "sgd":
        opt = {"lr": cfg.lr, "momentum": cfg.momentum, "nesterov": cfg.nesterov,
               "weight_decay": cfg.weight_decay}
    else:
        opt = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.adam_eps,
               "weight_decay": cfg.weight_decay}
    return {"phase": phase, "device": str(fitness.device),
            "image_size": pipe.image_size, "normalize": pipe.normalize,
            "mean": None if ms is None else list(ms[0]),
            "std": None if ms is None else list(ms[1]),
            "batch_size": cfg.batch_size, "eval_batch_size": cfg.eval_batch_size,
            "amp": bool(cfg.amp and cuda),  # bf16 autocast: the trainer's rule
            "channels_last": bool(cfg.channels_last and cuda),  # model and training inputs
            "val_channels_last": cuda,  # augloss.batches.evaluate: always on CUDA
            "epochs": cfg.epochs, "steps_per_epoch": per_epoch, "steps": cfg.epochs * per_epoch,
            "val_passes": cfg.epochs, "val_images": len(val),
            "optimizer": cfg.optimizer, "optimizer_options": opt,
            "model": dict(fitness.model), "num_classes": train.num_classes, "loss": "ce"}


def floor(fitness, phase: str, datasets: tuple | None = None) -> float:
    """Seconds of the **floor** of one evaluation of ``phase``: :func:`floor_recipe`'s training
    steps on one batch of the training images and its validation passes over the validation
    images, both already resized and normalised on the device -- a bare loop (no augmentation,
    no checks, no schedule, no metrics), the same model, optimizer, precision and memory
    format as the evaluation."""
    from augloss import optim
    from augloss.batch_augment import at_size, normalise

    train, val = datasets if datasets is not None else _datasets(fitness)
    r = floor_recipe(fitness, phase, (train, val))
    device = torch.device(r["device"])
    pipe = fitness.phase_augment(phase)
    assert (pipe.image_size, pipe.normalize) == (r["image_size"], r["normalize"])
    torch.manual_seed(0)
    kwargs = {k: v for k, v in r["model"].items() if k != "name"}
    model = models.create(r["model"]["name"], r["num_classes"], **kwargs).to(device)
    train_fmt = torch.channels_last if r["channels_last"] else torch.contiguous_format
    val_fmt = torch.channels_last if r["val_channels_last"] else torch.contiguous_format
    if r["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    opt = optim.create(r["optimizer"], [p for p in model.parameters() if p.requires_grad],
                       **r["optimizer_options"])
    # the tensors the evaluation's pipeline makes: uint8 resized to the phase's size, then
    # normalised as the phase normalises (augloss.batch_augment.normalise)
    images = at_size(train, pipe).images[:r["batch_size"]].to(device)
    x = normalise(images, pipe).contiguous(memory_format=train_fmt)
    y = train.labels[:r["batch_size"]].to(device)
    val_x = normalise(at_size(val, pipe).images.to(device), pipe)
    val_batches = [val_x[i:i + r["eval_batch_size"]].contiguous(memory_format=val_fmt)
                   for i in range(0, r["val_images"], r["eval_batch_size"])]
    loss_fn = losses.get(losses.parse(losses.REGISTRY[r["loss"]]))  # the loss evaluated
    with Timer(device) as t:
        for epoch in range(r["epochs"]):
            model.train()
            for _ in range(r["steps_per_epoch"]):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=r["amp"]):
                    logits = model(x)
                loss = loss_fn(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for vx in val_batches:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=r["amp"]):
                        model(vx)
    return t.seconds


class TrainerTimes:
    """While active, the seconds the trainer (:mod:`augloss.train`) spends in its training
    epochs (``train_epoch``: the steps, batches drawn and augmented included) and in its
    validation passes (``evaluate``), and the validation images seen. CUDA events time them
    on a GPU (the trainer synchronises at both ends of each anyway)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.train_s = self.val_s = 0.0
        self.val_images = 0

    def __enter__(self):
        from augloss import train as trainer

        self._saved = trainer.train_epoch, trainer.evaluate
        train_epoch, evaluate = self._saved

        def timed_epoch(*a, **k):
            with Timer(self.device) as t:
                out = train_epoch(*a, **k)
            self.train_s += t.seconds
            return out

        def timed_evaluate(model, data, *a, **k):
            with Timer(self.device) as t:
                out = evaluate(model, data, *a, **k)
            self.val_s += t.seconds
            self.val_images += len(data)
            return out

        trainer.train_epoch, trainer.evaluate = timed_epoch, timed_evaluate
        return self

    def __exit__(self, *exc):
        from augloss import train as trainer

        trainer.train_epoch, trainer.evaluate = self._saved


def eval_vs_floor(args, device) -> dict:
    """(a): per phase (and per technique in the main run), one evaluation of CE over its floor,
    and the step and validation costs the evaluations measured (see the module docstring)."""
    from augloss.search import SurrogateEvaluator

    fitness = fitness_config(device, args.epochs, args.steps)
    ev = SurrogateEvaluator(fitness, None, seed=0)  # cache off
    datasets = (ev.train_set, ev.val_set)
    ce = losses.parse(losses.REGISTRY["ce"])
    runs = [(p, "base") for p in PHASES[:-1] if getattr(fitness, p) is not None] + \
        [("main", t) for t in TECHNIQUES]
    # one untimed step-and-validation of each run first (imports, allocator, kernels)
    warm = fitness_config(device, 1, 1)
    warm_ev = SurrogateEvaluator(warm, None, seed=0)
    warm_ev.share_data(ev)
    out, val_cost = {}, {}
    for phase, technique in runs:
        recipe = fitness.recipe(phase)
        name = phase if phase != "main" else f"main_{technique}"
        warm_ev.evaluate(ce, technique, phase)
        floor(warm, phase, datasets)
        evals, floors, steps, vals, rest = [], [], [], [], []
        for _ in range(args.repeats):
            with TrainerTimes(device) as tt, Timer(device) as t:
                record = ev.evaluate(ce, technique, phase)
            if record["epochs_run"] != recipe.epochs:
                raise RuntimeError(f"eval {name}: the evaluation ran {record['epochs_run']} of "
                                   f"{recipe.epochs} epochs ({record['status']}: "
                                   f"{record['reason']}); its floor would not compare")
            evals.append(t.seconds)
            floors.append(floor(fitness, phase, datasets))
            steps.append(tt.train_s / (recipe.epochs * recipe.steps_per_epoch))
            vals.append(tt.val_s / max(1, tt.val_images))
            rest.append(max(0.0, t.seconds - tt.train_s - tt.val_s))
        out[f"eval_vs_floor_{name}"] = mmm([e / f for e, f in zip(evals, floors)])
        out[f"eval_s_{name}"], out[f"floor_s_{name}"] = mmm(evals), mmm(floors)
        out[f"cost_step_s_{name}"] = mmm(steps)
        out[f"cost_overhead_s_{name}"] = mmm(rest)
        val_cost.setdefault(phase, []).extend(vals)
    for phase, vals in val_cost.items():
        out[f"cost_val_s_per_image_{phase}"] = mmm(vals)
    # the main run with the search's default augmentation, under the short names
    for prefix in ("eval_vs_floor", "eval_s", "floor_s"):
        out[f"{prefix}_main"] = out[f"{prefix}_main_base"]
    out["eval_vs_floor"] = out["eval_vs_floor_main"]
    return out


def joint_vs_sequential(args, device) -> dict:
    ev = _evaluator(args.joint_steps, 1, args.batch, device)
    out = {}
    for k in KS:
        exprs = [losses.parse(f"-(y * ln(p)) * {i + 1}") for i in range(k)]
        joint, seq = [], []
        for _ in range(args.repeats):
            with Timer(device) as t:
                ev.evaluate_many(exprs, "base", "main")
            joint.append(t.seconds)
            with Timer(device) as t:
                for e in exprs:
                    ev.evaluate(e, "base", "main")
            seq.append(t.seconds)
        out[f"joint{k}_vs_sequential{k}"] = mmm([j / s for j, s in zip(joint, seq)])
        out[f"joint{k}_s"], out[f"sequential{k}_s"] = mmm(joint), mmm(seq)
    out.update(pool_vs_sequential(args, device))
    out.update(lockstep_vs_sequential(args, device))
    return out


POOL_KS = (4, 16)


def pool_vs_sequential(args, device) -> dict:
    """``pool<K>_vs_sequential<K>``: K pre-screens of the initial pool, each under its own
    seed (``search.algorithm.pool_batch: K``: one stacked call, each copy its own batches)
    over the same K screens one by one; config.yaml's prescreen recipe (32 px, batch 128)
    cut to one epoch of ``--joint-steps`` steps."""
    from augloss.search import SurrogateEvaluator

    ev = SurrogateEvaluator(fitness_config(device, 1, args.joint_steps), None, seed=0)
    out = {}
    for k in POOL_KS:
        exprs = [losses.parse(f"-(y * ln(p)) * {i + 1}") for i in range(k)]
        seeds = list(range(100, 100 + k))
        ev.evaluate_many(exprs[:1], "base", "prescreen", seed=seeds[:1])  # warm-up
        pooled, seq = [], []
        for _ in range(args.repeats):
            with Timer(device) as t:
                ev.evaluate_many(exprs, "base", "prescreen", seed=seeds)
            pooled.append(t.seconds)
            with Timer(device) as t:
                for e, s in zip(exprs, seeds):
                    ev.evaluate(e, "base", "prescreen", seed=s)
            seq.append(t.seconds)
        out[f"pool{k}_vs_sequential{k}"] = mmm([j / s for j, s in zip(pooled, seq)])
        out[f"pool{k}_s"], out[f"pool_sequential{k}_s"] = mmm(pooled), mmm(seq)
    return out


def lockstep_vs_sequential(args, device) -> dict:
    """``lockstep5_vs_sequential5``: one main fitness run of each of the five searches (one
    per technique, each its own evaluator and seed) trained in one stacked call, as
    ``search.lockstep`` trains a round (:func:`augloss.search.evaluator.train_jobs` of their
    plans), over the five one after the other, as five search jobs sharing one device would;
    config.yaml's main recipe (80 px, batch 64) cut to one epoch of ``--joint-steps``
    steps. On CUDA also ``lockstep5_gpu_util`` and ``sequential5_gpu_util``: the fraction of
    the time the GPU was busy (``torch.cuda.utilization``, sampled), where available."""
    from augloss.search import SurrogateEvaluator
    from augloss.search.evaluator import train_jobs

    fitness = fitness_config(device, 1, args.joint_steps)
    evs = [SurrogateEvaluator(fitness, None, seed=i) for i in range(len(TECHNIQUES))]
    for ev in evs[1:]:
        ev.share_data(evs[0])
    ce = losses.parse(losses.REGISTRY["ce"])
    evs[0].evaluate(ce, "base", "main", seed=99)  # warm-up
    lock, seq, util_lock, util_seq = [], [], [], []
    for r in range(args.repeats):
        with _Utilisation(device) as u, Timer(device) as t:
            plans = [ev.plan([ce], a, "main", seed=1000 * r + i)
                     for i, (ev, a) in enumerate(zip(evs, TECHNIQUES))]
            train_jobs([j for p in plans for j in p.jobs])
        lock.append(t.seconds)
        util_lock.append(u.mean)
        with _Utilisation(device) as u, Timer(device) as t:
            for i, (ev, a) in enumerate(zip(evs, TECHNIQUES)):
                ev.evaluate(ce, a, "main", seed=1000 * r + i)
        seq.append(t.seconds)
        util_seq.append(u.mean)
    n = len(TECHNIQUES)
    out = {f"lockstep{n}_vs_sequential{n}": mmm([a / b for a, b in zip(lock, seq)]),
           f"lockstep{n}_s": mmm(lock), f"sequential{n}_s": mmm(seq)}
    if all(v is not None for v in util_lock + util_seq):
        out[f"lockstep{n}_gpu_util"] = mmm(util_lock)
        out[f"sequential{n}_gpu_util"] = mmm(util_seq)
    return out


class _Utilisation:
    """The GPU's mean utilisation (0-1) while active, sampled every 0.1 s by a thread with
    ``torch.cuda.utilization`` (NVML); ``mean`` None on the CPU or without NVML."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.samples: list[float] = []
        self.mean: float | None = None

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        if self.cuda:
            try:
                torch.cuda.utilization()
            except Exception:  # no NVML (pynvml) here: no figure, not a guess
                self.cuda = False
        if self.cuda:
            def sample():
                while not self._stop.wait(0.1):
                    self.samples.append(torch.cuda.utilization() / 100)
            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.cuda:
            self._thread.join()
            self.mean = statistics.fmean(self.samples) if self.samples else None


# --- (c): augmentation throughput ------------------------------------------------------------

def pipelines(args, device) -> dict:
    from augloss import batch_augment
    from augloss.batches import data_loader

    train = data.load("digits", split="train")
    n = args.batch * args.pipeline_batches
    # CIFAR's 32 px (the digits are 8 x 8): both paths then work on CIFAR-size images.
    subset = batch_augment.at_size(train.subset(range(min(n, len(train))), "train"),
                                   AugmentConfig())
    out = {}
    # RandAugment both ways: torchvision's, and the earlier code's (config.yaml's transfer
    # values at 32 px: N 2, M 5, translate 40, Cutout 16)
    tf = AugmentConfig(randaugment_impl="tf", randaugment_m=5, randaugment_translate=40,
                       randaugment_cutout=16)
    variants = [(t, "", AugmentConfig()) for t in TECHNIQUES] + \
        [(t, "_tf", tf) for t in TECHNIQUES if "randaugment" in augment.build(t).spec.steps]
    for technique, suffix, cfg in variants:
        tech = augment.build(technique, cfg)
        cpu, tensor = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            seen = 0
            for x, _ in data_loader(subset, tech.train_transform, args.batch, True, r, 0, 0):
                if tech.mixup:
                    augment.mixup(x, torch.zeros(len(x), dtype=torch.long), 1.0)
                seen += len(x)
            cpu.append(seen / (time.perf_counter() - t0))
            pipe = batch_augment.BatchAugment(tech)
            images = subset.images.to(device)
            g = torch.Generator(device=device)
            g.manual_seed(r)
            host = np.random.default_rng(r)
            with Timer(device) as t:
                for i in range(0, len(images), args.batch):
                    x = pipe(images[i:i + args.batch], g)
                    if tech.mixup:
                        batch_augment.mixup(x, torch.zeros(len(x), dtype=torch.long,
                                                           device=device), 1.0, g, host)
            tensor.append(len(images) / t.seconds)
        out[f"pipeline_{technique}{suffix}_cpu_img_s"] = mmm(cpu)
        out[f"pipeline_{technique}{suffix}_tensor_img_s"] = mmm(tensor)
    return out


# --- (d), (e): the workflow ------------------------------------------------------------------

def _snakemake(workdir: Path, *args: str, snakefile: Path | None = None) -> tuple[float, float]:
    """Run Snakemake; (wall seconds, peak resident memory in MB of the whole run: Snakemake and
    every job process alive at once, summed, sampled every 0.1 s)."""
    import psutil  # a Snakemake dependency

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile",
                             str(snakefile or REPO / "Snakefile"), "--directory", str(workdir),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    root = psutil.Process(proc.pid)
    output: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{''.join(output)[-3000:]}")
    return wall, peak / 2**20


def fresh_checkout(dest: Path) -> Path:
    """The working tree as a fresh clone has it (tracked and untracked-but-not-ignored files;
    no results, data, caches or .snakemake), copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def workflow(args) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dry = [_snakemake(work, "-n", "--cores", "8", "--resources", "gpu=4", "--configfile",
                          str(REPO / "config.yaml"))[0] for _ in range(args.repeats)]
        out["dryrun_paper_s"] = mmm(dry)
        if args.skip_demo:
            return out
        # The README's first command on a fresh clone, each repeat in a new one (nothing
        # prepared, cached or recorded by an earlier run).
        walls, peaks = [], []
        for r in range(args.demo_repeats):
            clone = fresh_checkout(work / f"clone{r}")
            wall, peak = _snakemake(clone, "--cores", "2", "--configfile", "demo/config.yaml",
                                    snakefile=clone / "Snakefile")
            walls.append(wall)
            peaks.append(peak)
        out["demo_wall_s"], out["demo_peak_rss_mb"] = mmm(walls), mmm(peaks)
        out["noop_rerun_demo_s"] = mmm([
            _snakemake(clone, "--cores", "2", "--configfile", "demo/config.yaml",
                       snakefile=clone / "Snakefile")[0] for _ in range(args.repeats)])
    return out


# --- GPU extras ------------------------------------------------------------------------------

def wrn(args, device) -> dict:
    if device.type != "cuda":
        return {}
    from augloss.config import TrainConfig
    from augloss.train import fit

    train = data.load("digits", split="train")
    val = train.subset(range(128), "val")
    rates = []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        model = models.create("wrn", 10, depth=28, width=10)
        cfg = TrainConfig(epochs=1, steps_per_epoch=args.steps, batch_size=128,
                          evaluate_test=False, compile=args.compile)
        res = fit(model, losses.get("ce"), train, val, None, augment.build("base"), cfg, 0,
                  device=device)
        rates.append(res.images_per_s)
    return {"wrn28_10_img_s": mmm(rates)}


# --- report ----------------------------------------------------------------------------------

TARGETS = {"eval_vs_floor": ("<=", 1.15), "eval_vs_floor_main": ("<=", 1.15),
           "eval_vs_floor_prescreen": ("<=", 1.15), "eval_vs_floor_prefilter": ("<=", 1.15),
           "joint8_vs_sequential8": ("<=", 0.5), "pool16_vs_sequential16": ("<=", 1.1),
           "lockstep5_vs_sequential5": ("<=", 1.1),
           "dryrun_paper_s": ("<=", 2.0), "noop_rerun_demo_s": ("<", 15.0),
           "demo_wall_s": ("<=", 300.0), "demo_peak_rss_mb": ("<=", 3072.0)}


def markdown(report: dict) -> str:
    lines = [f"# Benchmarks ({report['machine']['device']}, {report['machine']['threads']} "
             f"threads, torch {report['machine']['torch']})", "",
             "| figure | min | median | max | n | target |", "|---|---|---|---|---|---|"]
    for key, v in report["figures"].items():
        target = TARGETS.get(key)
        mark = ""
        if target:
            op, limit = target
            ok = v["median"] <= limit if op == "<=" else v["median"] < limit
            mark = f"{op} {limit:g}: {'met' if ok else 'MISSED'}"
        lines.append(f"| {key} | {v['min']:.4g} | {v['median']:.4g} | {v['max']:.4g} | "
                     f"{v['n']} | {mark} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--demo-repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch in (a)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per evaluation in (a)")
    p.add_argument("--joint-steps", type=int, default=40, help="steps per evaluation in (b)")
    p.add_argument("--batch", type=int, default=64,
                   help="batch size in (b) and (c); (a) takes config.yaml's recipes'")
    p.add_argument("--pipeline-batches", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--compile", action="store_true", help="torch.compile the WRN (GPU)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    p.add_argument("--skip-demo", action="store_true")
    p.add_argument("--only", nargs="*", choices=["eval", "joint", "pipelines", "workflow", "wrn"])
    p.add_argument("--out", default="results/bench")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.steps, args.epochs, args.joint_steps = 1, 2, 1, 2
        args.pipeline_batches = 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = {"eval": lambda: eval_vs_floor(args, device),
                "joint": lambda: joint_vs_sequential(args, device),
                "pipelines": lambda: pipelines(args, device),
                "workflow": lambda: workflow(args), "wrn": lambda: wrn(args, device)}
    figures = {}
    for name, run in sections.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        figures.update(run())
        print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    report = {"machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                          else platform.processor() or platform.machine(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "cpus": os.cpu_count()},
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "figures": figures}
    out = Path(args.out)
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    print(markdown(report))
    return report
