"""The expression syntax: parsing, printing, canonical keys, LaTeX and PyTorch source."""

import importlib.util

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from augloss import losses as L
from augloss.losses import BINARY, UNARY, Call, Const, Leaf, LossSyntaxError, parse

# --- round trips --------------------------------------------------------------------------

ROUND_TRIP = [
    "-(y * ln(p))",
    "y * ln(p)",
    "-y * 2",
    "-(1)",
    "-1 * y",
    "y - -1",
    "y - (p - 1)",
    "y - p - 1",
    "y / (p / 2)",
    "y * (p * 2)",
    "aq(y, p) + max(min(y, p), i0e(p))",
    "-(-y)",
    "0.5 * y + 1e-07",
    "exp(-p) / sqrt(y + p)",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_str_reparses_to_same_expression(text):
    e = parse(text)
    assert str(e) == text
    assert parse(str(e)) == e


def test_structure_of_a_parse():
    e = parse("-(y * ln(p))")
    assert e == Call("neg", (Call("mul", (Leaf("y"), Call("ln", (Leaf("p"),)))),))
    assert parse("2 - 1") == Call("sub", (Const(2), Const(1)))
    assert parse("-2") == Const(-2)
    assert parse("-(2)") == Call("neg", (Const(2),))
    assert parse("y*p+p") == Call("add", (Call("mul", (Leaf("y"), Leaf("p"))), Leaf("p")))
    assert parse("neg(p)") == parse("-p")
    assert parse("  y  *  p  ") == parse("y*p")


def _exprs():
    leaves = st.one_of(st.sampled_from([Leaf("y"), Leaf("p")]),
                       st.floats(-1e3, 1e3, allow_nan=False).map(Const))

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(UNARY), children).map(lambda t: Call(t[0].name, (t[1],))),
            st.tuples(st.sampled_from(BINARY), children, children).map(
                lambda t: Call(t[0].name, (t[1], t[2]))),
        )

    return st.recursive(leaves, extend, max_leaves=12)


@given(_exprs())
def test_any_tree_round_trips(e):
    text = str(e)
    assert parse(text) == e
    assert parse(str(e.canonical())) == e.canonical()
    assert e.canonical().canonical() == e.canonical()


# --- canonical keys -----------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("y*ln(p)", "ln(p)*y"),
    ("y + p", "p + y"),
    ("max(y, p)", "max(p, y)"),
    ("min(square(p), y) * -(y)", "-y * min(y, square(p))"),
    ("((y)) * (((p)))", "y*p"),
    ("2 * y", "2.0 * y"),
    ("0 * p + y", "-0 * p + y"),
])
def test_equivalent_spellings_share_a_key(a, b):
    assert parse(a).key == parse(b).key


@pytest.mark.parametrize("a, b", [
    ("y - p", "p - y"),
    ("y / p", "p / y"),
    ("aq(y, p)", "aq(p, y)"),
    ("y * ln(p)", "-(y * ln(p))"),
    ("-1 * y", "-(1) * y"),
    ("ln(p)", "log10(p)"),
    ("y + 1", "y + 1.5"),
])
def test_different_expressions_differ(a, b):
    assert parse(a).key != parse(b).key


