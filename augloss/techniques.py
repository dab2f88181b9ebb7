"""The augmentation techniques as data: one frozen :class:`Spec` each, the one registry.

Torch-free (the Snakemake rules and the config schema read :data:`TECHNIQUES` at parse time).
A spec says what a technique is made of, as an ordered tuple of *steps* from :data:`STEPS`;
:mod:`augloss.augment` (per sample, torchvision) and :mod:`augloss.batch_augment` (batched
tensors) each build a technique from its steps, and each handles every step kind explicitly, so a
technique is never silently trained as another one.

Adding a technique: its :class:`Spec` in :data:`REGISTRY`, its name in ``config.schema.yaml``'s
``$defs.augmentation.enum`` (a test checks they agree), and a test. A new step kind also needs
its per-sample form in ``augment`` and its batched form (or an explicit refusal) in
``batch_augment``; tests check that both cover :data:`STEPS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

#: The step kinds, in no particular order, with what each does (parameters: ``AugmentConfig``).
STEPS = MappingProxyType({
    "randaugment": "RandAugment per image: the earlier code's TF one (randaugment_impl: tf, N "
                   "of 16 ops + identity at level M) or torchvision's",
    "crop_flip": "pad-and-random-crop + horizontal flip (fine-tuning: the flip; its crop "
                 "frames the image first)",
    "cutout": "one square hole per image (black or the normalisation's mean colour), centre "
              "uniform, clipped at the borders",
    "mixup": "mix the batch with a permutation of itself, lam ~ Beta(alpha, alpha)",
})

#: Steps that act on a whole batch after every per-image step (the trainer applies them), so
#: a spec must list them last.
BATCH_STEPS = frozenset({"mixup"})


@dataclass(frozen=True)
class Spec:
    """One technique: its name, a one-line description and its steps, in the order applied.

    Every step but the batch steps runs per image after the input is framed to ``image_size``;
    a spec without steps trains on the evaluation pipeline (``none``: no augmentation).
    """

    name: str
    description: str
    steps: tuple[str, ...]

    def __post_init__(self):
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ValueError(f"technique {self.name!r}: unknown step(s) {', '.join(unknown)}; "
                             f"steps are {', '.join(STEPS)}")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError(f"technique {self.name!r}: a step appears twice in {self.steps}")
        first_batch = next((i for i, s in enumerate(self.steps) if s in BATCH_STEPS),
                           len(self.steps))
        if any(s not in BATCH_STEPS for s in self.steps[first_batch:]):
            raise ValueError(f"technique {self.name!r}: batch steps "
                             f"({', '.join(sorted(BATCH_STEPS))}) must come last")

    @property
    def mixup(self) -> bool:
        """Whether the trainer mixes the batch (``mixup`` step)."""
        return "mixup" in self.steps


def _registry(*specs: Spec):
    return MappingProxyType({s.name: s for s in specs})


#: The techniques, in table order.
REGISTRY = _registry(
    Spec("base", "pad-4 random crop + horizontal flip", ("crop_flip",)),
    Spec("cutout", "base + one square hole (Cutout)", ("crop_flip", "cutout")),
    Spec("mixup", "base + batch mixup", ("crop_flip", "mixup")),
    Spec("randaugment", "RandAugment before base's crop/flip", ("randaugment", "crop_flip")),
    Spec("all", "RandAugment + base + cutout + mixup, in that order",
         ("randaugment", "crop_flip", "cutout", "mixup")),
)

#: No augmentation: not a technique (never in :data:`TECHNIQUES`, the schema or the tables); the
#: search's pre-screen and pre-filter train with it, on the evaluation pipeline.
NONE = Spec("none", "no augmentation (the search's pre-screen and pre-filter)", ())

#: The technique names, in table order (:data:`augloss.names.TECHNIQUES` is this).
TECHNIQUES = tuple(REGISTRY)


def get(name: str) -> Spec:
    """The spec of technique ``name`` or of ``none``; ``ValueError`` naming the techniques."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name == NONE.name:
        return NONE
    raise ValueError(f"unknown augmentation {name!r}; techniques are {', '.join(REGISTRY)}")
