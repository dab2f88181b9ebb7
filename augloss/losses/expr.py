"""Loss expressions: a small, safe text syntax and the immutable expression tree behind it.

Grammar (whitespace is ignored)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := '-' NUMBER | '-' unary | primary
    primary := atom ['^' '2']
    atom    := NUMBER | 'y' | 'p' | NAME '(' expr (',' expr)* ')' | '(' expr ')' | '|' expr '|'

``y`` is the target distribution (one-hot or soft), ``p`` the softmax probabilities; both have shape
``[batch, classes]`` and every operator is element-wise. ``a / b`` is the guarded division
``a / (b + eps)`` of the search space; ``-x`` is the ``neg`` operator, while ``-2`` is the literal
minus two. Function names are those of :mod:`augloss.losses.ops`. The parser is a hand-written
recursive descent over a whitelist of tokens: no text is ever evaluated as Python.

**The earlier code's notation.** A loss as the authors' earlier code printed it (its
``Node.call`` messages, github.com/OUStudent/NeuralLossFunctionEvolution,
``loss_function_evolution.py``; the first code ``Phase1/nas_loss_regularized.py`` prints the
same, but op 6 as ``1/(1+|x|)``) parses too, to our operators. It prints leaves as ``y``,
``yhat`` (our ``p``), ``1`` and ``-1``, every binary operand in parentheses, and never the
integrity test's flip (a flipped loss printed by it is the un-negated term: train it with
``orient: true``). ``-(x)``, ``exp``, ``erf``, ``erfc``, ``sin``, ``sinh``, ``tanh``, ``sqrt`` and the binary
``(a)+(b)``, ``(a)-(b)``, ``(a)*(b)``, ``max(a, b)``, ``min(a, b)``, ``(a) / (b)`` are our
syntax already; the rest reads (``x``, ``a``, ``b`` being the operands as printed):

=============================  ===============  ==============================================
printed                        read as          note
=============================  ===============  ==============================================
``yhat``                       ``p``
``ln(|x|)``                    ``ln(x)``
``log(|x|)``                   ``log10(x)``     ``log`` is read in this form only
``|x|``                        ``abs(x)``       bars, anywhere
``1/(1+exp(-x)``               ``sigmoid(x)``   one ')' short as printed: read so only in a
                                                text with more '(' than ')'
``deriv_soft(x)``              ``dsoft(x)``
``1/(1+|x|)``                  ``dsoft(x)``     the first code's op 6
``ln(|1+exp(x)|)``             ``softplus(x)``
``arcsinh(x)``                 ``asinh(x)``
``arctan(x)``                  ``atan(x)``
``1/(x)``                      ``1 / x``        our div: inv's 1/(x + eps), another key
``bessel_io(x)``               ``i0(x)``
``bessel_ioe(x)``              ``i0e(x)``
``bessel_i1(x)``               ``i1(x)``
``bessel_i1e(x)``              ``i1e(x)``
``max(x, 0)``                  ``max(x, 0)``    our binary max: relu's values, another key
``min(x, 0)``                  ``min(x, 0)``    our binary min: nrelu's values, another key
``(x)^2``                      ``square(x)``    ``^2`` after any atom
``x/(1+|x|)``                  ``softsign(x)``  ``x`` repeated verbatim
``deriv_tanh(x)``              ``dtanh(x)``
``deriv_sig(x)``               ``dsigmoid(x)``
``(a) / (sqrt(1+(b)^2))``      ``aq(a, b)``
=============================  ===============  ==============================================

Every text that parses without this notation (no ``|``, ``^``, earlier-code name or unclosed
sigmoid) parses exactly as before, so ``1/(x)``, ``max(x, 0)`` and ``min(x, 0)`` keep their
reading (and key); ``str`` always prints our names, so ``parse(str(e)) == e``. Where ``x`` in
``x/(1+|x|)`` has operators of its own (``(y)+(yhat)/(1+|(y)+(yhat)|)``, as printed) it is the
softsign of all of ``x`` only as the earlier code prints it: between delimiters, with operands
in parentheses; ``p + y/(1+|p + y|)`` keeps its usual reading. The first code's ``dsoft(1)``,
``1/(1+|1|)``, reads as ``softsign(1)``, the same value.
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
    r"|(?P<sym>[-+*/(),^|])"
)

#: The earlier code's printed operator names that differ from ours (its ``Node.call`` messages),
#: read as our operator. ``log`` (its log10) is read only in its printed form ``log(|x|)``.
EARLIER_NAMES: dict[str, str] = {
    "arcsinh": "asinh", "arctan": "atan",
    "bessel_io": "i0", "bessel_ioe": "i0e", "bessel_i1": "i1", "bessel_i1e": "i1e",
    "deriv_soft": "dsoft", "deriv_tanh": "dtanh", "deriv_sig": "dsigmoid",
}
#: The earlier code's printed leaf names that differ from ours.
EARLIER_LEAVES: dict[str, str] = {"yhat": "p"}


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, sym, open (an opening '|'), close (a closing '|'), bad, end, stop
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
            # Reported when the parser reaches it, so errors come in reading order.
            tokens.append(_Token("bad", f"unexpected character {ch!r}{hint}", pos))
            return tokens
        kind = m.lastgroup
        if kind == "sym" and m.group() == "|":
            # An absolute-value bar opens where an operand is expected and closes after one:
            # the parser reads in the same order, so this is decided once, here.
            prev = tokens[-1] if tokens else None
            after_operand = prev is not None and (
                prev.kind in ("num", "name", "close") or (prev.kind == "sym" and prev.text == ")"))
            kind = "close" if after_operand else "open"
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Notation:
    """Where the earlier code's printed notation occurs in a token list (see :func:`parse`).

    ``match`` pairs each bracket ('(' or an opening '|') with its closer, both ways;
    ``sigmoid`` holds the first index of each printed sigmoid ``1/(1+exp(-x)`` (read only when
    the text is the earlier code's: more '(' than ')', since that form never closes its first
    parenthesis); ``softsign`` maps the first index of ``x`` in a printed ``x/(1+|x|)`` to
    ``[(index of '/', index after the last ')')]``.
    """

    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        n = len(tokens)
        opens = sum(1 for t in tokens if t.kind == "sym" and t.text == "(")
        closes = sum(1 for t in tokens if t.kind == "sym" and t.text == ")")
        prefixes = [j for j in range(n) if self.seq(j, ("num", 1), "/", "(", ("num", 1), "+",
                                                    ("name", "exp"), "(", "-")]
        self.sigmoid = set(prefixes) if prefixes and opens > closes else set()
        phantom = {j + 2 for j in self.sigmoid}  # the '(' the earlier code never closes
        sigmoid_ends = {j + 7 for j in self.sigmoid}
        self.match: dict[int, int] = {}
        stack: list[int] = []
        for j, t in enumerate(tokens):
            if (t.kind == "sym" and t.text == "(" and j not in phantom) or t.kind == "open":
                stack.append(j)
            elif t.kind == "close" or (t.kind == "sym" and t.text == ")"):
                want = "open" if t.kind == "close" else "sym"
                if stack and tokens[stack[-1]].kind == want:
                    k = stack.pop()
                    self.match[k], self.match[j] = j, k
        keys = [(t.kind, t.text) for t in tokens]
        self.softsign: dict[int, list[tuple[int, int]]] = {}
        for s in range(n):
            if not self.seq(s, "/", "(", ("num", 1), "+", ("open", "|")):
                continue
            cb = self.match.get(s + 4)
            if cb is None or not self.seq(cb + 1, ")") or self.match.get(s + 1) != cb + 1:
                continue
            k = cb - (s + 5)
            start = s - k
            if k < 1 or start < 0 or keys[start:s] != keys[s + 5:cb] or self.seq(cb + 2, "^"):
                continue
            before = tokens[start - 1] if start else None
            if self.primary(start, s):
                # x is one operand, so `x/(...)` reads as x over (...) in any case, unless x is
                # itself divided into: `q / x/(1+|x|)` is (q / x) / (1 + |x|).
                ok = before is None or not (before.kind == "sym" and before.text in "/^")
            else:
                # x has operators of its own: read so only as the earlier code prints it, x
                # between delimiters and its operators in its forms (`(y)+(yhat)`, not `y + p`:
                # `(p + y/(1+|p + y|))` keeps its usual reading).
                ok = (before is None or start - 1 in sigmoid_ends or before.kind == "open"
                      or (before.kind == "sym" and before.text in "(,")) and (
                    self.seq(cb + 2, ")") or self.seq(cb + 2, ",") or self.seq(cb + 2, "/", "(",
                    ("num", 1), "+", ("open", "|")) or tokens[cb + 2].kind in ("end", "close")) \
                    and self.printed(start, s)
            if ok:
                self.softsign.setdefault(start, []).append((s, cb + 2))

    def seq(self, j: int, *want) -> bool:
        """Whether the tokens from index ``j`` are ``want``: a symbol's text, ``(kind, text)``,
        or ``("num", value)``."""
        if j < 0 or j + len(want) > len(self.tokens):
            return False
        for t, w in zip(self.tokens[j:j + len(want)], want):
            if isinstance(w, str):
                w = ("sym", w)
            kind, value = w
            if t.kind != kind:
                return False
            if kind == "num":
                if float(t.text) != value:
                    return False
            elif t.text != value:
                return False
        return True

    def printed(self, start: int, end: int) -> bool:
        """Whether the operators outside brackets in tokens ``start:end`` are as the earlier
        code prints them: ``-`` leading, ``+ - *`` between ``)`` and ``(``, ``/`` before
        ``(`` and ``^`` after ``)``."""
        t = self.tokens
        j = start
        while j < end:
            if j in self.sigmoid or (t[j].kind == "open" or (t[j].kind == "sym" and
                                                             t[j].text == "(")):
                m = self.match.get(j + 6 if j in self.sigmoid else j)
                if m is None or m >= end:
                    return False
                j = m + 1
                continue
            if t[j].kind == "sym" and t[j].text in "+-*" and not (t[j].text == "-" and j == start):
                if not (j > start and self.seq(j - 1, ")") and self.seq(j + 1, "(")):
                    return False
            elif t[j].kind == "sym" and t[j].text == "/" and not self.seq(j + 1, "("):
                return False
            elif t[j].kind == "sym" and t[j].text == "^" and not (j > start and
                                                                   self.seq(j - 1, ")")):
                return False
            j += 1
        return True

    def primary(self, start: int, end: int) -> bool:
        """Whether tokens ``start:end`` are one operand: a leaf or number, a bracketed group
        or a call."""
        t = self.tokens[start]
        if end - start == 1:
            return t.kind in ("num", "name")
        if t.kind == "name" and self.seq(start + 1, "("):
            start += 1
        return self.match.get(start) == end - 1


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.notation = _Notation(self.tokens)
        self.i = 0
        self.depth = 0
        self.stops: list[int] = []  # the '/' of the printed softsigns being read, innermost last

    # helpers
    @property
    def tok(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind == "bad":
            raise LossSyntaxError(tok.text, self.text, tok.pos)
        if self.stops and self.i == self.stops[-1]:
            return _Token("stop", tok.text, tok.pos)  # the end of a printed softsign's operand
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

    def take_bar(self) -> None:
        if self.tok.kind != "close":
            raise self.unexpected("'|'")
        self.i += 1

    def is_sym(self, text: str) -> bool:
        return self.tok.kind == "sym" and self.tok.text == text

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
        while self.tok.kind == "sym" and self.tok.text in ("+", "-"):
            op = "add" if self.tok.text == "+" else "sub"
            tok = self.tok
            self.i += 1
            e = self.node(op, (e, self.term()), tok)
        self.depth -= 1
        return e

    def term(self) -> Expr:
        e = self.unary()
        while self.tok.kind == "sym" and self.tok.text in ("*", "/"):
            op = "mul" if self.tok.text == "*" else "div"
            tok = self.tok
            self.i += 1
            if op == "mul" and self.is_sym("*"):
                raise self.error("there is no power operator: use square(x) or sqrt(x)")
            end = self.aq_end(self.i - 1) if op == "div" else None
            if end is not None:  # the earlier code's a / (sqrt(1+(b)^2)): aq(a, b)
                self.enter()
                self.i += 6
                b = self.expr()
                self.take(")")
                self.i = end
                self.depth -= 1
                e = self.node("aq", (e, b), tok)
                continue
            e = self.node(op, (e, self.unary()), tok)
        return e

    def aq_end(self, s: int) -> int | None:
        """The index after ``/ (sqrt(1+(b)^2))`` when it starts at index ``s``, else None."""
        n = self.notation
        if not n.seq(s, "/", "(", ("name", "sqrt"), "(", ("num", 1), "+", "("):
            return None
        m = n.match.get(s + 6)
        if m is None or not n.seq(m, ")", "^", ("num", 2), ")", ")") or n.seq(m + 5, "^"):
            return None
        if n.match.get(s + 3) != m + 3 or n.match.get(s + 1) != m + 4:
            return None
        return m + 5

    def unary(self) -> Expr:
        softsigns = self.notation.softsign.get(self.i)
        if softsigns:
            limit = self.stops[-1] if self.stops else len(self.tokens)
            inside = [p for p in softsigns if p[0] < limit]
            if inside:
                return self.softsign(*max(inside))
        if self.is_sym("-"):
            tok = self.tok
            self.i += 1
            if self.tok.kind == "num":
                e = self.number(negative=True)
                if self.is_sym("^"):
                    raise self.error("ambiguous power of a negative number: write (-x)^2 or "
                                     "-(x^2)")
                return e
            self.enter()
            e = self.node("neg", (self.unary(),), tok)
            self.depth -= 1
            return e
        if self.is_sym("+"):
            raise self.error("unary '+' is not supported")
        return self.primary()

    def softsign(self, slash: int, end: int) -> Expr:
        """The earlier code's printed softsign ``x/(1+|x|)``, ``x`` starting here."""
        self.enter()
        self.stops.append(slash)
        x = self.expr()
        if self.i != slash:
            raise self.unexpected("an operator or '/'")
        self.stops.pop()
        self.depth -= 1
        self.i = end
        return self.node("softsign", (x,), self.tokens[slash])

    def number(self, negative: bool = False) -> Expr:
        tok = self.tok
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.error(f"number {tok.text!r} is out of range")
        self.i += 1
        return Const(-value if negative else value)

    def power(self, e: Expr) -> Expr:
        """``e``, or its square when ``^2`` (the earlier code's square, ``(x)^2``) follows."""
        if not self.is_sym("^"):
            return e
        tok = self.tok
        self.i += 1
        if self.tok.kind != "num" or float(self.tok.text) != 2:
            raise self.error("there is no power operator: only x^2 (the earlier code's "
                             "square) is read; use square(x) or sqrt(x)", tok)
        self.i += 1
        if self.is_sym("^"):
            raise self.error("ambiguous repeated power: use parentheses, e.g. (x^2)^2")
        return self.node("square", (e,), tok)

    def primary(self) -> Expr:
        # Each branch applies the postfix ^2 itself: no extra stack frame per nesting level.
        tok = self.tok
        n = self.notation
        if tok.kind == "num":
            if self.i in n.sigmoid:  # the earlier code's 1/(1+exp(-x), one ')' short
                self.enter()
                self.i += 8
                x = self.expr()
                self.take(")")
                self.depth -= 1
                return self.power(self.node("sigmoid", (x,), tok))
            cb = n.match.get(self.i + 5)
            before = self.tokens[self.i - 1] if self.i else None
            if (n.seq(self.i, ("num", 1), "/", "(", ("num", 1), "+", ("open", "|")) and cb
                    and n.seq(cb, ("close", "|"), ")") and n.match.get(self.i + 2) == cb + 1
                    and not n.seq(cb + 2, "^") and not (self.stops and self.stops[-1] < cb + 2)
                    and not (before is not None and before.kind == "sym" and before.text == "/")):
                # the first code's (Phase1) printed dsoft 1/(1+|x|)
                self.enter()
                self.i += 6
                x = self.expr()
                self.take_bar()
                self.take(")")
                self.depth -= 1
                return self.node("dsoft", (x,), tok)
            return self.power(self.number())
        if tok.kind == "sym" and tok.text == "(":
            self.i += 1
            e = self.expr()
            self.take(")")
            return self.power(e)
        if tok.kind == "open":  # |x|, the earlier code's abs
            self.enter()
            self.i += 1
            e = self.expr()
            self.take_bar()
            self.depth -= 1
            return self.power(self.node("abs", (e,), tok))
        if tok.kind == "name":
            return self.power(self.name())
        raise self.unexpected("a number, 'y', 'p', a function call, '(' or '|'")

    def name(self) -> Expr:
        tok = self.tok
        self.i += 1
        nxt = self.tokens[self.i]  # peek without raising on a bad character
        called = nxt.kind == "sym" and nxt.text == "("
        leaf = EARLIER_LEAVES.get(tok.text, tok.text)
        if leaf in LEAVES:
            if called:
                raise self.error(f"{tok.text!r} is an input, not a function", tok)
            return Leaf(leaf)
        if tok.text.startswith("__"):
            raise self.error(f"dunder name {tok.text!r} is not allowed", tok)
        name = "log10" if tok.text == "log" else EARLIER_NAMES.get(tok.text, tok.text)
        op = OPS.get(name)
        if op is None or op.name in _INFIX:
            raise self.error(
                f"unknown name {tok.text!r} (inputs: y, p; functions: "
                f"{', '.join(n for n in OPS if n not in _INFIX)})", tok)
        if not called:
            raise self.error(f"function {tok.text!r} must be called, e.g. {tok.text}(p)", tok)
        if name in ("ln", "log10"):
            e = self.logarithm(tok, op.name)
            if e is not None:
                return e
        if tok.text == "log":
            raise self.error("'log' is read only as the earlier code printed its log10, "
                             "log(|x|); write log10(x)", tok)
        self.enter()
        self.take("(")
        args = [self.expr()]
        while self.is_sym(","):
            self.i += 1
            args.append(self.expr())
        if len(args) != op.arity:
            label = op.name if tok.text == op.name else f"{tok.text} ({op.name})"
            raise self.error(f"{label} takes {op.arity} argument(s), got {len(args)}", tok)
        self.take(")")
        self.depth -= 1
        return self.node(op.name, tuple(args), tok)

    def logarithm(self, tok: _Token, op: str) -> Expr | None:
        """The earlier code's printed ``ln(|x|)``, ``log(|x|)`` (log10) and ``ln(|1+exp(x)|)``
        (softplus), the '(' at the current token; None when the call has another form."""
        n = self.notation
        j = self.i
        cb = n.match.get(j + 1)
        if not n.seq(j, "(", ("open", "|")) or cb is None or n.match.get(j) != cb + 1:
            return None
        self.enter()
        self.i += 2
        x = self.expr()
        self.take_bar()
        self.take(")")
        self.depth -= 1
        if op == "ln" and n.seq(j + 2, ("num", 1), "+", ("name", "exp"), "(") and \
                n.match.get(j + 5) == cb - 1 and isinstance(x, Call) and x.op == "add" and \
                x.args[0] == Const(1) and isinstance(x.args[1], Call) and x.args[1].op == "exp":
            return self.node("softplus", x.args[1].args, tok)
        return self.node(op, (x,), tok)


def parse(text: str) -> Expr:
    """Parse loss expression text; raise :class:`LossSyntaxError` naming the position on error.

    Besides our syntax, the text may be a loss as the authors' earlier code printed it (see the
    module docstring): every text that parses without that notation parses as before.
    """
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
