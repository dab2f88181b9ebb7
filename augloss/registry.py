"""The built-in datasets and models: one spec each, the facts every consumer reads. Torch-free.

The Snakemake rules check config names at parse time (:func:`augloss.names.check_dataset`,
:func:`augloss.names.timm_name`) without importing torch, so this module holds declarative facts
only. The code behind a spec is looked up by the spec's name where that code lives:
``augloss.data.LOADERS``, ``augloss.synthetic.WRITERS`` and ``augloss.models.BUILDERS``;
``tests/test_registry.py`` keeps each table's keys equal to the specs here, and the schema's
model pattern equal to :func:`model_pattern`.

Adding a dataset: its :class:`DatasetSpec` in :data:`DATASETS`, its loader in
``augloss.data.LOADERS`` (a stand-in: a :class:`StandIn` and a layout writer in
``augloss.synthetic.WRITERS``), a test. The config schema does not list datasets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: The prefix of a stand-in's name (``synthetic:<dataset>``) and its folder under ``data_root``.
SYNTHETIC = "synthetic"


# --- datasets -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StandIn:
    """A synthetic stand-in ``synthetic:<dataset>``: a few generated images of the real dataset's
    class count and image sizes, in its own layout (:mod:`augloss.synthetic`)."""

    size: tuple[tuple[int, int], tuple[int, int]]  # (min, max) of (height, width)
    train: int  # images of the training pool (the loader carves val out of it, as for real)
    val: int  # images of the official val split (Flowers-102 only)
    test: int
    stream: int  # its random stream, fixed per stand-in so adding one changes no other's files
    labelled: int = 0  # classes that have images (0: spread over all classes)


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: its config name (the part before ``:`` of a parametrised one)."""

    name: str
    classes: int | None  # None: read from the files (imagefolder)
    splits: str  # how train / val / test are made (augloss.data's docstring has the details)
    argument: str | None = None  # the placeholder of the ``name:<argument>`` form, if it has one
    argument_required: bool = False
    stand_in: StandIn | None = None

    @property
    def form(self) -> str:
        """How error messages list it: ``imagefolder:<path>``; ``digits`` (argument optional)."""
        return f"{self.name}:{self.argument}" if self.argument_required else self.name


_DATASETS = (
    DatasetSpec("digits", 10, "fixed stratified 2/3 train, 1/6 val, 1/6 test",
                argument="<lo>-<hi>"),
    DatasetSpec("cifar10", 10, "train 0..44,999, val 45,000..49,999, official test",
                stand_in=StandIn(((32, 32), (32, 32)), train=100, val=0, test=20, stream=1)),
    DatasetSpec("cifar100", 100, "train 0..44,999, val 45,000..49,999, official test",
                stand_in=StandIn(((32, 32), (32, 32)), train=100, val=0, test=20, stream=2)),
    DatasetSpec("flowers102", 102, "official train / val / test",
                stand_in=StandIn(((500, 500), (500, 700)), train=16, val=4, test=4, stream=3)),
    # torchvision's split needs >= 32 images in a class for one val image (30 train, 1 val, ...)
    DatasetSpec("caltech101", 101, "seeded per class: 30 train, min(5, (n - 30) // 2) val, "
                "the rest test",
                stand_in=StandIn(((180, 300), (240, 400)), train=128, val=0, test=0, stream=0,
                                 labelled=4)),
    # the per-class 10 % val carve-out takes one of every class's five training images
    DatasetSpec("stanford_cars", 196, "official train / test; val a seeded 10 % of train",
                stand_in=StandIn(((240, 480), (360, 720)), train=20, val=0, test=4, stream=4,
                                 labelled=4)),
    DatasetSpec("imagefolder", None, "<path>/train, val, test; without val a seeded 10 % of train",
                argument="<path>", argument_required=True),
)
#: Every built-in dataset by name, in the order error messages list them.
DATASETS: dict[str, DatasetSpec] = {d.name: d for d in _DATASETS}


def dataset_forms() -> tuple[str, ...]:
    """Every accepted form of a dataset name, as error messages list them."""
    return (*(d.form for d in DATASETS.values()), f"{SYNTHETIC}:<dataset>")


def stand_ins() -> tuple[str, ...]:
    """The datasets with a synthetic stand-in ``synthetic:<name>``, in registry order."""
    return tuple(d.name for d in DATASETS.values() if d.stand_in is not None)


def is_stand_in(name: str) -> bool:
    """Whether ``name`` names a stand-in (``synthetic:<dataset>``), known or not."""
    return name.startswith(f"{SYNTHETIC}:")


def stand_in(real: str) -> DatasetSpec:
    """The spec of ``real``, whose stand-in ``synthetic:<real>`` is asked for; ValueError
    naming every stand-in when it has none."""
    spec = DATASETS.get(real)
    if spec is None or spec.stand_in is None:
        raise ValueError(f"unknown dataset {SYNTHETIC + ':' + real!r}; synthetic datasets are "
                         f"{', '.join(f'{SYNTHETIC}:{n}' for n in stand_ins())}")
    return spec


def dataset(name: str) -> DatasetSpec:
    """The spec of config dataset ``name`` (``synthetic:<d>``: ``d``'s); ValueError naming
    every known form when there is none. Arguments (``digits:0-4``) are checked by the loader."""
    if is_stand_in(name):
        return stand_in(name.split(":", 1)[1])
    base, colon, argument = name.partition(":")
    spec = DATASETS.get(base)
    if spec is None or (colon and spec.argument is None) or \
            (spec.argument_required and not argument):
        raise ValueError(f"unknown dataset {name!r}; datasets are {', '.join(dataset_forms())}")
    return spec


