"""Regularized evolution of loss functions for one augmentation technique.

The algorithm and every default constant are the authors' earlier code's (arXiv 2403.08793);
the paper's own constants are unknown (docs/paper.md).

1. **pool**: draw ``initial_pool`` random valid genomes; score each with the pre-screen fitness
   (FF1; a failure scores 0); keep the best ``population``.
2. **rescore**: re-score the kept members with the main fitness (FF2).
3. **evolve**, ``children`` times: the fittest of ``tournament`` members drawn with replacement is
   the parent; a valid, new mutant of it is evaluated (:mod:`.breed`). A child that fails the
   pre-filter or diverges is replaced by a new mutant of the same parent, up to
   ``max_evaluations`` times, after which it is discarded. Every member ages by one; a kept child
   replaces the oldest member (ties: the lowest fitness). ``batch_children`` > 1 breeds that many
   children per step and trains them together (1 is the faithful algorithm).
   ``strategy: random`` (the random-search baseline) replaces each mutant by a fresh random
   valid genome: same pool, evaluator and budget, no selection.

**Seeds** (:mod:`.seeds`). Every training call (a pool candidate's screen, a pre-filter, a main
run) is one *evaluation*: it takes the next evaluation index of the state and trains under
``evaluation_seed(seed, augmentation, index)`` (``evaluation_seeds: per_evaluation``, the
default), so a loss found again is trained again under fresh noise, as the earlier code's
unseeded runs were; ``search_seed`` trains every evaluation under the search seed, so a loss
found again gets its cached score back. Children trained together (``batch_children`` > 1)
are one call and share its seed: the stacked copies see the same batches and start from the
same initialisation, as they must to be trained as one. Each history line records its
``seed`` and ``evaluation_index``. The pool, tournaments and mutations draw from a stream of
the augmentation's own (``stream_entropy``), so the searches of two augmentations are
independent replicates; ``shared_stream`` gives every augmentation the one stream of the
search seed (and so one initial pool). After the search, :meth:`Search.noise` scores
cross-entropy and the winner on ``noise_seeds`` *fresh* seeds, which no evaluation uses.

**Batching that leaves the algorithm alone.** ``pool_batch: K`` screens the initial pool K
candidates at a time on the stacked surrogate, each under its own evaluation seed and its own
batches (:func:`augloss.train.fit_population`): every candidate gets the record it gets alone
(bit for bit on the CPU, to float rounding on CUDA) and the history is the one-at-a-time run's.
The search is written as a generator of training :class:`Request` s (:meth:`Search.steps`):
:meth:`Search.run` answers them one by one, :func:`augloss.search.lockstep.run_lockstep`
answers those of several searches (one per augmentation) in one stacked training call each
round, so each search's history is the one it has alone.

The state is checkpointed atomically after every evaluation (every pool batch; :mod:`.state`);
a killed search resumes where it stopped and ends with the same population and history as an
uninterrupted one. Outputs in ``out_dir``: ``history.jsonl`` (one line per candidate
considered; a trained one records its ``epochs_run``), ``population.json``, ``best.json``
(top-k), ``summary.json``, ``cache_stats.json`` and ``cost.json`` (per fitness phase:
evaluations requested, cache hits, trainings, training calls, epochs, steps and seconds, summed
over resumes; timings, so the one output that is not byte-reproducible;
:mod:`augloss.search.cost` reads it).

A loss found again is trained again, and ``best.json`` ranks each loss by its best main run:
its ``fitness`` is a maximum over its ``main_runs`` noisy runs (optimistic, and the more so the
more often the search found it; ``fitness_mean`` is their mean). The unbiased measurement of the
winner is the fresh-seed one (``summary.json``'s ``noise``). ``summary.json``'s ``val_n`` is the
number of validation images each fitness is measured on (null when the evaluator has none).
"""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Generator, Sequence

import numpy as np

from augloss import losses
from augloss.config import FitnessConfig, SearchConfig
from augloss.io import config_hash, read_json, write_json
from augloss.losses import Expr, Genome, MutationFailed
from augloss.names import TECHNIQUES
from augloss.progress import Progress
from augloss.search import status as st
from augloss.search.breed import Breeder, Member
from augloss.search.evaluator import Evaluator, SurrogateEvaluator
from augloss.search.seeds import evaluation_seed, fresh_seeds, stream_entropy
from augloss.search.state import StateStore, count
from augloss.search.summary import reports, top_losses

