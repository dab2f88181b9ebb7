"""K surrogate copies fused into one network, for population-batched fitness evaluation.

:class:`GroupedSurrogate` holds K :class:`augloss.models.Surrogate` copies as grouped layers:
the stem is one convolution with ``K x 8`` output channels (every copy reads the same image),
every later convolution has ``groups=K``, every BatchNorm has ``K x C`` channels, and the head is
a batched matrix product. Copy ``k`` owns channel block ``k`` of every layer, so

* each copy's forward pass, BatchNorm statistics (batch and running) and gradient are exactly
  those of the stand-alone network on the same batch (no cross-talk: parameters are disjoint);
* summing the K losses and calling ``backward`` once gives every copy its own gradient, and
  element-wise optimizers (SGD, Adam, AdamW) update each block as they would the copy alone;
* dropout draws one mask per step and shares it across copies -- the mask each copy would draw
  from the same seeded generator when trained alone.

**Independent copies.** Fed ``K x 3`` channels (copy ``k``'s own batch in channels
``3k..3k+2``), the stem convolves each copy's images with its own filters, so the copies may train
on different batches, augmentations and seeds (a pool's candidates, each under its own
evaluation seed; one child of every augmentation's search in one step). With
:attr:`GroupedSurrogate.copy_rng` set (:class:`CopyRNG`), each copy's dropout mask is drawn from
that copy's own random state, the mask it draws when trained alone; evaluation feeds the
shared 3-channel images as before.

Measured against ``torch.func`` (``stack_module_state`` + ``functional_call`` + ``vmap``) this
layout was chosen because vmap cannot update BatchNorm running statistics in place (the usual
fix, ``replace_all_batch_norm_modules_``, drops them and changes evaluation), while grouped
layers keep them exact; see ``benchmarks/population.py`` for the timings.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from augloss.models import PreActBlock, Surrogate


class CopyRNG:
    """The random state torch's default generators would hold in each copy's own run.

    ``with rng.active(k):`` swaps copy ``k``'s saved state into the default generator of the
    host (and of the CUDA device) and saves it back afterwards, so every draw made inside --
    a dropout mask, a per-sample augmentation, mixup's pairing -- is the draw the copy makes
    alone, whatever the other copies drew in between.
    """

    def __init__(self, copies: int, device: torch.device | str = "cpu"):
        self.states: list[tuple | None] = [None] * copies
        device = torch.device(device)
        self.cuda = device if device.type == "cuda" else None

    def _get(self) -> tuple:
        return (torch.get_rng_state(),
                torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None)

    def _set(self, state: tuple) -> None:
        torch.set_rng_state(state[0])
        if self.cuda is not None:
            torch.cuda.set_rng_state(state[1], self.cuda)

    @contextmanager
    def active(self, k: int):
        saved = self._get()
        if self.states[k] is not None:
            self._set(self.states[k])
        try:
            yield
        finally:
            self.states[k] = self._get()
            self._set(saved)

    def seed(self, k: int, seed: int) -> None:
        """Copy ``k``'s state after ``torch.manual_seed(seed)`` (what its own run does)."""
        with self.active(k):
            torch.manual_seed(seed)


def _grouped_conv(convs: list[nn.Conv2d], shared_input: bool) -> nn.Conv2d:
    c = convs[0]
    k = len(convs)
    out = nn.Conv2d(c.in_channels * (1 if shared_input else k), c.out_channels * k,
                    c.kernel_size, stride=c.stride, padding=c.padding,
                    groups=1 if shared_input else k, bias=c.bias is not None)
    with torch.no_grad():
        out.weight.copy_(torch.cat([m.weight for m in convs]))
        if c.bias is not None:
            out.bias.copy_(torch.cat([m.bias for m in convs]))
    return out


def _grouped_bn(bns: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    b = bns[0]
    out = nn.BatchNorm2d(b.num_features * len(bns), eps=b.eps, momentum=b.momentum)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, name).copy_(torch.cat([getattr(m, name) for m in bns]))
        out.num_batches_tracked.copy_(b.num_batches_tracked)
    return out


def _grouped_seq(seqs: list[nn.Sequential], shared_input: bool = False) -> nn.Sequential:
    layers = []
    for parts in zip(*seqs):
        if isinstance(parts[0], nn.Conv2d):
            layers.append(_grouped_conv(list(parts), shared_input))
        elif isinstance(parts[0], nn.BatchNorm2d):
            layers.append(_grouped_bn(list(parts)))
        else:
            layers.append(parts[0].__class__())
    return nn.Sequential(*layers)


