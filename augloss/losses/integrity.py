"""The integrity ("sanity") test of a candidate loss on a 2-class probe curve.

As in the authors' earlier code (arXiv 2403.08793): with ``q = linspace(1e-7, 1 - 1e-7, 1000)``,
``p = [q, 1 - q]`` and ``y = [0, 1]`` (so the true-class probability falls as ``q`` rises), compute
``v(q) = sum_c term(y, p)`` in float32, then

1. phenotype := min-max normalised ``v`` (kept raw when ``max - min < 1e-4``);
2. reject if the first argmin or argmax of ``v`` lies at positions 490..509 (``q`` near 0.5);
3. strictly decreasing: accept, ``flip = True`` (phenotype of ``-v``);
4. strictly increasing: accept, ``flip = False``;
5. otherwise, with ``s = sign(diff v)``: reject if more than 10 steps are flat (or all are); fill
   each flat step with its predecessor's sign, cyclically; reject if ``s`` changes sign (cyclically)
   more than twice, i.e. more than one turn; accept, and flip unless the curve starts falling.

Two departures of the earlier code, corrected here by default (``faithful_quirks=True`` restores
them; :class:`IntegrityResult.quirk` says when the situation arises):

* ``plateau`` - a monotone curve with 1..10 flat steps reaches step 5 and, having no turn, was
  oriented by ``s[2]``: a non-decreasing curve was *flipped* and a non-increasing one kept, the
  opposite of steps 3-4. Corrected: such a curve is oriented like a strictly monotone one.
* ``inherited flip`` - the earlier code ran the test on the child with the flip it inherited from
  its parent, so a child of a flipped parent was always oriented wrongly. Corrected: the test
  always sees the raw, unflipped term. This one lives in :meth:`augloss.losses.Genome.validate`,
  since a bare expression carries no inherited flag.

A flipped candidate is represented as ``-(expr)`` so a stored expression is trained as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from augloss.losses.expr import Call, Expr

N_POINTS = 1000
CENTRE = (490, 509)  # inclusive 0-based positions where an extremum is rejected
MAX_FLAT = 10
FLAT_RANGE = 1e-4


def probe(n: int = N_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-class probe: ``(y, p)`` float32 tensors of shape ``[n, 2]``; ``q = p[:, 0]``."""
    q = torch.linspace(1e-7, 1 - 1e-7, n, dtype=torch.float32)
    p = torch.stack([q, 1 - q], dim=1)
    y = torch.zeros_like(p)
    y[:, 1] = 1.0
    return y, p


def curve(expr: Expr) -> np.ndarray:
    """``v(q)``: the summed per-class term of ``expr`` on the probe, float32, shape ``[1000]``."""
    y, p = probe()
    with torch.no_grad(), np.errstate(all="ignore"):
        v = expr.compile()(y, p).sum(dim=1)
    return v.numpy().astype(np.float32)


def _normalise(v: np.ndarray) -> np.ndarray:
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < FLAT_RANGE:
        return v.copy()
    return ((v - lo) / (hi - lo)).astype(np.float32)


@dataclass
class IntegrityResult:
    """Outcome of :func:`integrity`. ``phenotype`` is the normalised curve after any flip."""

    ok: bool
    flip: bool
    phenotype: np.ndarray = field(repr=False)
    reason: str = ""
    quirk: str = ""  # "plateau" when the earlier code's plateau quirk applies to this curve

    def __bool__(self) -> bool:
        return self.ok


def _reject(v: np.ndarray, reason: str) -> IntegrityResult:
    return IntegrityResult(False, False, _normalise(v) if np.isfinite(v).all() else v, reason)