log = logging.getLogger("augloss.search")

#: The fewest fresh seeds of the fitness-noise measurement (``search.noise_seeds``; 1 is off):
#: with 2 a paired t interval has 1 degree of freedom and is about 13 times the sd wide.
MIN_NOISE_SEEDS = 3
#: The cost.json format (:mod:`augloss.search.cost` reads it).
COST_VERSION = 1
#: SearchConfig keys that say how the search is computed, not what: left out of its config hash
#: (a state resumes under another value and the history is the same).
COMPUTE_ONLY = ("pool_batch",)


@dataclass
class Request:
    """Training the search asks for: ``exprs`` scored in fitness ``phase`` for
    ``augmentation``, under one ``seed`` or one per expression (:meth:`Evaluator.evaluate_many`).
    """

    exprs: list[Expr]
    augmentation: str
    phase: str
    seed: int | list[int]

    def answer(self, evaluator: Evaluator) -> list[dict]:
        """The records ``evaluator`` gives, one per expression, in order."""
        return evaluator.evaluate_many(self.exprs, self.augmentation, self.phase, seed=self.seed)


#: What :meth:`Search.steps` is: yields requests, is sent their records, returns its summary.
Steps = Generator[Request, list, dict]


def drive(steps: Steps, evaluator: Evaluator):
    """Run ``steps`` to the end, answering each request with ``evaluator``; its return value."""
    try:
        request = next(steps)
        while True:
            request = steps.send(request.answer(evaluator))
    except StopIteration as stop:
        return stop.value


@dataclass
class _Slot:
    """One child being bred in an evolution step."""

    iteration: int
    parent: Member | None  # None: a random-search child
    entries: list[dict] = field(default_factory=list)
    kept: Member | None = None
    done: bool = False


