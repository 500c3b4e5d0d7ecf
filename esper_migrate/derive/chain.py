"""Derivation: subscripts, ``.detach()``/``.to(...)``/``.clone()``/``.cpu()`` chains and reshapes
of the leading dimensions written inside an argument apply to the companion the same way
(``states_batch[i].detach()`` -> ``blueprint_indices_batch[i].detach()``,
``features.unsqueeze(1)`` -> ``blueprint_indices.unsqueeze(1)``)."""

from __future__ import annotations

import ast

from esper_migrate.context import FileContext, Scope
from esper_migrate.derive import Derivation, Failure, Result
from esper_migrate.derive import derive as derive_expr
from esper_migrate.rule import get_action_example

#: Methods that keep the values (and the int64 dtype) of a tensor.
CHAIN_METHODS = frozenset({"detach", "to", "clone", "cpu", "cuda", "contiguous"})

EXAMPLES = [
    get_action_example(
        """\
def rollout(net: FactoredRecurrentActorCritic, signals, i, h):
    states_batch, blueprint_indices_batch = batch_obs_to_features(signals)
    return net.get_action(states_batch[i].detach(), hidden=h)
""",
        (
            "detach(), hidden=h)",
            "detach(), blueprint_indices=blueprint_indices_batch[i].detach(), hidden=h)",
        ),
    ),
    get_action_example(
        """\
def probe(net: FactoredRecurrentActorCritic, signals):
    obs, bp = batch_obs_to_features(signals)
    return net.get_action(obs.unsqueeze(1))
""",
        ("(obs.unsqueeze(1))", "(obs.unsqueeze(1), blueprint_indices=bp.unsqueeze(1))"),
    ),
]


def derive(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int) -> Result | None:
    inner: ast.expr | None = None
    if isinstance(expr, ast.Subscript):
        inner = expr.value
    elif (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr in CHAIN_METHODS
    ):
        inner = expr.func.value
    else:
        from esper_migrate.derive.shape import mirrorable

        reshape = mirrorable(expr)
        if reshape is not None:
            inner, problem = reshape
            if problem is not None:
                return Failure(f"{problem}; the companion's last dimension is the number of slots")
    if inner is None:
        return None
    result = derive_expr(ctx, scope, inner, depth + 1)
    if not isinstance(result, Derivation):
        return result
    return Derivation(
        ctx.splice(expr, inner, result.text), result.how, result.edits, result.via_parameter_of
    )
