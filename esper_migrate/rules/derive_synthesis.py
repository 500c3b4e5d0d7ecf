"""Derivation for tests: ``state = torch.randn(2, 5, 50)`` with no producer in scope gets a
synthesised companion of the right shape, inserted right after it:
``blueprint_indices = torch.randint(0, 13, (2, 5, 3))`` (leading dims of the features; the
number of slots from a visible ``num_slots=`` of a target constructor, else the spec default)."""

from __future__ import annotations

import ast

from esper_migrate.context import Binding, FileContext, Scope, own_nodes
from esper_migrate.flow import Derivation, Failure, Result, companion_name
from esper_migrate.index import callee_name
from esper_migrate.records import Code, Edit, EditKind, Tier
from esper_migrate.rules import Example

EXAMPLES = [
    Example(
        before="""\
import torch


class FactoredRecurrentActorCritic:
    def forward(self, state, hidden=None):
        return state


def test_forward():
    net = FactoredRecurrentActorCritic(state_dim=50, num_slots=4)
    state = torch.randn(2, 5, 50)
    out = net(state)
    assert out is not None
""",
        after="""\
import torch


class FactoredRecurrentActorCritic:
    def forward(self, state, blueprint_indices: torch.Tensor, hidden=None):
        return state


def test_forward():
    net = FactoredRecurrentActorCritic(state_dim=50, num_slots=4)
    state = torch.randn(2, 5, 50)
    blueprint_indices = torch.randint(0, 13, (2, 5, 4))
    out = net(state, blueprint_indices=blueprint_indices)
    assert out is not None
""",
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


def derive(ctx: FileContext, scope: Scope, name: ast.Name, b: Binding, depth: int) -> Result | None:
    if b.kind != "assign" or not isinstance(b.value, ast.Call) or b.stmt is None:
        return None
    call = b.value
    if ctx.dotted(call.func) not in ctx.spec.synthesis.constructors:
        return None
    dims: list[ast.expr] = list(call.args)
    if len(dims) == 1 and isinstance(dims[0], ast.Tuple | ast.List):
        dims = list(dims[0].elts)
    if not dims or any(isinstance(d, ast.Starred) for d in dims):
        return Failure(f"the shape of `{name.id}` cannot be read from `{ctx.text(call)}`")
    slots = _num_slots(ctx, scope)
    if slots is None:
        return Failure("the number of slots is not visible and the spec has no default")
    new = companion_name(ctx, name.id)
    if new in scope.bindings:
        return Failure(f"cannot synthesise `{new}`: the name is taken")
    leading = [ctx.text(d) for d in dims[:-1]]
    shape = ", ".join([*leading, slots])
    if len(leading) == 0:
        shape += ","
    syn = ctx.spec.synthesis
    text = f"{new} = {syn.random_call}(0, {syn.num_blueprints}, ({shape}))"
    how = f"synthesised from the shape of `{name.id}` (line {b.line})"
    edit = Edit(
        kind=EditKind.STATEMENT,
        path=ctx.path,
        line=b.stmt.lineno,
        col=ctx.char_col(b.stmt.lineno, b.stmt.col_offset),
        code=Code.MISSING_ARGUMENT,
        tier=Tier.RESOLVED,
        reason=f"test value for `{new}`",
        derivation=how,
        anchor=ctx.span(b.stmt),
        text=text,
    )
    return Derivation(new, how, [edit])