def test_key_is_sha256_of_canonical_text():
    import hashlib

    e = parse("y * ln(p)")
    assert e.key == hashlib.sha256(b"ln(p) * y").hexdigest()


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, pos, fragment", [
    ("y * ", 4, "unexpected end of input"),
    ("y +* p", 3, "unexpected token '*'"),
    ("p.grad", 1, "attribute access"),
    ("p.__class__", 1, "attribute access"),
    ("p[0]", 1, "subscripts"),
    ("lambda: p", 0, "unknown name 'lambda'"),
    ("__import__('os')", 0, "dunder name '__import__'"),
    ("foo(p)", 0, "unknown name 'foo'"),
    ("open(p)", 0, "unknown name 'open'"),
    ("y(p)", 0, "'y' is an input, not a function"),
    ("ln", 0, "must be called"),
    ("ln(p, y)", 0, "ln takes 1 argument(s), got 2"),
    ("max(p)", 0, "max takes 2 argument(s), got 1"),
    ("y ** 2", 3, "no power operator"),
    ("y ^ 3", 2, "no power operator"),
    ("(y * p", 6, "expected ')'"),
    ("y p", 2, "unexpected token 'p'"),
    ("", 0, "empty expression"),
    ("1e999 * p", 0, "out of range"),
    ("y; p", 1, "unexpected character ';'"),
    ("'p'", 0, "unexpected character"),
    ("+p", 0, "unary '+'"),
    ("add(y, p)", 0, "unknown name 'add'"),
    # the earlier code's printed notation
    ("ln(|yhat)", 8, "expected '|'"),
    ("ln(|yhat|", 9, "expected ')'"),
    ("log(yhat)", 0, "'log' is read only as the earlier code printed"),
    ("log(|y| + 1)", 0, "'log' is read only"),
    ("(y)^3", 3, "no power operator"),
    ("(y)^", 3, "no power operator"),
    ("-1^2", 2, "ambiguous power"),
    ("(y)^2^2", 5, "ambiguous repeated power"),
    ("|y", 2, "expected '|'"),
    ("y||", 1, "unexpected token '|'"),
    ("yhat(y)", 0, "'yhat' is an input"),
    ("deriv_soft", 0, "must be called"),
    ("bessel_io(y, p)", 0, "bessel_io (i0) takes 1 argument(s)"),
    ("1/(1+exp(-y", 11, "expected ')'"),  # the printed sigmoid lacks only its first ')'
    ("(1/(1+exp(-y)", 13, "expected ')'"),
    ("(y) / (sqrt(1+(yhat)^2)", 23, "expected ')'"),
    ("(y)*(yhat)/(1+|(y)*(yhat)|", 26, "expected ')'"),
    ("arctan(|yhat| yhat)", 14, "unexpected token 'yhat'"),
])
def test_syntax_errors_name_position_and_token(text, pos, fragment):
    with pytest.raises(LossSyntaxError) as info:
        parse(text)
    assert info.value.position == pos, str(info.value)
    assert fragment in str(info.value)
    assert f"at position {pos}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_overlong_and_deep_inputs_are_refused_cleanly():
    with pytest.raises(LossSyntaxError, match="limit is"):
        parse("p + " * 300_000 + "p")
    with pytest.raises(LossSyntaxError, match="nested deeper"):
        parse("(" * 3000 + "p" + ")" * 3000)
    with pytest.raises(LossSyntaxError, match="nested deeper"):
        parse("-" * 5000 + "p")
    with pytest.raises(LossSyntaxError, match="nested deeper"):
        parse("exp(" * 1500 + "p" + ")" * 1500)
    with pytest.raises(LossSyntaxError):
        parse(None)  # type: ignore[arg-type]
    with pytest.raises(LossSyntaxError, match="nested deeper") as info:
        parse(" + ".join(["p"] * 1000))  # a left-deep chain is a deep tree
    assert info.value.position == 4 * L.MAX_DEPTH - 2
    assert parse(" + ".join(["p"] * 150)).size() == 299


@given(st.text(max_size=200))
def test_parser_never_fails_otherwise_on_arbitrary_text(text):
    try:
        e = parse(text)
    except LossSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
    else:
        assert parse(str(e)) == e


@given(st.text(alphabet="yp()+-*/,.0123456789e lnexpmaxq_[]", max_size=80))
def test_parser_on_syntax_like_text(text):
    try:
        e = parse(text)
    except LossSyntaxError:
        return
    assert parse(str(e)) == e


# --- LaTeX and PyTorch source -------------------------------------------------------------

def test_latex():
    assert parse("-(y * ln(p))").latex() == r"-\left(y \cdot \ln\left|\hat{y}\right|\right)"
    assert parse("y / p").latex() == r"\frac{y}{\hat{y}}"
    assert parse("square(y - p)").latex() == r"\left(y - \hat{y}\right)^{2}"
    assert parse("(y + p) * p").latex() == r"\left(y + \hat{y}\right) \cdot \hat{y}"


def _load_source(tmp_path, source, name):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.parametrize("text", ["-(y * ln(p))", "aq(exp(-1), p) * max(y, sqrt(p))",
                                  "softsign(y - p) + i1e(p) / 2", "square(1 - p)"])
def test_torch_source_is_self_contained_and_matches(tmp_path, text):
    e = parse(text)
    fn = _load_source(tmp_path, e.to_torch_source("my_loss"), "my_loss")
    torch.manual_seed(0)
    logits = torch.randn(8, 5, requires_grad=True)
    hard = torch.randint(0, 5, (8,))
    soft = torch.softmax(torch.randn(8, 5), dim=-1)
    for target in (hard, soft):
        want = L.get(e)(logits, target)
        got = fn(logits, target)
        torch.testing.assert_close(got, want)