def judge(v: np.ndarray, faithful_quirks: bool = False) -> IntegrityResult:
    """Apply the integrity rules to a curve ``v`` (float32, 1000 points)."""
    v = np.asarray(v, dtype=np.float32)
    if not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v))[0])
        return _reject(v, f"non-finite loss on the probe curve (first at q index {bad})")
    lo, hi = CENTRE
    for what, pos in (("minimum", int(np.argmin(v))), ("maximum", int(np.argmax(v)))):
        if lo <= pos <= hi:
            return _reject(v, f"{what} at q index {pos}, near p = 0.5")
    d = np.diff(v)
    if (d < 0).all():
        return IntegrityResult(True, True, _normalise(-v))
    if (d > 0).all():
        return IntegrityResult(True, False, _normalise(v))
    s = np.sign(d).astype(np.int8)
    flat = int((s == 0).sum())
    if flat == len(s):
        return _reject(v, "constant on the probe curve")
    if flat > MAX_FLAT:
        return _reject(v, f"{flat} flat steps (more than {MAX_FLAT})")
    while (s == 0).any():
        # np.roll gives each position its predecessor's value; s[0] takes s[-1] (cyclic).
        prev = np.roll(s, 1)
        s = np.where(s == 0, prev, s)
    changes = int((s != np.roll(s, 1)).sum())
    if changes > 2:
        return _reject(v, f"{changes // 2} turns (at most one allowed)")
    quirk = "plateau" if changes == 0 else ""
    if changes == 0 and not faithful_quirks:
        flip = bool(s[0] < 0)  # monotone with plateaus: orient as a strictly monotone curve
    else:
        flip = bool(s[2] != -1)  # the earlier code: keep a curve that starts falling (U shape)
    return IntegrityResult(True, flip, _normalise(-v if flip else v), quirk=quirk)


def integrity(expr: Expr, faithful_quirks: bool = False) -> IntegrityResult:
    """Run the 2-class integrity test on ``expr``'s raw (unflipped) term."""
    return judge(curve(expr), faithful_quirks=faithful_quirks)


@dataclass(frozen=True)
class Orientation:
    """How a loss trains (:func:`orientation`): ``written`` as given, ``trained`` what trains.

    ``verdict`` is the integrity test's on ``written``; None for a registry name, which is
    oriented already and never judged.
    """

    written: Expr
    trained: Expr
    orient: bool
    registry: str | None = None
    verdict: IntegrityResult | None = None

    @property
    def spec(self) -> str | Expr:
        """What :func:`augloss.losses.get` builds: the registry name (its exact log-softmax),
        else the trained expression."""
        return self.registry if self.registry is not None else self.trained

    @property
    def negated(self) -> bool:
        return self.trained != self.written

    @property
    def wrong_way(self) -> bool:
        """The integrity test would negate ``written`` and it trains as written."""
        return bool(self.verdict is not None and self.verdict.ok and self.verdict.flip
                    and not self.negated)

    def warning(self) -> str | None:
        """Why training it as written may be a mistake, or None."""
        if self.wrong_way:
            return (f"{self.written} points the wrong way by the integrity test (it would be "
                    f"negated to point the right way) and trains as written because orient "
                    f"is false; orient: true trains {Call('neg', (self.written,))}")
        if self.verdict is not None and not self.verdict.ok:
            return (f"{self.written} fails the integrity test ({self.verdict.reason}) and "
                    f"trains as written")
        return None

    def record(self) -> dict:
        """JSON values for a run's metrics (``loss_orientation``)."""
        v = self.verdict
        return {"orient": self.orient,
                "integrity": "not run (registry name)" if v is None else
                ("passes" if v.ok else "fails"),
                "integrity_flip": None if v is None or not v.ok else bool(v.flip),
                "integrity_reason": v.reason if v is not None and not v.ok else None,
                "negated": self.negated, "written": str(self.written),
                "trained": str(self.trained)}


def orientation(spec: str | Expr, orient: bool = False,
                faithful_quirks: bool = False) -> Orientation:
    """How loss ``spec`` (a registry name, expression text or :class:`Expr`) trains.

    A registry name trains as defined (its losses are oriented already). An expression is
    judged by :func:`integrity`: with ``orient`` it trains negated where the test flips it, and
    one that fails the test is a ``ValueError`` naming it; without, it trains as written
    (:meth:`Orientation.warning` says when that points the wrong way).
    """
    from augloss.losses.expr import parse
    from augloss.losses.registry import REGISTRY, resolve

    if isinstance(spec, str) and spec in REGISTRY:
        expr = parse(REGISTRY[spec])
        return Orientation(expr, expr, bool(orient), registry=spec)
    expr = resolve(spec)[0]
    verdict = integrity(expr, faithful_quirks=faithful_quirks)
    if orient and not verdict.ok:
        raise ValueError(f"loss {expr} fails the integrity test ({verdict.reason}): orient: "
                         f"true trains only a loss the test orients; without orient it "
                         f"trains as written")
    trained = Call("neg", (expr,)) if orient and verdict.flip else expr
    return Orientation(expr, trained, bool(orient), verdict=verdict)
