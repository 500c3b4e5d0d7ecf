"""Derivation: ``Z = f(X)`` (a normalisation or any other transform of the features) has the
companion of X, raw: the indices are never normalised."""

from __future__ import annotations

import ast

from esper_migrate.context import Binding, FileContext, Scope
from esper_migrate.derive import Derivation, Failure, Result
from esper_migrate.derive import derive as derive_expr
from esper_migrate.index import callee_name
from esper_migrate.rule import get_action_example

EXAMPLES = [
    get_action_example(
        """\
def rollout(net: FactoredRecurrentActorCritic, normalizer, signals, h):
    states_batch, blueprint_indices_batch = batch_obs_to_features(signals)
    states_batch_normalized = normalizer.normalize(states_batch)
    return net.get_action(states_batch_normalized, h)
""",
        ("(states_batch_normalized, h)", "(states_batch_normalized, blueprint_indices_batch, h)"),
    ),
    get_action_example(
        """\
def probe(net: FactoredRecurrentActorCritic, normalizer, signals):
    obs, bp = batch_obs_to_features(signals)
    return net.get_action(normalizer(obs))
""",
        ("get_action(normalizer(obs))", "get_action(normalizer(obs), blueprint_indices=bp)"),
    ),
    get_action_example(
        """\
def rollout(net: FactoredRecurrentActorCritic, a, b):
    states = combine(a, b)
    return net.get_action(states)
""",
        unresolved="`a` is a parameter of `rollout`",
    ),
]


def derive(ctx: FileContext, scope: Scope, name: ast.Name, b: Binding, depth: int) -> Result | None:
    if b.kind != "assign" or b.value is None:
        return None
    result = derive_expr(ctx, scope, b.value, depth + 1)
    if isinstance(result, Derivation) and not isinstance(b.value, ast.Call):
        return Derivation(
            result.text, f"`{name.id}` = {result.how}", result.edits, result.via_parameter_of
        )
    return result


def derive_call(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int) -> Result | None:
    """``normalizer(obs)`` as an argument, or assigned: the raw companion of its one input."""
    if not isinstance(expr, ast.Call):
        return None
    inputs = [*expr.args, *(k.value for k in expr.keywords)]
    found: list[Derivation] = []
    failure: Failure | None = None
    for arg in inputs:
        if isinstance(arg, ast.Starred | ast.Constant):
            continue
        result = derive_expr(ctx, scope, arg, depth + 1)
        if isinstance(result, Derivation):
            found.append(result)
        elif failure is None:
            failure = result
    fname = callee_name(expr.func) or ctx.text(expr.func)
    if len(found) == 1:
        return Derivation(
            found[0].text,
            f"raw companion through the transform `{fname}(...)`; {found[0].how}",
            found[0].edits,
            found[0].via_parameter_of,
        )
    if len(found) > 1:
        return Failure(f"`{fname}(...)` combines several features; the companion is ambiguous")
    return failure