class _GroupedBlock(nn.Module):
    def __init__(self, blocks: list[PreActBlock]):
        super().__init__()
        self.main = _grouped_seq([b.main for b in blocks])
        self.shortcut = _grouped_conv([b.shortcut for b in blocks], shared_input=False)

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


class GroupedSurrogate(nn.Module):
    """K surrogates in one module; ``forward`` returns logits of shape ``(N, K, classes)``."""

    def __init__(self, models: list[Surrogate]):
        super().__init__()
        if not models or not all(isinstance(m, Surrogate) for m in models):
            raise ValueError("GroupedSurrogate needs one or more Surrogate models")
        self.copies = len(models)
        self.width = models[0].head.in_features
        self.p = models[0].dropout.p
        self.stem = _grouped_conv([m.stem for m in models], shared_input=True)
        self.blocks = nn.Sequential(*(_GroupedBlock([m.blocks[i] for m in models])
                                      for i in range(len(models[0].blocks))))
        self.head_weight = nn.Parameter(torch.stack([m.head.weight.detach().t()
                                                     for m in models]).clone())
        self.head_bias = nn.Parameter(torch.stack([m.head.bias.detach() for m in models]).clone())
        #: per-copy random states for the dropout masks (independent copies); None: one shared
        self.copy_rng: CopyRNG | None = None

    def _stem(self, x):
        c = self.stem.in_channels
        if x.shape[1] == c:
            return self.stem(x)  # every copy reads the same images
        if x.shape[1] != c * self.copies:
            raise ValueError(f"GroupedSurrogate of {self.copies} copies takes {c} or "
                             f"{c * self.copies} channels, got {x.shape[1]}")
        # copy k's own images through copy k's own filters (one convolution per copy: exactly
        # the stand-alone stem, unlike a grouped convolution's kernel)
        w = self.stem.weight.view(self.copies, -1, *self.stem.weight.shape[1:])
        b = self.stem.bias.view(self.copies, -1) if self.stem.bias is not None else None
        return torch.cat([F.conv2d(x[:, c * k:c * (k + 1)], w[k], None if b is None else b[k],
                                   self.stem.stride, self.stem.padding)
                          for k in range(self.copies)], dim=1)

    def forward(self, x):
        n = len(x)
        h = self.blocks(self._stem(x)).mean(dim=(2, 3)).view(n, self.copies, self.width)
        if self.training and self.p > 0:
            ones = torch.ones(n, self.width, device=x.device, dtype=h.dtype)
            if self.copy_rng is None:
                # One mask per step, shared: what each copy draws alone from the same generator.
                mask = F.dropout(ones, self.p)[:, None, :]
            else:  # each copy's mask from its own random state
                masks = []
                for k in range(self.copies):
                    with self.copy_rng.active(k):
                        masks.append(F.dropout(ones, self.p))
                mask = torch.stack(masks, 1)
            h = h * mask
        return torch.einsum("nkc,kcd->nkd", h, self.head_weight) + self.head_bias

    def copy_parameters(self, k: int) -> list[torch.Tensor]:
        """Views of copy ``k``'s parameters (block ``k`` of every grouped tensor)."""
        return [p.view(self.copies, -1)[k] for p in self.parameters()]

    def split(self, template: Surrogate) -> list[Surrogate]:
        """The K copies as stand-alone surrogates (``template`` gives the architecture)."""
        import copy

        out = []
        for k in range(self.copies):
            m = copy.deepcopy(template)
            with torch.no_grad():
                for (name, p), src in zip(_flat_leaves(m), _flat_leaves_grouped(self, k)):
                    p.copy_(src.reshape(p.shape))
                bns = [x for x in self.modules() if isinstance(x, nn.BatchNorm2d)]
                for mine, grouped in zip((x for x in m.modules()
                                          if isinstance(x, nn.BatchNorm2d)), bns):
                    mine.num_batches_tracked.copy_(grouped.num_batches_tracked)
            out.append(m)
        return out