@dataclass(frozen=True)
class CifarFormat:
    """CIFAR's python-pickle batches (torchvision's download): read by :mod:`augloss.data`,
    written for the stand-ins by :mod:`augloss.synthetic`."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    meta_file: str
    names_key: str


CIFAR = {
    "cifar10": CifarFormat("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                           ("test_batch",), "labels", "batches.meta", "label_names"),
    "cifar100": CifarFormat("cifar-100-python", ("train",), ("test",), "fine_labels", "meta",
                            "fine_label_names"),
}


# --- models -------------------------------------------------------------------------------------

class Option(NamedTuple):
    """What one model option may be: its Python ``type`` (a tuple of types; ``bool`` counts only
    where listed, never as an ``int``), a ``check`` of the value (None: any value of the type)
    and a ``description`` that error messages quote."""

    type: tuple[type, ...]
    check: Callable[[Any], bool] | None
    description: str

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has the option's type and passes its check."""
        if isinstance(value, bool) and bool not in self.type:
            return False
        return isinstance(value, self.type) and (self.check is None or self.check(value))


_NUMBER = (int, float)
_OPTIONAL_TEXT = (str, type(None))


def _fraction(v) -> bool:
    return 0 <= v < 1


def _momentum(v) -> bool:
    return 0 <= v <= 1


def _widths(v) -> bool:
    return len(v) == 3 and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                               for w in v)


_BN_MOMENTUM = Option(_NUMBER, _momentum, "a number in [0, 1]: BatchNorm's running-statistics "
                                          "momentum, PyTorch's convention")
_TIMM_OPTIONS = {
    "pretrained": Option((bool, str), lambda v: v in (True, False, "synthetic"),
                         "true, false or synthetic (a seeded random initialisation, smoke runs)"),
    "weights": Option(_OPTIONAL_TEXT, lambda v: v is None or bool(v),
                      "a local weights file (.safetensors, .pth) to start from"),
    "drop_rate": Option(_NUMBER, _fraction, "a number in [0, 1): dropout before the classifier"),
    "tag": Option(_OPTIONAL_TEXT, lambda v: v is None or bool(v),
                  "timm's pretrained-weights tag (in1k, in21k_ft_in1k, ...)"),
}


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: its config name (the part before ``:`` of ``timm:<name>``).

    ``options``: every keyword option of the model's builder (``augloss.models.BUILDERS``;
    ``tests/test_config_checks.py`` keeps them equal to the builder's signature) and what its
    value may be, read by :func:`augloss.checks.check_config` at the dry run. ``open_options``:
    other options pass through unchecked (timm's ``create_model`` takes many keywords).
    """

    name: str
    doc: str
    timm: bool = False  # built by timm (pretrained weights, preprocessing from its config)
    architecture: str | None = None  # timm's name of it; None: the argument names it
    argument: str | None = None  # the placeholder of the ``name:<argument>`` form
    argument_pattern: str | None = None  # what the argument may be (the schema's pattern)
    options: Mapping[str, Option] = field(default_factory=dict, compare=False, hash=False)
    open_options: bool = False

    @property
    def form(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name


_MODELS = (
    ModelSpec("surrogate", "the authors' earlier ResNet9v2, the search's surrogate", options={
        "widths": Option((list, tuple), _widths,
                         "three positive integers: the widths of the stem and the two blocks"),
        "dropout": Option(_NUMBER, _fraction, "a number in [0, 1): dropout before the head"),
        "bn_momentum": _BN_MOMENTUM}),
    ModelSpec("wrn", "WideResNet (depth, width, dropout)", options={
        "depth": Option((int,), lambda v: v >= 10 and (v - 4) % 6 == 0,
                        "an integer 6n + 4, at least 10 (10, 16, 22, 28, 40, ...)"),
        "width": Option((int,), lambda v: v >= 1, "a positive integer (the widening factor)"),
        "dropout": Option(_NUMBER, _fraction,
                          "a number in [0, 1): dropout between a block's convolutions"),
        "bn_momentum": _BN_MOMENTUM}),
    ModelSpec("efficientnetv2_s", "timm's TF-ported EfficientNetV2-S", timm=True,
              architecture="tf_efficientnetv2_s", options=_TIMM_OPTIONS, open_options=True),
    ModelSpec("timm", "any timm model", timm=True, argument="<name>",
              argument_pattern="[A-Za-z0-9_.]+", options=_TIMM_OPTIONS, open_options=True),
)
#: Every built-in model by name, in the order error messages list them.
MODELS: dict[str, ModelSpec] = {m.name: m for m in _MODELS}


def model_forms() -> tuple[str, ...]:
    return tuple(m.form for m in MODELS.values())


def model(name: str) -> tuple[ModelSpec, str | None]:
    """The spec of config model ``name`` and its argument (``timm:<name>``'s name, else None);
    ValueError naming every known form when there is none."""
    base, colon, argument = name.partition(":")
    spec = MODELS.get(base)
    if spec is None or bool(colon) != bool(spec.argument) or \
            (spec.argument and not re.fullmatch(spec.argument_pattern, argument)):
        raise ValueError(f"unknown model {name!r}; models are {', '.join(model_forms())}")
    return spec, argument if colon else None


def model_pattern() -> str:
    """The regular expression of every model name (the schema's ``model.name`` pattern)."""
    return "^(" + "|".join(f"{m.name}:{m.argument_pattern}" if m.argument else m.name
                           for m in MODELS.values()) + ")$"


def timm_architecture(name: str) -> str | None:
    """timm's name of config model ``name`` (without a weights tag); None for a model timm
    does not build."""
    spec, argument = model(name)
    if not spec.timm:
        return None
    return spec.architecture or argument
