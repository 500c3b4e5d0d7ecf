"""Derivation for tests: ``state = torch.randn(2, 5, 50)`` with no producer in scope gets a
synthesised companion of the right shape, inserted right after it:
``blueprint_indices = torch.randint(0, 13, (2, 5, 3))`` (leading dims of the features; the
number of slots from a visible ``num_slots=`` of a target constructor, else the spec default)."""

from __future__ import annotations

import ast

from esper_migrate.context import Binding, FileContext, Scope, own_nodes
from esper_migrate.derive import Derivation, Failure, Result, companion_statement
from esper_migrate.index import callee_name
from esper_migrate.rule import Example, edited

_TEST = """\
import torch


class FactoredRecurrentActorCritic:
    def forward(self, state, hidden=None):
        return state


def test_forward():
    net = FactoredRecurrentActorCritic(state_dim=50, num_slots=4)
    state = torch.randn(2, 5, 50)
    out = net(state)
    assert out is not None
    assert net(torch.zeros(7, 50)) is not None
"""

EXAMPLES = [
    Example(
        before=_TEST,
        after=edited(
            _TEST,
            ("(self, state, hidden", "(self, state, blueprint_indices: torch.Tensor, hidden"),
            (
                "state = torch.randn(2, 5, 50)\n",
                "state = torch.randn(2, 5, 50)\n"
                "    blueprint_indices = torch.randint(0, 13, (2, 5, 4))\n",
            ),
            ("net(state)", "net(state, blueprint_indices=blueprint_indices)"),
            (
                "net(torch.zeros(7, 50))",
                "net(torch.zeros(7, 50), blueprint_indices=torch.randint(0, 13, (7, 4)))",
            ),
        ),
    ),
]


def _num_slots(ctx: FileContext, scope: Scope) -> str | None:
    keyword = ctx.spec.synthesis.num_slots_keyword
    for node in own_nodes(scope.node):
        if isinstance(node, ast.Call) and ctx.index.target_types.get(callee_name(node.func) or ""):
            for kw in node.keywords:
                if kw.arg == keyword and isinstance(kw.value, ast.Constant):
                    return ctx.text(kw.value)
    default = ctx.spec.synthesis.num_slots_default
    return None if default is None else str(default)


def _shape(ctx: FileContext, scope: Scope, call: ast.Call, what: str) -> str | Failure:
    """The companion's shape for features built by ``call``: the features' leading dims, then
    the number of slots."""
    dims: list[ast.expr] = list(call.args)
    if len(dims) == 1 and isinstance(dims[0], ast.Tuple | ast.List):
        dims = list(dims[0].elts)
    if not dims or any(isinstance(d, ast.Starred) for d in dims):
        return Failure(f"the shape of `{what}` cannot be read from `{ctx.text(call)}`")
    slots = _num_slots(ctx, scope)
    if slots is None:
        return Failure("the number of slots is not visible and the spec has no default")
    shape = ", ".join([*(ctx.text(d) for d in dims[:-1]), slots])
    return shape + "," if len(dims) == 1 else shape


def _random(ctx: FileContext, shape: str) -> str:
    syn = ctx.spec.synthesis
    return f"{syn.random_call}(0, {syn.num_blueprints}, ({shape}))"


def derive(ctx: FileContext, scope: Scope, name: ast.Name, b: Binding, depth: int) -> Result | None:
    if b.kind != "assign" or not isinstance(b.value, ast.Call) or b.stmt is None:
        return None
    call = b.value
    if ctx.dotted(call.func) not in ctx.spec.synthesis.constructors:
        return None
    shape = _shape(ctx, scope, call, name.id)
    if isinstance(shape, Failure):
        return shape
    return companion_statement(
        ctx,
        scope,
        b,
        _random(ctx, shape),
        f"synthesised from the shape of `{name.id}` (line {b.line})",
        "synthesise a test value",
    )


def derive_literal(ctx: FileContext, scope: Scope, expr: ast.expr, depth: int) -> Result | None:
    """Features built in place (``state=torch.randn(50)``): a companion built in place."""
    if (
        not isinstance(expr, ast.Call)
        or ctx.dotted(expr.func) not in ctx.spec.synthesis.constructors
    ):
        return None
    shape = _shape(ctx, scope, expr, ctx.text(expr))
    if isinstance(shape, Failure):
        return shape
    return Derivation(_random(ctx, shape), f"synthesised from the shape of `{ctx.text(expr)}`")
