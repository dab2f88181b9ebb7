"""The loss language: operators, expressions, the graph genome, the integrity test, the registry.

One door per concept: :func:`get` builds a loss module, :func:`parse` reads expression text,
:class:`Genome` is the search's representation, :func:`integrity` its sanity test and
:func:`orientation` how a loss trains (as written, or as the test orients it).

The language itself (:mod:`.ops`, :mod:`.expr`, :mod:`.registry`) imports no torch; the names
that need it (modules, genome, integrity) are loaded on first access, so the workflow can check
loss specs at parse time without the ~2 s torch import.
"""

import importlib

from augloss.losses.expr import (
    EARLIER_LEAVES,
    EARLIER_NAMES,
    MAX_DEPTH,
    MAX_LENGTH,
    Call,
    Const,
    Expr,
    Leaf,
    LossSyntaxError,
    parse,
)
from augloss.losses.ops import BINARY, EPS, OPS, UNARY, Op
from augloss.losses.registry import EXACT_LOG, NEEDS_CLASS_WEIGHTS, REGISTRY, resolve

_LAZY = {
    "ExpressionLoss": "module", "get": "module",
    "Genome": "genome", "InvalidGenome": "genome", "MutationFailed": "genome",
    "IntegrityResult": "integrity", "curve": "integrity", "integrity": "integrity",
    "judge": "integrity", "probe": "integrity", "Orientation": "integrity",
    "orientation": "integrity",
}


def __getattr__(name: str):
    if name in _LAZY:
        # Bind every lazy name at once: importing the submodule ``integrity`` sets the package
        # attribute of that name to the module, which the function of that name must replace.
        for lazy, module in _LAZY.items():
            globals()[lazy] = getattr(importlib.import_module(f"augloss.losses.{module}"), lazy)
        return globals()[name]
    raise AttributeError(f"module 'augloss.losses' has no attribute {name!r}")


__all__ = [
    "BINARY", "EARLIER_LEAVES", "EARLIER_NAMES", "EPS", "EXACT_LOG", "MAX_DEPTH", "MAX_LENGTH",
    "NEEDS_CLASS_WEIGHTS", "OPS", "REGISTRY", "UNARY",
    "Call", "Const", "Expr", "ExpressionLoss", "Genome", "IntegrityResult", "InvalidGenome",
    "Leaf", "LossSyntaxError", "MutationFailed", "Op", "Orientation",
    "curve", "get", "integrity", "judge", "orientation", "parse", "probe", "resolve",
]
