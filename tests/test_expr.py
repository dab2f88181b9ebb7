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
    ("y ^ 2", 2, "no power operator"),
    ("(y * p", 6, "expected ')'"),
    ("y p", 2, "unexpected token 'p'"),
    ("", 0, "empty expression"),
    ("1e999 * p", 0, "out of range"),
    ("y; p", 1, "unexpected character ';'"),
    ("'p'", 0, "unexpected character"),
    ("+p", 0, "unary '+'"),
    ("add(y, p)", 0, "unknown name 'add'"),
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