def test_torch_source_rejects_bad_names():
    with pytest.raises(ValueError):
        parse("p").to_torch_source("import os")


# --- the earlier code's printed notation ---------------------------------------------------
# How the authors' earlier code (OUStudent/NeuralLossFunctionEvolution, loss_function_evolution.py,
# Node.call) prints each operator: "{0}" is the operand's printed text, "{1}" the second's. Its
# leaves print as y, yhat, 1 and -1; the integrity test's flip is never printed.

EARLIER_UNARY = {
    "neg": "-({0})", "ln": "ln(|{0}|)", "log10": "log(|{0}|)", "exp": "exp({0})",
    "abs": "|{0}|", "sigmoid": "1/(1+exp(-{0})", "dsoft": "deriv_soft({0})",
    "softplus": "ln(|1+exp({0})|)", "erf": "erf({0})", "erfc": "erfc({0})", "sin": "sin({0})",
    "sinh": "sinh({0})", "asinh": "arcsinh({0})", "tanh": "tanh({0})", "atan": "arctan({0})",
    "inv": "1/({0})", "i0": "bessel_io({0})", "i0e": "bessel_ioe({0})", "i1": "bessel_i1({0})",
    "i1e": "bessel_i1e({0})", "relu": "max({0}, 0)", "nrelu": "min({0}, 0)",
    "square": "({0})^2", "sqrt": "sqrt({0})", "softsign": "{0}/(1+|{0}|)",
    "dtanh": "deriv_tanh({0})", "dsigmoid": "deriv_sig({0})",
}
EARLIER_BINARY = {
    "add": "({0})+({1})", "sub": "({0})-({1})", "mul": "({0})*({1})", "max": "max({0}, {1})",
    "min": "min({0}, {1})", "div": "({0}) / ({1})", "aq": "({0}) / (sqrt(1+({1})^2))",
}
EARLIER_LEAVES = {Leaf("y"): "y", Leaf("p"): "yhat", Const(1): "1", Const(-1): "-1"}
# Printed forms that are our syntax already with the same values under another operator.
READ_AS = {"inv": lambda x: Call("div", (Const(1), x)),
           "relu": lambda x: Call("max", (x, Const(0))),
           "nrelu": lambda x: Call("min", (x, Const(0)))}


def earlier(e, phase1=False) -> str:
    """``e`` as the earlier code prints it (``phase1``: as its first code, Phase1/, does)."""
    if not isinstance(e, Call):
        return EARLIER_LEAVES[e]
    args = [earlier(a, phase1) for a in e.args]
    if phase1 and e.op == "dsoft":
        return "1/(1+|{}|)".format(*args)
    return (EARLIER_UNARY if len(args) == 1 else EARLIER_BINARY)[e.op].format(*args)


def read_as(e, phase1=False):
    """The tree the parser reads from ``earlier(e, phase1)``."""
    if not isinstance(e, Call):
        return e
    if phase1 and e.op == "dsoft" and e.args == (ONE,):
        # The first code's dsoft(1) prints as the final code's softsign(1), 1/(1+|1|), read so
        # (the same value, 1/2).
        return Call("softsign", (ONE,))
    args = tuple(read_as(a, phase1) for a in e.args)
    return READ_AS[e.op](*args) if e.op in READ_AS else Call(e.op, args)


def test_the_notation_table_covers_every_operator():
    assert set(EARLIER_UNARY) == {op.name for op in UNARY}
    assert set(EARLIER_BINARY) == {op.name for op in BINARY}


Y, P, ONE, M1 = Leaf("y"), Leaf("p"), Const(1), Const(-1)
OPERANDS = [Y, P, M1, Call("add", (Y, P)), Call("mul", (Y, M1)), Call("softsign", (P,)),
            Call("sigmoid", (Call("sub", (P, Y)),)), Call("abs", (Call("neg", (Y,)),))]


@pytest.mark.parametrize("op", sorted(EARLIER_UNARY))
@pytest.mark.parametrize("x", OPERANDS, ids=str)
def test_each_printed_unary_operator_parses_to_ours(op, x):
    e = Call(op, (x,))
    assert parse(earlier(e)) == read_as(e), earlier(e)


@pytest.mark.parametrize("op", sorted(EARLIER_BINARY))
@pytest.mark.parametrize("a, b", [(Y, P), (P, M1), (ONE, Call("softsign", (Call("add", (Y, P)),))),
                                  (Call("sigmoid", (Y,)), Call("square", (P,)))], ids=str)