def _flat_leaves(model: Surrogate):
    """A surrogate's tensors in the grouped model's order (parameters, then BN buffers)."""
    tensors = [("stem.weight", model.stem.weight), ("stem.bias", model.stem.bias)]
    for i, b in enumerate(model.blocks):
        for j, layer in enumerate(b.main):
            tensors += _layer_tensors(f"blocks.{i}.main.{j}", layer)
        tensors += _layer_tensors(f"blocks.{i}.shortcut", b.shortcut)
    tensors += [("head.weight.t", model.head.weight.t()), ("head.bias", model.head.bias)]
    return tensors


def _flat_leaves_grouped(g: GroupedSurrogate, k: int):
    tensors = [g.stem.weight, g.stem.bias]
    for b in g.blocks:
        for layer in b.main:
            tensors += [t for _, t in _layer_tensors("", layer)]
        tensors += [t for _, t in _layer_tensors("", b.shortcut)]
    tensors += [g.head_weight, g.head_bias]
    return [t.reshape(g.copies, -1)[k] for t in tensors]


def _layer_tensors(prefix: str, layer: nn.Module):
    if isinstance(layer, nn.Conv2d):
        return [(f"{prefix}.weight", layer.weight), (f"{prefix}.bias", layer.bias)]
    if isinstance(layer, nn.BatchNorm2d):
        return [(f"{prefix}.{n}", getattr(layer, n))
                for n in ("weight", "bias", "running_mean", "running_var")]
    return []


class StackedSurrogates(nn.Module):
    """K surrogates side by side, each run by its own kernels: the exact stack.

    The same interface as :class:`GroupedSurrogate` (logits ``(N, K, classes)``; 3 shared or
    ``K x 3`` per-copy channels; dropout masks shared, or per copy from :attr:`copy_rng`), but
    every copy's forward and backward are its stand-alone network's own operations on its own
    tensors, so each copy's result is **bit for bit** the one it gets alone (grouped kernels
    reduce weight gradients in another order and agree only within float rounding). It
    saves no arithmetic: the trainer uses it where kernels are compute-bound anyway (the
    CPU, :func:`stack`), so K candidates cost what K one-by-one trainings cost.
    """

    def __init__(self, models: list[Surrogate]):
        super().__init__()
        if not models or not all(isinstance(m, Surrogate) for m in models):
            raise ValueError("StackedSurrogates needs one or more Surrogate models")
        self.models = nn.ModuleList(models)
        self.copies = len(models)
        self.p = models[0].dropout.p
        self.copy_rng: CopyRNG | None = None
        #: the copies still training (the trainer sets it): a stopped copy computes nothing
        #: and its logits are zeros, so it costs nothing for the rest of the run
        self.live: list[bool] | None = None

    def forward(self, x):
        c = self.models[0].stem.in_channels
        if x.shape[1] not in (c, c * self.copies):
            raise ValueError(f"StackedSurrogates of {self.copies} copies takes {c} or "
                             f"{c * self.copies} channels, got {x.shape[1]}")
        shared = x.shape[1] == c
        live = self.live or [True] * self.copies
        hs = [m.blocks(m.stem(x if shared else x[:, c * k:c * (k + 1)])).mean(dim=(2, 3))
              if live[k] else None for k, m in enumerate(self.models)]
        if self.training and self.p > 0:
            ones = torch.ones_like(next(h for h in hs if h is not None))
            if self.copy_rng is None:  # one mask, shared (Dropout(h) is h times this mask)
                mask = F.dropout(ones, self.p)
                hs = [h * mask if h is not None else None for h in hs]
            else:
                for k in range(self.copies):
                    if hs[k] is not None:
                        with self.copy_rng.active(k):
                            hs[k] = hs[k] * F.dropout(ones, self.p)
        heads = self.models[0].head
        zeros = x.new_zeros(len(x), heads.out_features)
        return torch.stack([m.head(h) if h is not None else zeros
                            for m, h in zip(self.models, hs)], 1)

    def copy_parameters(self, k: int) -> list[torch.Tensor]:
        return list(self.models[k].parameters())

    def split(self, template: Surrogate | None = None) -> list[Surrogate]:
        return list(self.models)


def stack(models: list[Surrogate], device: torch.device | str) -> nn.Module:
    """The stacked surrogate the trainer uses on ``device``: grouped kernels on CUDA (one
    launch for K copies; each copy's result within float rounding of its own run), the exact
    :class:`StackedSurrogates` elsewhere (bit for bit; the CPU gains nothing from grouping)."""
    return GroupedSurrogate(models) if torch.device(device).type == "cuda" \
        else StackedSurrogates(models)
