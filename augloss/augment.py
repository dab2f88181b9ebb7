"""The per-sample form of the augmentation techniques; the one door is :func:`build`.

What each technique is made of lives in the registry, :mod:`augloss.techniques`
(:data:`~augloss.techniques.REGISTRY`: ``base`` = crop_flip, ``cutout`` = crop_flip + cutout,
``mixup`` = crop_flip + mixup, ``randaugment`` = randaugment + crop_flip, ``all`` = randaugment +
crop_flip + cutout + mixup; ``none``: no steps). This module builds a technique's per-sample
pipeline from its steps, in their order, each by its entry in :data:`PER_SAMPLE`:

============  ===============================================================================
step          what it does here (defaults; every parameter is a config value)
============  ===============================================================================
(framing)     before any step: an image of another size than ``image_size`` is cropped to a
              random square of its shorter side and resized (the earlier code's 80-px surrogate
              input); fine-tuning: its ``crop`` to ``image_size``. A spec without steps (``none``: the search's
              pre-screen and pre-filter, as in the earlier code) trains on the evaluation
              pipeline.
randaugment   ``randaugment_impl: tf``: the earlier code's TF Model Garden RandAugment
              (:mod:`augloss.tf_randaugment`; N ops of 16 + identity, level M of 10);
              ``torchvision``: ``v2.RandAugment(N, M)`` (31 magnitude bins).
crop_flip     pad-4 random crop (zero or reflection padding, ``pad_mode``) + horizontal flip
              (the padding scales with ``image_size`` / 32). Fine-tuning (``finetune=True``):
              the flip only; the framing crops first, ``crop: random_resized`` (torchvision,
              scale 0.08-1) or ``square`` (a random square of the shorter side, resized) to
              ``image_size``, so every step acts on the network-sized image.
cutout        one square hole of side ``cutout_size`` (16 px on 32 px images; scaled with the
              image otherwise) whose centre is uniform over the image (DeVries & Taylor 2017),
              clipped at the borders, filled with black (``cutout_fill: zero``) or the
              normalisation's mean colour (``mean``: zero after normalising, as their code).
mixup         nothing per sample: the trainer mixes each batch (:func:`mixup`) with
              ``lam ~ Beta(alpha, alpha)`` (alpha 1.0), one ``lam`` per batch and a random
              pairing, as in Zhang et al. 2018. ``mixup_mode``: ``targets`` (default) feeds the
              mixed soft target ``lam y_i + (1 - lam) y_j`` into the loss; ``losses`` computes
              ``lam L(y_i) + (1 - lam) L(y_j)``. They coincide for cross-entropy, not for losses
              non-linear in ``y``; the paper does not say which it used.
============  ===============================================================================

Per-sample operations are torchvision ``transforms.v2`` on uint8 tensors (Cutout is ours: v2 has
no fixed-size square hole). Mixup acts on a whole batch and is ours because v2.MixUp does not
expose ``lam`` and the pairing, which the ``losses`` mode needs. Randomness comes from the torch
generator the caller seeds; the trainer reseeds it from ``(seed, epoch)`` at every epoch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType

import torch

from augloss import techniques
from augloss.config import MIXUP_MODES, AugmentConfig


class Cutout(torch.nn.Module):
    """One ``size`` x ``size`` square of ``fill`` (one value per channel; zeros by default),
    centre uniform over the image, clipped at the borders."""

    def __init__(self, size: int, fill: tuple[int, ...] = (0, 0, 0)):
        super().__init__()
        self.size = int(size)
        self.fill = tuple(int(v) for v in fill)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return img
        h, w = img.shape[-2:]
        cy = int(torch.randint(h, (1,)))
        cx = int(torch.randint(w, (1,)))
        y0, y1 = max(0, cy - self.size // 2), min(h, cy - self.size // 2 + self.size)
        x0, x1 = max(0, cx - self.size // 2), min(w, cx - self.size // 2 + self.size)
        img = img.clone()
        if len(set(self.fill)) == 1:
            img[..., y0:y1, x0:x1] = self.fill[0]
        else:
            img[..., y0:y1, x0:x1] = torch.tensor(self.fill, dtype=img.dtype,
                                                  device=img.device)[:, None, None]
        return img


@dataclass(frozen=True)
class Technique:
    """A technique with its config: a per-sample train transform, an eval transform, and whether
    the trainer mixes its batches. What it is made of is its registry spec (:attr:`spec`).

    The torchvision transforms are built on first use: the batched tensor path
    (:mod:`augloss.batch_augment`) needs only ``name``, ``config`` and the spec, and jobs that
    never touch the per-sample path skip importing torchvision (about a second per job).
    """

    name: str
    config: AugmentConfig

    @property
    def spec(self) -> techniques.Spec:
        """The registry's spec (``ValueError`` naming the techniques for an unknown name)."""
        return techniques.get(self.name)

    @property
    def mixup(self) -> bool:
        return self.spec.mixup

    @functools.cached_property
    def train_transform(self):
        return _transforms(self.name, self.config)[0]

    @functools.cached_property
    def eval_transform(self):
        return _transforms(self.name, self.config)[1]


