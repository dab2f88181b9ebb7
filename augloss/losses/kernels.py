"""The PyTorch function of every operator in :mod:`augloss.losses.ops`, by operator name.

Kept apart from the operator table so that parsing and printing losses (the workflow's config
checks) never import torch; :attr:`augloss.losses.ops.Op.fn` reads :data:`KERNELS`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from augloss.losses.ops import EPS, OPS

_LN10 = math.log(10.0)


def _ln(x):
    return torch.log(torch.abs(x) + EPS)


def _log10(x):
    return torch.log(torch.abs(x) + EPS) / _LN10


def _dsoft(x):
    return 1.0 / (1.0 + torch.abs(x))


def _softplus(x):
    return torch.log(torch.abs(1.0 + torch.exp(x)) + EPS)


def _inv(x):
    return 1.0 / (x + EPS)


def _sqrt(x):
    return torch.sqrt(torch.abs(x))


def _softsign(x):
    return x / (1.0 + torch.abs(x))


def _dtanh(x):
    return 1.0 - torch.tanh(x) ** 2


def _dsigmoid(x):
    s = torch.sigmoid(x)
    return s * (1.0 - s)


def _div(a, b):
    return a / (b + EPS)


def _aq(a, b):
    return a / torch.sqrt(1.0 + b * b)


def _nrelu(x):
    return torch.clamp_max(x, 0.0)


KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "neg": torch.neg,
    "ln": _ln,
    "log10": _log10,
    "exp": torch.exp,
    "abs": torch.abs,
    "sigmoid": torch.sigmoid,
    "dsoft": _dsoft,
    "softplus": _softplus,
    "erf": torch.erf,
    "erfc": torch.erfc,
    "sin": torch.sin,
    "sinh": torch.sinh,
    "asinh": torch.asinh,
    "tanh": torch.tanh,
    "atan": torch.atan,
    "inv": _inv,
    "i0": torch.special.i0,
    "i0e": torch.special.i0e,
    "i1": torch.special.i1,
    "i1e": torch.special.i1e,
    "relu": torch.relu,
    "nrelu": _nrelu,
    "square": torch.square,
    "sqrt": _sqrt,
    "softsign": _softsign,
    "dtanh": _dtanh,
    "dsigmoid": _dsigmoid,
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "max": torch.maximum,
    "min": torch.minimum,
    "div": _div,
    "aq": _aq,
}

assert set(KERNELS) == set(OPS)
