"""Loss modules: the one door is :func:`get` (the registry and spec checks: :mod:`.registry`)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from augloss.losses.expr import Expr
from augloss.losses.registry import EXACT_LOG, resolve

class ExpressionLoss(nn.Module):
    """``loss(logits, target)`` for a loss expression.

    ``p = softmax(logits)`` is computed in float32 (autocast is disabled inside), ``target`` is
    int64 class indices ``[B]`` or float probabilities ``[B, C]``. Label smoothing replaces ``y``
    by ``y (1 - ls) + ls / C``; class weights multiply the per-class term. The per-class term is
    summed over classes and averaged over the batch (:meth:`per_sample` skips the average).
    """

    def __init__(self, expr: Expr, name: str | None = None, label_smoothing: float = 0.0,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 exact_log: bool = False):
        super().__init__()
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if "p" not in expr.leaves():
            raise ValueError(f"loss {str(expr)!r} does not use p: its gradient would be zero")
        self.expr = expr
        self.name = name or str(expr)
        self.label_smoothing = float(label_smoothing)
        self.exact_log = bool(exact_log)
        self._term = expr.compile(exact_log=self.exact_log)
        if class_weights is not None:
            w = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
            if not torch.isfinite(w).all() or (w < 0).any():
                raise ValueError("class_weights must be finite and non-negative")
            self.register_buffer("class_weights", w)
        else:
            self.class_weights = None

    def extra_repr(self) -> str:
        return (f"expr={str(self.expr)!r}, label_smoothing={self.label_smoothing}, "
                f"exact_log={self.exact_log}")

    def targets(self, target: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The float32 target distribution ``y`` (one-hot or soft, then label-smoothed)."""
        if target.dtype.is_floating_point:
            if target.dim() != 2 or target.shape[1] != num_classes:
                raise ValueError(f"soft targets must have shape [B, {num_classes}], "
                                 f"got {list(target.shape)}")
            y = target.float()
        else:
            if target.dim() != 1:
                raise ValueError(f"class-index targets must have shape [B], got {list(target.shape)}")
            y = F.one_hot(target.long(), num_classes).float()
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        return y

    def per_sample(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each sample, shape ``[B]``, in float32."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            p = torch.softmax(logits, dim=-1)
            logp = torch.log_softmax(logits, dim=-1) if self.exact_log else None
            y = self.targets(target, p.shape[-1])
            t = self._term(y, p, logp)
            if self.class_weights is not None:
                if self.class_weights.numel() != p.shape[-1]:
                    raise ValueError(f"{self.class_weights.numel()} class weights for "
                                     f"{p.shape[-1]} classes")
                t = t * self.class_weights
            return t.sum(dim=-1)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_sample(logits, target).mean()


def get(spec: str | Expr, label_smoothing: float = 0.0,
        class_weights: Sequence[float] | torch.Tensor | None = None) -> ExpressionLoss:
    """A loss module from a registry name, expression text, or an :class:`Expr`.

    ``get("ce")`` equals ``torch.nn.functional.cross_entropy``; see :data:`EXACT_LOG`.
    """
    expr, name = resolve(spec, label_smoothing, class_weights)
    return ExpressionLoss(expr, name=name, label_smoothing=label_smoothing,
                          class_weights=class_weights, exact_log=name in EXACT_LOG)
