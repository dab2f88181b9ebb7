"""Scoring a candidate: the :class:`Evaluator` protocol and the surrogate that implements it.

A record is ``{"status", "reason", "fitness", "fitness_final", "fitness_max", "epochs_run"}``
(status from :mod:`.status`); the fitness of a failed run is 0, and of a diverged one under
``fitness.diverged: discard``. Every evaluation is cached on disk by (loss key, augmentation,
fitness phase, training config, input pipeline, fitness semantics and their version
:data:`augloss.config.FITNESS_VERSION`, data, seed): reruns, resumed runs and larger budgets
never train a candidate twice, and an entry written under other semantics is never reused.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from augloss import augment as aug
from augloss import losses
from augloss.config import FitnessConfig
from augloss.io import config_hash, read_json, write_json
from augloss.losses import Expr
from augloss.search import status as st
from augloss.train import fit, fit_population

log = logging.getLogger("augloss.search")

#: The fitness phases: FF1's pre-screen, FF2's pre-filter and main run. ("Stage" means a
#: training stage of the workflow, :data:`augloss.names.STAGES`; history records and cache keys
#: keep their on-disk field name ``"stage"`` so earlier searches resume and hit the cache.)
PHASES = ("prescreen", "prefilter", "main")


class Evaluator(Protocol):
    """What a search needs from its scorer (tests implement it with pseudo-fitness)."""

    hits: int  # evaluations answered without training (cache, or a repeat within a batch)
    trainings: int  # evaluations that trained

    def evaluate_many(self, exprs: list[Expr], augmentation: str, phase: str, *,
                      seed: int | Sequence[int] | None = None,
                      label_smoothing: float | Sequence[float] = 0.0) -> list[dict]:
        """One record per expression, in order; ``phase`` is one of :data:`PHASES`; ``seed``
        (default: the evaluator's own) seeds the training run, or gives one seed per
        expression; ``label_smoothing`` applies to every expression, or one value per
        expression (a baseline such as ``ce_ls`` scored on the surrogate)."""


def lost(reason: str, status: str = st.FAILED) -> dict:
    """The record of a candidate that scores 0 without a finished training run."""
    return {"status": status, "reason": reason, "fitness": 0.0, "fitness_final": 0.0,
            "fitness_max": 0.0, "epochs_run": 0}


def record_of(res, metric: str, diverged: str = "discard",
              fail_below: float | None = None) -> dict:
    """The record of a :class:`augloss.train.FitResult`; ``metric`` is ``final`` or ``max``.

    ``diverged: keep`` scores a run stopped at a non-finite loss by its finite epochs (final =
    the last finite one), as the earlier code did; it still fails under ``fail_below`` when
    its best training accuracy stays below it (the pre-filter's rule, whatever stopped it).
    """
    status = st.from_trainer(res.status, diverged)
    vals = [v for v in res.val_accs if not math.isnan(v)]
    final = vals[-1] if vals else 0.0
    best = max(vals) if vals else 0.0
    if status == st.TERMINATED and fail_below is not None and \
            max((h["train_acc"] for h in res.history), default=0.0) < fail_below:
        status = st.FAILED
    if status in st.LOST:
        final = best = 0.0
    fitness = final if metric == "final" else best
    return {"status": status, "reason": res.reason, "fitness": fitness,
            "fitness_final": final, "fitness_max": best, "epochs_run": res.epochs_run}


class SurrogateEvaluator:
    """Trains the surrogate with a candidate loss; caches every result on disk."""

    def __init__(self, fitness: FitnessConfig, cache_dir: str | Path | None, seed: int):
        from augloss import data

        self.cfg = fitness
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.train_set = data.load(fitness.dataset, fitness.data_root, fitness.train_split,
                                   download=False)
        self.val_set = data.load(fitness.dataset, fitness.data_root, fitness.val_split,
                                 download=False)
        self.digest = hashlib.sha256((self.train_set.digest() + self.val_set.digest())
                                     .encode()).hexdigest()[:16]
        self.hits = 0
        self.trainings = 0
        #: per phase: evaluations requested, cache hits, trainings, training calls (K stacked
        #: copies are one call), epochs and steps trained, seconds inside training calls (the
        #: search's cost.json; timings, so kept out of every reproducible output)
        self.costs = {p: new_cost() for p in PHASES}

    def reseeded(self, seed: int) -> "SurrogateEvaluator":
        """This evaluator under another seed (same data, config and cache)."""
        twin = copy.copy(self)
        twin.seed = int(seed)
        return twin

    def share_data(self, other: "SurrogateEvaluator") -> None:
        """Use ``other``'s loaded datasets when they are the same data (one copy in memory
        for the searches of a lockstep job)."""
        if other.digest == self.digest:
            self.train_set, self.val_set = other.train_set, other.val_set

    def cache_key(self, expr: Expr, augmentation: str, phase: str, seed: int | None = None,
                  label_smoothing: float = 0.0) -> str:
        key = {"loss": expr.key, "augmentation": augmentation, "stage": phase,
               "config": self.cfg.phase_hash(phase, self.digest),
               "seed": self.seed if seed is None else int(seed)}
        if label_smoothing:  # absent when 0, so entries written before it existed still hit
            key["label_smoothing"] = float(label_smoothing)
        return config_hash(key)

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, path: Path | None, expr: Expr) -> dict | None:
        if path is None or not path.exists():
            return None
        try:
            record = read_json(path)
            if record.get("loss_key") != expr.key or "fitness" not in record:
                raise ValueError("entry does not match its key")
            if record.get("status") not in st.TRAINED:
                raise ValueError(f"status {record.get('status')!r} is not a search status")
            return record
        except (OSError, ValueError) as exc:  # corrupted, truncated or stale: recompute
            log.warning("discarding unusable cache entry %s (%s)", path, exc)
            return None

    def evaluate(self, expr: Expr, augmentation: str, phase: str, **kwargs) -> dict:
        """Score ``expr`` with fitness phase ``phase`` (prescreen / prefilter / main)."""
        return self.evaluate_many([expr], augmentation, phase, **kwargs)[0]

    def evaluate_many(self, exprs: list[Expr], augmentation: str, phase: str, *,
                      seed: int | Sequence[int] | None = None,
                      label_smoothing: float | Sequence[float] = 0.0) -> list[dict]:
        """Score several expressions; those not cached are trained together in one run.

        Each gets the record a one-by-one evaluation gives it: the copies of the stacked
        surrogate never interact (bit for bit on the CPU, within float rounding on CUDA,
        :func:`augloss.population.stack`). ``seed`` (default: the evaluator's own) seeds
        initialisation, batch order and augmentation draws: one seed for all (the copies then
        share their batches), or one per expression (each copy draws its own, as alone: a
        pool's screens under their own evaluation seeds). ``label_smoothing`` applies to every
        expression's loss, or gives one value per expression (a baseline such as ``ce_ls``
        stacked with the others).
        """
        plan = self.plan(exprs, augmentation, phase, seed=seed, label_smoothing=label_smoothing)
        train_jobs(plan.jobs)
        return plan.records()

    def plan(self, exprs: list[Expr], augmentation: str, phase: str, *,
             seed: int | Sequence[int] | None = None,
             label_smoothing: float | Sequence[float] = 0.0) -> "Plan":
        """What :meth:`evaluate_many` would train: the cached records and the :class:`Job` s
        left to train (:func:`train_jobs` trains jobs of several plans, of several searches,
        together); :meth:`Plan.records` then gives the records in order."""
        if phase not in PHASES:
            raise ValueError(f"unknown fitness phase {phase!r}; phases are {', '.join(PHASES)}")
        seeds = _per_expression(seed if seed is not None else self.seed, len(exprs), "seed", int)
        smoothing = _per_expression(label_smoothing, len(exprs), "label smoothing", float)
        cost = self.costs[phase]
        cost["requested"] += len(exprs)
        plan = Plan(self, [], {})
        for expr, s, ls in zip(exprs, seeds, smoothing):
            key = self.cache_key(expr, augmentation, phase, s, ls)
            record = self._read_cache(self._cache_path(key), expr)
            if record is not None or key in plan.jobs_by_key:  # a repeat trains once
                self.hits += 1
                cost["cache_hits"] += 1
            else:
                plan.jobs_by_key[key] = Job(self, expr, augmentation,
                                            augmentation if phase == "main" else "none",
                                            phase, s, ls, key)
            plan.slots.append((key, record))
        return plan

    def _model(self, seed: int):
        import torch

        from augloss import models

        torch.manual_seed(seed)
        return models.create(self.cfg.model["name"], self.train_set.num_classes,
                             **{k: v for k, v in self.cfg.model.items() if k != "name"})

    def _stack_key(self, phase: str) -> tuple:
        """Jobs with equal keys can train as copies of one stacked surrogate: one recipe,
        model, input pipeline, data and device."""
        return (self.cfg.phase_hash(phase, self.digest), str(self.cfg.device))

    def _finish(self, job: "Job", record: dict) -> dict:
        """Label a freshly trained ``record`` and write it to the cache."""
        self.trainings += 1
        cost = self.costs[job.phase]
        cost["trainings"] += 1
        cost["epochs"] += int(record.get("epochs_run") or 0)
        cost["steps"] += int(record.get("epochs_run") or 0) * self._steps_per_epoch(job.phase)
        record.update({"loss_key": job.expr.key, "expression": str(job.expr),
                       "stage": job.phase, "augmentation": job.augmentation,
                       "seed": job.seed})
        if job.label_smoothing:
            record["label_smoothing"] = job.label_smoothing
        path = self._cache_path(job.key)
        if path is not None:
            write_json(path, record)
        return record

    def _answered(self, job: "Job") -> None:
        """Count ``job`` as a cache hit (another evaluator's identical job trained it) and
        cache its record here too."""
        self.hits += 1
        self.costs[job.phase]["cache_hits"] += 1
        path = self._cache_path(job.key)
        if path is not None and not path.exists():
            write_json(path, job.record)

    def _steps_per_epoch(self, phase: str) -> int:
        cfg = self.cfg.recipe(phase)
        return int(cfg.steps_per_epoch or max(1, len(self.train_set) // cfg.batch_size))

    def _train(self, job: "Job") -> dict:
        """Train one job alone (:func:`augloss.train.fit`)."""
        cfg = self.cfg.recipe(job.phase)
        try:
            loss_fn = losses.get(job.expr, label_smoothing=job.label_smoothing)
        except ValueError as exc:
            return lost(str(exc))
        model = self._model(job.seed)
        technique_obj = aug.build(job.technique, self.cfg.phase_augment(job.phase))
        try:
            res = fit(model, loss_fn, self.train_set, self.val_set, None, technique_obj, cfg,
                      job.seed, device=self.cfg.device, epoch_log_level=logging.DEBUG)
        except (RuntimeError, ValueError, FloatingPointError) as exc:  # never kill the search
            return lost(f"{type(exc).__name__}: {exc}"[:300], st.DIVERGED)
        return self._record(res, job.phase)

    def _record(self, res, phase: str) -> dict:
        return record_of(res, self.cfg.metric, self.cfg.diverged,
                         self.cfg.recipe(phase).fail_below)


# --- jobs: what is left to train, from one or several evaluators ----------------------------------

def new_cost() -> dict:
    """One phase's cost counters (:attr:`SurrogateEvaluator.costs`)."""
    return {"requested": 0, "cache_hits": 0, "trainings": 0, "calls": 0, "epochs": 0,
            "steps": 0, "seconds": 0.0}


def _per_expression(value, n: int, what: str, kind) -> list:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [kind(value)] * n
    values = [kind(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{len(values)} {what} values for {n} expressions")
    return values


@dataclass
class Job:
    """One candidate to train: its evaluator (data, recipes, cache), loss, the search's
    augmentation, the technique it trains under (``none`` for the screens), the phase, seed,
    label smoothing and cache key."""

    evaluator: SurrogateEvaluator
    expr: Expr
    augmentation: str
    technique: str
    phase: str
    seed: int
    label_smoothing: float
    key: str
    record: dict | None = None


@dataclass
class Plan:
    """One request's cached records and jobs (:meth:`SurrogateEvaluator.plan`)."""

    evaluator: SurrogateEvaluator
    slots: list[tuple[str, dict | None]]  # (cache key, cached record or None), in order
    jobs_by_key: dict[str, Job]

    @property
    def jobs(self) -> list[Job]:
        return list(self.jobs_by_key.values())

    def records(self) -> list[dict]:
        """The records in the request's order, once its jobs are trained."""
        out = []
        for key, record in self.slots:
            if record is None:
                record = self.jobs_by_key[key].record
                if record is None:
                    raise RuntimeError("Plan.records() before its jobs were trained")
            out.append(record)
        return out


def train_jobs(jobs: list[Job], max_copies: int | None = None) -> None:
    """Train ``jobs`` (of one or several evaluators), setting each ``job.record``.

    Jobs whose evaluators agree on the phase's recipe, model, input pipeline, data and device
    train as copies of one stacked surrogate, at most ``max_copies`` at a time: on one
    shared batch when they share a seed and technique, else each copy on its own
    (:func:`augloss.train.fit_population`). Any other job, or a stacked run that fails
    (e.g. out of memory), trains alone. Each job's evaluator counts the training and its
    share of the call's seconds, and caches the record. Jobs with the same cache key (two
    searches asking for the very same training) train once; the others count a cache hit.
    """
    unique: dict[str, Job] = {}
    repeats: list[tuple[Job, Job]] = []
    for job in jobs:
        if job.key in unique:
            repeats.append((job, unique[job.key]))
        else:
            unique[job.key] = job
    groups: dict[tuple, list[Job]] = {}
    for job in unique.values():
        groups.setdefault((job.phase, *job.evaluator._stack_key(job.phase)), []).append(job)
    for group in groups.values():
        size = max_copies or len(group)
        for i in range(0, len(group), size):
            _train_group(group[i:i + size])
    for job, trained in repeats:
        job.record = dict(trained.record)
        job.evaluator._answered(job)


def _train_group(group: list[Job]) -> None:
    import time

    t0 = time.perf_counter()
    first = group[0].evaluator
    if len(group) > 1 and first.cfg.model["name"] == "surrogate":
        records = _train_stacked(group)
    else:
        records = [None] * len(group)
    for i, job in enumerate(group):  # what the stack could not train, alone
        if records[i] is None:
            records[i] = job.evaluator._train(job)
    seconds = time.perf_counter() - t0
    for job, record in zip(group, records):
        job.record = job.evaluator._finish(job, record)
        job.evaluator.costs[job.phase]["seconds"] += seconds / len(group)
    for ev in {id(j.evaluator): j.evaluator for j in group}.values():
        ev.costs[group[0].phase]["calls"] += 1


def _train_stacked(group: list[Job]) -> list[dict | None]:
    """The records of ``group`` trained as one stacked surrogate; None where a job must
    train alone (its loss cannot be built: a record saying so; a failed stack: all None)."""
    from augloss.population import stack

    out: list[dict | None] = [None] * len(group)
    fns, slots = [], []
    for i, job in enumerate(group):
        try:
            fns.append(losses.get(job.expr, label_smoothing=job.label_smoothing))
            slots.append(i)
        except ValueError as exc:
            out[i] = lost(str(exc))
    if len(slots) <= 1:
        return out
    ev = group[0].evaluator
    phase = group[0].phase
    jobs = [group[i] for i in slots]
    config = ev.cfg.phase_augment(phase)
    shared = len({(j.seed, j.technique) for j in jobs}) == 1
    techniques = [aug.build(j.technique, config) for j in jobs]
    model = stack([j.evaluator._model(j.seed) for j in jobs], ev.cfg.device)
    try:
        results = fit_population(model, fns, ev.train_set, ev.val_set,
                                 techniques[0] if shared else techniques, ev.cfg.recipe(phase),
                                 jobs[0].seed if shared else [j.seed for j in jobs],
                                 device=ev.cfg.device, epoch_log_level=logging.DEBUG)
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        log.warning("joint evaluation failed (%s); evaluating one by one", exc)
        return [r if r is not None and i not in slots else None for i, r in enumerate(out)]
    for i, res in zip(slots, results):
        out[i] = group[i].evaluator._record(res, phase)
    return out