def test_each_printed_binary_operator_parses_to_ours(op, a, b):
    e = Call(op, (a, b))
    assert parse(earlier(e)) == read_as(e), earlier(e)


def _earlier_trees():
    leaves = st.sampled_from([Y, P, ONE, M1])

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(UNARY), children).map(lambda t: Call(t[0].name, (t[1],))),
            st.tuples(st.sampled_from(BINARY), children, children).map(
                lambda t: Call(t[0].name, (t[1], t[2]))))

    return st.recursive(leaves, extend, max_leaves=6)


@given(_earlier_trees())
def test_any_printed_earlier_graph_parses_to_its_tree(e):
    assert parse(earlier(e)) == read_as(e)
    assert parse(earlier(e, phase1=True)) == read_as(e, phase1=True)


# Losses exactly as the earlier code prints them (its format strings applied by hand), each
# with the same loss in our names.
PASTED = [
    ("(y)*(ln(|yhat|))", "y * ln(p)"),
    ("-((y)*(log(|yhat|)))", "-(y * log10(p))"),
    ("(|(y)-(yhat)|)*(deriv_soft(yhat))", "abs(y - p) * dsoft(p)"),
    ("(ln(|1+exp(yhat)|))-((y)*(yhat))", "softplus(p) - y * p"),
    ("max(arcsinh(yhat), arctan(y))", "max(asinh(p), atan(y))"),
    ("(bessel_io(yhat)) / (bessel_ioe(y))", "i0(p) / i0e(y)"),
    ("min(bessel_i1(yhat), bessel_i1e(-1))", "min(i1(p), i1e(-1))"),
    ("(deriv_tanh(yhat))+(deriv_sig(y))", "dtanh(p) + dsigmoid(y)"),
    ("(y)*(1/(1+exp(-(yhat)+(-1)))", "y * sigmoid(p + -1)"),
    ("((y)-(yhat))^2", "square(y - p)"),
    ("(y)*(yhat)/(1+|(y)*(yhat)|)", "softsign(y * p)"),
    ("(y) / (sqrt(1+(yhat)^2))", "aq(y, p)"),
    ("-(ln(|(y)+(1/(1+exp(-yhat))|))", "-ln(y + sigmoid(p))"),
    ("(sqrt(yhat))*(erf(-1))", "sqrt(p) * erf(-1)"),
    ("(y)/(1+|y|)", "y / (1 + abs(y))"),  # not softsign: "y" and "(y)" differ as printed
]


@pytest.mark.parametrize("text, ours", PASTED)
def test_pasted_earlier_strings_parse_to_the_same_loss_in_our_names(text, ours):
    assert parse(text) == parse(ours)
    assert parse(str(parse(text))) == parse(text)  # printed back in our names


def test_first_code_dsoft_and_values_of_the_other_readings():
    assert parse("1/(1+|(y)*(yhat)|)") == parse("dsoft(y * p)")
    # 1/(x), max(x, 0), min(x, 0) keep our reading: the values of inv, relu and nrelu.
    x = torch.linspace(-3, 3, 61).reshape(-1, 1)
    for printed, op in (("1/((y)+(1))", "inv(y + 1)"), ("max(y, 0)", "relu(y)"),
                        ("min(y, 0)", "nrelu(y)")):
        torch.testing.assert_close(parse(printed).compile()(x, x + 0.5),
                                   parse(op).compile()(x, x + 0.5))


@pytest.mark.parametrize("text", ["1/(1+exp(-y))", "1/(y)", "max(y, 0)", "min(p, 0)",
                                  "y/(1 + abs(y))", "-(y) / (sqrt(1 + square(p)))",
                                  "(p + y/(1+|p + y|))", "p / y/(1+|y|)"])
def test_text_in_our_syntax_reads_as_before(text):
    # None of these carries the earlier notation (bars, ^2, its names, an unclosed sigmoid).
    e = parse(text)
    assert not {getattr(n, "op", None) for n in _nodes(e)} & {
        "sigmoid", "inv", "relu", "nrelu", "softsign", "aq"}
    assert parse("1/(1+exp(-y))") == Call("div", (ONE, Call("add", (ONE, Call("exp", (
        Call("neg", (Y,)),)),))))


def _nodes(e):
    yield e
    for c in e.children:
        yield from _nodes(c)


