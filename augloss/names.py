"""The names every stage shares: techniques, datasets, loss names. Torch-free; the one source.

Loss names, as wildcards and in ``metrics.json``:

* ``ce`` and the configured baseline names (``ce_ls``, ``focal`` ...);
* ``evolved-<augmentation>-<rank>``: rank ``k`` of that augmentation's search (``best.json``);
* ``transfer-best-<rank>``: rank ``k`` of the transfer stage's selection (fine-tune slots).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The five techniques, in table order (:mod:`augloss.augment` builds them).
TECHNIQUES = ("base", "cutout", "mixup", "randaugment", "all")

#: Built-in datasets (:func:`augloss.data.load`); ``digits:<a>-<b>`` keeps classes a..b and
#: ``imagefolder:<path>`` reads a folder of images.
DATASETS = ("digits", "cifar10", "cifar100", "flowers102", "caltech101", "stanford_cars")
DATASET_FORMS = DATASETS + ("imagefolder:<path>", "synthetic:<dataset>")
#: Datasets with a synthetic stand-in ``synthetic:<name>`` (:mod:`augloss.synthetic`).
SYNTHETIC = ("cifar10", "cifar100", "flowers102", "caltech101", "stanford_cars")

CE = "ce"
_EVOLVED = re.compile(r"^evolved-(?P<aug>[a-z]+)-(?P<rank>\d+)$")
_TRANSFER_BEST = re.compile(r"^transfer-best-(?P<rank>\d+)$")


def check_dataset(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a dataset :func:`augloss.data.load` knows."""
    if name.startswith("synthetic:"):
        if name.split(":", 1)[1] not in SYNTHETIC:
            raise ValueError(f"unknown dataset {name!r}; synthetic datasets are "
                             f"{', '.join('synthetic:' + n for n in SYNTHETIC)}")
        return
    if name.split(":", 1)[0] not in DATASETS and not name.startswith("imagefolder:"):
        raise ValueError(f"unknown dataset {name!r}; datasets are {', '.join(DATASET_FORMS)}")


def slug(name: str) -> str:
    """A path- and wildcard-safe form of a dataset name (``digits:0-4`` -> ``digits_0-4``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


@dataclass(frozen=True)
class LossName:
    """A parsed loss name: ``kind`` is ``evolved``, ``transfer-best`` or ``named`` (ce, baselines)."""

    kind: str
    rank: int | None = None
    augmentation: str | None = None

    def __str__(self) -> str:
        if self.kind == "evolved":
            return evolved(self.augmentation, self.rank)
        if self.kind == "transfer-best":
            return transfer_best(self.rank)
        raise ValueError("a named loss has no generated name")


def evolved(augmentation: str, rank: int) -> str:
    """The name of rank ``rank`` (1-based) of ``augmentation``'s search."""
    return f"evolved-{augmentation}-{int(rank)}"


def transfer_best(rank: int) -> str:
    """The fine-tune slot of rank ``rank`` (1-based) of the transfer selection."""
    return f"transfer-best-{int(rank)}"


def parse_loss(name: str) -> LossName:
    """What a loss name refers to (names of neither generated form are ``named``)."""
    m = _EVOLVED.match(name)
    if m:
        return LossName("evolved", int(m["rank"]), m["aug"])
    m = _TRANSFER_BEST.match(name)
    if m:
        return LossName("transfer-best", int(m["rank"]))
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
    name = model["name"]
    if name == "efficientnetv2_s":
        base = "tf_efficientnetv2_s"
    elif name.startswith("timm:"):
        base = name.split(":", 1)[1]
    else:
        return None
    return f"{base}.{model['tag']}" if model.get("tag") else base


def weights_dir(model: dict, root: str | Path) -> Path:
    """Where :func:`prefetch_weights` puts a model's pretrained weights: under the data root
    (``pretrained: synthetic``: under ``<root>/synthetic``, with the synthetic datasets)."""
    if model.get("pretrained") == "synthetic":
        return Path(root) / "synthetic" / "weights" / timm_name(model)
    return Path(root) / "weights" / timm_name(model)
