"""Helpers the test modules share: running Snakemake, writing fake runs, a tiny search.

Test modules import from here (never from each other), so each test module stays a leaf.
"""

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from augloss import losses
from augloss.config import FitnessConfig, SearchConfig

REPO = Path(__file__).resolve().parents[1]


# --- the workflow ------------------------------------------------------------------------------

def smk(workdir, *args, check=True, env=None):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def job_counts(output: str) -> Counter:
    """Parse the 'Job stats' table of a dry-run."""
    counts = Counter()
    block = output.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m[1]] = int(m[2])
    return counts


def load(path):
    return yaml.safe_load(Path(path).read_text())


# --- tables: metrics files with known statistics --------------------------------------------------

# (dataset, augmentation, loss) -> {seed: test accuracy}
RUNS = {
    ("cifar10", "base", "ce"): {0: 0.90, 1: 0.91, 2: 0.92},
    ("cifar10", "base", "focal"): {0: 0.905, 1: 0.915, 2: 0.93},  # better, not significant
    ("cifar10", "base", "evolved-cutout-1"): {0: 0.95, 1: 0.965, 2: 0.97},  # significant
    ("cifar10", "cutout", "ce"): {0: 0.88, 1: 0.89, 2: 0.90},
    ("cifar10", "cutout", "focal"): {5: 0.93, 6: 0.95},  # seeds do not pair: Welch
    ("cifar10", "cutout", "evolved-cutout-1"): {0: 0.87, 1: 0.88, 2: 0.89},  # worse
}


def write_runs(root, stage="transfer", runs=RUNS, **override):
    for (dataset, a, loss), by_seed in runs.items():
        for seed, acc in by_seed.items():
            d = root / stage / dataset / a / loss / str(seed)
            d.mkdir(parents=True, exist_ok=True)
            m = {"stage": stage, "dataset": dataset, "augmentation": a, "loss": loss,
                 "seed": seed, "status": "completed", "diverged": False,
                 "config_hash": f"h-{dataset}-{a}-{loss}", "code_version": "0.1.0",
                 "test_acc": acc, "final_val_acc": acc, "best_val_acc": acc,
                 "expression": "-(y * ln(p))", "loss_key": "k", "model": "wrn"}
            m.update(override)
            (d / "metrics.json").write_text(json.dumps(m))
            (d / "provenance.json").write_text(json.dumps(
                {"git_commit": "abc", "git_dirty": False, "device": "cuda", "gpu_name": "H100"}))
    return root


# --- a tiny search -----------------------------------------------------------------------------

