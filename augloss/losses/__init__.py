"""The loss language: operators, expressions, the graph genome, the integrity test, the registry.

One door per concept: :func:`get` builds a loss module, :func:`parse` reads expression text,
:class:`Genome` is the search's representation, :func:`integrity` its sanity test.
"""

from augloss.losses.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    Call,
    Const,
    Expr,
    Leaf,
    LossSyntaxError,
    parse,
)
from augloss.losses.genome import Genome, InvalidGenome, MutationFailed
from augloss.losses.integrity import IntegrityResult, curve, integrity, judge, probe
from augloss.losses.module import REGISTRY, ExpressionLoss, get
from augloss.losses.ops import BINARY, EPS, OPS, UNARY, Op

__all__ = [
    "BINARY", "EPS", "MAX_DEPTH", "MAX_LENGTH", "OPS", "REGISTRY", "UNARY",
    "Call", "Const", "Expr", "ExpressionLoss", "Genome", "IntegrityResult", "InvalidGenome",
    "Leaf", "LossSyntaxError", "MutationFailed", "Op",
    "curve", "get", "integrity", "judge", "parse", "probe",
]
