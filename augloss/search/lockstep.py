"""Several searches advanced together: each round, the training every search asks for next is
trained in one stacked call.

The five searches of an experiment (one per augmentation) are independent of each other, so
one child of each can train as a copy of one stacked surrogate without changing any of them:
every search keeps its own state, random stream, evaluation seeds, cache counters, resume and
outputs, and a copy trains on its own batches under its own seed and technique
(:func:`augloss.train.fit_population`), so each gets the record it gets alone. On the CPU
that is bit for bit, and a search's history is the one it has when run alone (tested). On
CUDA the copies are fused into grouped kernels whose sums are ordered differently: records
agree to float rounding, and a candidate within rounding of a threshold (an abort, a
pre-filter's ``fail_below``, the pool's top-``population`` cut) can go the other way, after
which that search's history differs from the one alone -- as it may between any two CUDA runs
that are not forced to deterministic kernels. One search failing (an exception) stops the
job, and so all of them: each resumes from its own state on the retry. What it saves is the GPU's idle time: a small surrogate leaves most of a large GPU
unused, and K copies in one call cost little more than one (``python -m benchmarks --only
joint``: ``lockstep5_vs_sequential5``).

Each search is a generator of :class:`~.evolution.Request` s (:meth:`.Search.steps`). A round
collects the pending request of every search that has not finished, plans them on their
evaluators (cached records answered from the cache, :meth:`.SurrogateEvaluator.plan`),
trains every job left in one :func:`~.evaluator.train_jobs` call (jobs of one fitness phase
stack; two searches asking for the very same training, same cache key, train it once) and
sends each search its records. A search in another phase than the rest (one still in its
pool while another evolves) trains in a group of its own in the same round. Evaluators
without :meth:`plan` (a test's fake) answer one request at a time.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from augloss.search.evaluator import train_jobs
from augloss.search.evolution import Request, Search

log = logging.getLogger("augloss.search")


def run_lockstep(searches: Sequence[Search], callback: Callable[[Search, dict], None] | None
                 = None, max_copies: int | None = None) -> list[dict]:
    """Run (or resume) ``searches`` together; their ``summary.json`` s, in order.

    ``callback(search, state)`` runs after each of a search's checkpoints; ``max_copies``
    caps the copies of one stacked call (None: every job of a phase in a round together).
    """
    if len({id(s) for s in searches}) != len(searches):
        raise ValueError("run_lockstep: a search given twice")
    if len({id(s.evaluator) for s in searches}) != len(searches):
        raise ValueError("run_lockstep: two searches share one evaluator (each needs its own "
                         "counters and cost.json; share data with SurrogateEvaluator.share_data)")
    outs = {s.out.resolve() for s in searches}
    if len(outs) != len(searches):
        raise ValueError("run_lockstep: two searches share an output directory")
    steps = [s.steps(None if callback is None else (lambda st, s=s: callback(s, st)))
             for s in searches]
    results: list[dict | None] = [None] * len(searches)
    pending: dict[int, Request] = {}
    for i, gen in enumerate(steps):
        _advance(i, gen, None, pending, results)
    rounds = 0
    while pending:
        answers = _answer(searches, pending, max_copies)
        rounds += 1
        for i, records in answers.items():
            _advance(i, steps[i], records, pending, results)
    log.info("lockstep: %d searches finished in %d rounds", len(searches), rounds)
    return results  # type: ignore[return-value]


def _advance(i: int, gen, records, pending: dict, results: list) -> None:
    """Send ``records`` to search ``i`` (None: start it); note its next request or result."""
    try:
        pending[i] = next(gen) if records is None else gen.send(records)
    except StopIteration as stop:
        pending.pop(i, None)
        results[i] = stop.value


def _answer(searches: Sequence[Search], pending: dict[int, Request],
            max_copies: int | None) -> dict[int, list[dict]]:
    """The records of every pending request: planned ones trained together, the rest alone."""
    plans, answers = {}, {}
    for i, request in pending.items():
        ev = searches[i].evaluator
        if hasattr(ev, "plan"):
            plans[i] = ev.plan(request.exprs, request.augmentation, request.phase,
                               seed=request.seed)
        else:
            answers[i] = request.answer(ev)
    train_jobs([job for plan in plans.values() for job in plan.jobs], max_copies)
    for i, plan in plans.items():
        answers[i] = plan.records()
    return answers
