"""Seconds per candidate evaluation of the search, and its ratio to a bare training loop.

    python -m benchmarks.search_eval [--repeats 3] [--steps 100] [--epochs 2]

One evaluation = :meth:`augloss.search.Evaluator.evaluate` of cross-entropy under ``base`` on
digits with the surrogate (data loading, augmentation, per-epoch validation, checks), cache
disabled. The floor = the same model and number of optimizer steps on one batch already in a
tensor: forward, loss, backward, step; nothing else. Writes results/bench/search_eval.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from augloss import losses, models
from augloss.io import write_json
from augloss.search import Evaluator, FitnessConfig


def floor(steps: int, batch: int) -> float:
    torch.manual_seed(0)
    model = models.create("surrogate", 10, bn_momentum=0.1)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    loss_fn = losses.get("ce")
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return time.perf_counter() - t


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default="results/bench/search_eval.json")
    args = p.parse_args(argv)
    recipe = {"epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch,
              "eval_batch_size": 300, "optimizer": "adam", "lr": 1e-3, "nesterov": False,
              "weight_decay": 0.0}
    fitness = FitnessConfig(dataset="digits", model={"name": "surrogate", "bn_momentum": 0.1},
                            main=recipe)
    ev = Evaluator(fitness, None, seed=0)
    expr = losses.parse(losses.REGISTRY["ce"])
    evals, floors = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ev.evaluate(expr, "base", "main")
        evals.append(time.perf_counter() - t)
        floors.append(floor(args.epochs * args.steps, args.batch))
    ratios = [e / f for e, f in zip(evals, floors)]

    def mmm(v):
        return {"min": min(v), "median": statistics.median(v), "max": max(v)}

    report = {"threads": torch.get_num_threads(), "steps": args.epochs * args.steps,
              "batch": args.batch, "eval_s": mmm(evals), "floor_s": mmm(floors),
              "eval_vs_floor": mmm(ratios)}
    print(f"evaluation: {statistics.median(evals):.2f} s/candidate "
          f"({args.epochs * args.steps} steps of {args.batch}); floor "
          f"{statistics.median(floors):.2f} s; ratio {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
