"""The techniques as batched tensor operations, for data held as one tensor on the device.

:class:`BatchAugment` takes a uint8 batch ``(N, C, H, W)`` (CPU or GPU) and a seeded
``torch.Generator`` on the same device, and returns the normalised float batch that the
per-sample path (:func:`augloss.augment.build`, torchvision ``v2`` per image in a DataLoader)
would produce in distribution. Per-sample randomness is drawn as vectors and applied through
masks and gathers, so a batch costs a handful of tensor operations instead of ``N`` Python-level
transform calls:

* pad-and-crop: one padded copy, per-sample offsets, one gather;
* horizontal flip: a Bernoulli(0.5) mask and ``torch.where``;
* cutout: per-sample centres, a row mask times a column mask;
* RandAugment (``randaugment_impl: torchvision``): per sample and per slot an op id and a sign;
  the samples that drew the same (op, sign) are transformed together by torchvision's own op at
  the configured magnitude, so every op is exactly torchvision's (at most 2 x 14 x 2 grouped
  calls per batch); ``tf``: :class:`augloss.tf_randaugment.TFRandAugment`, batched itself;
* mixup: unchanged (it is a batch operation already), the pairing drawn from the generator and
  ``lam`` from a host NumPy generator seeded with it (a draw on the device would make the host
  wait for the GPU at every step).

A technique's steps come from its registry spec (:mod:`augloss.techniques`), each run by its entry
in :data:`STEP_FORMS`; a step without a batched form makes :func:`refusal` name it, and the
technique trains on the per-sample path.

Training on square in-memory images (``finetune: false``) is batched: images of another side
than ``image_size`` are resized once, up front (:func:`at_size`, the per-sample path's resize
step; the earlier code resized to 80 px before augmenting). Fine-tuning's random-resized crop
stays on the per-sample path.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

from augloss import augment as aug
from augloss import compat, techniques
from augloss.config import AugmentConfig

#: Markers in :data:`STEP_FORMS`: a batch step the trainer applies after the pipeline
#: (:func:`mixup`), or a step this path lacks (its techniques train on the per-sample path).
BY_THE_TRAINER, NO_BATCHED_FORM = "by the trainer", "no batched form"

#: Each step kind's batched form (:data:`augloss.techniques.STEPS`; a test checks the keys are
#: exactly those): a :class:`BatchAugment` method, or one of the markers above.
STEP_FORMS = MappingProxyType({
    "randaugment": "rand_augment",
    "crop_flip": "crop_flip",
    "cutout": "erase",
    "mixup": BY_THE_TRAINER,
})


def _forms(spec: techniques.Spec) -> list[str]:
    """The batched form of each of ``spec``'s steps; an error naming a step this path does not
    know (never a silent skip, which would train the technique as another one)."""
    unknown = [s for s in spec.steps if s not in STEP_FORMS]
    if unknown:
        raise ValueError(f"augmentation {spec.name!r}: unknown step(s) {', '.join(unknown)} in "
                         f"the batched path; it knows {', '.join(STEP_FORMS)}")
    return [STEP_FORMS[s] for s in spec.steps]


def _lacking(spec: techniques.Spec) -> str | None:
    """Why ``spec`` has no batched form (the steps this path lacks, by name); None if it has."""
    lacking = [s for s, form in zip(spec.steps, _forms(spec)) if form == NO_BATCHED_FORM]
    return f"augmentation {spec.name!r}: step(s) {', '.join(lacking)} have no batched form" \
        if lacking else None


def refusal(technique: aug.Technique, height: int, width: int) -> str | None:
    """Why ``technique`` on in-memory images of ``height`` x ``width`` has no batched path (it
    then trains on the per-sample path); None when it has one. Unknown names and steps raise."""
    lacking = _lacking(techniques.get(technique.name))
    if lacking:
        return lacking
    if technique.config.finetune:
        return "fine-tuning's random-resized crop has no batched form (finetune: true)"
    if height != width:
        return f"the batched path needs square images, not {height} x {width}"
    return None


def at_size(data, cfg: AugmentConfig):
    """``data`` (an in-memory :class:`augloss.data.ImageSet`, or None) with its square images
    resized to ``cfg.image_size`` as uint8, as the per-sample path's resize step does."""
    if data is None or not getattr(data, "in_memory", False) or \
            data.images.shape[-1] == cfg.image_size:
        return data
    from dataclasses import replace

    from torchvision.transforms.v2 import functional as TF

    size = cfg.image_size
    chunks = [TF.resize(data.images[i:i + 4096], [size, size],
                        interpolation=aug.interpolation(cfg), antialias=True)
              for i in range(0, len(data.images), 4096)]
    return replace(data, images=torch.cat(chunks) if chunks else
                   data.images.new_zeros((0, 3, size, size)))


