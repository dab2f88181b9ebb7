"""Trainer throughput (images/s) on this machine for the surrogate and a small WRN.

    python -m benchmarks.trainer_throughput [--repeats 3] [--steps 20] [--device cpu]

Trains on digits (8x8 upsampled to 32x32, in memory) through :func:`augloss.train.fit` with each augmentation,
and, as a floor, a bare loop (forward, loss, backward, step; data already batched tensors, no
augmentation, no checks). Prints a Markdown table and writes results/bench/trainer.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from augloss import augment, data, losses, models
from augloss.io import write_json
from augloss.names import TECHNIQUES
from augloss.config import TrainConfig
from augloss.train import fit

MODELS = {"surrogate": ("surrogate", {}), "wrn-16-2": ("wrn", {"depth": 16, "width": 2})}


def bare_loop(model_name: str, options: dict, steps: int, batch: int, device) -> float:
    torch.manual_seed(0)
    model = models.create(model_name, 10, **options).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()
    loss_fn(model(x), y).backward()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


def trainer(model_name: str, options: dict, technique: str, steps: int, batch: int,
            device) -> float:
    train_set = data.load("digits", split="train")
    val_set = data.load("digits", split="val")
    cfg = TrainConfig(epochs=1, steps_per_epoch=steps, batch_size=batch, optimizer="adam",
                      lr=1e-3, nesterov=False, weight_decay=0.0, evaluate_test=False)
    torch.manual_seed(0)
    model = models.create(model_name, 10, **options)
    res = fit(model, losses.get("ce"), train_set, val_set.subset(range(64), "val"), None,
              augment.build(technique), cfg, seed=0, device=device)
    return res.images_per_s


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="results/bench/trainer.json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    report: dict = {"device": str(device), "threads": torch.get_num_threads(),
                    "batch": args.batch, "steps": args.steps, "images_per_s": {}}
    rows = []
    for label, (name, opts) in MODELS.items():
        for tech in ("bare",) + TECHNIQUES:
            vals = []
            for _ in range(args.repeats):
                if tech == "bare":
                    vals.append(bare_loop(name, opts, args.steps, args.batch, device))
                else:
                    vals.append(trainer(name, opts, tech, args.steps, args.batch, device))
            stats = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
            report["images_per_s"][f"{label}/{tech}"] = stats
            rows.append((label, tech, stats))
    for label in MODELS:
        bare = report["images_per_s"][f"{label}/bare"]["median"]
        base = report["images_per_s"][f"{label}/base"]["median"]
        report[f"{label}/trainer_base_vs_bare"] = base / bare
    print("| model | pipeline | images/s min | median | max |\n|---|---|---|---|---|")
    for label, tech, s in rows:
        print(f"| {label} | {tech} | {s['min']:.0f} | {s['median']:.0f} | {s['max']:.0f} |")
    for label in MODELS:
        print(f"{label}: trainer (base) / bare loop = {report[f'{label}/trainer_base_vs_bare']:.2f}")
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