SMALL = {"epochs": 1, "steps_per_epoch": 3, "batch_size": 32, "eval_batch_size": 300,
         "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "nesterov": False}
FITNESS = FitnessConfig(dataset="digits", model={"name": "surrogate", "bn_momentum": 0.1},
                        image_size=32, normalize="unit", metric="final", diverged="discard",
                        prescreen=SMALL,
                        prefilter={**SMALL, "steps_per_epoch": 2, "fail_below": 0.05},
                        main={**SMALL, "epochs": 2})
TINY = SearchConfig(population=4, initial_pool=6, children=6, tournament=3, top_k=3,
                    report_every=2, log_every=2)


class FakeEvaluator:
    """The search.Evaluator protocol: pseudo-fitness from the loss key; some keys diverge or
    fail the screen. ``seed_noise`` > 0 (opt-in) adds up to that much pseudo-noise drawn from
    (key, phase, seed), so a loss trained under another seed scores differently; by default the
    fitness ignores the seed. ``seeds`` records every evaluation's (key, phase, seed)."""

    def __init__(self, diverge_every=0, fail_every=0, seed_noise=0.0):
        self.hits = self.trainings = 0
        self.diverge_every, self.fail_every = diverge_every, fail_every
        self.seed_noise = seed_noise
        self.calls: list[tuple[str, str]] = []
        self.seeds: list[tuple[str, str, int | None]] = []

    def evaluate(self, expr, augmentation, phase, seed=None):
        self.trainings += 1
        self.calls.append((expr.key, phase))
        self.seeds.append((expr.key, phase, seed))
        h = int(hashlib.sha256(expr.key.encode()).hexdigest()[:8], 16)
        if expr.key == losses.parse(losses.REGISTRY["ce"]).key:
            h = 1
        status = "accepted"
        if self.diverge_every and phase == "main" and h % self.diverge_every == 0:
            status = "diverged"
        if self.fail_every and phase == "prefilter" and h % self.fail_every == 0:
            status = "failed"
        fit = (h % 1000) / 1000 if status == "accepted" else 0.0
        if self.seed_noise and status == "accepted":
            u = int(hashlib.sha256(f"{expr.key}|{phase}|{seed}".encode()).hexdigest()[:8], 16)
            fit = round(fit + self.seed_noise * (u / 0xFFFFFFFF - 0.5), 6)
        return {"status": status, "reason": "" if status == "accepted" else status,
                "fitness": fit, "fitness_final": fit, "fitness_max": fit, "epochs_run": 1}

    def evaluate_many(self, exprs, augmentation, phase, *, seed=None, label_smoothing=0.0):
        return [self.evaluate(e, augmentation, phase, s)
                for e, s in zip(exprs, per_expression(seed, len(exprs)))]


def per_expression(seed, n):
    """``evaluate_many``'s ``seed``: one for all ``n`` expressions, or one each."""
    if seed is None or isinstance(seed, int):
        return [seed] * n
    assert len(seed) == n, (seed, n)
    return list(seed)


# --- the surrogate studies: a recording evaluator, best.json files, runs with loss keys ---------

class SeededFakeEvaluator:
    """The search.Evaluator protocol for the correlation study: fitness = ``quality(key)`` +
    noise drawn from (key, augmentation, seed, label smoothing); records every call's batch
    size, augmentation, phase, seed and label smoothing in ``calls``."""

    def __init__(self, quality=None, noise=0.02):
        self.hits = self.trainings = 0
        self.quality = quality or (lambda key: (int(key[:6], 16) % 1000) / 1000)
        self.noise = noise
        self.calls: list[tuple[int, str, str, int | None, float]] = []

    def evaluate_many(self, exprs, augmentation, phase, *, seed=None, label_smoothing=0.0):
        smoothing = [float(label_smoothing)] * len(exprs) \
            if isinstance(label_smoothing, (int, float)) else [float(x) for x in label_smoothing]
        self.calls.append((len(exprs), augmentation, phase, seed, tuple(smoothing)))
        out = []
        for e, ls, seed in zip(exprs, smoothing, per_expression(seed, len(exprs))):
            self.trainings += 1
            u = int(hashlib.sha256(f"{e.key}|{augmentation}|{seed}|{ls}"
                                   .encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            fit = self.quality(e.key) + self.noise * (u - 0.5)
            out.append({"status": "accepted", "reason": "", "fitness": fit,
                        "fitness_final": fit, "fitness_max": fit, "epochs_run": 1})
        return out


def write_best(path, augmentation, expressions):
    """A search's best.json holding ``expressions`` as its ranks 1, 2, ..."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"losses": [
        {"name": f"evolved-{augmentation}-{k}", "key": losses.parse(x).key, "expression": x,
         "fitness": 0.5} for k, x in enumerate(expressions, start=1)]}))
    return path


def write_keyed_runs(root, runs, stage="transfer", keys=None, label_smoothing=None):
    """Like :func:`write_runs`, with each loss's own ``loss_key`` (``keys``: loss -> key,
    default the loss name) and ``label_smoothing`` (loss -> value, default 0)."""
    keys, label_smoothing = keys or {}, label_smoothing or {}
    for (dataset, a, loss), by_seed in runs.items():
        for seed, acc in by_seed.items():
            d = Path(root) / stage / dataset / a / loss / f"seed{seed}"
            d.mkdir(parents=True, exist_ok=True)
            m = {"stage": stage, "dataset": dataset, "augmentation": a, "loss": loss,
                 "seed": seed, "status": "completed", "diverged": False,
                 "config_hash": f"h-{stage}-{dataset}-{a}-{loss}", "code_version": "0.1.0",
                 "test_acc": acc, "final_val_acc": acc, "best_val_acc": acc,
                 "expression": "-(y * ln(p))", "loss_key": keys.get(loss, loss),
                 "label_smoothing": label_smoothing.get(loss, 0.0), "model": "wrn"}
            (d / "metrics.json").write_text(json.dumps(m))
            (d / "provenance.json").write_text(json.dumps(
                {"git_commit": "abc", "git_dirty": False, "device": "cuda", "gpu_name": "H100"}))
    return Path(root)
