"""The graph genome of the search space, as in the authors' earlier code (arXiv 2403.08793).

Node ids: ``0 = y``, ``1 = p`` (softmax probabilities), ``2 = +1``, ``3 = -1``, ``4..7`` the hidden
nodes h0..h3, ``8`` the root. Each of the five computing nodes (4..8) holds a unary op id (of 27), a
binary op id (of 7) and an arity flag; only the op of the current arity is live, the other lies
dormant until a mutation toggles the arity. ``first[i]`` / ``second[i]`` are node i's operands
(``A[i, first] = 1``, ``A[i, second] = 2`` in the earlier code's 9x9 wiring matrix); ``second`` is
``-1`` for a unary node.

Random genomes: P(unary) is 0.7 for hidden nodes and 0.2 for the root; a hidden node draws its first
operand uniformly from the inputs and the other hidden nodes, its second (if binary) from the same
set minus the first; the root draws its operand(s) only from the hidden nodes, distinct if binary.

Mutation (exactly one per child, on a uniformly chosen *active* node, r ~ U(0, 1)):

* r >= 0.30 - op change: a different op of the current arity, uniformly;
* 0.15 <= r < 0.30 - rewire: c uniform over the 9 ids the node does not reference (itself and the
  root included: cycles are rejected later); unary: c becomes the operand; binary: with p 0.2 swap
  the operands, else c replaces the first or the second operand with p 0.5 each;
* r < 0.15 - arity toggle, c drawn as above: unary -> binary puts c second (p 0.5) or first with the
  old operand moved second; binary -> unary drops the second operand (p 0.5) or the first.

Validity: the active sub-graph (reachable from the root) is acyclic, uses both ``y`` and ``p``, and
passes the integrity test, whose ``flip`` is stored with the genome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from augloss.losses.expr import Call, Const, Expr, Leaf
from augloss.losses.integrity import IntegrityResult, integrity, judge, curve
from augloss.losses.ops import BINARY, UNARY

N_INPUTS = 4
HIDDEN = (4, 5, 6, 7)
ROOT = 8
NODES = HIDDEN + (ROOT,)
N_IDS = 9
P_UNARY_HIDDEN = 0.7
P_UNARY_ROOT = 0.2
P_OP_CHANGE = 0.70
P_REWIRE = 0.15  # the remaining 0.15 toggles the arity
P_SWAP = 0.20
MAX_ATTEMPTS = 2500


class InvalidGenome(ValueError):
    """A genome that violates the structural rules (cycle, missing input, bad wiring)."""


class MutationFailed(RuntimeError):
    """No valid (and non-duplicate) child was found within the allowed attempts."""


def _slot(node: int) -> int:
    return node - HIDDEN[0]


@dataclass(frozen=True)
class Genome:
    """An immutable loss graph. Tuples are indexed by computing node (0..4 = ids 4..8)."""

    unary: tuple[int, ...]
    binary: tuple[int, ...]
    is_binary: tuple[bool, ...]
    first: tuple[int, ...]
    second: tuple[int, ...]
    flip: bool = False
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        for name in ("unary", "binary", "is_binary", "first", "second"):
            value = tuple(getattr(self, name))
            if len(value) != len(NODES):
                raise InvalidGenome(f"{name} needs {len(NODES)} entries, got {len(value)}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "is_binary", tuple(bool(b) for b in self.is_binary))
        for k in range(len(NODES)):
            if not 0 <= self.unary[k] < len(UNARY):
                raise InvalidGenome(f"node {NODES[k]}: unary op id {self.unary[k]} out of range")
            if not 0 <= self.binary[k] < len(BINARY):
                raise InvalidGenome(f"node {NODES[k]}: binary op id {self.binary[k]} out of range")
            if not 0 <= self.first[k] < N_IDS:
                raise InvalidGenome(f"node {NODES[k]}: operand {self.first[k]} out of range")
            if self.is_binary[k]:
                if not 0 <= self.second[k] < N_IDS or self.second[k] == self.first[k]:
                    raise InvalidGenome(f"node {NODES[k]}: bad second operand {self.second[k]}")
            elif self.second[k] != -1:
                raise InvalidGenome(f"node {NODES[k]} is unary but has a second operand")

    # --- structure -----------------------------------------------------------------------
    def operands(self, node: int) -> tuple[int, ...]:
        k = _slot(node)
        return (self.first[k], self.second[k]) if self.is_binary[k] else (self.first[k],)

    def active(self) -> frozenset[int]:
        """Ids reachable from the root (the root included)."""
        seen: set[int] = set()
        stack = [ROOT]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n >= N_INPUTS:
                stack.extend(self.operands(n))
        return frozenset(seen)

    def is_acyclic(self) -> bool:
        """True if no cycle (self-loops included) is reachable from the root."""
        state: dict[int, int] = {}  # 1 = on the stack, 2 = done

        def visit(n: int) -> bool:
            if n < N_INPUTS or state.get(n) == 2:
                return True
            if state.get(n) == 1:
                return False
            state[n] = 1
            ok = all(visit(m) for m in self.operands(n))
            state[n] = 2
            return ok

        return visit(ROOT)

    def structure_error(self) -> str:
        """Empty if acyclic and both ``y`` and ``p`` are active, else the reason."""
        if not self.is_acyclic():
            return "cycle in the active graph"
        act = self.active()
        missing = [name for i, name in ((0, "y"), (1, "p")) if i not in act]
        if missing:
            return f"{' and '.join(missing)} not used"
        return ""

    # --- expressions ---------------------------------------------------------------------
    def raw_expr(self) -> Expr:
        """The loss term without the flip (the integrity test's input)."""
        if "raw" not in self._cache:
            if not self.is_acyclic():
                raise InvalidGenome("cycle in the active graph")
            memo: dict[int, Expr] = {0: Leaf("y"), 1: Leaf("p"), 2: Const(1.0), 3: Const(-1.0)}

            def build(n: int) -> Expr:
                if n not in memo:
                    k = _slot(n)
                    args = tuple(build(m) for m in self.operands(n))
                    op = BINARY[self.binary[k]] if self.is_binary[k] else UNARY[self.unary[k]]
                    memo[n] = Call(op.name, args)
                return memo[n]

            self._cache["raw"] = build(ROOT)
        return self._cache["raw"]

    def to_expr(self) -> Expr:
        """The loss as trained: the raw term, negated when ``flip`` is set."""
        raw = self.raw_expr()
        return Call("neg", (raw,)) if self.flip else raw

    def validate(self, faithful_quirks: bool = False) -> tuple["Genome", IntegrityResult]:
        """Check validity; return the genome with its ``flip`` set by the integrity test.

        With ``faithful_quirks`` the test sees the term with the *inherited* flip applied, as the
        earlier code did (see :mod:`augloss.losses.integrity`); the result is not ok on failure.
        """
        err = self.structure_error()
        if err:
            return self, IntegrityResult(False, False, np.zeros(0, np.float32), err)
        if faithful_quirks:
            result = judge(curve(self.to_expr()), faithful_quirks=True)
            if result.ok and self.flip:
                result.quirk = (result.quirk + ",inherited-flip").lstrip(",")
        else:
            result = integrity(self.raw_expr())
        if not result.ok:
            return self, result
        return replace(self, flip=result.flip), result

    # --- randomness ----------------------------------------------------------------------
    @classmethod
    def random(cls, rng: np.random.Generator, faithful_quirks: bool = False,
               max_attempts: int = 100_000) -> "Genome":
        """Draw random genomes until one is valid (acyclic, uses y and p, passes integrity)."""
        for _ in range(max_attempts):
            g, result = cls.random_unchecked(rng).validate(faithful_quirks)
            if result.ok:
                return g
        raise MutationFailed(f"no valid random genome in {max_attempts} draws")

    @classmethod
    def random_unchecked(cls, rng: np.random.Generator) -> "Genome":
        """One draw of the initial wiring rules, without validity checks."""
        unary, binary, is_bin, first, second = [], [], [], [], []
        for node in NODES:
            unary.append(int(rng.integers(len(UNARY))))
            binary.append(int(rng.integers(len(BINARY))))
            p_unary = P_UNARY_ROOT if node == ROOT else P_UNARY_HIDDEN
            b = bool(rng.random() >= p_unary)
            if node == ROOT:
                pool = list(HIDDEN)
            else:
                pool = [i for i in range(N_INPUTS)] + [h for h in HIDDEN if h != node]
            a = int(rng.choice(pool))
            first.append(a)
            second.append(int(rng.choice([c for c in pool if c != a])) if b else -1)
            is_bin.append(b)
        return cls(tuple(unary), tuple(binary), tuple(is_bin), tuple(first), tuple(second))

    def mutate_once(self, rng: np.random.Generator) -> "Genome":
        """Exactly one mutation of a uniformly chosen active node; the result may be invalid."""
        nodes = sorted(n for n in self.active() if n >= N_INPUTS)
        node = int(rng.choice(nodes))
        k = _slot(node)
        unary, binary = list(self.unary), list(self.binary)
        is_bin, first, second = list(self.is_binary), list(self.first), list(self.second)
        r = rng.random()
        if r >= 1.0 - P_OP_CHANGE:
            if is_bin[k]:
                binary[k] = int(rng.choice([i for i in range(len(BINARY)) if i != binary[k]]))
            else:
                unary[k] = int(rng.choice([i for i in range(len(UNARY)) if i != unary[k]]))
        else:
            refs = set(self.operands(node))
            c = int(rng.choice([i for i in range(N_IDS) if i not in refs]))
            if r >= 1.0 - P_OP_CHANGE - P_REWIRE:  # rewire
                if not is_bin[k]:
                    first[k] = c
                elif rng.random() < P_SWAP:
                    first[k], second[k] = second[k], first[k]
                elif rng.random() < 0.5:
                    first[k] = c
                else:
                    second[k] = c
            else:  # arity toggle
                if not is_bin[k]:
                    if rng.random() < 0.5:
                        second[k] = c
                    else:
                        first[k], second[k] = c, first[k]
                    is_bin[k] = True
                else:
                    if rng.random() >= 0.5:
                        first[k] = second[k]
                    second[k] = -1
                    is_bin[k] = False
        return Genome(tuple(unary), tuple(binary), tuple(is_bin), tuple(first), tuple(second),
                      flip=self.flip)

    def mutate(self, rng: np.random.Generator, faithful_quirks: bool = False,
               max_attempts: int = MAX_ATTEMPTS,
               is_duplicate: Callable[["Genome", IntegrityResult], bool] | None = None,
               ) -> "Genome":
        """A new valid child with exactly one mutation; the parent is unchanged.

        Each attempt starts again from the parent. ``is_duplicate(child, result)`` may reject a
        child (the search's duplicate rules). Raises :class:`MutationFailed` after
        ``max_attempts`` failures (the earlier code trained the last invalid child instead).
        """
        return self.mutate_with_result(rng, faithful_quirks, max_attempts, is_duplicate)[0]

    def mutate_with_result(self, rng: np.random.Generator, faithful_quirks: bool = False,
                           max_attempts: int = MAX_ATTEMPTS,
                           is_duplicate: Callable[["Genome", IntegrityResult], bool] | None = None,
                           ) -> tuple["Genome", IntegrityResult, int]:
        """Like :meth:`mutate`, also returning the integrity result and the attempts used."""
        for attempt in range(1, max_attempts + 1):
            child, result = self.mutate_once(rng).validate(faithful_quirks)
            if not result.ok:
                continue
            if is_duplicate is not None and is_duplicate(child, result):
                continue
            return child, result, attempt
        raise MutationFailed(f"no valid child in {max_attempts} attempts")

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"unary": list(self.unary), "binary": list(self.binary),
                "is_binary": list(self.is_binary), "first": list(self.first),
                "second": list(self.second), "flip": self.flip}

    @classmethod
    def from_dict(cls, d: dict) -> "Genome":
        try:
            return cls(tuple(int(x) for x in d["unary"]), tuple(int(x) for x in d["binary"]),
                       tuple(bool(x) for x in d["is_binary"]), tuple(int(x) for x in d["first"]),
                       tuple(int(x) for x in d["second"]), flip=bool(d["flip"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidGenome(f"malformed genome record {json.dumps(d)[:200]}: {exc}") from exc