class SquareCrop(torch.nn.Module):
    """A square of side min(H, W): random (training, the earlier code's first step) or centred
    (evaluation). Square images pass unchanged, drawing nothing."""

    def __init__(self, random: bool = True):
        super().__init__()
        self.random = random

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        if h == w:
            return img
        side = min(h, w)
        if self.random:
            y0 = int(torch.randint(h - side + 1, (1,)))
            x0 = int(torch.randint(w - side + 1, (1,)))
        else:
            y0, x0 = (h - side) // 2, (w - side) // 2
        return img[..., y0:y0 + side, x0:x0 + side]


def interpolation(cfg: AugmentConfig):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(cfg.interpolation)


def _normalise(cfg: AugmentConfig) -> list:
    from torchvision.transforms import v2

    out = [v2.ToDtype(torch.float32, scale=True)]
    if cfg.mean_std() is not None:
        out.append(v2.Normalize(*cfg.mean_std()))
    return out


def build(name: str, config: AugmentConfig | None = None) -> Technique:
    """The technique ``name`` (a registry name or ``none``) with ``config``; ``ValueError``
    naming the techniques for an unknown name, here rather than at first use."""
    techniques.get(name)
    return Technique(name, config or AugmentConfig())


def _randaugment(cfg: AugmentConfig) -> list:
    if cfg.randaugment_impl == "tf":
        from augloss.tf_randaugment import TFRandAugmentTransform

        return [TFRandAugmentTransform(cfg.randaugment_n, cfg.randaugment_m,
                                       cutout_const=cfg.randaugment_cutout,
                                       translate_const=cfg.randaugment_translate)]
    from torchvision.transforms import v2

    return [v2.RandAugment(num_ops=cfg.randaugment_n, magnitude=cfg.randaugment_m)]


def _crop_flip(cfg: AugmentConfig) -> list:
    from torchvision.transforms import v2

    if cfg.finetune:  # the crop frames the input before every step (_framing): flip only
        return [v2.RandomHorizontalFlip()]
    return [v2.RandomCrop(cfg.image_size, padding=cfg.scaled(cfg.pad),
                          padding_mode=cfg.pad_mode),
            v2.RandomHorizontalFlip()]


def _cutout(cfg: AugmentConfig) -> list:
    return [Cutout(cfg.scaled(cfg.cutout_size), cfg.cutout_value())]


def _by_the_trainer(cfg: AugmentConfig) -> list:
    """A batch step (mixup): nothing per sample; the trainer mixes the batch
    (``Technique.mixup``)."""
    return []


#: Each step kind's per-sample transforms (:data:`augloss.techniques.STEPS`; a test checks the
#: keys are exactly those): a function of the config returning a list of transforms.
PER_SAMPLE = MappingProxyType({
    "randaugment": _randaugment,
    "crop_flip": _crop_flip,
    "cutout": _cutout,
    "mixup": _by_the_trainer,
})


