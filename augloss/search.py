"""Regularized evolution of loss functions for one augmentation technique, and the
cross-augmentation correlation study.

The algorithm and every default constant are the authors' earlier code's (arXiv 2403.08793;
../shared/reference/paper.md section 6); paper 1's own constants are unknown.

1. Draw ``initial_pool`` random valid genomes; score each with the pre-screen fitness (FF1; a
   failure scores 0); keep the best ``population`` and re-score them with the main fitness (FF2).
2. ``children`` times: sample ``tournament`` members with replacement, the fittest is the parent;
   mutate a fresh copy of it once until the child is valid and no duplicate of a population
   member (<= ``max_mutation_attempts``); evaluate it. A child that fails the pre-filter (or
   diverges) is replaced by a new mutant of the same parent, up to ``max_evaluations`` times, after
   which it is discarded. Every member ages by one; a kept child replaces the oldest member
   (ties: the lowest fitness).

Duplicates: the same canonical key, or an integrity phenotype within L2 ``phenotype_threshold``
of a member's; optionally (``gradient_fingerprint``) the same loss gradients on a fixed set of
multi-class probes up to a positive scale.

Every evaluation is cached on disk by (loss key, augmentation, fitness stage, training config,
seed): reruns, resumed runs and larger budgets never train a candidate twice. The state is
checkpointed atomically after every evaluation; a killed search resumes where it stopped and ends
with the same population and history as an uninterrupted one.

Outputs in ``out_dir``: ``history.jsonl`` (one line per candidate considered), ``population.json``,
``best.json`` (top-k), ``summary.json``; ``state.json`` is the resumable state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from augloss import augment as aug
from augloss import losses
from augloss.io import atomic_path, config_hash, dataclass_from_dict, read_json, write_json
from augloss.losses import Expr, Genome, MutationFailed
from augloss.train import TrainConfig, fit, fit_population

log = logging.getLogger("augloss.search")

STATE_VERSION = 1
FITNESS_METRICS = ("final", "max")


# --- configuration --------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchConfig:
    """Regularized-evolution constants (defaults: the authors' earlier code)."""

    population: int = 100
    initial_pool: int = 1000
    children: int = 4000
    tournament: int = 20
    max_mutation_attempts: int = 2500
    max_evaluations: int = 7
    phenotype_threshold: float = 0.01
    gradient_fingerprint: bool = False
    fingerprint_tolerance: float = 1e-3
    faithful_quirks: bool = False
    top_k: int = 5
    log_every: int = 10
    report_every: int = 100
    # Children bred per step from as many tournaments and trained together as one stacked
    # surrogate (augloss.population). 1 is the faithful algorithm (one child per step).
    batch_children: int = 1

    def __post_init__(self):
        positive = ("population", "initial_pool", "tournament", "max_mutation_attempts",
                    "max_evaluations", "top_k", "log_every", "report_every", "batch_children")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"search.{key} must be a positive integer, got {value!r}")
        if not isinstance(self.children, int) or isinstance(self.children, bool) \
                or self.children < 0:
            raise ValueError(f"search.children must be a non-negative integer, "
                             f"got {self.children!r}")
        if self.initial_pool < self.population:
            raise ValueError(f"search.initial_pool ({self.initial_pool}) must be >= "
                             f"search.population ({self.population})")
        if self.top_k > self.population:
            raise ValueError(f"search.top_k ({self.top_k}) must not exceed "
                             f"search.population ({self.population})")
        if self.phenotype_threshold < 0 or self.fingerprint_tolerance <= 0:
            raise ValueError("search.phenotype_threshold must be >= 0 and "
                             "search.fingerprint_tolerance > 0")

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        return dataclass_from_dict(cls, d, "search")


