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
                      seed: int | None = None,
                      label_smoothing: float | Sequence[float] = 0.0) -> list[dict]:
        """One record per expression, in order; ``phase`` is one of :data:`PHASES`; ``seed``
        (default: the evaluator's own) seeds the training run; ``label_smoothing`` applies to
        every expression, or one value per expression (a baseline such as ``ce_ls`` scored on the
        surrogate)."""


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

    def reseeded(self, seed: int) -> "SurrogateEvaluator":
        """This evaluator under another seed (same data, config and cache)."""
        twin = copy.copy(self)
        twin.seed = int(seed)
        return twin

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
                      seed: int | None = None,
                      label_smoothing: float | Sequence[float] = 0.0) -> list[dict]:
        """Score several expressions; those not cached are trained together in one run.

        Each gets the record a one-by-one evaluation gives it (within float tolerance): the
        copies of the stacked surrogate see the same batches and never interact. ``seed``
        (default: the evaluator's own) seeds initialisation, batch order and augmentation
        draws; ``label_smoothing`` applies to every expression's loss, or gives one value per
        expression (a baseline such as ``ce_ls`` stacked with the others).
        """
        if phase not in PHASES:
            raise ValueError(f"unknown fitness phase {phase!r}; phases are {', '.join(PHASES)}")
        seed = self.seed if seed is None else int(seed)
        if isinstance(label_smoothing, (int, float)):
            smoothing = [float(label_smoothing)] * len(exprs)
        else:
            smoothing = [float(x) for x in label_smoothing]
            if len(smoothing) != len(exprs):
                raise ValueError(f"{len(smoothing)} label smoothing values for "
                                 f"{len(exprs)} expressions")
        records: list[dict | None] = []
        todo: dict[tuple[str, float], tuple[Expr, float]] = {}

        def key(expr, ls):
            return self.cache_key(expr, augmentation, phase, seed, ls)

        for expr, ls in zip(exprs, smoothing):
            record = self._read_cache(self._cache_path(key(expr, ls)), expr)
            if record is not None or (expr.key, ls) in todo:  # a repeat in a batch trains once
                self.hits += 1
            else:
                todo[(expr.key, ls)] = (expr, ls)
            records.append(record)
        pending = list(todo.values())
        trained = self._train_many([e for e, _ in pending],
                                   augmentation if phase == "main" else "none", phase, seed,
                                   [ls for _, ls in pending])
        fresh = {}
        for (expr, ls), record in zip(pending, trained):
            self.trainings += 1
            record.update({"loss_key": expr.key, "expression": str(expr), "stage": phase,
                           "augmentation": augmentation, "seed": seed})
            if ls:
                record["label_smoothing"] = ls
            path = self._cache_path(key(expr, ls))
            if path is not None:
                write_json(path, record)
            fresh[(expr.key, ls)] = record
        return [r if r is not None else fresh[(e.key, ls)]
                for r, e, ls in zip(records, exprs, smoothing)]

    def _model(self, seed: int):
        import torch

        from augloss import models

        torch.manual_seed(seed)
        return models.create(self.cfg.model["name"], self.train_set.num_classes,
                             **{k: v for k, v in self.cfg.model.items() if k != "name"})

    def _train_many(self, exprs: list[Expr], technique: str, phase: str, seed: int,
                    smoothing: Sequence[float]) -> list[dict]:
        """Train ``exprs`` (label smoothing ``smoothing[i]`` each) as one stacked surrogate
        (one by one for other models or one loss)."""
        from augloss.population import GroupedSurrogate

        if len(exprs) <= 1 or self.cfg.model["name"] != "surrogate":
            return [self._train(e, technique, phase, seed, ls)
                    for e, ls in zip(exprs, smoothing)]
        out: list[dict | None] = [None] * len(exprs)
        fns, slots = [], []
        for i, expr in enumerate(exprs):
            try:
                fns.append(losses.get(expr, label_smoothing=smoothing[i]))
                slots.append(i)
            except ValueError as exc:
                out[i] = lost(str(exc))
        if len(slots) <= 1:
            for i in slots:
                out[i] = self._train(exprs[i], technique, phase, seed, smoothing[i])
            return out
        model = GroupedSurrogate([self._model(seed) for _ in slots])
        technique_obj = aug.build(technique, self.cfg.phase_augment(phase))
        try:
            results = fit_population(model, fns, self.train_set, self.val_set, technique_obj,
                                     self.cfg.recipe(phase), seed, device=self.cfg.device,
                                     epoch_log_level=logging.DEBUG)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            log.warning("joint evaluation failed (%s); evaluating one by one", exc)
            for i in slots:
                out[i] = self._train(exprs[i], technique, phase, seed, smoothing[i])
            return out
        for i, res in zip(slots, results):
            out[i] = self._record(res, phase)
        return out

    def _train(self, expr: Expr, technique: str, phase: str, seed: int,
               label_smoothing: float = 0.0) -> dict:
        cfg = self.cfg.recipe(phase)
        try:
            loss_fn = losses.get(expr, label_smoothing=label_smoothing)
        except ValueError as exc:
            return lost(str(exc))
        model = self._model(seed)
        technique_obj = aug.build(technique, self.cfg.phase_augment(phase))
        try:
            res = fit(model, loss_fn, self.train_set, self.val_set, None, technique_obj, cfg,
                      seed, device=self.cfg.device, epoch_log_level=logging.DEBUG)
        except (RuntimeError, ValueError, FloatingPointError) as exc:  # never kill the search
            return lost(f"{type(exc).__name__}: {exc}"[:300], st.DIVERGED)
        return self._record(res, phase)

    def _record(self, res, phase: str) -> dict:
        return record_of(res, self.cfg.metric, self.cfg.diverged,
                         self.cfg.recipe(phase).fail_below)
