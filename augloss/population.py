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

Measured against ``torch.func`` (``stack_module_state`` + ``functional_call`` + ``vmap``) this
layout was chosen because vmap cannot update BatchNorm running statistics in place (the usual
fix, ``replace_all_batch_norm_modules_``, drops them and changes evaluation), while grouped
layers keep them exact; see ``benchmarks/population.py`` for the timings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from augloss.models import PreActBlock, Surrogate


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

    def forward(self, x):
        n = len(x)
        h = self.blocks(self.stem(x)).mean(dim=(2, 3)).view(n, self.copies, self.width)
        if self.training and self.p > 0:
            # One mask per step, shared: what each copy draws alone from the same generator.
            mask = F.dropout(torch.ones(n, self.width, device=x.device, dtype=h.dtype), self.p)
            h = h * mask[:, None, :]
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