@dataclass(frozen=True)
class FitnessConfig:
    """How a candidate is scored: the surrogate, the data and the three training recipes.

    ``prescreen`` (FF1) scores the initial pool, ``prefilter`` is FF2's short screen and ``main``
    FF2's training run; both screens train without augmentation, the main run under the
    search's technique. ``threshold_scale`` multiplies every abort/fail threshold. ``metric``:
    validation accuracy at the ``final`` epoch (default) or the ``max`` over epochs (the earlier
    code); both are recorded.
    """

    dataset: str = "cifar10"
    data_root: str = "data"
    train_split: str = "train"
    val_split: str = "val"
    model: dict = field(default_factory=lambda: {"name": "surrogate"})
    prescreen: dict | None = None
    prefilter: dict | None = None
    main: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    metric: str = "final"
    threshold_scale: float = 1.0
    device: str = "cpu"

    def __post_init__(self):
        if self.metric not in FITNESS_METRICS:
            raise ValueError(f"fitness.metric must be one of {FITNESS_METRICS}, "
                             f"got {self.metric!r}")
        if self.threshold_scale < 0:
            raise ValueError("fitness.threshold_scale must be >= 0")
        for key in ("prescreen", "prefilter", "main"):
            recipe = getattr(self, key)
            if recipe is not None:
                TrainConfig.from_dict(recipe)  # validates, naming the key
        aug.AugmentConfig(**self.augment)

    @classmethod
    def from_dict(cls, d: dict) -> "FitnessConfig":
        return dataclass_from_dict(cls, d, "fitness")

    def recipe(self, stage: str) -> TrainConfig:
        d = dict(getattr(self, stage))
        s = self.threshold_scale
        d["abort"] = [[e, a * s] for e, a in d.get("abort", [])]
        if d.get("fail_below") is not None:
            d["fail_below"] = d["fail_below"] * s
        d["evaluate_test"] = False
        return TrainConfig.from_dict(d)

    def stage_hash(self, stage: str, data_digest: str) -> str:
        return config_hash({"stage": stage, "recipe": self.recipe(stage).to_dict(),
                            "model": self.model, "augment": self.augment,
                            "dataset": self.dataset, "data": data_digest,
                            "train_split": self.train_split, "val_split": self.val_split})


# --- fitness evaluation with an on-disk cache -----------------------------------------------

