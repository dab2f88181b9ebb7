"""The names every stage shares: techniques, datasets, loss names. Torch-free; the one source.

Loss names, as wildcards and in ``metrics.json``:

* ``ce`` and the configured baseline names (``ce_ls``, ``focal`` ...);
* ``evolved-<augmentation>-<rank>``: rank ``k`` of that augmentation's search (``best.json``),
  in every stage: a stage fed by another's selection trains the selected losses under these
  same names (so its runs are keyed by the loss, not by a rank slot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from augloss import registry, techniques

#: The techniques, in table order: the registry's (:mod:`augloss.techniques`), the one source.
TECHNIQUES = techniques.TECHNIQUES

#: The training stages, in pipeline order. Each trains full models under every augmentation and
#: compares its losses with cross-entropy; its descriptor (upstream input, loss-name form, whether
#: it selects) is :data:`augloss.experiment.STAGES`. The search runs before them; ``pretrain``
#: (the demo's) is a helper job of fine-tuning, not a stage.
STAGES = ("transfer", "finetune")

CE = "ce"
_EVOLVED = re.compile(r"^evolved-(?P<aug>[a-z]+)-(?P<rank>\d+)$")


def check_dataset(name: str) -> None:
    """Raise ``ValueError`` naming the known datasets unless :func:`augloss.data.load` knows
    ``name`` (:func:`augloss.registry.dataset`)."""
    registry.dataset(name)


def slug(name: str) -> str:
    """A path- and wildcard-safe form of a dataset name (``digits:0-4`` -> ``digits_0-4``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


@dataclass(frozen=True)
class LossName:
    """A parsed loss name: ``kind`` is ``evolved`` (a search's) or ``named`` (ce, baselines)."""

    kind: str
    rank: int | None = None
    augmentation: str | None = None

    def __str__(self) -> str:
        if self.kind == "evolved":
            return evolved(self.augmentation, self.rank)
        raise ValueError("a named loss has no generated name")


def evolved(augmentation: str, rank: int) -> str:
    """The name of rank ``rank`` (1-based) of ``augmentation``'s search."""
    return f"evolved-{augmentation}-{int(rank)}"


def parse_loss(name: str) -> LossName:
    """What a loss name refers to (names of neither generated form are ``named``)."""
    m = _EVOLVED.match(name)
    if m:
        return LossName("evolved", int(m["rank"]), m["aug"])
    return LossName("named")


def is_evolved(name: str) -> bool:
    return parse_loss(name).kind == "evolved"


def display(name: str, aliases: tuple[str, ...] | list[str] = ()) -> str:
    """``evolved-cutout-1`` -> ``evolved[cutout]#1`` (tables); other names unchanged.

    ``aliases``: other names of the same loss (two searches that selected it), shown as
    ``evolved[base]#1 = evolved[mixup]#1``.
    """
    def one(n: str) -> str:
        parsed = parse_loss(n)
        return f"evolved[{parsed.augmentation}]#{parsed.rank}" if parsed.kind == "evolved" else n

    return " = ".join(one(n) for n in (name, *aliases))


def technique_order(name: str) -> int:
    """Table position of a technique (unknown names last)."""
    return TECHNIQUES.index(name) if name in TECHNIQUES else len(TECHNIQUES)


def timm_name(model: dict) -> str | None:
    """The timm model name (with its tag) of a config's model entry; None if not a timm model."""
    base = registry.timm_architecture(model["name"])
    if base is None:
        return None
    return f"{base}.{model['tag']}" if model.get("tag") else base


def weights_dir(model: dict, root: str | Path) -> Path:
    """Where :func:`prefetch_weights` puts a model's pretrained weights: under the data root
    (``pretrained: synthetic``: under ``<root>/synthetic``, with the synthetic datasets)."""
    if model.get("pretrained") == "synthetic":
        return Path(root) / registry.SYNTHETIC / "weights" / timm_name(model)
    return Path(root) / "weights" / timm_name(model)