class Search:
    """One regularized-evolution search for ``augmentation``; call :meth:`run`."""

    def __init__(self, augmentation: str, search: SearchConfig, fitness: FitnessConfig,
                 seed: int, out_dir: str | Path, cache_dir: str | Path | None = None,
                 evaluator: Evaluator | None = None, noise_seeds: int = 1):
        if augmentation not in TECHNIQUES:
            raise ValueError(f"unknown augmentation {augmentation!r}; techniques are "
                             f"{', '.join(TECHNIQUES)}")
        self.augmentation = augmentation
        self.cfg = search
        self.fitness = fitness
        self.seed = int(seed)
        self.out = Path(out_dir)
        self.evaluator = evaluator or SurrogateEvaluator(fitness, cache_dir, seed)
        algorithm = {k: v for k, v in asdict(search).items() if k not in COMPUTE_ONLY}
        self.config_hash = config_hash({"search": algorithm, "fitness": asdict(fitness),
                                        "augmentation": augmentation, "seed": self.seed})
        self.store = StateStore(self.out, self.config_hash, stream_entropy(
            self.seed, None if search.shared_stream else augmentation))
        self.breeder = Breeder(search)
        # Fresh seeds under which cross-entropy and the winner are scored again once the search
        # is done (the fitness noise and the lead over CE); a measurement after the search, so
        # not in config_hash. 1 turns it off; 2 cannot give an interval worth reading.
        if not isinstance(noise_seeds, int) or isinstance(noise_seeds, bool) or \
                not (noise_seeds == 1 or noise_seeds >= MIN_NOISE_SEEDS):
            raise ValueError(f"search.noise_seeds must be 1 (off) or at least {MIN_NOISE_SEEDS} "
                             f"(fresh seeds for a paired 95 % interval), got {noise_seeds!r}")
        self.noise_seeds = noise_seeds

    def run(self, callback: Callable[[dict], None] | None = None) -> dict:
        """Run (or resume) the search; ``callback(state)`` runs after every checkpoint."""
        return drive(self.steps(callback), self.evaluator)

    def steps(self, callback: Callable[[dict], None] | None = None) -> Steps:
        """The search (resumed where its state stopped) as a generator: it yields every
        training :class:`Request` and is sent the records; returns ``summary.json``.
        :meth:`run` drives it with the search's own evaluator, one request at a time."""
        state = self.store.load()
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self._state, self._rng, self._callback = state, rng, callback
        self._progress = Progress(self.cfg.children, state["iteration"])
        self._rescore_progress: Progress | None = None
        self._hits_at_start = self.evaluator.hits
        self._trainings_at_start = self.evaluator.trainings
        self._start_costs(resumed=state["evaluations_drawn"] > 0)
        if state["phase"] == "pool":
            yield from self._pool()
        while state["phase"] == "rescore":
            yield from self._rescore_next()
        while state["phase"] == "evolve" and state["iteration"] < self.cfg.children:
            yield from self._evolve_step()
        if state["phase"] == "evolve":
            state["phase"] = "done"
            self._checkpoint()
        return (yield from self._write_outputs(state))

    def _evaluate(self, exprs: list[Expr], phase: str, seed: int | Sequence[int]) -> Steps:
        """The records of ``exprs`` in ``phase`` under ``seed``, from whoever drives the search."""
        seed = int(seed) if isinstance(seed, int) else [int(s) for s in seed]
        return (yield Request(list(exprs), self.augmentation, phase, seed))

    def _next_seed(self) -> tuple[int, int]:
        """The next evaluation's (index, seed); the index is part of the saved state, so a
        resumed search draws the seeds an uninterrupted one draws."""
        state = self._state
        index = state["evaluations_drawn"]
        state["evaluations_drawn"] = index + 1
        if self.cfg.evaluation_seeds == "search_seed":
            return index, self.seed
        return index, evaluation_seed(self.seed, self.augmentation, index)

    def _checkpoint(self) -> None:
        self.store.save(self._state, self._rng)
        self._write_costs()
        if self._callback is not None:
            self._callback(self._state)

    # --- cost.json: the evaluator's per-phase counters, summed over this search's runs ---------
    def _start_costs(self, resumed: bool) -> None:
        """Start counting: a fresh search from zero (``complete``), a resumed one on top of its
        cost.json. A finished search run again (to rewrite its outputs) leaves its cost.json
        as it is; one without (a search older than it) gets one marked incomplete."""
        costs = getattr(self.evaluator, "costs", None)
        self._costs_at_start = None if costs is None else \
            {p: dict(c) for p, c in costs.items()}
        self._costs_before: dict = {}
        self._costs_complete = not resumed
        path = self.out / "cost.json"
        old = None
        if resumed and costs is not None and path.exists():  # a resumed search adds to it
            try:
                old = read_json(path)
                if old.get("version") != COST_VERSION:
                    old = None
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable %s (%s); costs count from now", path, exc)
        if old is not None:
            self._costs_before = old.get("phases") or {}
            self._costs_complete = bool(old.get("complete", False))
            if self._state["phase"] == "done":
                self._costs_at_start = None  # nothing of the search left to count

    def _write_costs(self) -> None:
        costs = getattr(self.evaluator, "costs", None)
        if costs is None or self._costs_at_start is None:
            return  # an evaluator that counts nothing (a test's fake)
        phases = {}
        for phase, now in costs.items():
            start = self._costs_at_start.get(phase, {})
            before = self._costs_before.get(phase, {})
            phases[phase] = {k: before.get(k, 0) + v - start.get(k, 0) for k, v in now.items()}
        import torch  # the evaluator trained with it: already imported

        write_json(self.out / "cost.json", {
            "version": COST_VERSION, "device": str(self.fitness.device),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            # counted from the search's first evaluation (false: from a resume of a search
            # older than cost.json, or after its cost.json was lost)
            "complete": self._costs_complete,
            "pool_batch": self.cfg.pool_batch, "batch_children": self.cfg.batch_children,
            "phases": phases})

    # --- phase 1: the initial pool, drawn up front, screened pool_batch at a time -------------
    def _pool(self) -> Steps:
        state = self._state
        if not state["pool"]:
            state["pool"] = self.breeder.pool(self._rng)
            self._checkpoint()
        phase = "prescreen" if self.fitness.prescreen is not None else "main"
        n = len(state["pool"])
        progress = Progress(n, len(state["pool_scores"]))
        while len(state["pool_scores"]) < n:
            first = len(state["pool_scores"])
            batch = range(first, min(n, first + self.cfg.pool_batch))
            exprs = [Genome.from_dict(state["pool"][i]).to_expr() for i in batch]
            drawn = [self._next_seed() for _ in batch]  # in order: the seeds one by one draws
            recs = yield from self._evaluate(exprs, phase, [s for _, s in drawn])
            entries = []
            for i, expr, (index, seed), rec in zip(batch, exprs, drawn, recs):
                score = rec["fitness"] if rec["status"] not in st.LOST else 0.0
                state["pool_scores"].append(score)
                entries.append({
                    "phase": "pool", "iteration": -1, "index": i, "parent": None,
                    "seed": seed, "evaluation_index": index,
                    "expression": str(expr), "key": expr.key, "fitness": score,
                    "fitness_final": rec["fitness_final"], "fitness_max": rec["fitness_max"],
                    "status": rec["status"], "reason": rec["reason"], "stage": phase,
                    "epochs_run": _epochs_run(rec)})
            self.store.append(state, entries)
            count(state, "evaluations", len(entries))
            self._checkpoint()
            done = len(state["pool_scores"])
            if done // self.cfg.log_every > first // self.cfg.log_every or done == n:
                log.info("[%s] pool %d/%d (%s) best %.4f ETA %s", self.augmentation, done,
                         n, phase, max(state["pool_scores"]), progress.eta_text(done))
        scores = state["pool_scores"]
        order = sorted(range(len(state["pool"])), key=lambda j: (-scores[j], j))
        state["population"] = [Member(Genome.from_dict(state["pool"][j]), scores[j], 0,
                                      {}).to_dict() for j in order[:self.cfg.population]]
        if phase == "prescreen":
            state["phase"] = "rescore"
        else:
            self._start_evolution()
        self._checkpoint()

    # --- phase 2: re-score the kept members with the main fitness (FF2) -------------------------
    def _rescore_next(self) -> Steps:
        state = self._state
        i = state["rescore_index"]
        if self._rescore_progress is None:  # from this run's first re-scoring on
            self._rescore_progress = Progress(len(state["population"]), i)
        if i >= len(state["population"]):
            self._start_evolution()
            self._checkpoint()
            return
        m = Member.from_dict(state["population"][i])
        rec, entries = (yield from self._ff2([m.genome], [None], [0], "rescore", i))[0]
        m.fitness = rec["fitness"] if rec["status"] not in st.LOST else 0.0
        m.record = rec
        state["population"][i] = m.to_dict()
        state["rescore_index"] = i + 1
        self.store.append(state, entries)
        count(state, "evaluations", len(entries))
        self._checkpoint()
        n = len(state["population"])
        if (i + 1) % self.cfg.log_every == 0 or i + 1 == n:
            log.info("[%s] rescore %d/%d (main fitness) ETA %s", self.augmentation, i + 1, n,
                     self._rescore_progress.eta_text(i + 1))

    def _start_evolution(self) -> None:
        """Enter phase 3; the curve's first point is the scored population before any child."""
        state = self._state
        state["phase"] = "evolve"
        fits = [Member.from_dict(d).fitness for d in state["population"]]
        state["best_so_far"] = max(fits, default=0.0)
        if fits:
            state["curve"].append({"children": 0, "best": max(fits),
                                   "median": statistics.median(fits),
                                   "best_so_far": state["best_so_far"]})

    # --- phase 3: one evolution step of ``batch_children`` children -----------------------------
    def _evolve_step(self) -> Steps:
        state, it = self._state, self._state["iteration"]
        population = [Member.from_dict(d) for d in state["population"]]
        state.setdefault("best_so_far", max((m.fitness for m in population), default=0.0))
        evolve = self.cfg.strategy == "evolution"
        slots = [_Slot(it + j, self.breeder.tournament(population, self._rng) if evolve else None)
                 for j in range(min(self.cfg.batch_children, self.cfg.children - it))]
        for attempt in range(1, self.cfg.max_evaluations + 1):
            bred = self._breed(slots, population, attempt)
            if not bred:
                break
            scored = yield from self._ff2(
                [c for _, c in bred], [s.parent.expr.key if s.parent else None for s, _ in bred],
                [s.iteration for s, _ in bred], "evolve", attempt)
            for (slot, child), (rec, evaluated) in zip(bred, scored):
                slot.entries.extend(evaluated)
                count(state, "evaluations", len(evaluated))
                if rec["status"] in st.LOST:
                    continue  # a brand-new mutant of the same parent next round
                slot.kept = Member(child, rec["fitness"], 0, rec)
                slot.done = True
        for slot in slots:
            self._insert(population, slot)
        state["population"] = [m.to_dict() for m in population]
        self._checkpoint()

    def _breed(self, slots: list[_Slot], population: list[Member],
               attempt: int) -> list[tuple[_Slot, Genome]]:
        """A new mutant for every slot still open; a slot without one is closed."""
        bred = []
        for slot in (s for s in slots if not s.done):
            base = {"phase": "evolve", "iteration": slot.iteration,
                    "parent": slot.parent.expr.key if slot.parent else None,
                    "evaluation": attempt}
            if slot.parent is None:
                bred.append((slot, Genome.random(self._rng, self.cfg.faithful_quirks)))
                continue
            try:
                child = self.breeder.mutant(slot.parent.genome, self._rng, population, base,
                                            slot.entries, self._state)
            except MutationFailed as exc:
                count(self._state, st.MUTATION_FAILED)
                slot.entries.append({**base, "status": st.MUTATION_FAILED, "reason": str(exc),
                                     "fitness": None, "expression": None, "key": None})
                slot.done = True
                continue
            bred.append((slot, child))
        return bred

    def _insert(self, population: list[Member], slot: _Slot) -> None:
        """Age everyone; a kept child replaces the oldest member. Records the child's history."""
        state = self._state
        for m in population:
            m.age += 1
        if slot.kept is None:
            count(state, "children-discarded")
        else:
            oldest = max(range(len(population)),
                         key=lambda j: (population[j].age, -population[j].fitness, -j))
            population[oldest] = slot.kept
            state["best_so_far"] = max(state["best_so_far"], slot.kept.fitness)
        state["iteration"] += 1
        self.store.append(state, slot.entries)
        fits = [m.fitness for m in population]
        done = state["iteration"]
        if done % self.cfg.report_every == 0 or done == self.cfg.children:
            state["curve"].append({"children": done, "best": max(fits),
                                   "median": statistics.median(fits),
                                   "best_so_far": state["best_so_far"]})
        if done % self.cfg.log_every == 0:
            self._log_progress(done, fits)

    def _log_progress(self, done: int, fits: list[float]) -> None:
        hits = self.evaluator.hits - self._hits_at_start
        seen = self.evaluator.trainings - self._trainings_at_start + hits
        log.info("[%s] child %d/%d best %.4f median %.4f cache hits %.0f%% ETA %s",
                 self.augmentation, done, self.cfg.children, max(fits), statistics.median(fits),
                 100 * hits / max(1, seen), self._progress.eta_text(done))

    # --- fitness -------------------------------------------------------------------------------
    def _ff2(self, genomes: list[Genome], parents: list[str | None], iterations: list[int],
             phase: str, index: int) -> Steps:
        """FF2 for several genomes: the pre-filter (if configured), then the main run, each phase
        trained jointly for all of them under one evaluation seed (the copies of a stacked
        surrogate share batches); returns per genome its record and history entries."""
        exprs = [g.to_expr() for g in genomes]
        bases = []
        for expr, parent, iteration in zip(exprs, parents, iterations):
            base = {"phase": phase, "iteration": iteration, "parent": parent,
                    "expression": str(expr), "key": expr.key}
            base["index" if phase == "rescore" else "evaluation"] = index
            bases.append(base)
        out: list[tuple[dict, list[dict]] | None] = [None] * len(exprs)
        if self.fitness.prefilter is not None and exprs:
            pre_index, pre_seed = self._next_seed()
            pres = yield from self._evaluate(exprs, "prefilter", pre_seed)
            for i, pre in enumerate(pres):
                bases[i]["prefilter_seed"] = pre_seed
                if pre["status"] in st.LOST:
                    status = st.DIVERGED if pre["status"] == st.DIVERGED else st.FAILED_PREFILTER
                    out[i] = ({**pre, "fitness": 0.0},
                              [{**bases[i], "status": status, "reason": pre["reason"],
                                "fitness": 0.0, "stage": "prefilter", "seed": pre_seed,
                                "evaluation_index": pre_index, "epochs_run": _epochs_run(pre)}])
        alive = [i for i in range(len(exprs)) if out[i] is None]
        if not alive:
            return out
        main_index, main_seed = self._next_seed()
        recs = yield from self._evaluate([exprs[i] for i in alive], "main", main_seed)
        for i, rec in zip(alive, recs):
            out[i] = (rec, [{**bases[i], "status": rec["status"], "reason": rec["reason"],
                             "fitness": rec["fitness"] if rec["status"] != st.DIVERGED else 0.0,
                             "fitness_final": rec["fitness_final"],
                             "fitness_max": rec["fitness_max"], "stage": "main",
                             "seed": main_seed, "evaluation_index": main_index,
                             "epochs_run": _epochs_run(rec)}])
        return out

    # --- outputs -------------------------------------------------------------------------------
    def noise(self, history: list[dict]) -> dict | None:
        """:meth:`_noise` answered by the search's own evaluator."""
        return drive(self._noise(history), self.evaluator)

    def _noise(self, history: list[dict]) -> Steps:
        """Cross-entropy and the winner scored on ``noise_seeds`` fresh seeds
        (:func:`.seeds.fresh_seeds`: odd, so never a seed any evaluation of any search used to
        select): how far one loss's fitness moves with the seed alone, and the winner's lead
        over CE measured without the winner's curse. The random-search baseline measures its
        own best the same way, on the same seeds, so the two pair by seed.

        ``{"seeds", "ce": [fitness per seed], "winner": [...], "ce_key", "winner_expression",
        "winner_key"}``; None when ``noise_seeds`` is 1 (off). A winner that is cross-entropy
        itself (``winner_key == ce_key``) is trained once per seed and its scores repeat CE's. Each seed is one
        ``evaluate_many(..., seed=s)`` of the plain evaluator, cached under that seed (the
        correlation study scores on the same fresh seeds and finds these entries).
        """
        if self.noise_seeds < MIN_NOISE_SEEDS:
            return None
        exprs = [losses.parse(losses.REGISTRY["ce"])]
        top = top_losses(history, 1, self.breeder.equivalent)
        if top and top[0]["key"] != exprs[0].key:
            exprs.append(losses.parse(top[0]["expression"]))
        seeds = fresh_seeds(self.seed, self.noise_seeds)
        scores: list[list[float]] = [[] for _ in exprs]
        progress = Progress(len(seeds))
        for n, s in enumerate(seeds):
            log.info("[%s] fitness noise: fresh seed %d (%d/%d), %d loss(es) ETA %s",
                     self.augmentation, s, n + 1, len(seeds), len(exprs), progress.eta_text(n))
            recs = yield from self._evaluate(exprs, "main", s)
            for col, rec in zip(scores, recs):
                col.append(rec["fitness"] if rec["status"] not in st.LOST else 0.0)
        return {"seeds": seeds, "ce": scores[0], "winner": scores[-1], "ce_key": exprs[0].key,
                "winner_expression": str(exprs[-1]), "winner_key": exprs[-1].key}

    def val_n(self) -> int | None:
        """The number of validation images the fitness is measured on (the search dataset's
        ``val_split``, :attr:`.SurrogateEvaluator.val_set`); None for an evaluator without
        one (a test's fake)."""
        val_set = getattr(self.evaluator, "val_set", None)
        try:
            return None if val_set is None else int(len(val_set))
        except TypeError:  # no len()
            return None

    def write_outputs(self, state: dict) -> dict:
        """Write the reports of ``state`` (:func:`.summary.reports`) and the cache counts."""
        return drive(self._write_outputs(state), self.evaluator)

    def _write_outputs(self, state: dict) -> Steps:
        ce = (yield from self._evaluate([losses.parse(losses.REGISTRY["ce"])], "main",
                                        self.seed))[0]
        history = list(self.store.history())
        files = reports(state, history, augmentation=self.augmentation,
                        seed=self.seed, metric=self.fitness.metric, top_k=self.cfg.top_k,
                        config_hash=self.config_hash, ce=ce, equivalent=self.breeder.equivalent,
                        noise=(yield from self._noise(history)),
                        seeding={"evaluation_seeds": self.cfg.evaluation_seeds,
                                 "shared_stream": self.cfg.shared_stream,
                                 "strategy": self.cfg.strategy},
                        val_n=self.val_n())
        # the recipe of every phase, complete, for the record (a reader of summary.json sees
        # every key, none left to a code default)
        files["summary.json"]["recipes"] = {
            phase: self.fitness.recipe(phase).to_dict()
            for phase in ("prescreen", "prefilter", "main")
            if phase == "main" or getattr(self.fitness, phase) is not None}
        for name, obj in files.items():
            write_json(self.out / name, obj)
        # Cache use differs between a fresh and a resumed run: kept out of summary.json.
        write_json(self.out / "cache_stats.json", {"trainings": self.evaluator.trainings,
                                                    "cache_hits": self.evaluator.hits})
        if getattr(self, "_costs_at_start", None) is not None:
            self._write_costs()
        return files["summary.json"]


def _epochs_run(record: dict) -> int:
    """The epochs a record's training ran (0 when it did not train)."""
    return int(record.get("epochs_run") or 0)
