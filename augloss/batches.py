"""What feeds the training loop (:mod:`augloss.train`): the sample-by-sample DataLoader, the
batched tensor pipeline's batches and random sources, and evaluation.

Every shuffle is seeded by :func:`epoch_seed` from ``(seed, epoch)``, so a resumed run sees the
batches an uninterrupted one sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from augloss import augment as aug
from augloss.config import AugmentConfig, TrainConfig


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, data, transform):
        self.data, self.transform = data, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.data[i]
        return self.transform(x), y


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 12345) % (2**63 - 1)


def data_loader(data, transform, batch_size: int, shuffle: bool, seed: int, epoch: int,
                workers: int, drop_last: bool = False):
    """The DataLoader of the sample-by-sample pipeline, its shuffle seeded by ``(seed, epoch)``
    (public: the benchmarks time this exact path)."""
    g = torch.Generator()
    g.manual_seed(epoch_seed(seed, epoch))
    return torch.utils.data.DataLoader(
        _Transformed(data, transform), batch_size=batch_size, shuffle=shuffle, generator=g,
        num_workers=workers, drop_last=drop_last, persistent_workers=False,
        pin_memory=torch.cuda.is_available())


def use_tensors(cfg: "TrainConfig", technique: aug.Technique, data) -> bool:
    """Whether to train through the batched tensor pipeline (see ``TrainConfig.pipeline``)."""
    from augloss import batch_augment

    if cfg.pipeline == "loader":
        return False
    why_not = batch_augment.refusal(technique, *(int(n) for n in data.images.shape[-2:])) \
        if getattr(data, "in_memory", False) else "the images are not held in memory"
    if cfg.pipeline == "tensor" and why_not:
        raise ValueError(f"train.pipeline: tensor, but {why_not}; use auto or loader")
    return why_not is None


@torch.no_grad()
def evaluate(model: nn.Module, data, transform, batch_size: int, device: torch.device,
             workers: int = 0, amp: bool = False, tensors: AugmentConfig | None = None
             ) -> list[float]:
    """Top-1 accuracy of ``model`` on ``data``, one value per copy (one for a plain model).

    ``tensors``: evaluate from the in-memory uint8 images, normalised with this config (the
    tensor pipeline), instead of through ``transform`` in a DataLoader.
    """
    from augloss import batch_augment

    model.eval()
    correct, total = None, 0
    if tensors is not None:
        images, labels = data.images, data.labels
        batches = ((batch_augment.normalise(images[i:i + batch_size].to(device), tensors),
                    labels[i:i + batch_size]) for i in range(0, len(labels), batch_size))
    else:
        batches = data_loader(data, transform, batch_size, False, 0, 0, workers)
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        if logits.ndim == 2:
            logits = logits[:, None]
        hits = (logits.argmax(-1) == y[:, None]).sum(0)
        correct = hits if correct is None else correct + hits
        total += len(y)
    if correct is None:
        return [0.0] * getattr(model, "copies", 1)
    return [int(c) / max(1, total) for c in correct]


@dataclass
class Draws:
    """The tensor pipeline's random sources, reseeded together at each shuffled pass: ``gen``
    on the device (order, augmentation, mixup's pairing) and ``host`` for the draws the host
    needs as numbers (mixup's ``lam``), so no step waits for the device to answer."""

    gen: torch.Generator
    host: np.random.Generator | None = None

    def reseed(self, seed: int) -> None:
        self.gen.manual_seed(seed)
        self.host = np.random.default_rng(seed)


def tensor_batches(train_data, technique, cfg: TrainConfig, seed: int, device: torch.device,
                    draws: Draws, on_device: tuple | None = None
                    ) -> Callable[[int, int], Iterator]:
    """Batches from the training set held on the device, augmented as whole batches.
    ``on_device``: the set's ``(images, labels)`` already on ``device`` (one copy shared by
    the independent copies of a stacked run)."""
    from augloss import batch_augment

    pipeline = batch_augment.BatchAugment(technique)
    images, labels = on_device if on_device is not None else \
        (train_data.images.to(device), train_data.labels.to(device))
    n, bs = len(labels), cfg.batch_size

    def batches(epoch: int, steps: int) -> Iterator:
        # One shuffled pass, reseeded from the step it starts at (so a resume sees the same).
        draws.reseed(epoch_seed(seed, epoch * 1000 + steps))
        order = torch.randperm(n, generator=draws.gen, device=device)
        for i in range(0, n - n % bs if n >= bs else n, bs):
            idx = order[i:i + bs]
            yield pipeline(images[idx], draws.gen), labels[idx]

    return batches


def loader_batches(train_data, technique, cfg: TrainConfig, seed: int
                    ) -> Callable[[int, int], Iterator]:
    """Batches from a DataLoader that augments sample by sample (torchvision transforms)."""
    def batches(epoch: int, steps: int) -> Iterator:
        yield from data_loader(train_data, technique.train_transform, cfg.batch_size, True,
                               seed, epoch * 1000 + steps, cfg.num_workers,
                               drop_last=len(train_data) >= cfg.batch_size)

    return batches
