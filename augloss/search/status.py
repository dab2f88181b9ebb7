"""The one status vocabulary of a search: evaluation records, history entries and counters.

An evaluation record (:mod:`.evaluator`) carries one of :data:`TRAINED`; a history entry carries
any of :data:`ALL`. The trainer's own ``completed`` becomes :data:`ACCEPTED` in exactly one place
(:func:`augloss.search.evaluator.record_of`).
"""

ACCEPTED = "accepted"  # trained to the end; its fitness counts
ABORTED = "aborted"  # stopped by an early-abort rule; its fitness (so far) counts
FAILED = "failed"  # never reached the recipe's fail_below accuracy, or not a valid loss
DIVERGED = "diverged"  # non-finite loss or weights; scores 0 (fitness.diverged: discard)
# Stopped at a non-finite loss and scored by the epochs that ran (fitness.diverged: keep, the
# earlier code's Keras TerminateOnNaN): its fitness counts, like an aborted run's.
TERMINATED = "terminated-nan"
TRAINED = (ACCEPTED, ABORTED, FAILED, DIVERGED, TERMINATED)

FAILED_PREFILTER = "failed-prefilter"  # the pre-filter run failed: the main run was skipped
REJECTED_STRUCTURE = "rejected-structure"  # mutant with a cycle or an unused input
REJECTED_INTEGRITY = "rejected-integrity"  # mutant that fails the integrity test
DUPLICATE = "duplicate"  # mutant equal to a population member (key, phenotype or gradient)
MUTATION_FAILED = "mutation-failed"  # no valid, new mutant within max_mutation_attempts
ALL = TRAINED + (FAILED_PREFILTER, REJECTED_STRUCTURE, REJECTED_INTEGRITY, DUPLICATE,
                 MUTATION_FAILED)

SCORED = (ACCEPTED, ABORTED, TERMINATED)  # entries that may enter the top-k
LOST = (FAILED, DIVERGED)  # a candidate with this status scores 0

_FROM_TRAINER = {"completed": ACCEPTED, "aborted": ABORTED, "failed": FAILED,
                 "diverged": DIVERGED}


def from_trainer(status: str, diverged: str = "discard") -> str:
    """The search's name for a :class:`augloss.train.FitResult` status; a diverged run is
    :data:`TERMINATED` under the ``keep`` policy."""
    if status == "diverged" and diverged == "keep":
        return TERMINATED
    return _FROM_TRAINER[status]
