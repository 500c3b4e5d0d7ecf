"""Value derivation: the companion of a features expression, by data flow, never invented.

``derive`` asks each derivation (the modules of this package) in turn; a derivation returns
a :class:`Derivation` (the companion's source text, how it was found, and side edits such as a
rename or a synthesised test value), a :class:`Failure` (applicable but impossible, with the
reason), or None (not applicable).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

from esper_migrate.context import Binding, FileContext, Scope
from esper_migrate.records import Edit, EditKind

MAX_DEPTH = 12


@dataclass
class Derivation:
    text: str
    how: str
    edits: list[Edit] = field(default_factory=list)
    #: The target method whose new parameter the value is (a pass-on call inside it).
    via_parameter_of: ast.AST | None = None


@dataclass
class Failure:
    reason: str
    #: A better suggested edit than the generic one, when the rule knows it.
    suggestion: str | None = None


Result = Derivation | Failure
NameRule = Callable[[FileContext, Scope, ast.Name, Binding, int], Result | None]
ExprRule = Callable[[FileContext, Scope, ast.expr, int], Result | None]


def _name_rules() -> list[NameRule]:
    from esper_migrate.derive import parameter, producer, shape, synthesis, transform

    return [parameter.derive, producer.derive, synthesis.derive, shape.derive, transform.derive]


def _expr_rules() -> list[ExprRule]:
    from esper_migrate.derive import chain, lookup, synthesis, transform

    return [lookup.derive, chain.derive, synthesis.derive_literal, transform.derive_call]


def derive(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int = 0) -> Result:
    """The companion of ``expr`` as evaluated at its own position in ``scope``."""
    if depth > MAX_DEPTH:
        return Failure("derivation chain too long")
    if isinstance(expr, ast.Name):
        binding = scope.lookup(expr.id, expr.lineno, expr.col_offset)
        if binding is None:
            return Failure(f"`{expr.id}` is not bound in this scope")
        failures: list[Failure] = []
        for name_rule in _name_rules():
            result = name_rule(ctx, scope, expr, binding, depth)
            if isinstance(result, Derivation):
                return result
            if isinstance(result, Failure):
                failures.append(result)
        if failures:
            return failures[0]
        return Failure(f"no producer, transform or parameter gives the companion of `{expr.id}`")
    for expr_rule in _expr_rules():
        result = expr_rule(ctx, scope, expr, depth)
        if result is not None:
            return result
    return Failure(f"cannot derive the companion of `{ctx.text(expr)}`")


def companion_name(ctx: FileContext, features_name: str) -> str:
    """``states_batch`` -> ``blueprint_indices_batch``: the features stem replaced."""
    new = ctx.spec.parameter.name
    parts = features_name.split("_")
    for stem in sorted(ctx.spec.features.stems, key=len, reverse=True):
        if stem in parts:
            i = parts.index(stem)
            return "_".join([*parts[:i], new, *parts[i + 1 :]]).strip("_") or new
    return f"{features_name.strip('_')}_{new}" if features_name.strip("_") else new


def companion_statement(
    ctx: FileContext,
    scope: Scope,
    binding: Binding,
    rhs: str,
    how: str,
    what: str,
    *,
    name: str | None = None,
    base: Derivation | None = None,
) -> Result:
    """The companion as a new statement right after ``binding``'s (so under the same guard):
    ``<name> = <rhs>``, the name defaulting to the features' name with its stem replaced."""
    assert binding.stmt is not None
    new = name or companion_name(ctx, binding.name)
    if name is None and new in scope.bindings:
        return Failure(f"cannot {what} for `{binding.name}`: `{new}` is taken")
    edit = ctx.edit(EditKind.STATEMENT, binding.stmt, f"{new} = {rhs}", f"{what} `{new}`", how)
    if base is None:
        return Derivation(new, how, [edit])
    return Derivation(new, how, [*base.edits, edit], base.via_parameter_of)
