"""The seeds of a search's evaluations and of every re-scoring after it.

Two disjoint families, so that no score used to *select* a loss is ever reused to *measure* it
(the winner's curse):

* :func:`evaluation_seed` — the seed of one evaluation inside a search, drawn from (search seed,
  augmentation, evaluation index). Every augmentation's search gets its own stream, and a loss
  found again later is trained again under a new seed (as the earlier code retrained it).
  Always **even**.
* :func:`fresh_seed` — the ``i``-th seed of the measurements made after the searches (the fitness
  noise, the correlation study, the surrogate-validity scores). The same for every
  augmentation, so a loss's scores under two augmentations pair by seed. Always **odd**, so no
  fresh seed equals any evaluation seed, whatever the indices.

:func:`stream_entropy` seeds a search's random stream (pool, tournaments, mutations): one per
augmentation unless ``search.algorithm.shared_stream`` asks for one shared by all.

Seeds are 31-bit non-negative integers derived by SHA-256 (stable across Python, NumPy and
platforms; no global RNG is touched).
"""

from __future__ import annotations

import hashlib
import json

#: Families are told apart by the lowest bit: evaluation seeds are even, fresh seeds odd.
_EVALUATION, _FRESH = 0, 1


def _derive(family: int, *parts) -> int:
    digest = hashlib.sha256(json.dumps([family, *parts]).encode()).digest()
    return (int.from_bytes(digest[:4], "big") >> 1) & ~1 | family


def evaluation_seed(search_seed: int, augmentation: str, index: int) -> int:
    """The seed of evaluation ``index`` (0, 1, ...) of ``augmentation``'s search."""
    return _derive(_EVALUATION, "evaluation", int(search_seed), str(augmentation), int(index))


def fresh_seed(search_seed: int, i: int) -> int:
    """The ``i``-th (0, 1, ...) seed no search evaluation uses: for measurements after the
    search (fitness noise, correlation study, surrogate validity)."""
    return _derive(_FRESH, "fresh", int(search_seed), int(i))


def fresh_seeds(search_seed: int, n: int) -> list[int]:
    """The first ``n`` fresh seeds (:func:`fresh_seed`)."""
    return [fresh_seed(search_seed, i) for i in range(int(n))]


def is_fresh(seed: int) -> bool:
    """Whether ``seed`` belongs to the fresh family (never used to select)."""
    return int(seed) % 2 == _FRESH


def stream_entropy(search_seed: int, augmentation: str | None) -> int | list[int]:
    """The entropy of a search's random stream (its initial pool, tournaments and mutations).

    ``augmentation`` given: ``[search_seed, <31 bits of SHA-256 of the augmentation name>]``,
    a :class:`numpy.random.SeedSequence` entropy of the augmentation's own, so the searches of
    two augmentations are independent replicates with their own pools (the default). ``None``
    (``search.algorithm.shared_stream: true``): the search seed itself, so every augmentation
    draws from one stream and starts from one pool (the behaviour before streams were split).
    """
    if augmentation is None:
        return int(search_seed)
    digest = hashlib.sha256(json.dumps(["stream", str(augmentation)]).encode()).digest()
    return [int(search_seed), int.from_bytes(digest[:4], "big") >> 1]