class Evaluator:
    """Trains the surrogate with a candidate loss; caches every result on disk."""

    def __init__(self, fitness: FitnessConfig, cache_dir: str | Path | None, seed: int):
        from augloss import data

        self.cfg = fitness
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.train_set = data.load(fitness.dataset, fitness.data_root, fitness.train_split)
        self.val_set = data.load(fitness.dataset, fitness.data_root, fitness.val_split)
        self.digest = hashlib.sha256((self.train_set.digest() + self.val_set.digest())
                                     .encode()).hexdigest()[:16]
        self.hits = 0
        self.trainings = 0

    def cache_key(self, expr: Expr, augmentation: str, stage: str) -> str:
        return config_hash({"loss": expr.key, "augmentation": augmentation, "stage": stage,
                            "config": self.cfg.stage_hash(stage, self.digest),
                            "seed": self.seed})

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, path: Path | None, expr: Expr) -> dict | None:
        if path is None or not path.exists():
            return None
        try:
            record = read_json(path)
            if record.get("loss_key") != expr.key or "fitness" not in record:
                raise ValueError("entry does not match its key")
            return record
        except (OSError, ValueError) as exc:  # corrupted or truncated: recompute
            log.warning("discarding unreadable cache entry %s (%s)", path, exc)
            return None

    def evaluate(self, expr: Expr, augmentation: str, stage: str) -> dict:
        """Score ``expr`` with fitness stage ``stage`` (prescreen / prefilter / main)."""
        return self.evaluate_many([expr], augmentation, stage)[0]

    def evaluate_many(self, exprs: list[Expr], augmentation: str, stage: str) -> list[dict]:
        """Score several expressions; those not cached are trained together in one run.

        Each gets the record a one-by-one evaluation gives it (within float tolerance): the
        copies of the stacked surrogate see the same batches and never interact.
        """
        records: list[dict | None] = []
        todo: dict[str, Expr] = {}
        for expr in exprs:
            record = self._read_cache(self._cache_path(self.cache_key(expr, augmentation, stage)),
                                      expr)
            if record is not None:
                self.hits += 1
            elif expr.key in todo:
                self.hits += 1  # the same loss twice in one batch: trained once
            else:
                todo[expr.key] = expr
            records.append(record)
        pending = list(todo.values())
        trained = self._train_many(pending, augmentation if stage == "main" else "none", stage)
        fresh = {}
        for expr, record in zip(pending, trained):
            self.trainings += 1
            record.update({"loss_key": expr.key, "expression": str(expr), "stage": stage,
                           "augmentation": augmentation, "seed": self.seed})
            path = self._cache_path(self.cache_key(expr, augmentation, stage))
            if path is not None:
                write_json(path, record)
            fresh[expr.key] = record
        return [r if r is not None else fresh[e.key] for r, e in zip(records, exprs)]

    def _model(self):
        from augloss import models

        torch.manual_seed(self.seed)
        return models.create(self.cfg.model["name"], self.train_set.num_classes,
                             **{k: v for k, v in self.cfg.model.items() if k != "name"})

    def _record(self, res) -> dict:
        vals = [v for v in res.val_accs if not math.isnan(v)]
        final = vals[-1] if vals else 0.0
        best = max(vals) if vals else 0.0
        if res.status in ("failed", "diverged"):
            final = best = 0.0
        fitness = final if self.cfg.metric == "final" else best
        return {"status": res.status, "reason": res.reason, "fitness": fitness,
                "fitness_final": final, "fitness_max": best, "epochs_run": res.epochs_run}

    def _train_many(self, exprs: list[Expr], technique: str, stage: str) -> list[dict]:
        """Train ``exprs`` as one stacked surrogate (one by one for other models or one loss)."""
        from augloss.population import GroupedSurrogate

        if len(exprs) <= 1 or self.cfg.model["name"] != "surrogate":
            return [self._train(e, technique, stage) for e in exprs]
        cfg = self.cfg.recipe(stage)
        out: list[dict | None] = [None] * len(exprs)
        fns, slots = [], []
        for i, expr in enumerate(exprs):
            try:
                fns.append(losses.get(expr))
                slots.append(i)
            except ValueError as exc:
                out[i] = _failed(str(exc))
        if len(slots) <= 1:
            for i in slots:
                out[i] = self._train(exprs[i], technique, stage)
            return out
        model = GroupedSurrogate([self._model() for _ in slots])
        technique_obj = aug.build(technique, aug.AugmentConfig(**self.cfg.augment))
        try:
            results = fit_population(model, fns, self.train_set, self.val_set, technique_obj,
                                     cfg, self.seed, device=self.cfg.device)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            log.warning("joint evaluation failed (%s); evaluating one by one", exc)
            for i in slots:
                out[i] = self._train(exprs[i], technique, stage)
            return out
        for i, res in zip(slots, results):
            out[i] = self._record(res)
        return out

    def _train(self, expr: Expr, technique: str, stage: str) -> dict:
        cfg = self.cfg.recipe(stage)
        try:
            loss_fn = losses.get(expr)
        except ValueError as exc:
            return _failed(str(exc))
        model = self._model()
        technique_obj = aug.build(technique, aug.AugmentConfig(**self.cfg.augment))
        try:
            res = fit(model, loss_fn, self.train_set, self.val_set, None, technique_obj, cfg,
                      self.seed, device=self.cfg.device)
        except (RuntimeError, ValueError, FloatingPointError) as exc:  # never kill the search
            return {"status": "diverged", "reason": f"{type(exc).__name__}: {exc}"[:300],
                    "fitness": 0.0, "fitness_final": 0.0, "fitness_max": 0.0, "epochs_run": 0}
        return self._record(res)


def _failed(reason: str) -> dict:
    return {"status": "failed", "reason": reason, "fitness": 0.0, "fitness_final": 0.0,
            "fitness_max": 0.0, "epochs_run": 0}


# --- duplicate tests --------------------------------------------------------------------------

_FP_CACHE: dict[str, np.ndarray | None] = {}


