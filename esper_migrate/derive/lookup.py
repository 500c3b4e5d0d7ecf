"""Derivation: a lookup of the features key in a dict that carries the companion
(``transition["state"]`` -> ``transition["blueprint_indices"]``, ``data["states"]`` ->
``data["blueprint_indices"]`` for the storage's batched output)."""

from __future__ import annotations

import ast

from esper_migrate.context import FileContext, Scope
from esper_migrate.derive import Derivation, Failure, Result
from esper_migrate.index import callee_name
from esper_migrate.rule import Example, edited

_UPDATE = """\
class PolicyBundle(Protocol):
    def evaluate_actions(self, states, actions, hidden=None): ...


class PPOAgent:
    policy: PolicyBundle

"""
_FROM_BUFFER = (
    _UPDATE
    + """\
    def update(self, buffer: TamiyoRolloutBuffer, actions, hidden):
        data = buffer.get_batched_sequences()
        return self.policy.evaluate_actions(data["states"], actions, hidden)
"""
)
_UNKNOWN_DICT = (
    _UPDATE
    + """\
    def update(self, batch, actions):
        return self.policy.evaluate_actions(batch["states"], actions)
"""
)
_MIGRATED_PROTOCOL = ("(self, states, actions,", "(self, states, blueprint_indices, actions,")

EXAMPLES = [
    Example(
        before=_FROM_BUFFER,
        after=edited(
            _FROM_BUFFER,
            _MIGRATED_PROTOCOL,
            ('(data["states"], actions', '(data["states"], data["blueprint_indices"], actions'),
        ),
    ),
    Example(
        before=_UNKNOWN_DICT,
        after=edited(_UNKNOWN_DICT, _MIGRATED_PROTOCOL),
        unresolved="not known to carry",
    ),
]


def _quote(literal: str, key: str) -> str:
    """``key`` as a string literal in the quote style of ``literal``."""
    prefix = ""
    while literal and literal[0].isalpha():
        prefix, literal = prefix + literal[0], literal[1:]
    quote = literal[:3] if literal[:3] in ('"""', "'''") else literal[:1]
    return f"{prefix}{quote}{key}{quote}"


def carries_companion(ctx: FileContext, scope: Scope, base: ast.expr, key: str) -> str | None:
    """Why ``base[key]`` has a companion entry, or None when nothing says so."""
    if isinstance(base, ast.Name):
        b = scope.lookup(base.id, base.lineno, base.col_offset)
        if b is not None and b.kind == "assign" and isinstance(b.value, ast.Call):
            name = callee_name(b.value.func)
            if any(s.batched_method == name for s in ctx.spec.storage):
                return f"`{base.id}` is the batched output of `{name}()`"
    if key in ctx.companion_dict_keys:
        return f"dict literals in this file carry `{ctx.spec.parameter.name}` beside `{key}`"
    return None


def derive(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int) -> Result | None:
    if not (
        isinstance(expr, ast.Subscript)
        and isinstance(expr.slice, ast.Constant)
        and isinstance(expr.slice.value, str)
        and expr.slice.value in ctx.spec.features.keys
    ):
        return None
    key = expr.slice.value
    why = carries_companion(ctx, scope, expr.value, key)
    if why is None:
        return Failure(
            f"`{ctx.text(expr.value)}` is not known to carry `{ctx.spec.parameter.name}` "
            f"beside `{key}`"
        )
    literal = _quote(ctx.text(expr.slice), ctx.spec.parameter.name)
    return Derivation(ctx.splice(expr, expr.slice, literal), why)