class BatchAugment:
    """Batched train-time augmentation of one technique (see the module docstring)."""

    def __init__(self, technique: aug.Technique):
        spec = techniques.get(technique.name)
        cfg = technique.config
        lacking = _lacking(spec)
        if lacking:
            raise ValueError(f"{lacking}; train it with train.pipeline: loader")
        if cfg.finetune:
            raise ValueError("the batched path covers pad-crop training (finetune: false)")
        self.name = technique.name
        self.cfg = cfg
        self.pad = cfg.scaled(cfg.pad)
        self.cutout = cfg.scaled(cfg.cutout_size)
        self.fill = cfg.cutout_value()
        self.mixup = spec.mixup
        # The per-image steps in the spec's order; batch steps are the trainer's.
        self.steps = tuple(getattr(self, form) for form in _forms(spec) if form != BY_THE_TRAINER)
        if "randaugment" in spec.steps and cfg.randaugment_impl == "tf":
            from augloss.tf_randaugment import TFRandAugment

            self._tf_ra = TFRandAugment(cfg.randaugment_n, cfg.randaugment_m,
                                        cutout_const=cfg.randaugment_cutout,
                                        translate_const=cfg.randaugment_translate)
        elif "randaugment" in spec.steps:  # torchvision only where its ops are used
            from torchvision.transforms import v2

            self._ra = v2.RandAugment(num_ops=cfg.randaugment_n, magnitude=cfg.randaugment_m)
            self._ops = compat.randaugment_ops(self._ra)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment the uint8 batch ``x``; returns float32, normalised like the per-sample path."""
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError("expected a uint8 batch of shape (N, C, H, W)")
        if x.shape[-1] != self.cfg.image_size or x.shape[-2] != self.cfg.image_size:
            raise ValueError(f"expected {self.cfg.image_size}-px images (resize with at_size)")
        for step in self.steps:
            x = step(x, g)
        return normalise(x, self.cfg)

    # --- the operations (public for the equivalence tests) ------------------------------------
    def crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``v2.RandomCrop(H, padding=pad, padding_mode=pad_mode)`` per sample: zero or
        reflection padding, uniform offsets."""
        n, _, h, w = x.shape
        p = self.pad
        if p == 0:
            return x
        padded = F.pad(x, (p, p, p, p), mode=self.cfg.pad_mode)
        oy = torch.randint(2 * p + 1, (n,), generator=g, device=x.device)
        ox = torch.randint(2 * p + 1, (n,), generator=g, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, chan, rows, cols]

    def crop_flip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The crop_flip step: :meth:`crop`, then :meth:`flip` (their draws in that order)."""
        return self.flip(self.crop(x, g), g)

    @staticmethod
    def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``v2.RandomHorizontalFlip()`` per sample."""
        flip = torch.rand(len(x), generator=g, device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """:class:`augloss.augment.Cutout` per sample: a square of the fill colour, centre
        uniform."""
        n, _, h, w = x.shape
        s = self.cutout
        if s <= 0:  # as Cutout: no hole, no draws
            return x
        cy = torch.randint(h, (n,), generator=g, device=x.device)
        cx = torch.randint(w, (n,), generator=g, device=x.device)
        ys = torch.arange(h, device=x.device)[None, :]
        xs = torch.arange(w, device=x.device)[None, :]
        y0, x0 = (cy - s // 2)[:, None], (cx - s // 2)[:, None]
        rows = (ys >= y0) & (ys < y0 + s)
        cols = (xs >= x0) & (xs < x0 + s)
        hole = rows[:, :, None] & cols[:, None, :]
        if len(set(self.fill)) == 1:
            return x.masked_fill(hole[:, None], self.fill[0])
        fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device)[None, :, None, None]
        return torch.where(hole[:, None], fill, x)

    def rand_augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """RandAugment per sample: the earlier code's (``randaugment_impl: tf``,
        :class:`augloss.tf_randaugment.TFRandAugment`, batched itself), or ``v2.RandAugment(N,
        M)`` with each op applied by torchvision to its group."""
        if self.cfg.randaugment_impl == "tf":
            return self._tf_ra(x, g)
        n, _, h, w = x.shape
        ra = self._ra
        for _ in range(ra.num_ops):
            op_ids = torch.randint(len(self._ops), (n,), generator=g, device=x.device)
            negative = torch.rand(n, generator=g, device=x.device) <= 0.5
            out = x.clone()
            for k, (name, (magnitudes_fn, signed)) in enumerate(self._ops):
                magnitudes = magnitudes_fn(ra.num_magnitude_bins, h, w)
                if magnitudes is None:
                    groups = [(op_ids == k, 0.0)]
                else:
                    m = float(magnitudes[ra.magnitude])
                    groups = [((op_ids == k) & ~negative, m), ((op_ids == k) & negative, -m)] \
                        if signed else [(op_ids == k, m)]
                for mask, magnitude in groups:
                    idx = mask.nonzero().flatten()
                    if len(idx) == 0 or name == "Identity":
                        continue
                    out[idx] = compat.randaugment_apply(ra, x[idx], name, magnitude)
            x = out
        return x


def normalise(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], then the configured mean/std (as the per-sample path's
    normalisation in :mod:`augloss.augment`)."""
    out = x.float().div_(255.0)
    if cfg.mean_std() is not None:
        mean, std = (torch.tensor(v, device=x.device)[:, None, None] for v in cfg.mean_std())
        out = (out - mean) / std
    return out


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float,
          g: torch.Generator, host: np.random.Generator) -> aug.MixedBatch:
    """:func:`augloss.augment.mixup` with the pairing drawn from ``g`` (on the batch's device)
    and ``lam ~ Beta(alpha, alpha)`` from ``host`` (never a device-to-host copy)."""
    lam = float(host.beta(alpha, alpha))
    perm = torch.randperm(len(images), generator=g, device=g.device).to(images.device)
    return aug.MixedBatch(lam * images + (1.0 - lam) * images[perm], targets, targets[perm], lam)
