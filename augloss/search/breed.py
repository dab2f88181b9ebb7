"""Breeding: population members, tournaments, mutants and the duplicate tests.

A child is a fresh copy of its parent mutated once, until it is valid (structure and integrity)
and no duplicate of a population member, within ``max_mutation_attempts``. Duplicates: the same
canonical key, or an integrity phenotype within L2 ``phenotype_threshold`` of a member's;
optionally (``gradient_fingerprint``) the same loss gradients on fixed multi-class probes up to
a positive scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from augloss import losses
from augloss.config import SearchConfig
from augloss.losses import Expr, Genome, MutationFailed
from augloss.search import status as st
from augloss.search.state import count

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


@dataclass
class Member:
    """A population member: its genome, fitness, age and the record that scored it."""

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


class Breeder:
    """Draws the initial pool, picks parents by tournament and breeds valid, new children."""

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        self._phenotypes: dict[str, np.ndarray] = {}

    def pool(self, rng: np.random.Generator) -> list[dict]:
        """The initial pool: ``initial_pool`` random valid genomes (as dicts)."""
        return [Genome.random(rng, self.cfg.faithful_quirks).to_dict()
                for _ in range(self.cfg.initial_pool)]

    def tournament(self, population: list[Member], rng: np.random.Generator) -> Member:
        """The fittest of ``tournament`` members drawn with replacement (ties: the first)."""
        picks = rng.integers(len(population), size=self.cfg.tournament)
        best = max(range(len(picks)), key=lambda i: (population[picks[i]].fitness, -i))
        return population[picks[best]]

    def mutant(self, parent: Genome, rng: np.random.Generator, population: list[Member],
               base: dict, entries: list[dict], state: dict) -> Genome:
        """One valid, non-duplicate child of ``parent``; rejected attempts go to ``entries``."""
        for attempt in range(1, self.cfg.max_mutation_attempts + 1):
            child, result = parent.mutate_once(rng).validate(self.cfg.faithful_quirks)
            if result.quirk:
                count(state, f"quirk-{result.quirk}")
            if not result.ok:
                structural = result.reason in ("cycle in the active graph",) or \
                    result.reason.endswith("not used")
                status = st.REJECTED_STRUCTURE if structural else st.REJECTED_INTEGRITY
                count(state, status)
                entries.append({**base, "attempt": attempt, "status": status,
                                "reason": result.reason, "fitness": None,
                                "expression": None if structural else str(child.to_expr()),
                                "key": None if structural else child.to_expr().key})
                continue
            dup = self.duplicate(child, result, population)
            if dup:
                count(state, dup)
                entries.append({**base, "attempt": attempt, "status": st.DUPLICATE,
                                "reason": dup, "fitness": None,
                                "expression": str(child.to_expr()), "key": child.to_expr().key})
                continue
            return child
        raise MutationFailed(f"no valid child in {self.cfg.max_mutation_attempts} attempts")

    def duplicate(self, child: Genome, result, population: list[Member]) -> str:
        """Why ``child`` duplicates a member (``duplicate-key|phenotype|gradient``), or ``""``."""
        expr = child.to_expr()
        if expr.key in {m.expr.key for m in population}:
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

    def equivalent(self, a: str, b: str) -> bool:
        """Whether expressions ``a`` and ``b`` are one loss by the population's duplicate rules
        (same key, or integrity phenotypes within ``phenotype_threshold``)."""
        ea, eb = losses.parse(a), losses.parse(b)
        if ea.key == eb.key:
            return True
        pa, pb = self._expr_phenotype(ea), self._expr_phenotype(eb)
        return pa.shape == pb.shape and \
            float(np.linalg.norm(pa - pb)) <= self.cfg.phenotype_threshold

    def _expr_phenotype(self, e) -> np.ndarray:
        if e.key not in self._phenotypes:
            self._phenotypes[e.key] = losses.integrity(e).phenotype
        return self._phenotypes[e.key]

    def _phenotype(self, g: Genome) -> np.ndarray:
        return self._expr_phenotype(g.to_expr())
