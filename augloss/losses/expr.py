"""Loss expressions: a small, safe text syntax and the immutable expression tree behind it.

Grammar (whitespace is ignored)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := '-' NUMBER | '-' unary | primary
    primary := NUMBER | 'y' | 'p' | NAME '(' expr (',' expr)* ')' | '(' expr ')'

``y`` is the target distribution (one-hot or soft), ``p`` the softmax probabilities; both have shape
``[batch, classes]`` and every operator is element-wise. ``a / b`` is the guarded division
``a / (b + eps)`` of the search space; ``-x`` is the ``neg`` operator, while ``-2`` is the literal
minus two. Function names are those of :mod:`augloss.losses.ops`. The parser is a hand-written
recursive descent over a whitelist of tokens: no text is ever evaluated as Python.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from augloss.losses.ops import EPS, OPS, Op

if TYPE_CHECKING:  # torch is imported only to evaluate a loss (parsing never needs it)
    import torch

MAX_LENGTH = 10_000  # characters of expression text
MAX_DEPTH = 200  # nesting depth of the parsed tree
LEAVES = ("y", "p")


class LossSyntaxError(ValueError):
    """A malformed loss expression; ``position`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, text: str = "", position: int = 0):
        self.text = text
        self.position = position
        self.detail = message
        where = f"at position {position}"
        if text and len(text) <= 80 and "\n" not in text:
            message = f"{message} {where}\n  {text}\n  {' ' * position}^"
        else:
            message = f"{message} {where}"
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------

_PREC_ADD, _PREC_MUL, _PREC_UNARY, _PREC_ATOM = 1, 2, 3, 4
_INFIX = {"add": ("+", _PREC_ADD), "sub": ("-", _PREC_ADD), "mul": ("*", _PREC_MUL),
          "div": ("/", _PREC_MUL)}


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Expr:
    """An immutable loss expression. ``str(e)`` re-parses to ``e``; ``e.key`` identifies it."""

    __slots__ = ()

    # --- structure -----------------------------------------------------------------------
    @property
    def children(self) -> tuple["Expr", ...]:
        return ()

    def leaves(self) -> frozenset[str]:
        """The leaf names (``y``, ``p``) this expression uses."""
        out: set[str] = set()
        stack: list[Expr] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, Leaf):
                out.add(node.name)
            stack.extend(node.children)
        return frozenset(out)

    @property
    def depth(self) -> int:
        """Height of the tree (a leaf has depth 1)."""
        return 1

    def size(self) -> int:
        """Number of nodes in the tree."""
        return 1 + sum(c.size() for c in self.children)

    # --- printing ------------------------------------------------------------------------
    def _prec(self) -> int:
        return _PREC_ATOM

    def __str__(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"

    def canonical(self) -> "Expr":
        """A stable normal form: operands of commutative operators sorted by their text."""
        return self

    @cached_property
    def key(self) -> str:
        """sha256 hex digest of the canonical text: equal for expressions that differ only in the
        order of commutative operands or in redundant parentheses."""
        return hashlib.sha256(str(self.canonical()).encode()).hexdigest()

    def latex(self) -> str:
        """LaTeX for the per-class term (``\\ln``, division and ``1/x`` are eps-guarded)."""
        return _latex(self)

    def to_torch_source(self, name: str = "evolved_loss") -> str:
        """A self-contained PyTorch module source defining ``name(logits, target)``."""
        return _torch_source(self, name)

    def compile(self, exact_log: bool = False) -> Callable[..., torch.Tensor]:
        """A function ``f(y, p, logp=None)`` computing the element-wise term, broadcast to ``p``.

        With ``exact_log`` every ``ln(p)`` is taken from ``logp`` (the caller's log-softmax)
        instead of the search space's guarded ``ln(|p| + eps)``: exact cross-entropy for the
        textbook baselines. Search candidates are always evaluated with the guarded form.
        """
        import torch

        fn = _compile(self, exact_log)

        def term(y: torch.Tensor, p: torch.Tensor, logp: torch.Tensor | None = None):
            if exact_log and logp is None:
                logp = torch.log(p)
            return torch.broadcast_to(fn(y, p, logp), p.shape)

        return term


@dataclass(frozen=True, eq=True, slots=False)
class Leaf(Expr):
    name: str

    def __post_init__(self):
        if self.name not in LEAVES:
            raise ValueError(f"unknown leaf {self.name!r}; leaves are {', '.join(LEAVES)}")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=True, slots=False)
class Const(Expr):
    value: float

    def __post_init__(self):
        value = float(self.value)
        if not math.isfinite(value):
            raise ValueError(f"constant must be finite, got {value!r}")
        object.__setattr__(self, "value", value + 0.0)  # normalises -0.0 to 0.0

    def _prec(self) -> int:
        return _PREC_UNARY if self.value < 0 else _PREC_ATOM

    def __str__(self) -> str:
        return _format_number(self.value)


@dataclass(frozen=True, eq=True, slots=False)
class Call(Expr):
    op: str
    args: tuple[Expr, ...]

    def __post_init__(self):
        spec = OPS.get(self.op)
        if spec is None:
            raise ValueError(f"unknown operator {self.op!r}")
        object.__setattr__(self, "args", tuple(self.args))
        if len(self.args) != spec.arity:
            raise ValueError(f"{self.op} takes {spec.arity} operand(s), got {len(self.args)}")
        depth = 1 + max(a.depth for a in self.args)
        if depth > MAX_DEPTH:
            raise ValueError(f"expression deeper than {MAX_DEPTH} levels")
        object.__setattr__(self, "_depth", depth)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def spec(self) -> Op:
        return OPS[self.op]

    @property
    def children(self) -> tuple[Expr, ...]:
        return self.args

    def _prec(self) -> int:
        if self.op == "neg":
            return _PREC_UNARY
        if self.op in _INFIX:
            return _INFIX[self.op][1]
        return _PREC_ATOM

    def __str__(self) -> str:
        if self.op == "neg":
            (a,) = self.args
            inner = str(a)
            # Parenthesise anything that is not an atom, and constants, so that `-(1)` stays the
            # neg operator applied to 1 rather than re-parsing as the literal -1.
            if a._prec() < _PREC_ATOM or isinstance(a, Const):
                inner = f"({inner})"
            return f"-{inner}"
        if self.op in _INFIX:
            symbol, prec = _INFIX[self.op]
            a, b = self.args
            left = str(a) if a._prec() >= prec else f"({a})"
            right = str(b) if b._prec() > prec else f"({b})"
            return f"{left} {symbol} {right}"
        return f"{self.op}({', '.join(str(a) for a in self.args)})"

    def canonical(self) -> Expr:
        args = tuple(a.canonical() for a in self.args)
        if self.spec.commutative:
            args = tuple(sorted(args, key=str))
        return Call(self.op, args)


# Frozen dataclasses define __eq__ and __hash__ from their fields; cached_property (``key``) needs
# the instance __dict__ that the dataclasses above keep (slots=False).


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<sym>[-+*/(),])"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, sym, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = ""
            if ch == ".":
                hint = " (attribute access is not allowed)"
            elif ch in "[]":
                hint = " (subscripts are not allowed)"
            elif ch == "^":
                hint = " (there is no power operator: use square(x) or sqrt(x))"
            # Reported when the parser reaches it, so errors come in reading order.
            tokens.append(_Token("bad", f"unexpected character {ch!r}{hint}", pos))
            return tokens
        kind = m.lastgroup
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    # helpers
    @property
    def tok(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind == "bad":
            raise LossSyntaxError(tok.text, self.text, tok.pos)
        return tok

    def error(self, message: str, tok: _Token | None = None) -> LossSyntaxError:
        pos = tok.pos if tok is not None else self.tokens[self.i].pos
        return LossSyntaxError(message, self.text, pos)

    def unexpected(self, expected: str) -> LossSyntaxError:
        tok = self.tok
        found = "end of input" if tok.kind == "end" else f"token {tok.text!r}"
        return self.error(f"unexpected {found}, expected {expected}")

    def take(self, text: str) -> _Token:
        if self.tok.kind != "sym" or self.tok.text != text:
            raise self.unexpected(repr(text))
        tok = self.tok
        self.i += 1
        return tok

    def node(self, op: str, args: tuple[Expr, ...], tok: _Token) -> Expr:
        if 1 + max(a.depth for a in args) > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels", tok)
        return Call(op, args)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    # grammar
    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise self.error("empty expression")
        e = self.expr()
        if self.tok.kind != "end":
            raise self.unexpected("an operator or end of input")
        return e

    def expr(self) -> Expr:
        self.enter()
        e = self.term()
        while self.tok.kind == "sym" and self.tok.text in "+-":
            op = "add" if self.tok.text == "+" else "sub"
            tok = self.tok
            self.i += 1
            e = self.node(op, (e, self.term()), tok)
        self.depth -= 1
        return e

    def term(self) -> Expr:
        e = self.unary()
        while self.tok.kind == "sym" and self.tok.text in "*/":
            op = "mul" if self.tok.text == "*" else "div"
            tok = self.tok
            self.i += 1
            if op == "mul" and self.tok.kind == "sym" and self.tok.text == "*":
                raise self.error("there is no power operator: use square(x) or sqrt(x)")
            e = self.node(op, (e, self.unary()), tok)
        return e

    def unary(self) -> Expr:
        if self.tok.kind == "sym" and self.tok.text == "-":
            tok = self.tok
            self.i += 1
            if self.tok.kind == "num":
                return self.number(negative=True)
            self.enter()
            e = self.node("neg", (self.unary(),), tok)
            self.depth -= 1
            return e
        if self.tok.kind == "sym" and self.tok.text == "+":
            raise self.error("unary '+' is not supported")
        return self.primary()

    def number(self, negative: bool = False) -> Expr:
        tok = self.tok
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.error(f"number {tok.text!r} is out of range")
        self.i += 1
        return Const(-value if negative else value)

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "num":
            return self.number()
        if tok.kind == "sym" and tok.text == "(":
            self.i += 1
            e = self.expr()
            self.take(")")
            return e
        if tok.kind == "name":
            return self.name()
        raise self.unexpected("a number, 'y', 'p', a function call or '('")

    def name(self) -> Expr:
        tok = self.tok
        self.i += 1
        nxt = self.tokens[self.i]  # peek without raising on a bad character
        called = nxt.kind == "sym" and nxt.text == "("
        if tok.text in LEAVES:
            if called:
                raise self.error(f"{tok.text!r} is an input, not a function", tok)
            return Leaf(tok.text)
        if tok.text.startswith("__"):
            raise self.error(f"dunder name {tok.text!r} is not allowed", tok)
        op = OPS.get(tok.text)
        if op is None or op.name in _INFIX:
            raise self.error(
                f"unknown name {tok.text!r} (inputs: y, p; functions: "
                f"{', '.join(n for n in OPS if n not in _INFIX)})", tok)
        if not called:
            raise self.error(f"function {tok.text!r} must be called, e.g. {tok.text}(p)", tok)
        self.enter()
        self.take("(")
        args = [self.expr()]
        while self.tok.kind == "sym" and self.tok.text == ",":
            self.i += 1
            args.append(self.expr())
        if len(args) != op.arity:
            raise self.error(f"{op.name} takes {op.arity} argument(s), got {len(args)}", tok)
        self.take(")")
        self.depth -= 1
        return self.node(op.name, tuple(args), tok)


def parse(text: str) -> Expr:
    """Parse loss expression text; raise :class:`LossSyntaxError` naming the position on error."""
    if not isinstance(text, str):
        raise LossSyntaxError(f"expression must be a string, got {type(text).__name__}", "", 0)
    if len(text) > MAX_LENGTH:
        raise LossSyntaxError(
            f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}", "", MAX_LENGTH)
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Evaluation (a closure tree; no text is evaluated)
# --------------------------------------------------------------------------------------------

def _compile(e: Expr, exact_log: bool) -> Callable[..., torch.Tensor]:
    if isinstance(e, Leaf):
        if e.name == "y":
            return lambda y, p, logp: y
        return lambda y, p, logp: p
    if isinstance(e, Const):
        import torch

        value = e.value
        return lambda y, p, logp: torch.full((), value, dtype=p.dtype, device=p.device)
    assert isinstance(e, Call)
    if exact_log and e.op == "ln" and e.args[0] == Leaf("p"):
        return lambda y, p, logp: logp
    fn = e.spec.fn
    if len(e.args) == 1:
        a = _compile(e.args[0], exact_log)
        return lambda y, p, logp: fn(a(y, p, logp))
    a, b = (_compile(x, exact_log) for x in e.args)
    return lambda y, p, logp: fn(a(y, p, logp), b(y, p, logp))


# --------------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------------

def _latex(e: Expr) -> str:
    if isinstance(e, Leaf):
        return {"y": "y", "p": r"\hat{y}"}[e.name]
    if isinstance(e, Const):
        return _format_number(e.value)
    assert isinstance(e, Call)
    if e.op == "neg":
        (a,) = e.args
        inner = _latex(a)
        return f"-{inner}" if a._prec() >= _PREC_UNARY and not isinstance(a, Const) \
            else rf"-\left({inner}\right)"
    if e.op in ("add", "sub", "mul"):
        prec = _INFIX[e.op][1]
        a, b = e.args
        left = _latex(a) if a._prec() >= prec else rf"\left({_latex(a)}\right)"
        right = _latex(b) if b._prec() > prec else rf"\left({_latex(b)}\right)"
        return e.spec.latex.format(left, right)
    return e.spec.latex.format(*(_latex(a) for a in e.args))


# --------------------------------------------------------------------------------------------
# PyTorch source
# --------------------------------------------------------------------------------------------

_SOURCE_HEADER = '''"""{doc}

Generated by augloss from the loss expression

    {text}

(augloss key {key}). ``target`` is int64 class indices [B] or probabilities [B, C].
"""

import math

import torch
import torch.nn.functional as F

EPS = {eps!r}


def {name}(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits.float(), dim=-1)
    if target.dtype.is_floating_point:
        y = target.float()
    else:
        y = F.one_hot(target.long(), p.shape[-1]).float()
'''


def _torch_source(e: Expr, name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name.startswith("__"):
        raise ValueError(f"not a valid function name: {name!r}")
    lines: list[str] = []
    names: dict[Expr, str] = {}

    def emit(node: Expr) -> str:
        if isinstance(node, Leaf):
            return node.name
        if node in names:
            return names[node]
        if isinstance(node, Const):
            code = f"torch.tensor({node.value!r}, device=p.device)"
        else:
            assert isinstance(node, Call)
            code = node.spec.source.format(*(emit(a) for a in node.args))
        var = f"t{len(names)}"
        names[node] = var
        lines.append(f"    {var} = {code}")
        return var

    out = emit(e)
    text = str(e)
    src = _SOURCE_HEADER.format(doc=f"Loss function {name}.", text=text, key=e.key, eps=EPS,
                                name=name)
    src += "\n".join(lines) + ("\n" if lines else "")
    src += f"    t = torch.broadcast_to({out}, p.shape)\n"
    src += "    return t.sum(dim=-1).mean()\n"
    return src
