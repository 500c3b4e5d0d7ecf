"""Dimension expressions: ``24 + 30*num_slots``, ``num_slots*embed_dim``, ``(n - 1)//2``.

An expression is integers and symbols joined by ``+``, ``-``, ``*`` and ``//`` (floor
division, as in Python), with parentheses. It appears as a dimension of a spec
(``float32[batch, 24 + 30*num_slots]``) or as the value of a derived symbol
(``derived={"obs_dim": "24 + 30*num_slots"}``). It is checked once its symbols are bound; when
exactly one symbol is still unknown and the expression is linear in it (no ``//`` on it), the
symbol is solved from the dimension instead (``114 = 24 + 30*num_slots`` gives 3).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_DEPTH", "Expr", "is_expr", "parse_derived", "parse_dim"]

#: Deepest nesting accepted in a spec (brackets) or an expression (parentheses).
MAX_DEPTH: Final = 32

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>//|[-+*()]))")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREC: Final = {"+": 1, "-": 1, "*": 2, "//": 2}


@dataclass(frozen=True)
class Expr:
    """A parsed expression: a constant, a symbol, or ``left op right``."""

    op: str  # "int", "sym", "+", "-", "*", "//"
    value: int | str | None = None
    left: Expr | None = None
    right: Expr | None = None
    #: ``str(self)``, kept for messages (set by :func:`parse_expr`).
    text: str = ""

    # ------------------------------------------------------------------------------ views

    @functools.cached_property
    def symbols(self) -> frozenset[str]:
        if self.op == "sym":
            assert isinstance(self.value, str)
            return frozenset({self.value})
        if self.op == "int":
            return frozenset()
        assert self.left is not None and self.right is not None
        return self.left.symbols | self.right.symbols

    def __str__(self) -> str:
        return self._fmt(0)

    def _fmt(self, parent: int, right_side: bool = False) -> str:
        if self.op == "int" and isinstance(self.value, int) and self.value < 0:
            return f"(0 - {-self.value})"  # folded constants can be negative; no unary minus
        if self.op in ("int", "sym"):
            return str(self.value)
        assert self.left is not None and self.right is not None
        prec = _PREC[self.op]
        sep = f" {self.op} " if prec == 1 else self.op
        text = self.left._fmt(prec) + sep + self.right._fmt(prec, right_side=True)
        # Operators are left-associative: a right operand of equal precedence needs brackets.
        if prec < parent or (prec == parent and right_side):
            return f"({text})"
        return text

    def python(self, names: Mapping[str, str]) -> str:
        """Python source computing the expression, symbols renamed through ``names``."""
        if self.op == "int":
            return str(self.value)
        if self.op == "sym":
            assert isinstance(self.value, str)
            return names[self.value]
        assert self.left is not None and self.right is not None
        return f"({self.left.python(names)} {self.op} {self.right.python(names)})"

    # ------------------------------------------------------------------------- evaluating

    def evaluate(self, env: Mapping[str, int]) -> int:
        """The value with every symbol taken from ``env`` (all must be there)."""
        if self.op == "int":
            assert isinstance(self.value, int)
            return self.value
        if self.op == "sym":
            assert isinstance(self.value, str)
            return int(env[self.value])
        assert self.left is not None and self.right is not None
        a, b = self.left.evaluate(env), self.right.evaluate(env)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if b == 0:
            raise ZeroDivisionError(f"{self} divides by zero")
        return a // b

    def _linear(self, unknown: str, env: Mapping[str, int]) -> tuple[int, int] | None:
        """``(a, b)`` with the expression equal to ``a*unknown + b``, or None if not linear."""
        if self.op == "int":
            assert isinstance(self.value, int)
            return 0, self.value
        if self.op == "sym":
            if self.value == unknown:
                return 1, 0
            assert isinstance(self.value, str)
            return 0, int(env[self.value])
        assert self.left is not None and self.right is not None
        left, right = self.left._linear(unknown, env), self.right._linear(unknown, env)
        if left is None or right is None:
            return None
        (a1, b1), (a2, b2) = left, right
        if self.op == "+":
            return a1 + a2, b1 + b2
        if self.op == "-":
            return a1 - a2, b1 - b2
        if self.op == "*":
            if a1 and a2:
                return None
            return a1 * b2 + a2 * b1, b1 * b2
        if a1 or a2 or b2 == 0:
            return None
        return 0, b1 // b2

    def solve(self, unknown: str, env: Mapping[str, int], target: int) -> int | None:
        """The non-negative whole ``unknown`` making the expression ``target``, else None.

        Only for expressions linear in ``unknown``; call :meth:`solvable` first.
        """
        linear = self._linear(unknown, env)
        if linear is None or linear[0] == 0:
            return None
        a, b = linear
        if (target - b) % a:
            return None
        value = (target - b) // a
        return value if value >= 0 else None

    def solvable(self, unknown: str) -> bool:
        """Whether :meth:`solve` can find ``unknown`` once the other symbols are known."""
        env = dict.fromkeys(self.symbols - {unknown}, 1)
        try:
            linear = self._linear(unknown, env)
        except ZeroDivisionError:
            return False
        return linear is not None and linear[0] != 0


class _ExprParser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos, stripped = 0, text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if m is None:
                raise ValueError(f"unexpected character {stripped[pos:].lstrip()[:1]!r}")
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def parse(self) -> Expr:
        if not self.tokens:
            raise ValueError("empty expression")
        out = self.expr()
        if self.i < len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.i][1]!r}")
        return out

    def expr(self) -> Expr:
        left = self.term()
        while self.peek() in ("+", "-"):
            op = self.tokens[self.i][1]
            self.i += 1
            left = Expr(op, left=left, right=self.term())
        return left

    def term(self) -> Expr:
        left = self.factor()
        while self.peek() in ("*", "//"):
            op = self.tokens[self.i][1]
            self.i += 1
            left = Expr(op, left=left, right=self.factor())
        return left

    def factor(self) -> Expr:
        if self.i >= len(self.tokens):
            raise ValueError("expression ends after an operator")
        kind, value = self.tokens[self.i]
        self.i += 1
        if kind == "num":
            return Expr("int", int(value))
        if kind == "name":
            if value == "_":
                raise ValueError("'_' (any size) cannot be part of an expression")
            return Expr("sym", value)
        if value == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValueError(f"expression nested more than {MAX_DEPTH} deep")
            inner = self.expr()
            if self.peek() != ")":
                raise ValueError("missing ')'")
            self.i += 1
            self.depth -= 1
            return inner
        raise ValueError(f"expected a number, a symbol or '(' but got {value!r}")


def _fold(e: Expr) -> Expr:
    """Constant sub-expressions computed: ``2*3 + n`` becomes ``6 + n``."""
    if e.op in ("int", "sym"):
        return e
    assert e.left is not None and e.right is not None
    left, right = _fold(e.left), _fold(e.right)
    folded = Expr(e.op, left=left, right=right)
    if e.op == "//" and right.op == "int" and right.value == 0:
        raise ZeroDivisionError(f"{folded} divides by zero")
    if left.op == "int" and right.op == "int":
        return Expr("int", folded.evaluate({}))
    return folded


@functools.lru_cache(maxsize=1024)
def parse_expr(text: str) -> Expr:
    """Parse an expression; a bad one raises ``ValueError`` saying what is wrong."""
    try:
        e = _fold(_ExprParser(text).parse())
        return Expr(e.op, e.value, e.left, e.right, text=str(e))
    except ZeroDivisionError as e:
        raise ValueError(f"invalid dimension expression {text!r}: {e}") from None
    except ValueError as e:
        raise ValueError(
            f"invalid dimension expression {text!r}: {e} (use integers and symbols with "
            "+ - * // and parentheses)"
        ) from None


def parse_dim(text: str) -> int | str:
    """A dimension string as it is stored: an int, a symbol, or a canonical expression."""
    e = parse_expr(text)
    if e.op == "int":
        assert isinstance(e.value, int)
        return e.value
    if e.op == "sym":
        assert isinstance(e.value, str)
        return e.value
    return str(e)


def is_expr(dim: int | str) -> bool:
    """Whether a stored dimension is an expression (not an int, symbol or wildcard)."""
    return (
        isinstance(dim, str)
        and not dim.startswith("*")
        and dim != "..."
        and (not _NAME.fullmatch(dim))
    )


def parse_derived(derived: Mapping[str, str] | None, where: str) -> tuple[tuple[str, Expr], ...]:
    """Validate ``derived={"obs_dim": "24 + 30*num_slots"}``; order so that each comes after
    the derived symbols it uses. Raises ``TypeError`` naming ``where``."""
    if not derived:
        return ()
    parsed: dict[str, Expr] = {}
    for sym, text in derived.items():
        if not isinstance(sym, str) or not _NAME.fullmatch(sym) or sym == "_":
            raise TypeError(f"{where}: derived symbol {sym!r} is not a name")
        if isinstance(text, int) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            raise TypeError(
                f"{where}: derived {sym}={text!r} is not an expression string "
                "like '24 + 30*num_slots'"
            )
        try:
            parsed[sym] = parse_expr(text)
        except ValueError as e:
            raise TypeError(f"{where}: derived {sym}: {e}") from None
    ordered: list[tuple[str, Expr]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(sym: str, chain: tuple[str, ...]) -> None:
        if state.get(sym) == 2:
            return
        if state.get(sym) == 1:
            cycle = " -> ".join((*chain, sym))
            raise TypeError(f"{where}: derived symbols depend on each other in a cycle: {cycle}")
        state[sym] = 1
        for dep in sorted(parsed[sym].symbols & parsed.keys()):
            visit(dep, (*chain, sym))
        state[sym] = 2
        ordered.append((sym, parsed[sym]))

    for sym in parsed:
        visit(sym, ())
    return tuple(ordered)