def gradient_fingerprint(expr: Expr) -> np.ndarray | None:
    """Unit-norm loss gradient w.r.t. the logits on fixed multi-class probes (``None`` if zero
    or non-finite): two losses with the same fingerprint train identically up to the LR."""
    if expr.key in _FP_CACHE:
        return _FP_CACHE[expr.key]
    g = torch.Generator().manual_seed(20240409)
    logits = (torch.randn(48, 10, generator=g) * 2.0).requires_grad_()
    hard = torch.randint(0, 10, (48,), generator=g)
    y = torch.nn.functional.one_hot(hard, 10).float()
    y[24:] = torch.softmax(torch.randn(24, 10, generator=g) * 2.0, dim=-1)
    out = None
    try:
        value = losses.ExpressionLoss(expr)(logits, y)
        (grad,) = torch.autograd.grad(value, logits)
        v = grad.flatten().double().numpy()
        norm = float(np.linalg.norm(v))
        if np.isfinite(v).all() and norm > 0:
            out = v / norm
    except (ValueError, RuntimeError):
        out = None
    _FP_CACHE[expr.key] = out
    return out


# --- the search ---------------------------------------------------------------------------------

@dataclass
class Member:
    genome: Genome
    fitness: float
    age: int
    record: dict

    @property
    def expr(self) -> Expr:
        return self.genome.to_expr()

    def to_dict(self) -> dict:
        return {"genome": self.genome.to_dict(), "fitness": self.fitness, "age": self.age,
                "expression": str(self.expr), "key": self.expr.key,
                "fitness_final": self.record.get("fitness_final"),
                "fitness_max": self.record.get("fitness_max"),
                "status": self.record.get("status")}

    @classmethod
    def from_dict(cls, d: dict) -> "Member":
        return cls(Genome.from_dict(d["genome"]), float(d["fitness"]), int(d["age"]),
                   {k: d.get(k) for k in ("fitness_final", "fitness_max", "status")})


class SearchStateError(RuntimeError):
    """The saved search state or history cannot be used (corrupted, or another config)."""


