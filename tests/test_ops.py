"""Every operator against an independent NumPy/SciPy reference on random inputs."""

import numpy as np
import pytest
import scipy.special as sp
import torch

from augloss.losses import BINARY, EPS, OPS, UNARY

EPS32 = np.float32(1e-7)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


# Reference semantics written from the earlier code's table, independently of augloss.losses.ops.
UNARY_REF = {
    "neg": lambda x: -x,
    "ln": lambda x: np.log(np.abs(x) + 1e-7),
    "log10": lambda x: np.log10(np.abs(x) + 1e-7),
    "exp": np.exp,
    "abs": np.abs,
    "sigmoid": _sig,
    "dsoft": lambda x: 1.0 / (1.0 + np.abs(x)),
    "softplus": lambda x: np.log(np.abs(1.0 + np.exp(x)) + 1e-7),
    "erf": sp.erf,
    "erfc": sp.erfc,
    "sin": np.sin,
    "sinh": np.sinh,
    "asinh": np.arcsinh,
    "tanh": np.tanh,
    "atan": np.arctan,
    "inv": lambda x: 1.0 / (x + 1e-7),
    "i0": sp.i0,
    "i0e": sp.i0e,
    "i1": sp.i1,
    "i1e": sp.i1e,
    "relu": lambda x: np.maximum(x, 0.0),
    "nrelu": lambda x: np.minimum(x, 0.0),
    "square": lambda x: x * x,
    "sqrt": lambda x: np.sqrt(np.abs(x)),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "dtanh": lambda x: 1.0 / np.cosh(x) ** 2,
    "dsigmoid": lambda x: _sig(x) * (1.0 - _sig(x)),
}
BINARY_REF = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
    "div": lambda a, b: a / (b + 1e-7),
    "aq": lambda a, b: a / np.sqrt(1.0 + b * b),
}
# The earlier code's op ids, in order.
UNARY_ORDER = ["neg", "ln", "log10", "exp", "abs", "sigmoid", "dsoft", "softplus", "erf", "erfc",
               "sin", "sinh", "asinh", "tanh", "atan", "inv", "i0", "i0e", "i1", "i1e", "relu",
               "nrelu", "square", "sqrt", "softsign", "dtanh", "dsigmoid"]
BINARY_ORDER = ["add", "sub", "mul", "max", "min", "div", "aq"]


def _inputs(seed, n=2000):
    rng = np.random.default_rng(seed)
    # Mix of scales: probabilities, moderate values and a few larger ones, both signs.
    x = np.concatenate([rng.uniform(0, 1, n // 2), rng.normal(0, 3, n // 2)])
    return x.astype(np.float32)


def test_operator_counts_and_ids():
    assert [op.name for op in UNARY] == UNARY_ORDER
    assert [op.name for op in BINARY] == BINARY_ORDER
    assert len(OPS) == 34 and EPS == 1e-7


@pytest.mark.parametrize("name", UNARY_ORDER)
def test_unary_matches_reference(name):
    x = _inputs(UNARY_ORDER.index(name))
    with np.errstate(all="ignore"):
        want = UNARY_REF[name](x.astype(np.float64))
    got = OPS[name].fn(torch.from_numpy(x)).double().numpy()
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-5, atol=1e-5)
    assert np.array_equal(np.isfinite(got), finite)


@pytest.mark.parametrize("name", BINARY_ORDER)
def test_binary_matches_reference(name):
    a, b = _inputs(1), _inputs(2)
    want = BINARY_REF[name](a.astype(np.float64), b.astype(np.float64))
    got = OPS[name].fn(torch.from_numpy(a), torch.from_numpy(b)).double().numpy()
    if name == "div":
        # b + eps is rounded in float32 before dividing: compare against that.
        want = a.astype(np.float64) / (b + EPS32).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)


def test_guards_are_the_earlier_codes():
    zero = torch.zeros(1)
    assert OPS["ln"].fn(zero).item() == pytest.approx(np.log(1e-7), rel=1e-5)
    assert OPS["inv"].fn(zero).item() == pytest.approx(1e7, rel=1e-5)
    assert OPS["div"].fn(torch.ones(1), zero).item() == pytest.approx(1e7, rel=1e-5)
    assert OPS["sqrt"].fn(torch.tensor([-4.0])).item() == 2.0
    # float32 overflow is kept (the trainer reports it as divergence).
    assert torch.isinf(OPS["exp"].fn(torch.tensor([100.0]))).all()
    assert torch.isinf(OPS["softplus"].fn(torch.tensor([100.0]))).all()


@pytest.mark.parametrize("op", UNARY + BINARY, ids=lambda op: op.name)
def test_templates_have_the_right_arity(op):
    args = [f"a{i}" for i in range(op.arity)]
    assert all(a in op.source.format(*args) for a in args)
    assert all(a in op.latex.format(*args) for a in args)
