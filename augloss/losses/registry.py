"""The baseline registry and the checks of a loss spec, without torch.

:func:`resolve` is what :func:`augloss.losses.get` checks before it builds a module; the
workflow calls it on the configured baselines at parse time, so a bad baseline fails before any
job runs and the parse never imports torch.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from augloss.losses.expr import LEAVES, Expr, LossSyntaxError, parse

#: name -> expression text. Each is a per-class term summed over classes and averaged over the
#: batch; ``ln`` and ``/`` are eps-guarded as in the search space.
REGISTRY: dict[str, str] = {
    # Cross-entropy: -sum_c y_c ln(p_c).
    "ce": "-(y * ln(p))",
    # Cross-entropy with per-class weights: pass class_weights=[...] to get().
    "weighted_ce": "-(y * ln(p))",
    # Focal loss, gamma = 2 (Lin et al. 2017, softmax form): -sum_c y_c (1 - p_c)^2 ln(p_c).
    "focal": "-(y * square(1 - p) * ln(p))",
    # Poly-1 (Leng et al. 2022), epsilon = 1: CE + (1 - p_t), written per class.
    "poly1": "-(y * ln(p)) + y * (1 - p)",
    # Squared and absolute error on probabilities (the computer-vision loss survey's
    # classification-applicable regression losses).
    "mse": "square(y - p)",
    "mae": "abs(y - p)",
    # Baikal loss (Gonzalez & Miikkulainen 2020), in the form of the earlier code's baseline:
    # -sum_c [ln(p_c + eps) - y_c / (p_c + eps)].
    "baikal": "-(ln(p) - y / p)",
}

#: Registry names that require class weights.
NEEDS_CLASS_WEIGHTS = frozenset({"weighted_ce"})

#: Textbook losses whose ``ln(p)`` is the exact log-softmax (so ``get("ce")`` is PyTorch's
#: cross-entropy to float precision). Baikal keeps the earlier code's eps-guarded form, and so
#: does every expression that is not a registry name: the search space's ``ln(|p| + eps)``.
EXACT_LOG = frozenset({"ce", "weighted_ce", "focal", "poly1"})


def resolve(spec, label_smoothing: float = 0.0,
            class_weights: Sequence[float] | None = None) -> tuple[Expr, str | None]:
    """``(expression, registry name or None)`` for a registry name, expression text or Expr.

    Raises ``ValueError`` (a :class:`LossSyntaxError` names the position) for an unknown name, a
    malformed expression, a loss without ``p``, label smoothing outside [0, 1) or bad weights.
    """
    name = None
    if isinstance(spec, Expr):
        expr = spec
    elif isinstance(spec, str):
        if spec in REGISTRY:
            name = spec
            if spec in NEEDS_CLASS_WEIGHTS and class_weights is None:
                raise ValueError(f"loss {spec!r} needs class_weights")
            expr = parse(REGISTRY[spec])
        elif re.fullmatch(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*", spec) and spec.strip() not in LEAVES:
            raise LossSyntaxError(f"unknown loss name {spec.strip()!r} (registry: "
                                  f"{', '.join(REGISTRY)}; or give expression text)", spec,
                                  len(spec) - len(spec.lstrip()))
        else:
            expr = parse(spec)
    else:
        raise TypeError(f"loss spec must be a registry name, expression text or Expr, "
                        f"got {type(spec).__name__}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if "p" not in expr.leaves():
        raise ValueError(f"loss {str(expr)!r} does not use p: its gradient would be zero")
    if class_weights is not None and not hasattr(class_weights, "dtype"):
        weights = [float(w) for w in class_weights]
        if not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError("class_weights must be finite and non-negative")
    return expr, name