class Search:
    """One regularized-evolution search for ``augmentation``; call :meth:`run`."""

    def __init__(self, augmentation: str, search: SearchConfig, fitness: FitnessConfig,
                 seed: int, out_dir: str | Path, cache_dir: str | Path | None = None,
                 evaluator: Evaluator | None = None):
        if augmentation not in aug.TECHNIQUES:
            raise ValueError(f"unknown augmentation {augmentation!r}; techniques are "
                             f"{', '.join(aug.TECHNIQUES)}")
        self.augmentation = augmentation
        self.cfg = search
        self.fitness = fitness
        self.seed = int(seed)
        self.out = Path(out_dir)
        self.evaluator = evaluator or Evaluator(fitness, cache_dir, seed)
        self.config_hash = config_hash({"search": asdict(search), "fitness": asdict(fitness),
                                        "augmentation": augmentation, "seed": self.seed})
        self._phenotypes: dict[str, np.ndarray] = {}

    # --- state ------------------------------------------------------------------------------
    def _fresh_state(self) -> dict:
        return {"version": STATE_VERSION, "config_hash": self.config_hash, "phase": "pool",
                "rng": np.random.default_rng(self.seed).bit_generator.state,
                "pool": [], "pool_scores": [], "population": [], "rescore_index": 0,
                "iteration": 0, "history_len": 0, "counters": {}, "curve": []}

    def _load_state(self) -> dict:
        path = self.out / "state.json"
        if not path.exists():
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "history.jsonl").write_text("")
            return self._fresh_state()
        try:
            state = read_json(path)
        except (OSError, ValueError) as exc:
            raise SearchStateError(f"{path} is unreadable ({exc}); delete {self.out} to start "
                                   f"this search again") from exc
        if state.get("config_hash") != self.config_hash or state.get("version") != STATE_VERSION:
            raise SearchStateError(f"{path} belongs to another search configuration; delete "
                                   f"{self.out} to start again with this one")
        self._truncate_history(state["history_len"])
        log.info("resuming search from %s (phase %s, child %d)", path, state["phase"],
                 state["iteration"])
        return state

    def _truncate_history(self, n: int) -> None:
        """Keep the first ``n`` lines (those the state accounts for); check they are intact."""
        path = self.out / "history.jsonl"
        raw = path.read_bytes() if path.exists() else b""
        lines = raw.split(b"\n")
        if len(lines) - 1 < n and not (len(lines) == n and lines[-1]):
            raise SearchStateError(f"{path} has fewer lines than the saved state records ({n}); "
                                   f"delete {self.out} to start this search again")
        for i, line in enumerate(lines[:n]):
            try:
                json.loads(line)
            except ValueError as exc:
                raise SearchStateError(f"{path} line {i + 1} is corrupted ({exc}); delete "
                                       f"{self.out} to start this search again") from exc
        keep = b"".join(line + b"\n" for line in lines[:n])
        if keep != raw:
            with atomic_path(path) as tmp:
                tmp.write_bytes(keep)

    def _save_state(self, state: dict, rng: np.random.Generator) -> None:
        state["rng"] = rng.bit_generator.state
        write_json(self.out / "state.json", state)

    def _history(self, state: dict, entries: list[dict]) -> None:
        with open(self.out / "history.jsonl", "a") as f:
            for e in entries:
                f.write(json.dumps(e, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        state["history_len"] += len(entries)

    @staticmethod
    def _count(state: dict, key: str, n: int = 1) -> None:
        state["counters"][key] = state["counters"].get(key, 0) + n

    # --- helpers ----------------------------------------------------------------------------
    def _phenotype(self, g: Genome) -> np.ndarray:
        e = g.to_expr()
        if e.key not in self._phenotypes:
            self._phenotypes[e.key] = losses.integrity(e).phenotype
        return self._phenotypes[e.key]

    def _duplicate(self, child: Genome, result, population: list[Member]) -> str:
        expr = child.to_expr()
        keys = {m.expr.key for m in population}
        if expr.key in keys:
            return "duplicate-key"
        ph = result.phenotype
        for m in population:
            other = self._phenotype(m.genome)
            if other.shape == ph.shape and \
                    float(np.linalg.norm(other - ph)) <= self.cfg.phenotype_threshold:
                return "duplicate-phenotype"
        if self.cfg.gradient_fingerprint:
            fp = gradient_fingerprint(expr)
            if fp is not None:
                for m in population:
                    other = gradient_fingerprint(m.expr)
                    if other is not None and \
                            float(np.linalg.norm(other - fp)) <= self.cfg.fingerprint_tolerance:
                        return "duplicate-gradient"
        return ""

    def _mutant(self, parent: Genome, rng: np.random.Generator, population: list[Member],
                base: dict, entries: list[dict], state: dict) -> Genome:
        """One valid, non-duplicate child of ``parent``; rejected attempts go to ``entries``."""
        for attempt in range(1, self.cfg.max_mutation_attempts + 1):
            child, result = parent.mutate_once(rng).validate(self.cfg.faithful_quirks)
            if result.quirk:
                self._count(state, f"quirk-{result.quirk}")
            if not result.ok:
                structural = result.reason in ("cycle in the active graph",) or \
                    result.reason.endswith("not used")
                status = "rejected-structure" if structural else "rejected-integrity"
                self._count(state, status)
                entries.append({**base, "attempt": attempt, "status": status,
                                "reason": result.reason, "fitness": None,
                                "expression": None if structural else str(child.to_expr()),
                                "key": None if structural else child.to_expr().key})
                continue
            dup = self._duplicate(child, result, population)
            if dup:
                self._count(state, dup)
                entries.append({**base, "attempt": attempt, "status": "duplicate", "reason": dup,
                                "fitness": None, "expression": str(child.to_expr()),
                                "key": child.to_expr().key})
                continue
            return child
        raise MutationFailed(f"no valid child in {self.cfg.max_mutation_attempts} attempts")

    # --- phases -----------------------------------------------------------------------------
    def run(self, callback: Callable[[dict], None] | None = None) -> dict:
        """Run (or resume) the search; ``callback(state)`` runs after every checkpoint."""
        state = self._load_state()
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        t0 = time.perf_counter()
        evals_at_start = self.evaluator.trainings
        hits_at_start = self.evaluator.hits

        def checkpoint():
            self._save_state(state, rng)
            if callback is not None:
                callback(state)

        # Phase 1: the initial pool, drawn up front, scored one by one.
        if state["phase"] == "pool":
            if not state["pool"]:
                state["pool"] = [Genome.random(rng, self.cfg.faithful_quirks).to_dict()
                                 for _ in range(self.cfg.initial_pool)]
                checkpoint()
            stage = "prescreen" if self.fitness.prescreen is not None else "main"
            while len(state["pool_scores"]) < len(state["pool"]):
                i = len(state["pool_scores"])
                g = Genome.from_dict(state["pool"][i])
                rec = self.evaluator.evaluate(g.to_expr(), self.augmentation, stage)
                score = rec["fitness"] if rec["status"] not in ("failed", "diverged") else 0.0
                state["pool_scores"].append(score)
                self._history(state, [{"phase": "pool", "iteration": -1, "index": i,
                                       "parent": None, "expression": str(g.to_expr()),
                                       "key": g.to_expr().key, "fitness": score,
                                       "fitness_final": rec["fitness_final"],
                                       "fitness_max": rec["fitness_max"],
                                       "status": _status(rec), "reason": rec["reason"],
                                       "stage": stage}])
                self._count(state, "evaluations")
                checkpoint()
            order = sorted(range(len(state["pool"])), key=lambda j: (-state["pool_scores"][j], j))
            state["population"] = [
                Member(Genome.from_dict(state["pool"][j]), state["pool_scores"][j], 0,
                       {}).to_dict() for j in order[:self.cfg.population]]
            state["phase"] = "rescore" if stage == "prescreen" else "evolve"
            checkpoint()

        # Phase 2: re-score the kept members with the main fitness (FF2).
        while state["phase"] == "rescore":
            i = state["rescore_index"]
            if i >= len(state["population"]):
                state["phase"] = "evolve"
                checkpoint()
                break
            m = Member.from_dict(state["population"][i])
            rec, entries = self._ff2(m.genome, None, 0, "rescore", i)
            m.fitness = rec["fitness"] if rec["status"] not in ("failed", "diverged") else 0.0
            m.record = rec
            state["population"][i] = m.to_dict()
            state["rescore_index"] = i + 1
            self._history(state, entries)
            self._count(state, "evaluations", len(entries))
            checkpoint()

        # Phase 3: evolution, ``batch_children`` children per step (1: the faithful algorithm).
        while state["phase"] == "evolve" and state["iteration"] < self.cfg.children:
            it = state["iteration"]
            population = [Member.from_dict(d) for d in state["population"]]
            slots = []
            for j in range(min(self.cfg.batch_children, self.cfg.children - it)):
                picks = rng.integers(len(population), size=self.cfg.tournament)
                best = max(range(len(picks)), key=lambda i: (population[picks[i]].fitness, -i))
                slots.append({"iteration": it + j, "parent": population[picks[best]],
                              "entries": [], "kept": None, "done": False})
            for attempt in range(1, self.cfg.max_evaluations + 1):
                bred = []
                for slot in (x for x in slots if not x["done"]):
                    parent = slot["parent"]
                    base = {"phase": "evolve", "iteration": slot["iteration"],
                            "parent": parent.expr.key, "evaluation": attempt}
                    try:
                        child = self._mutant(parent.genome, rng, population, base,
                                             slot["entries"], state)
                    except MutationFailed as exc:
                        self._count(state, "mutation-failed")
                        slot["entries"].append({**base, "status": "mutation-failed",
                                                "reason": str(exc), "fitness": None,
                                                "expression": None, "key": None})
                        slot["done"] = True
                        continue
                    bred.append((slot, child))
                if not bred:
                    break
                scored = self._ff2_many([c for _, c in bred],
                                        [x["parent"].expr.key for x, _ in bred],
                                        [x["iteration"] for x, _ in bred], "evolve", attempt)
                for (slot, child), (rec, evaluated) in zip(bred, scored):
                    slot["entries"].extend(evaluated)
                    self._count(state, "evaluations", len(evaluated))
                    if rec["status"] in ("failed", "diverged"):
                        continue  # a brand-new mutant of the same parent next round
                    slot["kept"] = Member(child, rec["fitness"], 0, rec)
                    slot["done"] = True
            for slot in slots:
                for m in population:
                    m.age += 1
                if slot["kept"] is None:
                    self._count(state, "children-discarded")
                else:
                    oldest = max(range(len(population)),
                                 key=lambda j: (population[j].age, -population[j].fitness, -j))
                    population[oldest] = slot["kept"]
                state["iteration"] += 1
                self._history(state, slot["entries"])
                fits = [m.fitness for m in population]
                if state["iteration"] % self.cfg.report_every == 0 or \
                        state["iteration"] == self.cfg.children:
                    state["curve"].append({"children": state["iteration"], "best": max(fits),
                                           "median": statistics.median(fits)})
                if state["iteration"] % self.cfg.log_every == 0:
                    done = state["iteration"]
                    rate = (time.perf_counter() - t0) / max(1, done - it + 1)
                    seen = self.evaluator.trainings - evals_at_start + \
                        self.evaluator.hits - hits_at_start
                    hit_rate = (self.evaluator.hits - hits_at_start) / max(1, seen)
                    log.info("[%s] child %d/%d best %.4f median %.4f cache hits %.0f%% ETA %s",
                             self.augmentation, done, self.cfg.children, max(fits),
                             statistics.median(fits), 100 * hit_rate,
                             time.strftime("%H:%M:%S", time.gmtime(
                                 rate * (self.cfg.children - done))))
            state["population"] = [m.to_dict() for m in population]
            checkpoint()
        if state["phase"] == "evolve":
            state["phase"] = "done"
            checkpoint()
        return self.write_outputs(state)

    def _ff2(self, g: Genome, parent: str | None, iteration: int, phase: str,
             index: int) -> tuple[dict, list[dict]]:
        """FF2: the pre-filter (if configured), then the main run; history entries for both."""
        return self._ff2_many([g], [parent], [iteration], phase, index)[0]

    def _ff2_many(self, genomes: list[Genome], parents: list[str | None],
                  iterations: list[int], phase: str, index: int) -> list[tuple[dict, list[dict]]]:
        """:meth:`_ff2` for several genomes, each stage trained jointly for all of them."""
        exprs = [g.to_expr() for g in genomes]
        bases = []
        for expr, parent, iteration in zip(exprs, parents, iterations):
            base = {"phase": phase, "iteration": iteration, "parent": parent,
                    "expression": str(expr), "key": expr.key}
            base["index" if phase == "rescore" else "evaluation"] = index
            bases.append(base)
        out: list[tuple[dict, list[dict]] | None] = [None] * len(exprs)
        alive = list(range(len(exprs)))
        if self.fitness.prefilter is not None:
            pres = self.evaluator.evaluate_many(exprs, self.augmentation, "prefilter")
            for i, pre in enumerate(pres):
                if pre["status"] in ("failed", "diverged"):
                    status = "diverged" if pre["status"] == "diverged" else "failed-prefilter"
                    out[i] = ({**pre, "fitness": 0.0},
                              [{**bases[i], "status": status, "reason": pre["reason"],
                                "fitness": 0.0, "stage": "prefilter"}])
            alive = [i for i in alive if out[i] is None]
        recs = self.evaluator.evaluate_many([exprs[i] for i in alive], self.augmentation, "main")
        for i, rec in zip(alive, recs):
            out[i] = (rec, [{**bases[i], "status": _status(rec), "reason": rec["reason"],
                             "fitness": rec["fitness"] if rec["status"] != "diverged" else 0.0,
                             "fitness_final": rec["fitness_final"],
                             "fitness_max": rec["fitness_max"], "stage": "main"}])
        return out

    # --- outputs ------------------------------------------------------------------------------
    def write_outputs(self, state: dict) -> dict:
        population = sorted((Member.from_dict(d) for d in state["population"]),
                            key=lambda m: (-m.fitness, m.expr.key))
        write_json(self.out / "population.json", {
            "augmentation": self.augmentation, "seed": self.seed,
            "members": [m.to_dict() for m in population]})
        best: dict[str, dict] = {}
        with open(self.out / "history.jsonl") as f:
            for line in f:
                e = json.loads(line)
                if e.get("stage") == "main" and e["status"] in ("accepted", "aborted"):
                    prev = best.get(e["key"])
                    if prev is None or e["fitness"] > prev["fitness"]:
                        best[e["key"]] = e
        top = sorted(best.values(), key=lambda e: (-e["fitness"], e["key"]))[:self.cfg.top_k]
        ce = self.evaluator.evaluate(losses.parse(losses.REGISTRY["ce"]), self.augmentation,
                                     "main")
        write_json(self.out / "best.json", {
            "augmentation": self.augmentation, "seed": self.seed, "metric": self.fitness.metric,
            "losses": [{"rank": r + 1, "name": f"evolved-{self.augmentation}-{r + 1}",
                        "expression": e["expression"], "key": e["key"],
                        "latex": losses.parse(e["expression"]).latex(),
                        "fitness": e["fitness"], "fitness_final": e["fitness_final"],
                        "fitness_max": e["fitness_max"]} for r, e in enumerate(top)],
            "reference": {"ce": {"fitness": ce["fitness"], "fitness_final": ce["fitness_final"],
                                 "fitness_max": ce["fitness_max"]}}})
        counters = dict(sorted(state["counters"].items()))
        summary = {
            "augmentation": self.augmentation, "seed": self.seed,
            "config_hash": self.config_hash, "children": state["iteration"],
            "evaluations": counters.get("evaluations", 0),
            "rejections": {k: v for k, v in counters.items()
                           if k.startswith(("rejected", "duplicate", "mutation-failed"))},
            "counters": counters, "curve": state["curve"],
            "best_fitness": top[0]["fitness"] if top else None,
            "ce_fitness": ce["fitness"],
        }
        write_json(self.out / "summary.json", summary)
        # Cache use differs between a fresh and a resumed run: kept out of summary.json.
        write_json(self.out / "cache_stats.json", {"trainings": self.evaluator.trainings,
                                                    "cache_hits": self.evaluator.hits})
        return summary


def _status(rec: dict) -> str:
    return {"completed": "accepted", "aborted": "aborted", "failed": "failed",
            "diverged": "diverged"}[rec["status"]]


# --- cross-augmentation study ---------------------------------------------------------------

def correlation_study(best_files: dict[str, str | Path], top_n: int, fitness: FitnessConfig,
                      seed: int, cache_dir: str | Path | None,
                      augmentations: tuple[str, ...] | None = None) -> dict:
    """Evaluate the top-``top_n`` losses of every search (plus CE) under every augmentation.

    Returns the loss x augmentation fitness matrix and the Spearman and Kendall rank
    correlations (with p-values) between every pair of augmentations.
    """
    from scipy import stats

    augmentations = tuple(augmentations or best_files)
    entries: dict[str, dict] = {}
    ce = losses.parse(losses.REGISTRY["ce"])
    entries[ce.key] = {"name": "ce", "expression": str(ce), "origin": "baseline"}
    for origin, path in best_files.items():
        for e in read_json(path)["losses"][:top_n]:
            entries.setdefault(e["key"], {"name": e["name"], "expression": e["expression"],
                                          "origin": origin})
    keys = sorted(entries, key=lambda k: (entries[k]["origin"] != "baseline",
                                          entries[k]["name"], k))
    evaluator = Evaluator(fitness, cache_dir, seed)
    matrix = []
    for k in keys:
        expr = losses.parse(entries[k]["expression"])
        matrix.append([evaluator.evaluate(expr, a, "main")["fitness"] for a in augmentations])
    m = np.asarray(matrix, dtype=float)
    corr: dict[str, dict] = {"spearman": {}, "kendall": {}}
    for i, a in enumerate(augmentations):
        for j, b in enumerate(augmentations):
            if j <= i:
                continue
            pair = f"{a}|{b}"
            if len(keys) >= 3 and np.ptp(m[:, i]) > 0 and np.ptp(m[:, j]) > 0:
                rho = stats.spearmanr(m[:, i], m[:, j])
                tau = stats.kendalltau(m[:, i], m[:, j])
                corr["spearman"][pair] = {"rho": float(rho.statistic), "p": float(rho.pvalue)}
                corr["kendall"][pair] = {"tau": float(tau.statistic), "p": float(tau.pvalue)}
            else:
                corr["spearman"][pair] = {"rho": None, "p": None}
                corr["kendall"][pair] = {"tau": None, "p": None}
    return {"augmentations": list(augmentations),
            "losses": [{"key": k, **entries[k]} for k in keys],
            "fitness": matrix, **corr, "seed": seed, "metric": fitness.metric}

