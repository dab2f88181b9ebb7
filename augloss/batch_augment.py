"""The five techniques as batched tensor operations, for data held as one tensor on the device.

:class:`BatchAugment` takes a uint8 batch ``(N, C, H, W)`` (CPU or GPU) and a seeded
``torch.Generator`` on the same device, and returns the normalised float batch that the
per-sample path (:func:`augloss.augment.build`, torchvision ``v2`` per image in a DataLoader)
would produce in distribution. Per-sample randomness is drawn as vectors and applied through
masks and gathers, so a batch costs a handful of tensor operations instead of ``N`` Python-level
transform calls:

* pad-and-crop: one padded copy, per-sample offsets, one gather;
* horizontal flip: a Bernoulli(0.5) mask and ``torch.where``;
* cutout: per-sample centres, a row mask times a column mask;
* RandAugment: per sample and per slot an op id and a sign; the samples that drew the same
  (op, sign) are transformed together by torchvision's own op at the configured magnitude, so
  every op is exactly torchvision's (at most 2 x 14 x 2 grouped calls per batch);
* mixup: unchanged (it is a batch operation already), the pairing drawn from the generator and
  ``lam`` from a host NumPy generator seeded with it (a draw on the device would make the host
  wait for the GPU at every step).

Training on square in-memory images (``finetune: false``) is batched: images of another side
than ``image_size`` are resized once, up front (:func:`at_size`, the per-sample path's resize
step; the earlier code resized to 80 px before augmenting). Fine-tuning's random-resized crop
stays on the per-sample path.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from augloss import augment as aug
from augloss import compat


def supported(technique: aug.Technique, height: int, width: int) -> bool:
    """Whether ``technique`` on in-memory images of ``height`` x ``width`` has a batched path."""
    return not technique.config.finetune and height == width


def at_size(data, cfg: aug.AugmentConfig):
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
        cfg = technique.config
        if cfg.finetune:
            raise ValueError("the batched path covers pad-crop training (finetune: false)")
        self.name = technique.name
        self.cfg = cfg
        self.geometry = technique.name != "none"
        self.randaugment = technique.name in ("randaugment", "all")
        self.cutout = cfg.scaled(cfg.cutout_size) if technique.name in ("cutout", "all") else 0
        self.pad = cfg.scaled(cfg.pad)
        self.mixup = technique.mixup
        if self.randaugment:  # torchvision only where its ops are used
            from torchvision.transforms import v2

            self._ra = v2.RandAugment(num_ops=cfg.randaugment_n, magnitude=cfg.randaugment_m)
            self._ops = compat.randaugment_ops(self._ra)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment the uint8 batch ``x``; returns float32, normalised like the per-sample path."""
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError("expected a uint8 batch of shape (N, C, H, W)")
        if x.shape[-1] != self.cfg.image_size or x.shape[-2] != self.cfg.image_size:
            raise ValueError(f"expected {self.cfg.image_size}-px images (resize with at_size)")
        if self.randaugment:
            x = self.rand_augment(x, g)
        if self.geometry:
            x = self.flip(self.crop(x, g), g)
        if self.cutout:
            x = self.erase(x, g)
        return normalise(x, self.cfg)

    # --- the operations (public for the equivalence tests) ------------------------------------
    def crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``v2.RandomCrop(H, padding=pad)`` per sample: zero padding, uniform offsets."""
        n, _, h, w = x.shape
        p = self.pad
        if p == 0:
            return x
        padded = F.pad(x, (p, p, p, p))
        oy = torch.randint(2 * p + 1, (n,), generator=g, device=x.device)
        ox = torch.randint(2 * p + 1, (n,), generator=g, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, chan, rows, cols]

    @staticmethod
    def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``v2.RandomHorizontalFlip()`` per sample."""
        flip = torch.rand(len(x), generator=g, device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """:class:`augloss.augment.Cutout` per sample: a square of zeros, centre uniform."""
        n, _, h, w = x.shape
        s = self.cutout
        cy = torch.randint(h, (n,), generator=g, device=x.device)
        cx = torch.randint(w, (n,), generator=g, device=x.device)
        ys = torch.arange(h, device=x.device)[None, :]
        xs = torch.arange(w, device=x.device)[None, :]
        y0, x0 = (cy - s // 2)[:, None], (cx - s // 2)[:, None]
        rows = (ys >= y0) & (ys < y0 + s)
        cols = (xs >= x0) & (xs < x0 + s)
        hole = rows[:, :, None] & cols[:, None, :]
        return x.masked_fill(hole[:, None], 0)

    def rand_augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``v2.RandAugment(N, M)`` per sample, each op applied by torchvision to its group."""
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
                    out[idx] = ra._apply_image_or_video_transform(
                        x[idx], name, magnitude, interpolation=ra.interpolation, fill=ra._fill)
            x = out
        return x


def normalise(x: torch.Tensor, cfg: aug.AugmentConfig) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], then the configured mean/std (as ``augment._normalise``)."""
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