def _step(technique: str, step: str):
    """The per-sample builder of ``step``; an error naming it when this path lacks it (never a
    silent skip, which would train the technique as another one)."""
    if step not in PER_SAMPLE:
        raise ValueError(f"augmentation {technique!r}: step {step!r} has no per-sample form; "
                         f"steps with one: {', '.join(PER_SAMPLE)}")
    return PER_SAMPLE[step]


def _framing(cfg: AugmentConfig) -> tuple[list, list]:
    """The (train, eval) framing to ``image_size`` that precedes the steps."""
    from torchvision.transforms import v2

    size, mode = cfg.image_size, interpolation(cfg)
    if cfg.finetune:
        # Training: fine-tuning's crop to ``image_size`` first, so every step (RandAugment's
        # pixel constants, Cutout) acts on the network-sized image, as the earlier code
        # resized before augmenting. Evaluation (timm's): resize the short side to
        # floor(size / crop_pct), centre crop.
        crop = [v2.RandomResizedCrop(size, interpolation=mode, antialias=True)] \
            if cfg.crop == "random_resized" else \
            [SquareCrop(), v2.Resize((size, size), interpolation=mode, antialias=True)]
        return crop, [v2.Resize(int(size / cfg.crop_pct), interpolation=mode, antialias=True),
                      v2.CenterCrop(size)]
    # square crop + resize: no-ops on square images of side ``size``
    return ([SquareCrop(), v2.Resize((size, size), interpolation=mode, antialias=True)],
            [SquareCrop(random=False), v2.Resize((size, size), interpolation=mode, antialias=True)])


def _transforms(name: str, cfg: AugmentConfig) -> tuple:
    """The per-sample (train, eval) ``v2.Compose`` pipelines of technique ``name``: the framing,
    then the spec's steps in order, then the normalisation."""
    from torchvision.transforms import v2

    spec = techniques.get(name)
    frame, eval_frame = _framing(cfg)
    if not spec.steps:  # no augmentation: train on the evaluation pipeline
        plain = v2.Compose(eval_frame + _normalise(cfg))
        return plain, plain
    steps = list(frame)
    for step in spec.steps:
        steps += _step(name, step)(cfg)
    return v2.Compose(steps + _normalise(cfg)), v2.Compose(eval_frame + _normalise(cfg))


@dataclass
class MixedBatch:
    """A mixed batch: ``images`` and the pair of class-index targets with their weight ``lam``."""

    images: torch.Tensor
    target_a: torch.Tensor
    target_b: torch.Tensor
    lam: float

    def soft_targets(self, num_classes: int) -> torch.Tensor:
        ya = torch.nn.functional.one_hot(self.target_a, num_classes).float()
        yb = torch.nn.functional.one_hot(self.target_b, num_classes).float()
        return self.lam * ya + (1.0 - self.lam) * yb


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float) -> MixedBatch:
    """Mix a batch with a random permutation of itself, ``lam ~ Beta(alpha, alpha)``.

    Draws from torch's global generator, like the v2 transforms (the trainer seeds it).
    """
    a = torch.tensor(float(alpha))
    lam = float(torch.distributions.Beta(a, a).sample())
    perm = torch.randperm(len(images)).to(images.device)
    mixed = lam * images + (1.0 - lam) * images[perm]
    return MixedBatch(mixed, targets, targets[perm], lam)


def mixed_loss(loss_fn, logits: torch.Tensor, batch: MixedBatch, mode: str) -> torch.Tensor:
    """The loss of a mixed batch under ``mode`` (``targets`` or ``losses``)."""
    if mode == "targets":
        return loss_fn(logits, batch.soft_targets(logits.shape[-1]))
    if mode == "losses":
        return batch.lam * loss_fn(logits, batch.target_a) + \
            (1.0 - batch.lam) * loss_fn(logits, batch.target_b)
    raise ValueError(f"mixup_mode must be one of {MIXUP_MODES}, got {mode!r}")
