"""The operator set of the loss search space.

The 27 unary and 7 binary operators, their ids, semantics and guards are those of the authors' earlier
code (arXiv 2403.08793, github.com/OUStudent/NeuralLossFunctionEvolution @ 340895b); only the readable
names are ours. ``EPS`` is the Keras epsilon used there. Every operator is element-wise; constants
broadcast. The genome refers to operators by id, the text syntax by name (the parser also reads
the names and notation that code prints a loss in: :mod:`augloss.losses.expr`).

Unary operators (id, name, semantics; ``eps = 1e-7``):

==  =========  ==============================  ====================================================
id  name       semantics                       note
==  =========  ==============================  ====================================================
0   neg        -x                              written ``-x`` in the text syntax
1   ln         ln(|x| + eps)                   guarded natural logarithm
2   log10      ln(|x| + eps) / ln(10)          guarded decimal logarithm
3   exp        e^x                             overflows to inf for x > ~88 (float32)
4   abs        |x|
5   sigmoid    1 / (1 + e^-x)
6   dsoft      1 / (1 + |x|)                   the earlier code's ``deriv_soft`` (as it computes it)
7   softplus   ln(|1 + e^x| + eps)             unguarded exp: inf for x > ~88, as in the earlier code
8   erf        erf(x)
9   erfc       1 - erf(x)
10  sin        sin(x)
11  sinh       sinh(x)
12  asinh      asinh(x)
13  tanh       tanh(x)
14  atan       atan(x)                         arctan, not arctanh
15  inv        1 / (x + eps)                   no abs: a pole at x = -eps
16  i0         I0(x)                           modified Bessel function, order 0
17  i0e        e^-|x| I0(x)                    exponentially scaled
18  i1         I1(x)                           modified Bessel function, order 1
19  i1e        e^-|x| I1(x)                    exponentially scaled
20  relu       max(x, 0)
21  nrelu      min(x, 0)
22  square     x^2
23  sqrt       sqrt(|x|)                       guarded square root
24  softsign   x / (1 + |x|)
25  dtanh      1 - tanh(x)^2                   derivative of tanh
26  dsigmoid   sigmoid(x) (1 - sigmoid(x))     derivative of sigmoid
==  =========  ==============================  ====================================================

Binary operators (``a`` is the first operand, ``b`` the second):

==  =====  =======================  ===========================================
id  name   semantics                text syntax
==  =====  =======================  ===========================================
0   add    a + b                    ``a + b``
1   sub    a - b                    ``a - b``
2   mul    a * b                    ``a * b``
3   max    max(a, b) element-wise   ``max(a, b)``
4   min    min(a, b) element-wise   ``min(a, b)``
5   div    a / (b + eps)            ``a / b`` (guarded, no abs: as the earlier code)
6   aq     a / sqrt(1 + b^2)        ``aq(a, b)``, the analytic quotient
==  =====  =======================  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

EPS = 1e-7


@dataclass(frozen=True)
class Op:
    """One operator: its genome id, name, arity and printing templates.

    The PyTorch function is :attr:`fn`, looked up in :mod:`augloss.losses.kernels` on first use,
    so the language (parsing, printing, the genome's tables) is usable without importing torch.
    """

    id: int
    name: str
    arity: int
    source: str  # PyTorch source template; {0}, {1} are operand expressions, EPS a module constant
    latex: str  # LaTeX template; {0}, {1} are operand LaTeX
    doc: str
    commutative: bool = False

    @property
    def fn(self) -> Callable:
        from augloss.losses.kernels import KERNELS

        return KERNELS[self.name]


_A = r"\left({0}\right)"

UNARY: tuple[Op, ...] = (
    Op(0, "neg", 1, "-({0})", "-{0}", "-x"),
    Op(1, "ln", 1, "torch.log(torch.abs({0}) + EPS)", r"\ln\left|{0}\right|", "ln(|x| + eps)"),
    Op(2, "log10", 1, "torch.log(torch.abs({0}) + EPS) / math.log(10.0)",
       r"\log_{{10}}\left|{0}\right|", "ln(|x| + eps) / ln(10)"),
    Op(3, "exp", 1, "torch.exp({0})", r"e^{{{0}}}", "e^x"),
    Op(4, "abs", 1, "torch.abs({0})", r"\left|{0}\right|", "|x|"),
    Op(5, "sigmoid", 1, "torch.sigmoid({0})", r"\sigma" + _A, "1 / (1 + e^-x)"),
    Op(6, "dsoft", 1, "1.0 / (1.0 + torch.abs({0}))", r"\frac{{1}}{{1 + \left|{0}\right|}}",
       "1 / (1 + |x|)"),
    Op(7, "softplus", 1, "torch.log(torch.abs(1.0 + torch.exp({0})) + EPS)",
       r"\ln\left|1 + e^{{{0}}}\right|", "ln(|1 + e^x| + eps)"),
    Op(8, "erf", 1, "torch.erf({0})", r"\operatorname{{erf}}" + _A, "erf(x)"),
    Op(9, "erfc", 1, "torch.erfc({0})", r"\operatorname{{erfc}}" + _A, "erfc(x)"),
    Op(10, "sin", 1, "torch.sin({0})", r"\sin" + _A, "sin(x)"),
    Op(11, "sinh", 1, "torch.sinh({0})", r"\sinh" + _A, "sinh(x)"),
    Op(12, "asinh", 1, "torch.asinh({0})", r"\operatorname{{asinh}}" + _A, "asinh(x)"),
    Op(13, "tanh", 1, "torch.tanh({0})", r"\tanh" + _A, "tanh(x)"),
    Op(14, "atan", 1, "torch.atan({0})", r"\arctan" + _A, "atan(x)"),
    Op(15, "inv", 1, "1.0 / (({0}) + EPS)", r"\frac{{1}}{{{0}}}", "1 / (x + eps)"),
    Op(16, "i0", 1, "torch.special.i0({0})", r"I_0" + _A, "Bessel I0(x)"),
    Op(17, "i0e", 1, "torch.special.i0e({0})", r"I_0^{{e}}" + _A,
       "e^-|x| I0(x)"),
    Op(18, "i1", 1, "torch.special.i1({0})", r"I_1" + _A, "Bessel I1(x)"),
    Op(19, "i1e", 1, "torch.special.i1e({0})", r"I_1^{{e}}" + _A,
       "e^-|x| I1(x)"),
    Op(20, "relu", 1, "torch.clamp_min({0}, 0.0)", r"\max\left({0}, 0\right)",
       "max(x, 0)"),
    Op(21, "nrelu", 1, "torch.clamp_max({0}, 0.0)",
       r"\min\left({0}, 0\right)", "min(x, 0)"),
    Op(22, "square", 1, "torch.square({0})", r"\left({0}\right)^{{2}}", "x^2"),
    Op(23, "sqrt", 1, "torch.sqrt(torch.abs({0}))", r"\sqrt{{\left|{0}\right|}}",
       "sqrt(|x|)"),
    Op(24, "softsign", 1, "({0}) / (1.0 + torch.abs({0}))",
       r"\frac{{{0}}}{{1 + \left|{0}\right|}}", "x / (1 + |x|)"),
    Op(25, "dtanh", 1, "1.0 - torch.tanh({0}) ** 2", r"\operatorname{{sech}}^{{2}}" + _A,
       "1 - tanh(x)^2"),
    Op(26, "dsigmoid", 1, "torch.sigmoid({0}) * (1.0 - torch.sigmoid({0}))",
       r"\sigma'" + _A, "sigmoid(x) (1 - sigmoid(x))"),
)

BINARY: tuple[Op, ...] = (
    Op(0, "add", 2, "({0}) + ({1})", "{0} + {1}", "a + b", commutative=True),
    Op(1, "sub", 2, "({0}) - ({1})", "{0} - {1}", "a - b"),
    Op(2, "mul", 2, "({0}) * ({1})", r"{0} \cdot {1}", "a * b", commutative=True),
    Op(3, "max", 2, "torch.maximum({0}, {1})", r"\max\left({0}, {1}\right)",
       "max(a, b)", commutative=True),
    Op(4, "min", 2, "torch.minimum({0}, {1})", r"\min\left({0}, {1}\right)",
       "min(a, b)", commutative=True),
    Op(5, "div", 2, "({0}) / (({1}) + EPS)", r"\frac{{{0}}}{{{1}}}", "a / (b + eps)"),
    Op(6, "aq", 2, "({0}) / torch.sqrt(1.0 + ({1}) * ({1}))",
       r"\frac{{{0}}}{{\sqrt{{1 + \left({1}\right)^{{2}}}}}}", "a / sqrt(1 + b^2)"),
)

OPS: dict[str, Op] = {op.name: op for op in UNARY + BINARY}

assert len(UNARY) == 27 and len(BINARY) == 7 and len(OPS) == 34
assert all(op.id == i for i, op in enumerate(UNARY)) and all(op.id == i for i, op in enumerate(BINARY))
