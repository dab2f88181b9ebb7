"""The benchmark suite: ratios measured side by side in one run, so they hold on any machine.

    python -m benchmarks [--repeats 3] [--demo-repeats 1] [--device cpu] [--quick] [--skip-demo]

Writes ``results/bench/report.json`` and ``results/bench/report.md``. Every figure is
``{min, median, max}`` over ``repeats`` (``n`` says how many):

(a) ``eval_vs_floor``: one surrogate fitness evaluation (:class:`augloss.search.SurrogateEvaluator`,
    cache off, ``base`` augmentation, per-epoch validation) over the **floor**: a bare loop of
    forward, backward and optimizer step on the same model and number of steps, one batch
    already in a tensor, no augmentation, no checks. Per technique in ``eval_vs_floor_<aug>``.
(b) ``joint<K>_vs_sequential<K>``: K candidates evaluated in one stacked run
    (:meth:`Evaluator.evaluate_many`) over K one-by-one evaluations, K in 1, 4, 8, 16.
(c) ``pipeline_<aug>[_tf]_<path>_img_s``: augmentation throughput (``_tf``: the earlier code's
    RandAugment, ``randaugment_impl: tf``), per-sample torchvision path in a
    DataLoader (``cpu``) vs the batched tensor path (``tensor``), images/s.
(d) ``dryrun_paper_s``: ``snakemake -n`` on the paper config; ``noop_rerun_demo_s``: a rerun of
    the finished demo with nothing to do.
(e) ``demo_wall_s`` and ``demo_peak_rss_mb``: the README's demo command (``--cores 2``) on a
    fresh copy of the working tree per repeat (``--demo-repeats``, default 3), and the peak of
    the resident memory of all its processes together (Snakemake and the jobs running at once).
On CUDA, timings use CUDA events and the trainer runs bf16 autocast + channels_last; then
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


def floor(steps: int, batch: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = models.create("surrogate", 10, bn_momentum=0.1).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    loss_fn = losses.get(losses.parse(losses.REGISTRY["ce"]))  # the loss the evaluation trains
    with Timer(device) as t:
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    return t.seconds


def eval_vs_floor(args, device) -> dict:
    ev = _evaluator(args.steps, args.epochs, args.batch, device)
    ce = losses.parse(losses.REGISTRY["ce"])
    out = {}
    for technique in TECHNIQUES:
        evals, floors = [], []
        for _ in range(args.repeats):
            with Timer(device) as t:
                ev.evaluate(ce, technique, "main")
            evals.append(t.seconds)
            floors.append(floor(args.steps * args.epochs, args.batch, device))
        out[f"eval_vs_floor_{technique}"] = mmm([e / f for e, f in zip(evals, floors)])
        out[f"eval_s_{technique}"] = mmm(evals)
        out[f"floor_s_{technique}"] = mmm(floors)
    out["eval_vs_floor"] = out["eval_vs_floor_base"]
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
    return out


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

TARGETS = {"eval_vs_floor": ("<=", 1.15), "joint8_vs_sequential8": ("<=", 0.5),
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
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--joint-steps", type=int, default=40, help="steps per evaluation in (b)")
    p.add_argument("--batch", type=int, default=64)
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
